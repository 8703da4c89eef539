//! Where an edited image goes — the one place that decides it for every command that
//! changes an image (`copy-in`, `rm`, `mkfs`, `relayout`):
//!
//! - `-o OUT` ([`Destination::NewImage`]): a complete new image, raw or qcow2, streamed
//!   from the edited view (temporary file, check, rename; [`super::write`]);
//! - `--overlay OUT` ([`Destination::Overlay`]): a qcow2 whose backing file is the input,
//!   holding only the clusters the edit touched;
//! - `--in-place` ([`Destination::InPlace`]): the input itself, only the changed bytes
//!   (and its new virtual size when the edit resized the disk: `resize`),
//!   written under an undo log (`IMAGE.subroot-undo`) made durable before the first write,
//!   so that a crash leaves the old image or the new one; `subroot recover` (and any later
//!   command on the image) rolls an interrupted edit back.
//!
//! The edit itself is described by [`Edit`]: the input, the edited view of the whole disk,
//! and the ranges that changed. Whatever the destination, what was written is read back and
//! compared with the edited view over the changed ranges before the command succeeds.

use crate::edit::output_options::{OutputFormat, OutputOptions, Qcow2Options};
use crate::edit::write_image::{write_image, OutputSpec};
use crate::output::AtomicOutput;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use subroot_formats::block::BlockDevice;
use subroot_formats::block::{raw_plan, Changed};
use subroot_formats::image::{Image, ImageFormat};
use subroot_formats::qcow2::{OverlayRequest, WriteOptions};

/// Where the result of an edit goes.
pub enum Destination {
    /// A complete new image at `path` (in `format`, default: the input's).
    NewImage {
        path: PathBuf,
        format: Option<OutputFormat>,
        qcow2: Qcow2Options,
        force: bool,
    },
    /// A qcow2 overlay at `path` backed by the input.
    Overlay {
        path: PathBuf,
        cluster_size: Option<u64>,
        force: bool,
    },
    /// The input image itself.
    InPlace { image: PathBuf },
}

impl Destination {
    /// The file written: OUT, or the image itself.
    pub fn path(&self) -> &Path {
        match self {
            Destination::NewImage { path, .. } | Destination::Overlay { path, .. } => path,
            Destination::InPlace { image } => image,
        }
    }

    /// "OUT", "the overlay OUT", "IMAGE (in place)", for messages.
    pub fn describe(&self) -> String {
        match self {
            Destination::NewImage { path, .. } => path.display().to_string(),
            Destination::Overlay { path, .. } => format!("the overlay {}", path.display()),
            Destination::InPlace { image } => format!("{} (in place)", image.display()),
        }
    }
}

/// The destination options every image-changing command has (`-o`, `--overlay`,
/// `--in-place`, and the new image's format options), as given.
pub struct DestinationArgs<'a> {
    pub output: Option<&'a Path>,
    pub overlay: Option<&'a Path>,
    pub in_place: bool,
    /// The new image's format and qcow2 options (`-o` only).
    pub image: OutputOptions,
    pub force: bool,
}

impl<'a> DestinationArgs<'a> {
    /// Where the edit of `image` goes; options that do not apply to it are refused, and so
    /// is an existing OUT without --force (before any work).
    pub fn destination(&self, image: &Path) -> Result<Destination> {
        let exists = |p: &Path| -> Result<()> {
            if p.exists() && !self.force {
                bail!("{} exists; use --force to replace it", p.display());
            }
            Ok(())
        };
        Ok(match (self.output, self.overlay, self.in_place) {
            (Some(path), None, false) => {
                exists(path)?;
                Destination::NewImage {
                    path: path.to_path_buf(),
                    format: self.image.format,
                    qcow2: self.image.qcow2,
                    force: self.force,
                }
            }
            (None, Some(path), false) => {
                if self.image.format.is_some() || self.image.qcow2.compression.is_some() {
                    bail!("--overlay writes a qcow2 overlay: -O and --compress do not apply");
                }
                exists(path)?;
                Destination::Overlay {
                    path: path.to_path_buf(),
                    cluster_size: self.image.qcow2.cluster_size,
                    force: self.force,
                }
            }
            (None, None, true) => {
                if self.image != OutputOptions::default() {
                    bail!("--in-place keeps the image's format: -O, --compress and --cluster-size do not apply");
                }
                // Refused before any work when the file's magic names a container that is
                // not edited in place. (A file that cannot be read fails later, where it is
                // opened; apply_in_place refuses the same formats when -f names them.)
                let probed = subroot_formats::image::detect_format(image).ok();
                if let Some(f) = probed.and_then(ImageFormat::from_probed) {
                    if !edits_in_place(f) {
                        return Err(no_in_place(image, f).into());
                    }
                }
                Destination::InPlace {
                    image: image.to_path_buf(),
                }
            }
            _ => bail!("give one of -o OUT, --overlay OUT or --in-place"),
        })
    }
}

/// An edit ready to be written.
pub struct Edit<'a> {
    /// The input image file (the top of its backing chain).
    pub input: &'a Path,
    /// The input's container format.
    pub input_format: ImageFormat,
    /// The whole disk as edited: unchanged bytes read through to the input.
    pub edited: &'a dyn BlockDevice,
    /// The byte ranges of the disk the edit changed, sorted, not overlapping.
    pub changed: Vec<Changed>,
}

impl Edit<'_> {
    /// Bytes of the disk the edit changed.
    pub fn changed_bytes(&self) -> u64 {
        self.changed.iter().map(|c| c.len).sum()
    }
}

/// Write `edit` to `dest`, then read back what was written over the changed ranges.
pub fn deliver(edit: &Edit, dest: &Destination, ctx: &Ctx) -> Result<()> {
    match dest {
        Destination::NewImage {
            path,
            format,
            qcow2,
            force,
        } => {
            let spec = OutputSpec {
                path,
                format: format.unwrap_or(OutputFormat::following(edit.input_format)),
                qcow2,
                force: *force,
                quiet: ctx.quiet,
            };
            write_image(edit.edited, &spec, "writing")?;
            ctx.note(format_args!("wrote {}", path.display()));
        }
        Destination::Overlay {
            path,
            cluster_size,
            force,
        } => {
            write_overlay(edit, path, *cluster_size, *force)?;
            ctx.note(format_args!(
                "wrote the overlay {} ({} changed bytes over {})",
                path.display(),
                edit.changed_bytes(),
                edit.input.display()
            ));
        }
        Destination::InPlace { image } => {
            if edit.changed.is_empty() {
                ctx.note(format_args!("{} is unchanged", image.display()));
                return Ok(());
            }
            apply_in_place(edit, image)?;
            ctx.note(format_args!(
                "changed {} bytes of {} in place",
                edit.changed_bytes(),
                image.display()
            ));
        }
    }
    read_back(edit, dest.path())
        .with_context(|| format!("{} does not read back as written", dest.path().display()))
}

/// The overlay: a new qcow2 (temporary file, then renamed) naming the input as its backing
/// file, by a path relative to the overlay's directory when there is one.
fn write_overlay(edit: &Edit, path: &Path, cluster_size: Option<u64>, force: bool) -> Result<()> {
    let out = AtomicOutput::create(path, force)?;
    let req = OverlayRequest {
        edited: edit.edited,
        changed: &edit.changed,
        backing: edit.input,
        backing_format: edit.input_format,
        out_path: path,
    };
    let mut opts = WriteOptions::default();
    if let Some(cs) = cluster_size {
        opts.cluster_size = cs;
    }
    subroot_formats::qcow2::write_overlay(&req, out.file(), &opts, &|_| {})
        .with_context(|| format!("cannot write {}", path.display()))?;
    out.commit()
}

/// The refusal of `--in-place` for a format that is read but not edited where it lies.
fn no_in_place(image: &Path, format: ImageFormat) -> subroot_e2fs::Error {
    subroot_e2fs::Error::CannotEditInPlace(format!(
        "{} is a {} image, which subroot reads but does not edit in place; --in-place edits \
         raw and qcow2 images (write -o OUT or --overlay OUT instead)",
        image.display(),
        format.name()
    ))
}

/// Whether `--in-place` can update an image of `format` (raw and qcow2 only).
fn edits_in_place(format: ImageFormat) -> bool {
    matches!(format, ImageFormat::Raw | ImageFormat::Qcow2)
}

/// The input changed where it lies: raw images byte for byte, qcow2 through a plan that
/// allocates clusters and updates the tables; both under the undo log.
fn apply_in_place(edit: &Edit, image: &Path) -> Result<()> {
    let plan = match edit.input_format {
        ImageFormat::Raw => raw_plan(&edit.changed, edit.edited.len()),
        ImageFormat::Qcow2 => {
            let file = std::fs::File::open(image)
                .with_context(|| format!("cannot open {}", image.display()))?;
            subroot_formats::qcow2::plan_in_place_resized(
                &file,
                &edit.changed,
                Some(edit.edited.len()),
            )
            .with_context(|| format!("cannot plan the update of {}", image.display()))?
        }
        other => return Err(no_in_place(image, other).into()),
    };
    subroot_formats::inplace::apply(image, &plan, edit.edited)
        .with_context(|| format!("cannot update {} in place", image.display()))?;
    Ok(())
}

/// Open what was written afresh and compare it with the edited view over the changed ranges.
fn read_back(edit: &Edit, path: &Path) -> Result<()> {
    let img = Image::open(path)?;
    if img.len() != edit.edited.len() {
        bail!(
            "its virtual size is {} bytes, expected {}",
            img.len(),
            edit.edited.len()
        );
    }
    let mut a = vec![0u8; 1 << 20];
    let mut b = vec![0u8; 1 << 20];
    for c in &edit.changed {
        let mut pos = c.offset;
        while pos < c.offset + c.len {
            let n = (c.offset + c.len - pos).min(a.len() as u64) as usize;
            img.read_at(&mut a[..n], pos)?;
            edit.edited.read_at(&mut b[..n], pos)?;
            if a[..n] != b[..n] {
                bail!("bytes {pos}..{} differ from the edit", pos + n as u64);
            }
            pos += n as u64;
        }
    }
    Ok(())
}
