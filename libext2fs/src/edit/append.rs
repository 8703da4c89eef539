//! Adding a name at the end of an unindexed directory without scanning it.
//!
//! `ext2fs_link` looks for room from the directory's first entry on, so filling a new
//! directory of n names one by one reads O(n²) entries. When the editor is told to
//! append ([`Ext2Fs::set_append_names`], as `roots add` does for the directories it
//! makes), a name goes into the free tail of the directory's last block, or into a new
//! block added by `ext2fs_expand_dir` — the same entry layout `ext2fs_link` writes
//! (`rec_len` split, file type when the filesystem has `filetype`, the checksum tail kept
//! and set by `ext2fs_write_dir_block4`).

use super::*;

/// The on-disk length of an entry with a name of `len` bytes (EXT2_DIR_REC_LEN).
fn rec_len(len: usize) -> usize {
    (8 + len + 3) & !3
}

impl Ext2Fs {
    /// Add names to unindexed directories at their end, without looking for free room
    /// before it (see the module documentation); off by default.
    pub fn set_append_names(&mut self, on: bool) {
        self.append_names = on;
    }

    /// Put `name` -> `ino` at the end of directory `dir` when it is unindexed and blocks
    /// are smaller than 64 KiB (`rec_len` stored as is). False (nothing changed) when it
    /// does not apply: the caller then uses `ext2fs_link`.
    pub(super) fn append_name(&self, dir: u32, name: &[u8], ino: u32, kind: Kind) -> Result<bool> {
        let bs = self.block_size();
        if bs >= 65536 || name.is_empty() || name.len() > 255 {
            return Ok(false);
        }
        let sb = self.sb();
        let csum = if sb.s_feature_ro_compat & 0x400 != 0 {
            12
        } else {
            0
        };
        let filetype = sb.s_feature_incompat & 0x2 != 0;
        let need = rec_len(name.len());
        for attempt in 0..2 {
            let inode = self.read_inode(dir)?;
            if inode.i_flags & INDEX_FL != 0 || kind_of(&inode) != Some(Kind::Dir) {
                return Ok(false);
            }
            let size = u64::from(inode.i_size) | (u64::from(inode.i_size_high) << 32);
            if size == 0 || size % bs as u64 != 0 {
                return Ok(false);
            }
            let last = size / bs as u64 - 1;
            let phys = self.map_block(dir, &inode, last)?;
            if phys == 0 {
                return Ok(false);
            }
            let mut buf = self.last_dir_block(dir, phys)?;
            let end = bs - csum;
            // The last entry of the block: the one whose record reaches `end`.
            let mut off = 0usize;
            let at = loop {
                let len = usize::from(u16::from_le_bytes([buf[off + 4], buf[off + 5]]));
                if len < 8 || off + len > end {
                    return Err(Error::Corrupt(format!(
                        "directory inode {dir}: a bad entry length {len} at {off} of its last block"
                    )));
                }
                if off + len == end {
                    break off;
                }
                off += len;
            };
            let len = usize::from(u16::from_le_bytes([buf[at + 4], buf[at + 5]]));
            let used_ino = u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
            let (new_at, new_len) = if used_ino == 0 {
                (at, len)
            } else {
                let keep = rec_len(usize::from(buf[at + 6]));
                (at + keep, len.saturating_sub(keep))
            };
            if new_len < need {
                if attempt == 0 {
                    // SAFETY: a live filesystem; `dir` is a directory inode.
                    self.call("growing a directory", unsafe {
                        sys::ext2fs_expand_dir(self.fs, dir)
                    })?;
                    continue;
                }
                return Ok(false);
            }
            if new_at != at {
                buf[at + 4..at + 6].copy_from_slice(&((new_at - at) as u16).to_le_bytes());
            }
            let e = &mut buf[new_at..new_at + new_len];
            e[..4].copy_from_slice(&ino.to_le_bytes());
            e[4..6].copy_from_slice(&(new_len as u16).to_le_bytes());
            e[6] = name.len() as u8;
            e[7] = if filetype { file_type(kind) as u8 } else { 0 };
            e[8..8 + name.len()].copy_from_slice(name);
            e[8 + name.len()..].fill(0);
            // SAFETY: one block; libext2fs sets the checksum tail before writing.
            self.call("writing a directory block", unsafe {
                sys::ext2fs_write_dir_block4(self.fs, phys, buf.as_mut_ptr() as *mut c_void, 0, dir)
            })?;
            // What was written, checksum included, for the next append's comparison.
            let mut written = vec![0u8; bs];
            self.read_raw(&mut written, phys)?;
            *self.appended.borrow_mut() = Some((phys, written));
            return Ok(true);
        }
        Ok(false)
    }

    /// Block `phys` of directory `dir`, read for an append. When its bytes on the device are
    /// those the last append wrote (the usual case: a directory being filled), they are
    /// taken as they are; otherwise libext2fs reads it and verifies its checksum.
    fn last_dir_block(&self, dir: u32, phys: u64) -> Result<Vec<u8>> {
        let bs = self.block_size();
        let mut raw = vec![0u8; bs];
        self.read_raw(&mut raw, phys)?;
        if matches!(&*self.appended.borrow(), Some((p, b)) if *p == phys && *b == raw) {
            return Ok(raw);
        }
        let mut buf = vec![0u8; bs];
        // SAFETY: the buffer holds one block; libext2fs verifies its checksum.
        self.call("reading a directory block", unsafe {
            sys::ext2fs_read_dir_block4(self.fs, phys, buf.as_mut_ptr() as *mut c_void, 0, dir)
        })?;
        Ok(buf)
    }

    /// Block `phys` as the device holds it (counted in the bytes read).
    fn read_raw(&self, buf: &mut [u8], phys: u64) -> Result<()> {
        self.slot.dev.read_at(buf, phys * buf.len() as u64)?;
        self.slot
            .bytes_read
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}
