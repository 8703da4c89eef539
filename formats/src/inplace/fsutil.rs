//! File-system steps shared by apply and recover: opening and locking the image, syncing
//! a file's directory, writing at an offset with a message naming the file.

use super::InPlaceError;
use crate::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Open `image` for reading and writing and take an OFD write lock on the whole file,
/// without waiting: [`InPlaceError::ImageBusy`] when another open file description holds any
/// lock on it (QEMU holds OFD read locks on bytes of the images it has open). The lock
/// lasts as long as the returned file.
pub(super) fn open_locked(image: &Path) -> Result<File, InPlaceError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .map_err(|e| Error::io(format!("opening {} for writing", image.display()), e))?;
    let whole_file = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    match fcntl(&file, FcntlArg::F_OFD_SETLK(&whole_file)) {
        Ok(_) => Ok(file),
        Err(Errno::EAGAIN | Errno::EACCES) => Err(InPlaceError::ImageBusy {
            path: image.to_path_buf(),
        }),
        Err(e) => Err(Error::io(
            format!("locking {}", image.display()),
            std::io::Error::from(e),
        )
        .into()),
    }
}

/// Make the directory entries of `path`'s directory durable (a created or removed file).
pub(super) fn sync_dir_of(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing the directory {}", dir.display()), e))
}

/// `sync_all` with a message naming the file.
pub(super) fn sync(file: &File, path: &Path) -> Result<()> {
    file.sync_all()
        .map_err(|e| Error::io(format!("syncing {}", path.display()), e))
}

/// `write_all_at` with a message naming the file.
pub(super) fn write_at(file: &File, path: &Path, buf: &[u8], offset: u64) -> Result<()> {
    file.write_all_at(buf, offset).map_err(|e| {
        Error::io(
            format!(
                "writing {} bytes at {offset} of {}",
                buf.len(),
                path.display()
            ),
            e,
        )
    })
}

/// `read_exact_at` with a message naming the file.
pub(super) fn read_at(file: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| {
        Error::io(
            format!(
                "reading {} bytes at {offset} of {}",
                buf.len(),
                path.display()
            ),
            e,
        )
    })
}

/// Set the length of `file` with a message naming it.
pub(super) fn set_len(file: &File, path: &Path, len: u64) -> Result<()> {
    file.set_len(len).map_err(|e| {
        Error::io(
            format!("setting the length of {} to {len}", path.display()),
            e,
        )
    })
}
