//! `subroot initrd …`: one file per subcommand; this module opens the input initrd, a
//! host file or a file inside an image's ext filesystem read in place
//! ([`subroot_formats::ext::ExtFileDevice`]), and holds what the subcommands share.

pub mod add_subroot;
pub mod create;
pub mod examine;
pub mod extract;
pub mod ls;

use crate::cli::{InitrdArgs, InitrdCommand, InitrdInput};
use crate::open::select::select;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, RawFile};
use subroot_formats::cpio::CompressionSpec;
use subroot_formats::ext::{ExtFileDevice, ExtFs, InodeKind, OpenOptions};

/// Run one `initrd` subcommand.
pub fn run(args: &InitrdArgs, ctx: &Ctx) -> Result<()> {
    match &args.command {
        InitrdCommand::Examine(a) => examine::run(a, ctx),
        InitrdCommand::Ls(a) => ls::run(a, ctx),
        InitrdCommand::Extract(a) => extract::run(a, ctx),
        InitrdCommand::Create(a) => create::run(a, ctx),
        InitrdCommand::AddSubroot(a) => add_subroot::run(a, ctx),
    }
}

/// An opened input initrd and the name to use in messages.
pub struct Input {
    pub dev: Box<dyn BlockDevice>,
    /// `FILE`, or `IMG:PATH` for a file inside an image.
    pub name: String,
}

/// Most symlinks followed while resolving a path inside an image.
const MAX_SYMLINKS: usize = 40;

/// Open the initrd `input` names. A host file that an interrupted `add-subroot --in-place`
/// left half-written (its undo log is there) is rolled back first, as every command does
/// for an image ([`crate::open::open_image`]): what is read is the old or the new initrd,
/// never a mix.
pub fn open_input(input: &InitrdInput, ctx: &Ctx) -> Result<Input> {
    let Some(image) = &input.image else {
        if input.partition.partition.is_some() || input.partition.format.is_some() {
            bail!("-p/--partition and -f/--format need --image");
        }
        crate::ops::recover::roll_back(&input.file)?;
        let name = input.file.display().to_string();
        let dev = RawFile::open(&input.file).with_context(|| format!("cannot open {name}"))?;
        return Ok(Input {
            dev: Box::new(dev),
            name,
        });
    };
    let path = input.file.as_os_str().as_bytes();
    let name = format!("{}:{}", image.display(), input.file.display());
    if path.first() != Some(&b'/') {
        bail!(
            "{name}: the path inside the image must be absolute (/boot/initrd.img), got {}",
            input.file.display()
        );
    }
    let sel = select(image, &input.partition, ctx)?;
    if !sel.is_ext() {
        bail!(
            "{}: {} is not an ext2/3/4 filesystem; initrds can only be read from ext filesystems",
            image.display(),
            sel.describe()
        );
    }
    let fs = ExtFs::open_with(sel.device.clone(), OpenOptions { force: true })
        .with_context(|| format!("cannot open the filesystem of {}", image.display()))?;
    let fs = Arc::new(fs);
    let ino = resolve(&fs, path).with_context(|| format!("cannot open {name}"))?;
    let dev = ExtFileDevice::new(fs, ino).with_context(|| format!("cannot open {name}"))?;
    Ok(Input {
        dev: Box::new(dev),
        name,
    })
}

/// The inode of absolute `path`, following symlinks (`/initrd.img -> boot/initrd.img-…`)
/// in every component.
fn resolve<D: BlockDevice>(fs: &ExtFs<D>, path: &[u8]) -> Result<u32> {
    let mut pending: Vec<Vec<u8>> = split(path);
    pending.reverse();
    let mut done: Vec<Vec<u8>> = Vec::new();
    let mut hops = 0usize;
    while let Some(comp) = pending.pop() {
        if comp == b".." {
            done.pop();
            continue;
        }
        done.push(comp);
        let cur = join(&done);
        let ino = fs.lookup(&cur)?;
        if fs.inode(ino)?.kind() == InodeKind::Symlink {
            hops += 1;
            if hops > MAX_SYMLINKS {
                bail!(
                    "too many levels of symbolic links at {}",
                    String::from_utf8_lossy(&cur)
                );
            }
            let target = fs.read_link(ino)?;
            done.pop();
            if target.first() == Some(&b'/') {
                done.clear();
            }
            for c in split(&target).into_iter().rev() {
                pending.push(c);
            }
        }
    }
    Ok(fs.lookup(&join(&done))?)
}

fn split(p: &[u8]) -> Vec<Vec<u8>> {
    p.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
        .collect()
}

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in comps {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Parse `C` or `C:LEVEL`.
pub fn parse_compression(s: &str) -> Result<CompressionSpec> {
    s.parse::<CompressionSpec>()
        .with_context(|| format!("bad --compress `{s}`"))
}
