//! What can go wrong with an in-place edit besides the format errors of this crate: the
//! refusals a caller matches on (the image is in use, an earlier edit was interrupted, the
//! undo log belongs to another file).

use std::path::PathBuf;

/// An in-place edit or recovery refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum InPlaceError {
    /// Another program holds a lock on the image (a running VM, another subroot).
    #[error(
        "{} is in use: another program (a running virtual machine, another subroot) holds a \
         lock on it",
        path.display()
    )]
    ImageBusy { path: PathBuf },
    /// An in-place edit of the image was interrupted and its undo log is still there.
    #[error(
        "an interrupted in-place edit of {} left its undo log {}; run `subroot recover {}` \
         to roll it back first",
        image.display(),
        log.display(),
        image.display()
    )]
    UndoPending { image: PathBuf, log: PathBuf },
    /// The undo log beside the image was not written for this file (a copy of the image
    /// and its log, or another file put in its place); nothing was changed.
    #[error(
        "the undo log {} was not written for {} ({why}); nothing was changed. If this is a \
         copy, recover the original image, or move the log away",
        log.display(),
        image.display()
    )]
    UndoLogMismatch {
        image: PathBuf,
        log: PathBuf,
        why: String,
    },
    /// An I/O error, a bad plan ([`crate::Error::InvalidArgument`]), a damaged log
    /// ([`crate::Error::Corrupt`]), ...
    #[error(transparent)]
    Format(#[from] crate::Error),
}
