//! `subroot-e2fs`: everything that drives e2fsprogs, kept out of the pure codecs of
//! `subroot-formats` (which neither spawn processes nor read the environment).
//!
//! [`tools`] finds and runs mke2fs, debugfs, e2fsck and dumpe2fs; [`writer`] builds an
//! ext2/3/4 filesystem from any tree with them and makes the result exact (populate,
//! reconcile, index, verify), and edits a copy of an existing one in place.
//!
//! The caller finds the tools once ([`tools::E2fsprogs::find`]) and passes them in. This
//! crate reads no environment variable: where the tools are, the clock they run with
//! ([`tools::FindOptions`]) and the populate path ([`writer::BuildOptions::populate`]) are
//! the caller's to say. Failures are an [`Error`], whose variants callers match on.
#![forbid(unsafe_code)]

mod error;
pub mod resize;
pub mod tools;
pub mod writer;

pub use error::{Error, Result, ToolError};
