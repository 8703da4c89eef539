//! The cheap check after an edit: subroot's own ext reader (not libext2fs) re-reads what
//! the edit touched. Every touched directory must parse (its checksums verify) and each of
//! its entries must resolve to a readable inode (checksum verified) of the kind the entry
//! says; every group's free block and inode counts must equal the zero bits of its
//! bitmaps, and their sums the superblock's counts. No unsafe code here.

use crate::error::{Error, Result, Shown};
use std::collections::HashMap;
use std::sync::Arc;
use subroot_formats::block::BlockDevice;
use subroot_formats::ext::{file_type, ExtFs, InodeKind, OpenOptions};

/// What [`check`] looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub dirs: usize,
    pub entries: usize,
    pub groups: u64,
}

const BG_INODE_UNINIT: u16 = 0x1;
const BG_BLOCK_UNINIT: u16 = 0x2;

/// Check the filesystem on `dev` after an edit that touched the directories `dirs` (paths
/// as [`crate::CloseStats::touched_dirs`]). Any finding is [`Error::Corrupt`].
pub fn check(dev: Arc<dyn BlockDevice>, dirs: &[Vec<u8>]) -> Result<CheckReport> {
    check_as(dev, dirs, "after the edit")
}

/// The same check of the counts before an edit: a filesystem whose free counts already
/// disagree with its bitmaps (e2fsck -fn finds fault with it) is not edited, since the
/// check after the edit could not tell its own mistakes from the input's.
pub fn check_input(dev: Arc<dyn BlockDevice>) -> Result<CheckReport> {
    check_as(dev, &[], "not clean before any edit")
}

fn check_as(dev: Arc<dyn BlockDevice>, dirs: &[Vec<u8>], when: &str) -> Result<CheckReport> {
    let corrupt = |what: String| Error::Corrupt(format!("{when}: {what}"));
    let fs = ExtFs::open_with(dev, OpenOptions::default())
        .map_err(|e| corrupt(format!("the filesystem does not open: {e}")))?;
    let mut report = CheckReport::default();
    // The subdirectories of the directories checked so far, by path: `dirs` is sorted, so
    // a parent comes before its children and most lookups end here instead of walking
    // the path again from the root (a walk reads every directory on the way).
    let mut subdirs: HashMap<Vec<u8>, u32> = HashMap::new();
    for dir in dirs {
        let found = match subdirs.remove(dir) {
            Some(ino) => Ok(ino),
            None => fs.lookup(&[b"/", &dir[..]].concat()),
        };
        // A touched directory may have been removed afterwards: only existing ones count.
        let ino = match found {
            Ok(ino) => ino,
            Err(subroot_formats::Error::NotFound(_)) => continue,
            Err(e) => return Err(corrupt(format!("looking up {}: {e}", Shown(dir)))),
        };
        let entries = fs
            .read_dir(ino)
            .map_err(|e| corrupt(format!("directory {}: {e}", Shown(dir))))?;
        for ent in &entries {
            let inode = fs.inode(ent.ino).map_err(|e| {
                corrupt(format!(
                    "{}/{}: inode {}: {e}",
                    Shown(dir),
                    String::from_utf8_lossy(&ent.name),
                    ent.ino
                ))
            })?;
            let want = match inode.kind() {
                InodeKind::File => file_type::REG,
                InodeKind::Dir => file_type::DIR,
                InodeKind::Symlink => file_type::SYMLINK,
                InodeKind::CharDev => file_type::CHR,
                InodeKind::BlockDev => file_type::BLK,
                InodeKind::Fifo => file_type::FIFO,
                InodeKind::Socket => file_type::SOCK,
                InodeKind::Unknown(m) => {
                    return Err(corrupt(format!(
                        "inode {} has the bad mode {m:#o}",
                        ent.ino
                    )))
                }
            };
            if want == file_type::DIR && ent.name != b"." && ent.name != b".." {
                let mut path = dir.clone();
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(&ent.name);
                if dirs.binary_search(&path).is_ok() {
                    subdirs.insert(path, ent.ino);
                }
            }
            if ent.file_type != 0 && ent.file_type != want {
                return Err(corrupt(format!(
                    "{}/{}: the entry says type {}, inode {} is type {want}",
                    Shown(dir),
                    String::from_utf8_lossy(&ent.name),
                    ent.file_type,
                    ent.ino
                )));
            }
        }
        report.dirs += 1;
        report.entries += entries.len();
    }
    check_counts(&fs, &mut report).map_err(|e| match e {
        Error::Corrupt(m) => corrupt(m),
        e => e,
    })?;
    Ok(report)
}

fn zeros(bits: &[u8], n: usize) -> u64 {
    (0..n)
        .filter(|&i| bits[i / 8] & (1 << (i % 8)) == 0)
        .count() as u64
}

/// A reader error: damage found is [`Error::Corrupt`], anything else the device's.
fn reader(e: subroot_formats::Error) -> Error {
    match e {
        subroot_formats::Error::Corrupt(m) => Error::Corrupt(m),
        e => Error::Device(e),
    }
}

/// Group and superblock free counts against the bitmaps.
fn check_counts(fs: &ExtFs<Arc<dyn BlockDevice>>, report: &mut CheckReport) -> Result<()> {
    let sb = fs.superblock();
    let bs = u64::from(sb.block_size);
    let ratio = u64::from(sb.cluster_size / sb.block_size).max(1);
    let clusters = (sb.blocks_count - u64::from(sb.first_data_block)).div_ceil(ratio);
    let cpg = u64::from(sb.clusters_per_group);
    let mut buf = vec![0u8; bs as usize];
    let (mut free_blocks, mut free_inodes) = (0u64, 0u64);
    for g in 0..sb.group_count() {
        let d = fs.group_desc(g).map_err(reader)?;
        let in_group = (clusters - g * cpg).min(cpg) as usize;
        if d.flags & BG_BLOCK_UNINIT == 0 {
            fs.device().read_at(&mut buf, d.block_bitmap * bs)?;
            let n = zeros(&buf, in_group);
            if n != u64::from(d.free_blocks) {
                return Err(Error::Corrupt(format!(
                    "group {g} counts {} free clusters, its bitmap has {n}",
                    d.free_blocks
                )));
            }
        }
        if d.flags & BG_INODE_UNINIT == 0 {
            fs.device().read_at(&mut buf, d.inode_bitmap * bs)?;
            let n = zeros(&buf, sb.inodes_per_group as usize);
            if n != u64::from(d.free_inodes) {
                return Err(Error::Corrupt(format!(
                    "group {g} counts {} free inodes, its bitmap has {n}",
                    d.free_inodes
                )));
            }
        }
        free_blocks += u64::from(d.free_blocks);
        free_inodes += u64::from(d.free_inodes);
        report.groups += 1;
    }
    if free_blocks * ratio != sb.free_blocks_count || free_inodes != u64::from(sb.free_inodes_count)
    {
        return Err(Error::Corrupt(format!(
            "the groups count {} free blocks and {free_inodes} free inodes, the superblock {} and {}",
            free_blocks * ratio,
            sb.free_blocks_count,
            sb.free_inodes_count
        )));
    }
    Ok(())
}
