//! What a written image looks like, as plain values: its container format (`-O`) and the
//! qcow2 options (`--compress`, `--cluster-size`). Made from the command line in one place
//! (`src/cli/output.rs`); every service that writes an image ([`super::write_image`],
//! [`super::deliver`], the requests of `relayout`, `resize`, `batch`) takes these.

use subroot_formats::image::ImageFormat;
use subroot_formats::qcow2::CompressionType;

/// A container format subroot writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Raw,
    Qcow2,
    /// A fixed VHD (what Azure takes).
    Vhd,
    /// A dynamic VHDX (Hyper-V).
    Vhdx,
    /// VMDK streamOptimized.
    Vmdk,
}

impl OutputFormat {
    /// The container format read back.
    pub fn image_format(self) -> ImageFormat {
        match self {
            OutputFormat::Raw => ImageFormat::Raw,
            OutputFormat::Qcow2 => ImageFormat::Qcow2,
            OutputFormat::Vhd => ImageFormat::Vhd,
            OutputFormat::Vhdx => ImageFormat::Vhdx,
            OutputFormat::Vmdk => ImageFormat::Vmdk,
        }
    }

    /// "raw", "qcow2", "vhd", "vhdx" or "vmdk" (also the file extension `batch` gives).
    pub fn name(self) -> &'static str {
        self.image_format().name()
    }

    /// The output format when none is asked for: the input's container, so a qcow2 image
    /// stays qcow2 and everything else (raw, and VHD, VHDX, VMDK and VDI, which are only
    /// read) is written raw. The one default of every command that rewrites an image
    /// (`relayout`, `mkfs`, `copy-in`, `rm`); `convert` and `batch` name their format
    /// explicitly (batch names outputs by it before opening any input).
    pub fn following(input: ImageFormat) -> OutputFormat {
        match input {
            ImageFormat::Qcow2 => OutputFormat::Qcow2,
            ImageFormat::Raw
            | ImageFormat::Vhd
            | ImageFormat::Vhdx
            | ImageFormat::Vmdk
            | ImageFormat::Vdi => OutputFormat::Raw,
        }
    }
}

/// Options of a qcow2 output (refused for other formats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Qcow2Options {
    /// Compress clusters.
    pub compression: Option<CompressionType>,
    /// The cluster size (default: 64 KiB).
    pub cluster_size: Option<u64>,
}

/// The options of a new image, as asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputOptions {
    /// `None`: follow the input ([`OutputFormat::following`]).
    pub format: Option<OutputFormat>,
    pub qcow2: Qcow2Options,
}
