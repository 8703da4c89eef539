//! A small bounded cache of metadata blocks (group descriptor, inode table, extent blocks).
//!
//! First-in first-out eviction with a fixed entry count keeps memory bounded whatever the
//! filesystem size; hits make directory walks and repeated inode reads cheap.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Up to `cap` blocks keyed by block number.
#[derive(Debug)]
pub struct BlockCache {
    inner: Mutex<Inner>,
    cap: usize,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<u64, Arc<Vec<u8>>>,
    order: VecDeque<u64>,
}

impl BlockCache {
    /// An empty cache holding at most `cap` blocks.
    pub fn new(cap: usize) -> Self {
        BlockCache {
            inner: Mutex::new(Inner::default()),
            cap: cap.max(1),
        }
    }

    /// The cached block, if any.
    pub fn get(&self, block: u64) -> Option<Arc<Vec<u8>>> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.map.get(&block).cloned()
    }

    /// Remember `data` for `block`, evicting the oldest entry when full.
    pub fn put(&self, block: u64, data: Arc<Vec<u8>>) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.map.contains_key(&block) {
            return;
        }
        while g.map.len() >= self.cap {
            match g.order.pop_front() {
                Some(old) => {
                    g.map.remove(&old);
                }
                None => break,
            }
        }
        g.map.insert(block, data);
        g.order.push_back(block);
    }
}
