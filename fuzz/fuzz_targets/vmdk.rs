//! Fuzz the VMDK reader: sparse extent headers, the streamOptimized footer, grain
//! directories and tables, compressed grains, text descriptors, extents.
//!
//! The reader opens paths, so each input is written to a per-process private directory:
//! a descriptor's extent files resolve only inside it (escaping names are refused), so
//! only the input itself can be named. Descriptor inputs that name a parent are skipped
//! (a parent named inside a sparse extent is opened read-only, like any image).
#![no_main]

#[path = "common/read.rs"]
mod read;

use libfuzzer_sys::fuzz_target;
use subroot_formats::vmdk::{Descriptor, VmdkImage};

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = Descriptor::parse(data) {
        if d.parent().is_some() {
            return;
        }
    }
    let dir = std::env::temp_dir().join(format!("subroot-fuzz-vmdk-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let path = dir.join("input.vmdk");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(img) = VmdkImage::open(&path) {
        read::read_some(&img);
    }
});
