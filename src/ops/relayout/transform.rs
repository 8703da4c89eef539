//! The relayout as a tree transform: a [`TreeSource`] that presents the input root
//! filesystem with the operating system moved into the subroot directory.
//!
//! Given the input tree and a [`Layout`], the walk yields, in the tree model's order
//! (depth-first, siblings sorted by name bytes):
//! - the root and every kept top-level entry (shared directories, `lost+found`, anything
//!   not moved) unchanged;
//! - every moved top-level entry and its whole subtree under `SUBROOT/`, metadata
//!   untouched (only the paths change);
//! - the added entries (the subroot directory itself, the empty mount points with their
//!   `EMPTY` files, `sysroot`, the installed hook files and any missing parents) at their
//!   sorted places;
//! - files whose content the plan replaces (edited boot configuration, rewritten initrds)
//!   with the new content and size, other metadata kept; a hard-linked one leaves its
//!   group (its other names keep the old content, as after `sed -i`).
//!
//! Nothing is buffered beyond the added entries' small contents: each top-level subtree
//! is one walk of the input, so the cost is one pass over the data.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, Extent};
use subroot_formats::tree::{BytesContent, Content, Entry, TreeSource, Visitor};
use subroot_formats::{Error, Result};

/// The sort key of a path: its components (the tree order compares component by
/// component, which is not the byte order of the joined path).
pub type Key = Vec<Vec<u8>>;

/// The key of a `/`-joined relative path (the root is the empty key).
pub fn key_of(path: &[u8]) -> Key {
    if path.is_empty() {
        return Vec::new();
    }
    path.split(|&b| b == b'/').map(<[u8]>::to_vec).collect()
}

/// New content for a file.
#[derive(Clone)]
pub enum NewContent {
    /// Small content held in memory (edited configuration, hook scripts).
    Bytes(Vec<u8>),
    /// Content in a host file (an initrd re-encoded whole), read when the file is visited.
    File { path: PathBuf, len: u64 },
    /// The first `kept` bytes of the file as it is (`base`, read in place in the input) with
    /// a host file's `tail_len` bytes after them (an initrd with a segment appended): the
    /// edit engine truncates the file at `kept` and writes only the tail; the rebuild engine
    /// reads both.
    Appended {
        base: Arc<dyn BlockDevice>,
        kept: u64,
        tail: PathBuf,
        tail_len: u64,
    },
}

impl std::fmt::Debug for NewContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NewContent::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            NewContent::File { path, len } => write!(f, "File({}, {len} bytes)", path.display()),
            NewContent::Appended {
                kept,
                tail,
                tail_len,
                ..
            } => write!(
                f,
                "Appended({kept} bytes kept, {tail_len} from {})",
                tail.display()
            ),
        }
    }
}

impl NewContent {
    /// The content's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            NewContent::Bytes(b) => b.len() as u64,
            NewContent::File { len, .. } => *len,
            NewContent::Appended { kept, tail_len, .. } => kept + tail_len,
        }
    }

    pub(super) fn open(&self) -> Result<Box<dyn Content>> {
        Ok(match self {
            NewContent::Bytes(b) => Box::new(BytesContent::new(b.clone())),
            NewContent::File { path, len } => Box::new(HostFileContent::open(path, *len)?),
            NewContent::Appended {
                base,
                kept,
                tail,
                tail_len,
            } => Box::new(AppendedContent {
                base: base.clone(),
                kept: *kept,
                at: 0,
                tail: HostFileContent::open(tail, *tail_len)?,
            }),
        })
    }

    /// When this content is the first bytes of a file of `current` bytes with other bytes
    /// appended: how many bytes stay and the appended rest.
    pub(super) fn appended_to(&self, current: u64) -> Result<Option<(u64, Box<dyn Content>)>> {
        Ok(match self {
            NewContent::Appended {
                kept,
                tail,
                tail_len,
                ..
            } if *kept <= current => {
                Some((*kept, Box::new(HostFileContent::open(tail, *tail_len)?)))
            }
            _ => None,
        })
    }
}

/// [`NewContent::Appended`] read whole: the kept bytes from the input, then the tail.
struct AppendedContent {
    base: Arc<dyn BlockDevice>,
    kept: u64,
    at: u64,
    tail: HostFileContent,
}

impl Read for AppendedContent {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at >= self.kept {
            return self.tail.read(buf);
        }
        let n = buf.len().min((self.kept - self.at) as usize);
        self.base
            .read_at(&mut buf[..n], self.at)
            .map_err(std::io::Error::other)?;
        self.at += n as u64;
        Ok(n)
    }
}

impl Content for AppendedContent {
    fn extents(&self) -> Result<Vec<Extent>> {
        Ok(subroot_formats::tree::all_data(self.kept + self.tail.len))
    }
}

/// A host file's content, all data (rewritten initrds are compressed: no holes).
struct HostFileContent {
    file: std::fs::File,
    len: u64,
}

impl HostFileContent {
    fn open(path: &std::path::Path, len: u64) -> Result<Self> {
        let file = std::fs::File::open(path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        Ok(HostFileContent { file, len })
    }
}

impl Read for HostFileContent {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read(buf)
    }
}

impl Content for HostFileContent {
    fn extents(&self) -> Result<Vec<Extent>> {
        Ok(subroot_formats::tree::all_data(self.len))
    }
}

/// An entry the transform adds (output path in `entry.path`).
#[derive(Debug, Clone)]
pub struct Added {
    pub entry: Entry,
    /// The content of a regular file.
    pub content: Option<NewContent>,
}

/// What moves where, and what is added or replaced (all paths are output paths).
#[derive(Debug, Clone)]
pub struct Layout {
    /// The input's root directory entry (the output root keeps it).
    pub root: Entry,
    /// The subroot directory's name (`r0`).
    pub subroot: Vec<u8>,
    /// The input's top-level entries, sorted by name (from the plan).
    pub top: Vec<Vec<u8>>,
    /// The top-level names that move into the subroot.
    pub moved: BTreeSet<Vec<u8>>,
    /// Entries to add, including the subroot directory itself.
    pub added: Vec<Added>,
    /// Files whose content is replaced.
    pub replaced: BTreeMap<Vec<u8>, NewContent>,
}

impl Layout {
    /// The output path of input path `path`.
    pub fn output_path(&self, path: &[u8]) -> Vec<u8> {
        let top = path.split(|&b| b == b'/').next().unwrap_or(&[]);
        if !path.is_empty() && self.moved.contains(top) {
            let mut p = self.subroot.clone();
            p.push(b'/');
            p.extend_from_slice(path);
            p
        } else {
            path.to_vec()
        }
    }
}

/// The input tree seen through a [`Layout`].
pub struct RelayoutTree<'a> {
    inner: &'a dyn TreeSource,
    layout: &'a Layout,
}

impl<'a> RelayoutTree<'a> {
    /// Wrap `inner` (the input root filesystem).
    pub fn new(inner: &'a dyn TreeSource, layout: &'a Layout) -> Self {
        RelayoutTree { inner, layout }
    }
}

/// The emitting state of one walk.
struct Emitter<'v, 'w> {
    /// Added entries not yet emitted, by key.
    pending: BTreeMap<Key, &'v Added>,
    replaced: &'v BTreeMap<Vec<u8>, NewContent>,
    /// Only entries under this output path are passed on (empty = all).
    root: Key,
    visit: &'v mut Visitor<'w>,
}

impl Emitter<'_, '_> {
    fn wanted(&self, key: &Key) -> bool {
        key.len() >= self.root.len() && key[..self.root.len()] == self.root[..]
    }

    /// Emit every pending added entry that sorts before `key` (all of them for `None`).
    fn flush(&mut self, key: Option<&Key>) -> Result<()> {
        loop {
            let next = match self.pending.keys().next() {
                Some(k) if key.is_none_or(|key| k < key) => k.clone(),
                _ => return Ok(()),
            };
            let Some(add) = self.pending.remove(&next) else {
                return Ok(());
            };
            if !self.wanted(&next) {
                continue;
            }
            match &add.content {
                Some(c) => {
                    let mut r = c.open()?;
                    (self.visit)(&add.entry, Some(&mut *r))?;
                }
                None => (self.visit)(&add.entry, None)?,
            }
        }
    }

    /// Emit an input entry (already at its output path).
    fn emit(&mut self, e: &Entry, content: Option<&mut dyn Content>) -> Result<()> {
        let key = key_of(&e.path);
        self.flush(Some(&key))?;
        if let Some(dup) = self.pending.remove(&key) {
            return Err(Error::InvalidArgument(format!(
                "relayout: {:?} would be added but the input already has it",
                String::from_utf8_lossy(&dup.entry.path)
            )));
        }
        if !self.wanted(&key) {
            return Ok(());
        }
        match self.replaced.get(&e.path) {
            Some(new) if e.kind == subroot_formats::tree::Kind::File => {
                // The edited name gets an inode of its own, as `sed -i` or update-grub
                // would give it: other hard links keep the old content.
                let mut out = e.clone();
                out.size = new.len();
                out.hardlink_id = None;
                let mut r = new.open()?;
                (self.visit)(&out, Some(&mut *r))
            }
            _ => (self.visit)(e, content),
        }
    }
}

impl TreeSource for RelayoutTree<'_> {
    fn walk(&self, root: &[u8], visit: &mut Visitor<'_>) -> Result<()> {
        let l = self.layout;
        let pending: BTreeMap<Key, &Added> =
            l.added.iter().map(|a| (key_of(&a.entry.path), a)).collect();
        let mut em = Emitter {
            pending,
            replaced: &l.replaced,
            root: key_of(root),
            visit,
        };
        // The order of the top-level walks: by output key.
        let mut walks: Vec<(Key, &[u8])> = l
            .top
            .iter()
            .map(|name| (key_of(&l.output_path(name)), name.as_slice()))
            .collect();
        walks.sort();
        em.emit(&l.root, None)?;
        for (_, name) in walks {
            self.inner.walk(name, &mut |e, c| {
                if l.moved.contains(name) {
                    let mut out = e.clone();
                    out.path = l.output_path(&e.path);
                    em.emit(&out, c)
                } else {
                    em.emit(e, c)
                }
            })?;
        }
        em.flush(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use subroot_formats::tree::{Kind, Metadata};

    /// A tiny in-memory tree: entries in order, files' contents.
    struct Mem(Vec<(Entry, Option<Vec<u8>>)>);

    impl TreeSource for Mem {
        fn walk(&self, root: &[u8], visit: &mut Visitor<'_>) -> Result<()> {
            let rk = key_of(root);
            let mut v: Vec<&(Entry, Option<Vec<u8>>)> = self
                .0
                .iter()
                .filter(|(e, _)| {
                    let k = key_of(&e.path);
                    k.len() >= rk.len() && k[..rk.len()] == rk[..]
                })
                .collect();
            v.sort_by_key(|(e, _)| key_of(&e.path));
            for (e, c) in v {
                match c {
                    Some(d) => visit(e, Some(&mut BytesContent::new(d.clone())))?,
                    None => visit(e, None)?,
                }
            }
            Ok(())
        }
    }

    fn ent(path: &str, kind: Kind, uid: u32) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            meta: Metadata {
                perm: 0o755,
                uid,
                ..Default::default()
            },
            size: 0,
            rdev: (0, 0),
            link_target: None,
            hardlink_id: None,
        }
    }

    #[test]
    fn moves_adds_and_replaces_in_tree_order() {
        let mut file = ent("etc/hostname", Kind::File, 7);
        file.size = 3;
        let mut grub = ent("boot/grub.cfg", Kind::File, 0);
        grub.size = 1;
        let mut link = ent("bin", Kind::Symlink, 0);
        link.link_target = Some(b"usr/bin".to_vec());
        let mem = Mem(vec![
            (ent("", Kind::Dir, 0), None),
            (link, None),
            (ent("boot", Kind::Dir, 3), None),
            (grub, Some(b"x".to_vec())),
            (ent("etc", Kind::Dir, 0), None),
            (file, Some(b"abc".to_vec())),
            (ent("etc-x", Kind::Dir, 0), None),
            (ent("lost+found", Kind::Dir, 0), None),
            (ent("usr", Kind::Dir, 0), None),
            (ent("var", Kind::Dir, 0), None),
        ]);
        let mut added = vec![Added {
            entry: ent("r0", Kind::Dir, 0),
            content: None,
        }];
        let mut boot_mp = ent("r0/boot", Kind::Dir, 3);
        boot_mp.meta.perm = 0o700;
        added.push(Added {
            entry: boot_mp,
            content: None,
        });
        let mut empty = ent("r0/boot/EMPTY", Kind::File, 0);
        empty.size = 0;
        added.push(Added {
            entry: empty,
            content: Some(NewContent::Bytes(Vec::new())),
        });
        let mut hook = ent("r0/etc/new", Kind::File, 0);
        hook.size = 2;
        added.push(Added {
            entry: hook,
            content: Some(NewContent::Bytes(b"hi".to_vec())),
        });
        let layout = Layout {
            root: ent("", Kind::Dir, 0),
            subroot: b"r0".to_vec(),
            top: ["bin", "boot", "etc", "etc-x", "lost+found", "usr", "var"]
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
            moved: ["bin", "etc", "etc-x", "usr"]
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
            added,
            replaced: [(
                b"boot/grub.cfg".to_vec(),
                NewContent::Bytes(b"edited".to_vec()),
            )]
            .into_iter()
            .collect(),
        };
        let t = RelayoutTree::new(&mem, &layout);
        let mut seen = Vec::new();
        t.walk(b"", &mut |e, c| {
            let mut data = String::new();
            if let Some(c) = c {
                c.read_to_string(&mut data).expect("read");
                assert_eq!(data.len() as u64, e.size, "{:?}", e.path);
            }
            seen.push(format!(
                "{} uid={} {}",
                String::from_utf8_lossy(&e.path),
                e.meta.uid,
                data
            ));
            Ok(())
        })
        .expect("walk");
        assert_eq!(
            seen,
            vec![
                " uid=0 ",
                "boot uid=3 ",
                "boot/grub.cfg uid=0 edited",
                "lost+found uid=0 ",
                "r0 uid=0 ",
                "r0/bin uid=0 ",
                "r0/boot uid=3 ",
                "r0/boot/EMPTY uid=0 ",
                "r0/etc uid=0 ",
                "r0/etc/hostname uid=7 abc",
                "r0/etc/new uid=0 hi",
                "r0/etc-x uid=0 ",
                "r0/usr uid=0 ",
                "var uid=0 ",
            ]
        );
        // A sub-walk sees only its part.
        let mut sub = Vec::new();
        t.walk(b"r0/etc", &mut |e, _| {
            sub.push(String::from_utf8_lossy(&e.path).into_owned());
            Ok(())
        })
        .expect("walk");
        assert_eq!(sub, vec!["r0/etc", "r0/etc/hostname", "r0/etc/new"]);
    }

    #[test]
    fn adding_an_existing_path_is_an_error() {
        let mem = Mem(vec![
            (ent("", Kind::Dir, 0), None),
            (ent("etc", Kind::Dir, 0), None),
        ]);
        let layout = Layout {
            root: ent("", Kind::Dir, 0),
            subroot: b"r0".to_vec(),
            top: vec![b"etc".to_vec()],
            moved: BTreeSet::new(),
            added: vec![Added {
                entry: ent("etc", Kind::Dir, 0),
                content: None,
            }],
            replaced: BTreeMap::new(),
        };
        let err = RelayoutTree::new(&mem, &layout)
            .walk(b"", &mut |_, _| Ok(()))
            .expect_err("duplicate");
        assert!(err.to_string().contains("already has it"), "{err}");
    }
}
