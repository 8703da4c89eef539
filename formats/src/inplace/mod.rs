//! `--in-place` edits: a [`WritePlan`](crate::block::WritePlan) applied to the image file
//! itself, crash safe through an undo log.
//!
//! Before the first byte of the image changes, the old bytes of every range the plan
//! overwrites or cuts off (and the old file length) are written to `IMAGE.subroot-undo` beside it,
//! which is made durable with its directory. Then the plan is written, the file gets its
//! final length and is synced, and the log is removed. A log that is still there means an
//! edit was interrupted: [`recover`] puts the old bytes back and gives the file its old
//! length (a log without its trailer was never complete, so the image was never touched
//! and the log is just removed). Either way the image is the old one or the new one,
//! never a mix. The image is locked (an OFD write lock on the whole file) for both, which
//! also detects a running QEMU, as QEMU holds OFD locks on the images it uses.
//!
//! - [`apply`] / [`apply_with`]: write a plan under an undo log;
//! - [`recover`]: roll an interrupted edit back;
//! - [`pending`]: is there an interrupted edit to roll back?

mod apply;
mod error;
mod fsutil;
mod log;
mod recover;

pub use apply::{apply, apply_with, ApplyStats, Step};
pub use error::InPlaceError;
pub use recover::{recover, RecoverOutcome};

use std::path::{Path, PathBuf};

/// The undo log of `image`: `IMAGE.subroot-undo`, in the same directory.
pub fn undo_log_path(image: &Path) -> PathBuf {
    let mut name = image.as_os_str().to_owned();
    name.push(".subroot-undo");
    PathBuf::from(name)
}

/// The undo log of an interrupted in-place edit of `image`, if there is one (run
/// [`recover`] before anything else reads or writes the image).
pub fn pending(image: &Path) -> Option<PathBuf> {
    let log = undo_log_path(image);
    std::fs::symlink_metadata(&log).is_ok().then_some(log)
}
