//! Arguments of the commands that write a filesystem into an image (`mkfs`, `copy-in`,
//! `rm`).

use super::relayout::EngineArg;
use super::{ImageFormatArg, PartitionArgs, Qcow2OutArgs};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Filesystem types `mkfs` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExtTypeArg {
    Ext2,
    Ext3,
    Ext4,
    /// FAT (12, 16 or 32 by size; FAT32 on an EFI System Partition).
    #[value(alias = "fat")]
    Vfat,
}

#[derive(Debug, Args)]
pub struct MkfsArgs {
    /// The input image.
    pub image: PathBuf,
    #[command(flatten)]
    pub part: PartitionArgs,
    /// What to put in the filesystem: a directory, a tar archive (plain or compressed with
    /// gzip, zstd, xz, lzma, lz4 or bzip2, detected by content), or IMAGE[:N] (another
    /// image's partition N, or its chosen filesystem).
    #[arg(long, value_name = "TREE")]
    pub from: String,
    /// Filesystem type (default: the existing filesystem's when it is ext or vfat, else
    /// ext4). Changing an ext or vfat partition's type needs --new-identity.
    #[arg(long = "type", value_name = "TYPE")]
    pub fs_type: Option<ExtTypeArg>,
    /// Do not keep the existing filesystem's identity (ext: UUID, label, features,
    /// geometry; vfat: volume id, label, FAT type, cluster size).
    #[arg(long)]
    pub new_identity: bool,
    /// Set the filesystem UUID (vfat: the volume id, XXXX-XXXX).
    #[arg(long, value_name = "UUID")]
    pub uuid: Option<String>,
    /// Set the filesystem label (vfat: up to 11 ASCII characters).
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    #[command(flatten)]
    pub out: EditOutArgs,
}

/// Where a rewritten image goes (shared by `mkfs`, `copy-in` and `rm`): exactly one of
/// `-o`, `--overlay` and `--in-place` (see `src/edit/deliver.rs`).
#[derive(Debug, Args)]
pub struct EditOutArgs {
    /// Write the edited image to OUT: a complete new image.
    #[arg(short, long, value_name = "OUT", required_unless_present_any = ["in_place", "overlay"], conflicts_with_all = ["in_place", "overlay"])]
    pub output: Option<PathBuf>,
    /// Write only what changed, as a qcow2 overlay OUT whose backing file is the input (named
    /// relative to OUT's directory when possible). QEMU boots it; `qemu-img commit OUT`
    /// folds it into the input.
    #[arg(long, value_name = "OUT", conflicts_with = "in_place")]
    pub overlay: Option<PathBuf>,
    /// Change the input image itself, writing only the blocks that change (raw and qcow2).
    /// Crash safe: the old bytes go to IMAGE.subroot-undo, made durable before the first
    /// write and removed at the end; an interrupted edit is rolled back by the next subroot
    /// command on the image or by `subroot recover IMAGE`.
    #[arg(long)]
    pub in_place: bool,
    /// Output format with -o (default: the input's).
    #[arg(short = 'O', long = "output-format", value_name = "FMT")]
    pub output_format: Option<ImageFormatArg>,
    #[command(flatten)]
    pub qcow2: Qcow2OutArgs,
    /// Overwrite an existing OUT.
    #[arg(long)]
    pub force: bool,
    /// After an in-process ext edit: `quick` (subroot re-reads what it touched: changed
    /// directories, checksums, free counts) or `full` (also e2fsck -fn of the edited
    /// filesystem, flattened into a temporary file).
    #[arg(long, value_enum, default_value = "quick", value_name = "LEVEL")]
    pub verify: crate::edit::full_check::Verify,
}

#[derive(Debug, Args)]
pub struct CopyInArgs {
    /// The input image.
    pub image: PathBuf,
    #[command(flatten)]
    pub part: PartitionArgs,
    /// Host files or directories to copy, with everything in them.
    #[arg(value_name = "LOCAL", required = true)]
    pub locals: Vec<PathBuf>,
    /// The directory of the filesystem to copy them into; it must exist.
    #[arg(value_name = "DEST")]
    pub dest: String,
    /// How ext filesystems are changed: `edit` in process, writing only the blocks that
    /// change; `rebuild` with mke2fs -d (identity kept; compacts it); `auto` edits unless
    /// the filesystem uses a feature the editor does not handle, then rebuilds and says why.
    #[arg(long, value_enum, default_value = "auto", value_name = "ENGINE")]
    pub engine: EngineArg,
    #[command(flatten)]
    pub out: EditOutArgs,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// The input image.
    pub image: PathBuf,
    #[command(flatten)]
    pub part: PartitionArgs,
    /// Paths in the filesystem to remove.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<String>,
    /// Remove directories and everything in them.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// How ext filesystems are changed: `edit` in process, writing only the blocks that
    /// change; `rebuild` with mke2fs -d (identity kept; compacts it); `auto` edits unless
    /// the filesystem uses a feature the editor does not handle, then rebuilds and says why.
    #[arg(long, value_enum, default_value = "auto", value_name = "ENGINE")]
    pub engine: EngineArg,
    #[command(flatten)]
    pub out: EditOutArgs,
}
