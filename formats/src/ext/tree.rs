//! [`ExtTree`]: an ext2/3/4 filesystem as a [`TreeSource`] — every entry in the tree
//! model's order (depth-first, parents first, siblings sorted by name bytes) with full
//! metadata, symlink targets, hard-link ids and sparse-aware file contents.
//!
//! The walk is iterative and keeps one sorted directory listing per depth level, so memory
//! grows with the largest directory on the current path, not with the filesystem. A
//! directory that appears again below itself (a loop in a corrupt filesystem) is an error.

use super::dir::DirEntry;
use super::file::FileReader;
use super::fs::{ExtFs, OpenOptions};
use super::inode::{Inode, InodeKind};
use super::time::Timestamp as ExtTimestamp;
use crate::block::{BlockDevice, Extent};
use crate::tree::{Content, Entry, Kind, Metadata, Timestamp, TreeSource, Visitor};
use crate::{Error, Result};

/// Directory nesting followed before the walk gives up (Linux paths are at most 4096
/// bytes, so a real tree is far shallower).
const MAX_DEPTH: usize = 2048;

/// The root inode of every ext filesystem.
const ROOT_INO: u32 = 2;

/// An ext filesystem read as a tree.
pub struct ExtTree<D: BlockDevice> {
    fs: ExtFs<D>,
}

impl<D: BlockDevice> std::fmt::Debug for ExtTree<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtTree").field("fs", &self.fs).finish()
    }
}

impl<D: BlockDevice> ExtTree<D> {
    /// Wrap an open filesystem.
    pub fn new(fs: ExtFs<D>) -> Self {
        ExtTree { fs }
    }

    /// Open the filesystem on `dev` (see [`ExtFs::open_with`] for `opts`).
    pub fn open(dev: D, opts: OpenOptions) -> Result<Self> {
        Ok(ExtTree {
            fs: ExtFs::open_with(dev, opts)?,
        })
    }

    /// Skip damage that can be skipped, with a warning (see [`ExtFs::set_salvage`]).
    pub fn set_salvage(&mut self, on: bool) {
        self.fs.set_salvage(on);
    }

    /// The filesystem.
    pub fn fs(&self) -> &ExtFs<D> {
        &self.fs
    }

    /// The inode of tree path `path` (relative, `/`-separated; empty = the root).
    pub fn lookup(&self, path: &[u8]) -> Result<u32> {
        let mut abs = Vec::with_capacity(path.len() + 1);
        abs.push(b'/');
        abs.extend_from_slice(path);
        self.fs.lookup(&abs)
    }

    /// The entry for `path` (relative) without walking below it.
    pub fn entry(&self, path: &[u8]) -> Result<Entry> {
        let ino = self.lookup(path)?;
        self.make_entry(path.to_vec(), ino)
    }

    /// The entries of directory `path` (relative), sorted by name.
    pub fn children(&self, path: &[u8]) -> Result<Vec<Entry>> {
        let ino = self.lookup(path)?;
        let list = self.list(ino, path)?;
        list.into_iter()
            .map(|de| {
                let mut p = path.to_vec();
                if !p.is_empty() {
                    p.push(b'/');
                }
                p.extend_from_slice(&de.name);
                self.make_entry(p, de.ino)
            })
            .collect()
    }

    /// A reader of the file at `path` (relative); errors if it is not a regular file.
    pub fn open_file(&self, path: &[u8]) -> Result<FileReader<'_, D>> {
        let ino = self.lookup(path)?;
        let r = self.fs.open_file(ino)?.named(path);
        match r.inode().kind() {
            InodeKind::File => Ok(r),
            other => Err(Error::InvalidArgument(format!(
                "{:?} is not a regular file (it is a {})",
                String::from_utf8_lossy(path),
                kind_word(other)
            ))),
        }
    }

    /// The sorted entries of directory `ino`, without `.` and `..`, names checked.
    pub fn list(&self, ino: u32, path: &[u8]) -> Result<Vec<DirEntry>> {
        let mut v = self.fs.read_dir(ino)?;
        v.retain(|e| e.name != b"." && e.name != b"..");
        for e in &v {
            if e.name.contains(&b'/') || e.name.contains(&0) {
                return Err(Error::corrupt(format!(
                    "ext: directory {:?} (inode {ino}) has an entry named {:?} containing `/` or NUL",
                    String::from_utf8_lossy(path),
                    String::from_utf8_lossy(&e.name)
                )));
            }
        }
        v.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = v.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(Error::corrupt(format!(
                "ext: directory {:?} (inode {ino}) has two entries named {:?}",
                String::from_utf8_lossy(path),
                String::from_utf8_lossy(&w[0].name)
            )));
        }
        Ok(v)
    }

    /// Build the model entry of inode `ino` at `path`.
    fn make_entry(&self, path: Vec<u8>, ino: u32) -> Result<Entry> {
        let inode = self.fs.inode(ino)?;
        let kind = model_kind(&inode).ok_or_else(|| {
            Error::corrupt(format!(
                "ext: {:?} (inode {ino}) has an invalid file type in mode 0o{:o}",
                String::from_utf8_lossy(&path),
                inode.mode
            ))
        })?;
        let (xattrs, unnamed) = self.fs.xattrs_and_unnamed(ino)?;
        for x in &unnamed {
            self.fs.warn(format!(
                "/{} (inode {ino}): {}",
                crate::manifest::escape(&path),
                super::fs::unnamed_note(x)
            ));
        }
        let link_target = if kind == Kind::Symlink {
            Some(self.fs.read_link(ino)?)
        } else {
            None
        };
        let size = match kind {
            Kind::File => inode.size,
            Kind::Symlink => link_target.as_ref().map_or(0, |t| t.len() as u64),
            _ => 0,
        };
        let rdev = match kind {
            Kind::CharDevice | Kind::BlockDevice => inode.rdev,
            _ => (0, 0),
        };
        let hardlink_id = (kind != Kind::Dir && inode.nlink > 1).then_some(u64::from(ino));
        Ok(Entry {
            path,
            kind,
            meta: Metadata {
                perm: u32::from(inode.permissions()),
                uid: inode.uid,
                gid: inode.gid,
                atime: ts(inode.atime),
                mtime: ts(inode.mtime),
                ctime: ts(inode.ctime),
                crtime: inode.crtime.map(ts),
                xattrs,
                flags: Some(inode.flags),
            },
            size,
            rdev,
            link_target,
            hardlink_id,
        })
    }

    /// Visit one entry, lending a content reader for regular files.
    fn visit_one(&self, entry: &Entry, ino: u32, visit: &mut Visitor<'_>) -> Result<()> {
        if entry.kind == Kind::File {
            let mut r = self.fs.open_file(ino)?.named(&entry.path);
            visit(entry, Some(&mut r))
        } else {
            visit(entry, None)
        }
    }
}

/// One level of the walk: a directory's sorted entries and the next one to visit.
struct Level {
    entries: std::vec::IntoIter<DirEntry>,
    /// Length of the directory's path (the children's prefix) in the shared path buffer.
    path_len: usize,
    ino: u32,
}

impl<D: BlockDevice> ExtTree<D> {
    /// Walk like [`TreeSource::walk`], handing each entry with its inode number instead
    /// of a content reader (what a caller needs to address the inode afterwards).
    pub fn walk_inodes(
        &self,
        root: &[u8],
        f: &mut dyn FnMut(&Entry, u32) -> Result<()>,
    ) -> Result<()> {
        let root_ino = if root.is_empty() {
            ROOT_INO
        } else {
            self.lookup(root)?
        };
        let top = self.make_entry(root.to_vec(), root_ino)?;
        f(&top, root_ino)?;
        if top.kind != Kind::Dir {
            return Ok(());
        }
        let mut path = root.to_vec();
        let mut stack = vec![Level {
            entries: self.list(root_ino, &path)?.into_iter(),
            path_len: path.len(),
            ino: root_ino,
        }];
        while let Some(level) = stack.last_mut() {
            let Some(de) = level.entries.next() else {
                stack.pop();
                continue;
            };
            path.truncate(level.path_len);
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&de.name);
            let entry = self.make_entry(path.clone(), de.ino)?;
            f(&entry, de.ino)?;
            if entry.kind == Kind::Dir {
                if stack.iter().any(|l| l.ino == de.ino) || de.ino == root_ino {
                    return Err(Error::corrupt(format!(
                        "ext: directory {:?} (inode {}) contains itself (a directory loop)",
                        String::from_utf8_lossy(&path),
                        de.ino
                    )));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(Error::unsupported(format!(
                        "ext: directories nested deeper than {MAX_DEPTH} levels at {:?}",
                        String::from_utf8_lossy(&path)
                    )));
                }
                let entries = self.list(de.ino, &path)?.into_iter();
                stack.push(Level {
                    entries,
                    path_len: path.len(),
                    ino: de.ino,
                });
            }
        }
        Ok(())
    }
}

impl<D: BlockDevice> TreeSource for ExtTree<D> {
    fn walk(&self, root: &[u8], visit: &mut Visitor<'_>) -> Result<()> {
        self.walk_inodes(root, &mut |e, ino| self.visit_one(e, ino, visit))
    }
}

impl<D: BlockDevice> Content for FileReader<'_, D> {
    fn extents(&self) -> Result<Vec<Extent>> {
        FileReader::extents(self)
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        use std::io::Seek;
        self.seek(std::io::SeekFrom::Current(n.try_into().unwrap_or(i64::MAX)))
            .map_err(|e| Error::io("ext: seeking in a file", e))?;
        Ok(())
    }
}

fn ts(t: ExtTimestamp) -> Timestamp {
    Timestamp {
        sec: t.sec,
        nsec: t.nsec,
    }
}

fn model_kind(inode: &Inode) -> Option<Kind> {
    Some(match inode.kind() {
        InodeKind::File => Kind::File,
        InodeKind::Dir => Kind::Dir,
        InodeKind::Symlink => Kind::Symlink,
        InodeKind::CharDev => Kind::CharDevice,
        InodeKind::BlockDev => Kind::BlockDevice,
        InodeKind::Fifo => Kind::Fifo,
        InodeKind::Socket => Kind::Socket,
        InodeKind::Unknown(_) => return None,
    })
}

fn kind_word(k: InodeKind) -> &'static str {
    match k {
        InodeKind::File => "regular file",
        InodeKind::Dir => "directory",
        InodeKind::Symlink => "symbolic link",
        InodeKind::CharDev => "character device",
        InodeKind::BlockDev => "block device",
        InodeKind::Fifo => "fifo",
        InodeKind::Socket => "socket",
        InodeKind::Unknown(_) => "file of unknown type",
    }
}
