//! `--verify full`: besides the cheap check every edit gets (subroot's own reader re-reads
//! what was touched), the edited ext filesystem is flattened into a sparse temporary file
//! and `e2fsck -fn` must find it clean. Costs a copy of the filesystem's data; for those who
//! want e2fsprogs' own word on every edit.

use anyhow::{Context, Result};
use subroot_e2fs::writer::fsck_clean;
use subroot_formats::block::BlockDevice;
use subroot_formats::sparse_copy::write_raw;

/// How much checking an edit gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Verify {
    /// subroot's own reader re-reads what the edit touched (always done).
    #[default]
    Quick,
    /// Also `e2fsck -fn` of the edited filesystem, flattened into a temporary file.
    Full,
}

/// `e2fsck -fn` of the filesystem `fs` (the edited view of one partition), named `what`.
pub fn e2fsck(fs: &dyn BlockDevice, what: &str, mke2fs: Option<&std::path::Path>) -> Result<()> {
    let tools = crate::e2fsprogs::find(mke2fs).context("--verify full needs e2fsprogs (e2fsck)")?;
    let flat = tempfile::NamedTempFile::new()
        .context("cannot create a temporary file for --verify full")?;
    write_raw(fs, flat.as_file(), &|_| {})
        .with_context(|| format!("cannot flatten {what} for e2fsck"))?;
    fsck_clean(&tools, flat.path(), "--verify full")
        .with_context(|| format!("e2fsck -fn finds fault with the edited {what}"))?;
    Ok(())
}
