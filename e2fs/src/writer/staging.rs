//! The staging copy for `mke2fs -d DIR` (e2fsprogs without tar input): the tree,
//! shaped by [`View`] with [`Shape::Staging`](super::view::Shape::Staging), extracted into a private host directory
//! as the current user by the crate's one extractor ([`subroot_formats::hostdir::extract`]): safe
//! against hostile names, sparse, hard links as links; owners, xattrs, times and device
//! nodes are not restored there (reconcile sets them in the image).

use super::view::View;
use crate::{Error, Result};
use std::path::Path;
use subroot_formats::hostdir::{extract, ExtractOptions};

/// Totals of a populate run.
#[derive(Debug, Default, Clone, Copy)]
pub struct StageStats {
    /// Entries written (the root included).
    pub entries: u64,
    /// File data bytes written (holes excluded).
    pub file_bytes: u64,
}

/// Extract `view` into the existing empty directory `dir`.
pub fn stage(view: &View, dir: &Path, stats: &mut StageStats) -> Result<()> {
    let opts = ExtractOptions {
        owners: false,
        devices: false,
        xattrs: false,
        times: false,
        overwrite: false,
    };
    let sum = extract(view, b"", dir, &opts)?;
    stats.entries = sum.entries;
    stats.file_bytes = sum.bytes;
    // Owners are not asked for; anything else left out (a socket mknod refused) would
    // leave mke2fs without the entry.
    if sum.skipped_devices + sum.skipped_xattrs + sum.skipped_other > 0 {
        return Err(Error::unsupported(format!(
            "staging the tree for mke2fs -d left entries out: {}",
            sum.first_problems.join("; ")
        )));
    }
    Ok(())
}
