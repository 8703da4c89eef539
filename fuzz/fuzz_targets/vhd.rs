//! Fuzz the VHD reader: footer (end copy and start copy), dynamic header, BAT, sector
//! bitmaps, extents. Inputs are written to a per-process temporary file; differencing
//! disks are skipped (their parents would be looked for beside the file).
#![no_main]

#[path = "common/read.rs"]
mod read;

use libfuzzer_sys::fuzz_target;
use subroot_formats::vhd::{DiskType, Footer, VhdImage};

fuzz_target!(|data: &[u8]| {
    let differencing = |f: &[u8]| Footer::parse(f).is_ok_and(|f| f.disk_type == DiskType::Differencing);
    if differencing(data) || differencing(&data[data.len().saturating_sub(512)..]) {
        return;
    }
    let path = std::env::temp_dir().join(format!("subroot-fuzz-vhd-{}.vhd", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(img) = VhdImage::open(&path) else {
        return;
    };
    let _ = img.dynamic_header();
    read::read_some(&img);
});
