//! The entries of an initrd (every segment, every archive) as a [`TreeSource`], so tree
//! writers (host-directory extraction, filesystem staging) consume initrds like any tree.
//!
//! Semantics follow the kernel's unpacker, which is what boots:
//! - names are normalised (`.` is the root, `./x` and `x/` are `x`); absolute names and
//!   names with `..`, empty or `.` components are refused ([`Error::Corrupt`]) before any
//!   entry is visited, so a consumer writes nothing for a hostile archive;
//! - when a path occurs more than once, the last occurrence wins (earlier ones are not
//!   visited);
//! - hard links are the non-directory entries of one archive sharing `(dev, ino)` with
//!   `nlink > 1` (the kernel forgets links at each trailer); whichever member carries the
//!   data (GNU cpio puts it on the last, see [`super::hardlinks`]) is visited first with
//!   the content, then the other members, with the same `hardlink_id` and an empty reader;
//! - atime and ctime are the mtime (like `cpio -idm`).
//!
//! Entries are visited in archive order, except the root (`.`), which is visited first
//! (not at all when the initrd has no `.` entry: nothing describes it). The walk
//! reads the initrd twice: headers only, then data; memory grows with the entry count
//! (names and a few integers per entry), never with file sizes.

use super::hardlinks::group_hardlinks;
use super::newc::{CpioHeader, S_IFDIR, S_IFMT};
use super::segments::visit_entries;
use crate::block::{BlockDevice, Extent};
use crate::tree::{
    check_relative_path, is_under, Content, Entry, Kind, Metadata, Timestamp, TreeSource, Visitor,
};
use crate::{Error, Result};
use std::collections::HashMap;
use std::io::Read;

/// Longest symlink target accepted (PATH_MAX).
pub const MAX_LINK_TARGET: u32 = 4096;

/// An initrd read as a tree (see the module documentation).
#[derive(Debug)]
pub struct CpioTree<D> {
    dev: D,
}

impl<D: BlockDevice> CpioTree<D> {
    /// The initrd held in `dev`.
    pub fn new(dev: D) -> Self {
        CpioTree { dev }
    }

    /// The device holding the initrd.
    pub fn device(&self) -> &D {
        &self.dev
    }
}

/// The tree path of a cpio entry name: `.` and `./` prefixes and trailing slashes removed;
/// the reason when the name is not a safe relative path.
pub fn entry_path(name: &[u8]) -> std::result::Result<Vec<u8>, &'static str> {
    if name.first() == Some(&b'/') {
        return Err("is absolute");
    }
    let mut p = name;
    while let Some(rest) = p.strip_prefix(b"./") {
        p = rest;
        while let Some(r) = p.strip_prefix(b"/") {
            p = r;
        }
    }
    if p == b"." {
        p = b"";
    }
    while let Some(r) = p.strip_suffix(b"/") {
        p = r;
    }
    check_relative_path(p)?;
    Ok(p.to_vec())
}

/// What the first pass learns about one entry.
struct Info {
    path: Vec<u8>,
    /// Visited (not superseded by a later entry of the same path, not the root).
    keep: bool,
    /// Index into the hard-link groups.
    group: Option<usize>,
}

/// A hard-link group as the second pass needs it.
struct Group {
    id: u64,
    /// Entry index of the member whose content is used.
    holder: usize,
    size: u64,
    /// The holder has been visited: later members follow it directly.
    done: bool,
    /// Members met before the holder, visited right after it.
    waiting: Vec<Entry>,
}

fn located(ctx: &super::EntryContext, name: &[u8], msg: &str) -> Error {
    Error::corrupt(format!(
        "initrd segment {} at offset {}, archive {}, entry at decompressed offset {}: name {:?} {msg}",
        ctx.segment,
        ctx.segment_offset,
        ctx.archive,
        ctx.header_offset,
        String::from_utf8_lossy(name)
    ))
}

fn to_entry(h: &CpioHeader, path: Vec<u8>, kind: Kind) -> Entry {
    let t = Timestamp {
        sec: i64::from(h.mtime),
        nsec: 0,
    };
    Entry {
        path,
        kind,
        meta: Metadata {
            perm: h.mode & 0o7777,
            uid: h.uid,
            gid: h.gid,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: None,
            xattrs: Vec::new(),
            flags: None,
        },
        size: match kind {
            Kind::File | Kind::Symlink => u64::from(h.filesize),
            _ => 0,
        },
        rdev: match kind {
            Kind::CharDevice | Kind::BlockDevice => (h.rdev_major, h.rdev_minor),
            _ => (0, 0),
        },
        link_target: None,
        hardlink_id: None,
    }
}

/// A cpio entry's data as [`Content`]: all data, no holes.
struct EntryContent<'a> {
    data: &'a mut dyn Read,
    size: u64,
}

impl Read for EntryContent<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.data.read(buf)
    }
}

impl Content for EntryContent<'_> {
    fn extents(&self) -> Result<Vec<Extent>> {
        Ok(crate::tree::all_data(self.size))
    }
}

/// Visit a hard-link member that carries no data of its own.
fn visit_empty(visit: &mut Visitor<'_>, e: &Entry) -> Result<()> {
    let mut c = crate::tree::BytesContent::new(Vec::new());
    let content: Option<&mut dyn Content> =
        (e.kind == Kind::File).then_some(&mut c as &mut dyn Content);
    visit(e, content)
}

impl<D: BlockDevice> TreeSource for CpioTree<D> {
    fn walk(&self, root: &[u8], visit: &mut Visitor<'_>) -> Result<()> {
        let root = entry_path(root).map_err(|why| {
            Error::InvalidArgument(format!(
                "tree root {:?} {why}",
                String::from_utf8_lossy(root)
            ))
        })?;
        // Pass 1: names, duplicates, hard links (per archive), the root entry.
        let mut infos: Vec<Info> = Vec::new();
        let mut last: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut archive_headers: Vec<CpioHeader> = Vec::new();
        let mut archive_first = 0usize;
        let mut archive_key = (usize::MAX, u32::MAX);
        let mut root_header: Option<CpioHeader> = None;
        let flush_groups = |headers: &mut Vec<CpioHeader>,
                            first: usize,
                            infos: &mut Vec<Info>,
                            groups: &mut Vec<Group>| {
            for g in group_hardlinks(headers) {
                let holder = g.data_holder.or(g.members.first().copied());
                let Some(holder) = holder else { continue };
                if g.members.len() < 2 {
                    continue;
                }
                let size = headers.get(holder).map_or(0, |h| u64::from(h.filesize));
                let gi = groups.len();
                groups.push(Group {
                    id: gi as u64 + 1,
                    holder: first + holder,
                    size,
                    done: false,
                    waiting: Vec::new(),
                });
                for m in g.members {
                    if let Some(info) = infos.get_mut(first + m) {
                        info.group = Some(gi);
                    }
                }
            }
            headers.clear();
        };
        visit_entries(&self.dev, |ctx, h, _| {
            if (ctx.segment, ctx.archive) != archive_key {
                flush_groups(&mut archive_headers, archive_first, &mut infos, &mut groups);
                archive_key = (ctx.segment, ctx.archive);
                archive_first = infos.len();
            }
            let path = entry_path(&h.name).map_err(|why| located(ctx, &h.name, why))?;
            if Kind::from_mode(h.mode).is_none() {
                return Err(located(
                    ctx,
                    &h.name,
                    &format!("has mode {:o}, which is no file type", h.mode),
                ));
            }
            if path.is_empty() {
                if h.mode & S_IFMT != S_IFDIR {
                    return Err(located(ctx, &h.name, "is the root but not a directory"));
                }
                root_header = Some(h.clone());
            } else {
                last.insert(path.clone(), infos.len());
            }
            let mut stripped = h.clone();
            stripped.name.clear();
            stripped.name.push(b'x');
            archive_headers.push(stripped);
            infos.push(Info {
                path,
                keep: false,
                group: None,
            });
            Ok(())
        })?;
        flush_groups(&mut archive_headers, archive_first, &mut infos, &mut groups);
        for i in last.into_values() {
            if let Some(info) = infos.get_mut(i) {
                info.keep = true;
            }
        }
        drop(archive_headers);

        // The root first (when walking the whole tree and the initrd describes it).
        if let (true, Some(h)) = (root.is_empty(), &root_header) {
            visit(&to_entry(h, Vec::new(), Kind::Dir), None)?;
        }

        // Pass 2: the entries, with contents.
        let mut index = 0usize;
        visit_entries(&self.dev, |ctx, h, data| {
            let i = index;
            index += 1;
            let Some(info) = infos.get(i) else {
                return Err(located(ctx, &h.name, "appeared between the two passes"));
            };
            if !info.keep || !is_under(&info.path, &root) {
                return Ok(());
            }
            let kind = Kind::from_mode(h.mode)
                .ok_or_else(|| located(ctx, &h.name, "changed between the two passes"))?;
            let mut e = to_entry(h, info.path.clone(), kind);
            if kind == Kind::Symlink {
                if h.filesize > MAX_LINK_TARGET {
                    return Err(located(
                        ctx,
                        &h.name,
                        &format!(
                            "is a symlink with a {}-byte target (at most {MAX_LINK_TARGET})",
                            h.filesize
                        ),
                    ));
                }
                let mut t = Vec::with_capacity(h.filesize as usize);
                data.read_to_end(&mut t)
                    .map_err(|e| located(ctx, &h.name, &format!("target unreadable: {e}")))?;
                e.link_target = Some(t);
            }
            let Some(gi) = info.group else {
                let mut c = EntryContent { data, size: e.size };
                let content: Option<&mut dyn Content> =
                    (kind == Kind::File).then_some(&mut c as &mut dyn Content);
                return visit(&e, content);
            };
            let g = groups
                .get_mut(gi)
                .ok_or_else(|| located(ctx, &h.name, "lost its hard-link group"))?;
            e.hardlink_id = Some(g.id);
            if kind == Kind::File {
                e.size = g.size;
            }
            if g.holder == i {
                let mut c = EntryContent {
                    data,
                    size: u64::from(h.filesize),
                };
                let content: Option<&mut dyn Content> =
                    (kind == Kind::File).then_some(&mut c as &mut dyn Content);
                visit(&e, content)?;
                g.done = true;
                for w in std::mem::take(&mut g.waiting) {
                    visit_empty(visit, &w)?;
                }
                Ok(())
            } else if g.done {
                visit_empty(visit, &e)
            } else {
                g.waiting.push(e);
                Ok(())
            }
        })?;
        // Members whose holder was superseded or filtered out: visit them on their own.
        for g in &mut groups {
            let mut first = true;
            for mut w in std::mem::take(&mut g.waiting) {
                if first {
                    // Without the holder's data there is nothing to link to: an empty file.
                    w.size = 0;
                    first = false;
                }
                visit_empty(visit, &w)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MemoryDevice;
    use crate::cpio::{CpioWriter, Format};
    use std::process::Command;

    fn collect(dev: MemoryDevice, root: &[u8]) -> Result<Vec<(Entry, Vec<u8>)>> {
        let t = CpioTree::new(dev);
        let mut out = Vec::new();
        t.walk(root, &mut |e, c| {
            let mut data = Vec::new();
            if let Some(c) = c {
                c.read_to_end(&mut data).unwrap();
            }
            out.push((e.clone(), data));
            Ok(())
        })?;
        Ok(out)
    }

    fn archive(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut w = CpioWriter::new(Vec::new(), Format::Newc);
        for (i, (name, mode, data)) in entries.iter().enumerate() {
            let mut h = CpioHeader::new(name.as_bytes(), *mode, data.len() as u32);
            h.ino = i as u32 + 1;
            w.write_entry(&h, data).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn names_are_normalised_and_hostile_ones_refused() {
        assert_eq!(entry_path(b".").unwrap(), b"");
        assert_eq!(entry_path(b"./a/b/").unwrap(), b"a/b");
        assert_eq!(entry_path(b"a").unwrap(), b"a");
        for bad in [
            &b"/etc/passwd"[..],
            b"../../etc/passwd",
            b"a/../../b",
            b"a//b",
        ] {
            assert!(entry_path(bad).is_err(), "{bad:?}");
        }
        for bad in ["../../etc/passwd", "/etc/shadow", "a/./b"] {
            let mut visited = 0;
            let dev = MemoryDevice::from_vec(archive(&[
                ("ok", 0o100644, b"fine"),
                (bad, 0o100644, b"evil"),
            ]));
            let err = CpioTree::new(dev)
                .walk(b"", &mut |_, _| {
                    visited += 1;
                    Ok(())
                })
                .unwrap_err();
            assert!(matches!(err, Error::Corrupt(_)), "{err}");
            assert!(err.to_string().contains(bad), "{err}");
            assert_eq!(visited, 0, "{bad}: entries visited before the refusal");
        }
    }

    #[test]
    fn last_duplicate_wins_and_root_comes_first() {
        let dev = MemoryDevice::from_vec(archive(&[
            ("etc", 0o040755, b""),
            ("etc/x", 0o100644, b"old"),
            (".", 0o040700, b""),
            ("./etc/x", 0o100600, b"new"),
        ]));
        let got = collect(dev, b"").unwrap();
        let names: Vec<&[u8]> = got.iter().map(|(e, _)| &e.path[..]).collect();
        assert_eq!(names, vec![&b""[..], b"etc", b"etc/x"]);
        assert_eq!(got[0].0.meta.perm, 0o700);
        assert_eq!(got[2].1, b"new");
        assert_eq!(got[2].0.meta.perm, 0o600);
        let sub = collect(
            MemoryDevice::from_vec(archive(&[
                ("etc", 0o040755, b""),
                ("etc/x", 0o100644, b"1"),
                ("var", 0o040755, b""),
            ])),
            b"etc",
        )
        .unwrap();
        assert_eq!(sub.len(), 2);
    }

    fn have(tool: &str) -> bool {
        let ok = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(tool).is_file());
        if !ok {
            eprintln!("SKIPPED cpio tree test: reference tool `{tool}` is not installed");
            assert!(
                std::env::var_os("CI").is_none_or(|v| v != "true"),
                "CI=true requires {tool}"
            );
        }
        ok
    }

    #[test]
    fn gnu_cpio_hard_links_come_with_their_data_first() {
        if !have("cpio") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("r");
        std::fs::create_dir_all(r.join("bin")).unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(r.join("bin/a"), &data).unwrap();
        std::fs::hard_link(r.join("bin/a"), r.join("bin/b")).unwrap();
        std::fs::hard_link(r.join("bin/a"), r.join("c")).unwrap();
        std::os::unix::fs::symlink("bin/a", r.join("l")).unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg("find . | LC_ALL=C sort | cpio -o -H newc --quiet")
            .current_dir(&r)
            .output()
            .unwrap();
        assert!(out.status.success());
        let a = dir.path().join("a.cpio");
        std::fs::write(&a, &out.stdout).unwrap();
        let listing = Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::fs::File::open(&a).unwrap())
            .output()
            .unwrap();
        assert!(listing.status.success());
        let mut cpio_names: Vec<String> = String::from_utf8_lossy(&listing.stdout)
            .lines()
            .filter(|n| *n != ".")
            .map(str::to_string)
            .collect();
        let got = collect(MemoryDevice::from_vec(out.stdout), b"").unwrap();
        let mut tree_names: Vec<String> = got
            .iter()
            .filter(|(e, _)| !e.path.is_empty())
            .map(|(e, _)| String::from_utf8_lossy(&e.path).into_owned())
            .collect();
        tree_names.sort();
        cpio_names.sort();
        assert_eq!(tree_names, cpio_names);
        // GNU cpio puts the data on the last link; the tree hands it out with the first.
        let links: Vec<&(Entry, Vec<u8>)> = got
            .iter()
            .filter(|(e, _)| e.hardlink_id.is_some())
            .collect();
        assert_eq!(links.len(), 3);
        assert!(links
            .iter()
            .all(|(e, _)| e.hardlink_id == links[0].0.hardlink_id));
        assert!(links.iter().all(|(e, _)| e.size == data.len() as u64));
        assert_eq!(links[0].1, data, "the first link visited carries the data");
        assert!(links[1].1.is_empty() && links[2].1.is_empty());
        let l = got.iter().find(|(e, _)| e.path == b"l").unwrap();
        assert_eq!(l.0.link_target.as_deref(), Some(&b"bin/a"[..]));
        assert_eq!(l.0.kind, Kind::Symlink);
    }
}
