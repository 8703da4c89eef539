//! The output options of the command line (`-O`, `--compress`, `--cluster-size`, and
//! `-o`/`--overlay`/`--in-place`) made into the plain values the services take
//! ([`OutputOptions`], [`DestinationArgs`]): the one place the clap types are converted.

use super::{CompressArg, EditOutArgs, ImageFormatArg, Qcow2OutArgs};
use crate::edit::deliver::{Destination, DestinationArgs};
use crate::edit::output_options::{OutputFormat, OutputOptions, Qcow2Options};
use anyhow::Result;
use std::path::Path;
use subroot_formats::qcow2::CompressionType;

impl From<ImageFormatArg> for OutputFormat {
    fn from(f: ImageFormatArg) -> Self {
        match f {
            ImageFormatArg::Raw => OutputFormat::Raw,
            ImageFormatArg::Qcow2 => OutputFormat::Qcow2,
            ImageFormatArg::Vhd => OutputFormat::Vhd,
            ImageFormatArg::Vhdx => OutputFormat::Vhdx,
            ImageFormatArg::Vmdk => OutputFormat::Vmdk,
        }
    }
}

impl From<&Qcow2OutArgs> for Qcow2Options {
    fn from(a: &Qcow2OutArgs) -> Self {
        Qcow2Options {
            compression: a.compress.map(|c| match c {
                CompressArg::Zlib => CompressionType::Zlib,
                CompressArg::Zstd => CompressionType::Zstd,
            }),
            cluster_size: a.cluster_size,
        }
    }
}

/// The options of a new image: `-O FMT` (`None`: follow the input) and the qcow2 options.
pub fn output_options(format: Option<ImageFormatArg>, qcow2: &Qcow2OutArgs) -> OutputOptions {
    OutputOptions {
        format: format.map(OutputFormat::from),
        qcow2: qcow2.into(),
    }
}

impl EditOutArgs {
    /// The destination options as given.
    pub fn destination_args(&self) -> DestinationArgs<'_> {
        DestinationArgs {
            output: self.output.as_deref(),
            overlay: self.overlay.as_deref(),
            in_place: self.in_place,
            image: output_options(self.output_format, &self.qcow2),
            force: self.force,
        }
    }

    /// Where the rewritten `image` goes (see [`DestinationArgs::destination`]).
    pub fn destination(&self, image: &Path) -> Result<Destination> {
        self.destination_args().destination(image)
    }
}
