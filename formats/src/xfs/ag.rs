//! Allocation group headers: the AGF of each AG (`struct xfs_agf`, the second sector of the
//! AG), checked (magic, sequence number, length, v5 CRC) and summed for the blocks in use.

use super::sb::Superblock;
use super::{be32, corrupt, crc_ok};
use crate::block::BlockDevice;
use crate::Result;

/// AGs whose headers are read when the filesystem is opened (more are not checked; the
/// count of blocks in use falls back to the superblock's counter).
const MAX_AGS_CHECKED: u32 = 4096;

/// Free blocks of one AG as its AGF records them (free extents, free list, btree blocks
/// counted as used).
fn agf_free(dev: &dyn BlockDevice, sb: &Superblock, agno: u32) -> Result<u64> {
    let sect = u64::from(sb.sectsize);
    let at = u64::from(agno) * u64::from(sb.agblocks) * u64::from(sb.block_size) + sect;
    if at + sect > dev.len() {
        return Err(corrupt(format!(
            "the header of allocation group {agno} (byte {at}) lies beyond the end of the \
             device ({} bytes): the image is truncated",
            dev.len()
        )));
    }
    let mut b = vec![0u8; sect as usize];
    dev.read_at(&mut b, at)?;
    if &b[..4] != b"XAGF" {
        return Err(corrupt(format!(
            "allocation group {agno}: expected the AGF magic \"XAGF\", found {:02x?}",
            &b[..4]
        )));
    }
    if sb.v5() && !crc_ok(&b, 216) {
        return Err(corrupt(format!(
            "allocation group {agno}: the AGF's CRC does not match its contents"
        )));
    }
    let seq = be32(&b, 8);
    let length = be32(&b, 12);
    if seq != agno || length > sb.agblocks {
        return Err(corrupt(format!(
            "allocation group {agno}: its AGF says AG {seq} of {length} blocks"
        )));
    }
    let free = u64::from(be32(&b, 52)) + u64::from(be32(&b, 48));
    Ok(free.min(u64::from(length)))
}

/// Bytes in use in the data subvolume, from the AGFs (checked on the way), or from the
/// superblock's counter when there are too many AGs to read them all.
pub fn used_bytes(dev: &dyn BlockDevice, sb: &Superblock) -> Result<u64> {
    let free = if sb.agcount <= MAX_AGS_CHECKED {
        let mut free = 0u64;
        for agno in 0..sb.agcount {
            free += agf_free(dev, sb, agno)?;
        }
        free
    } else {
        agf_free(dev, sb, 0)?;
        sb.fdblocks
    };
    Ok(sb.dblocks.saturating_sub(free) << sb.blocklog)
}
