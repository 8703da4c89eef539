//! What every container fuzz target does with an image it opened: read its first and last
//! 4 KiB whatever the map says, then every data extent, up to a budget.

use subroot_formats::block::{BlockDevice, ExtentKind};

/// Guest bytes read per input, at most.
const READ_BUDGET: u64 = 16 << 20;

pub fn read_some(img: &dyn BlockDevice) {
    let len = img.len();
    let mut budget = READ_BUDGET;
    let mut buf = vec![0u8; 1 << 20];
    for off in [0, len.saturating_sub(4096)] {
        let n = (len - off).min(4096) as usize;
        let _ = img.read_at(&mut buf[..n], off);
    }
    let Ok(extents) = img.extents(0, len) else {
        return;
    };
    for e in extents.iter().filter(|e| e.kind == ExtentKind::Data) {
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
}
