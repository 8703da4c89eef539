//! Fuzz the VDI reader: header checks, the block map read in chunks, block offsets.
//!
//! The reader opens paths, so each input is written to a per-process temporary file.
#![no_main]

#[path = "common/read.rs"]
mod read;

use libfuzzer_sys::fuzz_target;
use subroot_formats::vdi::VdiImage;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("subroot-fuzz-vdi-{}.img", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(img) = VdiImage::open(&path) {
        read::read_some(&img);
    }
});
