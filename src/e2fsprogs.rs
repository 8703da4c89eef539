//! The environment that drives e2fsprogs, read here once at the CLI edge (subroot-e2fs
//! reads none): where the programs are (`--mke2fs`, `SUBROOT_MKE2FS`, `PATH`), the clock
//! they run with (`SOURCE_DATE_EPOCH`) and how a rebuilt filesystem is populated
//! (`SUBROOT_POPULATE`).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use subroot_e2fs::tools::{E2fsprogs, FindOptions};
use subroot_e2fs::writer::Populate;

/// The e2fsprogs to run: `mke2fs` (`--mke2fs`) or `SUBROOT_MKE2FS` and its siblings, else
/// those on PATH, /usr/sbin and /sbin; with SOURCE_DATE_EPOCH as their clock when set.
pub fn find(mke2fs: Option<&Path>) -> Result<E2fsprogs> {
    let mke2fs = mke2fs.map(Path::to_path_buf).or_else(|| {
        std::env::var_os("SUBROOT_MKE2FS")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let search = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    let clock = crate::clock::source_date_epoch()?;
    Ok(E2fsprogs::find(&FindOptions {
        mke2fs,
        search,
        clock,
    })?)
}

/// How to populate a rebuilt ext filesystem: `SUBROOT_POPULATE=staging|tar|auto`
/// (default auto: tar when the mke2fs reads it).
pub fn populate() -> Result<Populate> {
    std::env::var("SUBROOT_POPULATE")
        .unwrap_or_default()
        .parse()
        .context("SUBROOT_POPULATE")
}
