//! Removing names (the inode with its last link), whole trees, and moving names.

use super::*;

impl Ext2Fs {
    // ---- removing -----------------------------------------------------------------

    /// The entries of directory `ino` other than `.` and `..`.
    pub(super) fn children(&self, ino: u32) -> Result<Vec<(Vec<u8>, u32)>> {
        self.scan(ino)
            .or_else(|rc| self.call("reading a directory", rc).map(|_| Vec::new()))
    }

    /// As [`Ext2Fs::children`], with libext2fs' error code.
    pub(super) fn scan(
        &self,
        ino: u32,
    ) -> std::result::Result<Vec<(Vec<u8>, u32)>, sys::errcode_t> {
        let mut out: Vec<(Vec<u8>, u32)> = Vec::new();
        // SAFETY: a live filesystem; the callback gets `out` back as priv_data.
        let rc = unsafe {
            sys::ext2fs_dir_iterate2(
                self.fs,
                ino,
                0,
                std::ptr::null_mut(),
                Some(collect_dirent),
                &mut out as *mut Vec<(Vec<u8>, u32)> as *mut c_void,
            )
        };
        if rc != 0 {
            return Err(rc);
        }
        Ok(out)
    }

    /// Drop one link of `ino`; free it (xattrs, blocks, inode) when it was the last.
    /// `parent` is the directory a removed directory was in (its link count drops).
    pub(super) fn drop_link(&self, ino: u32, parent: u32) -> Result<()> {
        let mut inode = self.read_inode(ino)?;
        let is_dir = kind_of(&inode) == Some(Kind::Dir);
        if is_dir {
            let mut p = self.read_inode(parent)?;
            // A count of 1 means "too many to count" (dir_nlink): leave it.
            if p.i_links_count > 2 {
                p.i_links_count -= 1;
                self.write_inode(parent, &mut p)?;
            }
            inode.i_links_count = 0;
        } else {
            inode.i_links_count = inode.i_links_count.saturating_sub(1);
        }
        if inode.i_links_count > 0 {
            return self.write_inode(ino, &mut inode);
        }
        if self.has_ext_attr() {
            self.set_xattrs(ino, &[])?;
            inode = self.read_inode(ino)?;
            // libext2fs keeps an emptied xattr block attached: release our reference.
            // SAFETY: reads plain integers of the Linux variant of osd2.
            let hi = u64::from(unsafe { inode.osd2.linux2.l_i_file_acl_high });
            let blk = u64::from(inode.i_file_acl) | (hi << 32);
            if blk != 0 {
                let mut left: sys::__u32 = 0;
                // SAFETY: a live filesystem; a null block buffer makes libext2fs use its own.
                self.call("releasing an xattr block", unsafe {
                    sys::ext2fs_adjust_ea_refcount3(
                        self.fs,
                        blk,
                        std::ptr::null_mut(),
                        -1,
                        &mut left,
                        ino,
                    )
                })?;
                if left == 0 {
                    // SAFETY: frees the block in the bitmap and counters.
                    unsafe { sys::ext2fs_block_alloc_stats2(self.fs, blk, -1) };
                }
                inode.i_file_acl = 0;
                inode.osd2.linux2.l_i_file_acl_high = 0;
            }
        }
        // SAFETY: a live filesystem; the inode buffer is a full large inode.
        if unsafe {
            sys::ext2fs_inode_has_valid_blocks2(
                self.fs,
                &mut inode as *mut Inode as *mut sys::ext2_inode,
            )
        } != 0
        {
            inode = self.free_blocks(ino, inode)?;
        }
        inode.i_links_count = 0;
        inode.i_dtime = (self.now() as u32).max(1);
        self.write_inode(ino, &mut inode)?;
        // SAFETY: marks the inode free in the bitmap and counters.
        unsafe { sys::ext2fs_inode_alloc_stats2(self.fs, ino, -1, c_int::from(is_dir)) };
        self.names.borrow_mut().remove(&ino);
        Ok(())
    }

    /// Free every data block of `ino` (punch from 0 to the end); its inode as written back.
    pub(super) fn free_blocks(&self, ino: u32, mut inode: Inode) -> Result<Inode> {
        // SAFETY: a live filesystem; punch frees every block and writes the inode back.
        self.call("freeing blocks", unsafe {
            sys::ext2fs_punch(
                self.fs,
                ino,
                &mut inode as *mut Inode as *mut sys::ext2_inode,
                std::ptr::null_mut(),
                0,
                !0,
            )
        })?;
        self.read_inode(ino)
    }

    /// Remove the name `path`; the inode goes with its last link. A directory must be
    /// empty ([`Error::NotEmpty`]); see [`Ext2Fs::remove_tree`].
    pub fn unlink(&mut self, path: &[u8]) -> Result<()> {
        self.remove(path, false)
    }

    /// Remove `path` and, for a directory, everything below it (`rm -r`).
    pub fn remove_tree(&mut self, path: &[u8]) -> Result<()> {
        self.remove(path, true)
    }

    pub(super) fn remove(&mut self, path: &[u8], recursive: bool) -> Result<()> {
        Self::check_path(path)?;
        if path.is_empty() {
            return Err(Error::Invalid(
                "the root directory cannot be removed".into(),
            ));
        }
        let ino = self.require(path)?;
        let (parent, name) = split(path);
        let dir = self.require_dir(parent)?;
        if kind_of(&self.read_inode(ino)?) == Some(Kind::Dir) {
            if recursive {
                self.empty_dir(ino)?;
            } else if !self.children(ino)?.is_empty() {
                return Err(Error::NotEmpty(path.to_vec()));
            }
        }
        let cname = cstr(name, "a file name")?;
        self.remove_name(dir, &cname, ino)?;
        self.touched.insert(parent.to_vec());
        self.drop_link(ino, dir)
    }

    /// Drop every entry below directory `ino` (its own entries stay: it is freed next).
    pub(super) fn empty_dir(&self, ino: u32) -> Result<()> {
        for (_, child) in self.children(ino)? {
            if kind_of(&self.read_inode(child)?) == Some(Kind::Dir) {
                self.empty_dir(child)?;
            }
            self.drop_link(child, ino)?;
        }
        Ok(())
    }

    // ---- moving -------------------------------------------------------------------

    /// Move `from` to `to` (within or between directories). An existing `to` is replaced
    /// when both are non-directories, or when `to` is an empty directory and `from` one.
    pub fn rename(&mut self, from: &[u8], to: &[u8]) -> Result<()> {
        Self::check_path(from)?;
        Self::check_path(to)?;
        if from.is_empty() || to.is_empty() {
            return Err(Error::Invalid("the root directory cannot be moved".into()));
        }
        if from == to {
            return Ok(());
        }
        let ino = self.require(from)?;
        let inode = self.read_inode(ino)?;
        let kind =
            kind_of(&inode).ok_or_else(|| Error::Corrupt(format!("inode {ino} has a bad mode")))?;
        if kind == Kind::Dir && to.starts_with(from) && to.get(from.len()) == Some(&b'/') {
            return Err(Error::Invalid(format!(
                "cannot move {} into itself ({})",
                Shown(from),
                Shown(to)
            )));
        }
        if let Some(old) = self.lookup(to)? {
            let old_dir = kind_of(&self.read_inode(old)?) == Some(Kind::Dir);
            match (kind == Kind::Dir, old_dir) {
                (false, false) | (true, true) => self.unlink(to)?,
                (false, true) => return Err(Error::IsADirectory(to.to_vec())),
                (true, false) => return Err(Error::NotADirectory(to.to_vec())),
            }
        }
        let (from_parent, from_name) = split(from);
        let from_dir = self.require_dir(from_parent)?;
        let (to_dir, _, to_name) = self.new_slot(to)?;
        self.add_name(to_dir, &to_name, ino, kind)?;
        let cfrom = cstr(from_name, "a file name")?;
        self.remove_name(from_dir, &cfrom, ino)?;
        self.touched.insert(from_parent.to_vec());
        if kind == Kind::Dir && from_dir != to_dir {
            let mut parent = to_dir;
            // SAFETY: a live filesystem; the callback rewrites `..` to `parent` and
            // libext2fs writes the block back with its checksum.
            self.call("updating `..`", unsafe {
                sys::ext2fs_dir_iterate2(
                    self.fs,
                    ino,
                    0,
                    std::ptr::null_mut(),
                    Some(set_dotdot),
                    &mut parent as *mut u32 as *mut c_void,
                )
            })?;
            self.touched.insert(to.to_vec());
            let mut old = self.read_inode(from_dir)?;
            if old.i_links_count > 2 {
                old.i_links_count -= 1;
                self.write_inode(from_dir, &mut old)?;
            }
            let mut new = self.read_inode(to_dir)?;
            if new.i_links_count > 1 && new.i_links_count < 64999 {
                new.i_links_count += 1;
            } else {
                new.i_links_count = 1;
            }
            self.write_inode(to_dir, &mut new)?;
        }
        Ok(())
    }
}
