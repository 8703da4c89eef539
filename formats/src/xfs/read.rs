//! [`XfsTree`]: an XFS filesystem read as a [`TreeSource`], in the stable order
//! (depth-first, siblings sorted by name bytes).
//!
//! Mapping onto the tree model: owners, modes, ns timestamps (and `crtime` on v3 inodes)
//! as stored; xattrs under their full names, XFS ACLs as `system.posix_acl_*` (see
//! [`super::attr`]); hard links share their inode number as `hardlink_id`; holes and
//! unwritten extents are `Zero` extents; inode flags are not carried (`flags` is `None`:
//! XFS's flags are not ext's). A file on the realtime device is refused by name.

use super::bmap::{fork_map, read_fork, Mapping};
use super::dir::{self, DirEntry};
use super::inode::{Fork, Inode, FMT_LOCAL};
use super::sb::Superblock;
use super::{ag, attr, be32, be64, corrupt, crc_ok, log};
use crate::block::{BlockDevice, Extent, ExtentKind};
use crate::tree::{Content, Entry, Kind, Metadata, TreeSource, Visitor};
use crate::{Error, Result};
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::sync::Mutex;

/// Directory nesting followed before giving up (Linux paths stop at 4096 bytes).
const MAX_DEPTH: usize = 2048;
/// Longest symlink target XFS stores (`XFS_SYMLINK_MAXLEN`).
const MAX_SYMLINK: u64 = 1024;

/// An XFS filesystem read as a tree.
pub struct XfsTree<D: BlockDevice> {
    dev: D,
    sb: Superblock,
    used: u64,
    warnings: Mutex<Vec<String>>,
}

impl<D: BlockDevice> std::fmt::Debug for XfsTree<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XfsTree").field("sb", &self.sb).finish()
    }
}

impl<D: BlockDevice> XfsTree<D> {
    /// Open the XFS filesystem on `dev`; one whose log was not cleanly unmounted is
    /// refused.
    pub fn open(dev: D) -> Result<Self> {
        Self::open_with(dev, false)
    }

    /// Open the XFS filesystem on `dev`; with `salvage`, a log that was not cleanly
    /// unmounted is warned about and the blocks are read as they are (without the
    /// changes the log holds).
    pub fn open_with(dev: D, salvage: bool) -> Result<Self> {
        let sb = Superblock::read(&dev)?;
        let fs_bytes = sb.dblocks << sb.blocklog;
        if fs_bytes > dev.len() {
            return Err(corrupt(format!(
                "the filesystem is {fs_bytes} bytes but the device holds {}: the image is \
                 truncated",
                dev.len()
            )));
        }
        let mut warnings = Vec::new();
        if sb.needs_repair {
            let msg = "xfs: the filesystem is marked as needing xfs_repair";
            if !salvage {
                return Err(Error::Unsupported(format!(
                    "{msg}; run xfs_repair, or read the blocks as they are (--salvage)"
                )));
            }
            warnings.push(format!("{msg}; read as it is (--salvage)"));
        }
        if let Some(why) = log::dirty(&dev, &sb)? {
            if !salvage {
                return Err(Error::Unsupported(format!(
                    "xfs: the log needs recovery: {why}; mount the filesystem once (or run \
                     xfs_repair) to replay it, or read the on-disk state without the logged \
                     changes (--salvage)"
                )));
            }
            warnings.push(format!(
                "the log needs recovery ({why}); reading the blocks without the logged changes \
                 (--salvage)"
            ));
        }
        let used = ag::used_bytes(&dev, &sb)?;
        let tree = XfsTree {
            dev,
            sb,
            used,
            warnings: Mutex::new(warnings),
        };
        let root = tree.inode(tree.sb.rootino)?;
        if root.kind != Kind::Dir {
            return Err(corrupt(format!(
                "the root inode {} is not a directory",
                tree.sb.rootino
            )));
        }
        Ok(tree)
    }

    /// The superblock.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// Bytes of the data subvolume in use (from the AG headers).
    pub fn used_bytes(&self) -> u64 {
        self.used
    }

    /// Warnings so far (a dirty log read under salvage); emptied by the call.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn inode(&self, ino: u64) -> Result<Inode> {
        Inode::read(&self.dev, &self.sb, ino)
    }

    /// The inode at `path` (relative; empty = the root).
    fn find(&self, path: &[u8]) -> Result<Inode> {
        let mut cur = self.inode(self.sb.rootino)?;
        for comp in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            if cur.kind != Kind::Dir {
                return Err(Error::InvalidArgument(format!(
                    "xfs: {:?} is not a directory",
                    String::from_utf8_lossy(path)
                )));
            }
            let list = dir::list(&self.dev, &self.sb, &cur)?;
            let hit = list
                .binary_search_by(|e| e.name.as_slice().cmp(comp))
                .map_err(|_| {
                    Error::NotFound(format!(
                        "xfs: no entry {:?} in the directory of {:?}",
                        String::from_utf8_lossy(comp),
                        String::from_utf8_lossy(path)
                    ))
                })?;
            cur = self.inode(list[hit].ino)?;
        }
        Ok(cur)
    }

    /// The entry at `path` (relative; empty = the root).
    pub fn entry(&self, path: &[u8]) -> Result<Entry> {
        let ino = self.find(path)?;
        self.make_entry(path.to_vec(), &ino)
    }

    /// The entries of directory `path`, sorted by name.
    pub fn children(&self, path: &[u8]) -> Result<Vec<Entry>> {
        let d = self.find(path)?;
        if d.kind != Kind::Dir {
            return Err(Error::InvalidArgument(format!(
                "xfs: {:?} is not a directory",
                String::from_utf8_lossy(path)
            )));
        }
        dir::list(&self.dev, &self.sb, &d)?
            .into_iter()
            .map(|e| self.make_entry(join(path, &e.name), &self.inode(e.ino)?))
            .collect()
    }

    /// The content of the regular file at `path`.
    pub fn open_file(&self, path: &[u8]) -> Result<XfsContent<'_, D>> {
        let ino = self.find(path)?;
        if ino.kind != Kind::File {
            return Err(Error::InvalidArgument(format!(
                "{:?} is not a regular file",
                String::from_utf8_lossy(path)
            )));
        }
        self.content(&ino, path)
    }

    /// Copy the regular file at `path` to `out`; returns the bytes copied.
    pub fn copy_file(&self, path: &[u8], out: &mut dyn Write) -> Result<u64> {
        let mut c = self.open_file(path)?;
        io::copy(&mut c, out)
            .map_err(|e| Error::io(format!("copying {:?}", String::from_utf8_lossy(path)), e))
    }

    fn content(&self, ino: &Inode, path: &[u8]) -> Result<XfsContent<'_, D>> {
        if ino.realtime {
            return Err(Error::Unsupported(format!(
                "xfs: {:?} (inode {}) keeps its data on the realtime device, which subroot \
                 does not read",
                String::from_utf8_lossy(path),
                ino.ino
            )));
        }
        let local = if ino.format == FMT_LOCAL {
            let f = ino.fork(Fork::Data);
            if ino.size > f.len() as u64 {
                return Err(corrupt(format!(
                    "inode {}: {} bytes of inline data in a {}-byte fork",
                    ino.ino,
                    ino.size,
                    f.len()
                )));
            }
            Some(f[..ino.size as usize].to_vec())
        } else {
            None
        };
        Ok(XfsContent {
            tree: self,
            map: fork_map(&self.dev, &self.sb, ino, Fork::Data)?,
            local,
            size: ino.size,
            pos: 0,
            ino: ino.ino,
        })
    }

    fn make_entry(&self, path: Vec<u8>, ino: &Inode) -> Result<Entry> {
        let xattrs = attr::xattrs(&self.dev, &self.sb, ino)?;
        let link_target = match ino.kind {
            Kind::Symlink => Some(self.symlink(ino)?),
            _ => None,
        };
        let size = match ino.kind {
            Kind::File => ino.size,
            Kind::Symlink => link_target.as_ref().map_or(0, |t| t.len() as u64),
            _ => 0,
        };
        let rdev = match ino.kind {
            Kind::CharDevice | Kind::BlockDevice => ino.rdev(),
            _ => (0, 0),
        };
        Ok(Entry {
            path,
            kind: ino.kind,
            meta: Metadata {
                perm: u32::from(ino.mode) & 0o7777,
                uid: ino.uid,
                gid: ino.gid,
                atime: ino.atime,
                mtime: ino.mtime,
                ctime: ino.ctime,
                crtime: ino.crtime,
                xattrs,
                flags: None,
            },
            size,
            rdev,
            link_target,
            hardlink_id: (ino.nlink > 1 && ino.kind != Kind::Dir).then_some(ino.ino),
        })
    }

    /// The target of a symlink: inline, or in remote blocks (each with an `XSLM` header
    /// on v5).
    fn symlink(&self, ino: &Inode) -> Result<Vec<u8>> {
        let len = ino.size;
        if len == 0 || len > MAX_SYMLINK {
            return Err(corrupt(format!(
                "symlink inode {}: a target of {len} bytes",
                ino.ino
            )));
        }
        if ino.format == FMT_LOCAL {
            let f = ino.fork(Fork::Data);
            return f.get(..len as usize).map(<[u8]>::to_vec).ok_or_else(|| {
                corrupt(format!(
                    "symlink inode {}: {len} bytes do not fit its fork",
                    ino.ino
                ))
            });
        }
        let map = fork_map(&self.dev, &self.sb, ino, Fork::Data)?;
        let bs = self.sb.block_size as usize;
        if !self.sb.v5() {
            let mut t = vec![0u8; len as usize];
            read_fork(&self.dev, &self.sb, &map, 0, &mut t)?;
            return Ok(t);
        }
        let mut t = Vec::with_capacity(len as usize);
        let mut b = vec![0u8; bs];
        let mut blk = 0u64;
        while (t.len() as u64) < len {
            read_fork(&self.dev, &self.sb, &map, blk * bs as u64, &mut b)?;
            let off = be32(&b, 4) as usize;
            let n = be32(&b, 8) as usize;
            if &b[..4] != b"XSLM"
                || !crc_ok(&b, 12)
                || be64(&b, 32) != ino.ino
                || off != t.len()
                || n == 0
                || n > bs - 56
                || (off + n) as u64 > len
            {
                return Err(corrupt(format!(
                    "symlink inode {}: block {blk}: bad header (magic, CRC, owner or range)",
                    ino.ino
                )));
            }
            t.extend_from_slice(&b[56..56 + n]);
            blk += 1;
        }
        Ok(t)
    }

    fn walk_dir(
        &self,
        d: &Inode,
        path: &mut Vec<u8>,
        depth: usize,
        seen: &mut HashSet<u64>,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        if depth > MAX_DEPTH || !seen.insert(d.ino) {
            return Err(corrupt(format!(
                "directory {:?} (inode {}) is nested deeper than {MAX_DEPTH} levels or \
                 reached twice (a directory loop)",
                String::from_utf8_lossy(path),
                d.ino
            )));
        }
        let list: Vec<DirEntry> = dir::list(&self.dev, &self.sb, d)?;
        let base = path.len();
        for e in list {
            path.truncate(base);
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&e.name);
            let ino = self.inode(e.ino).map_err(|err| at(err, path))?;
            let entry = self
                .make_entry(path.clone(), &ino)
                .map_err(|err| at(err, path))?;
            match ino.kind {
                Kind::Dir => {
                    visit(&entry, None)?;
                    self.walk_dir(&ino, path, depth + 1, seen, visit)?;
                }
                Kind::File => {
                    let mut c = self.content(&ino, path).map_err(|err| at(err, path))?;
                    visit(&entry, Some(&mut c))?;
                }
                _ => visit(&entry, None)?,
            }
        }
        path.truncate(base);
        Ok(())
    }
}

/// A corrupt-structure error with the path it was met at.
fn at(e: Error, path: &[u8]) -> Error {
    match e {
        Error::Corrupt(m) => Error::Corrupt(format!("{m} (at /{})", String::from_utf8_lossy(path))),
        other => other,
    }
}

impl<D: BlockDevice> TreeSource for XfsTree<D> {
    fn walk(&self, root: &[u8], visit: &mut Visitor<'_>) -> Result<()> {
        let ino = self.find(root)?;
        let entry = self.make_entry(root.to_vec(), &ino)?;
        match ino.kind {
            Kind::Dir => {
                visit(&entry, None)?;
                self.walk_dir(&ino, &mut root.to_vec(), 0, &mut HashSet::new(), visit)
            }
            Kind::File => {
                let mut c = self.content(&ino, root)?;
                visit(&entry, Some(&mut c))
            }
            _ => visit(&entry, None),
        }
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// A regular file's content, streamed through its block map: holes and unwritten
/// extents read as zeros without touching the device.
pub struct XfsContent<'a, D: BlockDevice> {
    tree: &'a XfsTree<D>,
    map: Vec<Mapping>,
    /// Inline data (a data fork in local format).
    local: Option<Vec<u8>>,
    size: u64,
    pos: u64,
    ino: u64,
}

impl<D: BlockDevice> XfsContent<'_, D> {
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.size - self.pos) as usize;
        if let Some(l) = &self.local {
            let p = self.pos as usize;
            buf[..want].copy_from_slice(&l[p..p + want]);
            self.pos += want as u64;
            return Ok(want);
        }
        let sb = &self.tree.sb;
        let bs = u64::from(sb.block_size);
        let blk = self.pos >> sb.blocklog;
        let i = self.map.partition_point(|m| m.end() <= blk);
        let n = match self.map.get(i) {
            Some(m) if m.off <= blk => {
                let in_ext = self.pos - m.off * bs;
                let n = ((m.len * bs - in_ext) as usize).min(want);
                if m.unwritten {
                    buf[..n].fill(0);
                } else {
                    let at = sb.fsb_to_byte(m.start).unwrap_or(u64::MAX) + in_ext;
                    if at.saturating_add(n as u64) > self.tree.dev.len() {
                        return Err(corrupt(format!(
                            "inode {}: data at byte {at} lies beyond the end of the device \
                             ({} bytes): the image is truncated",
                            self.ino,
                            self.tree.dev.len()
                        )));
                    }
                    self.tree.dev.read_at(&mut buf[..n], at)?;
                }
                n
            }
            next => {
                let hole_end = next.map_or(u64::MAX, |m| m.off * bs);
                let n = (hole_end - self.pos).min(want as u64) as usize;
                buf[..n].fill(0);
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: BlockDevice> Read for XfsContent<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_some(buf).map_err(io::Error::other)
    }
}

impl<D: BlockDevice> Content for XfsContent<'_, D> {
    fn extents(&self) -> Result<Vec<Extent>> {
        let bs = u64::from(self.tree.sb.block_size);
        let mut out: Vec<Extent> = Vec::new();
        let mut push = |offset: u64, end: u64, kind: ExtentKind| {
            let end = end.min(self.size);
            if end <= offset {
                return;
            }
            match out.last_mut() {
                Some(l) if l.kind == kind && l.end() == offset => l.len += end - offset,
                _ => out.push(Extent {
                    offset,
                    len: end - offset,
                    kind,
                }),
            }
        };
        if self.local.is_some() {
            push(0, self.size, ExtentKind::Data);
            return Ok(out);
        }
        let mut pos = 0;
        for m in &self.map {
            let start = m.off * bs;
            push(pos, start, ExtentKind::Zero);
            let kind = if m.unwritten {
                ExtentKind::Zero
            } else {
                ExtentKind::Data
            };
            push(start, m.end() * bs, kind);
            pos = m.end() * bs;
        }
        push(pos, self.size, ExtentKind::Zero);
        Ok(out)
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        if self.pos.saturating_add(n) > self.size {
            return Err(corrupt(format!(
                "inode {}: skipping {n} bytes past the end of the file",
                self.ino
            )));
        }
        self.pos += n;
        Ok(())
    }
}
