//! `subroot-formats`: pure codecs for the on-disk formats subroot reads and writes.
//!
//! Everything here answers "what do these bytes mean" or "write these bytes"; nothing
//! prints, exits, or decides policy (which partition, what to move). The common ground is
//! the [`block::BlockDevice`] trait: containers (raw, qcow2, VHD, VHDX) implement it, partition tables
//! slice it, filesystem readers read through it.
#![forbid(unsafe_code)]

pub mod base64;
pub mod block;
pub mod btrfs;
pub mod calendar;
pub mod cpio;
pub mod error;
pub mod ext;
pub mod fat;
pub mod hostdir;
pub mod image;
pub mod initrd;
pub mod inplace;
pub mod lvm;
pub mod manifest;
pub mod qcow2;
pub mod resolve;
pub mod sniff;
pub mod sparse_copy;
pub mod swap;
pub mod table;
pub mod tar;
pub mod tree;
pub mod vdi;
pub mod vhd;
pub mod vhdx;
pub mod vmdk;
pub mod xfs;

pub use error::{Error, Result};
