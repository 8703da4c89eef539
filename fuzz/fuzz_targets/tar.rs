//! Fuzz the tar reader: `TarTree` over arbitrary bytes (plain or any compression the magic
//! names), walking every entry and reading every content (up to a budget: sparse files
//! may legitimately claim huge holes), plus `probe`.
#![no_main]

#[path = "common/walk.rs"]
mod walk;

use libfuzzer_sys::fuzz_target;
use subroot_formats::block::MemoryDevice;
use subroot_formats::tar::{probe, TarTree};

fuzz_target!(|data: &[u8]| {
    let dev = MemoryDevice::from_vec(data.to_vec());
    let _ = probe(&dev);
    let tree = TarTree::new(dev);
    walk::walk_all(&tree);
});
