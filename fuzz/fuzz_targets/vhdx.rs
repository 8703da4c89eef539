//! Fuzz the VHDX reader: headers, region tables, metadata, BAT, sector bitmaps, extents.
//!
//! A VHDX spreads its structures over several MiB (headers at 64 KiB, regions on MiB
//! boundaries), too far apart for a fuzzer's inputs, so an input is a list of records
//! `[file offset: u32 LE][length: u16 LE][bytes]` written into a sparse temporary file
//! (seeds.sh makes them from qemu-made images). Differencing disks are skipped (their
//! parents would be looked for beside the file).
#![no_main]

#[path = "common/read.rs"]
mod read;

use libfuzzer_sys::fuzz_target;
use std::os::unix::fs::FileExt;
use subroot_formats::vhdx::VhdxImage;

/// Largest file built (sparse).
const MAX_FILE: u64 = 64 << 20;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("subroot-fuzz-vhdx-{}.vhdx", std::process::id()));
    let Ok(f) = std::fs::File::create(&path) else {
        return;
    };
    let mut rest = data;
    while rest.len() >= 6 {
        let off = u64::from(u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]])) % MAX_FILE;
        let n = usize::from(u16::from_le_bytes([rest[4], rest[5]])).min(rest.len() - 6);
        if f.write_all_at(&rest[6..6 + n], off).is_err() {
            return;
        }
        rest = &rest[6 + n..];
    }
    drop(f);
    let Ok(img) = VhdxImage::open(&path) else {
        return;
    };
    if img.metadata().parent.is_some() {
        return;
    }
    read::read_some(&img);
});
