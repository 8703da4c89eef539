//! [`EditedTree`]: an ext partition's tree with host trees grafted in and paths removed —
//! the source `copy-in` and `rm` rebuild an ext filesystem from (with the engine `mkfs`
//! uses, identity kept), and the rules both of their engines apply to a request.
//!
//! Grafts replace files of the same path and are merged into existing directories (the
//! graft's directory metadata wins, as with tar); replacing a directory by a file, or a
//! path given twice, is refused when the tree is made, before any work.

use anyhow::{bail, Result};
use std::collections::{HashMap, HashSet};
use subroot_formats::tree::{is_under, Entry, Kind, TreeSource, Visitor};

/// One host tree to graft: `root` of `tree` lands at `dest`.
#[derive(Clone)]
pub struct Graft<'a> {
    pub tree: &'a dyn TreeSource,
    pub root: Vec<u8>,
    pub dest: Vec<u8>,
}

/// `base` with `grafts` added and `removed` (with everything below them) taken away.
pub struct EditedTree<'a> {
    base: &'a dyn TreeSource,
    grafts: Vec<Graft<'a>>,
    removed: Vec<Vec<u8>>,
    /// Kind of every grafted path, and the entries of grafted directories.
    kinds: HashMap<Vec<u8>, Kind>,
    dirs: HashMap<Vec<u8>, Entry>,
}

fn rebase(path: &[u8], root: &[u8], dest: &[u8]) -> Vec<u8> {
    let rel = if root.is_empty() {
        path
    } else {
        let r = path.strip_prefix(root).unwrap_or(path);
        r.strip_prefix(b"/").unwrap_or(r)
    };
    let mut p = dest.to_vec();
    if !p.is_empty() && !rel.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(rel);
    p
}

impl<'a> EditedTree<'a> {
    /// Index the grafts (walking them once, without reading contents) and check them
    /// against `base`: `base_kind(path)` says what `base` has at a path.
    pub fn new(
        base: &'a dyn TreeSource,
        grafts: Vec<Graft<'a>>,
        removed: Vec<Vec<u8>>,
        base_kind: &dyn Fn(&[u8]) -> Option<Kind>,
    ) -> Result<Self> {
        let mut kinds = HashMap::new();
        let mut dirs = HashMap::new();
        for g in &grafts {
            let mut err = None;
            g.tree.walk(&g.root, &mut |e, _| {
                let p = rebase(&e.path, &g.root, &g.dest);
                if kinds.insert(p.clone(), e.kind).is_some() && err.is_none() {
                    err = Some(format!(
                        "/{} would be copied in twice",
                        String::from_utf8_lossy(&p)
                    ));
                }
                if e.kind == Kind::Dir {
                    let mut d = e.clone();
                    d.path = p;
                    dirs.insert(d.path.clone(), d);
                }
                Ok(())
            })?;
            if let Some(e) = err {
                bail!(e);
            }
        }
        for (p, k) in &kinds {
            if *k != Kind::Dir && base_kind(p) == Some(Kind::Dir) {
                bail!(
                    "cannot replace directory /{} with a file",
                    String::from_utf8_lossy(p)
                );
            }
        }
        Ok(EditedTree {
            base,
            grafts,
            removed,
            kinds,
            dirs,
        })
    }
}

impl TreeSource for EditedTree<'_> {
    fn walk(&self, root: &[u8], visit: &mut Visitor<'_>) -> subroot_formats::Result<()> {
        if !root.is_empty() {
            return Err(subroot_formats::Error::InvalidArgument(
                "an edited tree is walked from its root only".into(),
            ));
        }
        let mut merged: HashSet<Vec<u8>> = HashSet::new();
        self.base.walk(b"", &mut |e, c| {
            if self.removed.iter().any(|r| is_under(&e.path, r)) {
                return Ok(());
            }
            match (self.kinds.get(&e.path), e.kind) {
                (None, _) => visit(e, c),
                // An existing directory merged with a grafted one: the graft's metadata.
                (Some(Kind::Dir), Kind::Dir) => {
                    merged.insert(e.path.clone());
                    match self.dirs.get(&e.path) {
                        Some(d) => visit(d, None),
                        None => visit(e, None),
                    }
                }
                // A file (or other non-directory) replaced by the graft.
                _ => Ok(()),
            }
        })?;
        // Hard-link ids of grafts are renumbered above every ext inode number.
        let mut ids: HashMap<(usize, u64), u64> = HashMap::new();
        for (i, g) in self.grafts.iter().enumerate() {
            g.tree.walk(&g.root, &mut |e, c| {
                let path = rebase(&e.path, &g.root, &g.dest);
                if merged.contains(&path) {
                    return Ok(());
                }
                let mut e = e.clone();
                e.path = path;
                if let Some(id) = e.hardlink_id {
                    let n = ids.len() as u64;
                    e.hardlink_id = Some(*ids.entry((i, id)).or_insert((1 << 40) + n));
                }
                visit(&e, c)
            })?;
        }
        Ok(())
    }
}
