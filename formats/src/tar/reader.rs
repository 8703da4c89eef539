//! [`TarTree`]: a tar archive (plain, or compressed with any codec
//! [`crate::cpio::detect`] knows: gzip, zstd, xz, lzma, lz4 legacy, bzip2) read as a
//! [`TreeSource`].
//!
//! Why not the `tar` crate: it does not decode GNU sparse files in pax form (formats 0.0,
//! 0.1 and 1.0 — what `tar -S --format=pax` writes), so a sparse member would come out as
//! its raw map-and-data bytes; its pax extension iterator reads whole extended headers of
//! any claimed size into memory; and its entries are not restartable over a compressed
//! stream the way a two-pass walk needs. The format is small, and [`super::header`]
//! already holds its layout, so the reader parses it itself ([`super::parse`],
//! [`super::stream`]): v7, ustar (with prefix), GNU (long names and links, old sparse,
//! base-256 numbers, atime/ctime), pax local and global headers (`path`, `linkpath`,
//! `uid`, `gid`, `size`, nanosecond `mtime`/`atime`/`ctime`, `SCHILY.xattr.*`,
//! `LIBARCHIVE.xattr.*`, `SCHILY.acl.access`/`default` as `system.posix_acl_*` xattrs,
//! `SCHILY.devmajor`/`devminor`, GNU sparse 0.0/0.1/1.0).
//!
//! Semantics (what `tar -x` into an empty directory produces):
//! - names lose `./` prefixes and trailing `/`; `.`/`./` is the root; an absolute name or
//!   one with `..`, `.` or empty components is refused ([`Error::Corrupt`]) before any
//!   entry is visited ([`check_relative_path`]);
//! - when a path occurs more than once the last occurrence wins;
//! - hard-link members share a `hardlink_id` with their target (an earlier member); the
//!   first member of the group is visited with the content, later ones with the same
//!   metadata and size and no content (`None`): their data is the first one's;
//! - atime and ctime default to the mtime when the archive does not record them;
//! - directories named only by their children's paths are synthesised: mode 0755, owner
//!   0:0, all times 0, no xattrs; a directory without an explicit entry that is later
//!   given one gets that entry's metadata;
//! - entries are visited in archive order, the root first, and every directory is
//!   visited (with its final metadata) just before the first entry inside it, so parents
//!   always come before children even when the archive lists `a/b/c` before `a/`.
//!
//! The walk reads the archive twice: headers only (seeking over data in a plain archive,
//! decompressing and discarding it in a compressed one), then everything, handing each
//! file's data out as a [`Content`] over the stream (sparse files with their holes). The
//! first pass is what makes the above possible in one stream order: it learns which
//! paths are superseded, which files are hard-link targets (the first member must carry
//! the `hardlink_id` before the link is seen) and each directory's final metadata.
//! Memory grows with the number of members (their paths) and directories' metadata,
//! never with file sizes.

use super::stream::{Member, Members, Sparse};
use crate::block::BlockDevice;
use crate::cpio::{detect, Compression, Decoder, Members as GzMembers, PeekReader};
use crate::tree::{
    check_relative_path, is_under, Content, Entry, Kind, Metadata, TreeSource, Visitor,
};
use crate::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::io::Read;

/// Longest member name accepted (paths are kept for the whole walk).
pub const MAX_PATH: usize = 64 << 10;

/// Longest symlink target accepted.
pub const MAX_LINK_TARGET: usize = 64 << 10;

/// A tar archive read as a tree (see the module documentation).
#[derive(Debug)]
pub struct TarTree<D> {
    dev: D,
}

impl<D: BlockDevice> TarTree<D> {
    /// The archive held in `dev` (nothing is read until [`TreeSource::walk`]).
    pub fn new(dev: D) -> Self {
        TarTree { dev }
    }

    /// The device holding the archive.
    pub fn device(&self) -> &D {
        &self.dev
    }
}

/// Whether `dev` holds a tar archive: its first (decompressed) block is a header with a
/// valid checksum. Returns the compression around it, or `None` when it is no tar.
pub fn probe<D: BlockDevice>(dev: &D) -> Result<Option<Compression>> {
    let mut peek = PeekReader::new(crate::block::DeviceIo::new(dev));
    let head = peek
        .peek(6)
        .map_err(|e| Error::io("tar: reading the first bytes", e))?;
    let c = match detect(head) {
        Ok(c) => c.unwrap_or(Compression::None),
        Err(_) => return Ok(None),
    };
    let Ok(mut dec) = Decoder::new(c, peek, GzMembers::All) else {
        return Ok(None);
    };
    let mut b = [0u8; super::header::BLOCK];
    let mut got = 0;
    while got < b.len() {
        match dec.read(&mut b[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    Ok((got == b.len() && is_header(&b)).then_some(c))
}

/// True when `block` is a tar header: a valid checksum, and a ustar/GNU magic or a
/// plausible v7 header (NUL-terminated octal mode).
pub fn is_header(block: &[u8; super::header::BLOCK]) -> bool {
    if block.iter().all(|&b| b == 0) || !super::parse::checksum_ok(block) {
        return false;
    }
    let magic = &block[257..263];
    magic == b"ustar\0"
        || magic == b"ustar "
        || super::parse::number(&block[100..108], "mode", 0).is_ok()
}

/// The tree path of a member name; the reason when it is not a safe relative path.
pub fn member_path(name: &[u8]) -> std::result::Result<Vec<u8>, &'static str> {
    if name.len() > MAX_PATH {
        return Err("is longer than 64 KiB");
    }
    if name.first() == Some(&b'/') {
        return Err("is absolute");
    }
    let mut p = name;
    loop {
        if let Some(r) = p.strip_prefix(b"./") {
            p = r;
        } else if let Some(r) = p.strip_prefix(b"/").filter(|_| p.len() < name.len()) {
            p = r;
        } else {
            break;
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

fn kind_of(typeflag: u8) -> Kind {
    match typeflag {
        b'2' => Kind::Symlink,
        b'3' => Kind::CharDevice,
        b'4' => Kind::BlockDevice,
        b'5' => Kind::Dir,
        b'6' => Kind::Fifo,
        _ => Kind::File,
    }
}

/// What the first pass learns about one member.
struct Info {
    path: Vec<u8>,
    /// Visited: the last occurrence of its path (directories: visited once, when first
    /// needed, with the metadata of their last occurrence).
    keep: bool,
    /// Index into the hard-link groups.
    group: Option<usize>,
}

/// A hard-link group.
struct Group {
    /// Member index of the data holder (the first member, not a link).
    holder: usize,
    /// Members that are visited.
    kept: usize,
    /// The holder's entry, once visited (later members copy it).
    entry: Option<Entry>,
}

fn bad_name(m: &Member, why: &str) -> Error {
    Error::corrupt(format!(
        "tar: member at offset {}: name {:?} {why}",
        m.offset,
        String::from_utf8_lossy(&m.name)
    ))
}

fn synthesised(path: Vec<u8>) -> Entry {
    Entry {
        path,
        kind: Kind::Dir,
        meta: Metadata {
            perm: 0o755,
            ..Default::default()
        },
        size: 0,
        rdev: (0, 0),
        link_target: None,
        hardlink_id: None,
    }
}

fn entry_of(m: &Member, path: Vec<u8>) -> Result<Entry> {
    let kind = kind_of(m.typeflag);
    let link_target = if kind == Kind::Symlink {
        if m.link.len() > MAX_LINK_TARGET || m.link.is_empty() || m.link.contains(&0) {
            return Err(Error::corrupt(format!(
                "tar: {}: symlink target of {} bytes (1 to {MAX_LINK_TARGET}, no NUL)",
                m.shown(),
                m.link.len()
            )));
        }
        Some(m.link.clone())
    } else {
        None
    };
    Ok(Entry {
        path,
        kind,
        meta: m.meta.clone(),
        size: match kind {
            Kind::File => m.size,
            Kind::Symlink => m.link.len() as u64,
            _ => 0,
        },
        rdev: m.rdev,
        link_target,
        hardlink_id: None,
    })
}

fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'/')
        .map(move |(i, _)| &path[..i])
}

impl<D: BlockDevice> TreeSource for TarTree<D> {
    fn walk(&self, root: &[u8], visit: &mut Visitor<'_>) -> Result<()> {
        let root = member_path(root).map_err(|why| {
            Error::InvalidArgument(format!(
                "tree root {:?} {why}",
                String::from_utf8_lossy(root)
            ))
        })?;
        // Pass 1: names, last occurrences, hard-link groups, directories' metadata.
        let mut infos: Vec<Info> = Vec::new();
        let mut last: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut is_dir: Vec<bool> = Vec::new();
        let mut dirs: HashMap<Vec<u8>, Entry> = HashMap::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut members = Members::new(&self.dev)?;
        while let Some(m) = members.next_member()? {
            let path = member_path(&m.name).map_err(|why| bad_name(&m, why))?;
            let i = infos.len();
            let mut group = None;
            if m.typeflag == b'1' {
                let target = member_path(&m.link).map_err(|why| {
                    Error::corrupt(format!(
                        "tar: {}: hard-link target {:?} {why}",
                        m.shown(),
                        String::from_utf8_lossy(&m.link)
                    ))
                })?;
                let t = *last.get(&target).ok_or_else(|| {
                    Error::corrupt(format!(
                        "tar: {}: hard link to {:?}, which no earlier member is",
                        m.shown(),
                        String::from_utf8_lossy(&target)
                    ))
                })?;
                if is_dir[t] {
                    return Err(Error::corrupt(format!(
                        "tar: {}: hard link to the directory {:?}",
                        m.shown(),
                        String::from_utf8_lossy(&target)
                    )));
                }
                let g = match infos[t].group {
                    Some(g) => g,
                    None => {
                        groups.push(Group {
                            holder: t,
                            kept: 0,
                            entry: None,
                        });
                        infos[t].group = Some(groups.len() - 1);
                        groups.len() - 1
                    }
                };
                group = Some(g);
            }
            let dir = m.typeflag == b'5';
            if dir {
                let e = entry_of(&m, path.clone())?;
                dirs.insert(path.clone(), e);
            }
            if path.is_empty() && !dir {
                return Err(bad_name(
                    &m,
                    "names the root, which is not a directory here",
                ));
            }
            last.insert(path.clone(), i);
            is_dir.push(dir);
            infos.push(Info {
                path,
                keep: false,
                group,
            });
        }
        drop(members);
        for &i in last.values() {
            infos[i].keep = true;
        }
        // A path used as a parent must end up a directory.
        for p in last.keys() {
            for a in ancestors(p) {
                if let Some(&j) = last.get(a) {
                    if !is_dir[j] {
                        return Err(Error::corrupt(format!(
                            "tar: {:?} is inside {:?}, which the archive makes a {}",
                            String::from_utf8_lossy(p),
                            String::from_utf8_lossy(a),
                            if infos[j].group.is_some() {
                                "hard link"
                            } else {
                                "non-directory"
                            }
                        )));
                    }
                }
            }
        }
        for info in &infos {
            if let (true, Some(g)) = (info.keep, info.group) {
                let grp = &mut groups[g];
                if !infos[grp.holder].keep {
                    return Err(Error::unsupported(format!(
                        "tar: {:?} is a hard link to {:?}, which a later member replaces: not supported",
                        String::from_utf8_lossy(&info.path),
                        String::from_utf8_lossy(&infos[grp.holder].path)
                    )));
                }
                grp.kept += 1;
            }
        }
        // Is the walk's root there?
        let root_is_file = !root.is_empty() && last.get(&root).is_some_and(|&i| !is_dir[i]);
        if !root.is_empty()
            && !root_is_file
            && !dirs.contains_key(&root)
            && !last.keys().any(|p| is_under(p, &root))
        {
            return Err(Error::InvalidArgument(format!(
                "{:?} is not in the archive",
                String::from_utf8_lossy(&root)
            )));
        }

        // Pass 2.
        let mut emitted: HashSet<Vec<u8>> = HashSet::new();
        for a in ancestors(&root) {
            emitted.insert(a.to_vec());
        }
        if !root_is_file {
            let e = dirs
                .get(&root)
                .cloned()
                .unwrap_or_else(|| synthesised(root.clone()));
            visit(&e, None)?;
            emitted.insert(root.clone());
        }
        let mut members = Members::new(&self.dev)?;
        let mut i = 0usize;
        while let Some(m) = members.next_member()? {
            let Some(info) = infos.get(i) else {
                return Err(Error::corrupt(format!(
                    "tar: {}: the archive changed between the two passes",
                    m.shown()
                )));
            };
            i += 1;
            if !info.keep || !is_under(&info.path, &root) || emitted.contains(&info.path) {
                continue;
            }
            if member_path(&m.name).ok().as_ref() != Some(&info.path) {
                return Err(Error::corrupt(format!(
                    "tar: {}: the archive changed between the two passes",
                    m.shown()
                )));
            }
            // Parents first.
            for a in ancestors(&info.path) {
                if !emitted.contains(a) {
                    let e = dirs
                        .get(a)
                        .cloned()
                        .unwrap_or_else(|| synthesised(a.to_vec()));
                    visit(&e, None)?;
                    emitted.insert(a.to_vec());
                }
            }
            if m.typeflag == b'5' {
                let e = dirs
                    .get(&info.path)
                    .cloned()
                    .unwrap_or_else(|| synthesised(info.path.clone()));
                visit(&e, None)?;
                emitted.insert(info.path.clone());
                continue;
            }
            let group = info.group.filter(|&g| groups[g].kept >= 2);
            if m.typeflag == b'1' {
                let g = info.group.and_then(|g| groups.get(g));
                let Some(mut e) = g.and_then(|g| g.entry.clone()) else {
                    // Only possible in a subtree walk: the data went by outside it.
                    return Err(Error::unsupported(format!(
                        "tar: {}: a hard link to {:?}, outside the walked subtree {:?}",
                        m.shown(),
                        String::from_utf8_lossy(&m.link),
                        String::from_utf8_lossy(&root)
                    )));
                };
                e.path = info.path.clone();
                e.hardlink_id = group.map(|g| g as u64 + 1);
                visit(&e, None)?;
                continue;
            }
            let mut e = entry_of(&m, info.path.clone())?;
            e.hardlink_id = group.map(|g| g as u64 + 1);
            if let Some(g) = info.group {
                groups[g].entry = Some(e.clone());
            }
            if e.kind != Kind::File {
                visit(&e, None)?;
                continue;
            }
            let map = match &m.sparse {
                Sparse::No => None,
                Sparse::Map(v) => Some(v.clone()),
                Sparse::InData => Some(members.sparse_map(&m)?),
            };
            let mut c = members.content(&m, map);
            visit(&e, Some(&mut c as &mut dyn Content))?;
        }
        Ok(())
    }
}
