//! File contents: written with holes kept, replaced, truncated, appended.

use super::*;

impl Ext2Fs {
    // ---- contents -----------------------------------------------------------------

    pub(super) fn require_file(&self, path: &[u8]) -> Result<u32> {
        let ino = self.require(path)?;
        match kind_of(&self.read_inode(ino)?) {
            Some(Kind::File) => Ok(ino),
            Some(Kind::Dir) => Err(Error::IsADirectory(path.to_vec())),
            _ => Err(Error::Invalid(format!(
                "{} is not a regular file",
                Shown(path)
            ))),
        }
    }

    /// Replace the data of file `path` by `content`, keeping its inode and metadata.
    pub fn replace_content(&mut self, path: &[u8], content: &mut dyn Content) -> Result<()> {
        let ino = self.require_file(path)?;
        let mut inode = self.free_blocks(ino, self.read_inode(ino)?)?;
        inode.i_size = 0;
        inode.i_size_high = 0;
        self.write_inode(ino, &mut inode)?;
        self.write_content(ino, content, 0).map(|_| ())
    }

    /// Cut or extend (with a hole) file `path` to `size` bytes.
    pub fn truncate(&mut self, path: &[u8], size: u64) -> Result<()> {
        let ino = self.require_file(path)?;
        let mut file: sys::ext2_file_t = std::ptr::null_mut();
        // SAFETY: a live filesystem; `file` receives a handle closed below.
        self.call("opening a file", unsafe {
            sys::ext2fs_file_open(self.fs, ino, sys::EXT2_FILE_WRITE as c_int, &mut file)
        })?;
        // SAFETY: the open handle.
        let set = self.call("truncating", unsafe {
            sys::ext2fs_file_set_size2(file, size as i64)
        });
        // SAFETY: closes the handle once.
        let closed = self.call("writing a file", unsafe { sys::ext2fs_file_close(file) });
        set?;
        closed
    }

    /// Add `content` at the end of file `path`.
    pub fn append(&mut self, path: &[u8], content: &mut dyn Content) -> Result<()> {
        let ino = self.require_file(path)?;
        let inode = self.read_inode(ino)?;
        let size = u64::from(inode.i_size) | (u64::from(inode.i_size_high) << 32);
        self.write_content(ino, content, size).map(|_| ())
    }
}
