//! Resizing an ext2/3/4 filesystem image file with e2fsprogs' `resize2fs` (the rebuild
//! engine of `subroot resize`): the file is a private work copy of the partition, so the
//! filesystem keeps its identity (UUID, label, features, inode numbers) and only its size
//! changes.
//!
//! resize2fs wants a freshly checked filesystem; instead of letting `e2fsck -fy` change
//! anything, the copy must be clean under `e2fsck -fn` and resize2fs then runs with `-f`.

use crate::tools::{self, E2fsprogs};
use crate::writer::fsck_clean;
use crate::{Error, Result};
use std::path::Path;

/// Resize the ext filesystem in the file `image` (which must be at least as large as the
/// result) to `blocks` filesystem blocks. The file itself keeps its length. The filesystem
/// must be clean before ([`Error::VerifyFailed`] otherwise) and is checked after.
pub fn resize2fs(tools: &E2fsprogs, image: &Path, blocks: u64) -> Result<()> {
    fsck_clean(tools, image, "before resize2fs")?;
    let mut c = tools.command(tools.resize2fs()?);
    c.arg("-f").arg(image).arg(blocks.to_string());
    tools::run(&mut c, &format!("resize2fs to {blocks} blocks"), &[0])?;
    fsck_clean(tools, image, "after resize2fs")
}

/// resize2fs's estimate of the smallest block count the filesystem in `image` can have.
pub fn minimum_blocks(tools: &E2fsprogs, image: &Path) -> Result<u64> {
    let mut c = tools.command(tools.resize2fs()?);
    c.arg("-P").arg(image);
    let out = tools::run(&mut c, "resize2fs -P", &[0])?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Estimated minimum size of the filesystem:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "resize2fs -P printed no estimate of the minimum size: {}",
                text.trim()
            ))
        })
}
