//! Removing a name from an htree directory through its index, not by a scan.

use super::*;

impl Ext2Fs {
    /// Remove `name` -> `ino` from an htree directory by its index: hash the name, follow
    /// the index to the one leaf block that can hold it, and take the entry out of that
    /// block (as `ext2fs_unlink` does: merged into the previous entry, or emptied when
    /// first), written back with its checksum. libext2fs' `ext2fs_unlink` reads the whole
    /// directory instead. False (nothing changed) when the directory is not indexed or the
    /// name is not in that leaf (a hash collision continued in the next one): the caller
    /// then falls back to the scan.
    pub(super) fn remove_indexed(&self, dir: u32, name: &[u8], ino: u32) -> Result<bool> {
        let le16 = |b: &[u8], o: usize| usize::from(u16::from_le_bytes([b[o], b[o + 1]]));
        let le32 = |b: &[u8], o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let bs = self.block_size();
        let inode = self.read_inode(dir)?;
        if inode.i_flags & INDEX_FL == 0 || bs >= 65536 {
            return Ok(false);
        }
        let mut buf = vec![0u8; bs];
        let read = |lblk: u64, buf: &mut Vec<u8>| -> Result<Option<u64>> {
            let phys = self.map_block(dir, &inode, lblk)?;
            if phys == 0 {
                return Ok(None);
            }
            // SAFETY: the buffer holds one block; libext2fs verifies its checksum.
            self.call("reading a directory block", unsafe {
                sys::ext2fs_read_dir_block4(self.fs, phys, buf.as_mut_ptr() as *mut c_void, 0, dir)
            })?;
            Ok(Some(phys))
        };
        if read(0, &mut buf)?.is_none() {
            return Ok(false);
        }
        // dx_root: `.` (12 bytes), `..`, then the root info at 24 and the entries at 32.
        let (version, info_len, levels) = (buf[28], buf[29], buf[30]);
        if le32(&buf, 24) != 0 || info_len != 8 || levels > 2 || version > 6 {
            return Ok(false);
        }
        let sb = self.sb();
        let mut version = c_int::from(version);
        if sb.s_flags & 0x2 != 0 && version <= 2 {
            version += 3; // EXT2_FLAGS_UNSIGNED_HASH: the unsigned variants
        }
        let mut hash: sys::ext2_dirhash_t = 0;
        // SAFETY: `name` is passed with its length; the seed is the superblock's 4 words.
        let rc = unsafe {
            sys::ext2fs_dirhash2(
                version,
                name.as_ptr() as *const c_char,
                name.len() as c_int,
                std::ptr::null(),
                0,
                sb.s_hash_seed.as_ptr(),
                &mut hash,
                std::ptr::null_mut(),
            )
        };
        if rc != 0 {
            return Ok(false);
        }
        let hash = hash & !1;
        // Walk the index down to the leaf: in each node, the last entry whose hash is not
        // above the name's (entry 0 has none: it covers everything below entry 1).
        let mut at = 32;
        let mut leaf = 0u64;
        for level in 0..=levels {
            let count = le16(&buf, at + 2);
            if count == 0 || at + 8 * count > bs {
                return Ok(false);
            }
            let mut pick = le32(&buf, at + 4);
            for i in 1..count {
                if le32(&buf, at + 8 * i) & !1 > hash {
                    break;
                }
                pick = le32(&buf, at + 8 * i + 4);
            }
            leaf = u64::from(pick & 0x0fff_ffff);
            if level < levels {
                if read(leaf, &mut buf)?.is_none() {
                    return Ok(false);
                }
                at = 8; // an index node: a fake empty entry, then the entries
            }
        }
        let Some(phys) = read(leaf, &mut buf)? else {
            return Ok(false);
        };
        let (mut off, mut prev) = (0usize, None);
        while off + 8 <= bs {
            let rec = le16(&buf, off + 4);
            let len = usize::from(buf[off + 6]);
            if rec < 8 || off + rec > bs {
                return Ok(false);
            }
            if le32(&buf, off) == ino && len == name.len() && &buf[off + 8..off + 8 + len] == name {
                match prev {
                    Some(p) => {
                        let merged = (le16(&buf, p + 4) + rec) as u16;
                        buf[p + 4..p + 6].copy_from_slice(&merged.to_le_bytes());
                    }
                    None => buf[off..off + 4].copy_from_slice(&0u32.to_le_bytes()),
                }
                // SAFETY: the block read above, now without the entry; libext2fs sets
                // its checksum as it writes it.
                self.call("writing a directory block", unsafe {
                    sys::ext2fs_write_dir_block4(
                        self.fs,
                        phys,
                        buf.as_mut_ptr() as *mut c_void,
                        0,
                        dir,
                    )
                })?;
                return Ok(true);
            }
            prev = Some(off);
            off += rec;
        }
        Ok(false)
    }
}
