//! A small least-recently-used cache for L1 chunks and L2 tables.
//!
//! Capacities are tiny (tens of entries), so eviction scans for the oldest entry instead of
//! keeping a linked list; a lookup is one hash probe.

use std::collections::HashMap;

/// Maps a table index to a shared value, holding at most `cap` entries.
#[derive(Debug)]
pub(crate) struct Lru<V> {
    cap: usize,
    tick: u64,
    map: HashMap<u64, (V, u64)>,
}

impl<V: Clone> Lru<V> {
    /// An empty cache holding at most `cap` (at least 1) entries.
    pub(crate) fn new(cap: usize) -> Self {
        Lru {
            cap: cap.max(1),
            tick: 0,
            map: HashMap::new(),
        }
    }

    /// The value for `key`, marking it most recently used.
    pub(crate) fn get(&mut self, key: u64) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(&key).map(|(v, t)| {
            *t = tick;
            v.clone()
        })
    }

    /// Insert `value`, evicting the least recently used entry when full.
    pub(crate) fn insert(&mut self, key: u64, value: V) {
        self.tick += 1;
        if !self.map.contains_key(&key) && self.map.len() >= self.cap {
            if let Some(old) = self
                .map
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| *k)
            {
                self.map.remove(&old);
            }
        }
        self.map.insert(key, (value, self.tick));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recent() {
        let mut c = Lru::new(2);
        c.insert(1, 'a');
        c.insert(2, 'b');
        assert_eq!(c.get(1), Some('a'));
        c.insert(3, 'c');
        assert_eq!(c.get(2), None);
        assert_eq!(c.get(1), Some('a'));
        assert_eq!(c.get(3), Some('c'));
    }
}
