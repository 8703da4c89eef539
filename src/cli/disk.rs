//! Arguments of the disk-layer commands: `info`, `convert`, `create`.

use super::{CompressArg, ImageFormatArg, InputFormatArg, TableArg};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The image file (raw, qcow2, VHD, VHDX, VMDK or VDI; the format is detected).
    pub image: PathBuf,
    /// Treat the image as this format instead of detecting it.
    #[arg(short = 'f', long = "format", value_name = "FMT")]
    pub format: Option<InputFormatArg>,
    /// Print JSON instead of a table (fields: see JSON OUTPUT).
    #[arg(long)]
    pub json: bool,
}

/// `subroot inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The disk image (raw, qcow2, VHD, VHDX, VMDK or VDI; the format is detected) or a bare
    /// filesystem image.
    pub image: PathBuf,
    /// Treat the image as this format instead of detecting it.
    #[arg(short = 'f', long = "format", value_name = "FMT")]
    pub format: Option<InputFormatArg>,
    /// Print JSON instead of text (fields: see JSON OUTPUT).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The input image (raw, qcow2, VHD, VHDX, VMDK or VDI, with any backing or parent chain).
    pub input: PathBuf,
    /// The output file; written beside itself under a temporary name, then renamed.
    pub output: PathBuf,
    /// Treat the input as this format instead of detecting it.
    #[arg(short = 'f', long = "format", value_name = "FMT")]
    pub format: Option<InputFormatArg>,
    /// Output format.
    #[arg(
        short = 'O',
        long = "output-format",
        value_name = "FMT",
        default_value = "raw"
    )]
    pub output_format: ImageFormatArg,
    #[command(flatten)]
    pub qcow2: Qcow2OutArgs,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Options for qcow2 output.
#[derive(Debug, Args, Clone)]
pub struct Qcow2OutArgs {
    /// Compress clusters (qcow2 output only): zlib (the default when given alone) or zstd.
    #[arg(short = 'c', long = "compress", value_name = "TYPE", num_args = 0..=1, default_missing_value = "zlib")]
    pub compress: Option<CompressArg>,
    /// qcow2 cluster size, a power of two from 512 to 2M [default: 64K].
    #[arg(long, value_name = "SIZE", value_parser = crate::size::parse_size)]
    pub cluster_size: Option<u64>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The image file to create.
    pub output: PathBuf,
    /// Virtual disk size, e.g. 2G, 512M, 1T (powers of 1024) or bytes.
    #[arg(short, long, value_parser = crate::size::parse_size)]
    pub size: u64,
    /// Output format.
    #[arg(
        short = 'O',
        long = "output-format",
        value_name = "FMT",
        default_value = "raw"
    )]
    pub output_format: ImageFormatArg,
    #[command(flatten)]
    pub qcow2: Qcow2OutArgs,
    /// Write an empty partition table of this type.
    #[arg(long, value_name = "TYPE")]
    pub table: Option<TableArg>,
    /// A partition (needs --table): size=SIZE|rest,type=ALIAS[,name=NAME][,bootable][,fs=TYPE][,from=TREE]
    /// (see PARTITION SPECS). Repeatable.
    #[arg(long = "part", value_name = "SPEC", requires = "table")]
    pub parts: Vec<String>,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
}
