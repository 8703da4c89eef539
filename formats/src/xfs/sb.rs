//! The XFS superblock (`struct xfs_dsb`, sector 0 of AG 0): geometry and feature bits,
//! with the features this reader does not handle refused by name.

use super::{be16, be32, be64, corrupt, crc_ok};
use crate::block::BlockDevice;
use crate::{Error, Result};

/// `sb_features2`: the directory entries carry the file type (v4).
const F2_FTYPE: u32 = 0x200;
/// `sb_features2`: v5 metadata with CRCs (mirrors the version number).
const F2_CRC: u32 = 0x100;
/// `sb_versionnum`: the v2 directory format (every v4 filesystem Linux mounts has it).
const V_DIRV2: u16 = 0x2000;
/// `sb_versionnum`: ASCII-only case-insensitive names (IRIX); refused.
const V_BORG: u16 = 0x4000;
/// `sb_versionnum`: `sb_features2` is valid.
const V_MOREBITS: u16 = 0x8000;

/// v5 incompatible features this reader knows.
const INCOMPAT_FTYPE: u32 = 0x1;
const INCOMPAT_SPINODES: u32 = 0x2;
const INCOMPAT_META_UUID: u32 = 0x4;
const INCOMPAT_BIGTIME: u32 = 0x8;
const INCOMPAT_NEEDSREPAIR: u32 = 0x10;
const INCOMPAT_NREXT64: u32 = 0x20;
const INCOMPAT_EXCHRANGE: u32 = 0x40;
const INCOMPAT_PARENT: u32 = 0x80;
const KNOWN_INCOMPAT: u32 = INCOMPAT_FTYPE
    | INCOMPAT_SPINODES
    | INCOMPAT_META_UUID
    | INCOMPAT_BIGTIME
    | INCOMPAT_NEEDSREPAIR
    | INCOMPAT_NREXT64
    | INCOMPAT_EXCHRANGE
    | INCOMPAT_PARENT;

/// The superblock fields the reader uses.
#[derive(Debug, Clone)]
pub struct Superblock {
    /// 4 or 5.
    pub version: u8,
    pub block_size: u32,
    pub blocklog: u8,
    pub sectsize: u16,
    /// Blocks in the data subvolume.
    pub dblocks: u64,
    /// Blocks in the realtime subvolume (0: none).
    pub rblocks: u64,
    pub uuid: [u8; 16],
    /// First block of the internal log (0: the log is on an external device).
    pub logstart: u64,
    pub logblocks: u32,
    pub rootino: u64,
    pub agblocks: u32,
    pub agcount: u32,
    pub agblklog: u8,
    pub inodesize: u16,
    pub inopblog: u8,
    /// log2 of fs blocks per directory block.
    pub dirblklog: u8,
    /// Directory entries carry a file type byte.
    pub ftype: bool,
    /// Inodes may use 64-bit timestamps (`bigtime`).
    pub bigtime: bool,
    /// Inodes may use 64-bit extent counters.
    pub nrext64: bool,
    /// `xfs_repair` must run first.
    pub needs_repair: bool,
    /// Blocks free according to the superblock's (lazy) counter.
    pub fdblocks: u64,
    pub label: Vec<u8>,
}

impl Superblock {
    /// Read and check the superblock at the start of `dev`.
    pub fn read(dev: &dyn BlockDevice) -> Result<Superblock> {
        let mut b = vec![0u8; 512];
        if dev.len() < 512 {
            return Err(corrupt(format!(
                "the device holds {} bytes, too few for a superblock",
                dev.len()
            )));
        }
        dev.read_at(&mut b, 0)?;
        if &b[..4] != b"XFSB" {
            return Err(corrupt(format!(
                "expected the superblock magic \"XFSB\" at byte 0, found {:02x?}",
                &b[..4]
            )));
        }
        let versionnum = be16(&b, 100);
        let version = (versionnum & 0xf) as u8;
        let sectsize = be16(&b, 102);
        if !(512..=32768).contains(&sectsize) || !sectsize.is_power_of_two() {
            return Err(corrupt(format!("the sector size {sectsize} is not valid")));
        }
        if usize::from(sectsize) > b.len() && u64::from(sectsize) <= dev.len() {
            b = vec![0u8; usize::from(sectsize)];
            dev.read_at(&mut b, 0)?;
        }
        let block_size = be32(&b, 4);
        let blocklog = b[120];
        if !(9..=16).contains(&blocklog) || block_size != 1 << blocklog {
            return Err(corrupt(format!(
                "the block size {block_size} (log {blocklog}) is not valid"
            )));
        }
        let features2 = if versionnum & V_MOREBITS != 0 {
            be32(&b, 200)
        } else {
            0
        };
        let incompat = be32(&b, 216);
        match version {
            5 => {
                if !crc_ok(&b, 224) {
                    return Err(corrupt("the superblock's CRC does not match its contents"));
                }
                if incompat & !KNOWN_INCOMPAT != 0 {
                    return Err(Error::Unsupported(format!(
                        "xfs: the filesystem uses incompatible features 0x{:x} that subroot \
                         does not read",
                        incompat & !KNOWN_INCOMPAT
                    )));
                }
            }
            4 => {
                if versionnum & V_DIRV2 == 0 {
                    return Err(Error::Unsupported(
                        "xfs: version 1 directories (pre-2003 IRIX XFS) are not read".into(),
                    ));
                }
                if versionnum & V_BORG != 0 {
                    return Err(Error::Unsupported(
                        "xfs: ASCII case-insensitive names (mkfs -n version=ci) are not read"
                            .into(),
                    ));
                }
                if features2 & F2_CRC != 0 {
                    return Err(corrupt("a version 4 superblock claims CRCs"));
                }
            }
            v => return Err(corrupt(format!("superblock version {v}: expected 4 or 5"))),
        }
        let v5 = version == 5;
        let inodesize = be16(&b, 104);
        let inopblog = b[123];
        let agblklog = b[124];
        let agblocks = be32(&b, 84);
        let agcount = be32(&b, 88);
        let dblocks = be64(&b, 8);
        let inode_ok = inodesize.is_power_of_two()
            && (256..=2048).contains(&inodesize)
            && (!v5 || inodesize >= 512)
            && u32::from(inodesize) << inopblog == block_size;
        if !inode_ok {
            return Err(corrupt(format!(
                "inode size {inodesize} with {} inodes per block does not fit a {block_size}-byte block",
                1u64 << inopblog.min(63)
            )));
        }
        if agcount == 0
            || agblocks < 16
            || agblklog > 31
            || u64::from(agblocks) > 1u64 << agblklog
            || 1u64 << agblklog >= u64::from(agblocks) << 1
        {
            return Err(corrupt(format!(
                "{agcount} allocation groups of {agblocks} blocks (log {agblklog}) is not a valid geometry"
            )));
        }
        if dblocks > u64::from(agcount) * u64::from(agblocks)
            || dblocks <= u64::from(agcount - 1) * u64::from(agblocks)
        {
            return Err(corrupt(format!(
                "{dblocks} blocks do not make {agcount} allocation groups of {agblocks}"
            )));
        }
        let dirblklog = b[192];
        if u32::from(blocklog) + u32::from(dirblklog) > 16 {
            return Err(corrupt(format!(
                "directory blocks of 2^{} bytes are larger than XFS allows",
                u32::from(blocklog) + u32::from(dirblklog)
            )));
        }
        if b[126] != 0 {
            return Err(corrupt(
                "mkfs.xfs did not finish making this filesystem (sb_inprogress is set)",
            ));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[32..48]);
        let label = b[108..120]
            .iter()
            .copied()
            .take_while(|&c| c != 0)
            .collect();
        Ok(Superblock {
            version,
            block_size,
            blocklog,
            sectsize,
            dblocks,
            rblocks: be64(&b, 16),
            uuid,
            logstart: be64(&b, 48),
            logblocks: be32(&b, 96),
            rootino: be64(&b, 56),
            agblocks,
            agcount,
            agblklog,
            inodesize,
            inopblog,
            dirblklog,
            ftype: if v5 {
                incompat & INCOMPAT_FTYPE != 0
            } else {
                features2 & F2_FTYPE != 0
            },
            bigtime: v5 && incompat & INCOMPAT_BIGTIME != 0,
            nrext64: v5 && incompat & INCOMPAT_NREXT64 != 0,
            needs_repair: v5 && incompat & INCOMPAT_NEEDSREPAIR != 0,
            fdblocks: be64(&b, 144),
            label,
        })
    }

    /// True for v5 (CRC-checked metadata, v3 inodes, self-describing block headers).
    pub fn v5(&self) -> bool {
        self.version == 5
    }

    /// The byte offset of filesystem block `fsb` (AG number in the high bits), if it lies
    /// inside the data subvolume.
    pub fn fsb_to_byte(&self, fsb: u64) -> Option<u64> {
        let agno = fsb >> self.agblklog;
        let agbno = fsb & ((1u64 << self.agblklog) - 1);
        if agno >= u64::from(self.agcount) || agbno >= u64::from(self.agblocks) {
            return None;
        }
        let daddr = agno * u64::from(self.agblocks) + agbno;
        (daddr < self.dblocks).then(|| daddr << self.blocklog)
    }

    /// The byte offset of inode `ino`, if the number is valid.
    pub fn inode_byte(&self, ino: u64) -> Option<u64> {
        let fsb = ino >> self.inopblog;
        let idx = ino & ((1u64 << self.inopblog) - 1);
        Some(self.fsb_to_byte(fsb)? + idx * u64::from(self.inodesize))
    }

    /// Bytes in a directory block.
    pub fn dir_block_size(&self) -> u32 {
        self.block_size << self.dirblklog
    }
}
