//! Inodes (`struct xfs_dinode`, versions 1–3): the core fields, timestamps (seconds and
//! nanoseconds, or 64-bit `bigtime`), and the data and attribute forks. v3 inodes (v5
//! filesystems) have their CRC and their own number checked.

use super::sb::Superblock;
use super::{be16, be32, be64, corrupt, crc_ok};
use crate::block::BlockDevice;
use crate::tree::{Kind, Timestamp};
use crate::Result;

/// Fork formats (`di_format`, `di_aformat`; 0 is a device's).
pub const FMT_LOCAL: u8 = 1;
pub const FMT_EXTENTS: u8 = 2;
pub const FMT_BTREE: u8 = 3;

/// `di_flags`: the data lives on the realtime device.
const DIFLAG_REALTIME: u16 = 0x1;
/// `di_flags2`: timestamps are 64-bit nanosecond counters.
const DIFLAG2_BIGTIME: u64 = 0x8;
/// `di_flags2`: 64-bit extent counters.
const DIFLAG2_NREXT64: u64 = 0x10;
/// Seconds between the `bigtime` epoch and 1970 (`XFS_BIGTIME_EPOCH_OFFSET`).
const BIGTIME_EPOCH_OFFSET: i64 = 1 << 31;

/// Which fork of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    Data,
    Attr,
}

/// One inode as read from disk.
#[derive(Debug, Clone)]
pub struct Inode {
    pub ino: u64,
    pub mode: u16,
    pub kind: Kind,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub crtime: Option<Timestamp>,
    pub size: u64,
    pub nblocks: u64,
    pub realtime: bool,
    /// `di_format`, `di_aformat`.
    pub format: u8,
    pub aformat: u8,
    pub nextents: u64,
    pub anextents: u64,
    /// The whole on-disk inode.
    raw: Vec<u8>,
    /// Bytes before the literal area (100 for v1/v2, 176 for v3).
    core: usize,
    /// Bytes of the data fork (the rest of the literal area is the attribute fork).
    dsize: usize,
}

impl Inode {
    /// Read inode `ino`.
    pub fn read(dev: &dyn BlockDevice, sb: &Superblock, ino: u64) -> Result<Inode> {
        let at = sb
            .inode_byte(ino)
            .ok_or_else(|| corrupt(format!("inode number {ino} lies outside the filesystem")))?;
        let size = u64::from(sb.inodesize);
        if at + size > dev.len() {
            return Err(corrupt(format!(
                "inode {ino} (byte {at}) lies beyond the end of the device ({} bytes): the \
                 image is truncated",
                dev.len()
            )));
        }
        let mut raw = vec![0u8; size as usize];
        dev.read_at(&mut raw, at)?;
        Self::parse(sb, ino, raw)
    }

    fn parse(sb: &Superblock, ino: u64, raw: Vec<u8>) -> Result<Inode> {
        let bad = |what: String| corrupt(format!("inode {ino}: {what}"));
        if &raw[..2] != b"IN" {
            return Err(bad(format!(
                "expected the inode magic \"IN\", found {:02x?}",
                &raw[..2]
            )));
        }
        let version = raw[4];
        let core = match (version, sb.v5()) {
            (3, true) => 176,
            (1 | 2, false) => 100,
            (v, _) => {
                return Err(bad(format!(
                    "inode version {v} in a version {} filesystem",
                    sb.version
                )))
            }
        };
        if version == 3 {
            if !crc_ok(&raw, 100) {
                return Err(bad("the CRC does not match its contents".into()));
            }
            let own = be64(&raw, 152);
            if own != ino {
                return Err(bad(format!("it says it is inode {own}")));
            }
        }
        let mode = be16(&raw, 2);
        let kind = Kind::from_mode(u32::from(mode)).ok_or_else(|| {
            bad(format!(
                "mode 0{mode:o} is not a file type (a directory entry names a free inode?)"
            ))
        })?;
        let flags2 = if version == 3 { be64(&raw, 120) } else { 0 };
        let bigtime = flags2 & DIFLAG2_BIGTIME != 0;
        let nrext64 = flags2 & DIFLAG2_NREXT64 != 0;
        if (bigtime && !sb.bigtime) || (nrext64 && !sb.nrext64) {
            return Err(bad(
                "it uses bigtime or large extent counters the superblock does not enable".into(),
            ));
        }
        let ts = |off: usize| -> Timestamp {
            if bigtime {
                let t = be64(&raw, off);
                Timestamp {
                    sec: (t / 1_000_000_000) as i64 - BIGTIME_EPOCH_OFFSET,
                    nsec: (t % 1_000_000_000) as u32,
                }
            } else {
                Timestamp {
                    sec: i64::from(be32(&raw, off) as i32),
                    nsec: be32(&raw, off + 4).min(999_999_999),
                }
            }
        };
        let (nextents, anextents) = if nrext64 {
            (be64(&raw, 24), u64::from(be32(&raw, 76)))
        } else {
            (u64::from(be32(&raw, 76)), u64::from(be16(&raw, 80)))
        };
        let literal = raw.len() - core;
        let forkoff = usize::from(raw[82]) * 8;
        if forkoff >= literal {
            return Err(bad(format!(
                "the attribute fork starts at byte {forkoff} of a {literal}-byte literal area"
            )));
        }
        let dsize = if forkoff == 0 { literal } else { forkoff };
        let nlink = if version == 1 {
            u32::from(be16(&raw, 6))
        } else {
            be32(&raw, 16)
        };
        Ok(Inode {
            ino,
            mode,
            kind,
            uid: be32(&raw, 8),
            gid: be32(&raw, 12),
            nlink,
            atime: ts(32),
            mtime: ts(40),
            ctime: ts(48),
            crtime: (version == 3).then(|| ts(144)),
            size: be64(&raw, 56),
            nblocks: be64(&raw, 64),
            realtime: be16(&raw, 90) & DIFLAG_REALTIME != 0,
            format: raw[5],
            aformat: if forkoff == 0 { FMT_EXTENTS } else { raw[83] },
            nextents,
            anextents: if forkoff == 0 { 0 } else { anextents },
            raw,
            core,
            dsize,
        })
    }

    /// True when the inode has an attribute fork.
    pub fn has_attr_fork(&self) -> bool {
        self.dsize < self.raw.len() - self.core
    }

    /// The bytes of a fork in the inode's literal area.
    pub fn fork(&self, which: Fork) -> &[u8] {
        match which {
            Fork::Data => &self.raw[self.core..self.core + self.dsize],
            Fork::Attr => &self.raw[self.core + self.dsize..],
        }
    }

    /// The format of a fork.
    pub fn fork_format(&self, which: Fork) -> u8 {
        match which {
            Fork::Data => self.format,
            Fork::Attr => self.aformat,
        }
    }

    /// The extent count of a fork.
    pub fn fork_extents(&self, which: Fork) -> u64 {
        match which {
            Fork::Data => self.nextents,
            Fork::Attr => self.anextents,
        }
    }

    /// The device number of a character or block device (`sysv` encoding: 14-bit major,
    /// 18-bit minor; Linux keeps 9 bits of the major, as its `xfs_to_linux_dev_t` does).
    pub fn rdev(&self) -> (u32, u32) {
        let d = be32(self.fork(Fork::Data), 0);
        ((d >> 18) & 0x1ff, d & 0x3ffff)
    }
}
