//! Arguments of the commands that read a filesystem inside an image: `ls`, `cat`,
//! `export`, `manifest`, `extract`.

use super::PartitionArgs;
use clap::Args;
use std::ffi::OsString;
use std::path::PathBuf;

/// Options shared by every reading command.
#[derive(Debug, Args, Clone)]
pub struct ReadArgs {
    /// The disk image (raw, qcow2, VMDK or VDI) or a bare filesystem image.
    pub image: PathBuf,
    #[command(flatten)]
    pub part: PartitionArgs,
    /// Read what can be read: an ext3/ext4 filesystem whose journal needs recovery as it is
    /// on disk (changes still in the journal are not seen), around damaged directory
    /// blocks (holes, unwritten extents), and a file whose extent tree is damaged (the
    /// blocks the rest of its tree maps, zeros for the others), saying on stderr what was
    /// skipped. By default all are refused.
    #[arg(long)]
    pub salvage: bool,
    /// btrfs: read this subvolume or snapshot instead of the default one: its id (5 is the
    /// top level) or its path from the top level, as `subroot info` lists them. Nested
    /// subvolumes appear as directories holding their files. An error on other
    /// filesystems.
    #[arg(long, value_name = "PATH|ID")]
    pub subvol: Option<String>,
}

/// `subroot ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Directory (or file) inside the filesystem; default `/`. Symlinks on the way are
    /// followed inside the filesystem; a symlink named last is shown itself unless -L.
    pub path: Option<OsString>,
    /// Follow a symlink named as PATH and list what it points to (a directory's entries).
    #[arg(short = 'L', long = "dereference")]
    pub dereference: bool,
    /// Long listing: mode, owner, size, modification time (UTC), name, symlink target.
    #[arg(short = 'l', long = "long")]
    pub long: bool,
    /// List subdirectories recursively (full paths, depth-first, sorted by name bytes).
    #[arg(short = 'R', long = "recursive")]
    pub recursive: bool,
    /// One JSON object per entry per line (fields: see JSON OUTPUT). `path`, `name` and
    /// `link` appear only when valid UTF-8; otherwise `path_bytes`, `name_bytes`,
    /// `link_bytes` hold the bytes in base64.
    #[arg(long)]
    pub json: bool,
}

/// `subroot cat`.
#[derive(Debug, Args)]
pub struct CatArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Regular file inside the filesystem. Symlinks are followed as the installed system
    /// would (an absolute target starts at the filesystem's root, never outside it), so
    /// `/etc/os-release` works on merged-/usr systems.
    pub path: OsString,
}

/// `subroot export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Subtree to export; default `/` (the whole filesystem).
    pub path: Option<OsString>,
    /// The tar file to write, or `-` for stdout. An existing file is refused without --force.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Replace FILE if it exists (never a device or other non-regular file). To read a
    /// damaged filesystem, see --salvage.
    #[arg(long)]
    pub force: bool,
}

/// `subroot manifest`.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Subtree to describe; default `/`.
    pub path: Option<OsString>,
    /// One JSON object per entry per line instead of tab-separated lines.
    #[arg(long)]
    pub json: bool,
    /// Print `-` for access times.
    #[arg(long)]
    pub no_atime: bool,
    /// Print `-` for change times.
    #[arg(long)]
    pub no_ctime: bool,
    /// Print `-` for creation times.
    #[arg(long)]
    pub no_crtime: bool,
    /// Print `-` for inode flags.
    #[arg(long)]
    pub no_flags: bool,
    /// Do not read file contents (print `-` for their SHA-256).
    #[arg(long)]
    pub no_hash: bool,
}

/// `subroot extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Subtree to extract; default `/`.
    pub path: Option<OsString>,
    /// Directory to extract into (created if missing).
    #[arg(short = 'C', long = "directory", value_name = "DIR")]
    pub dir: PathBuf,
    /// Write every item not restored (ownerships, device nodes, xattrs, modes, times) to
    /// FILE, one JSON object per line: {"path": "etc/shadow", "what": "xattr", "xattr":
    /// "security.selinux", "reason": "..."}; `path` relative to DIR, names that are not
    /// UTF-8 as `path_bytes`/`xattr_bytes` (base64). Written even when nothing was left out.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Replace the --report FILE if it exists. To read a damaged filesystem, see --salvage.
    #[arg(long)]
    pub force: bool,
}
