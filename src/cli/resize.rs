//! Arguments of `subroot resize`, and the one place they become a [`ResizeRequest`].

use super::disk::Qcow2OutArgs;
use super::{ImageFormatArg, InputFormatArg};
use crate::edit::engine::Engine;
use crate::ops::resize::request::{Goal, ResizeRequest};
use crate::size::parse_size;
use anyhow::{anyhow, Context};
use clap::Args;
use std::path::PathBuf;

/// The engines that resize an ext filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResizeEngineArg {
    /// `edit` when the filesystem allows it, else `rebuild` (saying why).
    Auto,
    /// Grow the filesystem in process where it lies: only the new groups' metadata is
    /// written, whatever the data held.
    Edit,
    /// e2fsprogs' resize2fs on a sparse work copy of the partition.
    Rebuild,
}

#[derive(Debug, Args)]
pub struct ResizeArgs {
    /// The disk image (raw or qcow2; only changed with --in-place).
    pub image: PathBuf,
    /// The new size of the disk: SIZE (e.g. 20G), or +SIZE to add that much. Only grows;
    /// see --shrink-to-fit for the other direction.
    #[arg(
        long,
        value_name = "SIZE",
        required_unless_present = "shrink_to_fit",
        conflicts_with = "shrink_to_fit",
        allow_hyphen_values = true
    )]
    pub size: Option<String>,
    /// Shrink the filesystem to its used size plus --margin (resize2fs -M, identity kept),
    /// then the partition and the disk after it (written with -o only).
    #[arg(long)]
    pub shrink_to_fit: bool,
    /// Free space to leave in the shrunk filesystem [default: 0].
    #[arg(long, value_name = "SIZE", requires = "shrink_to_fit", value_parser = parse_size)]
    pub margin: Option<u64>,
    /// The partition that grows: it must be the last one on the disk (default: the last
    /// partition).
    #[arg(short = 'p', long = "partition", value_name = "N")]
    pub partition: Option<u32>,
    /// Treat the image as this format instead of detecting it.
    #[arg(short = 'f', long = "format", value_name = "FMT")]
    pub format: Option<InputFormatArg>,
    /// The partition's new size (default: all the space up to the end of the disk).
    #[arg(long, value_name = "SIZE", conflicts_with = "shrink_to_fit", value_parser = parse_size)]
    pub part_size: Option<u64>,
    /// Write the resized image to OUT: a complete new image.
    #[arg(short = 'o', long = "output", value_name = "OUT", required_unless_present_any = ["dry_run", "in_place", "overlay"], conflicts_with_all = ["in_place", "overlay"])]
    pub output: Option<PathBuf>,
    /// Write only what changed, as a qcow2 overlay OUT (larger than its backing file, the
    /// input).
    #[arg(long, value_name = "OUT", conflicts_with_all = ["in_place", "shrink_to_fit"])]
    pub overlay: Option<PathBuf>,
    /// Grow the input image itself, under an undo log (crash safe, as for every
    /// --in-place edit).
    #[arg(long, conflicts_with = "shrink_to_fit")]
    pub in_place: bool,
    /// Print the plan and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the plan as JSON (fields: see JSON OUTPUT).
    #[arg(long)]
    pub json: bool,
    /// How an ext filesystem is resized (see ENGINES).
    #[arg(long, value_enum, value_name = "ENGINE", default_value = "auto")]
    pub engine: ResizeEngineArg,
    /// Output format with -o (default: the input's).
    #[arg(short = 'O', long = "output-format", value_name = "FMT")]
    pub output_format: Option<ImageFormatArg>,
    #[command(flatten)]
    pub qcow2: Qcow2OutArgs,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

impl TryFrom<&ResizeArgs> for ResizeRequest {
    type Error = anyhow::Error;

    /// The request the command line asks for; sizes are parsed here.
    fn try_from(a: &ResizeArgs) -> anyhow::Result<Self> {
        let goal = match (&a.size, a.shrink_to_fit) {
            (_, true) => Goal::ShrinkToFit {
                margin: a.margin.unwrap_or(0),
            },
            (Some(s), false) => match s.strip_prefix('+') {
                Some(d) => Goal::GrowBy(parse_size(d).map_err(|e| anyhow!(e)).context("--size")?),
                None => Goal::GrowTo(parse_size(s).map_err(|e| anyhow!(e)).context("--size")?),
            },
            (None, false) => anyhow::bail!("give --size SIZE, --size +SIZE or --shrink-to-fit"),
        };
        Ok(ResizeRequest {
            image: a.image.clone(),
            format: a.format,
            goal,
            partition: a.partition,
            part_size: a.part_size,
            engine: match a.engine {
                ResizeEngineArg::Auto => None,
                ResizeEngineArg::Edit => Some(Engine::Edit),
                ResizeEngineArg::Rebuild => Some(Engine::Rebuild),
            },
            dry_run: a.dry_run,
            json: a.json,
            output: a.output.clone(),
            overlay: a.overlay.clone(),
            in_place: a.in_place,
            image_options: super::output::output_options(a.output_format, &a.qcow2),
            force: a.force,
        })
    }
}
