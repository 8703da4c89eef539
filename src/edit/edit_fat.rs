//! FAT partitions edited through a scratch copy: the partition's bytes are copied (sparsely)
//! into a temporary raw file beside the output, edited there with
//! [`subroot_formats::fat::FatVolume`], and the result is spliced back into the image by
//! the caller. Memory stays bounded whatever the partition size; the scratch file is
//! removed when dropped, on error and on SIGINT/SIGTERM (it is an [`AtomicOutput`] that
//! is never committed).

use crate::open::select::Selected;
use crate::output::AtomicOutput;
use anyhow::{bail, Context, Result};
use std::path::Path;
use subroot_formats::block::{BlockDevice, RawFile};
use subroot_formats::fat::{format, FatFormatOptions, FatTree, FatVolume, PutStats};
use subroot_formats::sparse_copy::write_raw;
use subroot_formats::tree::TreeSource;

/// A partition's worth of scratch space beside the output, and the device over it.
pub struct Scratch {
    /// Keeps the temporary file alive (and removes it when dropped).
    pub file: AtomicOutput,
    /// The scratch file as a read-write device.
    pub dev: RawFile,
}

impl Scratch {
    /// An empty (sparse) scratch file of `len` bytes beside `out`.
    pub fn new(out: &Path, len: u64) -> Result<Scratch> {
        let file = scratch_file(out)?;
        file.file()
            .set_len(len)
            .with_context(|| format!("cannot size {}", file.temp_path().display()))?;
        let dev = RawFile::from_file(file.file().try_clone()?, file.temp_path(), true)?;
        Ok(Scratch { file, dev })
    }

    /// A copy of `src` beside `out` (holes stay holes).
    pub fn copy_of(src: &dyn BlockDevice, out: &Path) -> Result<Scratch> {
        let file = scratch_file(out)?;
        write_raw(src, file.file(), &|_| {}).with_context(|| {
            format!(
                "cannot copy the partition to {}",
                file.temp_path().display()
            )
        })?;
        let dev = RawFile::from_file(file.file().try_clone()?, file.temp_path(), true)?;
        if dev.len() != src.len() {
            bail!(
                "the scratch copy has {} bytes, the partition {}",
                dev.len(),
                src.len()
            );
        }
        Ok(Scratch { file, dev })
    }
}

fn scratch_file(out: &Path) -> Result<AtomicOutput> {
    let name = out
        .file_name()
        .with_context(|| format!("{} does not name a file", out.display()))?
        .to_string_lossy()
        .into_owned();
    AtomicOutput::create(&out.with_file_name(format!("{name}.fat-scratch")), true)
}

/// The FAT filesystem of `sel` for checks before any work (read-only).
pub fn open_tree(sel: &Selected) -> Result<FatTree<std::sync::Arc<dyn BlockDevice>>> {
    FatTree::open(sel.device.clone())
        .with_context(|| format!("cannot read the FAT filesystem of {}", sel.describe()))
}

/// A new FAT filesystem of `len` bytes, formatted with `opts` and filled from `tree`.
pub fn build(
    tree: &dyn TreeSource,
    len: u64,
    opts: &FatFormatOptions,
    out: &Path,
) -> Result<(Scratch, PutStats)> {
    let s = Scratch::new(out, len)?;
    format(&s.dev, opts).context("cannot make the FAT filesystem")?;
    let mut vol = FatVolume::open(s.dev).context("cannot open the new FAT filesystem")?;
    let stats = vol
        .put_tree(tree, b"", b"")
        .context("cannot fill the FAT filesystem")?;
    let dev = vol.into_inner()?;
    Ok((Scratch { file: s.file, dev }, stats))
}

/// Copy host trees into a copy of `sel`'s FAT filesystem: each `(tree, root, dest)` puts
/// `root` of `tree` at `dest`.
pub fn copy_in(
    sel: &Selected,
    items: &[(&dyn TreeSource, Vec<u8>, Vec<u8>)],
    out: &Path,
) -> Result<(Scratch, PutStats)> {
    edit(sel, out, &mut |vol| {
        let mut total = PutStats::default();
        for (tree, root, dest) in items {
            let st = vol
                .put_tree(*tree, root, dest)
                .with_context(|| format!("cannot copy into /{}", String::from_utf8_lossy(dest)))?;
            total.files += st.files;
            total.dirs += st.dirs;
            total.bytes += st.bytes;
            total.replaced += st.replaced;
        }
        Ok(total)
    })
}

/// Remove `paths` from a copy of `sel`'s FAT filesystem.
pub fn rm(sel: &Selected, paths: &[Vec<u8>], recursive: bool, out: &Path) -> Result<Scratch> {
    Ok(edit(sel, out, &mut |vol| {
        for p in paths {
            vol.remove(p, recursive)
                .with_context(|| format!("cannot remove /{}", String::from_utf8_lossy(p)))?;
        }
        Ok(PutStats::default())
    })?
    .0)
}

fn edit(
    sel: &Selected,
    out: &Path,
    f: &mut dyn FnMut(&mut FatVolume<RawFile>) -> Result<PutStats>,
) -> Result<(Scratch, PutStats)> {
    let s = Scratch::copy_of(&*sel.device, out)?;
    let mut vol = FatVolume::open(s.dev)
        .with_context(|| format!("cannot open the FAT filesystem of {}", sel.describe()))?;
    let stats = f(&mut vol)?;
    let dev = vol.into_inner()?;
    Ok((Scratch { file: s.file, dev }, stats))
}
