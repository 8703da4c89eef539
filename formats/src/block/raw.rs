//! A plain file (or block device node) as a [`BlockDevice`]: positional reads and writes,
//! and the data/hole map from `SEEK_DATA`/`SEEK_HOLE`.

use super::{check_range, push_extent, BlockDevice, Extent, ExtentKind};
use crate::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A raw image file.
#[derive(Debug)]
pub struct RawFile {
    file: File,
    path: PathBuf,
    len: u64,
    writable: bool,
}

impl RawFile {
    /// Open an existing file read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file =
            File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        Self::from_file(file, path, false)
    }

    /// Open an existing file for reading and writing (its length does not change).
    pub fn open_rw(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(format!("opening {} for writing", path.display()), e))?;
        Self::from_file(file, path, true)
    }

    /// Create (or truncate) a sparse file of `len` bytes, readable and writable.
    pub fn create(path: impl AsRef<Path>, len: u64) -> Result<Self> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        file.set_len(len).map_err(|e| {
            Error::io(
                format!("setting the size of {} to {len}", path.display()),
                e,
            )
        })?;
        Self::from_file(file, path, true)
    }

    /// Wrap an already-open file. `path` is used in messages only.
    pub fn from_file(file: File, path: &Path, writable: bool) -> Result<Self> {
        let len = file_len(&file)
            .map_err(|e| Error::io(format!("reading the size of {}", path.display()), e))?;
        Ok(RawFile {
            file,
            path: path.to_path_buf(),
            len,
            writable,
        })
    }

    /// The path this device was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Bytes actually allocated on the host filesystem.
    pub fn allocated_bytes(&self) -> Result<u64> {
        use std::os::unix::fs::MetadataExt;
        let md = self.file.metadata().map_err(|e| {
            Error::io(
                format!("reading the metadata of {}", self.path.display()),
                e,
            )
        })?;
        Ok(md.blocks() * 512)
    }
}

/// The length of a regular file or of a block device node (whose metadata length is 0).
pub(crate) fn file_len(file: &File) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let md = file.metadata()?;
    if md.is_file() {
        return Ok(md.len());
    }
    let mut f = file;
    let len = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    Ok(len)
}

impl BlockDevice for RawFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.len, offset, buf.len() as u64)?;
        self.file.read_exact_at(buf, offset).map_err(|e| {
            Error::io(
                format!(
                    "reading {} bytes at offset {offset} of {}",
                    buf.len(),
                    self.path.display()
                ),
                e,
            )
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if !self.writable {
            return Err(Error::ReadOnly);
        }
        check_range(self.len, offset, buf.len() as u64)?;
        self.file.write_all_at(buf, offset).map_err(|e| {
            Error::io(
                format!(
                    "writing {} bytes at offset {offset} of {}",
                    buf.len(),
                    self.path.display()
                ),
                e,
            )
        })
    }

    fn flush(&self) -> Result<()> {
        if self.writable {
            self.file
                .sync_all()
                .map_err(|e| Error::io(format!("syncing {}", self.path.display()), e))?;
        }
        Ok(())
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        check_range(self.len, offset, len)?;
        let end = offset + len;
        let mut out = Vec::new();
        let mut pos = offset;
        while pos < end {
            let data = match seek_data(&self.file, pos) {
                Ok(Some(d)) => d.min(end),
                Ok(None) => end,
                // The filesystem does not support SEEK_DATA: everything is data.
                Err(_) => {
                    push_extent(
                        &mut out,
                        Extent {
                            offset: pos,
                            len: end - pos,
                            kind: ExtentKind::Data,
                        },
                    );
                    break;
                }
            };
            push_extent(
                &mut out,
                Extent {
                    offset: pos,
                    len: data - pos,
                    kind: ExtentKind::Zero,
                },
            );
            if data >= end {
                break;
            }
            let hole = match seek_hole(&self.file, data) {
                Ok(h) => h.min(end),
                Err(_) => end,
            };
            push_extent(
                &mut out,
                Extent {
                    offset: data,
                    len: hole - data,
                    kind: ExtentKind::Data,
                },
            );
            pos = hole;
        }
        Ok(out)
    }

    fn format_name(&self) -> &'static str {
        "raw"
    }
}

/// `SEEK_DATA` from `pos`: `Ok(None)` when there is no data after `pos`.
fn seek_data(file: &File, pos: u64) -> io::Result<Option<u64>> {
    match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(pos)) {
        Ok(p) => Ok(Some(p)),
        Err(rustix::io::Errno::NXIO) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `SEEK_HOLE` from `pos` (the end of the file counts as a hole).
fn seek_hole(file: &File, pos: u64) -> io::Result<u64> {
    rustix::fs::seek(file, rustix::fs::SeekFrom::Hole(pos)).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_map_and_io() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.raw");
        let dev = RawFile::create(&p, 16 << 20).unwrap();
        dev.write_at(&[7u8; 4096], 8 << 20).unwrap();
        let mut b = [0u8; 4096];
        dev.read_at(&mut b, 8 << 20).unwrap();
        assert_eq!(b, [7u8; 4096]);
        let ext = dev.extents(0, 16 << 20).unwrap();
        // The written block is data; most of the rest is a hole (filesystems may round).
        assert!(ext.iter().any(|e| e.kind == ExtentKind::Data
            && e.offset <= 8 << 20
            && e.end() >= (8 << 20) + 4096));
        assert!(ext.iter().any(|e| e.kind == ExtentKind::Zero));
        assert_eq!(ext.iter().map(|e| e.len).sum::<u64>(), 16 << 20);
        assert!(dev.read_at(&mut b, (16 << 20) - 1).is_err());
        let ro = RawFile::open(&p).unwrap();
        assert!(matches!(ro.write_at(&b, 0), Err(Error::ReadOnly)));
    }
}
