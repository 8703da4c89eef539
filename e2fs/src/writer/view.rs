//! [`View`]: the tree as the populate step hands it to mke2fs, and the record of what was
//! asked for.
//!
//! The view walks the caller's tree once, makes every path relative to the chosen root,
//! checks it, records each entry in a [`Spool`] on disk (the intended tree reconcile and
//! verify compare against, with the length and hash of each file's content computed by
//! [`Summing`] as the populate step reads it) and passes on a *shaped* entry: what the
//! populate path can carry, with everything it cannot left for reconcile to make right.
//!
//! Memory: besides the spool's bounded run buffer, the view keeps the first name's
//! metadata and id of each hard-link group (entries with a `hardlink_id`), so it grows with
//! the number of hard-linked inodes only.
//!
//! * [`Shape::Staging`] (a host directory for `mke2fs -d DIR`, written as an ordinary
//!   user): devices become empty regular files, owners/xattrs/times are not applied, and
//!   permissions are widened so the owner can read every file and enter every directory.
//! * [`Shape::Tar`] (a pax archive for `mke2fs -d -`): sockets (no tar type exists)
//!   become empty regular files, and only the first name of a hard-linked non-regular
//!   entry is archived (mke2fs would give each name of a device its own inode); reconcile
//!   links the others.

use super::record::Record;
use super::spool::{Intended, Spool};
use super::sum::Summing;
use crate::{Error, Result};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use subroot_formats::tree::{
    check_relative_path, relative, BytesContent, Entry, Kind, Metadata, TreeSource, Visitor,
};

/// What the populate path can carry (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Staging,
    Tar,
}

struct State {
    spool: Spool,
    count: u64,
    first_links: HashSet<u64>,
    /// The metadata of each hard-link group's first name.
    group_first: HashMap<u64, Metadata>,
}

/// The subtree `root` of a tree, relative paths, shaped for a populate path; a
/// [`TreeSource`] whose `walk` ignores its `root` argument (the view has its own).
pub struct View<'a> {
    tree: &'a dyn TreeSource,
    root: &'a [u8],
    shape: Shape,
    state: RefCell<State>,
}

impl<'a> View<'a> {
    /// A view of `root` in `tree`, spooling the intended tree into the existing
    /// directory `work`.
    pub fn new(
        tree: &'a dyn TreeSource,
        root: &'a [u8],
        shape: Shape,
        work: &Path,
    ) -> Result<Self> {
        Ok(View {
            tree,
            root,
            shape,
            state: RefCell::new(State {
                spool: Spool::new(work)?,
                count: 0,
                first_links: HashSet::new(),
                group_first: HashMap::new(),
            }),
        })
    }

    /// The entries seen by the walk (paths relative to the root) as the tree gave them,
    /// sorted in [`super::record::path_cmp`] order; an error when the walk saw nothing.
    pub fn into_intended(self) -> Result<Intended> {
        let st = self.state.into_inner();
        if st.count == 0 {
            return Err(Error::InvalidArgument(
                "the tree is empty (not even a root directory)".to_string(),
            ));
        }
        st.spool.finish()
    }

    /// The intended entry for `e` (relative path) and what to pass on, if anything.
    fn take(&self, e: &Entry) -> Result<(Entry, Option<Entry>)> {
        let rel = relative(&e.path, self.root).to_vec();
        check_relative_path(&rel).map_err(|why| {
            Error::InvalidArgument(format!(
                "tree entry {:?} {why}",
                String::from_utf8_lossy(&e.path)
            ))
        })?;
        let mut e = e.clone();
        e.path = rel;
        let mut st = self.state.borrow_mut();
        if st.count == 0 && (!e.path.is_empty() || e.kind != Kind::Dir) {
            return Err(Error::InvalidArgument(format!(
                "the tree's root must be a directory, found {:?} ({:?})",
                String::from_utf8_lossy(&e.path),
                e.kind
            )));
        }
        if st.count != 0 && e.path.is_empty() {
            return Err(Error::InvalidArgument(
                "the tree lists its root twice".to_string(),
            ));
        }
        st.count += 1;
        if let Some(id) = e.hardlink_id.filter(|_| e.kind != Kind::Dir) {
            match st.group_first.get(&id) {
                // One inode, one set of metadata: the first name's. (A host directory's
                // later names are stat'ed after the first one's content was read, which
                // may have moved the shared atime.)
                Some(first) => e.meta = first.clone(),
                None => {
                    st.group_first.insert(id, e.meta.clone());
                }
            }
        }
        let want = e.clone();
        let placeholder = |e: &mut Entry| {
            e.kind = Kind::File;
            e.size = 0;
            e.rdev = (0, 0);
            e.link_target = None;
        };
        match self.shape {
            Shape::Staging => {
                if matches!(e.kind, Kind::CharDevice | Kind::BlockDevice) {
                    placeholder(&mut e);
                }
                let floor = if e.kind == Kind::Dir { 0o700 } else { 0o600 };
                e.meta.perm = (e.meta.perm & 0o777) | floor;
                e.meta.xattrs.clear();
            }
            Shape::Tar => {
                if e.kind != Kind::File && e.kind != Kind::Dir {
                    if let Some(id) = e.hardlink_id {
                        if !st.first_links.insert(id) {
                            return Ok((want, None));
                        }
                    }
                }
                if e.kind == Kind::Socket {
                    placeholder(&mut e);
                }
            }
        }
        Ok((want, Some(e)))
    }
}

impl TreeSource for View<'_> {
    fn walk(&self, _root: &[u8], visit: &mut Visitor<'_>) -> subroot_formats::Result<()> {
        self.tree.walk(self.root, &mut |e, content| {
            let (want, shaped) = self.take(e)?;
            let sum = match (shaped, content) {
                (Some(shaped), Some(c)) if shaped.kind == Kind::File && e.kind == Kind::File => {
                    let mut s = Summing::new(c);
                    visit(&shaped, Some(&mut s))?;
                    if s.consumed() == 0 && want.hardlink_id.is_some() && want.size > 0 {
                        // A later name of a hard-link group, written as a link: its data
                        // is the first name's (verify checks they share the inode).
                        None
                    } else {
                        Some(s.finish(want.size)?)
                    }
                }
                (Some(shaped), None) if shaped.kind == Kind::File && e.kind == Kind::File => {
                    visit(&shaped, None)?;
                    None
                }
                // A placeholder: an empty regular file.
                (Some(shaped), _) if shaped.kind == Kind::File => {
                    visit(&shaped, Some(&mut BytesContent::new(Vec::new())))?;
                    None
                }
                (Some(shaped), _) => {
                    visit(&shaped, None)?;
                    None
                }
                (None, _) => None,
            };
            Ok(self.state.borrow_mut().spool.push(&Record {
                entry: want,
                content: sum,
            })?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use subroot_formats::tree::{Content, Metadata};

    struct Fixed(Vec<Entry>);

    impl TreeSource for Fixed {
        fn walk(&self, _root: &[u8], visit: &mut Visitor<'_>) -> subroot_formats::Result<()> {
            for e in &self.0 {
                let mut empty = BytesContent::new(Vec::new());
                let c: Option<&mut dyn Content> = (e.kind == Kind::File).then_some(&mut empty);
                visit(e, c)?;
            }
            Ok(())
        }
    }

    fn entry(path: &str, kind: Kind, link: Option<u64>) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            meta: Metadata {
                perm: 0o4000,
                xattrs: vec![(b"user.a".to_vec(), b"b".to_vec())],
                ..Default::default()
            },
            size: 0,
            rdev: (8, 1),
            link_target: None,
            hardlink_id: link,
        }
    }

    fn shaped(tree: &Fixed, shape: Shape) -> (Vec<Entry>, Vec<Entry>) {
        let dir = tempfile::tempdir().unwrap();
        let view = View::new(tree, b"", shape, dir.path()).unwrap();
        let mut out = Vec::new();
        view.walk(b"", &mut |e, c| {
            assert_eq!(e.kind == Kind::File, c.is_some(), "{e:?}");
            out.push(e.clone());
            Ok(())
        })
        .unwrap();
        let intended = view.into_intended().unwrap();
        let mut r = intended.reader().unwrap();
        let mut v = Vec::new();
        while let Some(x) = r.next_record().unwrap() {
            assert_eq!(x.content.is_some(), x.entry.kind == Kind::File, "{x:?}");
            v.push(x.entry);
        }
        (v, out)
    }

    #[test]
    fn shapes() {
        let tree = Fixed(vec![
            entry("", Kind::Dir, None),
            entry("dev", Kind::BlockDevice, Some(7)),
            entry("dev2", Kind::BlockDevice, Some(7)),
            entry("sock", Kind::Socket, None),
        ]);
        let (intended, staged) = shaped(&tree, Shape::Staging);
        assert_eq!(intended, tree.0);
        assert_eq!(staged.len(), 4);
        assert_eq!(staged[0].meta.perm, 0o700);
        assert_eq!((staged[1].kind, staged[1].rdev), (Kind::File, (0, 0)));
        assert_eq!(staged[1].meta.perm, 0o600);
        assert!(staged[1].meta.xattrs.is_empty());
        assert_eq!(staged[3].kind, Kind::Socket);
        let (intended, tar) = shaped(&tree, Shape::Tar);
        assert_eq!(intended, tree.0);
        // The second name of the device is left to reconcile; the socket is a placeholder.
        let kinds: Vec<_> = tar.iter().map(|e| (e.path.clone(), e.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (b"".to_vec(), Kind::Dir),
                (b"dev".to_vec(), Kind::BlockDevice),
                (b"sock".to_vec(), Kind::File),
            ]
        );
        assert_eq!(tar[0].meta, tree.0[0].meta);
    }

    #[test]
    fn the_root_must_be_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let tree = Fixed(vec![entry("f", Kind::File, None)]);
        let view = View::new(&tree, b"", Shape::Tar, dir.path()).unwrap();
        let e = view.walk(b"", &mut |_, _| Ok(())).unwrap_err();
        assert!(e.to_string().contains("root must be a directory"), "{e}");
        let empty = Fixed(Vec::new());
        let view = View::new(&empty, b"", Shape::Tar, dir.path()).unwrap();
        view.walk(b"", &mut |_, _| Ok(())).unwrap();
        assert!(view.into_intended().is_err());
    }
}
