//! Fuzz the partition-table reader (MBR with its EBR chain, GPT with CRCs) and sniff
//! each partition it finds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use subroot_formats::block::{BlockDevice, MemoryDevice, Slice};
use subroot_formats::sniff::sniff;
use subroot_formats::table::read_table;

fuzz_target!(|data: &[u8]| {
    let dev = MemoryDevice::from_vec(data.to_vec());
    let Ok(Some(table)) = read_table(&dev) else {
        return;
    };
    let _ = table.kind.name();
    for p in table.partitions.iter().take(256) {
        let _ = (p.end(), table.partition(p.number));
        if let Ok(slice) = Slice::new(&dev, p.start, p.size) {
            let _ = sniff(&slice);
            let _ = slice.len();
        }
    }
});
