//! The installed system's file namespace as the run goes: the image's filesystems as they
//! are ([`Installed`]) under a shadow of what the operations planned so far have made,
//! replaced and removed. OS paths resolve here as the kernel would resolve them in the
//! booted system: across the mounts of `/etc/fstab`, following symbolic links (absolute
//! ones from the system's own root, so never out of the image), `..` going up — and a
//! `..` the user wrote that would climb above `/` is refused.
//!
//! The same namespace with an empty shadow is the read-only [`Guest`] that system
//! operations expand against.

use super::installed::{FsIndex, Installed};
use super::op::{EntryKind, Guest};
use crate::ops::inspect::view::MAX_TEXT;
use anyhow::{bail, Context, Result};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use subroot_formats::tree::{Kind, Metadata, TreeSource};

/// Symbolic links followed for one path before giving up (as Linux's `ELOOP`).
const MAX_HOPS: usize = 40;

/// What is at a path, as far as the plan knows.
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    pub meta: Metadata,
    pub size: u64,
    pub target: Option<Vec<u8>>,
    /// True when the run made it (nothing of the image's is below it).
    pub fresh: bool,
    /// Its content when the run set it (else: the image's).
    pub content: Option<Content>,
}

impl Node {
    /// Something the run makes.
    pub fn made(
        kind: Kind,
        meta: Metadata,
        size: u64,
        target: Option<Vec<u8>>,
        content: Option<Content>,
    ) -> Node {
        Node {
            kind,
            meta,
            size,
            target,
            fresh: true,
            content,
        }
    }
}

/// A file's new content.
#[derive(Debug, Clone)]
pub enum Content {
    Bytes(Arc<Vec<u8>>),
    /// A host file, read when the edit is applied.
    Host(std::path::PathBuf),
    /// A file of a tar archive merged in by an earlier operation.
    TarMember {
        archive: std::path::PathBuf,
        path: Vec<u8>,
    },
}

impl Content {
    /// Its length (a tar member's is not known without reading the archive: 0).
    pub fn len(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Host(h) => std::fs::metadata(h).map(|m| m.len()).unwrap_or(0),
            Content::TarMember { .. } => 0,
        }
    }

    /// The whole content in memory (at most [`MAX_TEXT`] bytes).
    pub fn read(&self) -> Result<Vec<u8>> {
        match self {
            Content::Bytes(b) => Ok(b.to_vec()),
            Content::Host(p) => {
                std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
            }
            Content::TarMember { archive, path } => {
                let shown = || {
                    format!(
                        "/{} of the tar archive {}",
                        String::from_utf8_lossy(path),
                        archive.display()
                    )
                };
                let dev = subroot_formats::block::RawFile::open(archive)
                    .with_context(|| format!("cannot open {}", archive.display()))?;
                let tar = subroot_formats::tar::TarTree::new(dev);
                // The member, or (a hard link) the first member of its group, which
                // carries the data.
                let mut found = None;
                let mut group = None;
                for pass in 0..2 {
                    tar.walk(b"", &mut |e, content| {
                        let wanted = if pass == 0 {
                            e.path == *path
                        } else {
                            group.is_some() && e.hardlink_id == group
                        };
                        match content {
                            Some(c) if wanted && found.is_none() && e.size <= MAX_TEXT => {
                                let mut buf = Vec::with_capacity(e.size as usize);
                                std::io::Read::read_to_end(c, &mut buf).map_err(|e| {
                                    subroot_formats::Error::io("reading the archive", e)
                                })?;
                                found = Some(buf);
                            }
                            None if wanted && pass == 0 => group = e.hardlink_id,
                            _ => {}
                        }
                        Ok(())
                    })
                    .with_context(|| format!("cannot read {}", shown()))?;
                    if found.is_some() || group.is_none() {
                        break;
                    }
                }
                found.with_context(|| {
                    format!(
                        "cannot read {} (not a file, or over {MAX_TEXT} bytes)",
                        shown()
                    )
                })
            }
        }
    }
}

/// A directory on the way to a path does not exist (`--delete` takes that as nothing to
/// delete; everything else refuses it).
#[derive(Debug, thiserror::Error)]
#[error("`{path}`: the directory {missing} does not exist")]
pub struct MissingDir {
    pub path: String,
    pub missing: String,
}

/// A resolved path: OS components (canonical), the filesystem and the path inside it.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub os: Vec<u8>,
    pub fs: FsIndex,
    pub path: Vec<u8>,
}

impl Resolved {
    /// `/OS/PATH`, for messages.
    pub fn shown(&self) -> String {
        format!("/{}", String::from_utf8_lossy(&self.os))
    }
}

/// The namespace (see the module comment).
pub struct Namespace<'a> {
    pub sys: &'a Installed,
    /// What the plan changed, by filesystem and path in it; `None`: removed.
    shadow: HashMap<(FsIndex, Vec<u8>), Option<Node>>,
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn parents(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut end = path.len();
    std::iter::from_fn(move || {
        let i = path[..end].iter().rposition(|&b| b == b'/');
        match i {
            Some(i) => {
                end = i;
                Some(&path[..i])
            }
            None if end > 0 => {
                end = 0;
                Some(&path[..0])
            }
            None => None,
        }
    })
}

impl<'a> Namespace<'a> {
    pub fn new(sys: &'a Installed) -> Self {
        Namespace {
            sys,
            shadow: HashMap::new(),
        }
    }

    /// Resolve OS path `path` (absolute): every component but the last must be a
    /// directory (symlinks followed); the last is followed when `follow` and may be
    /// missing.
    pub fn resolve(&self, path: &str, follow: bool) -> Result<Resolved> {
        if !path.starts_with('/') {
            bail!("`{path}`: paths inside the image are absolute (start with `/`)");
        }
        let comps = |p: &[u8]| -> Vec<Vec<u8>> {
            p.split(|&b| b == b'/')
                .filter(|c| !c.is_empty() && *c != b".")
                .map(<[u8]>::to_vec)
                .collect()
        };
        // (component, written by the user)
        let mut todo: VecDeque<(Vec<u8>, bool)> = comps(path.as_bytes())
            .into_iter()
            .map(|c| (c, true))
            .collect();
        let mut cur: Vec<Vec<u8>> = Vec::new();
        let mut hops = 0;
        while let Some((c, user)) = todo.pop_front() {
            if c == b".." {
                if cur.pop().is_none() && user {
                    bail!("`{path}` escapes the image's root (`..` above `/`)");
                }
                continue;
            }
            cur.push(c);
            let last = todo.is_empty();
            if last && !follow {
                break;
            }
            let os = cur.join(&b'/');
            let node = self.node_at(&os)?;
            match node {
                Some(n) if n.kind == Kind::Symlink => {
                    hops += 1;
                    if hops > MAX_HOPS {
                        bail!("`{path}`: too many levels of symbolic links");
                    }
                    cur.pop();
                    let target = n.target.unwrap_or_default();
                    if target.starts_with(b"/") {
                        cur.clear();
                    }
                    for t in comps(&target).into_iter().rev() {
                        todo.push_front((t, false));
                    }
                }
                Some(n) if !last && n.kind != Kind::Dir => {
                    bail!(
                        "`{path}`: /{} is not a directory",
                        String::from_utf8_lossy(&os)
                    )
                }
                None if !last => {
                    return Err(MissingDir {
                        path: path.to_string(),
                        missing: format!("/{}", String::from_utf8_lossy(&os)),
                    }
                    .into())
                }
                _ => {}
            }
        }
        let os = cur.join(&b'/');
        let (fs, p) = self.sys.place(&os);
        Ok(Resolved { os, fs, path: p })
    }

    /// What is at OS path `os` (canonical, no symlink followed at the last component).
    fn node_at(&self, os: &[u8]) -> Result<Option<Node>> {
        let (fs, p) = self.sys.place(os);
        self.node(fs, &p).with_context(|| {
            format!(
                "/{} is on {}",
                String::from_utf8_lossy(os),
                self.sys.describe(fs)
            )
        })
    }

    /// The shadow's key of `path` of `fs`: FAT names match ignoring case.
    fn key(&self, fs: FsIndex, path: &[u8]) -> (FsIndex, Vec<u8>) {
        if self.sys.kind(fs) == Some("vfat") {
            let lower = String::from_utf8_lossy(path).to_lowercase();
            return (fs, lower.into_bytes());
        }
        (fs, path.to_vec())
    }

    /// What is at `path` of filesystem `fs`.
    pub fn node(&self, fs: FsIndex, path: &[u8]) -> Result<Option<Node>> {
        if let Some(n) = self.shadow.get(&self.key(fs, path)) {
            return Ok(n.clone());
        }
        for up in parents(path) {
            match self.shadow.get(&self.key(fs, up)) {
                Some(None) => return Ok(None),
                Some(Some(n)) if n.fresh => return Ok(None),
                _ => {}
            }
        }
        let Some(m) = &self.sys.slots[fs].mounted else {
            return Err(crate::exit::InputError::UnsupportedFilesystem(format!(
                "{} is mounted there, which subroot does not read or write (ext2/3/4 and \
                 FAT only)",
                self.sys.describe(fs)
            ))
            .into());
        };
        match m.tree.entry(path) {
            Ok(e) => Ok(Some(Node {
                kind: e.kind,
                meta: e.meta,
                size: e.size,
                target: e.link_target,
                fresh: false,
                content: None,
            })),
            Err(subroot_formats::Error::NotFound(_)) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!(
                "cannot look up /{} in {}",
                String::from_utf8_lossy(path),
                self.sys.describe(fs)
            ))),
        }
    }

    /// Record that `path` of `fs` is now `node` (`None`: removed, with all below it).
    pub fn set(&mut self, fs: FsIndex, path: &[u8], node: Option<Node>) {
        let key = self.key(fs, path);
        if node.is_none() || node.as_ref().is_some_and(|n| n.fresh) {
            let mut prefix = key.1.clone();
            prefix.push(b'/');
            self.shadow
                .retain(|(f, p), _| !(*f == fs && (p.starts_with(&prefix) || path.is_empty())));
        }
        self.shadow.insert(key, node);
    }

    /// The content of regular file `path` of `fs` as planned so far (at most
    /// [`MAX_TEXT`] bytes).
    pub fn content(&self, fs: FsIndex, path: &[u8], node: &Node) -> Result<Vec<u8>> {
        let shown = || {
            format!(
                "/{} on {}",
                String::from_utf8_lossy(path),
                self.sys.describe(fs)
            )
        };
        if node.size > MAX_TEXT {
            bail!(
                "{} has {} bytes; files are edited in memory, up to {MAX_TEXT} bytes",
                shown(),
                node.size
            );
        }
        match &node.content {
            Some(c) => c.read(),
            None => {
                let m = self.sys.slots[fs]
                    .mounted
                    .as_ref()
                    .context("internal: the filesystem is not open")?;
                let mut buf = Vec::with_capacity(node.size as usize);
                m.tree
                    .copy_file(path, &mut buf)
                    .with_context(|| format!("cannot read {}", shown()))?;
                Ok(buf)
            }
        }
    }

    /// A path under `dir` (for messages and children).
    pub fn child(dir: &[u8], name: &[u8]) -> Vec<u8> {
        join(dir, name)
    }
}

/// The namespace as planned so far is what a system operation given after other
/// operations sees: their writes, links and removals included.
impl Guest for Namespace<'_> {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let Ok(r) = self.resolve(path, true) else {
            return Ok(None);
        };
        match self.node(r.fs, &r.path)? {
            Some(n) if n.kind == Kind::File => Ok(Some(self.content(r.fs, &r.path, &n)?)),
            _ => Ok(None),
        }
    }

    fn list(&self, dir: &str) -> Result<Option<Vec<String>>> {
        let Ok(r) = self.resolve(dir, true) else {
            return Ok(None);
        };
        let Some(node) = self.node(r.fs, &r.path)? else {
            return Ok(None);
        };
        if node.kind != Kind::Dir {
            return Ok(None);
        }
        // The image's entries (none under a directory the run made), less what the run
        // removed, plus what it made.
        let mut names: std::collections::BTreeSet<Vec<u8>> = std::collections::BTreeSet::new();
        if !node.fresh {
            let m = self.sys.slots[r.fs]
                .mounted
                .as_ref()
                .context("internal: the filesystem is not open")?;
            for e in m
                .tree
                .children(&r.path)
                .with_context(|| format!("cannot list {}", r.shown()))?
            {
                names.insert(e.name().to_vec());
            }
        }
        let key = self.key(r.fs, &r.path);
        for ((fs, p), n) in &self.shadow {
            let cut = p.iter().rposition(|&b| b == b'/');
            let parent = cut.map_or(&[][..], |i| &p[..i]);
            let name = cut.map_or(&p[..], |i| &p[i + 1..]);
            if *fs != r.fs || parent != key.1.as_slice() || p.is_empty() {
                continue;
            }
            match n {
                Some(_) => names.insert(name.to_vec()),
                None => names.remove(name),
            };
        }
        Ok(Some(
            names
                .iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect(),
        ))
    }

    fn exists(&self, path: &str) -> Result<bool> {
        let Ok(r) = self.resolve(path, false) else {
            return Ok(false);
        };
        Ok(self.node(r.fs, &r.path)?.is_some())
    }

    fn kind(&self, path: &str) -> Result<Option<EntryKind>> {
        let Ok(r) = self.resolve(path, false) else {
            return Ok(None);
        };
        Ok(self.node(r.fs, &r.path)?.map(|n| match n.kind {
            Kind::File => EntryKind::File,
            Kind::Dir => EntryKind::Dir,
            Kind::Symlink => EntryKind::Symlink,
            _ => EntryKind::Other,
        }))
    }
}
