//! Helpers shared by the integration tests of every crate in the workspace (not
//! published): finding and running the reference tools ([`tools`], re-exported here),
//! skipping loudly when one is missing, judging a container reader by qemu ([`oracle`]), and the rich fidelity tree with ext images made
//! from it ([`rich`]).
#![forbid(unsafe_code)]

pub mod lvm;
pub mod mount;
pub mod oracle;
pub mod rich;
pub mod tools;

pub use tools::*;
