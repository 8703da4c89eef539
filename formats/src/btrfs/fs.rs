//! A btrfs filesystem on one device: the checked superblock, the chunk mapping, a small
//! cache of checked tree blocks, and the lookups every reader needs (a tree's root, an
//! inode, a directory's entries, xattrs, the subvolumes and which is the default).

use super::chunks::ChunkMap;
use super::items::{first_inode_ref_name, DirEntry, InodeItem, RootItem, RootRef};
use super::key_type::*;
use super::node::Node;
use super::objectid::{FIRST_FREE, FS_TREE, LAST_FREE, ROOT_TREE_DIR};
use super::search::{Flow, TreeRoot};
use super::superblock::Superblock;
use super::Key;
use crate::block::BlockDevice;
use crate::{Error, Result};
use std::sync::{Arc, Mutex};

/// Tree blocks kept in memory (direct-mapped by address): 256 × a 16 KiB node = 4 MiB.
const CACHE_SLOTS: usize = 256;
/// Subvolumes listed at most (each a few bytes; a damaged root tree could claim more).
const MAX_SUBVOLUMES: usize = 1 << 20;
/// Directories climbed at most to name a subvolume's path.
const MAX_PATH_DEPTH: usize = 4096;

/// A subvolume (or snapshot): its id, its path from the top level, and its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subvolume {
    pub id: u64,
    /// The subvolume holding it (0 for the top level).
    pub parent: u64,
    /// Path from the top-level subvolume, components joined by `/` (empty for the top).
    pub path: Vec<u8>,
    /// Read-only (a snapshot made with `-r`, say).
    pub readonly: bool,
}

/// A btrfs filesystem, opened for reading.
pub struct BtrfsFs<D: BlockDevice> {
    dev: D,
    sb: Superblock,
    chunks: ChunkMap,
    cache: Mutex<Vec<Option<Arc<Node>>>>,
}

impl<D: BlockDevice> std::fmt::Debug for BtrfsFs<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BtrfsFs")
            .field("sb", &self.sb)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

impl<D: BlockDevice> BtrfsFs<D> {
    /// Open the btrfs on `dev`: superblock, then the chunk tree. A filesystem of several
    /// devices is refused (with the profiles it uses).
    pub fn open(dev: D) -> Result<Self> {
        let sb = Superblock::read(&dev)?;
        let boot = ChunkMap::bootstrap(&sb.sys_chunk_array, sb.devid, dev.len());
        if sb.num_devices != 1 {
            let profiles = match &boot {
                Err(Error::Unsupported(m)) => format!(" ({m})"),
                _ => String::new(),
            };
            return Err(Error::unsupported(format!(
                "btrfs: the filesystem spans {} devices{profiles}; subroot reads a btrfs on \
                 one device only",
                sb.num_devices
            )));
        }
        let mut fs = BtrfsFs {
            chunks: boot?,
            dev,
            sb,
            cache: Mutex::new(vec![None; CACHE_SLOTS]),
        };
        let root = TreeRoot {
            bytenr: fs.sb.chunk_root,
            level: fs.sb.chunk_root_level,
        };
        let devid = fs.sb.devid;
        let dev_len = fs.dev.len();
        let mut found = Vec::new();
        fs.search(
            root,
            Key::new(FIRST_FREE, CHUNK_ITEM, 0),
            Key::new(FIRST_FREE, CHUNK_ITEM, u64::MAX),
            &mut |k, d| {
                found.push(super::chunks::parse_chunk(d, 0, k.offset, devid)?.0);
                if found.len() > 65536 + (dev_len >> 18) as usize {
                    return Err(Error::corrupt(
                        "btrfs: the chunk tree holds too many chunks",
                    ));
                }
                Ok(Flow::Continue(()))
            },
        )?;
        let mut map = ChunkMap::new(dev_len);
        for c in found {
            map.insert(c)?;
        }
        fs.chunks = map;
        fs.cache = Mutex::new(vec![None; CACHE_SLOTS]);
        Ok(fs)
    }

    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Read `buf.len()` bytes at logical address `logical` (from the first copy).
    pub fn read_logical(&self, buf: &mut [u8], logical: u64) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let at = logical
                .checked_add(done as u64)
                .ok_or_else(|| Error::corrupt("btrfs: a logical address overflows"))?;
            let (copies, run) = self.chunks.map(at)?;
            let n = (buf.len() - done).min(usize::try_from(run).unwrap_or(usize::MAX));
            self.dev.read_at(&mut buf[done..done + n], copies[0])?;
            done += n;
        }
        Ok(())
    }

    /// The device offsets of the copies of logical address `logical`.
    pub fn physical(&self, logical: u64) -> Result<Vec<u64>> {
        Ok(self.chunks.map(logical)?.0)
    }

    /// The checked tree block at `bytenr`, of `level` (from the cache, or read: each copy
    /// of a DUP chunk in turn until one is good).
    pub fn node(&self, bytenr: u64, level: u8) -> Result<Arc<Node>> {
        let size = self.sb.nodesize as usize;
        let slot = ((bytenr / size as u64) % CACHE_SLOTS as u64) as usize;
        if let Some(n) = self.lock()[slot].as_ref().filter(|n| n.bytenr == bytenr) {
            if n.level != level {
                return Err(Error::corrupt(format!(
                    "btrfs: the tree block at logical {bytenr} has level {}, {level} expected \
                     (a tree pointer loop?)",
                    n.level
                )));
            }
            return Ok(n.clone());
        }
        let (copies, run) = self.chunks.map(bytenr)?;
        if run < size as u64 {
            return Err(Error::corrupt(format!(
                "btrfs: the tree block at logical {bytenr} crosses the end of its chunk"
            )));
        }
        let mut err = None;
        for p in copies {
            let mut b = vec![0u8; size];
            let r = self.dev.read_at(&mut b, p).and_then(|()| {
                self.sb.csum_type.verify(&b, &|| {
                    format!("the tree block at logical {bytenr} (device offset {p})")
                })?;
                Node::parse(b, bytenr, &self.sb.meta_fsid, Some(level))
            });
            match r {
                Ok(n) => {
                    let n = Arc::new(n);
                    self.lock()[slot] = Some(n.clone());
                    return Ok(n);
                }
                Err(e) => err = err.or(Some(e)),
            }
        }
        Err(err.unwrap_or_else(|| Error::corrupt("btrfs: a chunk without copies")))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Arc<Node>>>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The root tree.
    pub fn root_tree(&self) -> TreeRoot {
        TreeRoot {
            bytenr: self.sb.root,
            level: self.sb.root_level,
        }
    }

    /// The root item of tree `id` (the newest when several exist), if any.
    pub fn root_item(&self, id: u64) -> Result<Option<RootItem>> {
        let mut last = None;
        self.search(
            self.root_tree(),
            Key::new(id, ROOT_ITEM, 0),
            Key::new(id, ROOT_ITEM, u64::MAX),
            &mut |_, d| {
                last = Some(RootItem::parse(d)?);
                Ok(Flow::Continue(()))
            },
        )?;
        Ok(last)
    }

    /// Where the tree of subvolume `id` is, and its top directory.
    pub fn subvolume_root(&self, id: u64) -> Result<(TreeRoot, u64)> {
        if id != FS_TREE && !(FIRST_FREE..=LAST_FREE).contains(&id) {
            return Err(Error::NotFound(format!(
                "btrfs: {id} is not a subvolume id (5 is the top level, others start at 256)"
            )));
        }
        let r = self.root_item(id)?.ok_or_else(|| {
            Error::NotFound(format!("btrfs: the filesystem has no subvolume {id}"))
        })?;
        Ok((
            TreeRoot {
                bytenr: r.bytenr,
                level: r.level,
            },
            r.root_dirid,
        ))
    }

    /// The default subvolume (the root tree's `default` entry; the top level without one).
    pub fn default_subvolume(&self) -> Result<u64> {
        let mut id = FS_TREE;
        self.search(
            self.root_tree(),
            Key::new(ROOT_TREE_DIR, DIR_ITEM, 0),
            Key::new(ROOT_TREE_DIR, DIR_ITEM, u64::MAX),
            &mut |_, d| {
                if let Some(e) = DirEntry::parse_all(d)?
                    .into_iter()
                    .find(|e| e.name == b"default")
                {
                    id = e.location.objectid;
                    return Ok(Flow::Break(()));
                }
                Ok(Flow::Continue(()))
            },
        )?;
        Ok(id)
    }

    /// The inode item of `ino` in `tree`.
    pub fn inode(&self, tree: TreeRoot, ino: u64) -> Result<InodeItem> {
        let mut found = None;
        self.search(
            tree,
            Key::new(ino, INODE_ITEM, 0),
            Key::new(ino, INODE_ITEM, 0),
            &mut |_, d| {
                found = Some(InodeItem::parse(d)?);
                Ok(Flow::Break(()))
            },
        )?;
        found.ok_or_else(|| Error::corrupt(format!("btrfs: inode {ino} has no inode item")))
    }

    /// The entries of directory `dir` in `tree`, in index order; an error past `limit`.
    pub fn dir_entries(&self, tree: TreeRoot, dir: u64, limit: usize) -> Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        self.search(
            tree,
            Key::new(dir, DIR_INDEX, 0),
            Key::new(dir, DIR_INDEX, u64::MAX),
            &mut |_, d| {
                out.extend(DirEntry::parse_all(d)?);
                if out.len() > limit {
                    return Err(Error::corrupt(format!(
                        "btrfs: directory {dir} has more than {limit} entries"
                    )));
                }
                Ok(Flow::Continue(()))
            },
        )?;
        Ok(out)
    }

    /// The entry `name` of directory `dir` (through the name hash of `DIR_ITEM`).
    pub fn lookup(&self, tree: TreeRoot, dir: u64, name: &[u8]) -> Result<Option<DirEntry>> {
        let hash = u64::from(name_hash(name));
        let mut found = None;
        self.search(
            tree,
            Key::new(dir, DIR_ITEM, hash),
            Key::new(dir, DIR_ITEM, hash),
            &mut |_, d| {
                found = DirEntry::parse_all(d)?.into_iter().find(|e| e.name == name);
                Ok(Flow::Break(()))
            },
        )?;
        Ok(found)
    }

    /// The xattrs of `ino`, sorted by name.
    pub fn xattrs(&self, tree: TreeRoot, ino: u64) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        self.search(
            tree,
            Key::new(ino, XATTR_ITEM, 0),
            Key::new(ino, XATTR_ITEM, u64::MAX),
            &mut |_, d| {
                out.extend(
                    DirEntry::parse_all(d)?
                        .into_iter()
                        .map(|e| (e.name, e.data)),
                );
                if out.len() > 65536 {
                    return Err(Error::corrupt(format!(
                        "btrfs: inode {ino} has more than 65536 xattrs"
                    )));
                }
                Ok(Flow::Continue(()))
            },
        )?;
        out.sort();
        Ok(out)
    }

    /// True when subvolume `parent` holds a reference to subvolume `child` (the kernel
    /// shows an empty directory for a subvolume entry without one, as in a snapshot of a
    /// subvolume that held others).
    pub fn has_root_ref(&self, parent: u64, child: u64) -> Result<bool> {
        let mut found = false;
        self.search(
            self.root_tree(),
            Key::new(parent, ROOT_REF, child),
            Key::new(parent, ROOT_REF, child),
            &mut |_, _| {
                found = true;
                Ok(Flow::Break(()))
            },
        )?;
        Ok(found)
    }

    /// Every subvolume and snapshot, the top level first, then by id.
    pub fn subvolumes(&self) -> Result<Vec<Subvolume>> {
        let top = self.root_item(FS_TREE)?;
        let mut out = vec![Subvolume {
            id: FS_TREE,
            parent: 0,
            path: Vec::new(),
            readonly: top.is_some_and(|r| r.flags & 1 != 0),
        }];
        let mut refs = Vec::new();
        self.search(
            self.root_tree(),
            Key::new(FIRST_FREE, 0, 0),
            Key::new(LAST_FREE, u8::MAX, u64::MAX),
            &mut |k, d| {
                if k.ty == ROOT_BACKREF {
                    refs.push((k.objectid, k.offset, RootRef::parse(d)?));
                    if refs.len() > MAX_SUBVOLUMES {
                        return Err(Error::corrupt("btrfs: too many subvolumes"));
                    }
                }
                Ok(Flow::Continue(()))
            },
        )?;
        for (id, parent, r) in &refs {
            let mut path = Vec::new();
            let mut at = (*parent, r.dirid, r.name.clone());
            for _ in 0..MAX_PATH_DEPTH {
                let (sv, dir, name) = at;
                let (tree, top) = self.subvolume_root(sv)?;
                let mut comp = self.dir_path(tree, top, dir)?;
                if !comp.is_empty() {
                    comp.push(b'/');
                }
                comp.extend_from_slice(&name);
                if !path.is_empty() {
                    comp.push(b'/');
                }
                comp.extend_from_slice(&path);
                path = comp;
                match refs.iter().find(|(i, _, _)| *i == sv) {
                    Some((_, p, r)) => at = (*p, r.dirid, r.name.clone()),
                    None => break,
                }
            }
            let readonly = self.root_item(*id)?.is_some_and(|r| r.flags & 1 != 0);
            out.push(Subvolume {
                id: *id,
                parent: *parent,
                path,
                readonly,
            });
        }
        out[1..].sort_by_key(|s| s.id);
        Ok(out)
    }

    /// The path of directory `dir` from `top` inside one subvolume (through `INODE_REF`).
    fn dir_path(&self, tree: TreeRoot, top: u64, mut dir: u64) -> Result<Vec<u8>> {
        let mut comps: Vec<Vec<u8>> = Vec::new();
        while dir != top {
            if comps.len() > MAX_PATH_DEPTH {
                return Err(Error::corrupt(format!(
                    "btrfs: directory {dir} lies more than {MAX_PATH_DEPTH} levels deep (a loop?)"
                )));
            }
            let mut next = None;
            self.search(
                tree,
                Key::new(dir, INODE_REF, 0),
                Key::new(dir, INODE_REF, u64::MAX),
                &mut |k, d| {
                    next = Some((k.offset, first_inode_ref_name(d)?));
                    Ok(Flow::Break(()))
                },
            )?;
            let (parent, name) = next.ok_or_else(|| {
                Error::corrupt(format!(
                    "btrfs: directory {dir} has no name (inode reference)"
                ))
            })?;
            comps.push(name);
            dir = parent;
        }
        comps.reverse();
        Ok(comps.join(&b'/'))
    }
}

/// The name hash of `DIR_ITEM` and `XATTR_ITEM` keys: crc32c seeded with `~1`, without
/// the final inversion (the kernel's `btrfs_name_hash`).
pub fn name_hash(name: &[u8]) -> u32 {
    !crc32c::crc32c_append(1, name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn name_hashes_are_the_kernels() {
        // `btrfs inspect-internal dump-tree -t root` of any btrfs: (6 DIR_ITEM 2378154706)
        // is the `default` entry of the root tree's directory.
        assert_eq!(super::name_hash(b"default"), 2378154706);
    }
}
