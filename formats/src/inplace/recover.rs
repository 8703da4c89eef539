//! Rolling an interrupted in-place edit back from its undo log.
//!
//! The rule: a complete log (its trailer checks out) is applied — its old bytes written
//! back, the file cut to its old length, synced — and then removed; an incomplete log means
//! the edit never touched the image and is only removed. Writing old bytes back and cutting
//! the length are idempotent, so a crash during recovery is recovered by recovering again.

use super::fsutil;
use super::log::{self, LogHeader, LogState};
use super::{undo_log_path, InPlaceError};
use crate::{Error, Result};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What [`recover`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoverOutcome {
    /// There was no undo log: no interrupted edit.
    NothingToDo,
    /// The interrupted edit was undone: `bytes` old bytes written back and the old length
    /// restored. The image is as it was before the edit.
    RolledBack { bytes: u64 },
    /// The log was never completed, so the image was never touched; the log was removed.
    DiscardedIncompleteLog,
}

/// Roll back an interrupted in-place edit of `image`, if there is one. Takes the image's
/// lock ([`InPlaceError::ImageBusy`] when an edit or a VM is running on it). A log that was not
/// written for this file (another inode, a length the edit cannot have left) is refused
/// with [`InPlaceError::UndoLogMismatch`] and nothing is changed.
///
/// The device number is not compared: it may change across reboots (device-mapper, some
/// network and FUSE file systems), and a reboot is when recovery is needed most.
pub fn recover(image: &Path) -> Result<RecoverOutcome, InPlaceError> {
    let log_path = undo_log_path(image);
    if std::fs::symlink_metadata(&log_path).is_err() {
        return Ok(RecoverOutcome::NothingToDo);
    }
    let file = fsutil::open_locked(image)?;
    // Under the lock: an edit that was running may have finished meanwhile.
    let log = match File::open(&log_path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(RecoverOutcome::NothingToDo)
        }
        Err(e) => return Err(Error::io(format!("opening {}", log_path.display()), e).into()),
    };
    match log::check(&log, &log_path)? {
        LogState::Incomplete => {
            drop(log);
            remove_log(&log_path)?;
            Ok(RecoverOutcome::DiscardedIncompleteLog)
        }
        LogState::Complete { header, records } => {
            check_belongs(&file, image, &log_path, &header)?;
            let bytes = roll_back(&file, image, &log, &log_path, &header, records)?;
            Ok(RecoverOutcome::RolledBack { bytes })
        }
    }
}

/// Refuse a log written for another file.
fn check_belongs(
    file: &File,
    image: &Path,
    log_path: &Path,
    h: &LogHeader,
) -> Result<(), InPlaceError> {
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("reading the status of {}", image.display()), e))?;
    let mismatch = |why: String| InPlaceError::UndoLogMismatch {
        image: image.to_path_buf(),
        log: log_path.to_path_buf(),
        why,
    };
    if meta.ino() != h.ino {
        return Err(mismatch(format!(
            "it was written for inode {}, the image is inode {}",
            h.ino,
            meta.ino()
        )));
    }
    let len = meta.len();
    if len < h.old_len.min(h.new_len) || len > h.old_len.max(h.new_len) {
        return Err(mismatch(format!(
            "the edit went from {} to {} bytes, the image has {len}",
            h.old_len, h.new_len
        )));
    }
    Ok(())
}

/// Write the old bytes of a complete log back into the image, restore its old length,
/// sync it, then remove the log durably. Returns the bytes written back.
pub(super) fn roll_back(
    file: &File,
    image: &Path,
    log: &File,
    log_path: &Path,
    header: &LogHeader,
    records: u64,
) -> Result<u64> {
    let mut bytes = 0;
    log::for_each_record(log, log_path, records, |offset, old| {
        bytes += old.len() as u64;
        fsutil::write_at(file, image, old, offset)
    })?;
    fsutil::set_len(file, image, header.old_len)?;
    fsutil::sync(file, image)?;
    remove_log(log_path)?;
    Ok(bytes)
}

fn remove_log(log_path: &Path) -> Result<()> {
    std::fs::remove_file(log_path)
        .map_err(|e| Error::io(format!("removing {}", log_path.display()), e))?;
    fsutil::sync_dir_of(log_path)
}
