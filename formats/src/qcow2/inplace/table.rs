//! The L1/L2 side of an in-place plan: for each changed guest cluster, where its new data
//! goes and what its L2 entry becomes.
//!
//! Changed ranges arrive in increasing guest order, so the L2 tables are visited one at a
//! time: a table is loaded (or allocated, when its L1 entry is empty) when the first
//! change inside it arrives and its changed entries are emitted when the walk leaves it.
//!
//! Per cluster (standard entries):
//! - allocated, refcount 1 (COPIED), not zero: only the changed bytes are overwritten;
//! - allocated but reading as zeros (v3 zero flag over a preallocated cluster, COPIED): the
//!   whole cluster is written into its own host cluster and the zero flag cleared;
//! - unallocated, zero without a host cluster, compressed, or shared (no COPIED): a new
//!   cluster is appended and the whole guest cluster written there; the clusters a
//!   compressed or shared cluster occupied lose one reference each.
//!
//! With extended L2 entries (subclusters) the same holds per cluster, except that inside
//! an allocated COPIED cluster, changed subclusters that are unallocated or zero are
//! written whole and marked allocated; allocated ones get only their changed bytes.

use super::refcount::RefChanges;
use super::{entry_runs, push_bytes, Image, SNAPSHOT_ADVICE};
use crate::block::PlannedWrite;
use crate::qcow2::entry::{compressed_extent, COMPRESSED, COPIED, OFFSET_MASK, ZERO};
use crate::{Error, Result};

/// The lower half of an extended L2 bitmap: every subcluster allocated.
const ALL_ALLOCATED: u64 = 0xffff_ffff;

/// The writes a table pass produced, by kind (the caller orders them).
pub(super) struct Planned {
    pub guest: Vec<PlannedWrite>,
    pub l2: Vec<PlannedWrite>,
    pub l1: Vec<PlannedWrite>,
}

/// The L2 table being worked on.
struct Table {
    l1_index: u64,
    /// Host offset of the table.
    offset: u64,
    /// The table's 64-bit words (two per entry with extended L2).
    words: Vec<u64>,
    /// Indices of changed words, in increasing order.
    changed: Vec<usize>,
}

/// How the cluster last seen is being written, so that a second changed range in the same
/// cluster does not write it again.
#[derive(Clone, Copy)]
enum Done {
    /// The whole guest cluster is written to a cluster of its own.
    Whole,
    /// Written in place at this host cluster; `whole` has a bit for each subcluster already
    /// written whole (extended L2 only).
    InPlace { host: u64, whole: u32 },
}

pub(super) struct TablePlanner<'a> {
    img: &'a Image<'a>,
    cs: u64,
    /// Clusters per L2 table.
    l2_entries: u64,
    /// Size of a subcluster (the cluster size without extended L2).
    sub: u64,
    table: Option<Table>,
    last: Option<(u64, Done)>,
    out: Planned,
}

impl<'a> TablePlanner<'a> {
    pub(super) fn new(img: &'a Image<'a>) -> Self {
        let cs = img.cluster_size();
        let ext = img.header.extended_l2;
        TablePlanner {
            img,
            cs,
            l2_entries: cs / if ext { 16 } else { 8 },
            sub: if ext { cs / 32 } else { cs },
            table: None,
            last: None,
            out: Planned {
                guest: Vec::new(),
                l2: Vec::new(),
                l1: Vec::new(),
            },
        }
    }

    /// Plan the guest range `[offset, offset + len)`; ranges come in increasing order.
    pub(super) fn add_range(&mut self, refs: &mut RefChanges, offset: u64, len: u64) -> Result<()> {
        let end = offset + len;
        let mut pos = offset;
        while pos < end {
            let cluster = pos / self.cs;
            let piece_end = ((cluster + 1) * self.cs).min(end);
            self.add_piece(refs, cluster, pos, piece_end)?;
            pos = piece_end;
        }
        Ok(())
    }

    /// Emit what is pending and hand back the writes.
    pub(super) fn finish(mut self) -> Planned {
        self.close_table();
        self.out
    }

    /// The guest bytes `[start, end)`, all inside guest cluster `cluster`.
    fn add_piece(
        &mut self,
        refs: &mut RefChanges,
        cluster: u64,
        start: u64,
        end: u64,
    ) -> Result<()> {
        let done = match self.last {
            Some((c, done)) if c == cluster => done,
            _ => {
                let done = self.decide(refs, cluster)?;
                self.last = Some((cluster, done));
                done
            }
        };
        if let Done::InPlace { host, whole } = done {
            let whole = self.write_in_place(cluster, host, whole, start, end);
            self.last = Some((cluster, Done::InPlace { host, whole }));
        }
        Ok(())
    }

    /// How guest cluster `cluster` is written; for clusters written whole, also emit the
    /// write and set the new L2 entry.
    fn decide(&mut self, refs: &mut RefChanges, cluster: u64) -> Result<Done> {
        let l1_index = cluster / self.l2_entries;
        if self.table.as_ref().is_none_or(|t| t.l1_index != l1_index) {
            self.close_table();
            self.table = Some(self.open_table(refs, l1_index)?);
        }
        let ext = self.img.header.extended_l2;
        let index = (cluster % self.l2_entries) as usize * if ext { 2 } else { 1 };
        let table = self.table.as_ref().expect("opened above");
        let entry = table.words[index];
        let guest = cluster * self.cs;
        let host = entry & OFFSET_MASK;

        let reuse = if entry & COMPRESSED != 0 {
            let (coff, len) = compressed_extent(entry, self.img.header.cluster_bits);
            refs.release(coff, len)?;
            None
        } else if host == 0 {
            None
        } else {
            self.check_host(host, guest)?;
            if entry & COPIED == 0 {
                // Shared (refcount > 1): copy on write.
                refs.release(host, self.cs)?;
                None
            } else if ext || self.img.header.version < 3 || entry & ZERO == 0 {
                return Ok(Done::InPlace { host, whole: 0 });
            } else {
                // A preallocated zero cluster: the host cluster is ours, just rewrite it.
                Some(host)
            }
        };
        let target = match reuse {
            Some(h) => h,
            None => self.img.allocate(refs)?,
        };
        self.push_guest(target, guest, self.cs.min(self.img.header.size - guest));
        self.set_word(index, target | COPIED);
        if ext {
            self.set_word(index + 1, ALL_ALLOCATED);
        }
        Ok(Done::Whole)
    }

    /// Plan the changed bytes `[start, end)` of an allocated COPIED cluster at `host`.
    /// Returns the updated set of subclusters written whole.
    fn write_in_place(
        &mut self,
        cluster: u64,
        host: u64,
        mut whole: u32,
        start: u64,
        end: u64,
    ) -> u32 {
        let guest = cluster * self.cs;
        if !self.img.header.extended_l2 {
            self.push_guest(host + (start - guest), start, end - start);
            return whole;
        }
        let index = (cluster % self.l2_entries) as usize * 2 + 1;
        let mut pos = start;
        while pos < end {
            let sc = (pos - guest) / self.sub;
            let sc_start = guest + sc * self.sub;
            let sc_end = (sc_start + self.sub).min(end);
            let bitmap = self.table.as_ref().expect("table open").words[index];
            if whole >> sc & 1 != 0 {
                // Already written whole.
            } else if bitmap >> sc & 1 != 0 {
                self.push_guest(host + (pos - guest), pos, sc_end - pos);
            } else {
                let len = self.sub.min(self.img.header.size - sc_start);
                self.push_guest(host + (sc_start - guest), sc_start, len);
                whole |= 1 << sc;
                self.set_word(index, (bitmap | 1 << sc) & !(1 << (32 + sc)));
            }
            pos = sc_end;
        }
        whole
    }

    /// A guest write, merged with the previous one when both are contiguous.
    fn push_guest(&mut self, offset: u64, guest: u64, len: u64) {
        if let Some(PlannedWrite::Guest {
            offset: o,
            guest: g,
            len: l,
        }) = self.out.guest.last_mut()
        {
            if *o + *l == offset && *g + *l == guest {
                *l += len;
                return;
            }
        }
        self.out
            .guest
            .push(PlannedWrite::Guest { offset, guest, len });
    }

    fn set_word(&mut self, index: usize, value: u64) {
        let t = self.table.as_mut().expect("table open");
        if t.words[index] != value {
            t.words[index] = value;
            if t.changed.last() != Some(&index) {
                t.changed.push(index);
            }
        }
    }

    /// A data cluster's host offset must be cluster-aligned and inside the file.
    fn check_host(&self, host: u64, guest: u64) -> Result<()> {
        if host % self.cs != 0 || host >= self.img.file_len {
            return Err(Error::corrupt(format!(
                "the L2 entry for guest offset {guest:#x} points to host offset {host:#x}, \
                 which is not a cluster-aligned offset inside the file ({} bytes, cluster \
                 size {})",
                self.img.file_len, self.cs
            )));
        }
        Ok(())
    }

    /// Load the L2 table of L1 entry `l1_index`, or allocate an empty one.
    fn open_table(&mut self, refs: &mut RefChanges, l1_index: u64) -> Result<Table> {
        let l1_entry_at = self.img.header.l1_table_offset + 8 * l1_index;
        let entry = self.img.read_be64(l1_entry_at, "an L1 entry")?;
        let offset = entry & OFFSET_MASK;
        let words_per_table = (self.cs / 8) as usize;
        if offset == 0 {
            let offset = self.img.allocate(refs)?;
            push_bytes(
                &mut self.out.l1,
                l1_entry_at,
                &(offset | COPIED).to_be_bytes(),
            );
            return Ok(Table {
                l1_index,
                offset,
                words: vec![0; words_per_table],
                changed: Vec::new(),
            });
        }
        if entry & COPIED == 0 {
            return Err(Error::unsupported(format!(
                "cannot update the qcow2 image in place: the L2 table of L1 entry {l1_index} \
                 is shared (refcount above 1, no COPIED flag), as when the image {SNAPSHOT_ADVICE}; \
                 if it has no snapshots, `qemu-img check -r all` repairs the flags"
            )));
        }
        let bytes = self
            .img
            .read_cluster(offset, &format!("the L2 table of L1 entry {l1_index}"))?;
        let words = bytes
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
            .collect();
        Ok(Table {
            l1_index,
            offset,
            words,
            changed: Vec::new(),
        })
    }

    /// Emit the changed entries of the open table, if any.
    fn close_table(&mut self) {
        if let Some(t) = self.table.take() {
            self.out
                .l2
                .extend(entry_runs(t.offset, &t.changed, &t.words));
        }
    }
}
