//! The partition-selection arguments shared by every command that reads or writes a
//! filesystem inside an image.

use super::InputFormatArg;
use clap::Args;

/// Which filesystem of the image to use.
#[derive(Debug, Args, Clone)]
pub struct PartitionArgs {
    /// Partition number (as in `subroot info`; MBR logicals start at 5), or 0 for the
    /// whole disk whatever sector 0 holds. Default: the partition holding a Linux root
    /// (/etc/os-release or /usr/lib/os-release), else the only filesystem; the choice is
    /// reported on stderr.
    #[arg(short = 'p', long = "partition", value_name = "N")]
    pub partition: Option<u32>,
    /// Treat the image as this format instead of detecting it.
    #[arg(short = 'f', long = "format", value_name = "FMT")]
    pub format: Option<InputFormatArg>,
}
