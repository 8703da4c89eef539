//! The clap definitions of every command, with the help texts and examples.
//!
//! Completions and the man page are generated from these definitions
//! (`subroot completions SHELL`, `subroot man`), so they never drift from the parser.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Edit Linux disk images entirely in userspace: no root, loop mounts, nbd, FUSE or KVM.
#[derive(Debug, Parser)]
#[command(
    name = "subroot",
    version,
    about,
    long_about = "subroot reads and writes disk images (raw, qcow2), their partition tables (MBR, GPT) \
and filesystems as an ordinary user, and converts installed Linux images so that they boot \
from a sub-directory of their root filesystem (subroot=r0).",
    after_help = "EXIT STATUS:\n  0  success\n  1  the operation failed (I/O error, a tool it runs failed)\n  \
2  usage error (bad arguments)\n  3  the input is invalid or uses something unsupported\n  \
130  interrupted (SIGINT/SIGTERM); no output was left behind"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more about what is being done (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show an image's container, partition table, partitions and filesystems.
    #[command(
        after_help = "EXAMPLES:\n  subroot info debian.qcow2\n  subroot info --json disk.raw | jq '.partitions[].filesystem'"
    )]
    Info(InfoArgs),
    /// Copy an image to a new raw or qcow2 file, flattening backing chains and keeping it sparse.
    #[command(
        after_help = "EXAMPLES:\n  subroot convert debian.qcow2 debian.raw\n  \
subroot convert disk.raw disk.qcow2 -O qcow2 -c zstd\n  \
subroot convert overlay.qcow2 flat.qcow2 -O qcow2 --cluster-size 2M"
    )]
    Convert(ConvertArgs),
    /// Create a new empty image, optionally with a partition table.
    #[command(after_help = "EXAMPLES:\n  subroot create disk.raw --size 2G\n  \
subroot create disk.qcow2 -O qcow2 --size 8G --table gpt \\\n      --part size=200M,type=esp,name=EFI --part size=rest,type=linux,name=root\n  \
subroot create disk.raw --size 1G --table mbr --part size=100M,type=linux,bootable --part size=rest,type=swap\n\n\
PARTITION SPECS:\n  size=SIZE|rest   size with K/M/G/T suffix (powers of 1024), or `rest` for the remaining space\n  \
type=ALIAS|CODE  linux, esp, swap, bios, lvm, raid, home, fat32; an MBR code (0x83) or a GPT type GUID\n  \
name=NAME        GPT partition name\n  bootable         MBR active flag / GPT legacy BIOS bootable attribute")]
    Create(CreateArgs),
    /// Print shell completions for SHELL to stdout.
    #[command(
        after_help = "EXAMPLES:\n  subroot completions bash > /etc/bash_completion.d/subroot\n  subroot completions zsh > ~/.zfunc/_subroot"
    )]
    Completions {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    #[command(after_help = "EXAMPLES:\n  subroot man > subroot.1 && man -l subroot.1")]
    Man,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The image file (raw or qcow2; the format is detected).
    pub image: PathBuf,
    /// Treat the image as this format instead of detecting it.
    #[arg(short = 'f', long = "format", value_name = "FMT")]
    pub format: Option<ImageFormatArg>,
    /// Print JSON (schema in README.md) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The input image (raw or qcow2, with any backing chain).
    pub input: PathBuf,
    /// The output file; written beside itself under a temporary name, then renamed.
    pub output: PathBuf,
    /// Treat the input as this format instead of detecting it.
    #[arg(short = 'f', long = "format", value_name = "FMT")]
    pub format: Option<ImageFormatArg>,
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
    /// A partition (needs --table): size=SIZE|rest,type=ALIAS[,name=NAME][,bootable]. Repeatable.
    #[arg(long = "part", value_name = "SPEC", requires = "table")]
    pub parts: Vec<String>,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageFormatArg {
    Raw,
    Qcow2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressArg {
    Zlib,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableArg {
    Mbr,
    Gpt,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn compress_flag_defaults_to_zlib() {
        let cli =
            Cli::try_parse_from(["subroot", "convert", "a", "b", "-O", "qcow2", "-c"]).unwrap();
        match cli.command {
            Command::Convert(c) => assert_eq!(c.qcow2.compress, Some(CompressArg::Zlib)),
            other => panic!("parsed as {other:?}"),
        }
    }
}
