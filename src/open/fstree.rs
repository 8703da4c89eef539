//! Opening the filesystem a reading command works on as a tree (ext2/3/4, FAT, XFS or
//! btrfs), and
//! turning user-given paths inside it into tree paths.

use crate::cli::read::ReadArgs;
use crate::exit::InputError;
use crate::open::select::select_for_reading;
use crate::Ctx;
use anyhow::{Context, Result};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use subroot_formats::block::BlockDevice;
use subroot_formats::btrfs::BtrfsTree;
use subroot_formats::ext::{ExtTree, OpenOptions};
use subroot_formats::fat::FatTree;
use subroot_formats::resolve::{resolve, Last};
use subroot_formats::tree::{Entry, TreeSource};
use subroot_formats::xfs::XfsTree;

type Dev = Arc<dyn BlockDevice>;

/// A filesystem opened for reading.
pub enum FsTree {
    Ext(ExtTree<Dev>),
    Fat(FatTree<Dev>),
    Xfs(XfsTree<Dev>),
    /// One subvolume of a btrfs (the default one unless `--subvol` chose another).
    Btrfs(BtrfsTree<Dev>),
}

/// How a reader opens a filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadMode<'a> {
    /// Open what is not clean (a journal or log to replay): read as it is on disk.
    pub force: bool,
    /// Read past damage, with warnings (--salvage).
    pub salvage: bool,
    /// The btrfs subvolume to read (`--subvol`, an id or a path); `None`: the default one.
    pub subvol: Option<&'a str>,
}

/// An opened filesystem and where it came from.
pub struct Opened {
    pub tree: FsTree,
    /// "IMAGE" or "IMAGE partition N", for messages.
    pub name: String,
}

impl FsTree {
    /// Open `device`, where sniffing found a `kind` filesystem, with subroot's reader for
    /// that kind: the one place that maps a filesystem type onto a reader, so that every
    /// reading command (and `inspect`) reads what it can. `None`: no reader for `kind`.
    /// `name` says where, in errors.
    pub fn open_kind(
        device: &Dev,
        kind: &str,
        name: &str,
        how: ReadMode<'_>,
    ) -> Result<Option<FsTree>> {
        Ok(Some(match kind {
            k if k.starts_with("ext") => {
                let mut t = ExtTree::open(device.clone(), OpenOptions { force: how.force })
                    .with_context(|| format!("cannot open the {k} filesystem of {name}"))?;
                t.set_salvage(how.salvage);
                FsTree::Ext(t)
            }
            "vfat" => FsTree::Fat(
                FatTree::open(device.clone())
                    .with_context(|| format!("cannot open the FAT filesystem of {name}"))?,
            ),
            // A dirty log is read as it is on disk when forced, as an ext journal is.
            "xfs" => FsTree::Xfs(
                XfsTree::open_with(device.clone(), how.force)
                    .with_context(|| format!("cannot open the XFS filesystem of {name}"))?,
            ),
            "btrfs" => FsTree::Btrfs(
                BtrfsTree::open(device.clone(), how.subvol)
                    .with_context(|| format!("cannot open the btrfs filesystem of {name}"))?,
            ),
            _ => return Ok(None),
        }))
    }

    /// The tree as a walkable source.
    pub fn source(&self) -> &dyn TreeSource {
        match self {
            FsTree::Ext(t) => t,
            FsTree::Fat(t) => t,
            FsTree::Xfs(t) => t,
            FsTree::Btrfs(t) => t,
        }
    }

    /// The entry at `path` (a tree path).
    pub fn entry(&self, path: &[u8]) -> subroot_formats::Result<Entry> {
        match self {
            FsTree::Ext(t) => t.entry(path),
            FsTree::Fat(t) => t.entry(path),
            FsTree::Xfs(t) => t.entry(path),
            FsTree::Btrfs(t) => t.entry(path),
        }
    }

    /// The entries of directory `path`, sorted by name.
    pub fn children(&self, path: &[u8]) -> subroot_formats::Result<Vec<Entry>> {
        match self {
            FsTree::Ext(t) => t.children(path),
            FsTree::Fat(t) => t.children(path),
            FsTree::Xfs(t) => t.children(path),
            FsTree::Btrfs(t) => t.children(path),
        }
    }

    /// Copy regular file `path` to `out`.
    pub fn copy_file(
        &self,
        path: &[u8],
        out: &mut dyn std::io::Write,
    ) -> subroot_formats::Result<u64> {
        match self {
            FsTree::Ext(t) => {
                let mut r = t.open_file(path)?;
                std::io::copy(&mut r, out).map_err(copy_error)
            }
            FsTree::Fat(t) => t.copy_file(path, out),
            FsTree::Xfs(t) => t.copy_file(path, out),
            FsTree::Btrfs(t) => t.copy_file(path, out),
        }
    }

    /// What the reader has to say so far: damage skipped under --salvage, attributes that
    /// could not be carried. Emptied by the call.
    pub fn take_warnings(&self) -> Vec<String> {
        match self {
            FsTree::Ext(t) => t.fs().take_warnings(),
            FsTree::Fat(_) => Vec::new(),
            FsTree::Xfs(t) => t.take_warnings(),
            FsTree::Btrfs(_) => Vec::new(),
        }
    }

    /// Bytes of data in use, for progress bars (an estimate).
    pub fn used_bytes(&self) -> u64 {
        match self {
            FsTree::Ext(t) => {
                let sb = t.fs().superblock();
                sb.blocks_count.saturating_sub(sb.free_blocks_count) * u64::from(sb.block_size)
            }
            FsTree::Fat(t) => t.used_bytes(),
            FsTree::Xfs(t) => t.used_bytes(),
            FsTree::Btrfs(t) => t.used_bytes(),
        }
    }
}

impl Opened {
    /// Print the reader's warnings on stderr (see [`print_warnings`]).
    pub fn print_warnings(&self) {
        print_warnings(&self.name, self.tree.take_warnings());
    }
}

/// Print a reader's warnings about `name` on stderr, even with -q: leaving something out
/// (an attribute with no name, a skipped damaged block) or reading a backup superblock
/// must never be silent.
pub fn print_warnings(name: &str, warnings: Vec<String>) {
    for w in warnings {
        eprintln!("subroot: warning: {name}: {w}");
    }
}

/// A failed copy as the reader's own error when the reader failed (a corrupt extent tree
/// stays `Corrupt`, exit status 3), else as an I/O error.
fn copy_error(e: std::io::Error) -> subroot_formats::Error {
    use subroot_formats::Error;
    if !e.get_ref().is_some_and(|i| i.is::<Error>()) {
        return Error::io("copying", e);
    }
    let kind = e.kind();
    match e.into_inner().map(|b| b.downcast::<Error>()) {
        Some(Ok(inner)) => *inner,
        Some(Err(other)) => Error::io("copying", std::io::Error::new(kind, other)),
        None => Error::io("copying", std::io::Error::from(kind)),
    }
}

/// Select the filesystem of `args.image` and open it.
pub fn open(args: &ReadArgs, ctx: &Ctx) -> Result<Opened> {
    let selected = select_for_reading(&args.image, &args.part, ctx)?;
    let name = match (&selected.volume, &selected.partition) {
        (Some(v), _) => format!("{} volume {v}", args.image.display()),
        (None, Some(p)) => format!("{} partition {}", args.image.display(), p.number),
        (None, None) => args.image.display().to_string(),
    };
    let kind = selected.fs.as_ref().map(|f| f.kind.as_str());
    if args.subvol.is_some() && kind != Some("btrfs") {
        anyhow::bail!(
            "--subvol applies to btrfs only, and {name} holds {}",
            kind.map_or("no filesystem subroot recognises".into(), |k| format!(
                "a {k} filesystem"
            ))
        );
    }
    let Some(fs) = &selected.fs else {
        return Err(InputError::NoFilesystem { place: name }.into());
    };
    let Some(tree) = FsTree::open_kind(
        &selected.device,
        &fs.kind,
        &name,
        ReadMode {
            force: args.salvage,
            salvage: args.salvage,
            subvol: args.subvol.as_deref(),
        },
    )?
    else {
        return Err(InputError::UnsupportedFilesystem(format!(
            "{name} holds a {} filesystem",
            fs.kind
        ))
        .into());
    };
    Ok(Opened { tree, name })
}

/// The entry a user-given path names, resolved through the filesystem's symlinks as the
/// installed system would (`.` and `..` as it would; absolute links start at the
/// filesystem's root and never leave it); `last` says whether a symlink in the last
/// component is followed too. A path that does not exist is an error naming it.
pub fn resolve_path(fs: &Opened, arg: Option<&OsStr>, last: Last) -> Result<Entry> {
    let path = arg.map(OsStr::as_bytes).unwrap_or_default();
    resolve(path, last, |p| fs.tree.entry(p))
        .with_context(|| format!("cannot find {} in {}", shown(path), fs.name))
}

/// `/PATH` for messages.
pub fn shown(path: &[u8]) -> String {
    format!("/{}", subroot_formats::manifest::escape(path))
}
