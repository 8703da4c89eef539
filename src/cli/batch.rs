//! Arguments of `subroot batch OPERATION`: the operation is a nested subcommand with its
//! own options (`convert`, `relayout`), the batch options are shared.

use super::{ImageFormatArg, Qcow2OutArgs};
use crate::ops::batch::shard::{parse_shard, Shard};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct BatchArgs {
    #[command(subcommand)]
    pub command: BatchCommand,
}

/// The operations a batch can run.
#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// Convert each image to <stem>.raw, .qcow2, .vhd, .vhdx or .vmdk in --out-dir (as `subroot convert`).
    #[command(
        long_about = super::help::BATCH_CONVERT,
        after_help = "EXAMPLES:\n  subroot batch convert -O qcow2 -c zstd --out-dir out/ images/*.raw\n  \
subroot batch convert --out-dir /data/raw --from-list todo.txt --resume -j 4\n  \
subroot batch convert -O qcow2 --out-dir out/ --from-list all.txt --shard 2/8 --json\n\n\
Each output gets a sidecar OUTPUT.subroot.json (input fingerprint, options, result).\n\
Every image is attempted even when some fail; --fail-fast starts no new image after the first failure.\n\
Exit status 0 only when every image succeeded (or was skipped by --resume as already done)."
    )]
    Convert(BatchConvertArgs),
    /// Relayout each image (as `subroot relayout`) into <stem>.raw, .qcow2, .vhd, .vhdx or .vmdk in --out-dir.
    #[command(
        long_about = super::help::BATCH_RELAYOUT,
        after_help = "EXAMPLES:\n  subroot batch relayout --out-dir out/ -j 2 images/*.qcow2\n  \
subroot batch relayout -O qcow2 -c zstd --out-dir out/ --from-list all.txt --resume\n  \
subroot batch relayout --subroot r1 --shared boot,var,home,srv -p 2 --out-dir out/ --from-list all.txt --shard 0/4 --json\n\n\
Each output gets a sidecar OUTPUT.subroot.json (input fingerprint, options including the relayout\n\
options, result): --resume redoes an image whose input or options changed. With SOURCE_DATE_EPOCH\n\
set, outputs are byte-for-byte reproducible.\n\
Every image is attempted even when some fail; --fail-fast starts no new image after the first failure.\n\
Exit status 0 only when every image succeeded (or was skipped by --resume as already done)."
    )]
    Relayout(BatchRelayoutArgs),
}

#[derive(Debug, Args)]
pub struct BatchRelayoutArgs {
    /// The root partition of every image (default: the partition holding a Linux root).
    #[arg(short = 'p', long = "partition", value_name = "N")]
    pub partition: Option<u32>,
    /// The directory the operating system moves into.
    #[arg(long, value_name = "DIR", default_value = "r0")]
    pub subroot: String,
    /// Top-level directories that stay shared.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = super::DEFAULT_SHARED
    )]
    pub shared: Vec<String>,
    /// Move only these top-level entries (comma- or space-separated); as `relayout --move`.
    #[arg(long = "move", value_name = "LIST")]
    pub move_list: Option<String>,
    /// Output format (the output is named <input stem>.raw, .qcow2, .vhd, .vhdx or .vmdk).
    #[arg(
        short = 'O',
        long = "output-format",
        value_name = "FMT",
        default_value = "raw"
    )]
    pub output_format: ImageFormatArg,
    #[command(flatten)]
    pub qcow2: Qcow2OutArgs,
    #[command(flatten)]
    pub batch: BatchCommonArgs,
}

#[derive(Debug, Args)]
pub struct BatchConvertArgs {
    /// Output format (the output is named <input stem>.raw, .qcow2, .vhd, .vhdx or .vmdk).
    #[arg(
        short = 'O',
        long = "output-format",
        value_name = "FMT",
        default_value = "raw"
    )]
    pub output_format: ImageFormatArg,
    #[command(flatten)]
    pub qcow2: Qcow2OutArgs,
    #[command(flatten)]
    pub batch: BatchCommonArgs,
}

/// Options of every batch operation.
#[derive(Debug, Args)]
pub struct BatchCommonArgs {
    /// The input images.
    #[arg(
        value_name = "IMAGES",
        required_unless_present = "from_list",
        conflicts_with = "from_list"
    )]
    pub images: Vec<PathBuf>,
    /// Read the images from FILE: one path per line; blank lines and # comments ignored.
    #[arg(long, value_name = "FILE")]
    pub from_list: Option<PathBuf>,
    /// Write outputs and their sidecars into DIR (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Images processed at once [default: the number of cores].
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Handle only shard I of N (0-based): images whose FNV-1a 64 hash of the file name mod N is I.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Skip images whose output and sidecar show them done with the same input, options and version.
    #[arg(long)]
    pub resume: bool,
    /// Print one JSON line per finished image to stdout (fields: see JSON OUTPUT).
    #[arg(long)]
    pub json: bool,
    /// Start no new image after the first failure (images already running finish). By
    /// default every image is attempted: one bad image in a fleet must not stop the others.
    #[arg(long)]
    pub fail_fast: bool,
    /// The default (every image is attempted); accepted so that older scripts keep working.
    #[arg(short = 'k', long, hide = true, conflicts_with = "fail_fast")]
    pub keep_going: bool,
}
