//! Boot configuration on FAT EFI system partitions: which files there carry kernel
//! command lines that need `subroot=DIR`, and the edits they need, read through the FAT
//! reader ([`FatTree`], read-only).
//!
//! The edits go into the plan (`esp_edits`), so `--dry-run` shows them. A real run
//! applies them with [`apply`]: the ESP is copied into a scratch file beside the output,
//! each file is overwritten in place through the FAT writer (same volume id, label and
//! layout; the file keeps its times and attributes, as the edited files of the ext
//! filesystems keep their metadata), and the scratch copy is spliced into the disk.
//!
//! Looked at (names compared case-insensitively, as FAT does): `EFI/*/grub.cfg`,
//! `grub/grub.cfg`, `grub2/grub.cfg`, `boot/grub/grub.cfg` (GRUB), and
//! `loader/entries/*.conf` (Boot Loader Specification, systemd-boot). A GRUB stub that
//! only `configfile`s the real configuration has no `linux` line and needs no edit.

use super::bootcfg::{self, ConfigKind, LineChange, ParamEdit};
use super::plan::{Dev, Edit};
use crate::edit::edit_fat::Scratch;
use crate::json::Named;
use crate::open::survey::ImageSurvey;
use crate::output::AtomicOutput;
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, Slice, Splice};
use subroot_formats::fat::{FatTree, FatVolume};
use subroot_formats::tree::{BytesContent, Entry, Kind, TreeSource, Visitor};

/// Configuration files larger than this are not boot configuration; not examined.
const MAX_CONFIG: u64 = 4 << 20;

/// One file on an ESP that needs editing.
#[derive(Debug, Clone)]
pub struct EspEdit {
    /// What the plan shows (path on the ESP, partition, line changes).
    pub edit: Edit,
    /// The partition's first byte and length on the disk.
    pub start: u64,
    pub size: u64,
    /// The file's new content.
    pub content: Vec<u8>,
}

/// The child of `dir` named `name`, ignoring ASCII case.
fn child(tree: &FatTree<Dev>, dir: &[u8], name: &str) -> Option<Entry> {
    tree.children(dir)
        .ok()?
        .into_iter()
        .find(|e| e.name().eq_ignore_ascii_case(name.as_bytes()))
}

/// The candidate files of one ESP: (path, kind).
fn candidates(tree: &FatTree<Dev>) -> Vec<(Vec<u8>, ConfigKind)> {
    let mut out = Vec::new();
    let file_in = |dir: &[u8], name: &str| {
        child(tree, dir, name)
            .filter(|e| e.kind == Kind::File)
            .map(|e| e.path)
    };
    if let Some(efi) = child(tree, b"", "EFI").filter(|e| e.kind == Kind::Dir) {
        for vendor in tree.children(&efi.path).unwrap_or_default() {
            if vendor.kind == Kind::Dir {
                out.extend(file_in(&vendor.path, "grub.cfg").map(|p| (p, ConfigKind::GrubCfg)));
            }
        }
    }
    for dir in [&["grub"][..], &["grub2"], &["boot", "grub"]] {
        let mut at = Vec::new();
        let mut ok = true;
        for d in dir {
            match child(tree, &at, d).filter(|e| e.kind == Kind::Dir) {
                Some(e) => at = e.path,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            out.extend(file_in(&at, "grub.cfg").map(|p| (p, ConfigKind::GrubCfg)));
        }
    }
    if let Some(entries) = child(tree, b"", "loader")
        .filter(|e| e.kind == Kind::Dir)
        .and_then(|l| child(tree, &l.path, "entries"))
        .filter(|e| e.kind == Kind::Dir)
    {
        for e in tree.children(&entries.path).unwrap_or_default() {
            let conf =
                e.name().len() > 5 && e.name()[e.name().len() - 5..].eq_ignore_ascii_case(b".conf");
            if e.kind == Kind::File && conf {
                out.push((e.path, ConfigKind::BlsEntry));
            }
        }
    }
    out
}

/// Every edit `param` needs on the FAT partitions (`vfat`) `survey` found.
pub fn edit_esp_files(survey: &ImageSurvey, param: &ParamEdit, name: &str) -> Result<Vec<EspEdit>> {
    edit_esp_files_with(survey, &|kind, text| bootcfg::edit(kind, text, param), name)
}

/// An edit of one configuration file: its new text and the changed lines, or `None`.
pub type EditFn<'a> = dyn Fn(ConfigKind, &str) -> Option<(String, Vec<LineChange>)> + 'a;

/// Every edit `edit` makes of the boot configuration files on the FAT partitions (`vfat`)
/// `survey` found.
pub fn edit_esp_files_with(
    survey: &ImageSurvey,
    edit: &EditFn,
    name: &str,
) -> Result<Vec<EspEdit>> {
    let mut out = Vec::new();
    for slot in &survey.slots {
        let (Some(p), Some("vfat")) = (&slot.partition, slot.fs.as_ref().map(|f| f.kind.as_str()))
        else {
            continue;
        };
        let number = p.number;
        let tree = FatTree::open(slot.device.clone()).with_context(|| {
            format!("cannot read the FAT filesystem of {name} partition {number}")
        })?;
        for (path, kind) in candidates(&tree) {
            let shown = format!("/{}", String::from_utf8_lossy(&path));
            let e = tree
                .entry(&path)
                .with_context(|| format!("{name} partition {number}: cannot read {shown}"))?;
            if e.size > MAX_CONFIG {
                continue;
            }
            let mut buf = Vec::new();
            tree.copy_file(&path, &mut buf)
                .with_context(|| format!("{name} partition {number}: cannot read {shown}"))?;
            let Ok(text) = String::from_utf8(buf) else {
                continue; // not a text configuration file
            };
            if let Some((new, changes)) = edit(kind, &text) {
                out.push(EspEdit {
                    edit: Edit {
                        path: Named::new("path", [b"/", &path[..]].concat()),
                        partition: Some(number),
                        what: kind,
                        changes,
                    },
                    start: p.start,
                    size: p.size,
                    content: new.into_bytes(),
                });
            }
        }
    }
    Ok(out)
}

/// One file as a tree: `entry` (its metadata) with `content`, at the tree's root.
/// One entry (a file with `content`, or a directory) as a tree, to put with
/// [`FatVolume::put_tree`].
pub(crate) struct OneFile<'a> {
    pub entry: Entry,
    pub content: &'a [u8],
}

impl TreeSource for OneFile<'_> {
    fn walk(&self, _root: &[u8], visit: &mut Visitor<'_>) -> subroot_formats::Result<()> {
        let mut e = self.entry.clone();
        e.path = Vec::new();
        e.size = self.content.len() as u64;
        let mut c = BytesContent::new(self.content.to_vec());
        visit(&e, Some(&mut c))
    }
}

/// Apply `edits` to `disk`: each ESP holding one is edited in a scratch copy beside
/// `output` and spliced in. Returns the new disk and the scratch files (keep them alive
/// until the output is written; they are removed when dropped).
pub fn apply(
    disk: Arc<dyn BlockDevice>,
    edits: &[EspEdit],
    output: &Path,
) -> Result<(Arc<dyn BlockDevice>, Vec<AtomicOutput>)> {
    let mut disk = disk;
    let mut scratches = Vec::new();
    let mut starts: Vec<(u64, u64)> = edits.iter().map(|e| (e.start, e.size)).collect();
    starts.sort_unstable();
    starts.dedup();
    for (i, (start, size)) in starts.into_iter().enumerate() {
        let part = Slice::new(disk.clone(), start, size)?;
        let scratch_name = output.with_file_name(format!(
            "{}.esp{i}",
            output
                .file_name()
                .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned())
        ));
        let Scratch { file, dev } = Scratch::copy_of(&part, &scratch_name)?;
        let reader = FatTree::open(&dev)?;
        let mut vol = FatVolume::open(&dev)?;
        for e in edits.iter().filter(|e| e.start == start) {
            let path = e.edit.path.bytes[1..].to_vec();
            let entry = reader
                .entry(&path)
                .with_context(|| format!("cannot read {} on the ESP", e.edit.path))?;
            let one = OneFile {
                entry,
                content: &e.content,
            };
            vol.put_tree(&one, b"", &path)
                .with_context(|| format!("cannot write {} on the ESP", e.edit.path))?;
        }
        vol.flush()?;
        drop((vol, reader));
        let dev: Arc<dyn BlockDevice> = Arc::new(dev);
        disk = Arc::new(Splice::new(disk, start, dev)?);
        scratches.push(file);
    }
    Ok((disk, scratches))
}
