//! The `convert` batch operation: each image into `<stem>.raw` or `<stem>.qcow2`, through
//! the same writer as `subroot convert` (flattened, sparse, checked, renamed into place).

use super::{BatchOp, JobCtx, JobStats};
use crate::cli::BatchConvertArgs;
use crate::edit::output_options::{OutputFormat, Qcow2Options};
use crate::edit::write_image::{write_image_with, OutputSpec};
use anyhow::Result;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use subroot_formats::block::{BlockDevice, Extent};

/// `batch convert`: the output format and qcow2 options.
pub struct ConvertOp {
    format: OutputFormat,
    qcow2: Qcow2Options,
}

impl ConvertOp {
    /// Check the options once, before any image is touched.
    pub fn new(args: &BatchConvertArgs) -> Result<Self> {
        let op = ConvertOp {
            format: args.output_format.into(),
            qcow2: (&args.qcow2).into(),
        };
        op.spec(Path::new("x")).validate()?;
        Ok(op)
    }

    fn spec<'a>(&'a self, output: &'a Path) -> OutputSpec<'a> {
        OutputSpec {
            path: output,
            format: self.format,
            qcow2: &self.qcow2,
            force: true,
            quiet: true,
        }
    }
}

impl BatchOp for ConvertOp {
    fn name(&self) -> &str {
        "convert"
    }

    fn output_name(&self, input: &Path) -> Result<std::ffi::OsString> {
        super::output_name_for(input, self.format)
    }

    fn options_fingerprint(&self) -> serde_json::Value {
        super::format_fingerprint(self.format, &self.qcow2)
    }

    fn run(&self, input: &Path, output: &Path, ctx: &JobCtx) -> Result<JobStats> {
        let img = crate::open::open_image(input, None)?;
        ctx.bar.set_length(img.len());
        let counted = Counting {
            dev: &img,
            read: AtomicU64::new(0),
        };
        let stats = write_image_with(&counted, &self.spec(output), &ctx.bar, ctx.threads)?;
        Ok(JobStats {
            bytes_read: counted.read.load(Ordering::Relaxed),
            // The raw, VHD and VHDX writers write only non-zero data (holes stay holes);
            // the qcow2 and VMDK writers write every byte of their file.
            bytes_written: match self.format {
                OutputFormat::Raw | OutputFormat::Vhd | OutputFormat::Vhdx => stats.data_bytes,
                OutputFormat::Qcow2 | OutputFormat::Vmdk => stats.file_size,
            },
            system: None,
        })
    }
}

/// A read-only view of a device that counts the bytes read through it.
struct Counting<'a> {
    dev: &'a dyn BlockDevice,
    read: AtomicU64,
}

impl BlockDevice for Counting<'_> {
    fn len(&self) -> u64 {
        self.dev.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> subroot_formats::Result<()> {
        self.dev.read_at(buf, offset)?;
        self.read.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    fn extents(&self, offset: u64, len: u64) -> subroot_formats::Result<Vec<Extent>> {
        self.dev.extents(offset, len)
    }
    fn format_name(&self) -> &'static str {
        self.dev.format_name()
    }
}
