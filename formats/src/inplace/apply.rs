//! Applying a write plan to an image file under an undo log.
//!
//! Order of events (each made durable before the next starts):
//! 1. the image is opened and locked, the plan checked against it, `IMAGE.subroot-undo`
//!    created (refused when one is there: an earlier edit must be recovered first);
//! 2. the old bytes of every planned write below the old length are streamed from the image
//!    into the log, the trailer written, the log and then its directory synced;
//! 3. the plan is written (guest data read from the edited device), the file gets its new
//!    length and is synced;
//! 4. the log is removed and the directory synced.
//!
//! A failure before 3 removes the log (the image was not touched); a failure during 3 rolls
//! the image back at once from the log, and leaves the log for `recover` if even that fails.

use super::fsutil;
use super::log::{record_buf, LogHeader, LogWriter, MAX_RECORD};
use super::recover::roll_back;
use super::{undo_log_path, InPlaceError};
use crate::block::{BlockDevice, PlannedWrite, WritePlan};
use crate::{Error, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A point of an in-place edit that has just been passed (for tests that stop there, and
/// for progress).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The first `log_len` bytes of the undo log are written (not yet durable).
    LogWritten { log_len: u64 },
    /// The complete log and its directory entry are durable; the image is still untouched.
    LogDurable,
    /// `done` bytes of the plan's write number `index` are in the image.
    ImageWrite { index: usize, done: u64 },
    /// The image has its final length.
    LengthSet,
    /// The image is synced: the edit is durable.
    ImageDurable,
    /// The log is removed, durably: the edit is complete.
    LogRemoved,
}

/// What an in-place edit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyStats {
    /// Bytes written into the image.
    pub bytes_written: u64,
    /// Old bytes saved in the undo log.
    pub bytes_saved: u64,
    /// The length of the undo log.
    pub log_len: u64,
    /// The image's length before and after.
    pub old_len: u64,
    pub new_len: u64,
}

/// Apply `plan` to the file `image`, reading the data of its `Guest` writes from `edited`
/// (the edited virtual disk, typically an overlay over that same image opened read-only),
/// crash safe under an undo log (see the module comment). Errors:
/// [`InPlaceError::ImageBusy`] when another program holds a lock on the image,
/// [`InPlaceError::UndoPending`] when an earlier edit left its log, and
/// [`Error::InvalidArgument`] (in [`InPlaceError::Format`]) for a plan that does not fit.
pub fn apply(
    image: &Path,
    plan: &WritePlan,
    edited: &dyn BlockDevice,
) -> Result<ApplyStats, InPlaceError> {
    apply_with(image, plan, edited, &mut |_| {})
}

/// [`apply`], calling `hook` after each [`Step`].
pub fn apply_with(
    image: &Path,
    plan: &WritePlan,
    edited: &dyn BlockDevice,
    hook: &mut dyn FnMut(Step),
) -> Result<ApplyStats, InPlaceError> {
    let file = fsutil::open_locked(image)?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("reading the status of {}", image.display()), e))?;
    if !meta.is_file() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a regular file; only image files are edited in place",
            image.display()
        ))
        .into());
    }
    let old_len = meta.len();
    check_plan(image, plan, edited)?;
    let log_path = undo_log_path(image);
    let log = match OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&log_path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(InPlaceError::UndoPending {
                image: image.to_path_buf(),
                log: log_path,
            })
        }
        Err(e) => return Err(Error::io(format!("creating {}", log_path.display()), e).into()),
    };
    let header = LogHeader {
        dev: meta.dev(),
        ino: meta.ino(),
        old_len,
        new_len: plan.new_len,
    };
    let mut stats = ApplyStats {
        old_len,
        new_len: plan.new_len,
        ..ApplyStats::default()
    };
    let saved = save_old_bytes(&file, image, &log, &log_path, &header, plan, hook).and_then(
        |(saved, len)| {
            fsutil::sync(&log, &log_path)?;
            fsutil::sync_dir_of(&log_path)?;
            Ok((saved, len))
        },
    );
    match saved {
        Ok((saved, len)) => (stats.bytes_saved, stats.log_len) = (saved, len),
        Err(e) => {
            // The image is untouched: the log is just in the way.
            drop(log);
            let _ = std::fs::remove_file(&log_path);
            return Err(e.into());
        }
    }
    hook(Step::LogDurable);
    let written = write_plan(&file, image, plan, edited, hook).and_then(|n| {
        fsutil::set_len(&file, image, plan.new_len)?;
        hook(Step::LengthSet);
        fsutil::sync(&file, image)?;
        hook(Step::ImageDurable);
        Ok(n)
    });
    match written {
        Ok(n) => stats.bytes_written = n,
        Err(e) => {
            // Put the old image back now; if that fails too, the log stays for `recover`.
            let records = stats_records(&log, &log_path);
            if let Some(records) = records {
                let _ = roll_back(&file, image, &log, &log_path, &header, records);
            }
            return Err(e.into());
        }
    }
    drop(log);
    std::fs::remove_file(&log_path)
        .map_err(|e| Error::io(format!("removing {}", log_path.display()), e))?;
    fsutil::sync_dir_of(&log_path)?;
    hook(Step::LogRemoved);
    Ok(stats)
}

/// The record count of the complete log `log` (None when it cannot be read back).
fn stats_records(log: &File, log_path: &Path) -> Option<u64> {
    match super::log::check(log, log_path) {
        Ok(super::log::LogState::Complete { records, .. }) => Some(records),
        _ => None,
    }
}

/// Refuse a plan whose writes go beyond its new length, that reads beyond the edited device, or that has guest data after metadata (guest data is
/// read through the old metadata while the plan is written).
fn check_plan(image: &Path, plan: &WritePlan, edited: &dyn BlockDevice) -> Result<()> {
    let bad = |what: String| {
        Err(Error::InvalidArgument(format!(
            "the in-place update of {} {what}",
            image.display()
        )))
    };
    let mut metadata_seen = false;
    for w in &plan.writes {
        if w.offset()
            .checked_add(w.len())
            .is_none_or(|e| e > plan.new_len)
        {
            return bad(format!(
                "writes {} bytes at {}, beyond its new length {}",
                w.len(),
                w.offset(),
                plan.new_len
            ));
        }
        metadata_seen |= matches!(w, PlannedWrite::Bytes { .. });
        if let PlannedWrite::Guest { guest, len, .. } = w {
            if metadata_seen {
                return bad(format!(
                    "writes guest data at {} after metadata",
                    w.offset()
                ));
            }
            if guest.checked_add(*len).is_none_or(|e| e > edited.len()) {
                return bad(format!(
                    "reads {len} bytes at {guest} of a {}-byte disk",
                    edited.len()
                ));
            }
        }
    }
    Ok(())
}

/// Write the log: the old bytes below `header.old_len` of every planned write and, when the
/// file shrinks, those from `header.new_len` to `header.old_len`, streamed from the image. Returns (old bytes saved, log length).
fn save_old_bytes(
    file: &File,
    image: &Path,
    log: &File,
    log_path: &Path,
    header: &LogHeader,
    plan: &WritePlan,
    hook: &mut dyn FnMut(Step),
) -> Result<(u64, u64)> {
    let mut w = LogWriter::new(log, log_path, header);
    let mut saved = 0;
    // The old bytes under every planned write and, for a plan that shrinks the file (an
    // initrd whose appended segment is replaced by a shorter one), the bytes cut off, so
    // that rolling back restores them.
    let ranges: Vec<(u64, u64)> = plan
        .writes
        .iter()
        .map(|pw| (pw.offset(), (pw.offset() + pw.len()).min(header.old_len)))
        .chain([(header.new_len, header.old_len)])
        .collect();
    let largest = ranges.iter().map(|(s, e)| e.saturating_sub(*s)).max();
    let mut buf = record_buf(largest.unwrap_or(0));
    for &(start, end) in &ranges {
        let mut pos = start;
        while pos < end {
            let n = (end - pos).min(MAX_RECORD) as usize;
            fsutil::read_at(file, image, &mut buf[..n], pos)?;
            if let Some(log_len) = w.record(pos, &buf[..n])? {
                hook(Step::LogWritten { log_len });
            }
            saved += n as u64;
            pos += n as u64;
        }
    }
    let len = w.finish()?;
    hook(Step::LogWritten { log_len: len });
    Ok((saved, len))
}

/// Write the plan into the image, in order; returns the bytes written.
fn write_plan(
    file: &File,
    image: &Path,
    plan: &WritePlan,
    edited: &dyn BlockDevice,
    hook: &mut dyn FnMut(Step),
) -> Result<u64> {
    let largest_guest = plan.writes.iter().map(|pw| match pw {
        PlannedWrite::Guest { len, .. } => *len,
        PlannedWrite::Bytes { .. } => 0,
    });
    let mut buf = record_buf(largest_guest.max().unwrap_or(0));
    let mut total = 0;
    for (index, pw) in plan.writes.iter().enumerate() {
        match pw {
            PlannedWrite::Bytes { offset, data } => {
                fsutil::write_at(file, image, data, *offset)?;
                hook(Step::ImageWrite {
                    index,
                    done: data.len() as u64,
                });
            }
            PlannedWrite::Guest { offset, guest, len } => {
                let mut done = 0;
                while done < *len {
                    let n = (len - done).min(MAX_RECORD) as usize;
                    edited.read_at(&mut buf[..n], guest + done)?;
                    fsutil::write_at(file, image, &buf[..n], offset + done)?;
                    done += n as u64;
                    hook(Step::ImageWrite { index, done });
                }
            }
        }
        total += pw.len();
    }
    Ok(total)
}
