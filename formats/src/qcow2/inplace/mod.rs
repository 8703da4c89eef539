//! Planning an in-place update of an existing qcow2 image: which bytes of the file to
//! write so that it maps the changed guest ranges to the edited data, with L1, L2 and
//! refcounts consistent afterwards (`qemu-img check` clean) and everything else untouched.
//!
//! The plan is computed from the old image alone and written by someone else (the undo-log
//! applier): guest data first ([`PlannedWrite::Guest`], read from the edited virtual disk),
//! then metadata ([`PlannedWrite::Bytes`]: refcount blocks, refcount table, L2, L1, in the
//! order qemu uses). New clusters are appended after the old end of the file, where the
//! file reads as zeros, so a new table only needs its non-zero entries written.
//!
//! Memory stays bounded: one L2 table and one refcount block are held at a time; what grows
//! is the plan itself, with the number of changed clusters.

mod refcount;
mod table;

use super::entry::OFFSET_MASK;
use super::header::{read_head, AUTOCLEAR_BITMAPS, AUTOCLEAR_OFFSET};
use super::Header;
use crate::block::{Changed, PlannedWrite, WritePlan};
use crate::{Error, Result};
use refcount::RefChanges;
use std::fs::File;
use std::os::unix::fs::FileExt;
use table::TablePlanner;

/// Why an image with internal snapshots is refused, and what to do instead.
const SNAPSHOT_ADVICE: &str = "has internal snapshots; use -o or --overlay";

/// Plan the writes that make the qcow2 `image` map every range of `virtual_changed` to the
/// edited data. Refuses (before planning anything) images this planner cannot update
/// safely: encrypted, external data file, dirty or corrupt, internal snapshots, shared L2
/// tables, persistent dirty bitmaps ([`Error::Unsupported`]); reports metadata that
/// contradicts itself as [`Error::Corrupt`] and ranges beyond the disk as
/// [`Error::InvalidArgument`]. Unknown autoclear feature bits are cleared, as the
/// specification asks of writers.
pub fn plan_in_place(image: &File, virtual_changed: &[Changed]) -> Result<WritePlan> {
    plan_in_place_resized(image, virtual_changed, None)
}

/// [`plan_in_place`], the virtual disk also given the size `new_size` (when `Some`): the
/// header's size and L1 entry count are rewritten last. Growing needs the new L1 entries
/// to fit in the clusters the L1 table already has (64 KiB clusters: 4 TiB), and those
/// bytes to be zero; otherwise, and for shrinking, [`Error::Unsupported`].
pub fn plan_in_place_resized(
    image: &File,
    virtual_changed: &[Changed],
    new_size: Option<u64>,
) -> Result<WritePlan> {
    let mut img = Image::open(image)?;
    let resize = match new_size.filter(|&n| n != img.header.size) {
        Some(n) => Some(resize_header(&img, n)?),
        None => None,
    };
    // Planned as the disk it becomes (the L1 slots past the old count read as zero).
    img.header.size = new_size.unwrap_or(img.header.size);
    let ranges = normalise(virtual_changed, img.header.size)?;
    let mut refs = RefChanges::new(&img);
    let mut tables = TablePlanner::new(&img);
    for (offset, len) in ranges {
        tables.add_range(&mut refs, offset, len)?;
    }
    let planned = tables.finish();
    let refcount_writes = refs.finish()?;

    let mut writes = planned.guest;
    writes.extend(refcount_writes);
    writes.extend(planned.l2);
    writes.extend(planned.l1);
    // The spec: a writer must clear the autoclear bits it does not maintain (the bitmaps
    // bit was refused above; others are unknown to us).
    if let Some(header) = resize {
        writes.push(header);
    }
    if img.header.autoclear_features != 0 && !writes.is_empty() {
        writes.push(PlannedWrite::Bytes {
            offset: AUTOCLEAR_OFFSET,
            data: vec![0; 8],
        });
    }
    let new_len = writes
        .iter()
        .map(|w| match w {
            PlannedWrite::Bytes { offset, data } => offset + data.len() as u64,
            PlannedWrite::Guest { offset, len, .. } => offset + len,
        })
        .chain([img.file_len, img.next_free.get()])
        .max()
        .unwrap_or(img.file_len);
    Ok(WritePlan { writes, new_len })
}

/// Offsets of the header fields a resize rewrites (qcow2 specification).
const SIZE_OFFSET: u64 = 24;
const L1_SIZE_OFFSET: u64 = 36;

/// The header write that gives the virtual disk `new_size` bytes: size and L1 entry count
/// (bytes 24..40, crypt_method in between kept). Checks that the L1 table can hold the new
/// entries where it is.
fn resize_header(img: &Image, new_size: u64) -> Result<PlannedWrite> {
    let h = &img.header;
    if new_size < h.size {
        return Err(Error::unsupported(format!(
            "cannot shrink the qcow2 image in place (from {} to {new_size} bytes); use -o",
            h.size
        )));
    }
    let cs = img.cluster_size();
    let per_l2 = cs * (cs / 8);
    let new_l1 = new_size.div_ceil(per_l2);
    let old_l1 = u64::from(h.l1_size);
    let room = (old_l1 * 8).next_multiple_of(cs) / 8;
    if new_l1 > room || new_l1 > u64::from(u32::MAX) {
        return Err(Error::unsupported(format!(
            "cannot grow the qcow2 image in place to {new_size} bytes: its L1 table would \
             need {new_l1} entries and has room for {room} where it lies (moving it is not \
             supported); use --overlay or -o"
        )));
    }
    if new_l1 > old_l1 {
        let mut slack = vec![0u8; ((new_l1 - old_l1) * 8) as usize];
        read_exact(
            img.file,
            &mut slack,
            h.l1_table_offset + old_l1 * 8,
            "the L1 table",
        )?;
        if slack.iter().any(|&b| b != 0) {
            return Err(Error::unsupported(
                "cannot grow the qcow2 image in place: the bytes after its L1 table are not \
                 zero; use --overlay or -o",
            ));
        }
    }
    let mut data = vec![0u8; 16];
    read_exact(img.file, &mut data, SIZE_OFFSET, "the header")?;
    data[..8].copy_from_slice(&new_size.to_be_bytes());
    let l1 = u32::try_from(new_l1.max(old_l1)).unwrap_or(u32::MAX);
    data[(L1_SIZE_OFFSET - SIZE_OFFSET) as usize..].copy_from_slice(&l1.to_be_bytes());
    Ok(PlannedWrite::Bytes {
        offset: SIZE_OFFSET,
        data,
    })
}

/// The image being planned: its header and file, and the bump allocator for new clusters.
pub(super) struct Image<'a> {
    file: &'a File,
    header: Header,
    file_len: u64,
    /// The first byte after every cluster allocated so far (new clusters are appended).
    next_free: std::cell::Cell<u64>,
}

impl<'a> Image<'a> {
    /// Read and check the header; refuse what cannot be updated in place.
    fn open(file: &'a File) -> Result<Image<'a>> {
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("reading the size of the qcow2 image", e))?
            .len();
        let head = read_head(file_len, |buf, off| {
            read_exact(file, buf, off, "the header")
        })?;
        // Encryption, external data files, the dirty and corrupt bits and unknown
        // incompatible features are refused by the header parser.
        let header = Header::parse(&head, file_len)?;
        if header.nb_snapshots > 0 {
            return Err(Error::unsupported(format!(
                "cannot update the qcow2 image in place: it {SNAPSHOT_ADVICE} ({} snapshot{})",
                header.nb_snapshots,
                if header.nb_snapshots == 1 { "" } else { "s" }
            )));
        }
        if header.autoclear_features & AUTOCLEAR_BITMAPS != 0 {
            return Err(Error::unsupported(
                "cannot update the qcow2 image in place: it has persistent dirty bitmaps, \
                 which an in-place edit would not record its changes in; use -o or \
                 --overlay, or remove them first (`qemu-img bitmap --remove`)",
            ));
        }
        let cs = header.cluster_size();
        Ok(Image {
            file,
            file_len,
            next_free: std::cell::Cell::new(file_len.next_multiple_of(cs)),
            header,
        })
    }

    fn cluster_size(&self) -> u64 {
        self.header.cluster_size()
    }

    /// A new cluster after the end of the file; its refcount is recorded in `refs`.
    fn allocate(&self, refs: &mut RefChanges) -> Result<u64> {
        let off = self.next_free.get();
        if off + self.cluster_size() > OFFSET_MASK + 1 {
            return Err(Error::unsupported(
                "cannot update the qcow2 image in place: it would grow beyond the 2^56-byte \
                 limit of qcow2 host offsets",
            ));
        }
        self.next_free.set(off + self.cluster_size());
        refs.allocated(off);
        Ok(off)
    }

    /// One cluster of big-endian 64-bit entries at `offset` (an L2 table or refcount table
    /// part), checked to lie inside the file.
    fn read_cluster(&self, offset: u64, what: &str) -> Result<Vec<u8>> {
        let cs = self.cluster_size();
        if offset % cs != 0 || offset.checked_add(cs).is_none_or(|e| e > self.file_len) {
            return Err(Error::corrupt(format!(
                "{what} at host offset {offset:#x} is not a cluster-aligned cluster inside the \
                 file ({} bytes, cluster size {cs})",
                self.file_len
            )));
        }
        let mut buf = vec![0u8; cs as usize];
        read_exact(self.file, &mut buf, offset, what)?;
        Ok(buf)
    }

    /// The big-endian 64-bit value at `offset`.
    fn read_be64(&self, offset: u64, what: &str) -> Result<u64> {
        let mut b = [0u8; 8];
        read_exact(self.file, &mut b, offset, what)?;
        Ok(u64::from_be_bytes(b))
    }
}

fn read_exact(file: &File, buf: &mut [u8], offset: u64, what: &str) -> Result<()> {
    file.read_exact_at(buf, offset)
        .map_err(|e| Error::io(format!("reading {what} at offset {offset:#x}"), e))
}

/// The changed ranges sorted, merged and checked against the virtual size.
fn normalise(changed: &[Changed], size: u64) -> Result<Vec<(u64, u64)>> {
    let mut v: Vec<(u64, u64)> = Vec::with_capacity(changed.len());
    for c in changed.iter().filter(|c| c.len > 0) {
        if c.offset.checked_add(c.len).is_none_or(|e| e > size) {
            return Err(Error::InvalidArgument(format!(
                "changed range of {} bytes at {} lies beyond the virtual disk ({size} bytes)",
                c.len, c.offset
            )));
        }
        v.push((c.offset, c.offset + c.len));
    }
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for (start, end) in v {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    Ok(out.into_iter().map(|(s, e)| (s, e - s)).collect())
}

/// `entries` (big-endian u64s) at `base + 8 * index` for each run of consecutive changed
/// indices: one write per run.
fn entry_runs(base: u64, changed: &[usize], entries: &[u64]) -> Vec<PlannedWrite> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < changed.len() {
        let mut j = i + 1;
        while j < changed.len() && changed[j] == changed[j - 1] + 1 {
            j += 1;
        }
        let data = (changed[i]..=changed[j - 1])
            .flat_map(|k| entries[k].to_be_bytes())
            .collect();
        out.push(PlannedWrite::Bytes {
            offset: base + 8 * changed[i] as u64,
            data,
        });
        i = j;
    }
    out
}

/// Append a metadata write, extending the previous one when `offset` continues or
/// overlaps its end (narrow refcounts share bytes).
pub(super) fn push_bytes(out: &mut Vec<PlannedWrite>, offset: u64, data: &[u8]) {
    if let Some(PlannedWrite::Bytes { offset: o, data: d }) = out.last_mut() {
        let end = *o + d.len() as u64;
        if offset >= *o && offset <= end {
            let start = (offset - *o) as usize;
            let overlap = (d.len() - start).min(data.len());
            d[start..start + overlap].copy_from_slice(&data[..overlap]);
            d.extend_from_slice(&data[overlap..]);
            return;
        }
    }
    out.push(PlannedWrite::Bytes {
        offset,
        data: data.to_vec(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_are_checked() {
        let c = |offset, len| Changed { offset, len };
        let v = normalise(&[c(10, 5), c(0, 4), c(4, 2), c(12, 10), c(30, 0)], 100).unwrap();
        assert_eq!(v, vec![(0, 6), (10, 12)]);
        assert!(normalise(&[c(90, 11)], 100).is_err());
        assert!(normalise(&[c(u64::MAX, 2)], 100).is_err());
    }

    #[test]
    fn runs_of_entries() {
        let w = entry_runs(1000, &[1, 2, 5], &[0, 1, 2, 3, 4, 5]);
        let got: Vec<(u64, usize)> = w
            .iter()
            .map(|w| match w {
                PlannedWrite::Bytes { offset, data } => (*offset, data.len()),
                PlannedWrite::Guest { .. } => panic!(),
            })
            .collect();
        assert_eq!(got, vec![(1008, 16), (1040, 8)]);
    }

    #[test]
    fn adjacent_and_shared_bytes_merge() {
        let mut v = Vec::new();
        push_bytes(&mut v, 10, &[1]);
        push_bytes(&mut v, 10, &[3]);
        push_bytes(&mut v, 11, &[4, 5]);
        push_bytes(&mut v, 20, &[6, 7, 8]);
        push_bytes(&mut v, 21, &[9]);
        let got: Vec<(u64, Vec<u8>)> = v
            .into_iter()
            .map(|w| match w {
                PlannedWrite::Bytes { offset, data } => (offset, data),
                PlannedWrite::Guest { .. } => panic!(),
            })
            .collect();
        assert_eq!(got, vec![(10, vec![3, 4, 5]), (20, vec![6, 9, 8])]);
    }
}
