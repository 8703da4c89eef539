//! Writing a fixed VHD (what Azure takes): the disk's bytes, sparse, padded to a whole
//! number of MiB, then a 512-byte footer with its CHS geometry and checksum.
//!
//! The footer's creator application is "win ": readers decide by it whether the size is
//! `current_size` or the CHS product (qemu's rule, see [`Footer::virtual_size`]), and only
//! `current_size` can hold a MiB-aligned size exactly.

use super::footer::{checksum, geometry, Footer, FOOTER_LEN, MAX_SIZE};
use super::FOOTER_MAGIC;
use crate::block::BlockDevice;
use crate::sparse_copy::{raw_copy, WriteStats};
use crate::{Error, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;

const MIB: u64 = 1 << 20;

/// The virtual size of the fixed VHD written for a disk of `len` bytes: `len` rounded up
/// to a whole MiB, as Azure requires.
pub fn fixed_size(len: u64) -> u64 {
    len.next_multiple_of(MIB)
}

/// The footer of a fixed disk of `size` bytes, with `unique_id`, created at `timestamp`
/// (seconds since 2000-01-01 UTC).
pub fn fixed_footer(size: u64, unique_id: [u8; 16], timestamp: u32) -> [u8; FOOTER_LEN] {
    let mut f = [0u8; FOOTER_LEN];
    f[..8].copy_from_slice(&FOOTER_MAGIC);
    f[8..12].copy_from_slice(&2u32.to_be_bytes()); // features: reserved bit, always set
    f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    f[16..24].copy_from_slice(&u64::MAX.to_be_bytes()); // no dynamic header
    f[24..28].copy_from_slice(&timestamp.to_be_bytes());
    f[28..32].copy_from_slice(b"win ");
    f[32..36].copy_from_slice(&0x000a_0000u32.to_be_bytes());
    f[36..40].copy_from_slice(b"Wi2k");
    f[40..48].copy_from_slice(&size.to_be_bytes());
    f[48..56].copy_from_slice(&size.to_be_bytes());
    let (c, h, s) = geometry(size / 512);
    f[56..58].copy_from_slice(&c.to_be_bytes());
    f[58] = h;
    f[59] = s;
    f[60..64].copy_from_slice(&2u32.to_be_bytes()); // fixed
    f[68..84].copy_from_slice(&unique_id);
    let sum = checksum(&f, 64);
    f[64..68].copy_from_slice(&sum.to_be_bytes());
    f
}

/// Stream `src` into `out` (empty, seekable) as a fixed VHD: the data sparse as in
/// [`crate::sparse_copy::write_raw`], zeros up to [`fixed_size`], the footer (a fresh random
/// unique id, created at `timestamp`: seconds since 2000-01-01 UTC); then synced. Calls `progress(bytes_of_the_device_done)` now and then, ending at `src.len()`.
pub fn write_vhd_fixed(
    src: &dyn BlockDevice,
    out: &File,
    timestamp: u32,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<WriteStats> {
    let size = fixed_size(src.len());
    if size > MAX_SIZE {
        return Err(Error::InvalidArgument(format!(
            "a VHD holds at most 2040 GiB; the disk is {} bytes",
            src.len()
        )));
    }
    let stats = raw_copy(src, out, progress, true)?;
    let footer = fixed_footer(size, *uuid::Uuid::new_v4().as_bytes(), timestamp);
    debug_assert!(Footer::parse(&footer).is_ok_and(|f| f.virtual_size() == size));
    out.set_len(size)
        .map_err(|e| Error::io(format!("setting the output size to {size} bytes"), e))?;
    out.write_all_at(&footer, size)
        .map_err(|e| Error::io("writing the VHD footer", e))?;
    out.sync_all()
        .map_err(|e| Error::io("syncing the output", e))?;
    Ok(WriteStats {
        virtual_size: size,
        data_bytes: stats.data_bytes,
        file_size: size + FOOTER_LEN as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_parses_back_with_its_size() {
        for size in [MIB, 3 * MIB, 127 << 30, MAX_SIZE] {
            let f = Footer::parse(&fixed_footer(size, [7; 16], 1)).unwrap();
            assert_eq!(f.virtual_size(), size);
            let (c, h, s) = f.geometry;
            assert!(u64::from(c) * u64::from(h) * u64::from(s) * 512 <= size);
        }
        assert_eq!(fixed_size(1), MIB);
        assert_eq!(fixed_size(MIB), MIB);
    }
}
