//! qcow2 images: header parsing, a read-only [`crate::block::BlockDevice`] over an image
//! and its backing chain, a streaming writer for new images,
//! and overlays of an edited image over its input.
//!
//! Versions 2 and 3 are read, with zlib or zstd compressed clusters, zero clusters,
//! extended L2 entries (subclusters) and qcow2 or raw backing files. Encrypted images,
//! external data files and dirty or corrupt-marked images are refused. New images are
//! written as version 3, optionally compressed, in one pass with bounded memory.

pub(crate) mod cache;
mod compress;
mod entry;
mod header;
mod inplace;
mod overlay;
mod reader;
mod writer;

pub use header::{CompressionType, FeatureName, Header};
pub use inplace::{plan_in_place, plan_in_place_resized};
pub use overlay::{backing_name, write_overlay, OverlayRequest};
pub use reader::Qcow2Image;
pub use writer::*;

/// The four bytes every qcow2 file starts with.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";
