//! Metadata of inodes: extended attributes (with the EA-inode charge libext2fs
//! leaves out) and owner, permissions, times and flags.

use super::*;

impl Ext2Fs {
    // ---- xattrs -------------------------------------------------------------------

    pub(super) fn has_ext_attr(&self) -> bool {
        self.sb().s_feature_compat & COMPAT_EXT_ATTR != 0
    }

    /// Open the xattr handle of `ino`, run `f`, close (which writes the changes).
    pub(super) fn with_xattrs<T>(
        &self,
        ino: u32,
        f: impl FnOnce(*mut sys::ext2_xattr_handle) -> Result<T>,
    ) -> Result<T> {
        let mut h: *mut sys::ext2_xattr_handle = std::ptr::null_mut();
        // SAFETY: a live filesystem; `h` receives a handle we close below.
        self.call("opening xattrs", unsafe {
            sys::ext2fs_xattrs_open(self.fs, ino, &mut h)
        })?;
        // SAFETY: `h` is the open handle.
        let read = self.call("reading xattrs", unsafe { sys::ext2fs_xattrs_read(h) });
        let out = read.and_then(|()| f(h));
        // SAFETY: closes the handle opened above (exactly once).
        let closed = self.call("writing xattrs", unsafe {
            sys::ext2fs_xattrs_close(&mut h)
        });
        let out = out?;
        closed?;
        Ok(out)
    }

    pub(super) fn xattrs_of(
        &self,
        h: *mut sys::ext2_xattr_handle,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        // SAFETY: `h` is open; the callback gets `out` back as its data pointer.
        let rc = unsafe {
            sys::ext2fs_xattrs_iterate(
                h,
                Some(collect_xattr),
                &mut out as *mut Vec<(Vec<u8>, Vec<u8>)> as *mut c_void,
            )
        };
        self.call("listing xattrs", rc)?;
        Ok(out)
    }

    /// The extended attributes of `ino` (ACLs in the xattr encoding).
    pub(super) fn xattrs(&self, ino: u32) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if !self.has_ext_attr() {
            return Ok(Vec::new());
        }
        self.with_xattrs(ino, |h| self.xattrs_of(h))
    }

    /// Replace the whole xattr set of `ino` by `want`.
    pub(super) fn set_xattrs(&self, ino: u32, want: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        if !self.has_ext_attr() {
            if want.is_empty() {
                return Ok(());
            }
            return Err(Error::Unsupported {
                feature: "no ext_attr feature (extended attributes cannot be stored)".into(),
            });
        }
        let want = want
            .iter()
            .map(|(n, v)| Ok((cstr(n, "an xattr name")?, v)))
            .collect::<Result<Vec<_>>>()?;
        let ea_inode = self.sb().s_feature_incompat & INCOMPAT_EA_INODE != 0;
        let charged = if ea_inode {
            self.ea_inode_charge(ino)?
        } else {
            0
        };
        self.with_xattrs(ino, |h| {
            for (name, _) in self.xattrs_of(h)? {
                let name = cstr(&name, "an xattr name")?;
                // SAFETY: `h` is open, `name` a C string.
                self.call("removing an xattr", unsafe {
                    sys::ext2fs_xattr_remove(h, name.as_ptr())
                })?;
            }
            for (name, value) in &want {
                // SAFETY: `h` is open; value points at value.len() readable bytes.
                let rc = unsafe {
                    sys::ext2fs_xattr_set(
                        h,
                        name.as_ptr(),
                        value.as_ptr() as *const c_void,
                        value.len() as sys::size_t,
                    )
                };
                self.call(&format!("setting xattr {}", name.to_string_lossy()), rc)?;
            }
            Ok(())
        })?;
        if ea_inode {
            self.recharge(ino, charged)?;
        }
        Ok(())
    }

    /// The 512-byte sectors the kernel (and e2fsck) charge to inode `ino`'s `i_blocks` for
    /// the values it keeps in EA inodes: each value's size in whole clusters.
    pub(super) fn ea_inode_charge(&self, ino: u32) -> Result<u64> {
        let bs = self.block_size();
        let size = self.inode_size();
        let mut raw = vec![0u8; size];
        // SAFETY: a live filesystem; the buffer is the full on-disk inode size.
        self.call(&format!("reading inode {ino}"), unsafe {
            sys::ext2fs_read_inode_full(
                self.fs,
                ino,
                raw.as_mut_ptr() as *mut sys::ext2_inode,
                size as c_int,
            )
        })?;
        let le16 = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let le32 = |b: &[u8], o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        // (sizes of EA-inode values) in the entries of a region starting at `start`.
        let values = |b: &[u8], mut at: usize| {
            let mut out = Vec::new();
            while at + 16 <= b.len() && le32(b, at) != 0 {
                let name_len = usize::from(b[at]);
                if le32(b, at + 4) != 0 {
                    out.push(u64::from(le32(b, at + 8)));
                }
                at += (16 + name_len + 3) & !3;
            }
            out
        };
        let mut sizes = Vec::new();
        if size > 128 {
            let body = 128 + usize::from(le16(&raw, 128));
            if body + 4 <= size && le32(&raw, body) == 0xEA02_0000 {
                sizes.extend(values(&raw, body + 4));
            }
        }
        let acl = u64::from(le32(&raw, 104)) | (u64::from(le16(&raw, 118)) << 32);
        if acl != 0 {
            let mut block = vec![0u8; bs];
            self.slot.dev.read_at(&mut block, acl * bs as u64)?;
            if le32(&block, 0) == 0xEA02_0000 {
                sizes.extend(values(&block, 32));
            }
        }
        // SAFETY: a live filesystem.
        let cluster =
            u64::from(unsafe { (*self.fs).blocksize } << unsafe { (*self.fs).cluster_ratio_bits });
        Ok(sizes
            .iter()
            .map(|v| v.div_ceil(cluster) * cluster / 512)
            .sum())
    }

    /// libext2fs (1.47) does not charge EA-inode values to their owner's `i_blocks`, as the
    /// kernel does and e2fsck checks: move the charge from `before` to what it is now.
    pub(super) fn recharge(&self, ino: u32, before: u64) -> Result<()> {
        let now = self.ea_inode_charge(ino)?;
        if now == before {
            return Ok(());
        }
        let mut inode = self.read_inode(ino)?;
        let huge = inode.i_flags & HUGE_FILE_FL != 0;
        let unit = if huge {
            self.block_size() as u64 / 512
        } else {
            1
        };
        // SAFETY: reads plain integers of the Linux variant of osd2 (any bits are valid).
        let hi = u64::from(unsafe { inode.osd2.linux2.l_i_blocks_hi });
        let blocks = (u64::from(inode.i_blocks) | (hi << 32)) * unit;
        let blocks = (blocks + now).saturating_sub(before) / unit;
        inode.i_blocks = blocks as u32;
        inode.osd2.linux2.l_i_blocks_hi = (blocks >> 32) as u16;
        self.write_inode(ino, &mut inode)
    }

    // ---- metadata -----------------------------------------------------------------

    /// Write owner, permissions, times and user flags of `meta` into inode `ino`.
    pub(super) fn apply_meta(&self, ino: u32, meta: &Metadata) -> Result<()> {
        let mut inode = self.read_inode(ino)?;
        inode.i_mode = (u32::from(inode.i_mode) & 0o170000 | (meta.perm & 0o7777)) as u16;
        inode.i_uid = meta.uid as u16;
        inode.i_gid = meta.gid as u16;
        // Writing a union field of plain integers is safe (the Linux variant of osd2).
        inode.osd2.linux2.l_i_uid_high = (meta.uid >> 16) as u16;
        inode.osd2.linux2.l_i_gid_high = (meta.gid >> 16) as u16;
        let ex = [
            self.has_extra(&inode, 136),
            self.has_extra(&inode, 140),
            self.has_extra(&inode, 144),
            self.has_extra(&inode, 152),
        ];
        (inode.i_ctime, inode.i_ctime_extra) = encode_time(meta.ctime);
        (inode.i_mtime, inode.i_mtime_extra) = encode_time(meta.mtime);
        (inode.i_atime, inode.i_atime_extra) = encode_time(meta.atime);
        if !ex[0] {
            inode.i_ctime_extra = 0;
        }
        if !ex[1] {
            inode.i_mtime_extra = 0;
        }
        if !ex[2] {
            inode.i_atime_extra = 0;
        }
        if ex[3] {
            (inode.i_crtime, inode.i_crtime_extra) = meta.crtime.map(encode_time).unwrap_or((0, 0));
        }
        if let Some(flags) = meta.flags {
            inode.i_flags = (inode.i_flags & !USER_FLAGS) | (flags & USER_FLAGS);
        }
        self.write_inode(ino, &mut inode)
    }

    /// Set owner, permissions, times, user flags and the whole xattr set of `path`.
    pub fn set_meta(&mut self, path: &[u8], meta: &Metadata) -> Result<()> {
        let ino = self.require(path)?;
        self.set_xattrs(ino, &meta.xattrs)?;
        self.apply_meta(ino, meta)
    }
}
