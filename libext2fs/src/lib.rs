//! In-process editing of ext2/ext3/ext4 filesystems for subroot, over e2fsprogs' own
//! library, libext2fs (the library under mke2fs, e2fsck, debugfs and fuse2fs).
//!
//! **Why this crate has `unsafe` code** (the only one in the workspace that does): it binds
//! libext2fs, a C library. The unsafe code is confined to the FFI calls ([`sys`] holds the
//! generated declarations), the `io_manager` callbacks in `io.rs` through which libext2fs
//! reads and writes our [`subroot_formats::block::BlockDevice`] (no file is opened by the
//! C code), and the editor in `edit.rs`. Every unsafe block says why it is sound; the
//! public API is safe.
//!
//! The library is linked by soname (`libext2fs.so.2`, `libcom_err.so.2`, see build.rs), so
//! building needs no `-dev` package; [`Ext2Fs::open`] checks that the installed library is
//! 1.46 or newer at run time.
//!
//! [`Ext2Fs`] opens a filesystem read-write, refuses (before writing anything) features it
//! does not handle, and edits it: create any kind of entry with full metadata, hard links,
//! unlink, `rm -r`, rename, replace/truncate/append file contents, set metadata and
//! xattrs, and grow the filesystem into a longer device ([`Ext2Fs::grow`]). [`check`] re-reads the result with subroot's own reader.

pub mod check;
mod edit;
mod error;
mod io;
#[allow(unsafe_op_in_unsafe_fn)]
pub mod sys;

pub use check::{check, check_input, CheckReport};
pub use edit::{CloseStats, Ext2Fs, GrowReport, Stat};
pub use error::{Error, Result};
