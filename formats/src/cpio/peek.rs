//! A buffered reader that can look ahead a few bytes and counts what was consumed.
//!
//! Decompressors read their input through it with `fill_buf`/`consume`, so the count of
//! consumed bytes is exactly the length of the compressed stream even when more data (the
//! next initrd segment) follows; `peek` lets the segment walker and the multi-frame
//! decoders look at the next magic without consuming it.

use std::io::{self, BufRead, Read, Seek, SeekFrom};

const CAPACITY: usize = 64 * 1024;

/// A `BufRead` over any `Read` with [`PeekReader::peek`] and a consumed-byte counter.
#[derive(Debug)]
pub struct PeekReader<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    consumed: u64,
}

impl<R: Read> PeekReader<R> {
    /// Wrap `inner`; the counter starts at 0.
    pub fn new(inner: R) -> Self {
        PeekReader {
            inner,
            buf: vec![0; CAPACITY].into_boxed_slice(),
            start: 0,
            end: 0,
            consumed: 0,
        }
    }

    /// Wrap `inner`, already positioned `consumed` bytes into its stream (the counter
    /// starts there).
    pub fn with_consumed(inner: R, consumed: u64) -> Self {
        PeekReader {
            consumed,
            ..Self::new(inner)
        }
    }

    /// Bytes consumed (handed out by `read` or passed to `consume`) so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Up to `n` (at most 64 KiB) next bytes without consuming them; shorter only at EOF.
    pub fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        let n = n.min(CAPACITY);
        if self.end - self.start < n {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            while self.end < n {
                match self.inner.read(&mut self.buf[self.end..]) {
                    Ok(0) => break,
                    Ok(k) => self.end += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let avail = (self.end - self.start).min(n);
        Ok(&self.buf[self.start..self.start + avail])
    }

    /// Consume bytes while they are zero; returns how many were skipped.
    pub fn skip_zeros(&mut self) -> io::Result<u64> {
        let mut skipped = 0u64;
        loop {
            let buf = self.fill_buf()?;
            if buf.is_empty() {
                return Ok(skipped);
            }
            let zeros = buf.iter().position(|&b| b != 0).unwrap_or(buf.len());
            let all = zeros == buf.len();
            self.consume(zeros);
            skipped += zeros as u64;
            if !all {
                return Ok(skipped);
            }
        }
    }

    /// The wrapped reader (buffered bytes are lost).
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for PeekReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end && out.len() >= CAPACITY {
            let n = self.inner.read(out)?;
            self.consumed += n as u64;
            return Ok(n);
        }
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for PeekReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            loop {
                match self.inner.read(&mut self.buf) {
                    Ok(k) => {
                        self.end = k;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buf[self.start..self.end])
    }

    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.end - self.start);
        self.start += amt;
        self.consumed += amt as u64;
    }
}

impl<R: Read + Seek> PeekReader<R> {
    /// Consume `n` bytes without reading them: the buffered ones are dropped and the rest
    /// sought over; an `UnexpectedEof` error (and nothing consumed) if fewer are left.
    pub fn skip(&mut self, n: u64) -> io::Result<()> {
        let buffered = ((self.end - self.start) as u64).min(n);
        let rest = n - buffered;
        if rest > 0 {
            let here = self.inner.stream_position()?;
            let end = self.inner.seek(SeekFrom::End(0))?;
            let target = here.saturating_add(rest);
            if target > end {
                self.inner.seek(SeekFrom::Start(here))?;
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} bytes to skip, {} left", n, buffered + (end - here)),
                ));
            }
            self.inner.seek(SeekFrom::Start(target))?;
        }
        self.start += buffered as usize;
        self.consumed += n;
        Ok(())
    }
}
