//! The error type of this crate: what driving e2fsprogs can fail with, in variants callers
//! match on. A codec's error ([`subroot_formats::Error`]) and a program's failure
//! ([`ToolError`]) are carried whole, each saying its own story once.

use std::io;
use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything building, editing or checking an ext filesystem with e2fsprogs can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the input tree or a filesystem failed in a codec (corrupt or unsupported
    /// input): its class is the codec's. (A codec's I/O error becomes [`Error::Io`].)
    #[error(transparent)]
    Format(subroot_formats::Error),
    /// An e2fsprogs program is missing, too old, could not be started, or failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// An operating-system error (the work directory, a device, a pipe to a program), with
    /// what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The tree or the filesystem holds something the built filesystem, or the programs
    /// building it, cannot hold (a name with a line break for debugfs, a time out of the
    /// inode's range, an unknown filesystem feature).
    #[error("{0}")]
    Unsupported(String),
    /// The mke2fs cannot build a filesystem from a tar archive, and that was asked for.
    #[error(
        "{} ({version}) cannot build from a tar archive (`mke2fs -d -` needs e2fsprogs \
         1.47.1 or newer with libarchive)",
        mke2fs.display()
    )]
    NoTarInput { mke2fs: PathBuf, version: String },
    /// The in-place editor cannot carry out this edit (a feature debugfs cannot express
    /// cleanly, an input e2fsck already finds fault with); rebuilding the filesystem can.
    #[error("{0}")]
    CannotEditInPlace(String),
    /// A filesystem this crate wrote does not hold what was intended (its own final check
    /// failed; the input is not at fault and nothing is kept).
    #[error("{0}")]
    VerifyFailed(String),
    /// A work file this crate wrote itself (the record of the intended tree) reads back
    /// damaged.
    #[error("{0}")]
    Scratch(String),
    /// The caller asked for something impossible (a size too small, a bad UUID).
    #[error("{0}")]
    InvalidArgument(String),
}

impl Error {
    /// Wrap an I/O error with what was being done; an error of a codec that travelled
    /// through `std::io` comes back as itself (see [`subroot_formats::Error::io`]).
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::from(subroot_formats::Error::io(context, source))
    }

    /// Shorthand for [`Error::Unsupported`].
    pub fn unsupported(msg: impl Into<String>) -> Self {
        Error::Unsupported(msg.into())
    }
}

impl From<subroot_formats::Error> for Error {
    /// A codec's error (its I/O errors as [`Error::Io`]), or one of ours carried through a
    /// codec's callback (see below) taken back out whole.
    fn from(e: subroot_formats::Error) -> Self {
        match e {
            subroot_formats::Error::Io { context, source } => {
                if source.get_ref().is_some_and(|inner| inner.is::<Error>()) {
                    if let Some(Ok(ours)) = source.into_inner().map(|b| b.downcast::<Error>()) {
                        return *ours;
                    }
                    unreachable!("checked to hold an Error");
                }
                Error::Io { context, source }
            }
            other => Error::Format(other),
        }
    }
}

impl From<Error> for subroot_formats::Error {
    /// Carries one of our errors through a codec's callback (a tree walk's visitor returns
    /// the codec's error type); `From<subroot_formats::Error> for Error` takes it back out
    /// unchanged, so a `VerifyFailed` raised inside a walk is still one after it.
    fn from(e: Error) -> Self {
        match e {
            Error::Format(f) => f,
            other => subroot_formats::Error::Io {
                context: "subroot-e2fs".to_string(),
                source: io::Error::other(other),
            },
        }
    }
}

/// What can go wrong with an external program.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The program is not installed where we looked.
    #[error("`{name}` was not found on PATH, /sbin or /usr/sbin (install e2fsprogs{hint})")]
    NotFound { name: String, hint: String },
    /// The program is older than needed.
    #[error("{name} {found} is too old: {need} or newer is needed")]
    TooOld {
        name: String,
        found: String,
        need: String,
    },
    /// The program could not be started.
    #[error("cannot run {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The program ran and reported failure.
    #[error("{what} failed ({status}): {stderr}")]
    Failed {
        what: String,
        status: String,
        stderr: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_a_codec_error_they_carry() {
        let through = io::Error::new(
            io::ErrorKind::InvalidData,
            subroot_formats::Error::corrupt("bad magic"),
        );
        match Error::io("reading /f", through) {
            Error::Format(subroot_formats::Error::Corrupt(m)) => {
                assert_eq!(m, "reading /f: bad magic")
            }
            e => panic!("{e:?}"),
        }
        let plain = io::Error::new(io::ErrorKind::NotFound, "gone");
        assert!(matches!(Error::io("opening", plain), Error::Io { .. }));
    }

    #[test]
    fn our_errors_survive_a_codec_callback() {
        let carried = subroot_formats::Error::from(Error::VerifyFailed("differs".into()));
        match Error::from(carried) {
            Error::VerifyFailed(m) => assert_eq!(m, "differs"),
            e => panic!("{e:?}"),
        }
        let codec = subroot_formats::Error::corrupt("bad");
        let back = Error::from(subroot_formats::Error::from(Error::from(codec)));
        assert!(matches!(
            back,
            Error::Format(subroot_formats::Error::Corrupt(_))
        ));
    }
}
