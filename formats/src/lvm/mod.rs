//! LVM2, read-only: physical volume labels and metadata areas ([`label`]), the text
//! metadata ([`text`]), and logical volumes as block devices ([`volume`]).
//!
//! [`scan`] reads the physical volumes found on a set of devices (partitions or a whole
//! disk), takes each volume group's newest valid metadata (every metadata area of every
//! PV; the highest `seqno` whose checksum holds), and describes its logical volumes.
//! Linear and striped volumes open as [`volume::LogicalVolume`]; thin pools, thin volumes,
//! RAID, mirrors, caches, snapshots and VDO are named and refused.

pub mod label;
pub mod text;
pub mod volume;

pub use label::{read_label, PvLabel};
pub use volume::{scan, Candidate, LogicalVolume, LvInfo, LvLayout, PhysicalVolume, VolumeGroup};
