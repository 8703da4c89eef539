//! Writing a whole image file from any block device: the one path every command that
//! produces an image goes through (temporary file, progress, check, rename).

use super::output_options::{OutputFormat, Qcow2Options};
use crate::output::AtomicOutput;
use crate::progress;
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use std::path::Path;
use subroot_formats::block::BlockDevice;
use subroot_formats::image::Image;
use subroot_formats::qcow2::{write_qcow2, WriteOptions, WriteStats};
use subroot_formats::sparse_copy::write_raw;
use subroot_formats::vhd::{fixed_size, write_vhd_fixed};
use subroot_formats::vhdx::{vhdx_size, write_vhdx_dynamic};

/// A VHD footer's timestamp (seconds since 2000-01-01 UTC): `SOURCE_DATE_EPOCH` when set,
/// else now.
fn vhd_timestamp() -> Result<u32> {
    const Y2K: u64 = 946_684_800;
    let unix = match crate::clock::source_date_epoch()? {
        Some(t) => t,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    Ok(u32::try_from(unix.saturating_sub(Y2K)).unwrap_or(u32::MAX))
}
use subroot_formats::vmdk::write_vmdk_stream;

/// Where and how to write an output image.
pub struct OutputSpec<'a> {
    pub path: &'a Path,
    pub format: OutputFormat,
    pub qcow2: &'a Qcow2Options,
    pub force: bool,
    pub quiet: bool,
}

impl OutputSpec<'_> {
    /// "raw", "qcow2", "vhd", "vhdx" or "vmdk", for messages.
    pub fn format_name(&self) -> &'static str {
        self.format.name()
    }

    /// Refuse qcow2-only options for other output, before any work is done.
    pub fn validate(&self) -> Result<()> {
        if self.format != OutputFormat::Qcow2 {
            if self.qcow2.compression.is_some() {
                bail!("--compress needs qcow2 output (-O qcow2)");
            }
            if self.qcow2.cluster_size.is_some() {
                bail!("--cluster-size needs qcow2 output (-O qcow2)");
            }
        }
        Ok(())
    }
}

/// Stream `src` into a new image at `spec.path`; the file appears only when complete and
/// re-opened successfully with the same virtual size.
pub fn write_image(src: &dyn BlockDevice, spec: &OutputSpec, what: &str) -> Result<WriteStats> {
    let bar = progress::bytes_bar(src.len(), what, spec.quiet);
    let stats = write_image_with(src, spec, &bar, 0)?;
    bar.finish_and_clear();
    Ok(stats)
}

/// [`write_image`] reporting to the caller's progress `bar` (its position is set to the
/// bytes of `src` done), with `threads` compression threads (0: all cores). `batch` runs
/// several of these at once, each with its own line of a multi-bar.
pub fn write_image_with(
    src: &dyn BlockDevice,
    spec: &OutputSpec,
    bar: &ProgressBar,
    threads: usize,
) -> Result<WriteStats> {
    spec.validate()?;
    let out = AtomicOutput::create(spec.path, spec.force)?;
    let report = |done: u64| bar.set_position(done);
    let stats = match spec.format {
        OutputFormat::Raw => write_raw(src, out.file(), &report),
        OutputFormat::Vhd => write_vhd_fixed(src, out.file(), vhd_timestamp()?, &report),
        OutputFormat::Vhdx => write_vhdx_dynamic(src, out.file(), &report),
        OutputFormat::Qcow2 => {
            let mut opts = WriteOptions {
                threads,
                ..WriteOptions::default()
            };
            if let Some(cs) = spec.qcow2.cluster_size {
                opts.cluster_size = cs;
            }
            opts.compression = spec.qcow2.compression;
            write_qcow2(src, out.file(), &opts, &report)
        }
        OutputFormat::Vmdk => {
            // The descriptor names the extent by the file's final name.
            let name = spec
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            write_vmdk_stream(src, out.file(), &name, &report)
        }
    }
    .with_context(|| format!("cannot write {}", spec.path.display()))?;
    let expected_len = match spec.format {
        OutputFormat::Vhd => fixed_size(src.len()),
        OutputFormat::Vhdx => vhdx_size(src.len()),
        // A VMDK holds whole sectors: the writer rounds the size up.
        OutputFormat::Vmdk => src.len().next_multiple_of(512),
        OutputFormat::Raw | OutputFormat::Qcow2 => src.len(),
    };
    check_written(out.temp_path(), spec.format, expected_len).with_context(|| {
        format!(
            "the new {} failed its check; nothing was written",
            spec.path.display()
        )
    })?;
    out.commit()?;
    Ok(stats)
}

/// Re-open a freshly written image with our own reader and walk its whole map: the
/// header, every L2 table and the virtual size must be sound before it gets its name.
fn check_written(path: &Path, format: OutputFormat, expected_len: u64) -> Result<()> {
    let img = Image::open_as(path, Some(format.image_format()))?;
    if img.len() != expected_len {
        bail!(
            "virtual size is {} bytes, expected {expected_len}",
            img.len()
        );
    }
    const WINDOW: u64 = 1 << 30;
    let mut pos = 0;
    while pos < expected_len {
        let len = WINDOW.min(expected_len - pos);
        img.extents(pos, len)?;
        pos += len;
    }
    Ok(())
}
