//! Creating entries: every kind with full metadata, hard links, and whole trees.

use super::*;

impl Ext2Fs {
    // ---- creating -----------------------------------------------------------------

    /// Run a libext2fs call that adds a name to `dir`, growing the directory when it is
    /// full (as debugfs and mke2fs -d do).
    pub(super) fn with_dir_space(
        &self,
        dir: u32,
        op: &str,
        mut f: impl FnMut() -> sys::errcode_t,
    ) -> Result<()> {
        loop {
            let rc = f();
            if rc as u32 != sys::EXT2_ET_DIR_NO_SPACE {
                return self.call(op, rc);
            }
            // SAFETY: a live filesystem; `dir` is a directory inode.
            self.call("growing a directory", unsafe {
                sys::ext2fs_expand_dir(self.fs, dir)
            })?;
        }
    }

    /// The parent inode and name of a new entry at `path`, which must not exist yet.
    pub(super) fn new_slot<'p>(&mut self, path: &'p [u8]) -> Result<(u32, &'p [u8], CString)> {
        Self::check_path(path)?;
        if path.is_empty() {
            return Err(Error::Exists(path.to_vec()));
        }
        let (parent, name) = split(path);
        let dir = self.require_dir(parent)?;
        if self.lookup_in(dir, name, parent)?.is_some() {
            return Err(Error::Exists(path.to_vec()));
        }
        if name.len() > 255 {
            return Err(Error::Invalid(format!(
                "the name of {} is longer than 255 bytes",
                Shown(path)
            )));
        }
        self.touched.insert(parent.to_vec());
        Ok((dir, name, cstr(name, "a file name")?))
    }

    /// A free inode for a new entry of `kind` in `dir` (not yet marked in use).
    pub(super) fn free_inode(&self, dir: u32, kind: Kind) -> Result<u32> {
        let mut ino = 0;
        // SAFETY: a live filesystem with its bitmaps read.
        self.call("allocating an inode", unsafe {
            sys::ext2fs_new_inode(
                self.fs,
                dir,
                kind.mode_bits() as c_int,
                std::ptr::null_mut(),
                &mut ino,
            )
        })?;
        Ok(ino)
    }

    /// Allocate an inode for a new non-directory, link it into `dir` and write it.
    pub(super) fn new_inode(
        &self,
        dir: u32,
        name: &CStr,
        kind: Kind,
        init: impl FnOnce(&mut Inode),
    ) -> Result<u32> {
        let mode = kind.mode_bits();
        let ino = self.free_inode(dir, kind)?;
        self.add_name(dir, name, ino, kind)?;
        // SAFETY: marks the inode in use in the bitmap and counters.
        unsafe { sys::ext2fs_inode_alloc_stats2(self.fs, ino, 1, 0) };
        // SAFETY: Inode is plain data; all-zero is valid.
        let mut inode: Inode = unsafe { std::mem::zeroed() };
        inode.i_mode = mode as u16;
        inode.i_links_count = 1;
        init(&mut inode);
        // SAFETY: a live filesystem; write_new_inode reads a struct ext2_inode (a prefix of
        // the large one) and fills in the large inode's extra fields itself.
        self.call("writing a new inode", unsafe {
            sys::ext2fs_write_new_inode(
                self.fs,
                ino,
                &mut inode as *mut Inode as *mut sys::ext2_inode,
            )
        })?;
        Ok(ino)
    }

    /// Create `entry` (any kind but a hard link: see [`Ext2Fs::link`]) with its full
    /// metadata; a regular file's data comes from `content` (holes are kept). Returns its
    /// inode number.
    ///
    /// When a step after the inode was made fails (an xattr that does not fit, a content
    /// shorter than the entry says), the new entry is removed again before the error is
    /// returned.
    pub fn create(&mut self, entry: &Entry, content: Option<&mut dyn Content>) -> Result<u32> {
        let (dir, _, cname) = self.new_slot(&entry.path)?;
        let made = self.make(entry, content, dir, &cname);
        if made.is_err() && matches!(self.lookup(&entry.path), Ok(Some(_))) {
            let _ = self.remove(&entry.path, true);
        }
        made
    }

    /// [`Ext2Fs::create`] once the name is known to be free in `dir`.
    pub(super) fn make(
        &mut self,
        entry: &Entry,
        content: Option<&mut dyn Content>,
        dir: u32,
        cname: &CStr,
    ) -> Result<u32> {
        let path = entry.path.as_slice();
        let has_extents = self.sb().s_feature_incompat & 0x40 != 0;
        let ino = match entry.kind {
            Kind::Dir => {
                // The inode is chosen here and the name added by `add_name` (which keeps
                // the remembered names current): ext2fs_mkdir given a name would look it
                // up and link it by scanning the parent.
                let ino = self.free_inode(dir, Kind::Dir)?;
                // SAFETY: a live filesystem; `ino` is free; no name: nothing is linked.
                self.call("making a directory", unsafe {
                    sys::ext2fs_mkdir(self.fs, dir, ino, std::ptr::null())
                })?;
                self.add_name(dir, cname, ino, Kind::Dir)?;
                self.touched.insert(path.to_vec());
                ino
            }
            Kind::Symlink => {
                let target = entry.link_target.as_deref().ok_or_else(|| {
                    Error::Invalid(format!("symlink {} has no target", Shown(path)))
                })?;
                let ctarget = cstr(target, "a symlink target")?;
                if target.is_empty() || target.len() >= self.block_size() {
                    return Err(Error::Invalid(format!(
                        "symlink {}: a target of {} bytes (1 to {} allowed)",
                        Shown(path),
                        target.len(),
                        self.block_size() - 1
                    )));
                }
                // As for a directory: the inode chosen here, the name added by `add_name`.
                let ino = self.free_inode(dir, Kind::Symlink)?;
                // SAFETY: a live filesystem; `ino` is free; a C string; no name.
                self.call("making a symlink", unsafe {
                    sys::ext2fs_symlink(self.fs, dir, ino, std::ptr::null(), ctarget.as_ptr())
                })?;
                self.add_name(dir, cname, ino, Kind::Symlink)?;
                ino
            }
            Kind::File => {
                let content = content.ok_or_else(|| {
                    Error::Invalid(format!("file {} comes without content", Shown(path)))
                })?;
                let fs = self.fs;
                let ino = self.new_inode(dir, cname, Kind::File, |inode| {
                    if has_extents {
                        let mut h: sys::ext2_extent_handle_t = std::ptr::null_mut();
                        // SAFETY: with an inode lacking EXTENTS_FL, extent_open2 only
                        // writes an empty extent header into `inode` (and sets the flag);
                        // the handle is freed at once.
                        unsafe {
                            if sys::ext2fs_extent_open2(
                                fs,
                                0,
                                inode as *mut Inode as *mut sys::ext2_inode,
                                &mut h,
                            ) == 0
                            {
                                sys::ext2fs_extent_free(h);
                            }
                        }
                    }
                })?;
                let len = self.write_content(ino, content, 0)?;
                if len != entry.size {
                    return Err(Error::Invalid(format!(
                        "file {}: the content holds {len} bytes, the entry says {}",
                        Shown(path),
                        entry.size
                    )));
                }
                ino
            }
            Kind::CharDevice | Kind::BlockDevice | Kind::Fifo | Kind::Socket => {
                let rdev = encode_rdev(entry.rdev);
                let dev = matches!(entry.kind, Kind::CharDevice | Kind::BlockDevice);
                self.new_inode(dir, cname, entry.kind, |inode| {
                    if dev {
                        inode.i_block[0] = rdev[0];
                        inode.i_block[1] = rdev[1];
                    }
                })?
            }
        };
        self.set_xattrs(ino, &entry.meta.xattrs)?;
        self.apply_meta(ino, &entry.meta)?;
        Ok(ino)
    }

    pub(super) fn block_size(&self) -> usize {
        // SAFETY: a live filesystem.
        unsafe { (*self.fs).blocksize as usize }
    }

    /// Write `content` into file `ino` from byte `start`, leaving its holes unwritten, and
    /// set the size to `start` + the content's length (returned).
    pub(super) fn write_content(
        &self,
        ino: u32,
        content: &mut dyn Content,
        start: u64,
    ) -> Result<u64> {
        let extents = content.extents()?;
        let len = extents.last().map_or(0, |e| e.end());
        let mut file: sys::ext2_file_t = std::ptr::null_mut();
        // SAFETY: a live filesystem; `file` receives a handle closed below.
        self.call("opening a file", unsafe {
            sys::ext2fs_file_open(self.fs, ino, sys::EXT2_FILE_WRITE as c_int, &mut file)
        })?;
        let wrote = self.fill(file, content, &extents, start, len);
        // SAFETY: closes (and flushes) the handle opened above, once.
        let closed = self.call("writing a file", unsafe { sys::ext2fs_file_close(file) });
        wrote?;
        closed?;
        Ok(len)
    }

    pub(super) fn fill(
        &self,
        file: sys::ext2_file_t,
        content: &mut dyn Content,
        extents: &[subroot_formats::block::Extent],
        start: u64,
        len: u64,
    ) -> Result<()> {
        let mut buf = vec![0u8; 256 << 10];
        let mut pos = 0u64;
        for e in extents {
            if e.offset > pos {
                content.skip(e.offset - pos)?;
                pos = e.offset;
            }
            if e.kind == ExtentKind::Zero {
                continue;
            }
            // SAFETY: a live file handle.
            self.call("seeking in a file", unsafe {
                sys::ext2fs_file_llseek(
                    file,
                    start + e.offset,
                    sys::EXT2_SEEK_SET as c_int,
                    std::ptr::null_mut(),
                )
            })?;
            let mut left = e.len;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                content
                    .read_exact(&mut buf[..want])
                    .map_err(|err| subroot_formats::Error::io("reading file content", err))?;
                let mut done = 0usize;
                while done < want {
                    let mut n: c_uint = 0;
                    // SAFETY: a live file handle; the buffer holds `want - done` bytes.
                    self.call("writing file data", unsafe {
                        sys::ext2fs_file_write(
                            file,
                            buf[done..].as_ptr() as *const c_void,
                            (want - done) as c_uint,
                            &mut n,
                        )
                    })?;
                    if n == 0 {
                        return Err(Error::Corrupt("libext2fs wrote no bytes".into()));
                    }
                    done += n as usize;
                }
                left -= want as u64;
            }
            pos = e.end();
        }
        // SAFETY: a live file handle.
        self.call("setting a file size", unsafe {
            sys::ext2fs_file_set_size2(file, (start + len) as i64)
        })
    }

    /// Add the name `new` for the existing non-directory `existing` (a hard link).
    pub fn link(&mut self, existing: &[u8], new: &[u8]) -> Result<()> {
        let ino = self.require(existing)?;
        self.link_to(ino, existing, new)
    }

    /// Add the name `new` for the non-directory inode `ino` (a hard link addressed by
    /// inode number, as `roots add` clones a tree it walked: no path lookup of the
    /// source).
    pub fn link_inode(&mut self, ino: u32, new: &[u8]) -> Result<()> {
        self.link_to(ino, format!("inode {ino}").as_bytes(), new)
    }

    /// [`Ext2Fs::link`] of inode `ino`, named `existing` in messages.
    fn link_to(&mut self, ino: u32, existing: &[u8], new: &[u8]) -> Result<()> {
        let mut inode = self.read_inode(ino)?;
        let kind =
            kind_of(&inode).ok_or_else(|| Error::Corrupt(format!("inode {ino} has a bad mode")))?;
        if kind == Kind::Dir {
            return Err(Error::IsADirectory(existing.to_vec()));
        }
        if inode.i_links_count == 0 {
            return Err(Error::Invalid(format!(
                "{} is not in use (no links)",
                Shown(existing)
            )));
        }
        if inode.i_links_count >= 65000 {
            return Err(Error::Invalid(format!(
                "{} has too many links",
                Shown(existing)
            )));
        }
        let (dir, _, cname) = self.new_slot(new)?;
        self.add_name(dir, &cname, ino, kind)?;
        inode.i_links_count += 1;
        self.write_inode(ino, &mut inode)
    }

    /// Copy the tree `src` (everything under its root) to `dest`, which must not exist
    /// or be a directory (then the source root's metadata is applied to it). Hard links
    /// of the source (entries sharing a `hardlink_id`) stay hard links. Returns the
    /// number of entries written.
    pub fn add_tree(&mut self, src: &dyn TreeSource, dest: &[u8]) -> Result<u64> {
        Self::check_path(dest)?;
        let mut links: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut count = 0u64;
        let mut failed: Option<Error> = None;
        let walked = src.walk(b"", &mut |e, content| {
            let mut path = dest.to_vec();
            if !e.path.is_empty() {
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(&e.path);
            }
            let done = (|| {
                if e.path.is_empty() && e.kind == Kind::Dir && self.lookup(&path)?.is_some() {
                    return self.set_meta(&path, &e.meta);
                }
                if let Some(first) = e.hardlink_id.and_then(|id| links.get(&id)) {
                    return self.link(&first.clone(), &path);
                }
                let mut entry = e.clone();
                entry.path = path.clone();
                self.create(&entry, content)?;
                if let Some(id) = e.hardlink_id {
                    links.insert(id, path.clone());
                }
                Ok(())
            })();
            count += 1;
            done.map_err(|err| {
                failed = Some(err);
                subroot_formats::Error::InvalidArgument("the ext editor failed".into())
            })
        });
        if let Some(err) = failed {
            return Err(err);
        }
        walked?;
        Ok(count)
    }
}
