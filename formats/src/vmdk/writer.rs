//! Writing a streamOptimized VMDK (what vSphere and OVA imports take) in one pass: a
//! header saying "grain directory at the end", the embedded descriptor, then each grain
//! holding data deflate-compressed behind a grain marker, each grain table behind its
//! marker once its grains are written, and at the end the grain directory, a footer (the
//! header again, with the directory's offset) and the end-of-stream marker.
//!
//! All-zero grains are left out (unallocated), so they read as zeros. Memory: one grain
//! table and the grain directory (4 bytes per 32 MiB of disk).

use crate::block::BlockDevice;
use crate::sparse_copy::{all_zero, map_chunks_in_order, WriteStats};
use crate::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

const SECTOR: u64 = 512;
/// 64 KiB grains, 512 entries per grain table, as VMware and qemu write them.
const GRAIN_SECTORS: u64 = 128;
const GRAIN: u64 = GRAIN_SECTORS * SECTOR;
const GTES: u64 = 512;
/// Sectors before the first grain: header, descriptor (VMware's overhead of 128 sectors).
const OVERHEAD: u64 = 128;
const DESCRIPTOR_SECTOR: u64 = 1;
const DESCRIPTOR_SECTORS: u64 = 20;
const FLAGS: u32 = 1 | (1 << 16) | (1 << 17);
const MARKER_GT: u32 = 1;
const MARKER_GD: u32 = 2;
const MARKER_FOOTER: u32 = 3;
/// Bytes of disk read and compressed per step.
const CHUNK: u64 = 1 << 20;

/// The 512-byte sparse extent header.
fn header(capacity_sectors: u64, gd_sector: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..4].copy_from_slice(b"KDMV");
    h[4..8].copy_from_slice(&3u32.to_le_bytes());
    h[8..12].copy_from_slice(&FLAGS.to_le_bytes());
    h[12..20].copy_from_slice(&capacity_sectors.to_le_bytes());
    h[20..28].copy_from_slice(&GRAIN_SECTORS.to_le_bytes());
    h[28..36].copy_from_slice(&DESCRIPTOR_SECTOR.to_le_bytes());
    h[36..44].copy_from_slice(&DESCRIPTOR_SECTORS.to_le_bytes());
    h[44..48].copy_from_slice(&(GTES as u32).to_le_bytes());
    h[48..56].copy_from_slice(&0u64.to_le_bytes());
    h[56..64].copy_from_slice(&gd_sector.to_le_bytes());
    h[64..72].copy_from_slice(&OVERHEAD.to_le_bytes());
    h[73..77].copy_from_slice(b"\n \r\n");
    h[77..79].copy_from_slice(&1u16.to_le_bytes());
    h
}

/// A metadata marker: `sectors` of metadata of `kind` follow.
fn marker(sectors: u64, kind: u32) -> [u8; 512] {
    let mut m = [0u8; 512];
    m[..8].copy_from_slice(&sectors.to_le_bytes());
    m[12..16].copy_from_slice(&kind.to_le_bytes());
    m
}

fn descriptor(capacity_sectors: u64, name: &str, cid: u32) -> Result<Vec<u8>> {
    let cylinders = (capacity_sectors / (16 * 63)).clamp(1, 16383);
    let text = format!(
        "# Disk DescriptorFile\nversion=1\nCID={cid:08x}\nparentCID=ffffffff\n\
         createType=\"streamOptimized\"\n\n# Extent description\n\
         RW {capacity_sectors} SPARSE \"{name}\"\n\n# The Disk Data Base\n#DDB\n\n\
         ddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"{cylinders}\"\n\
         ddb.geometry.heads = \"16\"\nddb.geometry.sectors = \"63\"\n\
         ddb.adapterType = \"ide\"\n"
    );
    if text.len() as u64 > DESCRIPTOR_SECTORS * SECTOR || name.contains('"') {
        return Err(Error::InvalidArgument(format!(
            "the VMDK file name {name:?} is too long or holds a quote"
        )));
    }
    let mut b = text.into_bytes();
    b.resize((DESCRIPTOR_SECTORS * SECTOR) as usize, 0);
    Ok(b)
}

/// Appends whole sectors to the output.
struct Out<'a> {
    file: &'a File,
    pos: u64,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all_at(bytes, self.pos)
            .map_err(|e| Error::io(format!("writing the output at offset {}", self.pos), e))?;
        self.pos += bytes.len() as u64;
        let pad = self.pos.next_multiple_of(SECTOR) - self.pos;
        if pad > 0 {
            self.file
                .write_all_at(&vec![0u8; pad as usize], self.pos)
                .map_err(|e| Error::io("padding the output", e))?;
            self.pos += pad;
        }
        Ok(())
    }

    fn sector(&self) -> u64 {
        self.pos / SECTOR
    }
}

/// The grains of a chunk at disk offset `pos` that hold data, deflate-compressed: (grain
/// number, compressed bytes, bytes of the disk it covers) in order.
fn compress_grains(pos: u64, buf: &[u8], disk_len: u64) -> Result<Vec<(u64, Vec<u8>, u64)>> {
    let mut out = Vec::new();
    for (i, grain) in buf.chunks(GRAIN as usize).enumerate() {
        if all_zero(grain) {
            continue;
        }
        let at = pos + i as u64 * GRAIN;
        let mut z = flate2::write::ZlibEncoder::new(
            Vec::with_capacity(grain.len() / 2),
            flate2::Compression::default(),
        );
        z.write_all(grain)
            .map_err(|e| Error::io("compressing a grain", e))?;
        let packed = z
            .finish()
            .map_err(|e| Error::io("compressing a grain", e))?;
        out.push((at / GRAIN, packed, (disk_len - at).min(GRAIN)));
    }
    Ok(out)
}

/// Write `src` as a new streamOptimized VMDK to `out` (an empty file opened read+write),
/// whose descriptor names the extent `name` (the output's final file name). The virtual
/// size is `src.len()` rounded up to a multiple of 512. `progress` as for raw output.
pub fn write_vmdk_stream(
    src: &dyn BlockDevice,
    out: &File,
    name: &str,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<WriteStats> {
    let capacity = src.len().div_ceil(SECTOR);
    let gd_entries = capacity.div_ceil(GRAIN_SECTORS * GTES);
    if gd_entries > (16 << 20) / 4 {
        return Err(Error::Unsupported(format!(
            "a VMDK of {} bytes is too large",
            src.len()
        )));
    }
    let cid = uuid::Uuid::new_v4().as_u128() as u32 & 0xffff_fffe;
    let mut o = Out { file: out, pos: 0 };
    o.put(&header(capacity, u64::MAX))?;
    o.put(&descriptor(capacity, name, cid)?)?;
    o.put(&vec![0u8; ((OVERHEAD - o.sector()) * SECTOR) as usize])?;

    let mut gd = vec![0u32; gd_entries as usize];
    let mut gt = vec![0u32; GTES as usize];
    let mut gt_index: Option<u64> = None;
    let mut data_bytes = 0u64;
    let sector_u32 = |s: u64| {
        u32::try_from(s).map_err(|_| {
            Error::Unsupported("the VMDK would exceed 2 TiB of compressed data".to_string())
        })
    };
    let flush_gt = |o: &mut Out, gt: &mut Vec<u32>, gd: &mut Vec<u32>, idx: u64| -> Result<()> {
        o.put(&marker(GTES * 4 / SECTOR, MARKER_GT))?;
        gd[idx as usize] = sector_u32(o.sector())?;
        let bytes: Vec<u8> = gt.iter().flat_map(|e| e.to_le_bytes()).collect();
        o.put(&bytes)?;
        gt.fill(0);
        Ok(())
    };
    // Grains are compressed on every core (a chunk of grains per job) and written here in
    // disk order.
    let len = src.len();
    map_chunks_in_order(
        src,
        GRAIN,
        CHUNK,
        progress,
        0,
        move |pos, buf| compress_grains(pos, buf, len),
        |grains| {
            for (g, packed, bytes) in grains {
                if gt_index.is_some_and(|t| t != g / GTES) {
                    flush_gt(&mut o, &mut gt, &mut gd, gt_index.expect("checked"))?;
                }
                gt_index = Some(g / GTES);
                gt[(g % GTES) as usize] = sector_u32(o.sector())?;
                let mut m = Vec::with_capacity(12 + packed.len());
                m.extend_from_slice(&(g * GRAIN_SECTORS).to_le_bytes());
                m.extend_from_slice(&(packed.len() as u32).to_le_bytes());
                m.extend_from_slice(&packed);
                o.put(&m)?;
                data_bytes += bytes;
            }
            Ok(())
        },
    )?;
    if let Some(t) = gt_index {
        flush_gt(&mut o, &mut gt, &mut gd, t)?;
    }
    let gd_bytes: Vec<u8> = gd.iter().flat_map(|e| e.to_le_bytes()).collect();
    o.put(&marker((gd_bytes.len() as u64).div_ceil(SECTOR), MARKER_GD))?;
    let gd_sector = o.sector();
    o.put(&gd_bytes)?;
    o.put(&marker(1, MARKER_FOOTER))?;
    o.put(&header(capacity, gd_sector))?;
    o.put(&[0u8; 512])?;
    out.sync_all()
        .map_err(|e| Error::io("syncing the output", e))?;
    Ok(WriteStats {
        virtual_size: capacity * SECTOR,
        data_bytes,
        file_size: o.pos,
    })
}
