//! Microsoft VHD images (Virtual PC, Hyper-V, Azure; qemu's "vpc"): fixed, dynamic and
//! differencing, read as a [`crate::block::BlockDevice`].
//!
//! A fixed VHD is the disk followed by a 512-byte footer; a dynamic one has a copy of the
//! footer first, a dynamic header, a block allocation table and blocks each preceded by a
//! sector bitmap; a differencing one is dynamic with a parent named by locators, whose
//! sectors show through wherever the child's bitmap bit is clear. Fixed disks are also
//! written ([`write_vhd_fixed`]).

mod footer;
mod reader;
mod writer;

pub use footer::{geometry, DiskType, DynamicHeader, Footer, ParentLocator};
pub use reader::VhdImage;
pub use writer::{fixed_footer, fixed_size, write_vhd_fixed};

/// The cookie a footer starts with.
pub const FOOTER_MAGIC: [u8; 8] = *b"conectix";
