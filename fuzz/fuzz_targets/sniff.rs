//! Fuzz filesystem sniffing (ext, vfat, swap, LUKS, LVM2, btrfs, xfs, squashfs, erofs,
//! iso9660, ...) over the input as a device.
#![no_main]

use libfuzzer_sys::fuzz_target;
use subroot_formats::block::MemoryDevice;
use subroot_formats::sniff::{is_vfat_boot_sector, sniff};

fuzz_target!(|data: &[u8]| {
    let _ = is_vfat_boot_sector(data);
    let dev = MemoryDevice::from_vec(data.to_vec());
    let _ = sniff(&dev);
});
