//! VMware VMDK images, read-only: hosted sparse extents (monolithicSparse,
//! twoGbMaxExtentSparse, and streamOptimized with its compressed grains, markers and
//! footer), flat extents named by a text descriptor (monolithicFlat, twoGbMaxExtentFlat,
//! ESXi's `-flat.vmdk`), zero extents, and parent images; and writing streamOptimized.

mod descriptor;
mod reader;
mod sparse;
mod writer;

pub use descriptor::{Descriptor, ExtentLine, ExtentType};
pub use reader::{VmdkImage, VmdkOptions};
pub use sparse::SparseHeader;
pub use writer::write_vmdk_stream;
