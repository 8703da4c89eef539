//! Arguments of the `subroot roots` family: list the roots of a relayouted image
//! (`roots IMAGE`, also `roots list IMAGE`), `add` one as a clone of another, `remove` one.
//! `default` makes a root the one that boots (its work is `crate::ops::roots::default`).

use super::disk::Qcow2OutArgs;
use super::help;
use super::select::PartitionArgs;
use super::write::EditOutArgs;
use super::{ImageFormatArg, InputFormatArg};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// The top-level directories `roots add` copies instead of hard-linking, unless `--copied`
/// says otherwise: the places people and programs change files in place (open for
/// writing, append, truncate) rather than by writing a new file and renaming it over the
/// old one, as package managers do.
pub const DEFAULT_COPIED: &str = "etc,root,tmp,usr/local";

/// `subroot roots IMAGE` or `subroot roots SUBCOMMAND`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RootsArgs {
    #[command(subcommand)]
    pub command: Option<RootsCommand>,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, Subcommand)]
pub enum RootsCommand {
    /// List the roots of a relayouted image, which one each boot entry selects, and the default (as `roots IMAGE`).
    #[command(
        long_about = super::help::ROOTS_LIST,
        after_help = "EXAMPLES:\n  subroot roots list debian-r0.qcow2\n  \
subroot roots list --json debian-r0.qcow2 | jq -r '.roots[].name'"
    )]
    List(ListArgs),
    /// Add a root: a clone of another root sharing its files by hard links (no file data copied).
    #[command(
        long_about = super::help::ROOTS_ADD,
        after_help = "EXAMPLES:\n  subroot roots add debian-r0.qcow2 r1 --from r0 --overlay r1.qcow2\n  \
subroot roots add debian-r0.raw r1 --from r0 --in-place\n  \
subroot roots add debian-r0.raw r1 --from r0 --copy -o two-roots.raw   # a full copy, nothing shared\n  \
subroot roots add debian-r0.raw r1 --from r0 --copied etc,root,srv -o out.raw\n  \
subroot roots add debian-r0.raw r1 --from r0 --copied '' -o out.raw    # link everything, /etc too"
    )]
    Add(AddArgs),
    /// Remove a root (not the default one, not the last one).
    #[command(
        long_about = super::help::ROOTS_REMOVE,
        after_help = "EXAMPLES:\n  subroot roots remove two-roots.qcow2 r1 --in-place\n  \
subroot roots remove two-roots.raw r1 -o one-root.raw"
    )]
    Remove(RemoveArgs),
    /// Boot another root: every kernel command line says subroot=ROOT (or, with --entry, one boot entry per root).
    #[command(
        long_about = help::ROOTS_DEFAULT,
        after_help = "EXAMPLES:\n  subroot roots default debian-r0.qcow2 r1 --dry-run\n  \
subroot roots default debian-r0.qcow2 r1 --overlay boot-r1.qcow2\n  \
subroot roots default debian-r0.raw r0 --in-place      # switch back\n  \
subroot roots default debian-r0.raw --entry -o menu.raw   # a boot menu entry per root\n  \
subroot roots default debian-r0.raw r1 --dry-run --json | jq -r '.edits[].path'"
    )]
    Default(RootsDefaultArgs),
    /// Move ROOT back to the top and remove what relayout added: relayout --undo.
    #[command(
        long_about = help::ROOTS_FLATTEN,
        after_help = "EXAMPLES:\n  subroot roots flatten debian-r0.qcow2 r0 --dry-run\n  \
subroot roots flatten debian-r0.qcow2 r0 -o debian-flat.qcow2"
    )]
    Flatten(RootsFlattenArgs),
}

/// The image whose roots are listed.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The relayouted image (raw, qcow2, VHD, VHDX, VMDK, VDI).
    #[arg(required = true)]
    pub image: Option<PathBuf>,
    /// Treat the image as this format instead of detecting it.
    #[arg(short = 'f', long = "format", value_name = "FMT")]
    pub format: Option<InputFormatArg>,
    /// Print JSON (see JSON OUTPUT).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The relayouted image.
    pub image: PathBuf,
    /// The new root's name: a new top-level directory of the root filesystem.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The root to clone.
    #[arg(long, value_name = "ROOT")]
    pub from: String,
    /// Copy every regular file's data instead of hard-linking it: nothing is shared.
    #[arg(long)]
    pub copy: bool,
    /// Directories of the root (comma-separated, relative to it) whose regular files are
    /// copied rather than linked; '' links everything.
    #[arg(long, value_name = "DIRS", default_value = DEFAULT_COPIED, conflicts_with = "copy")]
    pub copied: String,
    /// Treat the image as this format instead of detecting it.
    #[arg(short = 'f', long = "format", value_name = "FMT")]
    pub format: Option<InputFormatArg>,
    #[command(flatten)]
    pub out: EditOutArgs,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The relayouted image.
    pub image: PathBuf,
    /// The root to remove.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Treat the image as this format instead of detecting it.
    #[arg(short = 'f', long = "format", value_name = "FMT")]
    pub format: Option<InputFormatArg>,
    #[command(flatten)]
    pub out: EditOutArgs,
}

#[derive(Debug, Args)]
pub struct RootsDefaultArgs {
    /// A relayouted image (raw or qcow2; only changed with --in-place).
    pub image: PathBuf,
    /// The root to boot: a top-level directory holding an operating system (r0, r1, ...).
    /// With --entry: the root to add an entry for (default: every root).
    #[arg(value_name = "ROOT", required_unless_present = "entry")]
    pub root: Option<String>,
    /// Keep the default and add a boot entry per root instead (GRUB menuentry, BLS entry).
    #[arg(long)]
    pub entry: bool,
    #[command(flatten)]
    pub part: PartitionArgs,
    #[command(flatten)]
    pub out: BootEditOutArgs,
}

#[derive(Debug, Args)]
pub struct RootsFlattenArgs {
    /// A relayouted image with one root (raw or qcow2; only changed with --in-place).
    pub image: PathBuf,
    /// The root that goes back to the top.
    #[arg(value_name = "ROOT")]
    pub root: String,
    #[command(flatten)]
    pub part: PartitionArgs,
    #[command(flatten)]
    pub out: BootEditOutArgs,
}

/// Where `roots default` and `roots flatten` write, or `--dry-run`.
#[derive(Debug, Args)]
pub struct BootEditOutArgs {
    /// Write the result to OUT: a complete new image.
    #[arg(short = 'o', long = "output", value_name = "OUT", required_unless_present_any = ["dry_run", "in_place", "overlay"], conflicts_with_all = ["in_place", "overlay"])]
    pub output: Option<PathBuf>,
    /// Write only what changed, as a qcow2 overlay OUT whose backing file is the input.
    #[arg(long, value_name = "OUT", conflicts_with = "in_place")]
    pub overlay: Option<PathBuf>,
    /// Change the input image itself, only the changed blocks, under an undo log.
    #[arg(long)]
    pub in_place: bool,
    /// Print the changes and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the changes as JSON (fields: see JSON OUTPUT).
    #[arg(long)]
    pub json: bool,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// After the edit: `quick` (subroot re-reads what it touched) or `full` (also
    /// e2fsck -fn of each edited filesystem).
    #[arg(long, value_enum, default_value = "quick", value_name = "LEVEL")]
    pub verify: crate::edit::full_check::Verify,
    /// Output format with -o (default: the input's).
    #[arg(short = 'O', long = "output-format", value_name = "FMT")]
    pub output_format: Option<ImageFormatArg>,
    #[command(flatten)]
    pub qcow2: Qcow2OutArgs,
}

impl BootEditOutArgs {
    /// The destination options as given.
    pub fn dest(&self) -> crate::edit::deliver::DestinationArgs<'_> {
        crate::edit::deliver::DestinationArgs {
            output: self.output.as_deref(),
            overlay: self.overlay.as_deref(),
            in_place: self.in_place,
            image: super::output::output_options(self.output_format, &self.qcow2),
            force: self.force,
        }
    }
}

impl RootsDefaultArgs {
    /// The request the command line asks for.
    pub fn request(&self) -> crate::ops::roots::default::DefaultRequest<'_> {
        crate::ops::roots::default::DefaultRequest {
            dest: self.out.dest(),
            input: &self.image,
            part: (&self.part).into(),
            root: self.root.as_deref(),
            entry: self.entry,
            dry_run: self.out.dry_run,
            json: self.out.json,
            verify: self.out.verify,
        }
    }
}

impl RootsFlattenArgs {
    /// The undo the command line asks for.
    pub fn request(&self) -> crate::ops::relayout::undo::UndoRequest<'_> {
        crate::ops::relayout::undo::UndoRequest {
            input: &self.image,
            part: (&self.part).into(),
            subroot: &self.root,
            dest: self.out.dest(),
            dry_run: self.out.dry_run,
            json: self.out.json,
            verify: self.out.verify,
        }
    }
}
