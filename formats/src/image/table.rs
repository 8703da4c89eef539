//! A table of fixed-width entries in an image file (a VHD or VHDX block allocation table),
//! read on demand in chunks through a small LRU cache, so memory stays bounded whatever
//! the number of entries.

use crate::block::BlockDevice;
use crate::qcow2::cache::Lru;
use crate::{Error, Result};
use std::sync::{Arc, Mutex};

/// Entries are read in chunks of this many bytes ...
const CHUNK_BYTES: u64 = 64 << 10;
/// ... and at most this many chunks are cached.
const CHUNKS_CACHED: usize = 32;

/// How an entry is stored.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Entry {
    /// Big-endian 32-bit (VHD).
    Be32,
    /// Little-endian 64-bit (VHDX).
    Le64,
}

impl Entry {
    fn width(self) -> u64 {
        match self {
            Entry::Be32 => 4,
            Entry::Le64 => 8,
        }
    }
}

/// `entries` entries of kind `entry` at byte `offset` of a file; the caller has checked
/// that they lie within it.
#[derive(Debug)]
pub(crate) struct Table {
    offset: u64,
    entries: u64,
    entry: Entry,
    cache: Mutex<Lru<Arc<Vec<u64>>>>,
}

impl Table {
    pub(crate) fn new(offset: u64, entries: u64, entry: Entry) -> Self {
        Table {
            offset,
            entries,
            entry,
            cache: Mutex::new(Lru::new(CHUNKS_CACHED)),
        }
    }

    /// Entry `idx` (which must be below [`Table::len`]).
    pub(crate) fn get(&self, file: &dyn BlockDevice, idx: u64) -> Result<u64> {
        let w = self.entry.width();
        let per_chunk = CHUNK_BYTES / w;
        let chunk = idx / per_chunk;
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(chunk);
        let values = match cached {
            Some(v) => v,
            None => {
                let first = chunk * per_chunk;
                let n = per_chunk.min(self.entries.saturating_sub(first));
                let mut buf = vec![0u8; (n * w) as usize];
                file.read_at(&mut buf, self.offset + first * w)?;
                let v: Vec<u64> = match self.entry {
                    Entry::Be32 => buf
                        .chunks_exact(4)
                        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                        .collect(),
                    Entry::Le64 => buf
                        .chunks_exact(8)
                        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
                        .collect(),
                };
                let v = Arc::new(v);
                self.cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(chunk, v.clone());
                v
            }
        };
        values
            .get((idx - chunk * per_chunk) as usize)
            .copied()
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "table index {idx} is beyond its {} entries",
                    self.entries
                ))
            })
    }
}
