//! The checksum algorithms of btrfs metadata (`csum_type` of the superblock): crc32c,
//! xxhash64 and sha256 are verified; blake2b is named and refused.

use crate::{Error, Result};
use sha2::Digest;

/// Bytes at the start of a superblock or tree block reserved for its checksum.
pub const CSUM_SIZE: usize = 32;

/// A checksum algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsumType {
    Crc32c,
    Xxhash64,
    Sha256,
}

impl CsumType {
    /// The algorithm numbered `n` in the superblock.
    pub fn from_disk(n: u16) -> Result<CsumType> {
        match n {
            0 => Ok(CsumType::Crc32c),
            1 => Ok(CsumType::Xxhash64),
            2 => Ok(CsumType::Sha256),
            3 => Err(Error::unsupported(
                "btrfs: the filesystem's checksums are blake2b, which subroot does not verify \
                 (it verifies crc32c, xxhash64 and sha256)",
            )),
            n => Err(Error::corrupt(format!(
                "btrfs: unknown checksum type {n} in the superblock (0-3 exist)"
            ))),
        }
    }

    /// The algorithm's name, as `btrfs inspect-internal dump-super` prints it.
    pub fn name(self) -> &'static str {
        match self {
            CsumType::Crc32c => "crc32c",
            CsumType::Xxhash64 => "xxhash64",
            CsumType::Sha256 => "sha256",
        }
    }

    /// The checksum of `data`, as stored (little-endian for the integer ones), padded to
    /// [`CSUM_SIZE`] with zeros.
    pub fn compute(self, data: &[u8]) -> [u8; CSUM_SIZE] {
        let mut out = [0u8; CSUM_SIZE];
        match self {
            CsumType::Crc32c => out[..4].copy_from_slice(&crc32c::crc32c(data).to_le_bytes()),
            CsumType::Xxhash64 => {
                out[..8].copy_from_slice(&xxhash_rust::xxh64::xxh64(data, 0).to_le_bytes())
            }
            CsumType::Sha256 => out.copy_from_slice(&sha2::Sha256::digest(data)),
        }
        out
    }

    /// Bytes of the stored checksum that count.
    pub fn size(self) -> usize {
        match self {
            CsumType::Crc32c => 4,
            CsumType::Xxhash64 => 8,
            CsumType::Sha256 => 32,
        }
    }

    /// Check the checksum stored in the first [`CSUM_SIZE`] bytes of `block` (over the
    /// rest of it); `what` names the block in the error.
    pub fn verify(self, block: &[u8], what: &dyn Fn() -> String) -> Result<()> {
        if block.len() < CSUM_SIZE {
            return Err(Error::corrupt(format!("btrfs: {} is cut short", what())));
        }
        let want = self.compute(&block[CSUM_SIZE..]);
        let n = self.size();
        if want[..n] != block[..n] {
            return Err(Error::corrupt(format!(
                "btrfs: {} has a bad {} checksum (stored {}, computed {})",
                what(),
                self.name(),
                hex(&block[..n]),
                hex(&want[..n])
            )));
        }
        Ok(())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
