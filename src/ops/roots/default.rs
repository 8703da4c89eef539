//! `subroot roots default IMAGE ROOT`: make every boot configuration a relayout edits say
//! `subroot=ROOT` — `grub.cfg` and BLS entries on the boot filesystem (the shared `/boot`
//! or a separate `/boot` partition), GRUB and BLS files on FAT ESPs, and
//! `/etc/default/grub` and `/etc/kernel/cmdline` in every root, so that later
//! `update-grub` / `kernel-install` runs in any root keep the choice. With `--entry`, the
//! default stays and each root gets a boot entry of its own ([`super::entries`]).
//!
//! The files are edited through the same editors as relayout's
//! ([`crate::ops::relayout::bootcfg`]), keeping their inodes and metadata, by the
//! in-process ext editor; see [`super::image::write`].

use super::entries;
use super::image::{self, refused, Changes, FsOp, RootsImage};
use crate::edit::deliver::DestinationArgs;
use crate::ops::relayout::bootcfg::{self, ConfigKind, LineChange, ParamEdit};
use crate::ops::relayout::esp;
use crate::ops::relayout::plan::Edit;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use subroot_formats::manifest::escape;
use subroot_formats::tree::Kind;

/// What `roots default` did (or would do: `--dry-run`): the `--json` document.
#[derive(Debug, Serialize)]
pub struct Report {
    pub image: String,
    /// The root asked for (absent: `--entry` for every root).
    pub root: Option<String>,
    /// The roots of the image.
    pub roots: Vec<String>,
    /// `--entry`: boot entries added instead of switching the default.
    pub entry: bool,
    /// Files changed (root filesystem, separate `/boot`, ESPs).
    pub edits: Vec<Edit>,
    /// BLS entry files created (`--entry`).
    pub created: Vec<Edit>,
}

impl Report {
    /// One fact per line.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "roots default of {} (roots: {}): {}",
            self.image,
            self.roots.join(", "),
            match (self.entry, &self.root) {
                (true, None) => "a boot entry per root".to_string(),
                (true, Some(r)) => format!("a boot entry for {r}"),
                (false, r) => format!("boot subroot={}", r.as_deref().unwrap_or_default()),
            }
        );
        if self.edits.is_empty() && self.created.is_empty() {
            let _ = writeln!(
                s,
                "  nothing to change: the boot configuration says so already"
            );
        }
        for (verb, list) in [("edit", &self.edits), ("create", &self.created)] {
            for e in list {
                e.write_text(&mut s, verb, "");
            }
        }
        s
    }
}

/// What the command line asks.
pub struct DefaultRequest<'a> {
    pub dest: DestinationArgs<'a>,
    pub input: &'a std::path::Path,
    pub part: crate::open::select::Which,
    /// The root to boot; with `entry`, the root to add an entry for (`None`: all).
    pub root: Option<&'a str>,
    pub entry: bool,
    pub dry_run: bool,
    pub json: bool,
    pub verify: crate::edit::full_check::Verify,
}

fn named(p: &[u8]) -> crate::json::Named {
    crate::json::Named::new("path", [b"/", p].concat())
}

/// `subroot roots default`.
pub fn run(req: &DefaultRequest, ctx: &Ctx) -> Result<()> {
    if let Some(r) = req.root {
        super::check_name(r, "ROOT")?;
    }
    let dest = match req.dry_run {
        true => None,
        false => Some(req.dest.destination(req.input)?),
    };
    let mut img = RootsImage::open(req.input, req.part.clone(), ctx)?;
    if img.roots.is_empty() {
        return Err(refused(format!(
            "{}: no roots: no top-level directory of the root filesystem holds an operating \
             system (etc/os-release or usr/lib/os-release); relayout the image first \
             (subroot relayout)",
            img.name
        )));
    }
    if let Some(name) = req.root {
        let root = name.as_bytes();
        if !img.roots.iter().any(|r| r == root) {
            let what = match img.tree.entry(root) {
                Ok(e) if e.kind == Kind::Dir => "is a directory that holds no operating system",
                Ok(_) => "is not a directory",
                Err(_) => "does not exist",
            };
            bail!(
                "{}: no root {name:?}: /{} {what}; the roots are {}",
                img.name,
                escape(root),
                img.roots_list()
            );
        }
    }
    // The separate /boot as the root that boots (or the first root) mounts it.
    let fstab_root = req
        .root
        .map_or_else(|| img.roots[0].clone(), |r| r.as_bytes().to_vec());
    img.locate_boot(&fstab_root)?;
    let files = img.boot_files(&img.roots)?;
    let all_roots: Vec<String> = img
        .roots
        .iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect();
    // The roots that get entries (--entry).
    let root_names: Vec<String> = match req.root {
        Some(r) => vec![r.to_string()],
        None => all_roots.clone(),
    };
    let bpart = img.boot_partition();
    let param = ParamEdit::subroot(req.root.unwrap_or_default());
    let mut changes = Changes::default();
    let mut report = Report {
        image: img.name.clone(),
        root: req.root.map(str::to_string),
        roots: all_roots,
        entry: req.entry,
        edits: Vec::new(),
        created: Vec::new(),
    };
    let (btree, _) = img.boot_tree();
    for c in &files.configs {
        let on_boot_part = c.on_boot && bpart.is_some();
        let ops = if on_boot_part {
            &mut changes.boot
        } else {
            &mut changes.root
        };
        let edited = match (req.entry, c.kind) {
            (false, kind) => bootcfg::edit(kind, &c.text, &param),
            (true, ConfigKind::GrubCfg) => entries::add_grub_entries(&c.text, &root_names),
            (true, ConfigKind::BlsEntry) => {
                let name = c.path.rsplit(|&b| b == b'/').next().unwrap_or(&c.path);
                if entries::is_root_entry_file(name) {
                    continue;
                }
                let meta = btree
                    .entry(&c.path)
                    .with_context(|| format!("cannot read /{}", escape(&c.path)))?;
                for r in &root_names {
                    let dir = &c.path[..c.path.len() - name.len()];
                    let path = [dir, &entries::bls_copy_name(name, r)].concat();
                    if btree.entry(&path).is_ok() {
                        continue;
                    }
                    let text = entries::bls_copy(&c.text, r);
                    let mut e = meta.clone();
                    e.path = path.clone();
                    e.size = text.len() as u64;
                    e.hardlink_id = None;
                    report.created.push(Edit {
                        path: named(&path),
                        partition: bpart.filter(|_| on_boot_part),
                        what: ConfigKind::BlsEntry,
                        changes: text
                            .lines()
                            .enumerate()
                            .map(|(i, l)| LineChange {
                                line: i + 1,
                                old: String::new(),
                                new: l.to_string(),
                            })
                            .collect(),
                    });
                    ops.push(FsOp::Create(e, text.into_bytes()));
                }
                continue;
            }
            (true, _) => None,
        };
        if let Some((new, line_changes)) = edited {
            report.edits.push(Edit {
                path: named(&c.path),
                partition: bpart.filter(|_| on_boot_part),
                what: c.kind,
                changes: line_changes,
            });
            ops.push(FsOp::Replace(c.path.clone(), new.into_bytes()));
        }
    }
    let esp_edit = |kind: ConfigKind, text: &str| match (req.entry, kind) {
        (false, kind) => bootcfg::edit(kind, text, &param),
        (true, ConfigKind::GrubCfg) => entries::add_grub_entries(text, &root_names),
        (true, _) => None,
    };
    changes.esp = esp::edit_esp_files_with(&img.survey, &esp_edit, &img.name)?;
    report
        .edits
        .extend(changes.esp.iter().map(|e| e.edit.clone()));
    let text = report.text();
    let Some(dest) = dest else {
        let out = if req.json {
            format!("{}\n", serde_json::to_string_pretty(&report)?)
        } else {
            text
        };
        return crate::stdout::print(&out).context("cannot write to stdout");
    };
    if !ctx.quiet && !req.json {
        eprint!("{text}");
    }
    image::write(&img, &changes, &dest, req.verify, ctx)?;
    if req.json {
        crate::stdout::print(&format!("{}\n", serde_json::to_string_pretty(&report)?))
            .context("cannot write to stdout")?;
    }
    ctx.note(format_args!(
        "{}: {} into {} ({} file(s) edited, {} created)",
        img.name,
        if req.entry {
            format!("boot entries for {}", root_names.join(", "))
        } else {
            format!("subroot={}", req.root.unwrap_or_default())
        },
        dest.describe(),
        report.edits.len(),
        report.created.len()
    ));
    Ok(())
}
