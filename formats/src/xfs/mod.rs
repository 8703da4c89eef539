//! XFS (v4 and v5), read-only: [`XfsTree`] reads a filesystem as a [`crate::tree::TreeSource`].
//!
//! No maintained Rust crate reads XFS read-only over an arbitrary block device (crates.io
//! has none with directories, xattrs and v5 CRCs), so this module reads the on-disk format
//! itself, after `xfs_format.h`, `xfs_da_format.h` and `xfs_log_format.h` of xfsprogs.
//! Every structure is big-endian; v5 metadata carries a CRC32C (stored little-endian) that
//! is checked. Files of the realtime subvolume are refused (their data lives on another
//! device); everything else a Linux system stores is read.

mod ag;
mod attr;
mod bmap;
mod dir;
mod inode;
mod log;
mod read;
mod sb;

pub use read::XfsTree;
pub use sb::Superblock;

use crate::Error;

/// A [`Error::Corrupt`] prefixed with `xfs: `.
pub(crate) fn corrupt(msg: impl std::fmt::Display) -> Error {
    Error::corrupt(format!("xfs: {msg}"))
}

/// Big-endian u16 at `off` (0 past the end: callers check lengths first).
pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .map_or(0, |s| u16::from_be_bytes([s[0], s[1]]))
}

/// Big-endian u32 at `off` (0 past the end).
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Big-endian u64 at `off` (0 past the end).
pub(crate) fn be64(b: &[u8], off: usize) -> u64 {
    (u64::from(be32(b, off)) << 32) | u64::from(be32(b, off + 4))
}

/// True when the CRC32C of `b` (with the 4 bytes at `crc_off` counted as zero) equals the
/// little-endian value stored there, as XFS v5 metadata is checksummed.
pub(crate) fn crc_ok(b: &[u8], crc_off: usize) -> bool {
    let Some(stored) = b.get(crc_off..crc_off + 4) else {
        return false;
    };
    let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
    let c = crc32c::crc32c(&b[..crc_off]);
    let c = crc32c::crc32c_append(c, &[0; 4]);
    crc32c::crc32c_append(c, &b[crc_off + 4..]) == stored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_counts_its_own_field_as_zero() {
        let mut b = vec![7u8; 64];
        b[8..12].fill(0);
        let c = crc32c::crc32c(&b);
        b[8..12].copy_from_slice(&c.to_le_bytes());
        assert!(crc_ok(&b, 8));
        b[20] ^= 1;
        assert!(!crc_ok(&b, 8));
        assert!(!crc_ok(&b, 62));
    }

    #[test]
    fn fields_past_the_end_read_as_zero() {
        assert_eq!(be32(&[1, 2, 3], 0), 0);
        assert_eq!(be16(&[1, 2], 0), 0x102);
        assert_eq!(be64(&[0; 4], 0), 0);
    }
}
