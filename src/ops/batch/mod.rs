//! `subroot batch OPERATION`: run one operation on many images, `-j` at a time, with a
//! sidecar per output so an interrupted or sharded run can be resumed (`--resume`).
//!
//! The batch machinery (scheduling, sidecars, resume, sharding, progress, reports) knows
//! nothing about the operation: each operation is a [`BatchOp`]: `convert`
//! ([`convert_op`]) and `relayout` ([`relayout_op`]), each with its own CLI options.
//!
//! Failure semantics (like `make`): one failing image never stops images already running.
//! By default every image is attempted (one bad image in a fleet must not stop the others);
//! with `--fail-fast` no new image is started after the first failure. The exit status is 0 only when every image was done (or skipped as
//! already done) and none failed or was left unstarted.

mod convert_op;
mod progress;
mod relayout_op;
mod report;
mod runner;
pub mod shard;
mod sidecar;

use crate::cli::{BatchArgs, BatchCommand};
use crate::edit::output_options::{OutputFormat, Qcow2Options};
use crate::Ctx;
use anyhow::{Context, Result};
use indicatif::ProgressBar;
use std::path::Path;

/// One operation a batch can run on each image.
pub trait BatchOp: Sync {
    /// The operation's name, as on the command line and in sidecars (`"convert"`).
    fn name(&self) -> &str;
    /// The output file name (no directory) for `input`.
    fn output_name(&self, input: &Path) -> Result<std::ffi::OsString>;
    /// The options that determine the output, canonical: equal options give equal JSON
    /// (defaults spelled out), so a sidecar can tell whether an output is still wanted.
    fn options_fingerprint(&self) -> serde_json::Value;
    /// Produce `output` from `input`, atomically (the file appears only when complete).
    fn run(&self, input: &Path, output: &Path, ctx: &JobCtx) -> Result<JobStats>;
}

/// `input`'s file stem with the extension of `format`: `images/a.qcow2` → `a.raw` (the
/// stem's bytes as they are, UTF-8 or not).
pub fn output_name_for(input: &Path, format: OutputFormat) -> Result<std::ffi::OsString> {
    let stem = input
        .file_stem()
        .filter(|s| !s.is_empty())
        .with_context(|| format!("{} does not name a file", input.display()))?;
    let mut name = stem.to_os_string();
    name.push(format!(".{}", format.name()));
    Ok(name)
}

/// The output-format part of an options fingerprint, defaults spelled out.
pub fn format_fingerprint(format: OutputFormat, qcow2: &Qcow2Options) -> serde_json::Value {
    match format {
        OutputFormat::Raw | OutputFormat::Vhd | OutputFormat::Vhdx | OutputFormat::Vmdk => {
            serde_json::json!({ "output_format": format.name() })
        }
        OutputFormat::Qcow2 => serde_json::json!({
            "output_format": "qcow2",
            "compress": qcow2.compression.map(|c| c.name()),
            "cluster_size": qcow2
                .cluster_size
                .unwrap_or(subroot_formats::qcow2::WriteOptions::default().cluster_size),
        }),
    }
}

/// What a job gets from the runner.
pub struct JobCtx {
    /// This job's progress line (hidden when not on a terminal): set its length and position.
    pub bar: ProgressBar,
    /// Worker threads the job may use itself (e.g. for compression), at least 1.
    pub threads: usize,
}

/// What a job did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobStats {
    /// Bytes read from the input (its guest data, through the whole backing chain).
    pub bytes_read: u64,
    /// Bytes written into the output file.
    pub bytes_written: u64,
    /// What `inspect` saw of the system in the image (`batch relayout`: the OS, hostname
    /// and boot loaders), for triage; `None` for operations that do not look.
    pub system: Option<serde_json::Value>,
}

/// `subroot batch …`: dispatch on the operation.
pub fn run(args: &BatchArgs, ctx: &Ctx) -> Result<()> {
    match &args.command {
        BatchCommand::Convert(a) => {
            let op = convert_op::ConvertOp::new(a)?;
            runner::run(&op, &a.batch, ctx)
        }
        BatchCommand::Relayout(a) => {
            let op = relayout_op::RelayoutOp::new(a, ctx.mke2fs.clone())?;
            runner::run(&op, &a.batch, ctx)
        }
    }
}
