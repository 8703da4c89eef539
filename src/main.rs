//! The `subroot` command line.
fn main() {}
