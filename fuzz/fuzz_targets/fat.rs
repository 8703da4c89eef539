//! Fuzz the FAT reader through its public API only (`FatTree::open`, `TreeSource::walk`):
//! open arbitrary bytes as a FAT filesystem, walk every entry and read every file (up to a
//! budget).
#![no_main]

#[path = "common/walk.rs"]
mod walk;

use libfuzzer_sys::fuzz_target;
use subroot_formats::block::MemoryDevice;
use subroot_formats::fat::FatTree;

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = FatTree::open(MemoryDevice::from_vec(data.to_vec())) else {
        return;
    };
    walk::walk_all(&tree);
});
