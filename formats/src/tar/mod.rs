//! POSIX pax tar archives of tree-model entries: a writer with nanosecond times, xattrs,
//! hard links, devices and GNU sparse 1.0 (see [`writer`] for the format choices).

mod acl;
mod header;
mod writer;

pub use header::pax_time;
pub use writer::{member_name, write_tree, TarSummary, TarWriter};
