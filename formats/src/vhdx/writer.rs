//! Writing a dynamic VHDX (Hyper-V, Azure) in one pass: the file identifier, two headers
//! (CRC-32C, an empty log), two copies of the region table, the metadata region, the BAT,
//! then the payload blocks holding data, in disk order, 1 MiB aligned.
//!
//! Blocks are 1 MiB (the smallest VHDX allows, and what Microsoft recommends for Linux
//! guests): ext4 scatters its metadata over the whole disk, and with qemu's 32 MiB blocks
//! each backup superblock or bitmap costs a 32 MiB block in the file. All-zero blocks stay
//! NOT_PRESENT (read as zeros) and are never written; zero 4 KiB runs inside a present
//! block are left as holes. The layout is fixed by the virtual size, so the BAT is written
//! as the blocks go, through a window of [`BAT_WINDOW`] entries: memory stays bounded
//! whatever the size.

use super::header::{
    checksum, BAT_REGION, FILE_PARAMETERS, HEADERS, HEADER_LEN, LOGICAL_SECTOR_SIZE,
    METADATA_REGION, METADATA_TABLE_LEN, PHYSICAL_SECTOR_SIZE, REGION_TABLES, REGION_TABLE_LEN,
    VIRTUAL_DISK_ID, VIRTUAL_DISK_SIZE,
};
use crate::block::BlockDevice;
use crate::sparse_copy::{
    all_zero, for_each_data_chunk, write_skipping_zeros, WriteStats, Writeback,
};
use crate::{Error, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;

const MIB: u64 = 1 << 20;
const BLOCK: u64 = MIB;
const LOGICAL_SECTOR: u32 = 512;
/// What qemu writes, and what 4Kn-aware guests align to.
const PHYSICAL_SECTOR: u32 = 4096;
/// Payload blocks per sector bitmap block: 2^23 sectors of `LOGICAL_SECTOR` bytes.
const CHUNK_RATIO: u64 = (1 << 23) * LOGICAL_SECTOR as u64 / BLOCK;
/// The log (1 MiB, empty: its GUID in the headers is zero), metadata (1 MiB) and BAT regions.
const LOG_OFFSET: u64 = MIB;
const LOG_LEN: u64 = MIB;
const METADATA_OFFSET: u64 = 2 * MIB;
const METADATA_LEN: u64 = MIB;
const BAT_OFFSET: u64 = 3 * MIB;
/// The largest virtual size VHDX allows.
const MAX_SIZE: u64 = 64 << 40;
const PAYLOAD_BLOCK_FULLY_PRESENT: u64 = 6;
/// BAT entries buffered before they are written (512 KiB).
const BAT_WINDOW: u64 = 64 << 10;
/// Bytes of disk read per step.
const CHUNK: u64 = 4 * MIB;

/// The virtual size of the VHDX written for a disk of `len` bytes: `len` rounded up to
/// whole 512-byte sectors.
pub fn vhdx_size(len: u64) -> u64 {
    len.next_multiple_of(u64::from(LOGICAL_SECTOR))
}

/// The BAT's place in the file of payload block `block`: a sector bitmap entry follows
/// every [`CHUNK_RATIO`] payload entries.
fn bat_index(block: u64) -> u64 {
    block + block / CHUNK_RATIO
}

/// The file identifier: the signature and the creator, in UTF-16.
fn identifier() -> Vec<u8> {
    let mut b = vec![0u8; 64 << 10];
    b[..8].copy_from_slice(&super::MAGIC);
    let creator = concat!("subroot ", env!("CARGO_PKG_VERSION"));
    for (i, u) in creator.encode_utf16().enumerate() {
        b[8 + 2 * i..10 + 2 * i].copy_from_slice(&u.to_le_bytes());
    }
    b
}

/// A header with sequence number `seq`, an empty log and fresh write GUIDs.
fn header(seq: u64, file_write: [u8; 16], data_write: [u8; 16]) -> Vec<u8> {
    let mut h = vec![0u8; HEADER_LEN];
    h[..4].copy_from_slice(b"head");
    h[8..16].copy_from_slice(&seq.to_le_bytes());
    h[16..32].copy_from_slice(&file_write);
    h[32..48].copy_from_slice(&data_write);
    // 48..64: log GUID, zero: nothing to replay. 64..66: log version 0.
    h[66..68].copy_from_slice(&1u16.to_le_bytes());
    h[68..72].copy_from_slice(&(LOG_LEN as u32).to_le_bytes());
    h[72..80].copy_from_slice(&LOG_OFFSET.to_le_bytes());
    let sum = checksum(&h);
    h[4..8].copy_from_slice(&sum.to_le_bytes());
    h
}

/// The region table: the BAT (`bat_len` bytes) and the metadata region, both required.
fn region_table(bat_len: u64) -> Vec<u8> {
    let mut t = vec![0u8; REGION_TABLE_LEN];
    t[..4].copy_from_slice(b"regi");
    t[8..12].copy_from_slice(&2u32.to_le_bytes());
    for (i, (id, off, len)) in [
        (BAT_REGION, BAT_OFFSET, bat_len),
        (METADATA_REGION, METADATA_OFFSET, METADATA_LEN),
    ]
    .into_iter()
    .enumerate()
    {
        let e = &mut t[16 + 32 * i..48 + 32 * i];
        e[..16].copy_from_slice(&id);
        e[16..24].copy_from_slice(&off.to_le_bytes());
        e[24..28].copy_from_slice(&(len as u32).to_le_bytes());
        e[28..32].copy_from_slice(&1u32.to_le_bytes());
    }
    let sum = checksum(&t);
    t[4..8].copy_from_slice(&sum.to_le_bytes());
    t
}

/// The metadata region's table and items: file parameters, virtual disk size, page 83
/// data (`disk_id`), logical and physical sector sizes.
fn metadata(size: u64, disk_id: [u8; 16]) -> Vec<u8> {
    const REQUIRED: u32 = 4;
    const VIRTUAL_DISK: u32 = 2;
    let mut params = BLOCK.to_le_bytes()[..4].to_vec();
    params.extend_from_slice(&0u32.to_le_bytes()); // no parent, blocks not kept allocated
    let items: [([u8; 16], Vec<u8>, u32); 5] = [
        (FILE_PARAMETERS, params, REQUIRED),
        (
            VIRTUAL_DISK_SIZE,
            size.to_le_bytes().to_vec(),
            REQUIRED | VIRTUAL_DISK,
        ),
        (VIRTUAL_DISK_ID, disk_id.to_vec(), REQUIRED | VIRTUAL_DISK),
        (
            LOGICAL_SECTOR_SIZE,
            LOGICAL_SECTOR.to_le_bytes().to_vec(),
            REQUIRED | VIRTUAL_DISK,
        ),
        (
            PHYSICAL_SECTOR_SIZE,
            PHYSICAL_SECTOR.to_le_bytes().to_vec(),
            REQUIRED | VIRTUAL_DISK,
        ),
    ];
    let mut m = vec![0u8; METADATA_TABLE_LEN];
    m[..8].copy_from_slice(b"metadata");
    m[10..12].copy_from_slice(&(items.len() as u16).to_le_bytes());
    for (i, (id, value, flags)) in items.into_iter().enumerate() {
        let at = m.len() as u32;
        let e = &mut m[32 + 32 * i..64 + 32 * i];
        e[..16].copy_from_slice(&id);
        e[16..20].copy_from_slice(&at.to_le_bytes());
        e[20..24].copy_from_slice(&(value.len() as u32).to_le_bytes());
        e[24..28].copy_from_slice(&flags.to_le_bytes());
        m.extend_from_slice(&value);
    }
    m
}

fn put(out: &File, bytes: &[u8], at: u64, what: &str) -> Result<()> {
    out.write_all_at(bytes, at)
        .map_err(|e| Error::io(format!("writing the VHDX {what} at offset {at}"), e))
}

/// The BAT, written as it fills: entries come in increasing order, and a window of them is
/// written out when the next entry falls beyond it. Untouched entries stay zero
/// (NOT_PRESENT) in the sparse file.
struct Bat<'a> {
    out: &'a File,
    first: u64,
    entries: Vec<u64>,
}

impl Bat<'_> {
    fn set(&mut self, index: u64, entry: u64) -> Result<()> {
        if index >= self.first + BAT_WINDOW {
            self.flush()?;
            self.first = index / BAT_WINDOW * BAT_WINDOW;
        }
        self.entries[(index - self.first) as usize] = entry;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let Some(last) = self.entries.iter().rposition(|&e| e != 0) else {
            return Ok(());
        };
        let bytes: Vec<u8> = self.entries[..=last]
            .iter()
            .flat_map(|e| e.to_le_bytes())
            .collect();
        put(self.out, &bytes, BAT_OFFSET + self.first * 8, "BAT")?;
        self.entries.fill(0);
        Ok(())
    }
}

/// Stream `src` into `out` (empty, seekable) as a dynamic VHDX of [`vhdx_size`] bytes: the
/// structures, the blocks holding data (all-zero blocks left out), the BAT; then synced.
/// Calls `progress(bytes_of_the_device_done)` now and then, ending at `src.len()`.
pub fn write_vhdx_dynamic(
    src: &dyn BlockDevice,
    out: &File,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<WriteStats> {
    let size = vhdx_size(src.len());
    if size == 0 || size > MAX_SIZE {
        return Err(Error::InvalidArgument(format!(
            "a VHDX holds from 512 bytes to 64 TiB; the disk is {} bytes",
            src.len()
        )));
    }
    let blocks = size.div_ceil(BLOCK);
    let bat_entries = bat_index(blocks - 1) + 1;
    let bat_len = (bat_entries * 8).next_multiple_of(MIB);
    let data_start = BAT_OFFSET + bat_len;

    let mut bat = Bat {
        out,
        first: 0,
        entries: vec![0; BAT_WINDOW as usize],
    };
    let mut next = data_start;
    let mut data_bytes = 0u64;
    let mut writeback = Writeback::new(out);
    for_each_data_chunk(src, BLOCK, CHUNK, progress, |pos, buf| {
        for (i, block) in buf.chunks(BLOCK as usize).enumerate() {
            if all_zero(block) {
                continue;
            }
            let at = pos + i as u64 * BLOCK;
            let real = &block[..(size - at).min(BLOCK) as usize];
            data_bytes += write_skipping_zeros(out, real, next)?;
            bat.set(bat_index(at / BLOCK), next | PAYLOAD_BLOCK_FULLY_PRESENT)?;
            next += BLOCK;
            writeback.advance(next);
        }
        Ok(())
    })?;
    bat.flush()?;
    writeback.finish();

    let new_guid = || *uuid::Uuid::new_v4().as_bytes();
    let (file_write, data_write) = (new_guid(), new_guid());
    put(out, &identifier(), 0, "file identifier")?;
    for (seq, at) in HEADERS.into_iter().enumerate() {
        put(
            out,
            &header(seq as u64, file_write, data_write),
            at,
            "header",
        )?;
    }
    for at in REGION_TABLES {
        put(out, &region_table(bat_len), at, "region table")?;
    }
    put(
        out,
        &metadata(size, new_guid()),
        METADATA_OFFSET,
        "metadata",
    )?;
    // Every present block lies wholly inside the file, as readers check.
    out.set_len(next)
        .map_err(|e| Error::io(format!("setting the output size to {next} bytes"), e))?;
    out.sync_all()
        .map_err(|e| Error::io("syncing the output", e))?;
    Ok(WriteStats {
        virtual_size: size,
        data_bytes,
        file_size: next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_the_spec() {
        assert_eq!(CHUNK_RATIO, 4096);
        assert_eq!(bat_index(4095), 4095);
        assert_eq!(bat_index(4096), 4097, "a sector bitmap entry after a chunk");
        assert_eq!(vhdx_size(1), 512);
        assert_eq!(vhdx_size(1024), 1024);
        let m = metadata(5 << 30, [1; 16]);
        assert_eq!(&m[..8], b"metadata");
        assert_eq!(m.len(), METADATA_TABLE_LEN + 8 + 8 + 16 + 4 + 4);
        let h = header(1, [2; 16], [3; 16]);
        assert_eq!(checksum(&h).to_le_bytes(), h[4..8]);
    }
}
