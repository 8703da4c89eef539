//! Fuzz the tar reader: `TarTree` over arbitrary bytes (plain or any compression the magic
//! names), walking every entry and reading every content (up to a budget: sparse files
//! may legitimately claim huge holes), plus `probe`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use subroot_formats::block::MemoryDevice;
use subroot_formats::tar::{probe, TarTree};
use subroot_formats::tree::TreeSource;
use subroot_formats::Error;

/// Content bytes read per input before the walk is stopped.
const READ_BUDGET: u64 = 32 << 20;

fuzz_target!(|data: &[u8]| {
    let dev = MemoryDevice::from_vec(data.to_vec());
    let _ = probe(&dev);
    let tree = TarTree::new(dev);
    let mut budget = READ_BUDGET;
    let mut buf = vec![0u8; 64 << 10];
    let _ = tree.walk(b"", &mut |e, c| {
        let _ = (e.mode(), e.name(), e.parent());
        let Some(c) = c else { return Ok(()) };
        let _ = c.extents()?;
        loop {
            if budget == 0 {
                return Err(Error::corrupt("fuzz read budget exhausted"));
            }
            let n = c.read(&mut buf).map_err(|e| Error::io("fuzz read", e))?;
            if n == 0 {
                return Ok(());
            }
            budget = budget.saturating_sub(n as u64);
        }
    });
});
