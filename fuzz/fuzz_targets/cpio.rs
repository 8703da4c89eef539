//! Fuzz the initrd segment walker: plain newc archives and every compressed segment kind,
//! reading all entry data (up to a budget), then list_segments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use subroot_formats::block::MemoryDevice;
use subroot_formats::cpio::{list_segments, visit_entries};
use subroot_formats::Error;

/// Decompressed entry bytes read per input before the walk is stopped.
const READ_BUDGET: u64 = 32 << 20;

fuzz_target!(|data: &[u8]| {
    let dev = MemoryDevice::from_vec(data.to_vec());
    let mut budget = READ_BUDGET;
    let mut buf = vec![0u8; 64 << 10];
    let _ = visit_entries(&dev, |_ctx, hdr, r| {
        let _ = (hdr.is_trailer(), hdr.file_type());
        loop {
            if budget == 0 {
                return Err(Error::corrupt("fuzz read budget exhausted"));
            }
            let n = r.read(&mut buf).map_err(|e| Error::io("fuzz read", e))?;
            if n == 0 {
                return Ok(());
            }
            budget = budget.saturating_sub(n as u64);
        }
    });
    if budget > 0 {
        let _ = list_segments(&dev);
    }
});
