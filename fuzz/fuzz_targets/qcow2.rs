//! Fuzz the qcow2 reader: header parsing, the L1/L2 walk, compressed clusters, extents.
//!
//! The reader opens paths, so each input is written to a per-process temporary file.
//! Inputs whose header names a backing file are skipped: backing files are not followed
//! while fuzzing (they would reach outside the input).
#![no_main]

#[path = "exercise.rs"]
mod exercise;

use exercise::exercise;
use libfuzzer_sys::fuzz_target;
use subroot_formats::qcow2::{Header, Qcow2Image};

fuzz_target!(|data: &[u8]| {
    let head = &data[..data.len().min(2 << 20)];
    if let Ok(h) = Header::parse(head, data.len() as u64) {
        if h.backing_file.is_some() {
            return;
        }
    }
    let path = std::env::temp_dir().join(format!("subroot-fuzz-qcow2-{}.img", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(img) = Qcow2Image::open(&path) else {
        return;
    };
    let _ = img.header().feature_name(0, 0);
    let _ = img.file_allocated_bytes();
    exercise(&img);
});
