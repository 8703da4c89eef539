//! A regular file inside an ext filesystem seen as a read-only [`BlockDevice`]: lets every
//! reader that works on devices (the initrd walker, the sniffers) read a file of an image
//! in place, without extracting it.

use super::file::FileReader;
use super::fs::ExtFs;
use super::inode::{Inode, InodeKind};
use crate::block::{check_range, BlockDevice, Extent};
use crate::{Error, Result};
use std::sync::Arc;

/// The contents of inode `ino` of an ext filesystem, read-only.
pub struct ExtFileDevice<D: BlockDevice> {
    fs: Arc<ExtFs<D>>,
    inode: Inode,
    size: u64,
}

impl<D: BlockDevice> ExtFileDevice<D> {
    /// The regular file `ino` of `fs` (symlinks are not followed: resolve them first).
    pub fn new(fs: Arc<ExtFs<D>>, ino: u32) -> Result<Self> {
        let inode = fs.inode(ino)?;
        if inode.kind() != InodeKind::File {
            return Err(Error::InvalidArgument(format!(
                "ext: inode {ino} is not a regular file (mode {:o})",
                inode.mode
            )));
        }
        let size = inode.size;
        Ok(ExtFileDevice { fs, inode, size })
    }

    /// The regular file at absolute `path` of `fs`.
    pub fn open_path(fs: Arc<ExtFs<D>>, path: &[u8]) -> Result<Self> {
        let ino = fs.lookup(path)?;
        Self::new(fs, ino).map_err(|e| match e {
            Error::InvalidArgument(m) => {
                Error::InvalidArgument(format!("{}: {m}", String::from_utf8_lossy(path)))
            }
            other => other,
        })
    }

    /// The inode number of the file.
    pub fn ino(&self) -> u32 {
        self.inode.ino
    }

    fn reader(&self) -> Result<FileReader<'_, D>> {
        FileReader::new(&self.fs, self.inode.clone())
    }
}

impl<D: BlockDevice> BlockDevice for ExtFileDevice<D> {
    fn len(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.size, offset, buf.len() as u64)?;
        let n = self.reader()?.read_at(buf, offset)?;
        if n != buf.len() {
            return Err(Error::corrupt(format!(
                "ext: inode {}: read {n} of {} bytes at offset {offset}",
                self.inode.ino,
                buf.len()
            )));
        }
        Ok(())
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        check_range(self.size, offset, len)?;
        let end = offset + len;
        let mut out = Vec::new();
        for e in self.reader()?.extents()? {
            let s = e.offset.max(offset);
            let t = e.end().min(end);
            if s < t {
                crate::block::push_extent(
                    &mut out,
                    Extent {
                        offset: s,
                        len: t - s,
                        kind: e.kind,
                    },
                );
            }
        }
        Ok(out)
    }

    fn format_name(&self) -> &'static str {
        "ext file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::RawFile;
    use std::process::Command;

    fn have(tool: &str) -> bool {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(tool).is_file())
    }

    #[test]
    fn reads_a_file_of_an_mke2fs_image() {
        if !have("mke2fs") {
            eprintln!("SKIPPED reads_a_file_of_an_mke2fs_image: mke2fs is not installed");
            assert!(std::env::var_os("CI").is_none_or(|v| v != "true"));
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("boot")).unwrap();
        // Data with a hole in the middle and an odd length.
        let mut data: Vec<u8> = (0..300_001u32).map(|i| (i * 7 % 251) as u8).collect();
        data[100_000..200_000].fill(0);
        std::fs::write(root.join("boot/initrd.img"), &data).unwrap();
        std::fs::create_dir(root.join("d")).unwrap();
        let img = dir.path().join("fs.img");
        let mke2fs = ["/usr/sbin/mke2fs", "/sbin/mke2fs"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .unwrap();
        let st = Command::new(mke2fs)
            .args(["-q", "-t", "ext4", "-d"])
            .arg(&root)
            .arg(&img)
            .arg("8M")
            .status()
            .unwrap();
        assert!(st.success());
        let fs = Arc::new(ExtFs::open(RawFile::open(&img).unwrap()).unwrap());
        let dev = ExtFileDevice::open_path(fs.clone(), b"/boot/initrd.img").unwrap();
        assert_eq!(dev.len(), data.len() as u64);
        let mut got = vec![0u8; data.len()];
        dev.read_at(&mut got, 0).unwrap();
        assert_eq!(got, data);
        let mut tail = [0u8; 11];
        dev.read_at(&mut tail, data.len() as u64 - 11).unwrap();
        assert_eq!(&tail[..], &data[data.len() - 11..]);
        assert!(dev.read_at(&mut tail, data.len() as u64 - 5).is_err());
        let ext = dev.extents(0, dev.len()).unwrap();
        assert_eq!(ext.iter().map(|e| e.len).sum::<u64>(), dev.len());
        assert!(ExtFileDevice::open_path(fs.clone(), b"/d").is_err());
        assert!(ExtFileDevice::open_path(fs, b"/nope").is_err());
    }
}
