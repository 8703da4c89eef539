//! [`BtrfsTree`]: one subvolume of a btrfs read as a [`TreeSource`].
//!
//! Mapping onto the tree model, as the kernel shows the subvolume mounted:
//!
//! * the tree is the default subvolume (`btrfs subvolume set-default`; the top level,
//!   id 5, when none was set), or the one chosen by id or by path from the top level;
//! * a subvolume nested inside appears as a directory holding that subvolume's files (as
//!   when the top is mounted); a subvolume entry left behind in a snapshot (the snapshot
//!   does not hold the nested subvolume) is an empty directory, mode 0755, owner 0:0,
//!   with the times of the directory holding it (the kernel shows its atime, and the
//!   time of the lookup as mtime and ctime);
//! * names are the directory entries' bytes, siblings sorted by name bytes; modes,
//!   owners, nanosecond times (`crtime` is btrfs's `otime`), xattrs (sorted by name; POSIX
//!   ACLs are stored as `system.posix_acl_*` in the standard encoding already);
//! * files with several links share a `hardlink_id` (subvolume and inode number);
//! * device numbers are decoded as the kernel stores them (major << 20 | minor);
//! * holes, prealloc extents and the gap to the end of a file read as zeros and are
//!   `Zero` in the extent map; compressed extents (zlib, lzo, zstd) are decompressed.

use super::content::BtrfsContent;
use super::fs::BtrfsFs;
use super::items::{DirEntry, InodeItem};
use super::key_type::{INODE_ITEM, ROOT_ITEM};
use super::search::TreeRoot;
use crate::block::BlockDevice;
use crate::tree::{join, sort_by_name, Entry, Kind, Metadata, Timestamp, TreeSource, Visitor};
use crate::{Error, Result};
use std::io::{Read, Write};

/// Directory nesting followed before giving up (a loop of subvolume entries would nest
/// forever).
const MAX_DEPTH: usize = 1024;
/// Entries of one directory at most.
const MAX_ENTRIES: usize = 1 << 22;
/// Longest symlink target.
const MAX_LINK: u64 = 4095;

/// An inode: the subvolume and tree holding it, and its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    subvol: u64,
    tree: TreeRoot,
    ino: u64,
}

/// What a path names.
#[derive(Debug, Clone)]
enum Node {
    Inode(Loc, InodeItem),
    /// A subvolume entry whose subvolume is not referenced from here, with the inode of
    /// the directory holding it (whose times it shows).
    EmptySubvolume(Box<InodeItem>),
}

/// A subvolume of a btrfs filesystem, read as a tree.
pub struct BtrfsTree<D: BlockDevice> {
    fs: BtrfsFs<D>,
    top: Loc,
}

impl<D: BlockDevice> std::fmt::Debug for BtrfsTree<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BtrfsTree")
            .field("subvol", &self.top.subvol)
            .finish()
    }
}

impl<D: BlockDevice> BtrfsTree<D> {
    /// Open the btrfs on `dev` at subvolume `subvol`: `None` for the default one, a
    /// number for that id, else a path from the top level (as `btrfs subvolume list`
    /// prints it; leading and trailing `/` ignored).
    pub fn open(dev: D, subvol: Option<&str>) -> Result<Self> {
        let fs = BtrfsFs::open(dev)?;
        let id = match subvol {
            None => fs.default_subvolume()?,
            Some(s) => match s.parse::<u64>() {
                Ok(id) => id,
                Err(_) => {
                    let want = s.trim_matches('/').as_bytes();
                    let all = fs.subvolumes()?;
                    let names: Vec<String> = all
                        .iter()
                        .map(|v| format!("{} /{}", v.id, String::from_utf8_lossy(&v.path)))
                        .collect();
                    all.iter()
                        .find(|v| v.path == want)
                        .map(|v| v.id)
                        .ok_or_else(|| {
                            Error::NotFound(format!(
                                "btrfs: no subvolume at {s:?} (it has: {})",
                                names.join(", ")
                            ))
                        })?
                }
            },
        };
        let (tree, ino) = fs.subvolume_root(id)?;
        Ok(BtrfsTree {
            fs,
            top: Loc {
                subvol: id,
                tree,
                ino,
            },
        })
    }

    /// The filesystem underneath (subvolumes, superblock).
    pub fn fs(&self) -> &BtrfsFs<D> {
        &self.fs
    }

    /// The id of the subvolume read.
    pub fn subvolume(&self) -> u64 {
        self.top.subvol
    }

    /// Bytes in use (the superblock's count; all subvolumes together).
    pub fn used_bytes(&self) -> u64 {
        self.fs.superblock().bytes_used
    }

    /// What `d` (an entry of the directory `parent`, whose inode is `dir`) names.
    fn enter(&self, parent: &Loc, dir: &InodeItem, d: &DirEntry) -> Result<Node> {
        let loc = match d.location.ty {
            INODE_ITEM => Loc {
                ino: d.location.objectid,
                ..*parent
            },
            ROOT_ITEM => {
                let id = d.location.objectid;
                if !self.fs.has_root_ref(parent.subvol, id)? {
                    return Ok(Node::EmptySubvolume(Box::new(dir.clone())));
                }
                let (tree, ino) = self.fs.subvolume_root(id)?;
                Loc {
                    subvol: id,
                    tree,
                    ino,
                }
            }
            t => {
                return Err(Error::corrupt(format!(
                    "btrfs: the directory entry {:?} points to an item of type {t}",
                    String::from_utf8_lossy(&d.name)
                )))
            }
        };
        Ok(Node::Inode(loc, self.fs.inode(loc.tree, loc.ino)?))
    }

    /// What `path` (relative; empty = the top) names.
    fn find(&self, path: &[u8]) -> Result<Node> {
        let mut node = Node::Inode(self.top, self.fs.inode(self.top.tree, self.top.ino)?);
        for comp in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            let (loc, dir) = match &node {
                Node::Inode(loc, i) if Kind::from_mode(i.mode) == Some(Kind::Dir) => {
                    (*loc, i.clone())
                }
                Node::EmptySubvolume(_) => return Err(not_found(comp, path)),
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "btrfs: {:?} is not a directory",
                        String::from_utf8_lossy(path)
                    )))
                }
            };
            let d = self
                .fs
                .lookup(loc.tree, loc.ino, comp)?
                .ok_or_else(|| not_found(comp, path))?;
            node = self.enter(&loc, &dir, &d)?;
        }
        Ok(node)
    }

    /// The sorted entries of the directory `loc` (inode `dir`), with what each names.
    fn list(&self, loc: &Loc, dir: &InodeItem, path: &[u8]) -> Result<Vec<(Vec<u8>, Node)>> {
        let mut v = Vec::new();
        for d in self.fs.dir_entries(loc.tree, loc.ino, MAX_ENTRIES)? {
            if d.name.contains(&b'/') || d.name.contains(&0) || d.name == b"." || d.name == b".." {
                return Err(Error::corrupt(format!(
                    "btrfs: directory {:?} has an entry named {:?}",
                    String::from_utf8_lossy(path),
                    String::from_utf8_lossy(&d.name)
                )));
            }
            let node = self.enter(loc, dir, &d)?;
            v.push((d.name, node));
        }
        sort_by_name(&mut v, "btrfs", path)?;
        Ok(v)
    }

    /// The tree entry for `node` at `path`.
    fn make_entry(&self, path: Vec<u8>, node: &Node) -> Result<Entry> {
        let (loc, i) = match node {
            Node::EmptySubvolume(dir) => {
                return Ok(Entry {
                    path,
                    kind: Kind::Dir,
                    meta: Metadata {
                        perm: 0o755,
                        atime: dir.atime,
                        mtime: dir.mtime,
                        ctime: dir.ctime,
                        ..Default::default()
                    },
                    size: 0,
                    rdev: (0, 0),
                    link_target: None,
                    hardlink_id: None,
                })
            }
            Node::Inode(loc, i) => (loc, i),
        };
        let kind = Kind::from_mode(i.mode).ok_or_else(|| {
            Error::corrupt(format!(
                "btrfs: {:?} (inode {}) has mode {:o}, of no known kind",
                String::from_utf8_lossy(&path),
                loc.ino,
                i.mode
            ))
        })?;
        let link_target = if kind == Kind::Symlink {
            if i.size > MAX_LINK {
                return Err(Error::corrupt(format!(
                    "btrfs: the symlink {:?} claims a {}-byte target",
                    String::from_utf8_lossy(&path),
                    i.size
                )));
            }
            let mut t = Vec::new();
            BtrfsContent::new(&self.fs, loc.tree, loc.ino, i.size)
                .read_to_end(&mut t)
                .map_err(|e| Error::io("reading a symlink", e))?;
            Some(t)
        } else {
            None
        };
        let rdev = match kind {
            Kind::CharDevice | Kind::BlockDevice => {
                (((i.rdev >> 20) & 0xfff) as u32, (i.rdev & 0xfffff) as u32)
            }
            _ => (0, 0),
        };
        Ok(Entry {
            path,
            kind,
            meta: Metadata {
                perm: i.mode & 0o7777,
                uid: i.uid,
                gid: i.gid,
                atime: i.atime,
                mtime: i.mtime,
                ctime: i.ctime,
                crtime: Some(i.otime).filter(|t| *t != Timestamp::default()),
                xattrs: self.fs.xattrs(loc.tree, loc.ino)?,
                flags: None,
            },
            size: match kind {
                Kind::File | Kind::Symlink => i.size,
                _ => 0,
            },
            rdev,
            link_target,
            hardlink_id: (kind != Kind::Dir && i.nlink > 1)
                .then(|| loc.subvol.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ loc.ino),
        })
    }

    /// The entry at `path` (relative; empty = the top of the subvolume).
    pub fn entry(&self, path: &[u8]) -> Result<Entry> {
        let node = self.find(path)?;
        self.make_entry(path.to_vec(), &node)
    }

    /// The entries of directory `path`, sorted by name.
    pub fn children(&self, path: &[u8]) -> Result<Vec<Entry>> {
        let Some((loc, dir)) = self.dir_loc(path)? else {
            return Ok(Vec::new());
        };
        self.list(&loc, &dir, path)?
            .iter()
            .map(|(n, node)| self.make_entry(join(path, n), node))
            .collect()
    }

    /// The directory at `path` (`None`: an empty subvolume entry).
    fn dir_loc(&self, path: &[u8]) -> Result<Option<(Loc, InodeItem)>> {
        match self.find(path)? {
            Node::Inode(loc, i) if Kind::from_mode(i.mode) == Some(Kind::Dir) => Ok(Some((loc, i))),
            Node::EmptySubvolume(_) => Ok(None),
            Node::Inode(..) => Err(Error::InvalidArgument(format!(
                "btrfs: {:?} is not a directory",
                String::from_utf8_lossy(path)
            ))),
        }
    }

    /// The content of the regular file at `path`.
    pub fn open_file(&self, path: &[u8]) -> Result<BtrfsContent<'_, D>> {
        match self.find(path)? {
            Node::Inode(loc, i) if Kind::from_mode(i.mode) == Some(Kind::File) => {
                Ok(BtrfsContent::new(&self.fs, loc.tree, loc.ino, i.size))
            }
            _ => Err(Error::InvalidArgument(format!(
                "btrfs: {:?} is not a regular file",
                String::from_utf8_lossy(path)
            ))),
        }
    }

    /// Copy the regular file at `path` to `out`; returns the bytes copied.
    pub fn copy_file(&self, path: &[u8], out: &mut dyn Write) -> Result<u64> {
        let mut c = self.open_file(path)?;
        std::io::copy(&mut c, out)
            .map_err(|e| Error::io(format!("copying {:?}", String::from_utf8_lossy(path)), e))
    }

    fn walk_dir(
        &self,
        loc: &Loc,
        dir: &InodeItem,
        path: &mut Vec<u8>,
        depth: usize,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::corrupt(format!(
                "btrfs: directories nested deeper than {MAX_DEPTH} levels at {:?} (a loop?)",
                String::from_utf8_lossy(path)
            )));
        }
        let base = path.len();
        for (name, node) in self.list(loc, dir, path)? {
            path.truncate(base);
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&name);
            self.visit_node(&node, path, depth, visit)?;
        }
        path.truncate(base);
        Ok(())
    }

    /// Visit `node` at `path`, and below it.
    fn visit_node(
        &self,
        node: &Node,
        path: &mut Vec<u8>,
        depth: usize,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        let entry = self.make_entry(path.clone(), node)?;
        match (node, entry.kind) {
            (Node::Inode(loc, i), Kind::Dir) => {
                visit(&entry, None)?;
                self.walk_dir(loc, i, path, depth + 1, visit)
            }
            (Node::Inode(loc, i), Kind::File) => {
                let mut c = BtrfsContent::new(&self.fs, loc.tree, loc.ino, i.size);
                visit(&entry, Some(&mut c))
            }
            _ => visit(&entry, None),
        }
    }
}

impl<D: BlockDevice> TreeSource for BtrfsTree<D> {
    fn walk(&self, root: &[u8], visit: &mut Visitor<'_>) -> Result<()> {
        let node = self.find(root)?;
        self.visit_node(&node, &mut root.to_vec(), 0, visit)
    }
}

fn not_found(comp: &[u8], path: &[u8]) -> Error {
    Error::NotFound(format!(
        "btrfs: no entry {:?} in the directory of {:?}",
        String::from_utf8_lossy(comp),
        String::from_utf8_lossy(path)
    ))
}
