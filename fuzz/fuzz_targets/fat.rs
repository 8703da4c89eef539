//! Fuzz the FAT reader through its public API only (`FatTree::open`, `TreeSource::walk`):
//! open arbitrary bytes as a FAT filesystem, walk every entry and read every file (up to a
//! budget).
#![no_main]

use libfuzzer_sys::fuzz_target;
use subroot_formats::block::MemoryDevice;
use subroot_formats::fat::FatTree;
use subroot_formats::tree::TreeSource;
use subroot_formats::Error;

/// Content bytes read per input before the walk is stopped.
const READ_BUDGET: u64 = 32 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = FatTree::open(MemoryDevice::from_vec(data.to_vec())) else {
        return;
    };
    let mut budget = READ_BUDGET;
    let mut entries = 0u32;
    let mut buf = vec![0u8; 64 << 10];
    let _ = tree.walk(b"", &mut |e, c| {
        let _ = e.mode();
        entries += 1;
        if entries > 100_000 {
            return Err(Error::corrupt("fuzz entry budget exhausted"));
        }
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
