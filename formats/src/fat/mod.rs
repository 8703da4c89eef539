//! FAT12/16/32: reading ([`FatTree`]), formatting ([`format`]) and editing ([`FatVolume`]).
//!
//! The filesystem logic is the `fatfs` crate's; this module adds what subroot needs around
//! it: a cached `Read + Write + Seek` adapter over a [`crate::block::BlockDevice`], the
//! mapping onto the tree model, the parts `fatfs` 0.3 cannot do (attributes and directory
//! times, the root-directory volume label: [`raw`] patches those 32-byte entries
//! directly), and panic safety.
//!
//! Times: FAT stores local time without a zone. subroot reads and writes it as UTC (what
//! Linux's `vfat` driver does with `tz=UTC`, and what `mtools` prints when `TZ=UTC`), so a
//! round trip through subroot never shifts a time, whatever the host's time zone.
//!
//! Panic safety: `fatfs` 0.3 asserts or indexes out of bounds on some corrupt inputs (bad
//! BPB fields, cluster numbers beyond the FAT). Every entry point that calls into `fatfs`
//! runs it inside [`guard`], which turns such a panic into [`Error::Corrupt`]; the code of
//! this module itself bounds-checks everything it reads from the volume.

mod format;
mod io;
pub mod raw;
mod read;
mod time;
mod write;

pub use format::{encode_label, format, FatFormatOptions, FatIdentity, FatType};
pub use read::{days_from_civil, BufferedDevice, FatTree};
pub use time::{from_fat, to_fat};
pub use write::{FatVolume, PutStats};

use crate::{Error, Result};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Run `f` (which calls into `fatfs`), turning a panic inside it into [`Error::Corrupt`].
///
/// Why: `fatfs` panics instead of returning an error on some corrupt volumes, and a
/// corrupt input must never bring the whole program down. The state `f` touched may be
/// half-updated after a panic; writers ([`FatVolume`]) refuse further work once one
/// happened.
pub(crate) fn guard<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            Err(Error::corrupt(format!(
                "fat: {what}: the filesystem is corrupt (the FAT library gave up: {msg})"
            )))
        }
    }
}
