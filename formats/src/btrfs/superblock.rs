//! The primary superblock (at 64 KiB): where the root and chunk trees are, the sizes, the
//! checksum algorithm and the bootstrap chunk array; its checksum is verified.

use super::csum::CsumType;
use super::{slice_at, u16_at, u32_at, u64_at, u8_at};
use crate::block::BlockDevice;
use crate::{Error, Result};

/// Where the primary superblock is.
pub const SUPER_OFFSET: u64 = 64 << 10;
/// Bytes of a superblock.
pub const SUPER_SIZE: usize = 4096;
const MAGIC: &[u8; 8] = b"_BHRfS_M";
/// Offset and size of the bootstrap chunk array.
const SYS_CHUNK_ARRAY: usize = 0x32b;
const SYS_CHUNK_ARRAY_MAX: usize = 2048;

/// Incompat feature bits this reader understands (anything else is refused).
const INCOMPAT_KNOWN: u64 = 0x1 // MIXED_BACKREF
    | 0x2 // DEFAULT_SUBVOL
    | 0x4 // MIXED_GROUPS
    | 0x8 // COMPRESS_LZO
    | 0x10 // COMPRESS_ZSTD
    | 0x20 // BIG_METADATA
    | 0x40 // EXTENDED_IREF
    | 0x80 // RAID56 (refused per chunk)
    | 0x100 // SKINNY_METADATA
    | 0x200 // NO_HOLES
    | 0x400 // METADATA_UUID
    | 0x800 // RAID1C34 (refused per chunk)
    | 0x1000 // ZONED (layout as usual for reading)
    | 0x10000; // SIMPLE_QUOTA
const INCOMPAT_EXTENT_TREE_V2: u64 = 0x2000;
const INCOMPAT_METADATA_UUID: u64 = 0x400;

/// What this reader uses of the superblock.
#[derive(Debug, Clone)]
pub struct Superblock {
    pub fsid: [u8; 16],
    /// The id tree blocks carry (`metadata_uuid` when that feature is on, else `fsid`).
    pub meta_fsid: [u8; 16],
    pub generation: u64,
    /// Logical address and level of the root tree's root.
    pub root: u64,
    pub root_level: u8,
    /// Logical address and level of the chunk tree's root.
    pub chunk_root: u64,
    pub chunk_root_level: u8,
    pub total_bytes: u64,
    pub bytes_used: u64,
    pub num_devices: u64,
    pub sectorsize: u32,
    pub nodesize: u32,
    pub csum_type: CsumType,
    pub incompat: u64,
    /// This device's id (from the embedded device item).
    pub devid: u64,
    pub label: String,
    /// The bootstrap chunk array (SYSTEM chunks, to read the chunk tree).
    pub sys_chunk_array: Vec<u8>,
}

impl Superblock {
    /// Read and check the primary superblock of `dev`.
    pub fn read(dev: &dyn BlockDevice) -> Result<Superblock> {
        if dev.len() < SUPER_OFFSET + SUPER_SIZE as u64 {
            return Err(Error::corrupt(format!(
                "btrfs: the device ({} bytes) ends before the superblock at 64 KiB",
                dev.len()
            )));
        }
        let mut b = vec![0u8; SUPER_SIZE];
        dev.read_at(&mut b, SUPER_OFFSET)?;
        Superblock::parse(&b)
    }

    /// Decode and check a superblock's 4096 bytes.
    pub fn parse(b: &[u8]) -> Result<Superblock> {
        let what = "the superblock";
        if slice_at(b, 0x40, 8, what)? != MAGIC {
            return Err(Error::corrupt(
                "btrfs: no superblock at 64 KiB (the magic _BHRfS_M is missing)",
            ));
        }
        let csum_type = CsumType::from_disk(u16_at(b, 0xc4, what)?)?;
        csum_type.verify(&b[..SUPER_SIZE.min(b.len())], &|| "the superblock".into())?;
        let bytenr = u64_at(b, 0x30, what)?;
        if bytenr != SUPER_OFFSET {
            return Err(Error::corrupt(format!(
                "btrfs: the superblock at 64 KiB says it is at {bytenr}"
            )));
        }
        let incompat = u64_at(b, 0xbc, what)?;
        if incompat & INCOMPAT_EXTENT_TREE_V2 != 0 {
            return Err(Error::unsupported(
                "btrfs: the filesystem uses extent-tree-v2, which subroot does not read",
            ));
        }
        if incompat & !INCOMPAT_KNOWN != 0 {
            return Err(Error::unsupported(format!(
                "btrfs: unknown incompatible features {:#x} (subroot knows {INCOMPAT_KNOWN:#x})",
                incompat & !INCOMPAT_KNOWN
            )));
        }
        let sectorsize = u32_at(b, 0x90, what)?;
        let nodesize = u32_at(b, 0x94, what)?;
        if !(4096..=65536).contains(&sectorsize) || !sectorsize.is_power_of_two() {
            return Err(Error::corrupt(format!(
                "btrfs: sector size {sectorsize} (a power of two from 4096 to 65536 expected)"
            )));
        }
        if !(4096..=65536).contains(&nodesize) || !nodesize.is_power_of_two() {
            return Err(Error::corrupt(format!(
                "btrfs: node size {nodesize} (a power of two from 4096 to 65536 expected)"
            )));
        }
        let n = u32_at(b, 0xa0, what)? as usize;
        if n > SYS_CHUNK_ARRAY_MAX {
            return Err(Error::corrupt(format!(
                "btrfs: the bootstrap chunk array claims {n} bytes (at most {SYS_CHUNK_ARRAY_MAX})"
            )));
        }
        let label = slice_at(b, 0x12b, 256, what)?;
        let label = &label[..label.iter().position(|&c| c == 0).unwrap_or(256)];
        let mut fsid = [0u8; 16];
        fsid.copy_from_slice(slice_at(b, 0x20, 16, what)?);
        let mut meta_fsid = fsid;
        if incompat & INCOMPAT_METADATA_UUID != 0 {
            meta_fsid.copy_from_slice(slice_at(b, 0x23b, 16, what)?);
        }
        Ok(Superblock {
            fsid,
            meta_fsid,
            generation: u64_at(b, 0x48, what)?,
            root: u64_at(b, 0x50, what)?,
            chunk_root: u64_at(b, 0x58, what)?,
            total_bytes: u64_at(b, 0x70, what)?,
            bytes_used: u64_at(b, 0x78, what)?,
            num_devices: u64_at(b, 0x88, what)?,
            sectorsize,
            nodesize,
            csum_type,
            root_level: u8_at(b, 0xc6, what)?,
            chunk_root_level: u8_at(b, 0xc7, what)?,
            incompat,
            devid: u64_at(b, 0xc9, what)?,
            label: String::from_utf8_lossy(label).into_owned(),
            sys_chunk_array: slice_at(b, SYS_CHUNK_ARRAY, n, what)?.to_vec(),
        })
    }
}
