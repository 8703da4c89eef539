//! One module per command; each composes `subroot_formats` into an operation.

pub mod batch;
pub mod cat;
pub mod convert;
pub mod copy_in;
pub mod create;
pub mod deliver;
pub mod edit_fat;
pub mod edited_tree;
pub mod export;
pub mod ext_edit;
pub mod extract;
pub mod fstree;
pub mod full_check;
pub mod info;
pub mod initrd;
pub mod inspect;
pub mod ls;
pub mod manifest;
pub mod mkfs;
pub mod recover;
pub mod relayout;
pub mod rm;
pub mod select;
pub mod write;

use crate::cli::{ImageFormatArg, InputFormatArg};
use anyhow::{Context, Result};
use std::path::Path;
use subroot_formats::image::{Image, ImageFormat};

/// Map the CLI's output format onto the library's.
pub fn format_of(arg: ImageFormatArg) -> ImageFormat {
    match arg {
        ImageFormatArg::Raw => ImageFormat::Raw,
        ImageFormatArg::Qcow2 => ImageFormat::Qcow2,
        ImageFormatArg::Vhd => ImageFormat::Vhd,
        ImageFormatArg::Vmdk => ImageFormat::Vmdk,
    }
}

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

/// Open an input image read-only (detecting its format unless given), with its backing chain.
/// A container format subroot does not read is refused with its own message, which names
/// the file already (a backing file's refusal still says whose backing file it is).
///
/// An in-place edit of `path` that was interrupted is rolled back first (see
/// [`recover`]): every command sees the old image or the new one, never a mix.
pub fn open_image(path: &Path, format: Option<InputFormatArg>) -> Result<Image> {
    if subroot_formats::inplace::pending(path).is_some() {
        recover::roll_back(path)?;
    }
    Image::open_as(path, format.map(input_format_of)).map_err(|e| match e {
        subroot_formats::Error::UnsupportedContainer { path: ref p, .. } if p == path => e.into(),
        e => anyhow::Error::new(e).context(format!("cannot open {}", path.display())),
    })
}

/// `SOURCE_DATE_EPOCH` as a number of seconds, if set.
pub fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => {
            Ok(Some(v.trim().parse::<u64>().with_context(|| {
                format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")
            })?))
        }
        _ => Ok(None),
    }
}
