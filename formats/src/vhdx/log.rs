//! Replaying a VHDX log in memory: an image that was not closed cleanly has updates in its
//! log that may not have reached their place in the file. They are found (the valid entry
//! with the highest sequence number, then its sequence from the tail it names), checked
//! (CRC-32C of every entry, the log GUID, sequence numbers in every descriptor and data
//! sector) and laid over the file's bytes when read; the file itself is never written.

use crate::block::{check_range, BlockDevice, RawFile};
use crate::{Error, Result};

const SECTOR: u64 = 4096;
const MIB: u64 = 1 << 20;
/// Largest log replayed (its updates are held in memory).
const MAX_LOG: u64 = 64 << 20;

/// One update of the file, in log order.
#[derive(Debug)]
enum Op {
    /// A 4 KiB sector written at this file offset.
    Data(u64, Box<[u8]>),
    /// `len` bytes of zeros written at this file offset.
    Zero(u64, u64),
}

/// The image file as it reads once its log is replayed (the file itself when the log is
/// empty).
#[derive(Debug)]
pub(crate) struct Replayed {
    file: RawFile,
    ops: Vec<Op>,
    len: u64,
}

/// A valid log entry.
struct Entry {
    seq: u64,
    len: u64,
    tail: u64,
    flushed: u64,
    last: u64,
    ops: Vec<Op>,
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from(le32(b, o)) | u64::from(le32(b, o + 4)) << 32
}

impl Replayed {
    /// `file` as it is (the header names no log to replay).
    pub(crate) fn clean(file: RawFile) -> Self {
        let len = file.len();
        Replayed {
            file,
            ops: Vec::new(),
            len,
        }
    }

    /// `file` with the log named by `header` (the current VHDX header) replayed.
    pub(crate) fn replay(file: RawFile, header: &[u8]) -> Result<Self> {
        let guid = &header[48..64];
        if guid.iter().all(|&b| b == 0) {
            return Ok(Self::clean(file));
        }
        let (log_len, log_off) = (u64::from(le32(header, 68)), le64(header, 72));
        let file_len = file.len();
        if log_len == 0 || log_len % MIB != 0 || log_off % MIB != 0 || log_off < MIB {
            return Err(Error::corrupt(format!(
                "VHDX log of {log_len} bytes at {log_off:#x} is not a whole number of MiB \
                 at a MiB boundary"
            )));
        }
        if log_off.saturating_add(log_len) > file_len {
            return Err(Error::corrupt(format!(
                "VHDX log ({log_len} bytes at {log_off:#x}) extends beyond the end of the \
                 file ({file_len} bytes)"
            )));
        }
        if log_len > MAX_LOG {
            return Err(Error::unsupported(format!(
                "its log ({log_len} bytes) must be replayed and is larger than the \
                 {MAX_LOG} bytes replayed in memory; open it once in Hyper-V or qemu"
            )));
        }
        let log = Log {
            file: &file,
            off: log_off,
            len: log_len,
            guid,
            budget: std::cell::Cell::new(4 * log_len),
        };
        let mut head: Option<(u64, u64)> = None;
        for at in (0..log_len).step_by(SECTOR as usize) {
            if let Some(e) = log.entry(at)? {
                if head.is_none_or(|(seq, _)| e.seq > seq) {
                    head = Some((e.seq, at));
                }
            }
        }
        let Some((head_seq, head_at)) = head else {
            return Err(Error::corrupt(
                "the VHDX header says its log must be replayed, but the log holds no valid \
                 entry"
                    .to_string(),
            ));
        };
        let head = log
            .entry(head_at)?
            .ok_or_else(|| Error::corrupt("VHDX log changed"))?;
        if head.tail % SECTOR != 0 || head.tail >= log_len {
            return Err(Error::corrupt(format!(
                "the VHDX log's head entry names tail {:#x}, not a sector of the log",
                head.tail
            )));
        }
        if head.flushed > file_len {
            return Err(Error::corrupt(format!(
                "truncated VHDX: the log says the file held {} bytes, it has {file_len}",
                head.flushed
            )));
        }
        let len = file_len.max(head.last);
        let mut ops = Vec::new();
        let mut at = head.tail;
        let mut prev: Option<u64> = None;
        for _ in 0..log_len / SECTOR {
            let e = log.entry(at)?.ok_or_else(|| {
                Error::corrupt(format!(
                    "the VHDX log sequence ending at {head_seq} breaks at log offset {at:#x}"
                ))
            })?;
            if prev.is_some_and(|p| e.seq != p + 1) {
                return Err(Error::corrupt(format!(
                    "the VHDX log sequence ending at {head_seq} jumps from {} to {} at log \
                     offset {at:#x}",
                    prev.unwrap_or(0),
                    e.seq
                )));
            }
            prev = Some(e.seq);
            let (seq, next) = (e.seq, (at + e.len) % log_len);
            ops.extend(e.ops);
            if seq == head_seq {
                return Ok(Replayed { file, ops, len });
            }
            at = next;
        }
        Err(Error::corrupt(format!(
            "the VHDX log sequence from offset {:#x} never reaches its head {head_seq}",
            head.tail
        )))
    }

    /// True when a log was replayed.
    pub(crate) fn was_replayed(&self) -> bool {
        !self.ops.is_empty()
    }

    /// The file's bytes on the host filesystem.
    pub(crate) fn allocated_bytes(&self) -> Result<u64> {
        self.file.allocated_bytes()
    }
}

impl BlockDevice for Replayed {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.len, offset, buf.len() as u64)?;
        let end = offset + buf.len() as u64;
        let in_file = self.file.len().saturating_sub(offset).min(buf.len() as u64) as usize;
        self.file.read_at(&mut buf[..in_file], offset)?;
        buf[in_file..].fill(0);
        for op in &self.ops {
            let (at, len) = match op {
                Op::Data(at, _) => (*at, SECTOR),
                Op::Zero(at, len) => (*at, *len),
            };
            let (a, b) = (at.max(offset), at.saturating_add(len).min(end));
            if a >= b {
                continue;
            }
            let dst = &mut buf[(a - offset) as usize..(b - offset) as usize];
            match op {
                Op::Data(_, page) => {
                    dst.copy_from_slice(&page[(a - at) as usize..(b - at) as usize])
                }
                Op::Zero(..) => dst.fill(0),
            }
        }
        Ok(())
    }

    fn format_name(&self) -> &'static str {
        "vhdx"
    }
}

/// The log region of a file.
struct Log<'a> {
    file: &'a RawFile,
    off: u64,
    len: u64,
    guid: &'a [u8],
    /// Bytes the search may still read: a real log is read about twice (each sector as a
    /// candidate, each entry whole); overlapping entries claiming the whole log are not
    /// read for ever.
    budget: std::cell::Cell<u64>,
}

impl Log<'_> {
    /// The 4 KiB sectors from `at` (relative to the log, wrapping around it).
    fn sectors(&self, at: u64, n: u64) -> Result<Vec<u8>> {
        let left = self.budget.get().checked_sub(n * SECTOR).ok_or_else(|| {
            Error::corrupt(format!(
                "the VHDX log ({} bytes) holds overlapping entries; it cannot be replayed",
                self.len
            ))
        })?;
        self.budget.set(left);
        let mut v = vec![0u8; (n * SECTOR) as usize];
        for (i, s) in v.chunks_mut(SECTOR as usize).enumerate() {
            self.file
                .read_at(s, self.off + (at + i as u64 * SECTOR) % self.len)?;
        }
        Ok(v)
    }

    /// The valid entry at `at`, if there is one.
    fn entry(&self, at: u64) -> Result<Option<Entry>> {
        let first = self.sectors(at, 1)?;
        if &first[..4] != b"loge" || first[32..48] != *self.guid {
            return Ok(None);
        }
        let len = u64::from(le32(&first, 8));
        if len == 0 || len % SECTOR != 0 || len > self.len {
            return Ok(None);
        }
        let b = self.sectors(at, len / SECTOR)?;
        let mut crc = crc32c::crc32c(&b[..4]);
        crc = crc32c::crc32c_append(crc, &[0; 4]);
        if crc32c::crc32c_append(crc, &b[8..]) != le32(&b, 4) {
            return Ok(None);
        }
        let (seq, count) = (le64(&b, 16), le32(&b, 24) as u64);
        let desc_sectors = (64 + 32 * count).div_ceil(SECTOR);
        if desc_sectors > len / SECTOR {
            return Ok(None);
        }
        let mut ops = Vec::new();
        let mut data = desc_sectors;
        for i in 0..count as usize {
            let d = &b[64 + 32 * i..96 + 32 * i];
            let (off, dseq) = (le64(d, 16), le64(d, 24));
            if dseq != seq || off % SECTOR != 0 {
                return Ok(None);
            }
            match &d[..4] {
                b"zero" => {
                    let n = le64(d, 8);
                    if n % SECTOR != 0 {
                        return Ok(None);
                    }
                    ops.push(Op::Zero(off, n));
                }
                b"desc" => {
                    if data >= len / SECTOR {
                        return Ok(None);
                    }
                    let s = &b[(data * SECTOR) as usize..((data + 1) * SECTOR) as usize];
                    if &s[..4] != b"data"
                        || u64::from(le32(s, 4)) != seq >> 32
                        || u64::from(le32(s, 4092)) != seq & 0xffff_ffff
                    {
                        return Ok(None);
                    }
                    let mut page = Vec::with_capacity(SECTOR as usize);
                    page.extend_from_slice(&d[8..16]);
                    page.extend_from_slice(&s[8..4092]);
                    page.extend_from_slice(&d[4..8]);
                    ops.push(Op::Data(off, page.into_boxed_slice()));
                    data += 1;
                }
                _ => return Ok(None),
            }
        }
        if data != len / SECTOR {
            return Ok(None);
        }
        Ok(Some(Entry {
            seq,
            len,
            tail: u64::from(le32(&b, 12)),
            flushed: le64(&b, 48),
            last: le64(&b, 56),
            ops,
        }))
    }
}
