//! [`Summing`]: a [`Content`] wrapper that hashes a file's bytes (128-bit XXH3, holes as
//! zeros) while the populate step reads them, so verify can check the built file against
//! the length and hash instead of reading the source a second time; and [`sum_reader`],
//! the same sum over any reader (the built file).

use super::record::ContentSum;
use crate::{Error, Result};
use std::io::Read;
use subroot_formats::block::Extent;
use subroot_formats::tree::Content;
use xxhash_rust::xxh3::Xxh3;

/// Zeros fed to the hash for skipped bytes (holes).
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Hashes what is read or skipped through it.
pub struct Summing<'a> {
    inner: &'a mut dyn Content,
    hash: Xxh3,
    len: u64,
}

impl<'a> Summing<'a> {
    /// Wrap `inner`.
    pub fn new(inner: &'a mut dyn Content) -> Self {
        Summing {
            inner,
            hash: Xxh3::new(),
            len: 0,
        }
    }

    /// Bytes read or skipped so far.
    pub fn consumed(&self) -> u64 {
        self.len
    }

    /// Read (and hash) what the consumer left of the first `size` bytes, then the sum.
    pub fn finish(mut self, size: u64) -> Result<ContentSum> {
        let mut buf = Vec::new();
        while self.len < size {
            if buf.is_empty() {
                buf = vec![0u8; 64 << 10];
            }
            let want = (size - self.len).min(buf.len() as u64) as usize;
            let n = self
                .read(&mut buf[..want])
                .map_err(|e| Error::io("reading file content", e))?;
            if n == 0 {
                break;
            }
        }
        Ok(ContentSum {
            len: self.len,
            hash: self.hash.digest128(),
        })
    }
}

impl Read for Summing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let got = buf.get(..n).unwrap_or(&[]);
        self.hash.update(got);
        self.len += got.len() as u64;
        Ok(n)
    }
}

impl Content for Summing<'_> {
    fn extents(&self) -> subroot_formats::Result<Vec<Extent>> {
        self.inner.extents()
    }

    fn skip(&mut self, n: u64) -> subroot_formats::Result<()> {
        self.inner.skip(n)?;
        let mut left = n;
        while left > 0 {
            let k = left.min(ZEROS.len() as u64) as usize;
            self.hash.update(&ZEROS[..k]);
            left -= k as u64;
        }
        self.len += n;
        Ok(())
    }
}

/// The sum of everything `r` yields.
pub fn sum_reader(r: &mut dyn Read) -> std::io::Result<ContentSum> {
    let mut hash = Xxh3::new();
    let mut len = 0u64;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(buf.get(..n).unwrap_or(&[]));
        len += n as u64;
    }
    Ok(ContentSum {
        len,
        hash: hash.digest128(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use subroot_formats::tree::BytesContent;

    #[test]
    fn holes_hash_as_zeros() {
        let mut data = vec![7u8; 100];
        data.extend([0u8; 70_000]);
        data.extend([9u8; 33]);
        let whole = sum_reader(&mut &data[..]).unwrap();
        // Read part, skip the hole, leave the tail to finish().
        let mut c = BytesContent::new(data.clone());
        let mut s = Summing::new(&mut c);
        let mut head = [0u8; 100];
        s.read_exact(&mut head).unwrap();
        s.skip(70_000).unwrap();
        assert_eq!(s.consumed(), 70_100);
        assert_eq!(s.finish(data.len() as u64).unwrap(), whole);
        // Nothing read by the consumer: finish reads it all; a different byte differs.
        let mut c = BytesContent::new(data.clone());
        assert_eq!(Summing::new(&mut c).finish(1 << 20).unwrap(), whole);
        data[5] = 8;
        assert_ne!(sum_reader(&mut &data[..]).unwrap(), whole);
    }
}
