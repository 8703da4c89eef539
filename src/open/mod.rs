//! Opening what a command works on: the image file (its container format detected or
//! forced, its backing chain, an interrupted in-place edit rolled back first), and inside it
//! the partitions ([`survey`]), the filesystem chosen ([`select`]) seen as a tree ([`fstree`]).

pub mod fstab;
pub mod fstree;
pub mod select;
pub mod survey;
pub mod volumes;

use crate::cli::InputFormatArg;
use anyhow::Result;
use std::path::Path;
use subroot_formats::image::{Image, ImageFormat, ImageOptions};

/// Map the CLI's input format onto the library's.
pub fn input_format_of(arg: InputFormatArg) -> ImageFormat {
    match arg {
        InputFormatArg::Raw => ImageFormat::Raw,
        InputFormatArg::Qcow2 => ImageFormat::Qcow2,
        InputFormatArg::Vhd => ImageFormat::Vhd,
        InputFormatArg::Vhdx => ImageFormat::Vhdx,
        InputFormatArg::Vmdk => ImageFormat::Vmdk,
        InputFormatArg::Vdi => ImageFormat::Vdi,
    }
}

/// How input images are opened (`--allow-outside`): set once by `main` from the command
/// line, read by [`open_image`].
static OPTIONS: std::sync::OnceLock<ImageOptions> = std::sync::OnceLock::new();

/// Record how input images are opened (the first call wins).
pub fn set_options(opts: ImageOptions) {
    let _ = OPTIONS.set(opts);
}

/// Open an input image read-only (detecting its format unless given), with its backing chain.
/// A container format subroot does not read is refused with its own message, which names
/// the file already (a backing file's refusal still says whose backing file it is).
///
/// An in-place edit of `path` that was interrupted is rolled back first (see
/// [`crate::ops::recover`]): every command sees the old image or the new one, never a mix.
pub fn open_image(path: &Path, format: Option<InputFormatArg>) -> Result<Image> {
    crate::ops::recover::roll_back(path)?;
    let opts = OPTIONS.get().copied().unwrap_or_default();
    Image::open_with(path, format.map(input_format_of), opts).map_err(|e| match e {
        subroot_formats::Error::UnsupportedContainer { path: ref p, .. } if p == path => e.into(),
        e => anyhow::Error::new(e).context(format!("cannot open {}", path.display())),
    })
}
