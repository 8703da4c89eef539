//! Fuzz the LVM2 reader: the PV label and header, metadata area headers and their circular
//! text, the text parser, and the mapping of every logical volume it accepts.
#![no_main]

#[path = "common/read.rs"]
mod read;

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, MemoryDevice};
use subroot_formats::lvm::{scan, text, Candidate};

fuzz_target!(|data: &[u8]| {
    // The text parser alone, on the input as text.
    if let Ok(t) = std::str::from_utf8(data) {
        let _ = text::parse(t);
    }
    let dev: Arc<dyn BlockDevice> = Arc::new(MemoryDevice::from_vec(data.to_vec()));
    let Ok(vgs) = scan(&[Candidate {
        name: "input".into(),
        device: dev,
    }]) else {
        return;
    };
    for vg in &vgs {
        for lv in &vg.lvs {
            if let Ok(v) = vg.open(&lv.name) {
                read::read_some(&v);
            }
        }
    }
});
