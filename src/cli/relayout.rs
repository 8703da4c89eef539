//! Arguments of `subroot relayout`.

use super::disk::Qcow2OutArgs;
use super::select::PartitionArgs;
use super::ImageFormatArg;
use clap::Args;
use std::path::PathBuf;

/// The relayout engines (see `src/ops/relayout/engine.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineArg {
    /// `edit` when the filesystem allows it, else `rebuild`.
    Auto,
    /// Edit a copy of the filesystem in place.
    Edit,
    /// Rebuild the filesystem with mke2fs -d.
    Rebuild,
}

#[derive(Debug, Args)]
pub struct RelayoutArgs {
    /// The installed Linux image (raw or qcow2; never modified).
    pub input: PathBuf,
    /// The output image; written beside itself under a temporary name, then renamed.
    #[arg(short = 'o', long = "output", value_name = "OUT", required_unless_present_any = ["dry_run", "in_place"])]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub part: PartitionArgs,
    /// The directory the operating system moves into.
    #[arg(long, value_name = "DIR", default_value = "r0")]
    pub subroot: String,
    /// Top-level directories that stay shared (bind-mounted into the subroot at boot).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = super::DEFAULT_SHARED
    )]
    pub shared: Vec<String>,
    /// Move only these top-level entries (comma- or space-separated), e.g. the classic list
    /// of top-level OS directories "bin dev etc lib lib32 lib64 media mnt opt proc root run
    /// sbin selinux srv sys tmp usr";
    /// names that do not exist are skipped and reported. Default: everything except the
    /// shared directories and lost+found.
    #[arg(long = "move", value_name = "LIST")]
    pub move_list: Option<String>,
    /// Print the plan and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the plan as JSON (fields: see JSON OUTPUT).
    #[arg(long)]
    pub json: bool,
    /// Replace the input file with the result (still written to a temporary file first and
    /// renamed only when complete).
    #[arg(long, conflicts_with = "output")]
    pub in_place: bool,
    /// How the root filesystem (and a separate /boot) is rewritten: `edit` a copy in
    /// place (moves are new directory entries, no file data is copied: close to copy
    /// speed), `rebuild` it with mke2fs -d from the new tree (every file copied; the
    /// result is compact), or `auto`: edit when the filesystem allows, else rebuild.
    #[arg(long, value_enum, value_name = "ENGINE", default_value = "auto")]
    pub engine: EngineArg,
    /// Go on although an initrd already has the subroot hook (an image relayouted
    /// before): the hook is replaced by this version's.
    #[arg(long)]
    pub refresh_hook: bool,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Output format (default: the input's, as for every command that rewrites an image).
    #[arg(short = 'O', long = "output-format", value_name = "FMT")]
    pub output_format: Option<ImageFormatArg>,
    #[command(flatten)]
    pub qcow2: Qcow2OutArgs,
    /// Set by `batch relayout` (not an option): the private work directory to create and
    /// remove afterwards (beside the output, so a killed batch's leftovers are found and
    /// removed by the next run); default: a fresh directory under $TMPDIR.
    #[arg(skip)]
    pub work_dir: Option<PathBuf>,
}
