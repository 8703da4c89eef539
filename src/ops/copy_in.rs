//! `subroot copy-in`: copy host files and directories into a directory of a partition's
//! filesystem (like `virt-copy-in`). ext partitions are rebuilt with the `mkfs` engine from
//! their own tree with the host trees grafted in (identity kept); FAT partitions are edited
//! in a scratch copy ([`crate::edit::edit_fat`]). Either way the new partition is spliced into a
//! new image, every other byte the input's.

use super::mkfs::{rebuild_ext, splice_out};
use crate::cli::CopyInArgs;
use crate::edit::deliver::Destination;
use crate::edit::edited_tree::{EditedTree, Graft};
use crate::edit::engine::Engine;
use crate::edit::ext_edit::{ExtChanges, Outcome};
use crate::edit::full_check::Verify;
use crate::exit::InputError;
use crate::open::fstree::print_warnings;
use crate::open::select::{select, Selected};
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use subroot_e2fs::writer::Identity;
use subroot_formats::ext::{ExtTree, OpenOptions};
use subroot_formats::hostdir::HostDir;
use subroot_formats::tree::{Kind, TreeSource};

/// A path inside the filesystem as given on the command line (`/a/b`, `a/b/`) in tree form
/// (`a/b`; the root is empty). `.`/`..` components are refused.
pub fn fs_path(p: &str) -> Result<Vec<u8>> {
    let comps: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
    if comps.iter().any(|c| *c == "." || *c == "..") {
        bail!("`{p}`: `.` and `..` are not allowed in paths inside the image");
    }
    Ok(comps.join("/").into_bytes())
}

/// One LOCAL argument: the host tree to walk, the root inside it, and its name.
struct Local {
    host: HostDir,
    root: Vec<u8>,
    name: Vec<u8>,
}

fn local(p: &Path) -> Result<Local> {
    let md = p
        .symlink_metadata()
        .with_context(|| format!("{}: cannot copy it in", p.display()))?;
    let name = match p.file_name() {
        Some(n) => n.to_os_string(),
        None => std::fs::canonicalize(p)
            .ok()
            .and_then(|c| c.file_name().map(|n| n.to_os_string()))
            .with_context(|| format!("{}: cannot tell its name", p.display()))?,
    };
    let name = name.as_bytes().to_vec();
    if md.is_dir() {
        let host = HostDir::open(p).with_context(|| format!("cannot open {}", p.display()))?;
        return Ok(Local {
            host,
            root: Vec::new(),
            name,
        });
    }
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let host =
        HostDir::open(&parent).with_context(|| format!("cannot open {}", parent.display()))?;
    Ok(Local {
        host,
        root: name.clone(),
        name,
    })
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// A failed lookup: "does not exist" (`missing`) when the path is not there, the error
/// itself (a corrupt filesystem, an I/O error) otherwise.
pub fn lookup_error(e: anyhow::Error, missing: String) -> anyhow::Error {
    match e.downcast_ref::<subroot_formats::Error>() {
        Some(subroot_formats::Error::NotFound(_)) => e.context(missing),
        _ => e.context("cannot look the path up"),
    }
}

fn show(p: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(p))
}

pub fn run(args: &CopyInArgs, ctx: &Ctx) -> Result<()> {
    let dest = fs_path(&args.dest)?;
    let out = args.out.destination(&args.image)?;
    let locals = args
        .locals
        .iter()
        .map(|p| local(p))
        .collect::<Result<Vec<_>>>()?;
    let sel = select(&args.image, &args.part, ctx)?;
    let check_dest = |kind: Result<Kind>| -> Result<()> {
        match kind {
            Err(e) => Err(lookup_error(
                e,
                format!("DEST {} does not exist in {}", show(&dest), sel.describe()),
            )),
            Ok(Kind::Dir) => Ok(()),
            Ok(_) => bail!("DEST {} is not a directory", show(&dest)),
        }
    };
    if sel.is_vfat() {
        let tree = crate::edit::edit_fat::open_tree(&sel)?;
        check_dest(tree.entry(&dest).map(|e| e.kind).map_err(Into::into))?;
        drop(tree);
        let items: Vec<(&dyn TreeSource, Vec<u8>, Vec<u8>)> = locals
            .iter()
            .map(|l| {
                (
                    &l.host as &dyn TreeSource,
                    l.root.clone(),
                    join(&dest, &l.name),
                )
            })
            .collect();
        ctx.note(format_args!(
            "copying into {} of {}",
            show(&dest),
            sel.describe()
        ));
        let (scratch, st) = crate::edit::edit_fat::copy_in(&sel, &items, out.path())?;
        ctx.note(format_args!(
            "copied {} files ({} bytes, {} replaced), made {} directories",
            st.files, st.bytes, st.replaced, st.dirs
        ));
        return splice_out(&sel, scratch.dev, &out, ctx);
    }
    let grafts = locals
        .iter()
        .map(|l| Graft {
            tree: &l.host,
            root: l.root.clone(),
            dest: join(&dest, &l.name),
        })
        .collect();
    edit_ext(
        &sel,
        args.engine.asked(),
        args.out.verify,
        ctx.mke2fs.as_deref(),
        grafts,
        Vec::new(),
        &|tree| check_dest(tree.entry(&dest).map(|e| e.kind).map_err(Into::into)),
        &out,
        ctx,
    )
}

/// An ext partition read as a tree.
pub type PartTree = ExtTree<std::sync::Arc<dyn subroot_formats::block::BlockDevice>>;

/// Make `sel`'s ext filesystem hold `grafts` and lose `removed` (after `check` has
/// accepted the request) and write the image to `dest`: edited in process by default
/// ([`crate::edit::ext_edit`]), rebuilt with its identity kept when asked (`--engine rebuild`) or
/// when the editor refuses the filesystem (`engine` `None`: auto, saying why).
#[allow(clippy::too_many_arguments)]
pub fn edit_ext(
    sel: &Selected,
    engine: Option<Engine>,
    verify: Verify,
    mke2fs: Option<&Path>,
    grafts: Vec<Graft<'_>>,
    removed: Vec<Vec<u8>>,
    check: &dyn Fn(&PartTree) -> Result<()>,
    out: &Destination,
    ctx: &Ctx,
) -> Result<()> {
    if sel
        .fs
        .as_ref()
        .is_some_and(|f| f.kind == "btrfs" || f.kind == "xfs")
    {
        return Err(
            InputError::ReadOnlyFilesystem(format!("{} cannot be edited", sel.describe())).into(),
        );
    }
    if !sel.is_ext() {
        return Err(InputError::UnsupportedFilesystem(format!(
            "{} is neither an ext nor a FAT filesystem",
            sel.describe()
        ))
        .into());
    }
    let tree = ExtTree::open(sel.device.clone(), OpenOptions::default())
        .with_context(|| format!("cannot read the filesystem of {}", sel.describe()))?;
    check(&tree)?;
    let kind = |p: &[u8]| tree.entry(p).ok().map(|e| e.kind);
    // The rules both engines share, checked before either writes anything.
    let edited = EditedTree::new(&tree, grafts.clone(), removed.clone(), &kind)?;
    if engine != Some(Engine::Rebuild) {
        let changes = ExtChanges { grafts, removed };
        match crate::edit::ext_edit::edit(sel, &changes, verify, out, ctx)? {
            Outcome::Done => return Ok(()),
            Outcome::Refused(why) if engine.is_none() => ctx.note(format_args!(
                "{} cannot be edited in process ({why}); rebuilding it instead",
                sel.describe()
            )),
            Outcome::Refused(why) => {
                return Err(subroot_formats::Error::unsupported(format!(
                    "{} cannot be edited in process ({why}); use --engine rebuild",
                    sel.describe()
                ))
                .into())
            }
        }
    }
    let tools = crate::e2fsprogs::find(mke2fs)?;
    let identity = Identity::like(tree.fs())?;
    ctx.note(format_args!("rebuilding {}", sel.describe()));
    let built = rebuild_ext(&edited, sel.device.len(), &identity, &tools, ctx)
        .context("cannot build the new filesystem");
    print_warnings(&sel.describe(), tree.fs().take_warnings());
    splice_out(sel, built?.open()?, out, ctx)
}
