//! Opening the filesystem a reading command works on as a tree (ext2/3/4 or FAT), and
//! turning user-given paths inside it into tree paths.

use crate::cli::read::ReadArgs;
use crate::exit::InputError;
use crate::ops::select::select;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use subroot_formats::block::BlockDevice;
use subroot_formats::ext::{ExtTree, OpenOptions};
use subroot_formats::fat::FatTree;
use subroot_formats::tree::{Entry, TreeSource};

type Dev = Arc<dyn BlockDevice>;

/// A filesystem opened for reading.
pub enum FsTree {
    Ext(ExtTree<Dev>),
    Fat(FatTree<Dev>),
}

/// An opened filesystem and where it came from.
pub struct Opened {
    pub tree: FsTree,
    /// "IMAGE" or "IMAGE partition N", for messages.
    pub name: String,
}

impl FsTree {
    /// The tree as a walkable source.
    pub fn source(&self) -> &dyn TreeSource {
        match self {
            FsTree::Ext(t) => t,
            FsTree::Fat(t) => t,
        }
    }

    /// The entry at `path` (a tree path).
    pub fn entry(&self, path: &[u8]) -> subroot_formats::Result<Entry> {
        match self {
            FsTree::Ext(t) => t.entry(path),
            FsTree::Fat(t) => t.entry(path),
        }
    }

    /// The entries of directory `path`, sorted by name.
    pub fn children(&self, path: &[u8]) -> subroot_formats::Result<Vec<Entry>> {
        match self {
            FsTree::Ext(t) => t.children(path),
            FsTree::Fat(t) => t.children(path),
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
                std::io::copy(&mut r, out).map_err(|e| subroot_formats::Error::io("copying", e))
            }
            FsTree::Fat(t) => t.copy_file(path, out),
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
        }
    }
}

/// Select the filesystem of `args.image` and open it.
pub fn open(args: &ReadArgs, ctx: &Ctx) -> Result<Opened> {
    let selected = select(&args.image, &args.part, ctx)?;
    let name = match &selected.partition {
        Some(p) => format!("{} partition {}", args.image.display(), p.number),
        None => args.image.display().to_string(),
    };
    let kind = selected.fs.as_ref().map(|f| f.kind.clone());
    let tree = match kind.as_deref() {
        Some(k) if selected.is_ext() => FsTree::Ext(
            ExtTree::open(selected.device.clone(), OpenOptions { force: args.force })
                .with_context(|| format!("cannot open the {k} filesystem of {name}"))?,
        ),
        Some("vfat") => FsTree::Fat(
            FatTree::open(selected.device.clone())
                .with_context(|| format!("cannot open the FAT filesystem of {name}"))?,
        ),
        Some(k) => {
            return Err(
                InputError::UnsupportedFilesystem(format!("{name} holds a {k} filesystem")).into(),
            )
        }
        None => return Err(InputError::NoFilesystem { place: name }.into()),
    };
    Ok(Opened { tree, name })
}

/// A user-given path inside the filesystem as a tree path: leading `/`, empty and `.`
/// components dropped; `..` is refused.
pub fn tree_path(arg: Option<&OsStr>) -> Result<Vec<u8>> {
    let Some(arg) = arg else {
        return Ok(Vec::new());
    };
    let mut out: Vec<u8> = Vec::new();
    for comp in arg.as_bytes().split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => bail!(
                "path {:?}: `..` components are not supported; give the path from the root",
                arg
            ),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out)
}

/// `/PATH` for messages.
pub fn shown(path: &[u8]) -> String {
    format!("/{}", subroot_formats::manifest::escape(path))
}
