//! [`Ext2Fs::grow`]: grow an ext2/3/4 filesystem into the space after it, a port of the
//! grow path of e2fsprogs' resize2fs (`resize/resize2fs.c`: `adjust_new_size`,
//! `adjust_fs_info`, `adjust_superblock`, `fix_uninit_block_bitmaps`,
//! `resize2fs_calculate_summary_stats`, `fix_resize_inode`; `resize/main.c`:
//! `determine_fs_stride`) over libext2fs' own functions.
//!
//! Only what needs no block moved: the new group descriptors go into reserved GDT blocks
//! (resize_inode) or into the new groups themselves (meta_bg), or fit in the descriptor
//! blocks already there. Anything else is refused with [`Error::GrowRefused`] before a
//! byte is written. The work done is proportional to the metadata of the new groups (and
//! the descriptors and bitmaps of all groups), never to the data held.

use super::Ext2Fs;
use crate::error::{Error, Result};
use crate::io;
use crate::sys;
use std::ffi::{c_int, c_ulong, c_void};
use subroot_formats::ext::{
    COMPAT_RESIZE_INODE, COMPAT_SPARSE_SUPER2, INCOMPAT_64BIT, INCOMPAT_META_BG,
    RO_COMPAT_BIGALLOC, RO_COMPAT_GDT_CSUM, RO_COMPAT_METADATA_CSUM,
};

/// What [`Ext2Fs::grow`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrowReport {
    pub block_size: u32,
    pub old_blocks: u64,
    /// The new block count: the size asked for, less a last group too small to hold its
    /// own metadata (and 50 blocks), which resize2fs leaves out too.
    pub new_blocks: u64,
    pub old_groups: u32,
    pub new_groups: u32,
    pub old_desc_blocks: u64,
    pub new_desc_blocks: u64,
    /// Reserved GDT blocks that became group descriptor blocks.
    pub reserved_gdt_used: u32,
    /// Reserved GDT blocks left for later growth.
    pub reserved_gdt_left: u32,
    /// New groups whose inode table was written with zeros (filesystems without group
    /// descriptor checksums); with checksums they are left `INODE_UNINIT` instead.
    pub inode_tables_zeroed: u32,
}

/// The geometry a grow leads to, computed before anything changes.
struct Plan {
    new_blocks: u64,
    groups: u32,
    desc_blocks: u64,
}

impl Ext2Fs {
    /// Grow the filesystem to `new_blocks_count` blocks (the device must already be that
    /// long). Nothing is written when the filesystem cannot grow this way
    /// ([`Error::GrowRefused`]) or the size is wrong ([`Error::Invalid`]); the changes
    /// reach the device as the other edits do (new inode tables and the resize inode at
    /// once, descriptors, bitmaps and superblocks at [`Ext2Fs::close`]). After a failure
    /// past those checks (a device error), [`Ext2Fs::close`] refuses to write the
    /// half-grown metadata: drop the editor and discard the overlay.
    pub fn grow(&mut self, new_blocks_count: u64) -> Result<GrowReport> {
        let plan = self.plan_grow(new_blocks_count)?;
        let sb = *self.sb();
        // SAFETY: a live filesystem.
        let (old_groups, bs) = unsafe { ((*self.fs).group_desc_count, (*self.fs).blocksize) };
        let old_desc_blocks = self.desc_blocks();
        let old_blocks = self.blocks_count();
        let mut report = GrowReport {
            block_size: bs,
            old_blocks,
            new_blocks: plan.new_blocks,
            old_groups,
            new_groups: plan.groups,
            old_desc_blocks,
            new_desc_blocks: plan.desc_blocks,
            reserved_gdt_used: 0,
            reserved_gdt_left: u32::from(sb.s_reserved_gdt_blocks),
            inode_tables_zeroed: 0,
        };
        if plan.new_blocks == old_blocks {
            return Ok(report);
        }
        let (free_blocks, free_inodes) = self.free_counts();
        report.inode_tables_zeroed = self
            .grow_to(&plan, old_blocks, old_groups, old_desc_blocks)
            .inspect_err(|e| self.broken = Some(format!("growing it failed half-way ({e})")))?;
        let left = self.sb().s_reserved_gdt_blocks;
        report.reserved_gdt_left = u32::from(left);
        report.reserved_gdt_used = u32::from(sb.s_reserved_gdt_blocks - left);
        // What close reports as used stays what the other edits used.
        let (fb, fi) = self.free_counts();
        self.free_blocks0 = self.free_blocks0 + fb - free_blocks;
        self.free_inodes0 = self.free_inodes0 + fi - free_inodes;
        Ok(report)
    }

    /// The steps of [`Ext2Fs::grow`] once the plan is accepted; returns the number of
    /// inode tables zeroed.
    fn grow_to(
        &mut self,
        plan: &Plan,
        old_blocks: u64,
        old_groups: u32,
        old_desc_blocks: u64,
    ) -> Result<u32> {
        self.determine_stride();
        self.fix_uninit_block_bitmaps();
        self.adjust_fs_info(plan, old_blocks, old_groups, old_desc_blocks)?;
        self.fix_uninit_block_bitmaps();
        // SAFETY: a live filesystem; the last group exists.
        unsafe {
            sys::ext2fs_bg_flags_clear(self.fs, plan.groups - 1, sys::EXT2_BG_BLOCK_UNINIT as u16)
        };
        let zeroed = if self.has_gdt_csum() {
            0
        } else {
            self.zero_inode_tables(old_groups)?
        };
        self.calculate_summary_stats()?;
        self.fix_resize_inode()?;
        // SAFETY: a live filesystem.
        self.call("setting the group checksums", unsafe {
            sys::ext2fs_set_gdt_csum(self.fs)
        })?;
        // SAFETY: a live filesystem; plain flag words that make close write the
        // superblocks, every descriptor copy and both bitmaps.
        unsafe {
            (*self.fs).flags &= !(sys::EXT2_FLAG_MASTER_SB_ONLY as c_int);
            (*self.fs).flags |= (sys::EXT2_FLAG_DIRTY
                | sys::EXT2_FLAG_CHANGED
                | sys::EXT2_FLAG_IB_DIRTY
                | sys::EXT2_FLAG_BB_DIRTY) as c_int;
        }
        Ok(zeroed)
    }

    #[allow(clippy::useless_conversion)] // c_ulong is u32 on 32-bit targets
    fn desc_blocks(&self) -> u64 {
        // SAFETY: a live filesystem.
        u64::from(unsafe { (*self.fs).desc_blocks })
    }

    fn blocks_count(&self) -> u64 {
        // SAFETY: a live filesystem's superblock.
        unsafe { sys::ext2fs_blocks_count((*self.fs).super_) }
    }

    /// Bytes per group descriptor (`EXT2_DESC_SIZE`).
    fn desc_size(&self) -> usize {
        let sb = self.sb();
        if sb.s_feature_incompat & INCOMPAT_64BIT != 0 {
            usize::from(sb.s_desc_size).max(32)
        } else {
            32
        }
    }

    fn has_gdt_csum(&self) -> bool {
        self.sb().s_feature_ro_compat & (RO_COMPAT_GDT_CSUM | RO_COMPAT_METADATA_CSUM) != 0
    }

    fn refuse(&self, found: String) -> Error {
        Error::GrowRefused {
            what: self.what.clone(),
            found,
        }
    }

    /// The new geometry (resize2fs' `adjust_new_size` and main.c's checks), or why the
    /// filesystem cannot grow to it without moving blocks.
    fn plan_grow(&self, asked: u64) -> Result<Plan> {
        let sb = self.sb();
        // SAFETY: a live filesystem.
        let (bs, desc_blocks, ipb_group) = unsafe {
            (
                u64::from((*self.fs).blocksize),
                self.desc_blocks(),
                u64::from((*self.fs).inode_blocks_per_group),
            )
        };
        let old_blocks = self.blocks_count();
        if asked < old_blocks {
            return Err(Error::Invalid(format!(
                "{} has {old_blocks} blocks; growing it to {asked} would shrink it",
                self.what
            )));
        }
        let dev_len = self.slot.dev.len();
        if asked.checked_mul(bs).is_none_or(|end| end > dev_len) {
            return Err(Error::Invalid(format!(
                "{} is {dev_len} bytes long, too short for {asked} blocks of {bs} bytes",
                self.what
            )));
        }
        if sb.s_feature_ro_compat & RO_COMPAT_BIGALLOC != 0 {
            return Err(self.refuse("bigalloc (cluster allocation)".into()));
        }
        if sb.s_feature_compat & COMPAT_SPARSE_SUPER2 != 0 {
            return Err(self.refuse("sparse_super2 (backup superblocks that move)".into()));
        }
        let meta_bg = sb.s_feature_incompat & INCOMPAT_META_BG != 0;
        let resize_inode = sb.s_feature_compat & COMPAT_RESIZE_INODE != 0;
        if meta_bg && resize_inode {
            return Err(self.refuse("both meta_bg and resize_inode".into()));
        }
        if meta_bg && u64::from(sb.s_first_meta_bg) > desc_blocks {
            return Err(self.refuse(format!(
                "meta_bg starting at descriptor block {} past the {desc_blocks} in use",
                sb.s_first_meta_bg
            )));
        }
        if sb.s_feature_incompat & INCOMPAT_64BIT == 0 && asked > u64::from(u32::MAX) {
            return Err(self.refuse(format!(
                "no 64bit feature: {asked} blocks cannot be counted in 32 bits"
            )));
        }
        let first = u64::from(sb.s_first_data_block);
        let bpg = u64::from(sb.s_blocks_per_group);
        let ipg = u64::from(sb.s_inodes_per_group);
        let per_block = bs / self.desc_size() as u64;
        let mut size = asked;
        // adjust_new_size: drop a last group too small for its metadata, and the groups
        // whose inodes could not be numbered in 32 bits.
        let (groups, new_desc_blocks) = loop {
            let groups = (size - first).div_ceil(bpg);
            let desc = groups.div_ceil(per_block);
            let mut overhead = 2 + ipb_group;
            // SAFETY: a live filesystem; bg_has_super only reads the superblock.
            if unsafe { sys::ext2fs_bg_has_super(self.fs, (groups - 1) as u32) } != 0 {
                overhead += 1 + desc + u64::from(sb.s_reserved_gdt_blocks);
            }
            let rem = (size - first) % bpg;
            if groups > 1 && rem != 0 && rem < overhead + 50 {
                size -= rem;
                continue;
            }
            if ipg * groups > u64::from(u32::MAX) {
                if ipg * (groups - 1) > u64::from(u32::MAX) {
                    return Err(self.refuse(format!(
                        "{ipg} inodes per group: {groups} groups would need inode numbers past 2^32"
                    )));
                }
                size = bpg * (groups - 1) + first;
                continue;
            }
            break (groups, desc);
        };
        if size <= old_blocks {
            // Nothing to add once the last group is left out (resize2fs: "Nothing to do").
            return Ok(Plan {
                new_blocks: old_blocks,
                // SAFETY: a live filesystem.
                groups: unsafe { (*self.fs).group_desc_count },
                desc_blocks,
            });
        }
        if !meta_bg && new_desc_blocks + first > bpg {
            return Err(self.refuse(format!(
                "{new_desc_blocks} group descriptor blocks would not fit in a group of {bpg} blocks"
            )));
        }
        if !meta_bg && new_desc_blocks > desc_blocks {
            let more = new_desc_blocks - desc_blocks;
            let reserved = if resize_inode {
                u64::from(sb.s_reserved_gdt_blocks)
            } else {
                0
            };
            if more > reserved {
                return Err(self.refuse(format!(
                    "the group descriptors must grow from {desc_blocks} to {new_desc_blocks} blocks \
                     but only {reserved} reserved GDT blocks follow them (and no meta_bg); \
                     that needs blocks moved, as resize2fs does"
                )));
            }
        }
        if resize_inode {
            let inode = self.read_inode(sys::EXT2_RESIZE_INO)?;
            if inode.i_block[sys::EXT2_DIND_BLOCK as usize] == 0 {
                return Err(Error::Corrupt(format!(
                    "{}: the resize inode has no block list (run e2fsck)",
                    self.what
                )));
            }
        }
        Ok(Plan {
            new_blocks: size,
            groups: groups as u32,
            desc_blocks: new_desc_blocks,
        })
    }

    /// resize2fs' `determine_fs_stride`: the RAID stride the existing groups' bitmaps
    /// follow (where new non-flex_bg groups put theirs), kept in the superblock.
    fn determine_stride(&mut self) {
        // SAFETY: a live filesystem throughout; the groups exist.
        unsafe {
            if (*self.fs).stride != 0 {
                return;
            }
            let groups = (*self.fs).group_desc_count;
            let flex = 1u64 << (*(*self.fs).super_).s_log_groups_per_flex;
            let bpg = i64::from((*(*self.fs).super_).s_blocks_per_group);
            let (mut sum, mut num, mut prev_has_sb) = (0i64, 0i64, 0);
            for g in 0..groups {
                let has_sb = sys::ext2fs_bg_has_super(self.fs, g);
                if g != 0 && has_sb == prev_has_sb {
                    let b = sys::ext2fs_block_bitmap_loc(self.fs, g) as i64
                        - sys::ext2fs_block_bitmap_loc(self.fs, g - 1) as i64
                        - bpg;
                    let i = sys::ext2fs_inode_bitmap_loc(self.fs, g) as i64
                        - sys::ext2fs_inode_bitmap_loc(self.fs, g - 1) as i64
                        - bpg;
                    if b == i && b >= 0 && !(flex > 1 && u64::from(g) % flex == 0) {
                        sum += b;
                        num += 1;
                    }
                }
                prev_has_sb = has_sb;
            }
            if groups > 12 && num < 3 {
                sum = 0;
            }
            let stride = if num != 0 { (sum / num) as u32 } else { 0 };
            (*self.fs).stride = stride;
            (*(*self.fs).super_).s_raid_stride = stride as u16;
        }
    }

    /// resize2fs' `fix_uninit_block_bitmaps`: the in-memory block bitmap of each
    /// `BLOCK_UNINIT` group is what the kernel would make of it (its own metadata used).
    fn fix_uninit_block_bitmaps(&mut self) {
        if !self.has_gdt_csum() {
            return;
        }
        // SAFETY: a live filesystem with its bitmaps read; every group index is in range.
        unsafe {
            let fs = self.fs;
            let map = (*fs).block_map;
            for g in 0..(*fs).group_desc_count {
                if sys::ext2fs_bg_flags_test(fs, g, sys::EXT2_BG_BLOCK_UNINIT as u16) == 0 {
                    continue;
                }
                let first = sys::ext2fs_group_first_block2(fs, g);
                let last = sys::ext2fs_group_last_block2(fs, g);
                sys::ext2fs_unmark_block_bitmap_range2(map, first, (last - first + 1) as u32);
                sys::ext2fs_reserve_super_and_bgd(fs, g, map);
                sys::ext2fs_mark_block_bitmap_range2(map, sys::ext2fs_block_bitmap_loc(fs, g), 1);
                sys::ext2fs_mark_block_bitmap_range2(map, sys::ext2fs_inode_bitmap_loc(fs, g), 1);
                sys::ext2fs_mark_block_bitmap_range2(
                    map,
                    sys::ext2fs_inode_table_loc(fs, g),
                    (*fs).inode_blocks_per_group,
                );
            }
        }
    }

    /// resize2fs' `adjust_fs_info`, grow direction: the superblock counts, the bitmaps'
    /// sizes, the descriptor table, and the descriptors and tables of the new groups.
    fn adjust_fs_info(
        &mut self,
        plan: &Plan,
        old_blocks: u64,
        old_groups: u32,
        old_desc_blocks: u64,
    ) -> Result<()> {
        let fs = self.fs;
        // SAFETY: a live filesystem; every call below gets indexes within the new group
        // count, set first, and buffers of the sizes they are told.
        unsafe {
            let sb = (*fs).super_;
            let bs = u64::from((*fs).blocksize);
            sys::ext2fs_blocks_count_set(sb, plan.new_blocks);
            (*sb).s_overhead_clusters = 0;
            (*fs).group_desc_count = plan.groups;
            (*fs).desc_blocks = plan.desc_blocks as c_ulong;
            (*sb).s_inodes_count = (*sb).s_inodes_per_group * plan.groups;
            let percent = sys::ext2fs_r_blocks_count(sb) as f64 * 100.0 / old_blocks as f64;
            sys::ext2fs_r_blocks_count_set(sb, (percent * plan.new_blocks as f64 / 100.0) as u64);
            sys::ext2fs_free_blocks_count_set(
                sb,
                sys::ext2fs_free_blocks_count(sb) + (plan.new_blocks - old_blocks),
            );

            let inodes = u64::from((*sb).s_inodes_count);
            self.call("resizing the inode bitmap", {
                sys::ext2fs_resize_inode_bitmap2(inodes, inodes, (*fs).inode_map)
            })?;
            let first = u64::from((*sb).s_first_data_block);
            let real_end = u64::from((*sb).s_blocks_per_group) * u64::from(plan.groups) - 1 + first;
            self.call("resizing the block bitmap", {
                sys::ext2fs_resize_block_bitmap2(plan.new_blocks - 1, real_end, (*fs).block_map)
            })?;

            if plan.desc_blocks != old_desc_blocks {
                let (old_len, new_len) = (old_desc_blocks * bs, plan.desc_blocks * bs);
                self.call("growing the descriptor table", {
                    sys::ext2fs_resize_mem(
                        old_len as c_ulong,
                        new_len as c_ulong,
                        &mut (*fs).group_desc as *mut _ as *mut c_void,
                    )
                })?;
                std::ptr::write_bytes(
                    ((*fs).group_desc as *mut u8).add(old_len as usize),
                    0,
                    (new_len - old_len) as usize,
                );
                if (*sb).s_feature_compat & COMPAT_RESIZE_INODE != 0 {
                    (*sb).s_reserved_gdt_blocks -= (plan.desc_blocks - old_desc_blocks) as u16;
                }
            }

            // The old last group gets the blocks added to it.
            let bpg = u64::from((*sb).s_blocks_per_group);
            let mut old_last = (old_blocks - first) % bpg;
            if old_last == 0 {
                old_last = bpg;
            }
            let mut now_last = bpg;
            if plan.groups == old_groups {
                now_last = (plan.new_blocks - first) % bpg;
                if now_last == 0 {
                    now_last = bpg;
                }
            }
            let g = old_groups - 1;
            sys::ext2fs_bg_free_blocks_count_set(
                fs,
                g,
                sys::ext2fs_bg_free_blocks_count(fs, g) + (now_last - old_last) as u32,
            );
            sys::ext2fs_group_desc_csum_set(fs, g);
            if plan.groups == old_groups {
                return Ok(());
            }

            let csum = self.has_gdt_csum();
            let meta_bg = (*sb).s_feature_incompat & INCOMPAT_META_BG != 0;
            let gdt_blocks = if meta_bg {
                u64::from((*sb).s_first_meta_bg)
            } else {
                plan.desc_blocks + u64::from((*sb).s_reserved_gdt_blocks)
            };
            for g in 0..old_groups {
                sys::ext2fs_reserve_super_and_bgd(fs, g, (*fs).block_map);
            }
            let desc_size = self.desc_size();
            let per_meta = bs / desc_size as u64;
            let ipg = (*sb).s_inodes_per_group;
            let mut group_block = sys::ext2fs_group_first_block2(fs, old_groups);
            for g in old_groups..plan.groups {
                std::ptr::write_bytes(
                    sys::ext2fs_group_desc(fs, (*fs).group_desc, g) as *mut u8,
                    0,
                    desc_size,
                );
                sys::ext2fs_bg_flags_zap(fs, g);
                if csum {
                    // Lazy inode table initialisation, as mke2fs and resize2fs do on a
                    // kernel that zeroes the tables itself: not INODE_ZEROED.
                    sys::ext2fs_bg_flags_set(fs, g, sys::EXT2_BG_INODE_UNINIT as u16);
                    sys::ext2fs_bg_itable_unused_set(fs, g, ipg);
                }
                let mut numblocks = sys::ext2fs_group_blocks_count(fs, g) as u64;
                if g < plan.groups - 1 && csum {
                    sys::ext2fs_bg_flags_set(fs, g, sys::EXT2_BG_BLOCK_UNINIT as u16);
                }
                let has_super = sys::ext2fs_bg_has_super(fs, g) != 0;
                let mut adj = 0u64;
                if has_super {
                    sys::ext2fs_block_alloc_stats2(fs, group_block, 1);
                    adj += 1;
                }
                let meta_group = u64::from(g) / per_meta;
                if !meta_bg || meta_group < u64::from((*sb).s_first_meta_bg) {
                    if has_super {
                        for j in 0..gdt_blocks {
                            sys::ext2fs_block_alloc_stats2(fs, group_block + 1 + j, 1);
                        }
                        adj += gdt_blocks;
                    }
                } else {
                    let r = u64::from(g) % per_meta;
                    if r == 0 || r == 1 || r == per_meta - 1 {
                        sys::ext2fs_block_alloc_stats2(fs, group_block + u64::from(has_super), 1);
                    }
                }
                adj += 2 + u64::from((*fs).inode_blocks_per_group);
                numblocks -= adj;
                sys::ext2fs_free_blocks_count_set(sb, sys::ext2fs_free_blocks_count(sb) - adj);
                (*sb).s_free_inodes_count += ipg;
                sys::ext2fs_bg_free_blocks_count_set(fs, g, numblocks as u32);
                sys::ext2fs_bg_free_inodes_count_set(fs, g, ipg);
                sys::ext2fs_bg_used_dirs_count_set(fs, g, 0);
                sys::ext2fs_group_desc_csum_set(fs, g);
                self.call(
                    &format!("placing the bitmaps and inode table of group {g}"),
                    sys::ext2fs_allocate_group_table(fs, g, std::ptr::null_mut()),
                )?;
                group_block += bpg;
            }
        }
        Ok(())
    }

    /// Write zeros over the inode tables of the groups from `from` on, in runs as long as
    /// the tables are contiguous (flex_bg puts them side by side). Returns the groups.
    /// The device is written directly: our io_manager keeps no cache to bypass.
    fn zero_inode_tables(&mut self, from: u32) -> Result<u32> {
        let fs = self.fs;
        // SAFETY: a live filesystem; the groups exist and have their tables placed.
        unsafe {
            let per = u64::from((*fs).inode_blocks_per_group);
            let groups = (*fs).group_desc_count;
            let mut run: Option<(u64, u64)> = None;
            let mut result = Ok(());
            for g in from..groups {
                let at = sys::ext2fs_inode_table_loc(fs, g);
                run = match run {
                    Some((start, len)) if start + len == at => Some((start, len + per)),
                    Some((start, len)) => {
                        result = self.zero_run(start, len);
                        if result.is_err() {
                            break;
                        }
                        Some((at, per))
                    }
                    None => Some((at, per)),
                };
            }
            if let (Ok(()), Some((start, len))) = (&result, run) {
                result = self.zero_run(start, len);
            }
            result.map(|()| groups - from)
        }
    }

    /// Write zeros over `len` blocks from `start`, 4 MiB at a time. Not
    /// `ext2fs_zero_blocks2`: its buffer is a static shared by every thread.
    fn zero_run(&self, start: u64, len: u64) -> Result<()> {
        // SAFETY: a live filesystem.
        let bs = u64::from(unsafe { (*self.fs).blocksize });
        let (mut at, end) = (start * bs, (start + len) * bs);
        let zeros = vec![0u8; (end - at).min(4 << 20) as usize];
        while at < end {
            let n = (end - at).min(zeros.len() as u64) as usize;
            self.call("writing zeros", io::write(&self.slot, &zeros[..n], at))?;
            at += n as u64;
        }
        Ok(())
    }

    /// resize2fs' `resize2fs_calculate_summary_stats`: every group's free block and
    /// inode counts, and the totals, from the bitmaps.
    fn calculate_summary_stats(&mut self) -> Result<()> {
        let fs = self.fs;
        // SAFETY: a live filesystem; the buffers hold the ranges asked for.
        unsafe {
            let sb = (*fs).super_;
            let bpg = (*sb).s_blocks_per_group;
            let ipg = (*sb).s_inodes_per_group;
            let mut buf = vec![0u8; (bpg.max(ipg) as usize).div_ceil(8)];
            let mut total_blocks = 0u64;
            let mut total_inodes = 0u32;
            let mut start = u64::from((*sb).s_first_data_block);
            for g in 0..(*fs).group_desc_count {
                self.call("reading the block bitmap", {
                    sys::ext2fs_get_block_bitmap_range2(
                        (*fs).block_map,
                        start,
                        bpg.into(),
                        buf.as_mut_ptr() as *mut c_void,
                    )
                })?;
                let max = sys::ext2fs_group_blocks_count(fs, g) as u32;
                let used = count_bits(&buf, max);
                total_blocks += u64::from(max - used);
                sys::ext2fs_bg_free_blocks_count_set(fs, g, max - used);

                let free =
                    if sys::ext2fs_bg_flags_test(fs, g, sys::EXT2_BG_INODE_UNINIT as u16) != 0 {
                        ipg
                    } else {
                        self.call("reading the inode bitmap", {
                            sys::ext2fs_get_inode_bitmap_range2(
                                (*fs).inode_map,
                                u64::from(g) * u64::from(ipg) + 1,
                                ipg.into(),
                                buf.as_mut_ptr() as *mut c_void,
                            )
                        })?;
                        ipg - count_bits(&buf, ipg)
                    };
                total_inodes += free;
                sys::ext2fs_bg_free_inodes_count_set(fs, g, free);
                sys::ext2fs_group_desc_csum_set(fs, g);
                start += u64::from(bpg);
            }
            sys::ext2fs_free_blocks_count_set(sb, total_blocks);
            (*sb).s_free_inodes_count = total_inodes;
        }
        Ok(())
    }

    /// resize2fs' `fix_resize_inode`: rebuild the resize inode's list of reserved GDT
    /// blocks (fewer now, and in the new backup groups too).
    fn fix_resize_inode(&mut self) -> Result<()> {
        if self.sb().s_feature_compat & COMPAT_RESIZE_INODE == 0 {
            return Ok(());
        }
        let mut inode = self.read_inode(sys::EXT2_RESIZE_INO)?;
        // SAFETY: a live filesystem; the large inode starts with the small one.
        unsafe { sys::ext2fs_iblk_set(self.fs, &mut inode as *mut _ as *mut sys::ext2_inode, 1) };
        self.write_inode(sys::EXT2_RESIZE_INO, &mut inode)?;
        let dind = u64::from(inode.i_block[sys::EXT2_DIND_BLOCK as usize]);
        self.zero_run(dind, 1)?;
        // SAFETY: a live filesystem.
        self.call("rebuilding the resize inode", unsafe {
            sys::ext2fs_create_resize_inode(self.fs)
        })
    }
}

/// The bits set among the first `n` of `buf` (a bitmap, lowest bit first).
fn count_bits(buf: &[u8], n: u32) -> u32 {
    let whole = (n / 8) as usize;
    let mut count: u32 = buf[..whole].iter().map(|b| b.count_ones()).sum();
    if n % 8 != 0 {
        count += (buf[whole] & ((1u8 << (n % 8)) - 1)).count_ones();
    }
    count
}

#[cfg(test)]
mod tests {
    #[test]
    fn count_bits_stops_at_n() {
        assert_eq!(super::count_bits(&[0xff, 0xff], 12), 12);
        assert_eq!(super::count_bits(&[0x0f, 0xf0], 12), 4);
        assert_eq!(super::count_bits(&[0x01], 0), 0);
    }
}
