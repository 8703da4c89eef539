//! Microsoft VHDX images (Hyper-V): dynamic, fixed and differencing, read as a
//! [`crate::block::BlockDevice`].
//!
//! The file starts with an identifier, two headers (the valid one with the higher sequence
//! number wins, CRC-32C checked) and two copies of a region table locating the BAT and the
//! metadata region. Payload blocks are mapped by the BAT, which interleaves one sector
//! bitmap entry after every chunk of payload entries; in a differencing disk a partially
//! present block takes its unset sectors from the parent. An image whose log must be
//! replayed (it was not closed cleanly) is read with the log replayed in memory; the
//! file is never written. Dynamic images are also written ([`write_vhdx_dynamic`]).

mod header;
mod log;
mod reader;
mod writer;

pub use header::{Metadata, ParentLocator};
pub use reader::VhdxImage;
pub use writer::{vhdx_size, write_vhdx_dynamic};

/// The eight bytes a VHDX file starts with.
pub const MAGIC: [u8; 8] = *b"vhdxfile";
