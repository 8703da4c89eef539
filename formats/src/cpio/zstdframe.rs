//! The end of a zstd segment found from its frame and block headers alone, without
//! decoding: what lets a walk skip the rest of a zstd segment it no longer needs.
//!
//! A segment is what [`super::compress::Decoder`] decodes as one stream: any skippable
//! frames, then one zstd frame (RFC 8878: a frame header, blocks each carrying its
//! compressed size in a 3-byte header, and an optional 4-byte checksum).

use crate::block::BlockDevice;
use crate::{Error, Result};

const ZSTD_MAGIC: u32 = 0xfd2f_b528;

fn read<D: BlockDevice>(dev: &D, buf: &mut [u8], pos: u64, what: &str) -> Result<()> {
    if pos.saturating_add(buf.len() as u64) > dev.len() {
        return Err(Error::corrupt(format!(
            "zstd {what} at offset {pos} runs past the end of the initrd ({} bytes)",
            dev.len()
        )));
    }
    dev.read_at(buf, pos)
}

/// Offset just after the zstd segment starting at `start` in `dev`.
pub fn segment_end<D: BlockDevice>(dev: &D, start: u64) -> Result<u64> {
    let mut pos = start;
    loop {
        let mut magic = [0u8; 4];
        read(dev, &mut magic, pos, "frame magic")?;
        let m = u32::from_le_bytes(magic);
        if m & 0xffff_fff0 == 0x184d_2a50 {
            // Skippable frame: magic, 4-byte size, data; the segment goes on.
            let mut size = [0u8; 4];
            read(dev, &mut size, pos + 4, "skippable frame size")?;
            pos += 8 + u64::from(u32::from_le_bytes(size));
            continue;
        }
        if m != ZSTD_MAGIC {
            return Err(Error::corrupt(format!(
                "offset {pos}: found bytes {magic:02x?}, expected a zstd frame"
            )));
        }
        return frame_end(dev, pos);
    }
}

/// Offset just after the zstd frame starting at `start`.
fn frame_end<D: BlockDevice>(dev: &D, start: u64) -> Result<u64> {
    let mut fhd = [0u8; 1];
    read(dev, &mut fhd, start + 4, "frame header")?;
    let fhd = fhd[0];
    let single_segment = fhd & 0x20 != 0;
    let checksum = fhd & 0x04 != 0;
    if fhd & 0x08 != 0 {
        return Err(Error::corrupt(format!(
            "zstd frame at offset {start}: reserved bit set in the frame header"
        )));
    }
    let window = if single_segment { 0 } else { 1 };
    let dict = [0u64, 1, 2, 4][usize::from(fhd & 3)];
    let fcs = match fhd >> 6 {
        0 if single_segment => 1,
        0 => 0,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let mut pos = start + 5 + window + dict + fcs;
    loop {
        let mut bh = [0u8; 3];
        read(dev, &mut bh, pos, "block header")?;
        let h = u32::from(bh[0]) | u32::from(bh[1]) << 8 | u32::from(bh[2]) << 16;
        let last = h & 1 != 0;
        let size = u64::from(h >> 3);
        let body = match (h >> 1) & 3 {
            0 | 2 => size,
            1 => 1,
            _ => {
                return Err(Error::corrupt(format!(
                    "zstd block at offset {pos}: reserved block type"
                )))
            }
        };
        pos += 3 + body;
        if last {
            break;
        }
    }
    let end = pos + if checksum { 4 } else { 0 };
    if end > dev.len() {
        return Err(Error::corrupt(format!(
            "zstd frame at offset {start} runs past the end of the initrd ({} bytes)",
            dev.len()
        )));
    }
    Ok(end)
}
