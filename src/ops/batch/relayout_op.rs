//! The `relayout` batch operation: each image through `subroot relayout` (the same plan,
//! transform, rebuild and writer) into `<stem>.raw` or `<stem>.qcow2`. The relayout
//! options are part of the sidecar's options, so `--resume` redoes an image whose
//! options changed. Each job's work directory (initrd copies, the rebuilt filesystem) is
//! `.<output>.work.subroot-tmp-<pid>` in the output directory, where the runner removes
//! what a killed run left behind.

use super::{BatchOp, JobCtx, JobStats};
use crate::cli::relayout::RelayoutArgs;
use crate::cli::{BatchRelayoutArgs, ImageFormatArg, PartitionArgs};
use crate::ops::relayout::{parse_move_list, plan_options};
use crate::Ctx;
use anyhow::{Context, Result};
use serde_json::json;
use std::path::Path;

/// `batch relayout`: the relayout options and the output format.
pub struct RelayoutOp {
    partition: Option<u32>,
    subroot: String,
    shared: Vec<String>,
    move_list: Option<String>,
    format: ImageFormatArg,
    qcow2: crate::cli::Qcow2OutArgs,
}

/// The suffix of a job's work directory name (before `.subroot-tmp-PID`).
pub const WORK_SUFFIX: &str = ".work";

impl RelayoutOp {
    /// Check the options once, before any image is touched.
    pub fn new(args: &BatchRelayoutArgs) -> Result<Self> {
        let op = RelayoutOp {
            partition: args.partition,
            subroot: args.subroot.clone(),
            shared: args.shared.clone(),
            move_list: args.move_list.clone(),
            format: args.output_format,
            qcow2: args.qcow2.clone(),
        };
        let probe = op.args(Path::new("x"), Path::new("y"), None);
        plan_options(&probe)?;
        crate::ops::write::OutputSpec {
            path: Path::new("y"),
            format: op.format,
            qcow2: &op.qcow2,
            force: true,
            quiet: true,
        }
        .validate()?;
        Ok(op)
    }

    /// The `subroot relayout` arguments of one job.
    fn args(&self, input: &Path, output: &Path, work: Option<&Path>) -> RelayoutArgs {
        RelayoutArgs {
            input: input.to_path_buf(),
            output: Some(output.to_path_buf()),
            part: PartitionArgs {
                partition: self.partition,
                format: None,
            },
            subroot: self.subroot.clone(),
            shared: self.shared.clone(),
            move_list: self.move_list.clone(),
            dry_run: false,
            json: false,
            in_place: false,
            refresh_hook: false,
            // A redo replaces the output of an earlier, changed or interrupted run.
            force: true,
            engine: crate::cli::relayout::EngineArg::Auto,
            output_format: Some(self.format),
            qcow2: self.qcow2.clone(),
            work_dir: work.map(Path::to_path_buf),
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
        let shared: Vec<&String> = self.shared.iter().filter(|s| !s.is_empty()).collect();
        let moved = parse_move_list(self.move_list.as_deref()).ok().flatten();
        let format = super::format_fingerprint(self.format, &self.qcow2);
        json!({
            "format": format,
            "partition": self.partition,
            "subroot": self.subroot.trim_matches('/'),
            "shared": shared,
            "move": moved,
            // The initrd entries' and the rebuilt filesystem's times come from it.
            "source_date_epoch": std::env::var("SOURCE_DATE_EPOCH").ok(),
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
        };
        let stats = crate::ops::relayout::relayout(&self.args(input, output, Some(&work)), &quiet)?
            .context("internal: relayout wrote nothing")?;
        Ok(JobStats {
            // Not counted: the relayout reads its input in several passes (plan, initrds,
            // rebuild, copy) through the filesystem reader.
            bytes_read: 0,
            bytes_written: match self.format {
                ImageFormatArg::Raw => stats.data_bytes,
                ImageFormatArg::Qcow2 => stats.file_size,
            },
        })
    }
}
