//! The undo log format: what an in-place edit saves before it touches the image.
//!
//! ```text
//! header  (64 bytes)  magic "SUBROOT-UNDO-LOG", version u32 = 1, reserved u32,
//!                     image st_dev u64, st_ino u64, old length u64, new length u64,
//!                     xxh3-64 of the 56 bytes before it
//! records (any number) file offset u64, length u64 (at most 1 MiB), the old bytes
//! trailer (32 bytes)  magic "SUBROOT-UNDO-END", record count u64,
//!                     xxh3-64 of everything before the trailer
//! ```
//!
//! All integers are little-endian. The trailer is written last and the log is synced
//! before the image is touched, so a log whose trailer does not check out was never
//! complete and the image it belongs to was never written.

use super::fsutil;
use crate::{Error, Result};
use std::fs::File;
use std::path::Path;
use xxhash_rust::xxh3::Xxh3;

const MAGIC: &[u8; 16] = b"SUBROOT-UNDO-LOG";
const END_MAGIC: &[u8; 16] = b"SUBROOT-UNDO-END";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 64;
const TRAILER_LEN: u64 = 32;
const RECORD_HEAD: u64 = 16;
/// The most old bytes one record holds (and what is read or written at once).
pub(super) const MAX_RECORD: u64 = 1 << 20;

/// A zeroed buffer for moving `len` bytes a record at a time: no larger than needed, as an
/// edit of a few KiB (an initrd's hook segment) should not fault in and clear a MiB.
pub(super) fn record_buf(len: u64) -> Vec<u8> {
    vec![0u8; len.min(MAX_RECORD) as usize]
}

/// Which file a log belongs to and the lengths before and after the edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LogHeader {
    pub dev: u64,
    pub ino: u64,
    pub old_len: u64,
    pub new_len: u64,
}

impl LogHeader {
    fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut h = [0u8; HEADER_LEN as usize];
        h[..16].copy_from_slice(MAGIC);
        h[16..20].copy_from_slice(&VERSION.to_le_bytes());
        for (i, v) in [self.dev, self.ino, self.old_len, self.new_len]
            .into_iter()
            .enumerate()
        {
            h[24 + 8 * i..32 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        let sum = xxhash_rust::xxh3::xxh3_64(&h[..56]);
        h[56..].copy_from_slice(&sum.to_le_bytes());
        h
    }

    /// The header, or `None` when its checksum is wrong (a header never completely written).
    fn decode(h: &[u8; HEADER_LEN as usize]) -> Option<LogHeader> {
        if xxhash_rust::xxh3::xxh3_64(&h[..56]) != le64(&h[56..]) {
            return None;
        }
        Some(LogHeader {
            dev: le64(&h[24..]),
            ino: le64(&h[32..]),
            old_len: le64(&h[40..]),
            new_len: le64(&h[48..]),
        })
    }
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Writes a log front to back, buffering up to about [`MAX_RECORD`] bytes. Nothing is
/// flushed behind the caller's back: what [`LogWriter::finish`] has not written is lost.
pub(super) struct LogWriter<'a> {
    file: &'a File,
    path: &'a Path,
    /// File offset of the start of `buf`.
    pos: u64,
    buf: Vec<u8>,
    hash: Xxh3,
    records: u64,
}

impl<'a> LogWriter<'a> {
    /// Start a log in the empty `file`.
    pub fn new(file: &'a File, path: &'a Path, header: &LogHeader) -> LogWriter<'a> {
        let mut w = LogWriter {
            file,
            path,
            pos: 0,
            buf: Vec::with_capacity((MAX_RECORD + RECORD_HEAD) as usize * 2),
            hash: Xxh3::new(),
            records: 0,
        };
        w.put(&header.encode());
        w
    }

    fn put(&mut self, bytes: &[u8]) {
        self.hash.update(bytes);
        self.buf.extend_from_slice(bytes);
    }

    /// Save `old`, the bytes at `offset` of the image (at most [`MAX_RECORD`]). Returns the
    /// length of the log written so far when the buffer was written out.
    pub fn record(&mut self, offset: u64, old: &[u8]) -> Result<Option<u64>> {
        debug_assert!(old.len() as u64 <= MAX_RECORD);
        self.put(&offset.to_le_bytes());
        self.put(&(old.len() as u64).to_le_bytes());
        self.put(old);
        self.records += 1;
        if (self.buf.len() as u64) < MAX_RECORD {
            return Ok(None);
        }
        self.flush().map(Some)
    }

    /// Write what is buffered; returns the log length so far.
    fn flush(&mut self) -> Result<u64> {
        fsutil::write_at(self.file, self.path, &self.buf, self.pos)?;
        self.pos += self.buf.len() as u64;
        self.buf.clear();
        Ok(self.pos)
    }

    /// Write the trailer and everything buffered (not synced); returns the log length.
    pub fn finish(mut self) -> Result<u64> {
        let sum = self.hash.digest();
        self.buf.extend_from_slice(END_MAGIC);
        self.buf.extend_from_slice(&self.records.to_le_bytes());
        self.buf.extend_from_slice(&sum.to_le_bytes());
        self.flush()
    }
}

/// What a log file holds.
#[derive(Debug)]
pub(super) enum LogState {
    /// The log was never completely written: the image was not touched.
    Incomplete,
    /// A complete log, with its header and number of records.
    Complete { header: LogHeader, records: u64 },
}

/// Read the whole log once and check it: its header, trailer and checksum. A file that
/// starts with something else than the log magic is not a log: an error.
pub(super) fn check(file: &File, path: &Path) -> Result<LogState> {
    let len = crate::block::file_len(file)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mut head = [0u8; HEADER_LEN as usize];
    let have = len.min(HEADER_LEN) as usize;
    fsutil::read_at(file, path, &mut head[..have], 0)?;
    if have < MAGIC.len() {
        return Ok(LogState::Incomplete);
    }
    if &head[..16] != MAGIC {
        return Err(Error::corrupt(format!(
            "{} is not a subroot undo log (it does not start with {:?})",
            path.display(),
            String::from_utf8_lossy(MAGIC)
        )));
    }
    if len < HEADER_LEN + TRAILER_LEN {
        return Ok(LogState::Incomplete);
    }
    let version = u32::from_le_bytes([head[16], head[17], head[18], head[19]]);
    if version != VERSION {
        return Err(Error::unsupported(format!(
            "{} is an undo log of version {version}; this subroot reads version {VERSION}",
            path.display()
        )));
    }
    let Some(header) = LogHeader::decode(&head) else {
        return Ok(LogState::Incomplete);
    };
    let body = len - TRAILER_LEN;
    let mut trailer = [0u8; TRAILER_LEN as usize];
    fsutil::read_at(file, path, &mut trailer, body)?;
    if &trailer[..16] != END_MAGIC {
        return Ok(LogState::Incomplete);
    }
    let mut hash = Xxh3::new();
    let mut buf = record_buf(body);
    let mut pos = 0;
    while pos < body {
        let n = (body - pos).min(MAX_RECORD) as usize;
        fsutil::read_at(file, path, &mut buf[..n], pos)?;
        hash.update(&buf[..n]);
        pos += n as u64;
    }
    if hash.digest() != le64(&trailer[24..]) {
        return Ok(LogState::Incomplete);
    }
    Ok(LogState::Complete {
        header,
        records: le64(&trailer[16..]),
    })
}

/// Call `f(offset, old_bytes)` for every record of a complete log, in order.
pub(super) fn for_each_record(
    file: &File,
    path: &Path,
    records: u64,
    mut f: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    let len = crate::block::file_len(file)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let body = len - TRAILER_LEN;
    let bad = |what: String| Error::corrupt(format!("undo log {}: {what}", path.display()));
    let mut buf = record_buf(body);
    let mut pos = HEADER_LEN;
    for i in 0..records {
        let mut head = [0u8; RECORD_HEAD as usize];
        if pos + RECORD_HEAD > body {
            return Err(bad(format!("record {i} of {records} is missing")));
        }
        fsutil::read_at(file, path, &mut head, pos)?;
        let (offset, n) = (le64(&head), le64(&head[8..]));
        if n > MAX_RECORD || pos + RECORD_HEAD + n > body {
            return Err(bad(format!("record {i} at {pos} claims {n} bytes")));
        }
        let data = &mut buf[..n as usize];
        fsutil::read_at(file, path, data, pos + RECORD_HEAD)?;
        f(offset, data)?;
        pos += RECORD_HEAD + n;
    }
    if pos != body {
        return Err(bad(format!(
            "{} bytes follow the last of its {records} records",
            body - pos
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log round-trips; any truncation makes it incomplete, a flipped byte too.
    #[test]
    fn complete_only_with_its_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        let header = LogHeader {
            dev: 1,
            ino: 2,
            old_len: 3,
            new_len: 4,
        };
        let mut w = LogWriter::new(&file, &path, &header);
        w.record(4096, &[7; 100]).unwrap();
        w.record(0, &vec![9; MAX_RECORD as usize]).unwrap();
        let len = w.finish().unwrap();
        let LogState::Complete { header: h, records } = check(&file, &path).unwrap() else {
            panic!("complete log seen as incomplete");
        };
        assert_eq!((h, records), (header, 2));
        let mut seen = Vec::new();
        for_each_record(&file, &path, records, |off, data| {
            seen.push((off, data.len(), data[0]));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [(4096, 100, 7), (0, MAX_RECORD as usize, 9)]);
        let all = std::fs::read(&path).unwrap();
        for cut in [0, 10, 63, 64, 100, len - 33, len - 1] {
            std::fs::write(&path, &all[..cut as usize]).unwrap();
            let f = File::open(&path).unwrap();
            assert!(
                matches!(check(&f, &path).unwrap(), LogState::Incomplete),
                "cut {cut}"
            );
        }
        let mut flipped = all.clone();
        flipped[200] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        let f = File::open(&path).unwrap();
        assert!(matches!(check(&f, &path).unwrap(), LogState::Incomplete));
        std::fs::write(&path, b"something else entirely, not a log at all......").unwrap();
        let f = File::open(&path).unwrap();
        assert!(matches!(check(&f, &path), Err(Error::Corrupt(_))));
    }
}
