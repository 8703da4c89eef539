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
//!
//! # Stopping early in a sorted archive ([`Depth::SortedPrefix`], the default)
//!
//! Decoding the whole main segment (100+ MB of cpio behind 30-50 MB of zstd) costs far
//! more than everything else `add-subroot` does, yet the result depends on a handful of
//! paths only ([`needed_bound`]): `init`, the flavour markers (`conf/initramfs.conf`,
//! `scripts/functions`, `scripts/local-bottom/…`, `lib/dracut/…`, `usr/lib/dracut/…`,
//! `{,usr/}lib/dracut-lib.sh`) and the hook's paths (the initramfs-tools ones are under
//! `scripts/local-bottom/`; the dracut ones under the hook directories dracut uses). When
//! `init` is initramfs-tools' own script, dracut's markers cannot change the flavour, and
//! the walk of an initramfs-tools initrd stops after `scripts/local-bottom/` (some 40 KB
//! into a Debian one, instead of 2 MB at `usr/lib/dracut`).
//! Both generators write their archive from a byte-sorted file list: `mkinitramfs` runs
//! `find . | LC_ALL=C sort | cpio -o -H newc`, dracut exports `LC_ALL=C` and runs
//! `find . -print0 | sort -z | cpio --null -o -H newc` (or `dracut-cpio` on the same
//! list). The bulk of the data (`usr/lib/modules`, `usr/lib/firmware`) sorts after every
//! needed path. So once a segment's names have been in strictly increasing byte order
//! from its first entry and the current name sorts after every needed path, no later
//! entry of that segment can be a needed path — unless the archive is not sorted after
//! all, which nothing in a sorted prefix of some hundred names from these generators
//! suggests. The walk then skips the rest of the segment without decoding it, where its
//! end can be found without decoding ([`can_skip`]: zstd from its block headers; gzip by
//! finding the segments behind it from the end of the file, `cpio::tailprobe`: a segment
//! starting more than a MiB before the end of the file is then not seen, which neither
//! generator writes behind the main archive). Any name out of order (equal
//! or smaller than the one before, as in a second archive in the same segment or a
//! hand-made archive) makes that segment decoded to its end, as with [`Depth::Full`]. The
//! segments that follow (an appended hook, anything else) are always walked.
//!
//! What the prefix rule cannot see: a needed path repeated after the stop point in a
//! segment whose names were sorted up to there (a hand-edited archive). `add-subroot
//! --full-scan` ([`Depth::Full`]) reads everything for such cases, and `initrd examine`
//! always does. A skipped part is also not checked for damage (the kernel and `initrd
//! examine` do check it), and per-segment facts (entry counts, highest inode number,
//! entry format) cover only the decoded part; [`Segment::complete`] tells which.

use super::hooks::{DRACUT_HOOK_DIRS, DRACUT_HOOK_NAME, IT_ORDER_PATH, IT_SCRIPT_PATH};
use super::Flavour;
use crate::block::BlockDevice;
use crate::cpio::newc::{S_IFDIR, S_IFREG};
use crate::cpio::{
    can_skip, visit_entries, walk_entries, CpioHeader, EntryContext, Flow, Format, Segment,
};
use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

/// Largest hook script whose content is kept for comparison.
const MAX_HOOK_SIZE: u64 = 1 << 20;
/// Largest ORDER file accepted (real ones are a few hundred bytes).
pub const MAX_ORDER_SIZE: u64 = 1 << 20;
/// Where dracut installs `dracut-lib.sh` (its `99base` module: `/lib/dracut-lib.sh`, seen
/// as `usr/lib/dracut-lib.sh` in a merged-/usr initrd).
const DRACUT_LIB_PATHS: [&str; 2] = ["lib/dracut-lib.sh", "usr/lib/dracut-lib.sh"];
/// The dracut hook directory that is used only when `dracut-lib.sh` names it (dracut
/// 057+ sets `hookdir=/var/lib/dracut/hooks`; older ones `/lib/dracut/hooks`).
const DRACUT_VAR_HOOKDIR: &str = "var/lib/dracut/hooks";

/// How much of each segment [`scan_with`] decodes (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Depth {
    /// Skip the rest of a segment whose names, sorted so far, have passed every needed
    /// path.
    #[default]
    SortedPrefix,
    /// Decode every entry of every segment.
    Full,
}

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
    /// The last `init` entry is initramfs-tools' own `init` script ([`is_initramfs_tools_init`]):
    /// the boot runs initramfs-tools' scripts whatever dracut files the initrd also holds.
    pub init_is_initramfs_tools: bool,
    /// A `dracut-lib.sh` names `/var/lib/dracut/hooks` (dracut 057+): that directory is
    /// one of the initrd's hook directories.
    pub dracut_var_hooks: bool,
    /// The hook's paths as the whole initrd shows them.
    pub all: PathView,
    /// The hook's paths as the segments before the last one (with entries) show them.
    pub before_last: PathView,
    /// For each segment whose rest was skipped, what the decision assumed (flavour,
    /// [`Scan::dracut_var_hooks`]); checked against the final result.
    skip_assumed: Vec<(Flavour, bool)>,
}

/// The name with leading `./` and `/` removed; `None` if it is not UTF-8 (no name the
/// hook cares about is).
pub fn normalise(name: &[u8]) -> Option<&str> {
    std::str::from_utf8(normalise_bytes(name)).ok()
}

/// The name with leading `./` and `/` removed.
fn normalise_bytes(mut s: &[u8]) -> &[u8] {
    loop {
        if let Some(r) = s.strip_prefix(b"./") {
            s = r;
        } else if let Some(r) = s.strip_prefix(b"/") {
            s = r;
        } else {
            return s;
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

/// True when `text` is initramfs-tools' `init` script: a shell script that sources
/// `/conf/initramfs.conf` and `/scripts/functions` (every initramfs-tools since 2005 does,
/// as its first steps; dracut's and systemd's `init` do neither).
pub fn is_initramfs_tools_init(text: &[u8]) -> bool {
    text.starts_with(b"#!")
        && contains(text, b". /conf/initramfs.conf")
        && contains(text, b". /scripts/functions")
}

/// True when `needle` occurs in `text`.
fn contains(text: &[u8], needle: &[u8]) -> bool {
    text.windows(needle.len()).any(|w| w == needle)
}

/// Read at most `limit` bytes of `data`; `None` if there is more.
fn read_small(data: &mut dyn Read, limit: u64, what: &str) -> Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    data.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::corrupt(format!("reading {what}: {e}")))?;
    Ok((buf.len() as u64 <= limit).then_some(buf))
}

/// Walk the initrd in `dev` ([`Depth::SortedPrefix`]).
pub fn scan<D: BlockDevice>(dev: &D) -> Result<Scan> {
    scan_with(dev, Depth::SortedPrefix)
}

/// Walk the initrd in `dev`, decoding as much as `depth` says. A [`Depth::SortedPrefix`]
/// walk whose skip decisions a later segment invalidates (it changes the flavour or the
/// dracut hook directories the decision assumed) is redone in full.
pub fn scan_with<D: BlockDevice>(dev: &D, depth: Depth) -> Result<Scan> {
    let sc = walk(dev, depth)?;
    if sc.skip_assumed.iter().any(|a| *a != sc.assumption()) {
        return walk(dev, Depth::Full);
    }
    Ok(sc)
}

fn walk<D: BlockDevice>(dev: &D, depth: Depth) -> Result<Scan> {
    let mut targets = hook_paths();
    targets.push(IT_ORDER_PATH.to_string());
    let hooks = hook_paths();
    let mut sc = Scan::default();
    // The previous name of the current segment while its names are strictly increasing.
    let mut prev: Option<Vec<u8>> = None;
    let mut sorted = true;
    let mut on_entry = |ctx: &EntryContext, h: &CpioHeader, data: &mut dyn Read| -> Result<Flow> {
        if sc.facts.len() <= ctx.segment {
            sc.facts.resize(ctx.segment + 1, SegmentFacts::default());
            // A new segment: what came before is the view without it.
            sc.before_last = sc.all.clone();
            prev = None;
            sorted = true;
        }
        let key = normalise_bytes(&h.name);
        if prev.as_deref().is_some_and(|p| key <= p) {
            sorted = false;
        }
        if sorted {
            prev = Some(key.to_vec());
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
        if let Some(name) = name {
            sc.record(ctx.segment, name, h, data, ours.is_some())?;
        }
        if depth == Depth::SortedPrefix
            && sorted
            && can_skip(ctx.compression)
            && sc.past_needed(key)
        {
            sc.skip_assumed.push(sc.assumption());
            return Ok(Flow::SkipSegment);
        }
        Ok(Flow::Continue)
    };
    // A full walk never skips: `visit_entries` spares it the skipping walk's look-ahead for
    // segment ends (a thread per zstd or gzip segment whose answer would go unused).
    let segments = match depth {
        Depth::SortedPrefix => walk_entries(dev, &mut on_entry)?,
        Depth::Full => visit_entries(dev, |c, h, d| on_entry(c, h, d).map(|_| ()))?,
    };
    sc.facts.resize(segments.len(), SegmentFacts::default());
    sc.segments = segments;
    Ok(sc)
}

/// The smallest name sorting after `dir` and everything under it (`dir/…`, as well as
/// `dir-x`, which sorts between them).
fn after_tree(dir: &str) -> Vec<u8> {
    let mut b = dir.as_bytes().to_vec();
    b.push(b'/' + 1);
    b
}

impl Scan {
    /// Take note of entry `name` (normalised) of segment `segment` with header `h`;
    /// `ours` when it is on one of the hook's paths.
    fn record(
        &mut self,
        segment: usize,
        name: &str,
        h: &CpioHeader,
        data: &mut dyn Read,
        ours: bool,
    ) -> Result<()> {
        let regular = h.file_type() == S_IFREG;
        match name {
            "init" => {
                if self.init_segments.last() != Some(&segment) {
                    self.init_segments.push(segment);
                }
                self.init_is_initramfs_tools = regular
                    && read_small(data, MAX_HOOK_SIZE, name)?
                        .is_some_and(|text| is_initramfs_tools_init(&text));
                return Ok(());
            }
            "scripts/functions" => self.scripts_functions = true,
            "conf/initramfs.conf" => self.initramfs_conf = true,
            _ => {}
        }
        if name == "scripts/local-bottom" || name.starts_with("scripts/local-bottom/") {
            self.local_bottom = true;
        }
        if ["lib/dracut", "usr/lib/dracut"]
            .iter()
            .any(|d| name == *d || name.strip_prefix(d).is_some_and(|r| r.starts_with('/')))
        {
            self.dracut_dir = true;
        }
        if DRACUT_LIB_PATHS.contains(&name) {
            self.dracut_lib = true;
            if regular {
                let needle = format!("/{DRACUT_VAR_HOOKDIR}");
                let text = read_small(data, MAX_HOOK_SIZE, name)?.unwrap_or_default();
                if contains(&text, needle.as_bytes()) {
                    self.dracut_var_hooks = true;
                }
            }
            return Ok(());
        }
        if let Some(script) = name.strip_prefix("scripts/local-bottom/") {
            if regular && !script.contains('/') && script != "ORDER" && script != "subroot" {
                self.all.local_bottom_scripts.insert(script.to_string());
            }
        }
        if ours {
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
            self.all.names.insert(
                name.to_string(),
                Found {
                    segment,
                    mode: h.mode,
                    content,
                },
            );
        }
        Ok(())
    }

    /// What a skip decision assumes about the rest of the initrd.
    fn assumption(&self) -> (Flavour, bool) {
        (self.flavour(), self.dracut_var_hooks)
    }

    /// True when no name sorting after `key` can change the result, given what was seen:
    /// the flavour markers and `init` are behind, and so are the hook's paths of the
    /// flavour found (an initrd of neither flavour is read to its end). When `init` is
    /// initramfs-tools' own script and its markers are behind, the dracut markers cannot
    /// change the flavour ([`Scan::flavour`]) and are not waited for.
    fn past_needed(&self, key: &[u8]) -> bool {
        let it_exact = ["init", "conf/initramfs.conf", "scripts/functions"];
        let it_trees = ["scripts/local-bottom"];
        let dracut_trees = ["lib/dracut", "usr/lib/dracut"];
        let before = |exact: &[&str], trees: &[&str]| {
            exact.iter().any(|p| key <= p.as_bytes())
                || trees.iter().any(|d| key < &after_tree(d)[..])
        };
        if before(&it_exact, &it_trees) {
            return false;
        }
        let flavour = self.flavour();
        let it_init = self.init_is_initramfs_tools && flavour == Flavour::InitramfsTools;
        if !it_init && before(&DRACUT_LIB_PATHS, &dracut_trees) {
            return false;
        }
        match flavour {
            // Its hook's paths are under scripts/local-bottom/, behind already.
            Flavour::InitramfsTools => true,
            Flavour::Dracut => self.dracut_hook_paths().iter().all(|p| key > p.as_bytes()),
            Flavour::Other => false,
        }
    }

    /// The dracut hook directories of this initrd: [`DRACUT_HOOK_DIRS`] without
    /// `/var/lib/dracut/hooks` unless its `dracut-lib.sh` names it.
    pub fn dracut_hook_dirs(&self) -> Vec<&'static str> {
        DRACUT_HOOK_DIRS
            .into_iter()
            .filter(|d| self.dracut_var_hooks || *d != DRACUT_VAR_HOOKDIR)
            .collect()
    }

    /// Paths of the dracut hook script in this initrd's hook directories.
    fn dracut_hook_paths(&self) -> Vec<String> {
        self.dracut_hook_dirs()
            .iter()
            .map(|d| format!("{d}/pre-pivot/{DRACUT_HOOK_NAME}"))
            .collect()
    }

    /// Paths of a hook script of this initrd's flavour (of either flavour for
    /// [`Flavour::Other`]).
    pub fn flavour_hook_paths(&self) -> Vec<String> {
        match self.flavour() {
            Flavour::InitramfsTools => vec![IT_SCRIPT_PATH.to_string()],
            Flavour::Dracut => self.dracut_hook_paths(),
            Flavour::Other => hook_paths(),
        }
    }

    /// True when every segment was decoded to its end.
    pub fn is_complete(&self) -> bool {
        self.segments.iter().all(|s| s.complete)
    }

    /// The dracut hook directory: the first of [`Scan::dracut_hook_dirs`] whose
    /// `pre-pivot` subdirectory (or, failing that, itself) is a directory entry of the
    /// initrd without the segment `add-subroot` appended.
    pub fn dracut_hook_dir(&self) -> Result<&'static str> {
        self.base().dracut_hook_dir(&self.dracut_hook_dirs())
    }

    /// The flavour the evidence points to: the markers of one flavour and not the other's,
    /// or the markers of both with initramfs-tools' own `init` (which runs only
    /// initramfs-tools' scripts).
    pub fn flavour(&self) -> Flavour {
        let it = self.initramfs_conf && (self.scripts_functions || self.local_bottom);
        let dracut = self.dracut_dir && self.dracut_lib;
        match (it, dracut) {
            (true, false) => Flavour::InitramfsTools,
            (true, true) if self.init_is_initramfs_tools => Flavour::InitramfsTools,
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

    /// The segment holding the main archive: the last one with an `init` entry.
    pub fn main_segment(&self) -> Result<usize> {
        self.init_segments.last().copied().ok_or_else(|| {
            Error::unsupported(format!(
                "no segment of the initrd holds an `init` entry ({} segment(s)): cannot tell which archive is the main one",
                self.segments.len()
            ))
        })
    }

    /// True when a subroot hook file of the initrd's flavour is present.
    pub fn hook_present(&self) -> bool {
        let paths = self.flavour_hook_paths();
        paths.iter().any(|p| self.all.names.contains_key(p))
    }
}

impl PathView {
    /// True when `name` (normalised) exists as a directory.
    pub fn is_dir(&self, name: &str) -> bool {
        self.names
            .get(name)
            .is_some_and(|f| f.mode & 0o170000 == S_IFDIR)
    }

    /// The first of `dirs` whose `pre-pivot` subdirectory (or, failing that, itself) is a
    /// directory entry.
    fn dracut_hook_dir(&self, dirs: &[&'static str]) -> Result<&'static str> {
        dirs.iter()
            .find(|d| self.is_dir(&format!("{d}/pre-pivot")))
            .or_else(|| dirs.iter().find(|d| self.is_dir(d)))
            .copied()
            .ok_or_else(|| {
                Error::unsupported(format!(
                    "dracut initrd without a hook directory: none of /{} exists",
                    dirs.join(", /")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::is_initramfs_tools_init;

    #[test]
    fn initramfs_tools_init_is_recognised_by_what_it_sources() {
        let it = b"#!/bin/sh\n\n# Default PATH differs between shells\nexport PATH=/sbin:/usr/sbin:/bin:/usr/bin\n. /conf/initramfs.conf\nfor conf in conf/conf.d/*; do\n\t[ -f \"${conf}\" ] && . \"${conf}\"\ndone\n. /scripts/functions\n";
        assert!(is_initramfs_tools_init(it));
        // dracut's shell init, systemd (an ELF binary), and scripts with only one of them.
        assert!(!is_initramfs_tools_init(
            b"#!/bin/sh\n. /lib/dracut-lib.sh\nsource_hook cmdline\n"
        ));
        assert!(!is_initramfs_tools_init(
            b"\x7fELF\x02\x01\x01. /conf/initramfs.conf . /scripts/functions"
        ));
        assert!(!is_initramfs_tools_init(
            b"#!/bin/sh\n. /conf/initramfs.conf\n"
        ));
        assert!(!is_initramfs_tools_init(
            b"#!/bin/sh\n. /scripts/functions\n"
        ));
        assert!(!is_initramfs_tools_init(b""));
    }
}
