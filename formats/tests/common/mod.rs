//! The shared test helpers (the `subroot-test-support` crate) under the name every test
//! file of this crate uses.
pub use subroot_test_support::*;
pub mod oracle;
