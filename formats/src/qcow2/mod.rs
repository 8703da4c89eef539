//! qcow2 images: a streaming writer for new images.

mod compression;
mod writer;

pub use compression::CompressionType;
pub use writer::*;
