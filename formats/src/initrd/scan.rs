//! One pass over an initrd collecting what flavour detection and hook insertion need:
//! which segments hold `init`, the evidence for each flavour, the entries on the hook's
//! paths (with the content of the small ones), the local-bottom ORDER file, and per
//! segment the highest inode number, whether every entry uses the crc format and whether
//! it holds nothing but hook files (the segment `add-subroot` appends).
//!
//! The entries on the hook's paths are kept twice: as the whole initrd shows them (later
//! entries replace earlier ones of the same path, as when the kernel unpacks) and as the
//! segments before the last one show them — the initrd without the segment we appended.
//!
//! Only a bounded set of names and small file contents is kept, whatever the initrd size.

use super::hooks::{DRACUT_HOOK_DIRS, DRACUT_HOOK_NAME, IT_ORDER_PATH, IT_SCRIPT_PATH};
use super::Flavour;
use crate::block::BlockDevice;
use crate::cpio::newc::{S_IFDIR, S_IFREG};
use crate::cpio::{visit_entries, CpioHeader, Format, Segment};
use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

/// Largest hook script whose content is kept for comparison.
const MAX_HOOK_SIZE: u64 = 1 << 20;
/// Largest ORDER file accepted (real ones are a few hundred bytes).
pub const MAX_ORDER_SIZE: u64 = 1 << 20;

/// An entry on one of the paths the hook uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Segment holding it.
    pub segment: usize,
    pub mode: u32,
    /// Content of a regular file small enough to keep.
    pub content: Option<Vec<u8>>,
}

/// Per-segment facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentFacts {
    /// Highest inode number of its entries.
    pub max_ino: u32,
    /// Entries in the crc (`070702`) format.
    pub crc_entries: u64,
    /// Entries (trailers not counted).
    pub entries: u64,
    /// Entries on none of the hook's paths (or their ancestors).
    pub foreign_entries: u64,
    /// Hook scripts (the files [`hook_paths`] names).
    pub hook_files: u64,
}

impl SegmentFacts {
    /// The format to rewrite the segment in: crc only when every entry was crc.
    pub fn format(&self) -> Format {
        if self.entries > 0 && self.crc_entries == self.entries {
            Format::Crc
        } else {
            Format::Newc
        }
    }
}

/// The entries on the hook's paths as a range of segments shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathView {
    /// Entries on the hook's paths and their ancestors, by normalised name (last wins).
    pub names: BTreeMap<String, Found>,
    /// Regular files directly in `scripts/local-bottom/` (ORDER and subroot excepted).
    pub local_bottom_scripts: BTreeSet<String>,
}

/// What a segment is for, as `initrd examine` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentRole {
    /// Before the main archive (early microcode, firmware, ACPI tables).
    Early,
    /// The main archive: the last segment with an `init` entry.
    Main,
    /// The segment `add-subroot` appended: the last one, holding only hook files.
    SubrootHook,
    /// Anything else after the main archive.
    Extra,
}

impl SegmentRole {
    /// "early", "main", "subroot-hook", "extra".
    pub fn name(self) -> &'static str {
        match self {
            SegmentRole::Early => "early",
            SegmentRole::Main => "main",
            SegmentRole::SubrootHook => "subroot-hook",
            SegmentRole::Extra => "extra",
        }
    }
}

/// What one pass over an initrd found.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub segments: Vec<Segment>,
    pub facts: Vec<SegmentFacts>,
    /// Segments holding an entry named `init`, in order.
    pub init_segments: Vec<usize>,
    pub scripts_functions: bool,
    pub initramfs_conf: bool,
    pub local_bottom: bool,
    pub dracut_dir: bool,
    pub dracut_lib: bool,
    /// The hook's paths as the whole initrd shows them.
    pub all: PathView,
    /// The hook's paths as the segments before the last one (with entries) show them.
    pub before_last: PathView,
}

/// The name with leading `./` and `/` removed; `None` if it is not UTF-8 (no name the
/// hook cares about is).
pub fn normalise(name: &[u8]) -> Option<&str> {
    let mut s = std::str::from_utf8(name).ok()?;
    loop {
        if let Some(r) = s.strip_prefix("./") {
            s = r;
        } else if let Some(r) = s.strip_prefix('/') {
            s = r;
        } else {
            return Some(s);
        }
    }
}

/// Paths of the hook files an initrd may hold.
pub fn hook_paths() -> Vec<String> {
    let mut v = vec![IT_SCRIPT_PATH.to_string()];
    v.extend(
        DRACUT_HOOK_DIRS
            .iter()
            .map(|d| format!("{d}/pre-pivot/{DRACUT_HOOK_NAME}")),
    );
    v
}

/// True when `name` is one of `targets` or an ancestor directory of one.
fn on_path(name: &str, targets: &[String]) -> bool {
    !name.is_empty()
        && targets.iter().any(|t| {
            t == name || (t.starts_with(name) && t.as_bytes().get(name.len()) == Some(&b'/'))
        })
}

/// Read at most `limit` bytes of `data`; `None` if there is more.
fn read_small(data: &mut dyn Read, limit: u64, what: &str) -> Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    data.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::corrupt(format!("reading {what}: {e}")))?;
    Ok((buf.len() as u64 <= limit).then_some(buf))
}

/// Walk every entry of the initrd in `dev`.
pub fn scan<D: BlockDevice>(dev: &D) -> Result<Scan> {
    let mut targets = hook_paths();
    targets.push(IT_ORDER_PATH.to_string());
    let hooks = hook_paths();
    let mut sc = Scan::default();
    let segments = visit_entries(dev, |ctx, h: &CpioHeader, data| {
        if sc.facts.len() <= ctx.segment {
            sc.facts.resize(ctx.segment + 1, SegmentFacts::default());
            // A new segment: what came before is the view without it.
            sc.before_last = sc.all.clone();
        }
        let name = normalise(&h.name);
        let ours = name.filter(|n| on_path(n, &targets));
        if let Some(f) = sc.facts.get_mut(ctx.segment) {
            f.entries += 1;
            f.max_ino = f.max_ino.max(h.ino);
            if h.format == Format::Crc {
                f.crc_entries += 1;
            }
            match ours {
                None => f.foreign_entries += 1,
                Some(n) if hooks.iter().any(|p| p == n) => f.hook_files += 1,
                Some(_) => {}
            }
        }
        let Some(name) = name else {
            return Ok(());
        };
        match name {
            "init" if sc.init_segments.last() != Some(&ctx.segment) => {
                sc.init_segments.push(ctx.segment);
            }
            "scripts/functions" => sc.scripts_functions = true,
            "conf/initramfs.conf" => sc.initramfs_conf = true,
            _ => {}
        }
        if name == "scripts/local-bottom" || name.starts_with("scripts/local-bottom/") {
            sc.local_bottom = true;
        }
        if ["lib/dracut", "usr/lib/dracut"]
            .iter()
            .any(|d| name == *d || name.strip_prefix(d).is_some_and(|r| r.starts_with('/')))
        {
            sc.dracut_dir = true;
        }
        if name.rsplit('/').next() == Some("dracut-lib.sh") {
            sc.dracut_lib = true;
        }
        let regular = h.file_type() == S_IFREG;
        if let Some(script) = name.strip_prefix("scripts/local-bottom/") {
            if regular && !script.contains('/') && script != "ORDER" && script != "subroot" {
                sc.all.local_bottom_scripts.insert(script.to_string());
            }
        }
        if ours.is_some() {
            let content = if !regular {
                None
            } else if name == IT_ORDER_PATH {
                let c = read_small(data, MAX_ORDER_SIZE, name)?;
                if c.is_none() {
                    return Err(Error::unsupported(format!(
                        "{name} holds {} bytes, more than the {MAX_ORDER_SIZE} accepted for an ORDER file",
                        h.filesize
                    )));
                }
                c
            } else {
                read_small(data, MAX_HOOK_SIZE, name)?
            };
            sc.all.names.insert(
                name.to_string(),
                Found {
                    segment: ctx.segment,
                    mode: h.mode,
                    content,
                },
            );
        }
        Ok(())
    })?;
    sc.facts.resize(segments.len(), SegmentFacts::default());
    sc.segments = segments;
    Ok(sc)
}

impl Scan {
    /// The flavour the evidence points to.
    pub fn flavour(&self) -> Flavour {
        let it = self.initramfs_conf && (self.scripts_functions || self.local_bottom);
        let dracut = self.dracut_dir && self.dracut_lib;
        match (it, dracut) {
            (true, false) => Flavour::InitramfsTools,
            (false, true) => Flavour::Dracut,
            _ => Flavour::Other,
        }
    }

    /// What was found, for an error about an unrecognised initrd.
    pub fn describe(&self) -> String {
        let yes = |b: bool| if b { "found" } else { "missing" };
        format!(
            "{} segment(s), {} entries; initramfs-tools markers: conf/initramfs.conf {}, \
             scripts/functions {}, scripts/local-bottom {}; dracut markers: lib/dracut or \
             usr/lib/dracut {}, dracut-lib.sh {}",
            self.segments.len(),
            self.facts.iter().map(|f| f.entries).sum::<u64>(),
            yes(self.initramfs_conf),
            yes(self.scripts_functions),
            yes(self.local_bottom),
            yes(self.dracut_dir),
            yes(self.dracut_lib),
        )
    }

    /// The segment `add-subroot` appended, if the initrd ends with one: the last segment,
    /// after the main archive, holding a hook script and nothing but hook files and the
    /// directories leading to them.
    pub fn appended_hook(&self) -> Option<usize> {
        let last = self.segments.len().checked_sub(1)?;
        let main = *self.init_segments.last()?;
        let f = self.facts.get(last)?;
        (last > main && f.entries > 0 && f.foreign_entries == 0 && f.hook_files > 0).then_some(last)
    }

    /// The hook's paths as the initrd shows them without the segment `add-subroot`
    /// appended (the whole initrd when there is none).
    pub fn base(&self) -> &PathView {
        if self.appended_hook().is_some() {
            &self.before_last
        } else {
            &self.all
        }
    }

    /// What segment `index` is for.
    pub fn role(&self, index: usize) -> SegmentRole {
        match self.init_segments.last() {
            _ if self.appended_hook() == Some(index) => SegmentRole::SubrootHook,
            Some(&main) if index == main => SegmentRole::Main,
            Some(&main) if index < main => SegmentRole::Early,
            _ => SegmentRole::Extra,
        }
    }

    /// The highest inode number of the segments before `end`.
    pub fn max_ino_before(&self, end: usize) -> u32 {
        self.facts
            .iter()
            .take(end)
            .map(|f| f.max_ino)
            .max()
            .unwrap_or(0)
    }

    /// The segment holding the main archive: the last one with an `init` entry.
    pub fn main_segment(&self) -> Result<usize> {
        self.init_segments.last().copied().ok_or_else(|| {
            Error::unsupported(format!(
                "no segment of the initrd holds an `init` entry ({} segment(s)): cannot tell which archive is the main one",
                self.segments.len()
            ))
        })
    }

    /// True when any subroot hook file is present.
    pub fn hook_present(&self) -> bool {
        self.all.hook_present()
    }
}

impl PathView {
    /// True when `name` (normalised) exists as a directory.
    pub fn is_dir(&self, name: &str) -> bool {
        self.names
            .get(name)
            .is_some_and(|f| f.mode & 0o170000 == S_IFDIR)
    }

    /// The dracut hook directory: the first of [`DRACUT_HOOK_DIRS`] whose `pre-pivot`
    /// subdirectory (or, failing that, itself) is a directory entry.
    pub fn dracut_hook_dir(&self) -> Result<&'static str> {
        DRACUT_HOOK_DIRS
            .iter()
            .find(|d| self.is_dir(&format!("{d}/pre-pivot")))
            .or_else(|| DRACUT_HOOK_DIRS.iter().find(|d| self.is_dir(d)))
            .copied()
            .ok_or_else(|| {
                Error::unsupported(format!(
                    "dracut initrd without a hook directory: none of /{} exists",
                    DRACUT_HOOK_DIRS.join(", /")
                ))
            })
    }

    /// True when any subroot hook file is present.
    pub fn hook_present(&self) -> bool {
        hook_paths().iter().any(|p| self.names.contains_key(p))
    }
}
