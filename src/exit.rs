//! Exit statuses: the one mapping from an error to the status `subroot` exits with, and its
//! description for `--help`. Errors are classified by their typed variants (the libraries'
//! [`subroot_formats::Error`], [`subroot_e2fs::Error`] and [`subroot_libext2fs::Error`],
//! and this binary's
//! [`InputError`]), never by their text. A closed stdout (141) is decided in `main` from
//! [`crate::stdout::StdoutClosed`].

use subroot_e2fs::Error as E2;
use subroot_formats::inplace::InPlaceError;
use subroot_formats::Error as F;
use subroot_libext2fs::Error as E;

/// The EXIT STATUS section of `subroot --help` (README.md "Exit status" says the same).
pub const HELP: &str = "EXIT STATUS:
  0    success
  1    the operation failed: an I/O error, a missing file, a tool it runs (e2fsprogs) is
       missing or failed, an existing output without --force, a bad option value
  2    usage error (unknown option, missing argument)
  3    the input is invalid (corrupt, truncated) or is something subroot does not read:
       a VMDK/VDI/QED/... container, a BSD/Sun/SGI/Atari disk label, a filesystem
       other than ext2/3/4, FAT, XFS and btrfs (swap, squashfs, ...), no filesystem at all,
       an unsupported feature (encryption, an unknown incompatible feature)
  4    subroot's own check of what it wrote failed (the output did not hold what was
       intended); nothing was written. This is a bug in subroot: please report it
  130  interrupted (SIGINT/SIGTERM); no output was left behind
  141  stdout was closed by its reader (`| head`): stopped quietly, as `ls` or `cat`
       killed by SIGPIPE";

/// A refusal decided in this binary (which filesystem of an image to work on).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// No partition table and no recognised filesystem on the whole disk.
    #[error("{image} has neither a partition table nor a filesystem subroot recognises")]
    NothingRecognised { image: String },
    /// A partition table none of whose partitions holds a recognised filesystem.
    #[error("no partition of {image} holds a filesystem subroot recognises")]
    NoPartitionWithFilesystem { image: String },
    /// The chosen place holds no filesystem subroot recognises.
    #[error("{place} holds no filesystem subroot recognises")]
    NoFilesystem { place: String },
    /// The chosen filesystem is one subroot does not read (swap, ...).
    #[error("{0}; subroot reads ext2/3/4, FAT, XFS and btrfs")]
    UnsupportedFilesystem(String),
    /// The chosen filesystem is one subroot reads but does not write (XFS, btrfs).
    #[error("{0}; subroot writes ext2/3/4 and FAT (XFS and btrfs it only reads)")]
    ReadOnlyFilesystem(String),
}

/// subroot's own check of what it wrote failed (exit status 4): the output does not hold
/// what was intended, and nothing was written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OwnCheckFailed(pub String);

/// The exit status for `e` (see [`HELP`]): the first cause in its chain that is one of our
/// typed errors decides; anything else is an operation failure (1).
pub fn code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(f) = cause.downcast_ref::<F>() {
            return of_codec(f);
        }
        if let Some(e) = cause.downcast_ref::<E2>() {
            return match e {
                E2::Format(f) => of_codec(f),
                E2::Unsupported(_) | E2::CannotEditInPlace(_) => 3,
                E2::VerifyFailed(_) => 4,
                E2::Tool(_)
                | E2::NoTarInput { .. }
                | E2::Io { .. }
                | E2::Scratch(_)
                | E2::InvalidArgument(_) => 1,
            };
        }
        if cause.downcast_ref::<InputError>().is_some() {
            return 3;
        }
        if let Some(e) = cause.downcast_ref::<InPlaceError>() {
            return match e {
                InPlaceError::Format(f) => of_codec(f),
                InPlaceError::UndoLogMismatch { .. } => 3,
                InPlaceError::ImageBusy { .. } | InPlaceError::UndoPending { .. } => 1,
            };
        }
        if cause.downcast_ref::<OwnCheckFailed>().is_some() {
            return 4;
        }
        if let Some(e) = cause.downcast_ref::<E>() {
            return match e {
                E::Device(f) => of_codec(f),
                E::Unsupported { .. } | E::GrowRefused { .. } | E::Corrupt(_) => 3,
                E::LibraryTooOld { .. }
                | E::NotFound(_)
                | E::Exists(_)
                | E::NotEmpty(_)
                | E::NotADirectory(_)
                | E::IsADirectory(_)
                | E::Invalid(_)
                | E::Lib { .. } => 1,
            };
        }
    }
    1
}

/// The exit status of a codec's error.
fn of_codec(f: &F) -> u8 {
    match f {
        F::Corrupt(_)
        | F::Unsupported(_)
        | F::OutOfRange { .. }
        | F::UnsupportedContainer { .. }
        | F::UnsupportedLabel { .. } => 3,
        F::Io { .. } | F::NotFound(_) | F::InvalidArgument(_) | F::ReadOnly => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn of(e: F) -> u8 {
        code(&Err::<(), _>(e).context("outer").unwrap_err())
    }

    #[test]
    fn one_status_per_class() {
        assert_eq!(of(F::corrupt("bad")), 3);
        assert_eq!(of(F::unsupported("feature")), 3);
        let e2 = |e: E2| code(&Err::<(), _>(e).context("outer").unwrap_err());
        assert_eq!(e2(E2::CannotEditInPlace("x".into())), 3);
        assert_eq!(e2(E2::Unsupported("a name with a line break".into())), 3);
        assert_eq!(e2(E2::Format(F::corrupt("bad"))), 3);
        assert_eq!(e2(E2::VerifyFailed("differs".into())), 4);
        let failed = subroot_e2fs::ToolError::Failed {
            what: "e2fsck".into(),
            status: "exit status: 8".into(),
            stderr: String::new(),
        };
        assert_eq!(e2(E2::Tool(failed)), 1);
        assert_eq!(of(F::io("reading", std::io::Error::other("eio"))), 1);
        assert_eq!(of(F::InvalidArgument("bad size".into())), 1);
        let refused = anyhow::Error::from(InputError::NoFilesystem {
            place: "disk.img".into(),
        });
        assert_eq!(code(&refused.context("outer")), 3);
        assert_eq!(code(&anyhow::anyhow!("plain")), 1);
    }
}
