//! [`ExtFs`]: an open ext2/3/4 filesystem on a block device, and its inode, directory,
//! symlink, xattr and path look-ups.

use super::blockmap::{map_indirect, MapCtx, Run, RunKind};
use super::cache::BlockCache;
use super::csum::chksum;
use super::dir::{self, DirEntry, Origin};
use super::extent::map_extent;
use super::file::FileReader;
use super::group::{desc_location, parse_desc, GroupDesc};
use super::inode::{Inode, InodeKind, FLAG_EA_INODE, FLAG_INDEX};
use super::superblock::{
    Superblock, INCOMPAT_FILETYPE, INCOMPAT_META_BG, INCOMPAT_RECOVER, RO_COMPAT_HUGE_FILE,
    SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE,
};
use super::xattr::{self, RawXattr, Value};
use crate::block::BlockDevice;
use crate::{Error, Result};
use std::sync::{Arc, Mutex};

/// Largest xattr value read from an EA inode.
const MAX_EA_VALUE: u32 = 16 << 20;
/// Metadata blocks kept in memory.
const CACHE_BLOCKS: usize = 64;
/// Path components followed by [`ExtFs::lookup`] before giving up.
const MAX_PATH_COMPONENTS: usize = 4096;
/// Warnings kept for the caller; later ones are only counted.
const MAX_WARNINGS: usize = 1000;

/// How to open a filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Read a filesystem whose journal needs recovery as it is on disk (changes still in the
    /// journal are not seen).
    pub force: bool,
}

/// A read-only ext2/ext3/ext4 filesystem.
pub struct ExtFs<D: BlockDevice> {
    dev: D,
    sb: Superblock,
    cache: BlockCache,
    csum_seed: Option<u32>,
    /// Read past damage that can be skipped (holes and unwritten extents in directories),
    /// with a warning, instead of failing.
    salvage: bool,
    /// What the caller should be told: damage skipped, attributes not carried.
    warnings: Mutex<Warnings>,
}

/// An extended attribute by full name: (name, value).
pub type NamedXattr = (Vec<u8>, Vec<u8>);

/// Warnings gathered while reading, deduplicated, at most [`MAX_WARNINGS`] kept.
#[derive(Debug, Default)]
struct Warnings {
    kept: Vec<String>,
    dropped: u64,
}

impl<D: BlockDevice> std::fmt::Debug for ExtFs<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtFs").field("sb", &self.sb).finish()
    }
}

impl<D: BlockDevice> ExtFs<D> {
    /// Open with default options (refuses a filesystem whose journal needs recovery).
    pub fn open(dev: D) -> Result<Self> {
        Self::open_with(dev, OpenOptions::default())
    }

    /// Open, checking the superblock, its features and the placement of the group
    /// descriptor table.
    pub fn open_with(dev: D, opts: OpenOptions) -> Result<Self> {
        let dev_len = dev.len();
        if dev_len < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE as u64 {
            return Err(Error::corrupt(format!(
                "ext: the device has {dev_len} bytes, too small to hold a superblock at byte 1024"
            )));
        }
        let mut buf = vec![0u8; SUPERBLOCK_SIZE];
        dev.read_at(&mut buf, SUPERBLOCK_OFFSET)?;
        let mut warnings = Warnings::default();
        let sb = match Superblock::parse(&buf) {
            Ok(sb) => sb,
            Err(primary) => {
                let Some((sb, blk)) = backup_superblock(&dev)? else {
                    return Err(primary);
                };
                warnings.kept.push(format!(
                    "the primary superblock is unusable ({primary}); reading the backup superblock at block {blk} instead, as `e2fsck -b {blk}` would (e2fsck repairs the primary)"
                ));
                sb
            }
        };
        let unsupported = sb.features.unsupported_incompat();
        if !unsupported.is_empty() {
            return Err(Error::unsupported(format!(
                "ext: unsupported incompatible feature(s): {}",
                unsupported.join(", ")
            )));
        }
        if sb.features.has_incompat(INCOMPAT_RECOVER) && !opts.force {
            return Err(Error::unsupported(
                "ext: the journal needs recovery (the filesystem was not cleanly unmounted); \
                 run e2fsck to replay it, or read the on-disk state without the \
                 journalled changes (--salvage)"
                    .to_string(),
            ));
        }
        let bs = u64::from(sb.block_size);
        // The classic descriptor table (all of it without meta_bg, the first first_meta_bg
        // blocks with it) must lie on the device.
        let desc_blocks = (sb.group_count().saturating_mul(u64::from(sb.desc_size))).div_ceil(bs);
        let classic = if sb.features.has_incompat(INCOMPAT_META_BG) {
            desc_blocks.min(u64::from(sb.first_meta_bg))
        } else {
            desc_blocks
        };
        let gdt_start = 1024 / bs + 1;
        let gdt_end = gdt_start.saturating_add(classic.max(1)).saturating_mul(bs);
        if gdt_end > dev_len {
            return Err(Error::corrupt(format!(
                "ext: the group descriptor table (blocks {gdt_start}..{}, {} groups) extends beyond the end of the {dev_len}-byte device",
                gdt_start.saturating_add(classic.max(1)),
                sb.group_count()
            )));
        }
        let fs_bytes = sb.blocks_count.saturating_mul(bs);
        if fs_bytes > dev_len {
            return Err(Error::corrupt(format!(
                "ext: the filesystem claims {} blocks of {bs} bytes ({fs_bytes} bytes), but the device has only {dev_len} bytes",
                sb.blocks_count
            )));
        }
        let csum_seed = sb.has_metadata_csum().then(|| sb.csum_seed());
        Ok(ExtFs {
            dev,
            sb,
            cache: BlockCache::new(CACHE_BLOCKS),
            csum_seed,
            salvage: false,
            warnings: Mutex::new(warnings),
        })
    }

    /// With `on`, damage that can be skipped (holes and unwritten extents in directories)
    /// is skipped with a warning instead of failing the read.
    pub fn set_salvage(&mut self, on: bool) {
        self.salvage = on;
    }

    /// Whether damage that can be skipped is skipped (with a warning) rather than an error.
    pub(crate) fn salvaging(&self) -> bool {
        self.salvage
    }

    /// Record a warning for the caller (each distinct one once).
    pub(crate) fn warn(&self, msg: String) {
        let mut w = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        if w.kept.contains(&msg) {
            return;
        }
        if w.kept.len() < MAX_WARNINGS {
            w.kept.push(msg);
        } else {
            w.dropped += 1;
        }
    }

    /// The warnings gathered so far (damage skipped, attributes that could not be
    /// carried), emptying the list; a last line counts any that were not kept.
    pub fn take_warnings(&self) -> Vec<String> {
        let mut w = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = std::mem::take(&mut w.kept);
        if w.dropped > 0 {
            v.push(format!("{} more warnings not shown", w.dropped));
            w.dropped = 0;
        }
        v
    }

    /// The decoded superblock.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// The underlying device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Read `buf.len()` bytes starting at filesystem block `blk`, checking the range lies
    /// within the filesystem.
    pub(crate) fn read_blocks(&self, blk: u64, buf: &mut [u8]) -> Result<()> {
        let bs = u64::from(self.sb.block_size);
        let nblocks = (buf.len() as u64).div_ceil(bs);
        if blk
            .checked_add(nblocks)
            .is_none_or(|e| e > self.sb.blocks_count)
        {
            return Err(Error::corrupt(format!(
                "ext: read of {nblocks} blocks at block {blk} is beyond the {} blocks of the filesystem",
                self.sb.blocks_count
            )));
        }
        self.dev.read_at(buf, blk * bs)
    }

    /// One metadata block, through the cache.
    pub(crate) fn meta_block(&self, blk: u64) -> Result<Arc<Vec<u8>>> {
        if let Some(b) = self.cache.get(blk) {
            return Ok(b);
        }
        let mut buf = vec![0u8; self.sb.block_size as usize];
        self.read_blocks(blk, &mut buf)?;
        let b = Arc::new(buf);
        self.cache.put(blk, b.clone());
        Ok(b)
    }

    /// The descriptor of block group `g`.
    pub fn group_desc(&self, g: u64) -> Result<GroupDesc> {
        let (blk, off) = desc_location(&self.sb, g);
        let data = self.meta_block(blk).map_err(|e| {
            Error::corrupt(format!(
                "ext: cannot read the descriptor of group {g} in block {blk}: {e}"
            ))
        })?;
        let raw = data
            .get(off..off + usize::from(self.sb.desc_size))
            .unwrap_or(&[]);
        parse_desc(&self.sb, g, raw)
    }

    /// Read and decode inode `ino` (1-based).
    pub fn inode(&self, ino: u32) -> Result<Inode> {
        if ino == 0 || ino > self.sb.inodes_count {
            return Err(Error::corrupt(format!(
                "ext: inode number {ino} is outside 1..={}",
                self.sb.inodes_count
            )));
        }
        let ipg = u64::from(self.sb.inodes_per_group);
        let g = u64::from(ino - 1) / ipg;
        let index = u64::from(ino - 1) % ipg;
        let gd = self.group_desc(g)?;
        let isz = u64::from(self.sb.inode_size);
        let bs = u64::from(self.sb.block_size);
        let byte = index * isz;
        let table_blocks = (ipg * isz).div_ceil(bs);
        if gd.inode_table == 0
            || gd
                .inode_table
                .checked_add(table_blocks)
                .is_none_or(|e| e > self.sb.blocks_count)
        {
            return Err(Error::corrupt(format!(
                "ext: group {g}'s inode table at block {} ({table_blocks} blocks) lies outside the filesystem",
                gd.inode_table
            )));
        }
        let blk = gd.inode_table + byte / bs;
        let data = self.meta_block(blk)?;
        let off = (byte % bs) as usize;
        let raw = data.get(off..off + isz as usize).ok_or_else(|| {
            Error::corrupt(format!("ext: inode {ino} does not fit in block {blk}"))
        })?;
        Inode::parse(ino, raw, self.csum_seed)
    }

    /// The per-inode checksum seed (metadata_csum only).
    pub(crate) fn inode_seed(&self, inode: &Inode) -> Option<u32> {
        self.csum_seed.map(|s| {
            let c = chksum(s, &inode.ino.to_le_bytes());
            chksum(c, &inode.generation.to_le_bytes())
        })
    }

    /// The run of logical blocks of `inode` containing `lblk`.
    pub(crate) fn map(&self, inode: &Inode, lblk: u64) -> Result<Run> {
        let read = |b: u64| self.meta_block(b);
        let ctx = MapCtx {
            ino: inode.ino,
            block_size: self.sb.block_size,
            blocks_count: self.sb.blocks_count,
            cluster_ratio: u64::from((self.sb.cluster_size / self.sb.block_size).max(1)),
            inode_seed: self.inode_seed(inode),
            read: &read,
        };
        if inode.has_extents() {
            map_extent(&ctx, inode.i_block(), lblk)
        } else {
            map_indirect(&ctx, inode.i_block(), lblk)
        }
    }

    /// i_blocks in 512-byte units.
    fn sectors(&self, inode: &Inode) -> u64 {
        let huge = self.sb.features.has_ro_compat(RO_COMPAT_HUGE_FILE)
            && inode.flags & super::inode::FLAG_HUGE_FILE != 0;
        if huge {
            inode
                .blocks_raw
                .saturating_mul(u64::from(self.sb.block_size) / 512)
        } else {
            inode.blocks_raw
        }
    }

    /// True when a symlink keeps its target in i_block (the kernel's
    /// `ext4_inode_is_fast_symlink`).
    pub(crate) fn is_fast_symlink(&self, inode: &Inode) -> bool {
        if inode.kind() != InodeKind::Symlink || inode.has_inline_data() {
            return false;
        }
        if inode.flags & FLAG_EA_INODE != 0 {
            return inode.size > 0 && inode.size < 60;
        }
        let ea = if inode.file_acl != 0 {
            u64::from(self.sb.cluster_size) / 512
        } else {
            0
        };
        self.sectors(inode).saturating_sub(ea) == 0 && inode.size < 60
    }

    /// The bytes of an inline-data inode: i_block followed by the `system.data` value.
    pub(crate) fn inline_data(&self, inode: &Inode) -> Result<Vec<u8>> {
        let mut v = inode.i_block().to_vec();
        for x in xattr::parse_ibody(inode.ino, inode.xattr_area())? {
            if x.index == 7 && x.name == b"data" {
                match x.value {
                    Value::Inline(d) => v.extend_from_slice(&d),
                    Value::Inode { .. } => {
                        return Err(Error::corrupt(format!(
                            "inode {}: system.data (inline data) is stored in an EA inode",
                            inode.ino
                        )))
                    }
                }
            }
        }
        Ok(v)
    }

    /// The entries of directory `ino`, in on-disk order, including `.` and `..` (for inline
    /// directories these are synthesised, as they are not stored).
    pub fn read_dir(&self, ino: u32) -> Result<Vec<DirEntry>> {
        let inode = self.inode(ino)?;
        if inode.kind() != InodeKind::Dir {
            return Err(Error::InvalidArgument(format!(
                "ext: inode {ino} is not a directory (mode 0o{:o})",
                inode.mode
            )));
        }
        let filetype = self.sb.features.has_incompat(INCOMPAT_FILETYPE);
        let bs = self.sb.block_size;
        let mut out = Vec::new();
        if inode.has_inline_data() {
            let data = self.inline_data(&inode)?;
            let parent = super::bytes::le32(&data, 0);
            out.push(DirEntry {
                name: b".".to_vec(),
                ino,
                file_type: if filetype { dir::file_type::DIR } else { 0 },
            });
            out.push(DirEntry {
                name: b"..".to_vec(),
                ino: parent,
                file_type: if filetype { dir::file_type::DIR } else { 0 },
            });
            let body = data.get(4..60).unwrap_or(&[]);
            let o = Origin {
                dir_ino: ino,
                what: "inline data in i_block",
            };
            dir::parse_entries(&o, body, bs, filetype, &mut out)?;
            if let Some(rest) = data.get(60..) {
                let o = Origin {
                    dir_ino: ino,
                    what: "inline data in system.data",
                };
                dir::parse_entries(&o, rest, bs, filetype, &mut out)?;
            }
            return Ok(out);
        }
        let nblocks = inode.size.div_ceil(u64::from(bs));
        let seed = self.inode_seed(&inode);
        let htree = inode.flags & FLAG_INDEX != 0;
        let mut buf = vec![0u8; bs as usize];
        let mut lblk = 0u64;
        while lblk < nblocks {
            let run = self.map(&inode, lblk)?;
            let n = run.len.min(nblocks - lblk).max(1);
            let hole = match run.kind {
                RunKind::Hole => Some("a hole (no block allocated)"),
                RunKind::Zero => Some("in an extent marked unwritten"),
                RunKind::Data(_) => None,
            };
            if let Some(why) = hole {
                let last = lblk + n - 1;
                let msg = format!(
                    "directory inode {ino}: logical block{} {lblk}{} of {nblocks}: {why}; e2fsck would repair this",
                    if n > 1 { "s" } else { "" },
                    if n > 1 { format!("..={last}") } else { String::new() },
                );
                if !self.salvage {
                    return Err(Error::corrupt(format!("{msg} (--salvage reads around it)")));
                }
                self.warn(format!("{msg}; skipped, entries there are not seen"));
            }
            if let RunKind::Data(phys) = run.kind {
                for i in 0..n {
                    let pblk = phys + i;
                    self.read_blocks(pblk, &mut buf)?;
                    let what = format!("block {pblk} (logical {})", lblk + i);
                    let dx = htree && (lblk + i == 0 || dir::is_dx_node(&buf, bs));
                    let body: &[u8] = match (seed, dx) {
                        (Some(s), false) => dir::verify_leaf(ino, pblk, &buf, s)?,
                        _ => &buf,
                    };
                    let o = Origin {
                        dir_ino: ino,
                        what: &what,
                    };
                    dir::parse_entries(&o, body, bs, filetype, &mut out)?;
                }
            }
            lblk += n;
        }
        Ok(out)
    }

    /// The target of symlink `ino`.
    pub fn read_link(&self, ino: u32) -> Result<Vec<u8>> {
        let inode = self.inode(ino)?;
        if inode.kind() != InodeKind::Symlink {
            return Err(Error::InvalidArgument(format!(
                "ext: inode {ino} is not a symbolic link (mode 0o{:o})",
                inode.mode
            )));
        }
        let r = FileReader::new(self, inode)?;
        // Linux limits targets to 4095 bytes; allow some slack, never the claimed size.
        let mut v = vec![0u8; r.size().min(64 << 10) as usize];
        let n = r.read_at(&mut v, 0)?;
        v.truncate(n);
        Ok(v)
    }

    /// Every extended attribute of `ino` as (full name, value), in-inode ones first, in
    /// on-disk order. POSIX ACLs are converted to the standard xattr format; `system.data`
    /// (the inline-data store) is not listed. Attributes under a name index with no
    /// `setxattr` name (fs-verity, encryption, Lustre, Hurd, unknown ones) are left out
    /// with a warning (see [`ExtFs::take_warnings`]).
    pub fn xattrs(&self, ino: u32) -> Result<Vec<NamedXattr>> {
        let (known, unnamed) = self.xattrs_and_unnamed(ino)?;
        for x in &unnamed {
            self.warn(format!("inode {ino}: {}", unnamed_note(x)));
        }
        Ok(known)
    }

    /// [`ExtFs::xattrs`] plus, separately, the attributes that have no full name (they
    /// cannot be carried by name; their values are not read).
    pub(crate) fn xattrs_and_unnamed(&self, ino: u32) -> Result<(Vec<NamedXattr>, Vec<RawXattr>)> {
        let inode = self.inode(ino)?;
        let mut raw: Vec<RawXattr> = xattr::parse_ibody(ino, inode.xattr_area())?;
        if inode.file_acl != 0 {
            let blk = inode.file_acl;
            let data = self.meta_block(blk).map_err(|e| {
                Error::corrupt(format!("inode {ino}: cannot read xattr block {blk}: {e}"))
            })?;
            raw.extend(xattr::parse_block(ino, blk, &data, self.csum_seed)?);
        }
        let mut out = Vec::new();
        let mut unnamed = Vec::new();
        for x in raw {
            if x.index == 7 && x.name == b"data" {
                continue;
            }
            let Some(name) = xattr::full_name(x.index, &x.name) else {
                unnamed.push(x);
                continue;
            };
            let mut value = match x.value {
                Value::Inline(v) => v,
                Value::Inode { ino: ea, size } => self.ea_inode_value(ino, ea, size)?,
            };
            if x.index == 2 || x.index == 3 {
                value = xattr::acl_to_xattr(ino, &value)?;
            }
            out.push((name, value));
        }
        Ok((out, unnamed))
    }

    fn ea_inode_value(&self, ino: u32, ea: u32, size: u32) -> Result<Vec<u8>> {
        if size > MAX_EA_VALUE {
            return Err(Error::unsupported(format!(
                "inode {ino}: xattr value of {size} bytes in EA inode {ea} exceeds the {MAX_EA_VALUE}-byte limit"
            )));
        }
        let ea_inode = self.inode(ea)?;
        if ea_inode.flags & FLAG_EA_INODE == 0 || ea_inode.size < u64::from(size) {
            return Err(Error::corrupt(format!(
                "inode {ino}: xattr value inode {ea} is not an EA inode of at least {size} bytes (flags 0x{:x}, size {})",
                ea_inode.flags, ea_inode.size
            )));
        }
        let r = FileReader::new(self, ea_inode)?;
        let mut v = vec![0u8; size as usize];
        let n = r.read_at(&mut v, 0)?;
        v.truncate(n);
        Ok(v)
    }

    /// A reader of the contents of `ino` (a regular file, symlink or any inode with data).
    pub fn open_file(&self, ino: u32) -> Result<FileReader<'_, D>> {
        let inode = self.inode(ino)?;
        FileReader::new(self, inode)
    }

    /// The inode number of absolute `path` (`/` is 2). Symlinks are not followed; `.` and
    /// `..` are looked up as directory entries.
    pub fn lookup(&self, path: &[u8]) -> Result<u32> {
        if path.first() != Some(&b'/') {
            return Err(Error::InvalidArgument(format!(
                "ext: path {:?} is not absolute",
                String::from_utf8_lossy(path)
            )));
        }
        let mut ino = 2u32;
        for (i, comp) in path
            .split(|&c| c == b'/')
            .filter(|c| !c.is_empty())
            .enumerate()
        {
            if i >= MAX_PATH_COMPONENTS {
                return Err(Error::InvalidArgument("ext: path too long".to_string()));
            }
            let entries = self.read_dir(ino)?;
            ino = entries
                .iter()
                .find(|e| e.name == comp)
                .map(|e| e.ino)
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "ext: no entry {:?} in the directory of {:?}",
                        String::from_utf8_lossy(comp),
                        String::from_utf8_lossy(path)
                    ))
                })?;
        }
        Ok(ino)
    }
}

/// The first usable backup superblock, as e2fsck looks for one when the primary is
/// unusable: the copy in block group 1 for each block size with the default geometry
/// (8 × block size blocks per group), accepted only when it parses (magic, geometry and,
/// with metadata_csum, its checksum), names group 1 and has that block size and group size.
/// Returns it with its block number.
fn backup_superblock<D: BlockDevice>(dev: &D) -> Result<Option<(Superblock, u64)>> {
    for log in 0..=6u32 {
        let bs = 1024u64 << log;
        let first_data_block = u64::from(bs == 1024);
        let blk = 8 * bs + first_data_block;
        let off = blk * bs;
        if off + SUPERBLOCK_SIZE as u64 > dev.len() {
            break;
        }
        let mut buf = vec![0u8; SUPERBLOCK_SIZE];
        dev.read_at(&mut buf, off)?;
        let Ok(sb) = Superblock::parse(&buf) else {
            continue;
        };
        let group_nr = super::bytes::le16(&buf, 0x5A);
        if u64::from(sb.block_size) == bs
            && u64::from(sb.blocks_per_group) == 8 * bs
            && group_nr == 1
        {
            return Ok(Some((sb, blk)));
        }
    }
    Ok(None)
}

/// What a warning says about an attribute that is not carried.
pub(crate) fn unnamed_note(x: &RawXattr) -> String {
    format!(
        "extended attribute {:?} under name index {} ({}) has no setxattr name; not carried into exports, extractions or rebuilds",
        String::from_utf8_lossy(&x.name),
        x.index,
        xattr::index_owner(x.index)
    )
}
