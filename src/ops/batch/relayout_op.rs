//! The `relayout` batch operation: each image through `subroot relayout` (the same plan,
//! transform, rebuild and writer) into `<stem>.raw` or `<stem>.qcow2`. The relayout
//! options are part of the sidecar's options, so `--resume` redoes an image whose
//! options changed. Each job's work directory (initrd copies, the rebuilt filesystem) is
//! `.<output>.work.subroot-tmp-<pid>` in the output directory, where the runner removes
//! what a killed run left behind.

use super::{BatchOp, JobCtx, JobStats};
use crate::cli::BatchRelayoutArgs;
use crate::edit::output_options::{OutputFormat, OutputOptions, Qcow2Options};
use crate::open::select::Which;
use crate::ops::relayout::plan::PlanOptions;
use crate::ops::relayout::request::RelayoutRequest;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::Path;

/// `batch relayout`: the relayout options and the output format.
pub struct RelayoutOp {
    partition: Option<u32>,
    plan: PlanOptions,
    format: OutputFormat,
    qcow2: Qcow2Options,
    /// `--mke2fs`, for the rebuild engine.
    mke2fs: Option<std::path::PathBuf>,
}

/// The suffix of a job's work directory name (before `.subroot-tmp-PID`).
pub const WORK_SUFFIX: &str = ".work";

impl RelayoutOp {
    /// Check the options once, before any image is touched.
    pub fn new(args: &BatchRelayoutArgs, mke2fs: Option<std::path::PathBuf>) -> Result<Self> {
        let op = RelayoutOp {
            partition: args.partition,
            plan: PlanOptions::new(
                &args.subroot,
                &args.shared,
                args.move_list.as_deref(),
                false,
            )?,
            format: args.output_format.into(),
            qcow2: (&args.qcow2).into(),
            mke2fs,
        };
        crate::edit::write_image::OutputSpec {
            path: Path::new("y"),
            format: op.format,
            qcow2: &op.qcow2,
            force: true,
            quiet: true,
        }
        .validate()?;
        Ok(op)
    }

    /// The relayout of one job, its work directory `work` (beside the output, so a
    /// killed batch's leftovers are found and removed by the next run).
    fn request(&self, input: &Path, output: &Path, work: &Path) -> RelayoutRequest {
        RelayoutRequest {
            input: input.to_path_buf(),
            part: Which {
                partition: self.partition.map(crate::cli::PartSpec::Number),
                format: None,
            },
            output: Some(output.to_path_buf()),
            overlay: None,
            in_place: false,
            // A redo replaces the output of an earlier, changed or interrupted run.
            replace_output: true,
            verify: crate::edit::full_check::Verify::Quick,
            dry_run: false,
            json: false,
            plan: self.plan.clone(),
            engine: None,
            image_options: OutputOptions {
                format: Some(self.format),
                qcow2: self.qcow2,
            },
            work_dir: Some(work.to_path_buf()),
        }
    }
}

impl BatchOp for RelayoutOp {
    fn name(&self) -> &str {
        "relayout"
    }

    fn output_name(&self, input: &Path) -> Result<std::ffi::OsString> {
        super::output_name_for(input, self.format)
    }

    fn options_fingerprint(&self) -> serde_json::Value {
        let format = super::format_fingerprint(self.format, &self.qcow2);
        json!({
            "format": format,
            "partition": self.partition,
            "subroot": self.plan.subroot,
            "shared": self.plan.shared,
            "move": self.plan.move_list,
            // The initrd entries' and the rebuilt filesystem's times come from it (a
            // string, as earlier sidecars hold it; a bad value fails the run itself).
            "source_date_epoch": crate::clock::source_date_epoch()
                .ok()
                .flatten()
                .map(|t| t.to_string()),
        })
    }

    fn run(&self, input: &Path, output: &Path, ctx: &JobCtx) -> Result<JobStats> {
        let dir = output.parent().unwrap_or(Path::new("."));
        let name = output
            .file_name()
            .with_context(|| format!("{} does not name a file", output.display()))?;
        let work = dir.join(format!(
            ".{}{WORK_SUFFIX}.subroot-tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let _ = &ctx.bar; // the relayout reports no progress of its own here
        let quiet = Ctx {
            quiet: true,
            verbose: 0,
            mke2fs: self.mke2fs.clone(),
        };
        let Some(plan) =
            crate::ops::relayout::relayout(&self.request(input, output, &work), &quiet)?
        else {
            bail!("internal: relayout wrote nothing");
        };
        let md = std::fs::metadata(output)
            .with_context(|| format!("cannot stat {}", output.display()))?;
        Ok(JobStats {
            // Not counted: the relayout reads its input in several passes (plan, initrds,
            // the edit, the copy) through the filesystem reader.
            bytes_read: 0,
            // What the output holds: a raw, VHD or VHDX file's allocated bytes, a qcow2's
            // or VMDK's size.
            bytes_written: match self.format {
                OutputFormat::Raw | OutputFormat::Vhd | OutputFormat::Vhdx => {
                    std::os::unix::fs::MetadataExt::blocks(&md) * 512
                }
                OutputFormat::Qcow2 | OutputFormat::Vmdk => md.len(),
            },
            // For triage of a fleet: what each image held.
            system: plan
                .system
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok()),
        })
    }
}
