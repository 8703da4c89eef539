//! Arguments of the commands that write a filesystem into an image (`mkfs`).

use super::{ImageFormatArg, PartitionArgs, Qcow2OutArgs};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// ext filesystem types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExtTypeArg {
    Ext2,
    Ext3,
    Ext4,
}

#[derive(Debug, Args)]
pub struct MkfsArgs {
    /// The input image.
    pub image: PathBuf,
    #[command(flatten)]
    pub part: PartitionArgs,
    /// What to put in the filesystem: a directory, a tar archive (plain or gzip/zstd/xz/
    /// lzma/lz4/bzip2-compressed, detected by content), or IMAGE[:N] (another image's
    /// partition N, or its chosen filesystem).
    #[arg(long, value_name = "TREE")]
    pub from: String,
    /// The output image (required unless --in-place).
    #[arg(short, long, value_name = "OUT", required_unless_present = "in_place")]
    pub output: Option<PathBuf>,
    /// Replace the input image (a new image is written beside it, then renamed over it).
    #[arg(long, conflicts_with = "output")]
    pub in_place: bool,
    /// Filesystem type for a new identity (default: ext4).
    #[arg(long = "type", value_name = "TYPE")]
    pub fs_type: Option<ExtTypeArg>,
    /// Do not keep the existing filesystem's identity (UUID, label, features, geometry).
    #[arg(long)]
    pub new_identity: bool,
    /// Set the filesystem UUID.
    #[arg(long, value_name = "UUID")]
    pub uuid: Option<String>,
    /// Set the filesystem label.
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Output format (default: the input's).
    #[arg(short = 'O', long = "output-format", value_name = "FMT")]
    pub output_format: Option<ImageFormatArg>,
    #[command(flatten)]
    pub qcow2: Qcow2OutArgs,
    /// The mke2fs to use (also SUBROOT_MKE2FS); its sibling debugfs/e2fsck are preferred.
    #[arg(long, value_name = "PATH")]
    pub mke2fs: Option<PathBuf>,
    /// Overwrite an existing output file.
    #[arg(long)]
    pub force: bool,
}
