//! Host directories: safe extraction of any tree into a directory, and a directory read
//! as a tree.
//!
//! [`extract`] writes the entries of a [`TreeSource`](crate::tree::TreeSource) below a
//! destination directory. Every operation is relative to an open directory descriptor and
//! never follows a symlink, so a hostile archive or image (`../x`, `/abs`, `a -> /etc` then
//! `a/passwd`) cannot write outside the destination. [`HostDir`] is the other direction:
//! a directory of the host walked without following symlinks, with full metadata (ns
//! timestamps, xattrs, ACLs, hard links, devices) and sparse-aware file contents.

mod apply;
mod extract;
mod options;
mod reader;
mod sys;

pub use extract::{extract, extract_reporting};
pub use options::{ExtractOptions, ExtractSummary, SkipKind, Skipped};
pub use reader::HostDir;
