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

thread_local! {
    /// How many [`guard`]s this thread is inside.
    static GUARDED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// True while this thread runs library code whose panics are caught and turned into
/// [`Error::Corrupt`]: a program's panic hook can stay quiet about those (the error says
/// what happened), and report every other panic as the bug it is.
pub fn panic_is_caught() -> bool {
    GUARDED.with(|g| g.get() > 0)
}

/// Run `f` (which calls into `fatfs`), turning a panic inside it into [`Error::Corrupt`].
///
/// Why: `fatfs` panics instead of returning an error on some corrupt volumes, and a
/// corrupt input must never bring the whole program down. The state `f` touched may be
/// half-updated after a panic; writers ([`FatVolume`]) refuse further work once one
/// happened.
pub(crate) fn guard<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    GUARDED.with(|g| g.set(g.get() + 1));
    let r = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get().saturating_sub(1)));
    match r {
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

#[cfg(test)]
mod guard_tests {
    use super::*;

    #[test]
    fn a_panic_inside_becomes_corrupt_and_is_marked_caught() {
        assert!(!panic_is_caught());
        let r: Result<()> = guard("testing", || {
            assert!(panic_is_caught());
            panic!("boom")
        });
        match r {
            Err(Error::Corrupt(m)) => assert!(m.contains("boom") && m.contains("testing"), "{m}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(!panic_is_caught());
    }
}
