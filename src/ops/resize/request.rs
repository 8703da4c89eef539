//! What `subroot resize` is asked to do, independent of the command line.

use crate::cli::InputFormatArg;
use crate::edit::deliver::DestinationArgs;
use crate::edit::engine::Engine;
use crate::edit::output_options::OutputOptions;
use std::path::PathBuf;

/// The size asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// The disk becomes this many bytes (`--size SIZE`).
    GrowTo(u64),
    /// The disk gets this many more bytes (`--size +SIZE`).
    GrowBy(u64),
    /// The filesystem shrinks to its used size plus `margin` bytes, then the partition and
    /// the disk (`--shrink-to-fit [--margin SIZE]`).
    ShrinkToFit { margin: u64 },
}

/// A resize, as asked.
#[derive(Debug, Clone)]
pub struct ResizeRequest {
    pub image: PathBuf,
    pub format: Option<InputFormatArg>,
    pub goal: Goal,
    /// `-p N`; `None`: the last partition.
    pub partition: Option<u32>,
    /// `--part-size`; `None`: up to the end of the disk.
    pub part_size: Option<u64>,
    /// `--engine`; `None`: auto.
    pub engine: Option<Engine>,
    pub dry_run: bool,
    pub json: bool,
    pub output: Option<PathBuf>,
    pub overlay: Option<PathBuf>,
    pub in_place: bool,
    /// The new image's format and qcow2 options.
    pub image_options: OutputOptions,
    pub force: bool,
}

impl ResizeRequest {
    /// The destination options, as every image-changing command has them.
    pub fn destination_args(&self) -> DestinationArgs<'_> {
        DestinationArgs {
            output: self.output.as_deref(),
            overlay: self.overlay.as_deref(),
            in_place: self.in_place,
            image: self.image_options,
            force: self.force,
        }
    }
}
