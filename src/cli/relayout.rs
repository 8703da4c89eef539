//! Arguments of `subroot relayout`, and the one place they become a
//! [`RelayoutRequest`].

use super::disk::Qcow2OutArgs;
use super::select::PartitionArgs;
use super::ImageFormatArg;
use crate::edit::engine::Engine;
use crate::ops::relayout::plan::PlanOptions;
use crate::ops::relayout::request::RelayoutRequest;
use clap::Args;
use std::path::PathBuf;

/// The ext engines `--engine` asks for (see `src/edit/engine.rs`), shared by relayout,
/// copy-in and rm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineArg {
    /// `edit` when the filesystem allows it, else `rebuild`.
    Auto,
    /// Edit a copy of the filesystem in place.
    Edit,
    /// Rebuild the filesystem with mke2fs -d.
    Rebuild,
}

impl EngineArg {
    /// The engine asked for; `None` for `auto` (decided per filesystem by
    /// [`crate::edit::engine::choose`]).
    pub fn asked(self) -> Option<Engine> {
        match self {
            EngineArg::Auto => None,
            EngineArg::Edit => Some(Engine::Edit),
            EngineArg::Rebuild => Some(Engine::Rebuild),
        }
    }
}

#[derive(Debug, Args)]
pub struct RelayoutArgs {
    /// The installed Linux image (raw or qcow2; only changed with --in-place).
    pub input: PathBuf,
    /// The output image: a complete new image, written under a temporary name, then renamed.
    #[arg(short = 'o', long = "output", value_name = "OUT", required_unless_present_any = ["dry_run", "in_place", "overlay"], conflicts_with_all = ["in_place", "overlay"])]
    pub output: Option<PathBuf>,
    /// Write only what changed, as a qcow2 overlay OUT whose backing file is the input.
    #[arg(long, value_name = "OUT", conflicts_with = "in_place")]
    pub overlay: Option<PathBuf>,
    #[command(flatten)]
    pub part: PartitionArgs,
    /// The directory the operating system moves into.
    #[arg(long, value_name = "DIR", default_value = "r0")]
    pub subroot: String,
    /// Top-level directories that stay shared (bind-mounted into the subroot at boot).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = super::DEFAULT_SHARED
    )]
    pub shared: Vec<String>,
    /// Move only these top-level entries (comma- or space-separated), e.g. the classic list
    /// of top-level OS directories "bin dev etc lib lib32 lib64 media mnt opt proc root run
    /// sbin selinux srv sys tmp usr";
    /// names that do not exist are skipped and reported. Default: everything except the
    /// shared directories and lost+found.
    #[arg(long = "move", value_name = "LIST")]
    pub move_list: Option<String>,
    /// Print the plan and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the plan as JSON (fields: see JSON OUTPUT).
    #[arg(long)]
    pub json: bool,
    /// Change the input image itself, writing only the blocks that change, under an undo
    /// log (crash safe; see OUTPUT).
    #[arg(long)]
    pub in_place: bool,
    /// How the root filesystem (and a separate /boot) is rewritten: `edit` a copy in
    /// place (moves are new directory entries, no file data is copied: close to copy
    /// speed), `rebuild` it with mke2fs -d from the new tree (every file copied; the
    /// result is compact), or `auto`: edit when the filesystem allows, else rebuild.
    #[arg(long, value_enum, value_name = "ENGINE", default_value = "auto")]
    pub engine: EngineArg,
    /// Go on although an initrd already has the subroot hook (an image relayouted
    /// before): the hook is replaced by this version's.
    #[arg(long)]
    pub refresh_hook: bool,
    /// Undo a relayout: move the system in --subroot back to the top and remove what
    /// relayout added (see UNDO).
    #[arg(long, conflicts_with_all = ["move_list", "refresh_hook", "engine"])]
    pub undo: bool,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// After the edit engine: `quick` (subroot re-reads what it touched) or `full` (also
    /// e2fsck -fn of each edited filesystem, flattened into a temporary file).
    #[arg(long, value_enum, default_value = "quick", value_name = "LEVEL")]
    pub verify: crate::edit::full_check::Verify,
    /// Output format (default: the input's, as for every command that rewrites an image).
    #[arg(short = 'O', long = "output-format", value_name = "FMT")]
    pub output_format: Option<ImageFormatArg>,
    #[command(flatten)]
    pub qcow2: Qcow2OutArgs,
}

impl TryFrom<&RelayoutArgs> for RelayoutRequest {
    type Error = anyhow::Error;

    /// The request the command line asks for; the plan options are checked here.
    fn try_from(a: &RelayoutArgs) -> anyhow::Result<Self> {
        Ok(RelayoutRequest {
            input: a.input.clone(),
            part: (&a.part).into(),
            output: a.output.clone(),
            overlay: a.overlay.clone(),
            in_place: a.in_place,
            replace_output: a.force,
            verify: a.verify,
            dry_run: a.dry_run,
            json: a.json,
            plan: PlanOptions::new(
                &a.subroot,
                &a.shared,
                a.move_list.as_deref(),
                a.refresh_hook,
            )?,
            engine: a.engine.asked(),
            image_options: super::output::output_options(a.output_format, &a.qcow2),
            work_dir: None,
        })
    }
}
