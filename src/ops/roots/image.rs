//! An image opened for a change of its roots or boot configuration (`roots default`,
//! `relayout --undo`): the root filesystem, the roots in it, a separate `/boot` named by
//! a root's `/etc/fstab`, the ESPs — and the one way such a change is written: ordered
//! [`FsOp`]s carried out by the in-process ext editor on each filesystem, ESP files
//! rewritten through the FAT writer, all over one copy-on-write overlay of the disk,
//! delivered to a new image, an overlay or the input ([`crate::edit::deliver`]).

use crate::edit::deliver::{deliver, Destination, Edit};
use crate::edit::ext_edit::{finish, open_editor, refusal, summary};
use crate::edit::full_check::Verify;
use crate::open::select::{select_in, Which};
use crate::open::survey::ImageSurvey;
use crate::ops::relayout::apply::replace_file;
use crate::ops::relayout::bootfiles::{self, BootFiles};
use crate::ops::relayout::bootpart::{self, Located};
use crate::ops::relayout::esp::{self, EspEdit};
use crate::ops::relayout::plan::Dev;
use crate::ops::relayout::transform::NewContent;
use crate::Ctx;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subroot_formats::block::{changed_ranges, BlockDevice, Overlay, Slice};
use subroot_formats::ext::{ExtTree, OpenOptions};
use subroot_formats::image::ImageFormat;
use subroot_formats::tree::{BytesContent, Entry, Kind};
use subroot_libext2fs::Ext2Fs;

/// Refuse the input: an [`subroot_formats::Error::Unsupported`] (exit status 3).
pub fn refused(msg: String) -> anyhow::Error {
    subroot_formats::Error::unsupported(msg).into()
}

/// Whether top-level directory `dir` of `tree` is a root
/// ([`crate::open::select::is_root_dir`], the one rule).
pub fn is_root(tree: &ExtTree<Dev>, dir: &[u8]) -> bool {
    crate::open::select::is_root_dir(dir, &|p| tree.entry(p).is_ok())
}

/// The image.
pub struct RootsImage {
    /// The image as named on the command line.
    pub input: PathBuf,
    /// For messages.
    pub name: String,
    pub format: ImageFormat,
    pub disk: Dev,
    /// The root filesystem: its partition's (number, start, size).
    pub root_number: Option<u32>,
    pub root_start: u64,
    pub root_size: u64,
    pub root_dev: Dev,
    pub tree: ExtTree<Dev>,
    /// The top-level directories holding an operating system, sorted.
    pub roots: Vec<Vec<u8>>,
    /// The separate `/boot`, when a root's fstab names one.
    pub boot: Option<(Located, ExtTree<Dev>)>,
    /// The image's partitions and what they hold (read once).
    pub survey: ImageSurvey,
}

impl RootsImage {
    /// Open `input`'s root filesystem (ext2/3/4) and find its roots.
    pub fn open(input: &Path, which: Which, ctx: &Ctx) -> Result<RootsImage> {
        let name = input.display().to_string();
        let survey = ImageSurvey::open(input, which.format)?;
        survey.complete()?;
        let sel = select_in(&survey, which, ctx)?;
        if !sel.is_ext() {
            return Err(refused(format!(
                "{name}: the root filesystem ({}) is not ext2/3/4",
                sel.describe()
            )));
        }
        let tree = ExtTree::open(sel.device.clone(), OpenOptions::default())
            .with_context(|| format!("cannot open the ext filesystem of {name}"))?;
        let roots = tree
            .children(b"")
            .with_context(|| format!("{name}: cannot list the root directory"))?
            .into_iter()
            .filter(|e| e.kind == Kind::Dir && is_root(&tree, &e.path))
            .map(|e| e.path)
            .collect();
        let (root_start, root_size) = sel
            .partition
            .as_ref()
            .map_or((0, sel.disk.len()), |p| (p.start, p.size));
        Ok(RootsImage {
            input: input.to_path_buf(),
            name,
            format: sel.format,
            disk: sel.disk.clone(),
            root_number: sel.partition.as_ref().map(|p| p.number),
            root_start,
            root_size,
            root_dev: sel.device.clone(),
            tree,
            roots,
            boot: None,
            survey,
        })
    }

    /// "r0, r1" (or "none").
    pub fn roots_list(&self) -> String {
        if self.roots.is_empty() {
            return "none".into();
        }
        self.roots
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Find the separate `/boot` the fstab of root `root` names (`b""`: the top).
    pub fn locate_boot(&mut self, root: &[u8]) -> Result<()> {
        let fstab = bootfiles::under(root, b"etc/fstab");
        let located = bootpart::locate(
            &self.survey,
            &self.tree,
            &fstab,
            self.root_number,
            &self.name,
        )?;
        self.boot = match located {
            Some(l) => {
                let t =
                    ExtTree::open(l.device.clone(), OpenOptions::default()).with_context(|| {
                        format!(
                            "cannot open the /boot partition {} of {}",
                            l.partition.number, self.name
                        )
                    })?;
                Some((l, t))
            }
            None => None,
        };
        Ok(())
    }

    /// The filesystem holding the boot files and their prefix in it.
    pub fn boot_tree(&self) -> (&ExtTree<Dev>, &'static [u8]) {
        match &self.boot {
            Some((_, t)) => (t, b""),
            None => (&self.tree, b"boot/"),
        }
    }

    /// The boot configuration and initrds, with `/etc` files of `systems`.
    pub fn boot_files(&self, systems: &[Vec<u8>]) -> Result<BootFiles> {
        let (bt, prefix) = self.boot_tree();
        bootfiles::find(&self.tree, bt, prefix, systems)
    }

    /// The separate `/boot` partition's number.
    pub fn boot_partition(&self) -> Option<u32> {
        self.boot.as_ref().map(|(l, _)| l.partition.number)
    }
}

/// One change of an ext filesystem, carried out in order.
#[derive(Debug, Clone)]
pub enum FsOp {
    /// Move `from` to `to`.
    Rename(Vec<u8>, Vec<u8>),
    /// Remove a name (a directory must be empty).
    Unlink(Vec<u8>),
    /// New content for a file, its metadata kept (see [`replace_file`]).
    Replace(Vec<u8>, Vec<u8>),
    /// Cut a file to its first N bytes, its metadata kept.
    Truncate(Vec<u8>, u64),
    /// A new regular file.
    Create(Entry, Vec<u8>),
    /// Remove a directory and everything under it.
    RemoveTree(Vec<u8>),
}

impl FsOp {
    fn apply(&self, fs: &mut Ext2Fs) -> Result<()> {
        let shown = |p: &[u8]| format!("/{}", String::from_utf8_lossy(p));
        match self {
            FsOp::Rename(from, to) => fs
                .rename(from, to)
                .with_context(|| format!("cannot move {} to {}", shown(from), shown(to))),
            FsOp::Unlink(p) => fs
                .unlink(p)
                .with_context(|| format!("cannot remove {}", shown(p))),
            FsOp::Replace(p, bytes) => {
                replace_file(fs, p, &NewContent::Bytes(bytes.clone())).map(|_| ())
            }
            FsOp::Truncate(p, len) => {
                let what = || format!("cannot cut {} to {len} bytes", shown(p));
                let st = fs.stat(p).with_context(what)?;
                fs.truncate(p, *len).with_context(what)?;
                fs.set_meta(p, &st.meta).with_context(what)
            }
            FsOp::Create(e, bytes) => {
                let mut c = BytesContent::new(bytes.clone());
                fs.create(e, Some(&mut c))
                    .map(|_| ())
                    .with_context(|| format!("cannot create {}", shown(&e.path)))
            }
            FsOp::RemoveTree(p) => fs
                .remove_tree(p)
                .with_context(|| format!("cannot remove {}", shown(p))),
        }
    }
}

/// Everything a change does to an image.
#[derive(Debug, Default)]
pub struct Changes {
    /// On the root filesystem.
    pub root: Vec<FsOp>,
    /// On the separate `/boot`.
    pub boot: Vec<FsOp>,
    /// ESP files rewritten.
    pub esp: Vec<EspEdit>,
}

/// An edit of the root filesystem beyond [`FsOp`]s: `roots add`'s clone of a root.
pub type RootEditor<'a> = &'a mut dyn FnMut(&mut Ext2Fs) -> Result<()>;

/// Carry `changes` out on `img` and deliver the result to `dest`.
pub fn write(
    img: &RootsImage,
    changes: &Changes,
    dest: &Destination,
    verify: Verify,
    ctx: &Ctx,
) -> Result<()> {
    write_with(img, changes, None, dest, verify, ctx)
}

/// [`write`], with `more` run on the root filesystem's editor after `changes.root`.
pub fn write_with(
    img: &RootsImage,
    changes: &Changes,
    mut more: Option<RootEditor>,
    dest: &Destination,
    verify: Verify,
    ctx: &Ctx,
) -> Result<()> {
    let spill = tempfile::tempfile().context("cannot create a temporary file for the edit")?;
    let overlay = Arc::new(Overlay::with_spill(img.disk.clone(), spill));
    let mut parts = vec![(
        &changes.root,
        more.take(),
        img.root_dev.clone(),
        img.root_start,
        img.root_size,
        "the root filesystem".to_string(),
    )];
    if let Some((l, _)) = &img.boot {
        parts.push((
            &changes.boot,
            None,
            l.device.clone(),
            l.partition.start,
            l.partition.size,
            format!("the /boot filesystem (partition {})", l.partition.number),
        ));
    }
    for (ops, more, device, start, size, what) in parts {
        if ops.is_empty() && more.is_none() {
            continue;
        }
        if let Some(why) = refusal(&device, &what)? {
            return Err(refused(format!(
                "{}: {what} cannot be edited in place ({why})",
                img.name
            )));
        }
        let dev: Arc<dyn BlockDevice> = Arc::new(Slice::new(overlay.clone(), start, size)?);
        let mut fs = open_editor(&dev, &what)?;
        for op in ops {
            op.apply(&mut fs)
                .with_context(|| format!("{}: cannot edit {what}", img.name))?;
        }
        if let Some(edit) = more {
            edit(&mut fs)?;
        }
        let (stats, report) = finish(fs, &dev, &what, verify, ctx)?;
        ctx.detail(format_args!("edited {what}: {}", summary(&stats, &report)));
    }
    let edited: Arc<dyn BlockDevice> = overlay.clone();
    let (edited, _esp_scratch) = esp::apply(edited, &changes.esp, dest.path())?;
    let mut changed = overlay.changed();
    if !matches!(dest, Destination::NewImage { .. }) {
        let mut spliced: Vec<(u64, u64)> = changes.esp.iter().map(|e| (e.start, e.size)).collect();
        spliced.sort_unstable();
        spliced.dedup();
        for (start, len) in spliced {
            changed.extend(
                changed_ranges(&*img.disk, &*edited, start, len)
                    .context("cannot compare the rewritten ESP with the input")?,
            );
        }
        changed.sort_by_key(|c| c.offset);
    }
    deliver(
        &Edit {
            input: &img.input,
            input_format: img.format,
            edited: &*edited,
            changed,
        },
        dest,
        ctx,
    )
}
