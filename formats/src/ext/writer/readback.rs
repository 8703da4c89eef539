//! Reading a filesystem back as tree entries with their inode numbers: what reconcile
//! compares against the intended tree, and (through [`ExtWalk`]) a [`TreeSource`] over an
//! ext filesystem for rebuilding one from another.

use crate::block::BlockDevice;
use crate::ext::{ExtFs, FileReader, Inode, InodeKind};
use crate::tree::{Content, Entry, Kind, Metadata, Timestamp, TreeSource, Visitor};
use crate::{Error, Result};
use std::io::Read;

/// Deepest directory nesting followed (a loop guard for corrupt filesystems).
const MAX_DEPTH: usize = 4096;

/// Convert an ext timestamp.
fn ts(t: crate::ext::Timestamp) -> Timestamp {
    Timestamp {
        sec: t.sec,
        nsec: t.nsec,
    }
}

/// The tree entry of inode `inode` at `path`.
pub fn entry_of<D: BlockDevice>(fs: &ExtFs<D>, path: Vec<u8>, inode: &Inode) -> Result<Entry> {
    let kind = match inode.kind() {
        InodeKind::File => Kind::File,
        InodeKind::Dir => Kind::Dir,
        InodeKind::Symlink => Kind::Symlink,
        InodeKind::CharDev => Kind::CharDevice,
        InodeKind::BlockDev => Kind::BlockDevice,
        InodeKind::Fifo => Kind::Fifo,
        InodeKind::Socket => Kind::Socket,
        InodeKind::Unknown(m) => {
            return Err(Error::corrupt(format!(
                "inode {}: unknown file type 0o{m:o} at {:?}",
                inode.ino,
                String::from_utf8_lossy(&path)
            )))
        }
    };
    let link_target = if kind == Kind::Symlink {
        Some(fs.read_link(inode.ino)?)
    } else {
        None
    };
    let size = match kind {
        Kind::File => inode.size,
        Kind::Symlink => link_target.as_ref().map_or(0, |t| t.len() as u64),
        _ => 0,
    };
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
            xattrs: fs.xattrs(inode.ino)?,
            flags: Some(inode.flags),
        },
        size,
        rdev: inode.rdev,
        link_target,
        hardlink_id: (kind != Kind::Dir && inode.nlink > 1).then_some(u64::from(inode.ino)),
    })
}

/// Walk the filesystem depth-first from directory `start` (whose path is `prefix`),
/// siblings sorted by name bytes, calling `f(entry, ino)` for each entry, `start` first.
pub fn walk<D: BlockDevice>(
    fs: &ExtFs<D>,
    start: u32,
    prefix: &[u8],
    f: &mut dyn FnMut(&Entry, &Inode) -> Result<()>,
) -> Result<()> {
    let inode = fs.inode(start)?;
    let e = entry_of(fs, prefix.to_vec(), &inode)?;
    f(&e, &inode)?;
    if e.kind == Kind::Dir {
        walk_dir(fs, start, prefix, f, 0)?;
    }
    Ok(())
}

fn walk_dir<D: BlockDevice>(
    fs: &ExtFs<D>,
    dir: u32,
    prefix: &[u8],
    f: &mut dyn FnMut(&Entry, &Inode) -> Result<()>,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::corrupt(format!(
            "ext: directories nested deeper than {MAX_DEPTH} at {:?} (a loop?)",
            String::from_utf8_lossy(prefix)
        )));
    }
    let mut children: Vec<_> = fs
        .read_dir(dir)?
        .into_iter()
        .filter(|d| d.name != b"." && d.name != b"..")
        .collect();
    children.sort_by(|a, b| a.name.cmp(&b.name));
    for c in children {
        let mut path = prefix.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&c.name);
        let inode = fs.inode(c.ino)?;
        let e = entry_of(fs, path, &inode)?;
        f(&e, &inode)?;
        if e.kind == Kind::Dir {
            walk_dir(fs, c.ino, &e.path, f, depth + 1)?;
        }
    }
    Ok(())
}

/// A file's content from the filesystem, as a [`Content`].
pub struct ExtContent<'a, D: BlockDevice> {
    reader: FileReader<'a, D>,
    pos: u64,
}

impl<'a, D: BlockDevice> ExtContent<'a, D> {
    /// Content of regular file `ino`.
    pub fn open(fs: &'a ExtFs<D>, ino: u32) -> Result<Self> {
        Ok(ExtContent {
            reader: fs.open_file(ino)?,
            pos: 0,
        })
    }
}

impl<D: BlockDevice> Read for ExtContent<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self
            .reader
            .read_at(buf, self.pos)
            .map_err(std::io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: BlockDevice> Content for ExtContent<'_, D> {
    fn extents(&self) -> Result<Vec<crate::block::Extent>> {
        self.reader.extents()
    }
}

/// An ext filesystem as a [`TreeSource`] (hard-link ids are inode numbers).
pub struct ExtWalk<'a, D: BlockDevice>(pub &'a ExtFs<D>);

impl<D: BlockDevice> TreeSource for ExtWalk<'_, D> {
    fn walk(&self, root: &[u8], visit: &mut Visitor<'_>) -> Result<()> {
        let fs = self.0;
        let start = if root.is_empty() {
            2
        } else {
            let mut abs = b"/".to_vec();
            abs.extend_from_slice(root);
            fs.lookup(&abs)?
        };
        walk(fs, start, b"", &mut |e, inode| {
            if e.kind == Kind::File {
                let mut c = ExtContent::open(fs, inode.ino)?;
                visit(e, Some(&mut c))
            } else {
                visit(e, None)
            }
        })
    }
}
