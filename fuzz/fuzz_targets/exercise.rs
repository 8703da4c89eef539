//! What every image-reader fuzz target does with an image that opened: read its start and
//! end whatever the extents say, then every data extent up to a budget.

use subroot_formats::block::{BlockDevice, ExtentKind};

/// Guest bytes read per input, at most.
const READ_BUDGET: u64 = 16 << 20;

pub fn exercise(img: &dyn BlockDevice) {
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
}
