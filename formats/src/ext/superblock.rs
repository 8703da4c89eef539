//! The ext2/3/4 superblock (1024 bytes at byte 1024 of the filesystem) and its feature flags.

use super::bytes::{le16, le32, u8_at};
use super::csum::chksum;
use crate::{Error, Result};

/// Byte offset of the primary superblock.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// Size of the superblock structure.
pub const SUPERBLOCK_SIZE: usize = 1024;
/// `s_magic`.
pub const EXT_MAGIC: u16 = 0xEF53;

/// compat: has_journal.
pub const COMPAT_HAS_JOURNAL: u32 = 0x4;
/// compat: resize_inode (reserved GDT blocks listed by inode 7).
pub const COMPAT_RESIZE_INODE: u32 = 0x10;
/// compat: sparse_super2.
pub const COMPAT_SPARSE_SUPER2: u32 = 0x200;

/// incompat: filetype in directory entries.
pub const INCOMPAT_FILETYPE: u32 = 0x2;
/// incompat: needs_recovery (the journal must be replayed).
pub const INCOMPAT_RECOVER: u32 = 0x4;
/// incompat: meta_bg.
pub const INCOMPAT_META_BG: u32 = 0x10;
/// incompat: 64bit.
pub const INCOMPAT_64BIT: u32 = 0x80;
/// incompat: metadata_csum_seed.
pub const INCOMPAT_CSUM_SEED: u32 = 0x2000;

/// ro_compat: sparse_super.
pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
/// ro_compat: huge_file.
pub const RO_COMPAT_HUGE_FILE: u32 = 0x8;
/// ro_compat: uninit_bg (crc16 group descriptor checksums).
pub const RO_COMPAT_GDT_CSUM: u32 = 0x10;
/// ro_compat: bigalloc.
pub const RO_COMPAT_BIGALLOC: u32 = 0x200;
/// ro_compat: metadata_csum.
pub const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

const COMPAT_NAMES: &[(u32, &str)] = &[
    (0x1, "dir_prealloc"),
    (0x2, "imagic_inodes"),
    (0x4, "has_journal"),
    (0x8, "ext_attr"),
    (0x10, "resize_inode"),
    (0x20, "dir_index"),
    (0x40, "lazy_bg"),
    (0x80, "snapshot_bitmap"),
    (0x100, "exclude_bitmap"),
    (0x200, "sparse_super2"),
    (0x400, "fast_commit"),
    (0x800, "stable_inodes"),
    (0x1000, "orphan_file"),
];

const INCOMPAT_NAMES: &[(u32, &str)] = &[
    (0x1, "compression"),
    (0x2, "filetype"),
    (0x4, "needs_recovery"),
    (0x8, "journal_dev"),
    (0x10, "meta_bg"),
    (0x40, "extent"),
    (0x80, "64bit"),
    (0x100, "mmp"),
    (0x200, "flex_bg"),
    (0x400, "ea_inode"),
    (0x1000, "dirdata"),
    (0x2000, "metadata_csum_seed"),
    (0x4000, "large_dir"),
    (0x8000, "inline_data"),
    (0x10000, "encrypt"),
    (0x20000, "casefold"),
];

const RO_COMPAT_NAMES: &[(u32, &str)] = &[
    (0x1, "sparse_super"),
    (0x2, "large_file"),
    (0x4, "btree_dir"),
    (0x8, "huge_file"),
    (0x10, "uninit_bg"),
    (0x20, "dir_nlink"),
    (0x40, "extra_isize"),
    (0x80, "snapshot"),
    (0x100, "quota"),
    (0x200, "bigalloc"),
    (0x400, "metadata_csum"),
    (0x800, "replica"),
    (0x1000, "read-only"),
    (0x2000, "project"),
    (0x4000, "shared_blocks"),
    (0x8000, "verity"),
    (0x10000, "orphan_present"),
];

/// incompat features this reader understands (needs_recovery is handled separately).
const INCOMPAT_SUPPORTED: u32 =
    0x2 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x2000 | 0x4000 | 0x8000 | 0x20000;

/// The three feature bitmaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    /// `s_feature_compat`.
    pub compat: u32,
    /// `s_feature_incompat`.
    pub incompat: u32,
    /// `s_feature_ro_compat`.
    pub ro_compat: u32,
}

fn names(bits: u32, table: &[(u32, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..32 {
        let bit = 1u32 << i;
        if bits & bit != 0 {
            match table.iter().find(|(b, _)| *b == bit) {
                Some((_, n)) => out.push((*n).to_string()),
                None => out.push(format!("unknown(0x{bit:x})")),
            }
        }
    }
    out
}

impl Features {
    /// Names of every set feature, in the order compat, incompat, ro_compat (as dumpe2fs
    /// names them; unknown bits as `unknown(0x..)`).
    pub fn names(&self) -> Vec<String> {
        let mut v = names(self.compat, COMPAT_NAMES);
        v.extend(names(self.incompat, INCOMPAT_NAMES));
        v.extend(names(self.ro_compat, RO_COMPAT_NAMES));
        v
    }

    /// True when the incompat bit is set.
    pub fn has_incompat(&self, bit: u32) -> bool {
        self.incompat & bit != 0
    }

    /// True when the ro_compat bit is set.
    pub fn has_ro_compat(&self, bit: u32) -> bool {
        self.ro_compat & bit != 0
    }

    /// True when the compat bit is set.
    pub fn has_compat(&self, bit: u32) -> bool {
        self.compat & bit != 0
    }

    /// Names of incompat features this reader does not support (empty when all are).
    pub fn unsupported_incompat(&self) -> Vec<String> {
        names(self.incompat & !INCOMPAT_SUPPORTED, INCOMPAT_NAMES)
    }
}

/// The decoded superblock. Times are seconds since the epoch (with the `_hi` bytes).
#[derive(Debug, Clone)]
pub struct Superblock {
    pub inodes_count: u32,
    pub blocks_count: u64,
    pub reserved_blocks_count: u64,
    pub free_blocks_count: u64,
    pub free_inodes_count: u32,
    pub first_data_block: u32,
    /// Bytes per block (1 KiB – 64 KiB).
    pub block_size: u32,
    /// Bytes per allocation cluster (the block size unless bigalloc).
    pub cluster_size: u32,
    pub blocks_per_group: u32,
    pub clusters_per_group: u32,
    pub inodes_per_group: u32,
    pub mount_time: i64,
    pub write_time: i64,
    pub mount_count: u16,
    pub max_mount_count: i16,
    pub state: u16,
    pub errors: u16,
    pub last_check: i64,
    pub creator_os: u32,
    pub rev_level: u32,
    pub def_resuid: u16,
    pub def_resgid: u16,
    /// First non-reserved inode number.
    pub first_ino: u32,
    /// Bytes per on-disk inode.
    pub inode_size: u16,
    pub features: Features,
    pub uuid: [u8; 16],
    /// Volume label bytes, without the trailing NULs.
    pub volume_name: Vec<u8>,
    /// Directory where last mounted, without the trailing NULs.
    pub last_mounted: Vec<u8>,
    pub reserved_gdt_blocks: u16,
    pub journal_uuid: [u8; 16],
    pub journal_inum: u32,
    pub hash_seed: [u32; 4],
    pub def_hash_version: u8,
    /// Group descriptor size in bytes (32 without 64bit).
    pub desc_size: u16,
    pub default_mount_opts: u32,
    pub first_meta_bg: u32,
    pub mkfs_time: i64,
    pub min_extra_isize: u16,
    pub want_extra_isize: u16,
    pub flags: u32,
    pub log_groups_per_flex: u8,
    pub checksum_type: u8,
    pub backup_bgs: [u32; 2],
    pub checksum_seed: u32,
    pub encoding: u16,
    pub checksum: u32,
}

fn time_hi(lo: u32, hi: u8) -> i64 {
    i64::from(lo) | (i64::from(hi) << 32)
}

fn cstr(b: &[u8]) -> Vec<u8> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    b[..end].to_vec()
}

impl Superblock {
    /// Decode and validate a 1024-byte superblock. Checks the magic, the block size, the
    /// geometry and (with metadata_csum) the checksum.
    pub fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < SUPERBLOCK_SIZE {
            return Err(Error::corrupt(format!(
                "ext superblock: expected {SUPERBLOCK_SIZE} bytes, got {}",
                b.len()
            )));
        }
        let magic = le16(b, 0x38);
        if magic != EXT_MAGIC {
            return Err(Error::corrupt(format!(
                "ext superblock: bad magic 0x{magic:04x} at byte {} (expected 0x{EXT_MAGIC:04x})",
                SUPERBLOCK_OFFSET + 0x38
            )));
        }
        let features = Features {
            compat: le32(b, 0x5C),
            incompat: le32(b, 0x60),
            ro_compat: le32(b, 0x64),
        };
        let is64 = features.has_incompat(INCOMPAT_64BIT);
        let hi = |off: usize| {
            if is64 {
                u64::from(le32(b, off)) << 32
            } else {
                0
            }
        };
        let log_bs = le32(b, 0x18);
        if log_bs > 6 {
            return Err(Error::corrupt(format!(
                "ext superblock: s_log_block_size {log_bs} gives a block size above 64 KiB"
            )));
        }
        let block_size = 1024u32 << log_bs;
        let bigalloc = features.has_ro_compat(RO_COMPAT_BIGALLOC);
        let log_cs = le32(b, 0x1C);
        let cluster_size = if bigalloc {
            if log_cs > 29 || log_cs < log_bs {
                return Err(Error::corrupt(format!(
                    "ext superblock: s_log_cluster_size {log_cs} invalid for block size {block_size}"
                )));
            }
            1024u32 << log_cs
        } else {
            block_size
        };
        let rev_level = le32(b, 0x4C);
        let (first_ino, inode_size) = if rev_level == 0 {
            (11, 128)
        } else {
            (le32(b, 0x54), le16(b, 0x58))
        };
        if inode_size < 128 || !inode_size.is_power_of_two() || u32::from(inode_size) > block_size {
            return Err(Error::corrupt(format!(
                "ext superblock: inode size {inode_size} is not a power of two between 128 and the block size {block_size}"
            )));
        }
        let desc_size = if is64 { le16(b, 0xFE) } else { 32 };
        if desc_size < 32 || !desc_size.is_power_of_two() || u32::from(desc_size) > block_size {
            return Err(Error::corrupt(format!(
                "ext superblock: group descriptor size {desc_size} invalid (expected a power of two from 32 to the block size)"
            )));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[0x68..0x78]);
        let mut journal_uuid = [0u8; 16];
        journal_uuid.copy_from_slice(&b[0xD0..0xE0]);
        let sb = Superblock {
            inodes_count: le32(b, 0x0),
            blocks_count: u64::from(le32(b, 0x4)) | hi(0x150),
            reserved_blocks_count: u64::from(le32(b, 0x8)) | hi(0x154),
            free_blocks_count: u64::from(le32(b, 0xC)) | hi(0x158),
            free_inodes_count: le32(b, 0x10),
            first_data_block: le32(b, 0x14),
            block_size,
            cluster_size,
            blocks_per_group: le32(b, 0x20),
            clusters_per_group: le32(b, 0x24),
            inodes_per_group: le32(b, 0x28),
            mount_time: time_hi(le32(b, 0x2C), u8_at(b, 0x275)),
            write_time: time_hi(le32(b, 0x30), u8_at(b, 0x274)),
            mount_count: le16(b, 0x34),
            max_mount_count: le16(b, 0x36) as i16,
            state: le16(b, 0x3A),
            errors: le16(b, 0x3C),
            last_check: time_hi(le32(b, 0x40), u8_at(b, 0x277)),
            creator_os: le32(b, 0x48),
            rev_level,
            def_resuid: le16(b, 0x50),
            def_resgid: le16(b, 0x52),
            first_ino,
            inode_size,
            features,
            uuid,
            volume_name: cstr(&b[0x78..0x88]),
            last_mounted: cstr(&b[0x88..0xC8]),
            reserved_gdt_blocks: le16(b, 0xCE),
            journal_uuid,
            journal_inum: le32(b, 0xE0),
            hash_seed: [le32(b, 0xEC), le32(b, 0xF0), le32(b, 0xF4), le32(b, 0xF8)],
            def_hash_version: u8_at(b, 0xFC),
            desc_size,
            default_mount_opts: le32(b, 0x100),
            first_meta_bg: le32(b, 0x104),
            mkfs_time: time_hi(le32(b, 0x108), u8_at(b, 0x276)),
            min_extra_isize: le16(b, 0x15C),
            want_extra_isize: le16(b, 0x15E),
            flags: le32(b, 0x160),
            log_groups_per_flex: u8_at(b, 0x174),
            checksum_type: u8_at(b, 0x175),
            backup_bgs: [le32(b, 0x24C), le32(b, 0x250)],
            checksum_seed: le32(b, 0x270),
            encoding: le16(b, 0x27C),
            checksum: le32(b, 0x3FC),
        };
        sb.validate_geometry()?;
        if sb.has_metadata_csum() {
            let want = chksum(!0, &b[..0x3FC]);
            if want != sb.checksum {
                return Err(Error::corrupt(format!(
                    "ext superblock: checksum 0x{:08x} does not match the computed 0x{want:08x}",
                    sb.checksum
                )));
            }
        }
        Ok(sb)
    }

    fn validate_geometry(&self) -> Result<()> {
        let bits_per_block = self.block_size.saturating_mul(8);
        if self.blocks_per_group == 0 || self.inodes_per_group == 0 {
            return Err(Error::corrupt(format!(
                "ext superblock: {} blocks and {} inodes per group (both must be non-zero)",
                self.blocks_per_group, self.inodes_per_group
            )));
        }
        if self.inodes_per_group > bits_per_block {
            return Err(Error::corrupt(format!(
                "ext superblock: {} inodes per group exceed the {bits_per_block} bits of an inode bitmap block",
                self.inodes_per_group
            )));
        }
        if u64::from(self.first_data_block) >= self.blocks_count {
            return Err(Error::corrupt(format!(
                "ext superblock: first data block {} is not below the block count {}",
                self.first_data_block, self.blocks_count
            )));
        }
        let groups = self.group_count();
        if u64::from(self.inodes_count) > groups.saturating_mul(u64::from(self.inodes_per_group)) {
            return Err(Error::corrupt(format!(
                "ext superblock: {} inodes do not fit in {groups} groups of {} inodes",
                self.inodes_count, self.inodes_per_group
            )));
        }
        Ok(())
    }

    /// Number of block groups.
    pub fn group_count(&self) -> u64 {
        let data = self.blocks_count - u64::from(self.first_data_block);
        data.div_ceil(u64::from(self.blocks_per_group))
    }

    /// True with the metadata_csum feature.
    pub fn has_metadata_csum(&self) -> bool {
        self.features.has_ro_compat(RO_COMPAT_METADATA_CSUM)
    }

    /// The seed of every metadata checksum: `s_checksum_seed` with metadata_csum_seed,
    /// otherwise crc32c of the UUID.
    pub fn csum_seed(&self) -> u32 {
        if self.features.has_incompat(INCOMPAT_CSUM_SEED) {
            self.checksum_seed
        } else {
            chksum(!0, &self.uuid)
        }
    }

    /// "ext2", "ext3" or "ext4", as blkid would name it: ext4 when any ext4-only feature is
    /// set, ext3 when it has a journal, ext2 otherwise.
    pub fn kind(&self) -> &'static str {
        let f = &self.features;
        // ext3-compatible: filetype, needs_recovery, meta_bg; sparse_super, large_file, btree_dir.
        let ext4_incompat = f.incompat & !(0x2 | 0x4 | 0x10);
        let ext4_ro = f.ro_compat & !(0x1 | 0x2 | 0x4);
        if ext4_incompat != 0 || ext4_ro != 0 {
            "ext4"
        } else if f.has_compat(COMPAT_HAS_JOURNAL) {
            "ext3"
        } else {
            "ext2"
        }
    }

    /// True when group `g` holds a superblock backup (and so a descriptor table copy).
    pub fn group_has_super(&self, g: u64) -> bool {
        if g == 0 {
            return true;
        }
        if self.features.has_compat(COMPAT_SPARSE_SUPER2) {
            return g == u64::from(self.backup_bgs[0]) || g == u64::from(self.backup_bgs[1]);
        }
        if g <= 1 || !self.features.has_ro_compat(RO_COMPAT_SPARSE_SUPER) {
            return true;
        }
        if g & 1 == 0 {
            return false;
        }
        [3u64, 5, 7].iter().any(|&p| {
            let mut x = g;
            while x % p == 0 {
                x /= p;
            }
            x == 1
        })
    }
}
