//! The editor's error type: one variant per thing a caller may want to tell apart.

use std::fmt;

/// A path as the user would read it (bytes, shown lossily).
pub struct Shown<'a>(pub &'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", String::from_utf8_lossy(self.0))
    }
}

/// Everything the editor can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The filesystem uses something the editor does not write correctly; nothing was
    /// written. `feature` names it as `tune2fs -l`/`mke2fs -O` do (`inline_data`, ...).
    #[error("the filesystem uses {feature}, which the in-place ext editor does not handle (nothing was written)")]
    Unsupported { feature: String },
    /// [`crate::Ext2Fs::grow`] cannot grow this filesystem without moving blocks, or
    /// does not handle its layout; `found` says what was found. Nothing was written.
    #[error("cannot grow {what} in place: {found} (nothing was written)")]
    GrowRefused { what: String, found: String },
    /// The installed libext2fs is older than the editor needs.
    #[error("libext2fs {found} is installed; the ext editor needs 1.46 or newer (htree-aware ext2fs_link)")]
    LibraryTooOld { found: String },
    #[error("{} does not exist", Shown(.0))]
    NotFound(Vec<u8>),
    #[error("{} already exists", Shown(.0))]
    Exists(Vec<u8>),
    #[error("directory {} is not empty", Shown(.0))]
    NotEmpty(Vec<u8>),
    #[error("{} is not a directory", Shown(.0))]
    NotADirectory(Vec<u8>),
    #[error("{} is a directory", Shown(.0))]
    IsADirectory(Vec<u8>),
    /// The request cannot be carried out as asked (a bad path, moving a directory into
    /// itself, a size that does not match the content, too many links).
    #[error("{0}")]
    Invalid(String),
    /// The filesystem's metadata is inconsistent (found by libext2fs or by our check).
    #[error("{0}")]
    Corrupt(String),
    /// The block device failed; the original error.
    #[error(transparent)]
    Device(#[from] subroot_formats::Error),
    /// libext2fs reported an error: what we asked it to do, its code and message.
    #[error("libext2fs {op}: {message} (error {code})")]
    Lib {
        op: String,
        code: i64,
        message: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
