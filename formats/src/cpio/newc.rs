//! Streaming reader and writer for the SVR4 "newc" (`070701`) and "crc" (`070702`) cpio
//! formats, the ones the Linux kernel unpacks from an initrd.
//!
//! Layout of one entry: a 110-byte ASCII header (6-byte magic, then 13 fields of 8 hex
//! digits), the NUL-terminated name, zero padding to a multiple of 4 (counted from the start
//! of the archive), `filesize` bytes of data, zero padding to a multiple of 4. An entry named
//! `TRAILER!!!` ends the archive.
//!
//! The reader never allocates more than a bounded name buffer, whatever the header claims,
//! and reports every error with the offset within the archive where it was found.

use crate::{Error, Result};
use std::io::{self, Read, Write};

/// Size of the fixed ASCII header.
pub const HEADER_LEN: usize = 110;
/// Name of the entry that ends an archive.
pub const TRAILER: &[u8] = b"TRAILER!!!";
/// Longest name accepted, NUL included: `PATH_MAX` (4096) plus slack for odd writers.
pub const MAX_NAME_SIZE: u32 = 4096 + 256;

/// File type bits of `mode`.
pub const S_IFMT: u32 = 0o170000;
/// Directory type.
pub const S_IFDIR: u32 = 0o040000;
/// Regular file type.
pub const S_IFREG: u32 = 0o100000;
/// Symbolic link type.
pub const S_IFLNK: u32 = 0o120000;

/// Which of the two ASCII SVR4 variants an entry uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `070701`: `check` is unused (zero).
    Newc,
    /// `070702`: for regular files `check` is the sum of the data bytes, modulo 2^32.
    Crc,
}

impl Format {
    /// The 6-byte magic.
    pub fn magic(self) -> &'static [u8; 6] {
        match self {
            Format::Newc => b"070701",
            Format::Crc => b"070702",
        }
    }

    /// The format a magic names, if any.
    pub fn from_magic(magic: &[u8]) -> Option<Format> {
        match magic {
            b"070701" => Some(Format::Newc),
            b"070702" => Some(Format::Crc),
            _ => None,
        }
    }
}

/// One entry header, fields exactly as stored (the name as raw bytes, without its NUL).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CpioHeader {
    /// Inode number (hard links share it, with the same `dev_major`/`dev_minor`).
    pub ino: u32,
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Link count; > 1 on hard-linked files (see [`super::hardlinks`]).
    pub nlink: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u32,
    /// Bytes of data following the header (a symlink's data is its target).
    pub filesize: u32,
    /// Device holding the file (with `ino`, identifies hard links).
    pub dev_major: u32,
    pub dev_minor: u32,
    /// Device number of a character or block device node.
    pub rdev_major: u32,
    pub rdev_minor: u32,
    /// Data checksum in the crc format (regular files), 0 otherwise.
    pub check: u32,
    /// Path name as raw bytes, without the terminating NUL (need not be UTF-8).
    pub name: Vec<u8>,
    /// The magic this entry was read with.
    pub format: Format,
}

impl CpioHeader {
    /// A header with every numeric field zero except `nlink` (1).
    pub fn new(name: impl Into<Vec<u8>>, mode: u32, filesize: u32) -> Self {
        CpioHeader {
            ino: 0,
            mode,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: 0,
            filesize,
            dev_major: 0,
            dev_minor: 0,
            rdev_major: 0,
            rdev_minor: 0,
            check: 0,
            name: name.into(),
            format: Format::Newc,
        }
    }

    /// True for the `TRAILER!!!` entry.
    pub fn is_trailer(&self) -> bool {
        self.name == TRAILER
    }

    /// The file type bits of `mode`.
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }

    /// Encode the 110-byte header followed by the name, its NUL and its padding, for an
    /// entry starting at archive offset `pos` (only `pos % 4` matters).
    fn encode(&self, format: Format, pos: u64) -> Result<Vec<u8>> {
        let namesize = self.name.len() + 1;
        if self.name.is_empty() || namesize as u64 > u64::from(MAX_NAME_SIZE) {
            return Err(Error::InvalidArgument(format!(
                "cpio entry name must be 1 to {} bytes long, got {}",
                MAX_NAME_SIZE - 1,
                self.name.len()
            )));
        }
        if self.name.contains(&0) {
            return Err(Error::InvalidArgument(format!(
                "cpio entry name {:?} contains a NUL byte",
                String::from_utf8_lossy(&self.name)
            )));
        }
        let mut out = Vec::with_capacity(HEADER_LEN + namesize + 3);
        out.extend_from_slice(format.magic());
        let check = if format == Format::Crc { self.check } else { 0 };
        for v in [
            self.ino,
            self.mode,
            self.uid,
            self.gid,
            self.nlink,
            self.mtime,
            self.filesize,
            self.dev_major,
            self.dev_minor,
            self.rdev_major,
            self.rdev_minor,
            namesize as u32,
            check,
        ] {
            out.extend_from_slice(format!("{v:08X}").as_bytes());
        }
        out.extend_from_slice(&self.name);
        out.push(0);
        let end = pos + out.len() as u64;
        out.resize(out.len() + pad4(end) as usize, 0);
        Ok(out)
    }
}

/// Bytes of zero padding needed after offset `pos` to reach a multiple of 4.
pub fn pad4(pos: u64) -> u64 {
    (4 - pos % 4) % 4
}

/// The "crc" format checksum: the sum of all data bytes, modulo 2^32.
pub fn checksum(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |s, &b| s.wrapping_add(u32::from(b)))
}

fn parse_hex(field: &[u8], what: &str, offset: u64) -> Result<u32> {
    let mut v: u32 = 0;
    for &c in field {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => {
                return Err(Error::corrupt(format!(
                    "cpio header at offset {offset}: field {what} is {:?}, expected 8 hex digits",
                    String::from_utf8_lossy(field)
                )))
            }
        };
        v = (v << 4) | u32::from(d);
    }
    Ok(v)
}

/// Map an I/O error met while reading an archive to a crate error with context.
fn read_error(e: io::Error, what: &str, offset: u64) -> Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => {
            Error::corrupt(format!("reading {what} at cpio offset {offset}: {e}"))
        }
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
            Error::corrupt(format!("reading {what} at cpio offset {offset}: {e}"))
        }
        _ => Error::io(format!("reading {what} at cpio offset {offset}"), e),
    }
}

/// Read as many bytes as possible into `buf`; returns how many (short only at end of input).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A streaming reader of one cpio archive.
///
/// Call [`CpioReader::next_entry`] for each header; between calls, read the entry's data
/// with [`CpioReader::data`] (or not: unread data is skipped). `next_entry` returns `None`
/// after the trailer, and [`CpioReader::position`] then tells how many bytes the archive
/// took, trailer and its alignment included.
#[derive(Debug)]
pub struct CpioReader<R> {
    inner: R,
    pos: u64,
    start: u64,
    /// Data bytes of the current entry not yet read.
    remaining: u64,
    /// Padding after the current entry's data.
    pad: u64,
    /// (expected checksum, running sum) for crc entries.
    crc: Option<(u32, u32)>,
    entry_offset: u64,
    entry_name: Vec<u8>,
    done: bool,
}

impl<R: Read> CpioReader<R> {
    /// A reader whose archive starts at the current position of `inner`.
    pub fn new(inner: R) -> Self {
        Self::with_position(inner, 0)
    }

    /// A reader for an archive whose first byte is at stream offset `pos` (alignment is
    /// counted from the start of the stream, as the kernel does; `pos` must be a multiple of
    /// 4 for a valid archive). Offsets in errors and [`CpioReader::position`] are stream
    /// offsets.
    pub fn with_position(inner: R, pos: u64) -> Self {
        CpioReader {
            inner,
            pos,
            start: pos,
            remaining: 0,
            pad: 0,
            crc: None,
            entry_offset: pos,
            entry_name: Vec::new(),
            done: false,
        }
    }

    /// Stream offset of the next byte this reader will consume.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Bytes consumed since the start of the archive.
    pub fn consumed(&self) -> u64 {
        self.pos - self.start
    }

    /// Stream offset of the current (last returned) entry's header.
    pub fn entry_offset(&self) -> u64 {
        self.entry_offset
    }

    /// True once the trailer has been read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The underlying reader back (positioned after whatever was consumed).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// A mutable reference to the underlying reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The next entry's header, skipping what is left of the previous entry's data; `None`
    /// after the trailer (which is consumed, with its padding, but not returned).
    pub fn next_entry(&mut self) -> Result<Option<CpioHeader>> {
        if self.done {
            return Ok(None);
        }
        self.finish_entry()?;
        let offset = self.pos;
        let mut raw = [0u8; HEADER_LEN];
        let n =
            read_full(&mut self.inner, &mut raw).map_err(|e| read_error(e, "a header", offset))?;
        self.pos += n as u64;
        if n < HEADER_LEN {
            return Err(Error::corrupt(format!(
                "cpio archive truncated: header at offset {offset} has {n} of {HEADER_LEN} bytes (no TRAILER!!! seen)"
            )));
        }
        let format = Format::from_magic(&raw[..6]).ok_or_else(|| {
            Error::corrupt(format!(
                "cpio header at offset {offset}: magic {:?}, expected \"070701\" or \"070702\"",
                String::from_utf8_lossy(&raw[..6])
            ))
        })?;
        const NAMES: [&str; 13] = [
            "ino",
            "mode",
            "uid",
            "gid",
            "nlink",
            "mtime",
            "filesize",
            "devmajor",
            "devminor",
            "rdevmajor",
            "rdevminor",
            "namesize",
            "check",
        ];
        let mut f = [0u32; 13];
        for (i, v) in f.iter_mut().enumerate() {
            *v = parse_hex(&raw[6 + 8 * i..14 + 8 * i], NAMES[i], offset)?;
        }
        let namesize = f[11];
        if namesize == 0 || namesize > MAX_NAME_SIZE {
            return Err(Error::corrupt(format!(
                "cpio header at offset {offset}: name size {namesize}, expected 1 to {MAX_NAME_SIZE}"
            )));
        }
        let mut name = vec![0u8; namesize as usize];
        let n = read_full(&mut self.inner, &mut name)
            .map_err(|e| read_error(e, "an entry name", self.pos))?;
        self.pos += n as u64;
        if n < name.len() {
            return Err(Error::corrupt(format!(
                "cpio archive truncated: name of the entry at offset {offset} needs {namesize} bytes, only {n} left"
            )));
        }
        if name.pop() != Some(0) {
            return Err(Error::corrupt(format!(
                "cpio header at offset {offset}: name of {namesize} bytes does not end with a NUL"
            )));
        }
        if let Some(i) = name.iter().position(|&b| b == 0) {
            return Err(Error::corrupt(format!(
                "cpio header at offset {offset}: name has a NUL at byte {i} of {namesize}"
            )));
        }
        self.skip_padding(pad4(self.pos), "name padding")?;
        let header = CpioHeader {
            ino: f[0],
            mode: f[1],
            uid: f[2],
            gid: f[3],
            nlink: f[4],
            mtime: f[5],
            filesize: f[6],
            dev_major: f[7],
            dev_minor: f[8],
            rdev_major: f[9],
            rdev_minor: f[10],
            check: f[12],
            name,
            format,
        };
        self.remaining = u64::from(header.filesize);
        self.pad = pad4(self.pos + self.remaining);
        // Like GNU cpio and the kernel, only regular files carry a checksum.
        self.crc =
            (format == Format::Crc && header.file_type() == S_IFREG).then_some((header.check, 0));
        self.entry_offset = offset;
        self.entry_name.clone_from(&header.name);
        if header.is_trailer() {
            self.finish_entry()?;
            self.done = true;
            return Ok(None);
        }
        Ok(Some(header))
    }

    /// A reader of the current entry's remaining data (EOF at the end of the entry).
    pub fn data(&mut self) -> EntryData<'_, R> {
        EntryData { r: self }
    }

    /// Read the current entry's remaining data into memory. For small entries (symlink
    /// targets); `limit` bounds what the caller is willing to hold.
    pub fn read_data(&mut self, limit: u64) -> Result<Vec<u8>> {
        if self.remaining > limit {
            return Err(Error::InvalidArgument(format!(
                "cpio entry {:?} holds {} bytes, more than the {limit} asked for",
                String::from_utf8_lossy(&self.entry_name),
                self.remaining
            )));
        }
        // Grow with the data actually read, not with what the header claims.
        let mut out = Vec::with_capacity(self.remaining.min(64 * 1024) as usize);
        let offset = self.pos;
        self.data()
            .read_to_end(&mut out)
            .map_err(|e| read_error(e, "entry data", offset))?;
        Ok(out)
    }

    /// Skip what is left of the current entry's data (and its padding), checking the crc
    /// of a crc-format regular file. [`CpioReader::next_entry`] does this by itself.
    pub fn skip_data(&mut self) -> Result<()> {
        self.finish_entry()
    }

    /// Skip what is left of the current entry's data by calling `seek` with the inner
    /// reader and the byte count, instead of reading it, unless a crc must be checked (then
    /// as [`CpioReader::skip_data`]). Data missing at the end shows at the next read.
    pub fn skip_data_with(
        &mut self,
        seek: impl FnOnce(&mut R, u64) -> io::Result<()>,
    ) -> Result<()> {
        if self.crc.is_none() && self.remaining > 0 {
            let (n, offset) = (self.remaining, self.pos);
            seek(&mut self.inner, n).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => Error::corrupt(format!(
                    "cpio archive truncated: entry {:?} at offset {} has data bytes missing \
                     ({n} from offset {offset}: {e})",
                    String::from_utf8_lossy(&self.entry_name),
                    self.entry_offset,
                )),
                _ => read_error(e, "entry data", offset),
            })?;
            self.pos += n;
            self.remaining = 0;
        }
        self.finish_entry()
    }

    /// Skip the rest of the current entry (data and padding), checking its crc.
    fn finish_entry(&mut self) -> Result<()> {
        let mut buf = [0u8; 8192];
        while self.remaining > 0 {
            let want = self.remaining.min(buf.len() as u64) as usize;
            let offset = self.pos;
            let n = self
                .read_data_chunk(&mut buf[..want])
                .map_err(|e| read_error(e, "entry data", offset))?;
            if n == 0 {
                break;
            }
        }
        let pad = self.pad;
        self.pad = 0;
        self.skip_padding(pad, "data padding")?;
        if let Some((expected, sum)) = self.crc.take() {
            if expected != sum {
                return Err(Error::corrupt(format!(
                    "cpio entry {:?} at offset {}: crc checksum is {sum:#010x}, header says {expected:#010x}",
                    String::from_utf8_lossy(&self.entry_name),
                    self.entry_offset
                )));
            }
        }
        Ok(())
    }

    fn skip_padding(&mut self, n: u64, what: &str) -> Result<()> {
        let mut buf = [0u8; 4];
        let offset = self.pos;
        let got = read_full(&mut self.inner, &mut buf[..n as usize])
            .map_err(|e| read_error(e, what, offset))?;
        self.pos += got as u64;
        if got < n as usize {
            return Err(Error::corrupt(format!(
                "cpio archive truncated: {what} at offset {offset} (entry {:?} at offset {})",
                String::from_utf8_lossy(&self.entry_name),
                self.entry_offset
            )));
        }
        Ok(())
    }

    /// Read up to `buf.len()` (clamped to what the entry has left) data bytes.
    fn read_data_chunk(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.remaining) as usize;
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "cpio archive truncated: entry {:?} at offset {} has {} data bytes missing at offset {}",
                    String::from_utf8_lossy(&self.entry_name),
                    self.entry_offset,
                    self.remaining,
                    self.pos
                ),
            ));
        }
        if let Some((_, sum)) = &mut self.crc {
            *sum = buf[..n]
                .iter()
                .fold(*sum, |s, &b| s.wrapping_add(u32::from(b)));
        }
        self.pos += n as u64;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// The data of the current entry of a [`CpioReader`], as a `Read` that ends with the entry.
#[derive(Debug)]
pub struct EntryData<'a, R> {
    r: &'a mut CpioReader<R>,
}

impl<R: Read> EntryData<'_, R> {
    /// Data bytes not yet read.
    pub fn remaining(&self) -> u64 {
        self.r.remaining
    }
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.r.read_data_chunk(buf)
    }
}

/// A streaming writer of one cpio archive in a fixed [`Format`].
///
/// For each entry call [`CpioWriter::write_header`] then write exactly `filesize` bytes
/// through the `Write` impl (or use [`CpioWriter::write_entry`] for in-memory data); end with
/// [`CpioWriter::finish`], which writes the trailer.
#[derive(Debug)]
pub struct CpioWriter<W> {
    inner: W,
    format: Format,
    pos: u64,
    remaining: u64,
    /// (expected checksum, running sum) of the current crc entry.
    crc: Option<(u32, u32)>,
    name: Vec<u8>,
}

impl<W: Write> CpioWriter<W> {
    /// A writer producing `format` entries (whatever the headers' `format` fields say).
    pub fn new(inner: W, format: Format) -> Self {
        CpioWriter {
            inner,
            format,
            pos: 0,
            remaining: 0,
            crc: None,
            name: Vec::new(),
        }
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn put(&mut self, buf: &[u8]) -> Result<()> {
        self.inner
            .write_all(buf)
            .map_err(|e| Error::io(format!("writing cpio data at offset {}", self.pos), e))?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn end_entry(&mut self) -> Result<()> {
        if self.remaining != 0 {
            return Err(Error::InvalidArgument(format!(
                "cpio entry {:?}: {} data bytes announced by its header were not written",
                String::from_utf8_lossy(&self.name),
                self.remaining
            )));
        }
        if let Some((expected, sum)) = self.crc.take() {
            if expected != sum {
                return Err(Error::InvalidArgument(format!(
                    "cpio entry {:?}: header check {expected:#010x} does not match the data sum {sum:#010x}",
                    String::from_utf8_lossy(&self.name)
                )));
            }
        }
        let pad = pad4(self.pos) as usize;
        self.put(&[0u8; 3][..pad])
    }

    /// Start an entry; its data (exactly `header.filesize` bytes) follows through `Write`.
    /// In the crc format a regular file's `header.check` must already hold the data sum
    /// (see [`checksum`]); other types carry 0, as GNU cpio writes them.
    pub fn write_header(&mut self, header: &CpioHeader) -> Result<()> {
        self.end_entry()?;
        if header.is_trailer() {
            return Err(Error::InvalidArgument(
                "TRAILER!!! is written by finish(), not as an entry".into(),
            ));
        }
        let bytes = header.encode(self.format, self.pos)?;
        self.put(&bytes)?;
        self.remaining = u64::from(header.filesize);
        self.crc = (self.format == Format::Crc && header.file_type() == S_IFREG)
            .then_some((header.check, 0));
        self.name.clone_from(&header.name);
        Ok(())
    }

    /// Write a whole entry from memory; in the crc format the checksum of a regular file is
    /// computed here (other types get 0).
    pub fn write_entry(&mut self, header: &CpioHeader, data: &[u8]) -> Result<()> {
        let mut h = header.clone();
        h.filesize = u32::try_from(data.len()).map_err(|_| {
            Error::InvalidArgument(format!(
                "cpio entry {:?}: {} bytes do not fit the 4 GiB newc size field",
                String::from_utf8_lossy(&header.name),
                data.len()
            ))
        })?;
        h.check = if h.file_type() == S_IFREG {
            checksum(data)
        } else {
            0
        };
        self.write_header(&h)?;
        self.write_data(data)
    }

    /// Write data of the current entry (no more than its header announced).
    pub fn write_data(&mut self, data: &[u8]) -> Result<()> {
        if data.len() as u64 > self.remaining {
            return Err(Error::InvalidArgument(format!(
                "cpio entry {:?}: {} more data bytes than its header announced",
                String::from_utf8_lossy(&self.name),
                data.len() as u64 - self.remaining
            )));
        }
        if let Some((_, sum)) = &mut self.crc {
            *sum = data.iter().fold(*sum, |s, &b| s.wrapping_add(u32::from(b)));
        }
        self.put(data)?;
        self.remaining -= data.len() as u64;
        Ok(())
    }

    /// Copy an entry's data from a reader; it must yield exactly `filesize` bytes.
    pub fn copy_data(&mut self, data: &mut dyn Read) -> Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match data.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::io(
                        format!(
                            "reading the data of cpio entry {:?}",
                            String::from_utf8_lossy(&self.name)
                        ),
                        e,
                    ))
                }
            };
            if n == 0 {
                break;
            }
            self.write_data(&buf[..n])?;
        }
        Ok(())
    }

    /// End the current entry, write the trailer and its padding, and return the writer
    /// (not flushed: flushing a compressor mid-stream would change its output).
    pub fn finish(mut self) -> Result<W> {
        self.end_entry()?;
        let mut trailer = CpioHeader::new(TRAILER, 0, 0);
        trailer.format = self.format;
        let bytes = trailer.encode(self.format, self.pos)?;
        self.put(&bytes)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for CpioWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_data(buf)
            .map(|()| buf.len())
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
