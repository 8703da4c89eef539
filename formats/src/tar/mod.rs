//! POSIX pax / GNU / ustar tar archives of tree-model entries: a writer with nanosecond
//! times, xattrs, hard links, devices and GNU sparse 1.0 (see [`writer`] for the format
//! choices), and a streaming reader of plain or compressed archives as a tree (see
//! [`reader`]).

mod acl;
mod header;
mod parse;
pub mod reader;
mod stream;
mod writer;

pub use header::pax_time;
pub use reader::{probe, TarTree};
pub use writer::{member_name, write_tree, TarSummary, TarWriter};
