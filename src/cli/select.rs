//! The partition-selection arguments shared by every command that reads or writes a
//! filesystem inside an image.

use super::InputFormatArg;
use clap::Args;

/// What `-p` names: a partition number (0: the whole disk) or an LVM2 logical volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartSpec {
    Number(u32),
    Volume { vg: String, lv: String },
}

impl std::str::FromStr for PartSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(n) = s.parse::<u32>() {
            return Ok(PartSpec::Number(n));
        }
        match s.split_once('/') {
            Some((vg, lv)) if !vg.is_empty() && !lv.is_empty() && !lv.contains('/') => {
                Ok(PartSpec::Volume {
                    vg: vg.to_string(),
                    lv: lv.to_string(),
                })
            }
            _ => Err(format!(
                "{s:?} is neither a partition number nor an LVM volume VG/LV"
            )),
        }
    }
}

impl std::fmt::Display for PartSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartSpec::Number(n) => write!(f, "{n}"),
            PartSpec::Volume { vg, lv } => write!(f, "{vg}/{lv}"),
        }
    }
}

/// Which filesystem of the image to use.
#[derive(Debug, Args, Clone)]
pub struct PartitionArgs {
    /// Partition number (as in `subroot info`; MBR logicals start at 5), 0 for the whole
    /// disk whatever sector 0 holds, or an LVM2 logical volume VG/LV (read commands only:
    /// ls, cat, export, extract, manifest). Default: the partition (or, for reading, the
    /// logical volume) holding a Linux root (/etc/os-release or /usr/lib/os-release), else
    /// the only filesystem; the choice is reported on stderr.
    #[arg(short = 'p', long = "partition", value_name = "N|VG/LV")]
    pub partition: Option<PartSpec>,
    /// Treat the image as this format instead of detecting it.
    #[arg(short = 'f', long = "format", value_name = "FMT")]
    pub format: Option<InputFormatArg>,
}
