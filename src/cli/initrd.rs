//! Arguments of the `subroot initrd` family: `examine`, `ls`, `extract`, `create`,
//! `add-subroot`.

use super::PartitionArgs;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `subroot initrd SUBCOMMAND`.
#[derive(Debug, Args)]
pub struct InitrdArgs {
    #[command(subcommand)]
    pub command: InitrdCommand,
}

#[derive(Debug, Subcommand)]
pub enum InitrdCommand {
    /// Show an initrd's segments (offset, length, compression, archives, entries,
    /// uncompressed size, xz check), its flavour and whether the subroot hook is present.
    #[command(
        long_about = super::help::INITRD_EXAMINE,
        after_help = "EXAMPLES:\n  subroot initrd examine /boot/initrd.img-6.1.0-18-amd64\n  \
subroot initrd examine --json initrd.img | jq '.segments[].compression'\n  \
subroot initrd examine --image debian.qcow2 /boot/initrd.img"
    )]
    Examine(ExamineArgs),
    /// List the entries as the kernel unpacks them: every path once, from the segment that
    /// wins (a later entry replaces an earlier one of the same path); --segments lists every
    /// entry of every segment, in order (like `cpio -t`; `-l` like `cpio -tvn`).
    #[command(long_about = super::help::INITRD_LS, after_help = "EXAMPLES:\n  subroot initrd ls initrd.img\n  \
subroot initrd ls -l initrd.img | grep scripts/\n  \
subroot initrd ls --segments --json initrd.img | jq -r '.[] | select(.segment == 2) | .name'\n  \
subroot initrd ls --json --image disk.raw -p 2 /boot/initrd.img | jq -r '.[].name'")]
    Ls(LsArgs),
    /// Extract every entry into a host directory (refusing absolute and `..` names).
    #[command(
        long_about = super::help::INITRD_EXTRACT,
        after_help = "EXAMPLES:\n  subroot initrd extract initrd.img -C /tmp/initrd\n  \
subroot initrd extract --image debian.qcow2 /boot/initrd.img -C out"
    )]
    Extract(ExtractArgs),
    /// Create an initrd from host directories and initrd or cpio files, one segment each.
    #[command(
        long_about = super::help::INITRD_CREATE,
        after_help = "EXAMPLES:\n  subroot initrd create -o initrd.img --compress zstd:19 early.cpio rootdir/\n  \
SOURCE_DATE_EPOCH=0 subroot initrd create -o new.img microcode.cpio main.img\n\n\
Directory sources are archived in sorted order; SOURCE_DATE_EPOCH clamps their mtimes.\n\
Initrd and cpio sources are copied byte for byte as their own segment(s)."
    )]
    Create(CreateInitrdArgs),
    /// Add the subroot boot hook (initramfs-tools or dracut) to an initrd by appending one
    /// small segment; idempotent.
    #[command(
        long_about = super::help::INITRD_ADD_SUBROOT,
        after_help = "EXAMPLES:\n  subroot initrd add-subroot /boot/initrd.img-6.1.0-18-amd64 -o initrd-subroot.img\n  \
subroot initrd add-subroot initrd.img -o out.img --shared boot,var,home,srv\n  \
subroot initrd add-subroot --in-place /srv/tftp/initrd.img   # append to the file itself\n  \
subroot initrd add-subroot --refresh-hook --shared boot,srv initrd-subroot.img -o refreshed.img\n  \
subroot initrd add-subroot --recompress --compress zstd:19 initrd.img -o out.img\n  \
subroot initrd add-subroot --image debian.qcow2 /boot/initrd.img -o initrd.img\n\n\
The input's bytes are kept and one segment holding the hook (and, for initramfs-tools, the\n\
local-bottom ORDER file with the hook's line added) is appended, compressed like the last\n\
segment (gzip, zstd, xz or none); the kernel lets it replace the older copies. A segment\n\
appended earlier is replaced (--refresh-hook), never stacked. lzma, bzip2 and lz4\n\
initrds are recompressed. --in-place writes only the segment into FILE, crash safe.\n\
If the same hook is already there, prints \"already present\" and writes an identical copy.\n\
A different hook (other --shared, older subroot) is refused unless --force."
    )]
    AddSubroot(AddSubrootArgs),
}

/// Where the initrd is: a host file, or a file inside a filesystem of an image.
#[derive(Debug, Args, Clone)]
pub struct InitrdInput {
    /// The initrd: a host file, or with --image an absolute path inside the image's filesystem.
    pub file: PathBuf,
    /// Read FILE from inside this disk image (raw or qcow2; an ext2/3/4 filesystem), in place.
    #[arg(long, value_name = "IMG")]
    pub image: Option<PathBuf>,
    #[command(flatten)]
    pub partition: PartitionArgs,
}

#[derive(Debug, Args)]
pub struct ExamineArgs {
    #[command(flatten)]
    pub input: InitrdInput,
    /// Print JSON (fields: see JSON OUTPUT).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub input: InitrdInput,
    /// Long listing: mode, links, uid, gid, size (or device numbers), mtime (UTC), name.
    #[arg(short = 'l', long = "long")]
    pub long: bool,
    /// Every entry of every segment, in order, replaced ones included (the raw listing).
    #[arg(long)]
    pub segments: bool,
    /// Print JSON (fields: see JSON OUTPUT).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    #[command(flatten)]
    pub input: InitrdInput,
    /// The directory to extract into (created if missing).
    #[arg(short = 'C', long = "directory", value_name = "DIR")]
    pub directory: PathBuf,
}

#[derive(Debug, Args)]
pub struct CreateInitrdArgs {
    /// The initrd to write.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Compression of the segments made from directories: none, gzip, zstd, xz, lzma,
    /// lz4, bzip2, optionally with a level (zstd:19).
    #[arg(long = "compress", value_name = "C[:LEVEL]", default_value = "zstd")]
    pub compress: String,
    /// Host directories and initrd/cpio files, one segment (or more) each, in order.
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct AddSubrootArgs {
    #[command(flatten)]
    pub input: InitrdInput,
    /// The initrd to write (the input is not changed).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "OUT",
        required_unless_present = "in_place",
        conflicts_with = "in_place"
    )]
    pub output: Option<PathBuf>,
    /// Append the hook segment to FILE itself (a host file): only the few KiB of the
    /// segment are written, crash safe under FILE.subroot-undo (an interrupted run is
    /// rolled back by the next one, or by `subroot recover FILE`). With --refresh-hook the
    /// segment subroot appended earlier is replaced.
    #[arg(long, conflicts_with_all = ["recompress", "compress", "force"])]
    pub in_place: bool,
    /// Directories of the physical root bind-mounted into the subroot.
    #[arg(
        long,
        value_name = "DIR,...",
        value_delimiter = ',',
        default_value = super::DEFAULT_SHARED
    )]
    pub shared: Vec<String>,
    /// Put the hook inside the main segment, re-encoding it (slow: the whole initrd is
    /// decompressed and compressed again), instead of appending a segment.
    #[arg(long)]
    pub recompress: bool,
    /// Compression of the re-encoded main segment (C or C:LEVEL); implies --recompress.
    /// Default: its current one.
    #[arg(long = "compress", value_name = "C[:LEVEL]")]
    pub compress: Option<String>,
    /// Replace a subroot hook with other content (other --shared, an older subroot):
    /// only the segment subroot appended is replaced, never stacked.
    #[arg(long)]
    pub refresh_hook: bool,
    /// Decode every entry of every segment to find the files the hook needs, instead of
    /// stopping in the main segment once its sorted names pass them (for a hand-made
    /// archive whose names are sorted at first and not later).
    #[arg(long)]
    pub full_scan: bool,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}
