//! qcow2 images: header parsing and a read-only [`crate::block::BlockDevice`] over an
//! image and its backing chain.
//!
//! Versions 2 and 3 are read, with zlib or zstd compressed clusters, zero clusters,
//! extended L2 entries (subclusters) and qcow2 or raw backing files. Encrypted images,
//! external data files and dirty or corrupt-marked images are refused.

mod cache;
mod compress;
mod header;
mod reader;

pub use header::{CompressionType, FeatureName, Header};
pub use reader::Qcow2Image;

/// The four bytes every qcow2 file starts with.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";
