//! A read-only ext2/ext3/ext4 reader that works through any [`crate::block::BlockDevice`].
//!
//! [`ExtFs`] opens a filesystem (a partition [`crate::block::Slice`] or a whole
//! [`crate::block::RawFile`]) and exposes inodes with every fidelity field (inode number,
//! link count, device numbers, nanosecond timestamps with epoch bits, 32-bit ids),
//! directories (linear, htree, inline), symlinks, extended attributes (in-inode, block,
//! EA inodes; ext4's compact POSIX ACL format is converted to the standard xattr format)
//! and file contents through a sparse-aware [`FileReader`]. Metadata checksums are verified
//! when the filesystem has `metadata_csum`.

mod blockmap;
mod bytes;
mod cache;
mod csum;
mod dir;
mod dotdot;
mod extent;
mod file;
mod file_device;
mod fs;
mod group;
mod inode;
mod superblock;
mod time;
mod tree;
mod xattr;

pub use dir::{file_type, DirEntry};
pub use dotdot::BlockPatch;
pub use file::{FileExtent, FileReader};
pub use file_device::ExtFileDevice;
pub use fs::{ExtFs, OpenOptions};
pub use inode::{decode_dev, Inode, InodeKind, USER_FLAGS};
pub use superblock::{
    Features, Superblock, COMPAT_RESIZE_INODE, COMPAT_SPARSE_SUPER2, INCOMPAT_64BIT,
    INCOMPAT_META_BG, INCOMPAT_RECOVER, RO_COMPAT_BIGALLOC, RO_COMPAT_GDT_CSUM,
    RO_COMPAT_METADATA_CSUM,
};
pub use time::Timestamp;
pub use tree::ExtTree;
