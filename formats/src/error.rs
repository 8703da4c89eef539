//! The error type shared by every codec in this crate.
//!
//! Messages say what was expected and what was found; the CLI adds the file name as
//! context. Codecs that need more structure may define their own error and convert.

use crate::image::ForeignFormat;
use crate::table::ForeignLabel;
use std::io;
use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while decoding or encoding an on-disk format.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The bytes do not follow the format: a bad magic, an offset out of range, a loop.
    #[error("{0}")]
    Corrupt(String),
    /// A valid feature of the format that this crate does not handle (or refuses to).
    #[error("{0}")]
    Unsupported(String),
    /// An image container this crate recognises but does not read (QED, Parallels, ...): only
    /// raw, qcow2, VHD, VHDX, VMDK and VDI are read. Opening it as raw explicitly reads its bytes
    /// as the disk.
    #[error(
        "{} is a {} image; subroot reads raw, qcow2, VHD, VHDX, VMDK and VDI (convert it with qemu-img convert \
         first, or force with -f raw)",
        path.display(),
        format.long_name()
    )]
    UnsupportedContainer {
        path: PathBuf,
        format: ForeignFormat,
    },
    /// A disk label other than MBR and GPT (BSD, Sun, SGI, Atari).
    #[error("it holds {}; subroot reads MBR and GPT", label.long_name())]
    UnsupportedLabel { label: ForeignLabel },
    /// A path the caller asked for is not in the filesystem.
    #[error("{0}")]
    NotFound(String),
    /// The caller asked for something impossible (bad size, bad option).
    #[error("{0}")]
    InvalidArgument(String),
    /// An access outside a device's bounds.
    #[error(
        "access of {len} bytes at offset {offset} is beyond the end of the device ({size} bytes)"
    )]
    OutOfRange { offset: u64, len: u64, size: u64 },
    /// A write to a device opened read-only.
    #[error("the device is read-only")]
    ReadOnly,
}

impl Error {
    /// Prefix a [`Error::Corrupt`] or [`Error::Unsupported`] message with the file it is
    /// about (other errors name their file already).
    pub fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            Error::Corrupt(m) => Error::Corrupt(format!("{}: {m}", path.display())),
            Error::Unsupported(m) => Error::Unsupported(format!("{}: {m}", path.display())),
            other => other,
        }
    }

    /// Wrap an I/O error with what was being done. An error of this crate that travelled
    /// through `std::io` (a file reader's `Read`) comes back as itself, its message prefixed
    /// with the context, so that a corrupt structure is still [`Error::Corrupt`].
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        let context = context.into();
        if !source.get_ref().is_some_and(|e| e.is::<Error>()) {
            return Error::Io { context, source };
        }
        let kind = source.kind();
        match source.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(inner)) => match *inner {
                Error::Corrupt(m) => Error::Corrupt(format!("{context}: {m}")),
                Error::Unsupported(m) => Error::Unsupported(format!("{context}: {m}")),
                other => other,
            },
            _ => Error::Io {
                context,
                source: io::Error::from(kind),
            },
        }
    }

    /// Shorthand for [`Error::Corrupt`] from anything displayable.
    pub fn corrupt(msg: impl Into<String>) -> Self {
        Error::Corrupt(msg.into())
    }

    /// Shorthand for [`Error::Unsupported`].
    pub fn unsupported(msg: impl Into<String>) -> Self {
        Error::Unsupported(msg.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_errors_survive_a_trip_through_std_io() {
        let through = io::Error::new(io::ErrorKind::InvalidData, Error::corrupt("bad magic"));
        match Error::io("reading /f", through) {
            Error::Corrupt(m) => assert_eq!(m, "reading /f: bad magic"),
            e => panic!("{e:?}"),
        }
        let plain = io::Error::new(io::ErrorKind::NotFound, "gone");
        assert!(matches!(Error::io("opening", plain), Error::Io { .. }));
    }
}
