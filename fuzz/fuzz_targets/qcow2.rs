//! Fuzz the qcow2 reader: header parsing, the L1/L2 walk, compressed clusters, extents.
//!
//! The reader opens paths, so each input is written to a per-process temporary file.
//! Inputs whose header names a backing file are skipped: backing files are not followed
//! while fuzzing (they would reach outside the input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use subroot_formats::block::{BlockDevice, ExtentKind};
use subroot_formats::qcow2::{Header, Qcow2Image};

/// Guest bytes read per input, at most.
const READ_BUDGET: u64 = 16 << 20;

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
    let len = img.len();
    let mut budget = READ_BUDGET;
    let mut buf = vec![0u8; 1 << 20];
    // The start and the end of the guest, whatever the extents say.
    for off in [0, len.saturating_sub(4096)] {
        let n = (len - off).min(4096) as usize;
        let _ = img.read_at(&mut buf[..n], off);
    }
    let Ok(extents) = img.extents(0, len) else {
        return;
    };
    for e in extents {
        if e.kind != ExtentKind::Data {
            continue;
        }
        let mut pos = e.offset;
        while pos < e.end() && budget > 0 {
            let n = (e.end() - pos).min(buf.len() as u64).min(budget);
            if img.read_at(&mut buf[..n as usize], pos).is_err() {
                return;
            }
            pos += n;
            budget -= n;
        }
    }
});
