//! The file-tree model: the common currency between every reader (ext, FAT, cpio, tar,
//! host directories) and every writer (mke2fs staging, FAT, cpio, tar).
//!
//! A reader produces [`Entry`] values in a stable order — depth-first, parents before
//! children, siblings sorted by name bytes — and hands file contents out lazily as a
//! [`Content`] reader that also knows its data/hole map, so copies stay sparse. Writers
//! consume the same stream; transforms (rename, add, replace content) sit in between.
//! Names are bytes: Linux file names need not be UTF-8.

use crate::block::{Extent, ExtentKind};
use crate::Result;
use std::io::Read;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl Kind {
    /// The `S_IFMT` bits of this kind.
    pub fn mode_bits(self) -> u32 {
        match self {
            Kind::Fifo => 0o010000,
            Kind::CharDevice => 0o020000,
            Kind::Dir => 0o040000,
            Kind::BlockDevice => 0o060000,
            Kind::File => 0o100000,
            Kind::Symlink => 0o120000,
            Kind::Socket => 0o140000,
        }
    }

    /// The kind encoded in a full `st_mode`, if it is a valid one.
    pub fn from_mode(mode: u32) -> Option<Kind> {
        Some(match mode & 0o170000 {
            0o010000 => Kind::Fifo,
            0o020000 => Kind::CharDevice,
            0o040000 => Kind::Dir,
            0o060000 => Kind::BlockDevice,
            0o100000 => Kind::File,
            0o120000 => Kind::Symlink,
            0o140000 => Kind::Socket,
            _ => return None,
        })
    }

    /// One letter, as `ls -l` prints it.
    pub fn letter(self) -> char {
        match self {
            Kind::File => '-',
            Kind::Dir => 'd',
            Kind::Symlink => 'l',
            Kind::CharDevice => 'c',
            Kind::BlockDevice => 'b',
            Kind::Fifo => 'p',
            Kind::Socket => 's',
        }
    }
}

/// A point in time with nanoseconds; seconds may be negative (before 1970) or beyond 2038.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

/// Everything about an entry except its name and content.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// Permission bits including suid/sgid/sticky (`mode & 0o7777`); the kind is separate.
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    /// Creation time, where the source records one (ext4 `i_crtime`).
    pub crtime: Option<Timestamp>,
    /// Extended attributes in on-disk order: full names (`security.capability`,
    /// `system.posix_acl_access` in the standard xattr ACL encoding, `user.*`) to values.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Inode flags where the source has them (ext `i_flags`), else `None`.
    pub flags: Option<u32>,
}

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the tree's root, components joined by `/`, no leading `/`;
    /// the root itself is the empty path.
    pub path: Vec<u8>,
    pub kind: Kind,
    pub meta: Metadata,
    /// Content length for files; the target length for symlinks; 0 otherwise.
    pub size: u64,
    /// Device number (major, minor) for character and block devices.
    pub rdev: (u32, u32),
    /// The target of a symlink.
    pub link_target: Option<Vec<u8>>,
    /// Entries with the same id are hard links to one inode (e.g. the ext inode number).
    /// `None` for entries that are not hard-linked (link count 1) and for directories.
    pub hardlink_id: Option<u64>,
}

impl Entry {
    /// The full `st_mode`: kind bits plus permission bits.
    pub fn mode(&self) -> u32 {
        self.kind.mode_bits() | (self.meta.perm & 0o7777)
    }

    /// The last path component (the root's name is empty).
    pub fn name(&self) -> &[u8] {
        match self.path.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.path[i + 1..],
            None => &self.path,
        }
    }

    /// The parent's path (the root and top-level entries have the empty path as parent).
    pub fn parent(&self) -> &[u8] {
        match self.path.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.path[..i],
            None => &[],
        }
    }
}

/// A file's content, read lazily, with its data/hole map.
pub trait Content: Read {
    /// The data/zero map of the whole content (holes and unwritten extents are `Zero`).
    fn extents(&self) -> Result<Vec<Extent>>;

    /// Move `n` bytes forward without returning them (over a hole, say). The default reads
    /// and discards; readers that can seek override it so skipping a hole costs nothing.
    fn skip(&mut self, n: u64) -> Result<()> {
        let mut buf = vec![0u8; 64 << 10];
        let mut copied = 0u64;
        while copied < n {
            let want = (n - copied).min(buf.len() as u64) as usize;
            let got = self
                .read(&mut buf[..want])
                .map_err(|e| crate::Error::io("skipping file content", e))?;
            if got == 0 {
                break;
            }
            copied += got as u64;
        }
        if copied != n {
            return Err(crate::Error::corrupt(format!(
                "content ended after {copied} of {n} skipped bytes"
            )));
        }
        Ok(())
    }
}

/// Content held in memory (small files, generated files, tests).
#[derive(Debug, Clone)]
pub struct BytesContent {
    data: Vec<u8>,
    pos: usize,
}

impl BytesContent {
    pub fn new(data: Vec<u8>) -> Self {
        BytesContent { data, pos: 0 }
    }
}

impl Read for BytesContent {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.data[self.pos..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

/// The extent map of content that is all data, no holes, of `len` bytes (archives and
/// in-memory or host-file contents whose holes are not known).
pub fn all_data(len: u64) -> Vec<Extent> {
    if len == 0 {
        Vec::new()
    } else {
        vec![Extent {
            offset: 0,
            len,
            kind: ExtentKind::Data,
        }]
    }
}

impl Content for BytesContent {
    fn extents(&self) -> Result<Vec<Extent>> {
        Ok(all_data(self.data.len() as u64))
    }
}

/// The visitor [`TreeSource::walk`] calls for each entry; regular files come with a reader.
pub type Visitor<'a> = dyn FnMut(&Entry, Option<&mut dyn Content>) -> Result<()> + 'a;

/// A source of a tree: visits every entry in the stable order, offering file contents.
///
/// A visitor style (rather than an iterator) lets readers lend out content readers that
/// borrow the filesystem, without self-referential types.
pub trait TreeSource {
    /// Call `visit` for every entry under `root` (a path in the tree; empty = everything),
    /// root first. For regular files, `content` reads the data; the visitor may ignore it.
    fn walk(&self, root: &[u8], visit: &mut Visitor<'_>) -> Result<()>;
}

/// The tree path of `name` in directory `dir` (the root's entries: just the name).
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Sort a directory's `(name, _)` pairs by name bytes, as every reader hands siblings out;
/// a name seen twice is a corrupt directory (`fs` and the directory's `path` named).
pub fn sort_by_name<T>(v: &mut [(Vec<u8>, T)], fs: &str, path: &[u8]) -> Result<()> {
    v.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = v.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(crate::Error::corrupt(format!(
            "{fs}: directory {:?} has two entries named {:?}",
            String::from_utf8_lossy(path),
            String::from_utf8_lossy(&w[0].0)
        )));
    }
    Ok(())
}

/// True when `path` is `root` or lies below it (every path is under the empty root).
pub fn is_under(path: &[u8], root: &[u8]) -> bool {
    root.is_empty()
        || path == root
        || (path.starts_with(root) && path.get(root.len()) == Some(&b'/'))
}

/// `path` relative to a walk's `root` (sources may report paths relative to either):
/// `usr/bin` under `usr` is `bin`, `usr` itself is empty; a path not under `root` is
/// returned as it is.
pub fn relative<'a>(path: &'a [u8], root: &[u8]) -> &'a [u8] {
    if root.is_empty() {
        return path;
    }
    if path == root {
        return &[];
    }
    match path.strip_prefix(root) {
        Some(rest) if rest.first() == Some(&b'/') => &rest[1..],
        _ => path,
    }
}

/// Check that a path from untrusted input is a safe relative path: no empty, `.` or `..`
/// components, no leading `/`, no NUL. Extraction and tree writers rely on this.
pub fn check_relative_path(path: &[u8]) -> std::result::Result<(), &'static str> {
    if path.is_empty() {
        return Ok(());
    }
    if path.contains(&0) {
        return Err("contains a NUL byte");
    }
    if path.starts_with(b"/") {
        return Err("is absolute");
    }
    for comp in path.split(|&b| b == b'/') {
        match comp {
            b"" => return Err("has an empty component"),
            b"." => return Err("has a `.` component"),
            b".." => return Err("has a `..` component"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip() {
        for k in [
            Kind::File,
            Kind::Dir,
            Kind::Symlink,
            Kind::CharDevice,
            Kind::BlockDevice,
            Kind::Fifo,
            Kind::Socket,
        ] {
            assert_eq!(Kind::from_mode(k.mode_bits() | 0o4755), Some(k));
        }
        assert_eq!(Kind::from_mode(0o755), None);
    }

    #[test]
    fn names_and_parents() {
        let mut e = Entry {
            path: b"usr/bin/ls".to_vec(),
            kind: Kind::File,
            meta: Metadata {
                perm: 0o4755,
                ..Default::default()
            },
            size: 0,
            rdev: (0, 0),
            link_target: None,
            hardlink_id: None,
        };
        assert_eq!(e.name(), b"ls");
        assert_eq!(e.parent(), b"usr/bin");
        assert_eq!(e.mode(), 0o104755);
        e.path = b"etc".to_vec();
        assert_eq!(e.parent(), b"");
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative(b"usr/bin", b"usr"), b"bin");
        assert_eq!(relative(b"usr", b"usr"), b"");
        assert_eq!(relative(b"bin", b"usr"), b"bin");
        assert_eq!(relative(b"usrx/a", b"usr"), b"usrx/a");
        assert_eq!(relative(b"a/b", b""), b"a/b");
        assert!(is_under(b"usr/bin", b"usr") && is_under(b"usr", b"usr"));
        assert!(is_under(b"anything", b""));
        assert!(!is_under(b"usrx/a", b"usr") && !is_under(b"us", b"usr"));
    }

    #[test]
    fn hostile_paths_are_refused() {
        assert!(check_relative_path(b"a/b/c").is_ok());
        for bad in [
            &b"/etc/passwd"[..],
            b"../x",
            b"a/../../x",
            b"a//b",
            b"a/./b",
            b"a\0b",
        ] {
            assert!(
                check_relative_path(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
