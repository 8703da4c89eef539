//! `subroot relayout --undo`: the inverse of a relayout. The system in the subroot
//! (`r0/`) moves back to the top of the root filesystem, and everything relayout added
//! goes:
//!
//! 1. `subroot=` comes off every kernel command line (the same files and editors as
//!    relayout's, [`super::bootfiles`], [`super::bootcfg`], and the ESPs'), and the boot
//!    entries `roots default --entry` added are dropped;
//! 2. the hook relayout installed for later initrd builds (initramfs-tools' script, the
//!    dracut module and its configuration) is removed;
//! 3. each initrd ending with the segment relayout appended is cut back where that
//!    segment starts: the initrd is the original byte for byte (when the original ended
//!    with an uncompressed archive whose length was not a multiple of 4, the up to 3 zero
//!    bytes relayout aligned the segment with stay; initramfs-tools, dracut and GNU cpio
//!    never write such a length). An initrd that carries the hook inside its main archive
//!    — regenerated in the relayouted system — is left, with a warning;
//! 4. the mount-point stubs (`r0/boot`, `r0/var`, `r0/home` holding only an empty
//!    `EMPTY`) and `r0/sysroot` are removed, every other entry of `r0/` is renamed back to
//!    the top (its inode, data and metadata stay), and `r0` is removed.
//!
//! Everything is edited in process by the ext editor ([`crate::ops::roots::image`]), which
//! keeps every directory's times: relayout followed by undo gives back the input's tree
//! with equal manifests. Refused (exit status 3): an image whose subroot is not a root,
//! one with other roots (remove them first), a subroot entry whose name is taken at the
//! top by something that is not a stub.

use super::bootcfg::{self, ConfigKind, LineChange, ParamEdit};
use super::bootfiles::under;
use super::esp;
use super::plan::{file_device, Edit};
use crate::cli::relayout::RelayoutArgs;
use crate::edit::deliver::DestinationArgs;
use crate::json::Named;
use crate::ops::roots::entries;
use crate::ops::roots::image::{self, refused, Changes, FsOp, RootsImage};
use crate::Ctx;
use anyhow::{Context, Result};
use serde::Serialize;
use subroot_formats::ext::ExtTree;
use subroot_formats::initrd::{self, Flavour};
use subroot_formats::manifest::escape;
use subroot_formats::tree::Kind;

/// An initrd cut back.
#[derive(Debug, Serialize)]
pub struct InitrdUndo {
    #[serde(flatten)]
    pub path: Named,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// Its size now and after the cut.
    pub size: u64,
    pub new_size: u64,
}

/// What the undo does (the `--dry-run --json` document).
#[derive(Debug, Serialize)]
pub struct UndoPlan {
    pub image: String,
    pub subroot: String,
    /// Entries moved back to the top.
    pub moves: Vec<super::plan::Move>,
    /// Entries removed (stubs, sysroot, the installed hook, entry copies, the subroot).
    #[serde(serialize_with = "crate::json::name_list")]
    pub removed: Vec<Named>,
    pub edits: Vec<Edit>,
    pub initrds: Vec<InitrdUndo>,
    /// Things left as they are, and why.
    pub warnings: Vec<String>,
}

impl UndoPlan {
    /// One fact per line.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "undo the relayout of {}: /{} back to the top",
            self.image, self.subroot
        );
        for m in &self.moves {
            let _ = writeln!(s, "  move    {} -> {} ({})", m.from, m.to, m.kind);
        }
        for r in &self.removed {
            let _ = writeln!(s, "  remove  {r}");
        }
        for e in &self.edits {
            e.write_text(&mut s, "edit", "");
        }
        for i in &self.initrds {
            let _ = writeln!(
                s,
                "  initrd  {} ({} -> {} bytes: the appended hook segment cut off)",
                i.path, i.size, i.new_size
            );
        }
        for w in &self.warnings {
            let _ = writeln!(s, "  warning {w}");
        }
        s
    }
}

fn named(key: &'static str, p: &[u8]) -> Named {
    Named::new(key, [b"/", p].concat())
}

/// Remove the boot entries `roots default --entry` added, then `subroot=`.
fn unconfigure(kind: ConfigKind, text: &str) -> Option<(String, Vec<LineChange>)> {
    let (text1, mut changes) = match kind {
        ConfigKind::GrubCfg => entries::remove_grub_entries(text).unwrap_or_default(),
        _ => (text.to_string(), Vec::new()),
    };
    let base = if changes.is_empty() { text } else { &text1 };
    match bootcfg::edit(kind, base, &ParamEdit::REMOVE_SUBROOT) {
        Some((out, more)) => {
            changes.extend(more);
            Some((out, changes))
        }
        None => (!changes.is_empty()).then_some((text1, changes)),
    }
}

/// True when `dir` of `tree` is a mount-point stub relayout made: a directory holding
/// nothing or only an empty regular file `EMPTY`.
fn is_stub(tree: &ExtTree<crate::ops::relayout::plan::Dev>, dir: &[u8]) -> Result<bool> {
    let e = tree.entry(dir)?;
    if e.kind != Kind::Dir {
        return Ok(false);
    }
    let kids = tree.children(dir)?;
    Ok(kids.is_empty()
        || (kids.len() == 1
            && kids[0].name() == b"EMPTY"
            && kids[0].kind == Kind::File
            && kids[0].size == 0))
}

/// What an undo is asked to do (from `relayout --undo` or `roots flatten`).
pub struct UndoRequest<'a> {
    pub input: &'a std::path::Path,
    pub part: crate::open::select::Which,
    /// The root that goes back to the top.
    pub subroot: &'a str,
    pub dest: DestinationArgs<'a>,
    pub dry_run: bool,
    pub json: bool,
    pub verify: crate::edit::full_check::Verify,
}

/// `subroot relayout --undo`.
pub fn run(args: &RelayoutArgs, ctx: &Ctx) -> Result<()> {
    undo(
        &UndoRequest {
            input: &args.input,
            part: (&args.part).into(),
            subroot: &args.subroot,
            dest: DestinationArgs {
                output: args.output.as_deref(),
                overlay: args.overlay.as_deref(),
                in_place: args.in_place,
                image: crate::cli::output::output_options(args.output_format, &args.qcow2),
                force: args.force,
            },
            dry_run: args.dry_run,
            json: args.json,
            verify: args.verify,
        },
        ctx,
    )
}

/// Carry out `req`.
pub fn undo(req: &UndoRequest, ctx: &Ctx) -> Result<()> {
    let name = req.input.display().to_string();
    let sub = req.subroot.trim_matches('/').to_string();
    super::plan::check_name("--subroot", &sub)?;
    let dest = match req.dry_run {
        true => None,
        false => Some(req.dest.destination(req.input)?),
    };
    let mut img = RootsImage::open(req.input, req.part.clone(), ctx)?;
    let subb = sub.as_bytes().to_vec();
    if !img.roots.contains(&subb) {
        return Err(refused(format!(
            "{name}: /{sub} is not a root (no directory holding an operating system there; the \
             roots are {}): not a relayouted image, or another --subroot",
            img.roots_list()
        )));
    }
    let others: Vec<String> = img
        .roots
        .iter()
        .filter(|r| **r != subb)
        .map(|r| escape(r))
        .collect();
    if !others.is_empty() {
        return Err(refused(format!(
            "{name}: other roots are there besides /{sub} ({}); undo leaves one system at the \
             top: remove them first (subroot roots remove)",
            others.join(", ")
        )));
    }
    img.locate_boot(&subb)?;
    let files = img.boot_files(std::slice::from_ref(&subb))?;
    let bpart = img.boot_partition();
    let mut changes = Changes::default();
    let mut plan = UndoPlan {
        image: name.clone(),
        subroot: sub.clone(),
        moves: Vec::new(),
        removed: Vec::new(),
        edits: Vec::new(),
        initrds: Vec::new(),
        warnings: Vec::new(),
    };
    let (btree, _) = img.boot_tree();

    // 1. Boot configuration (at the paths before the moves).
    for c in &files.configs {
        let on_boot_part = c.on_boot && bpart.is_some();
        let ops = if on_boot_part {
            &mut changes.boot
        } else {
            &mut changes.root
        };
        let file = c.path.rsplit(|&b| b == b'/').next().unwrap_or(&c.path);
        if c.kind == ConfigKind::BlsEntry && entries::is_root_entry_file(file) {
            plan.removed.push(named("path", &c.path));
            ops.push(FsOp::Unlink(c.path.clone()));
            continue;
        }
        if let Some((new, line_changes)) = unconfigure(c.kind, &c.text) {
            plan.edits.push(Edit {
                path: named("path", &c.path),
                partition: bpart.filter(|_| on_boot_part),
                what: c.kind,
                changes: line_changes,
            });
            ops.push(FsOp::Replace(c.path.clone(), new.into_bytes()));
        }
    }
    changes.esp = esp::edit_esp_files_with(&img.survey, &unconfigure, &name)?;
    plan.edits
        .extend(changes.esp.iter().map(|e| e.edit.clone()));

    // 2. The installed hook.
    let mut hook_files = Vec::new();
    for f in [Flavour::InitramfsTools, Flavour::Dracut] {
        hook_files.extend(initrd::installed_files(f, &[])?);
    }
    for f in &hook_files {
        let p = under(&subb, f.path.trim_start_matches('/').as_bytes());
        if img.tree.entry(&p).is_ok_and(|e| e.kind == Kind::File) {
            plan.removed.push(named("path", &p));
            changes.root.push(FsOp::Unlink(p));
        }
    }
    // The directories relayout made for them: empty once they go, and dated like the
    // root directory (relayout gives what it adds root:root 0755 and the root's mtime).
    let root_meta = img
        .tree
        .entry(b"")
        .context("cannot read the root directory")?
        .meta;
    let made_by_relayout = |m: &subroot_formats::tree::Metadata| {
        m.perm == 0o755
            && (m.uid, m.gid) == (0, 0)
            && m.mtime == root_meta.mtime
            && m.ctime == root_meta.mtime
            && m.xattrs.is_empty()
    };
    let mut gone: Vec<Vec<u8>> = plan.removed.iter().map(|n| n.bytes[1..].to_vec()).collect();
    for f in &hook_files {
        let mut dir = under(&subb, f.path.trim_start_matches('/').as_bytes());
        while let Some(cut) = dir.iter().rposition(|&b| b == b'/') {
            dir.truncate(cut);
            if dir == subb || gone.contains(&dir) {
                break;
            }
            let Ok(e) = img.tree.entry(&dir) else { break };
            let left = img
                .tree
                .children(&dir)?
                .into_iter()
                .filter(|k| !gone.contains(&k.path))
                .count();
            if e.kind != Kind::Dir || left > 0 || !made_by_relayout(&e.meta) {
                break;
            }
            plan.removed.push(named("path", &dir));
            changes.root.push(FsOp::Unlink(dir.clone()));
            gone.push(dir.clone());
        }
    }

    // 3. Initrds.
    for p in &files.initrds {
        let dev = file_device(btree, p)?;
        let size = dev.len();
        let sc = initrd::scan::scan(&dev)
            .with_context(|| format!("{name}: cannot read the initrd /{}", escape(p)))?;
        match sc.appended_hook() {
            Some(seg) => {
                let new_size = sc.segments[seg].offset;
                plan.initrds.push(InitrdUndo {
                    path: named("path", p),
                    partition: bpart,
                    size,
                    new_size,
                });
                let ops = if bpart.is_some() {
                    &mut changes.boot
                } else {
                    &mut changes.root
                };
                ops.push(FsOp::Truncate(p.clone(), new_size));
            }
            None if sc.hook_present() => plan.warnings.push(format!(
                "the initrd /{} has the subroot hook inside its main archive (built in the \
                 relayouted system): left as it is; rebuild it (update-initramfs -u or dracut -f)",
                escape(p)
            )),
            None => {}
        }
    }

    // 4. Stubs and sysroot go, the rest moves back, the subroot goes.
    let top: Vec<Vec<u8>> = img
        .tree
        .children(b"")
        .context("cannot list the root directory")?
        .into_iter()
        .map(|e| e.path)
        .collect();
    let inside = img
        .tree
        .children(&subb)
        .with_context(|| format!("cannot list /{sub}"))?;
    for e in &inside {
        let n = e.name().to_vec();
        let at_top = top.contains(&n);
        if (at_top || n == b"sysroot") && is_stub(&img.tree, &e.path)? {
            for k in img.tree.children(&e.path)? {
                plan.removed.push(named("path", &k.path));
                changes.root.push(FsOp::Unlink(k.path));
            }
            plan.removed.push(named("path", &e.path));
            changes.root.push(FsOp::Unlink(e.path.clone()));
        } else if at_top {
            return Err(refused(format!(
                "{name}: /{} cannot move back: /{} exists at the top and /{} is not an empty \
                 mount point",
                escape(&e.path),
                escape(&n),
                escape(&e.path)
            )));
        } else {
            plan.moves.push(super::plan::Move {
                from: named("from", &e.path),
                to: named("to", &n),
                kind: super::plan::kind_word(e.kind).into(),
            });
            changes.root.push(FsOp::Rename(e.path.clone(), n));
        }
    }
    plan.removed.push(named("path", &subb));
    changes.root.push(FsOp::Unlink(subb.clone()));

    let Some(dest) = dest else {
        let out = if req.json {
            format!("{}\n", serde_json::to_string_pretty(&plan)?)
        } else {
            plan.text()
        };
        return crate::stdout::print(&out).context("cannot write to stdout");
    };
    if !ctx.quiet && !req.json {
        eprint!("{}", plan.text());
    }
    image::write(&img, &changes, &dest, req.verify, ctx)?;
    if req.json {
        crate::stdout::print(&format!("{}\n", serde_json::to_string_pretty(&plan)?))
            .context("cannot write to stdout")?;
    }
    ctx.note(format_args!(
        "undid the relayout of {name} into {} (/{sub}: {} entries moved back, {} removed, {} \
         files edited, {} initrds cut back)",
        dest.describe(),
        plan.moves.len(),
        plan.removed.len(),
        plan.edits.len(),
        plan.initrds.len()
    ));
    Ok(())
}
