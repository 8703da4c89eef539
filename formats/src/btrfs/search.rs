//! Visiting the items of a tree in key order from a start key, one leaf at a time (never
//! the whole tree in memory). Each child must sit one level below its parent and start
//! with the key its parent's pointer names, inside the parent's key range, so every key
//! range is visited once and a pointer loop or a shared child ends in an error.

use super::fs::BtrfsFs;
use super::node::MAX_LEVEL;
use super::Key;
use crate::block::BlockDevice;
use crate::{Error, Result};
use std::ops::ControlFlow;

/// Where a tree's root block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeRoot {
    pub bytenr: u64,
    pub level: u8,
}

/// What a visitor of items says: go on, or stop here.
pub type Flow = ControlFlow<()>;

impl<D: BlockDevice> BtrfsFs<D> {
    /// Call `f` with each item of `root` whose key lies in `[from, to]`, in key order,
    /// until it says stop.
    pub fn search(
        &self,
        root: TreeRoot,
        from: Key,
        to: Key,
        f: &mut dyn FnMut(Key, &[u8]) -> Result<Flow>,
    ) -> Result<()> {
        if root.level > MAX_LEVEL {
            return Err(Error::corrupt(format!(
                "btrfs: a tree root at logical {} has level {} (at most {MAX_LEVEL})",
                root.bytenr, root.level
            )));
        }
        self.visit(root.bytenr, root.level, None, &from, &to, f)
            .map(|_| ())
    }

    /// [`Self::search`] in the block at `bytenr` (expected at `level`, its first key
    /// `first` when a parent named it).
    fn visit(
        &self,
        bytenr: u64,
        level: u8,
        first: Option<Key>,
        from: &Key,
        to: &Key,
        f: &mut dyn FnMut(Key, &[u8]) -> Result<Flow>,
    ) -> Result<Flow> {
        let node = self.node(bytenr, level)?;
        if let Some(want) = first {
            let got = if node.is_empty() {
                None
            } else {
                Some(node.key(0)?)
            };
            if got != Some(want) {
                return Err(Error::corrupt(format!(
                    "btrfs: the tree block at logical {bytenr} starts with key {got:?}, its \
                     parent says {want:?}"
                )));
            }
        }
        let n = node.len();
        if level == 0 {
            for i in 0..n {
                let k = node.key(i)?;
                if k < *from {
                    continue;
                }
                if k > *to {
                    return Ok(Flow::Break(()));
                }
                if f(k, node.data(i)?)?.is_break() {
                    return Ok(Flow::Break(()));
                }
            }
            return Ok(Flow::Continue(()));
        }
        // The last child whose first key is <= from, then the following ones.
        let mut start = 0;
        for i in 1..n {
            if node.key(i)? <= *from {
                start = i;
            } else {
                break;
            }
        }
        for i in start..n {
            let k = node.key(i)?;
            if k > *to {
                return Ok(Flow::Break(()));
            }
            if self
                .visit(node.child(i)?, level - 1, Some(k), from, to, f)?
                .is_break()
            {
                return Ok(Flow::Break(()));
            }
        }
        Ok(Flow::Continue(()))
    }

    /// The items of `root` with key object id `objectid` and type `ty`, in order, as
    /// `(offset, data)`; at most `limit` of them from offset `from`.
    pub fn items(
        &self,
        root: TreeRoot,
        objectid: u64,
        ty: u8,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        self.search(
            root,
            Key::new(objectid, ty, from),
            Key::new(objectid, ty, u64::MAX),
            &mut |k, d| {
                out.push((k.offset, d.to_vec()));
                Ok(if out.len() >= limit {
                    Flow::Break(())
                } else {
                    Flow::Continue(())
                })
            },
        )?;
        Ok(out)
    }
}
