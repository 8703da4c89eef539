//! ext4's crc32c as the kernel computes it (`ext4_chksum`): a raw CRC without the final
//! inversion, chained from a seed; and the crc16 of the older uninit_bg descriptors.
//!
//! The `crc32c` crate computes the standard CRC (pre- and post-inverted), so the raw form is
//! `!crc32c_append(!seed, data)`.

/// Raw crc32c of `data` continuing from `seed`, as the kernel's `ext4_chksum`.
pub fn chksum(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

/// The kernel's `crc16` (polynomial 0x8005, reflected; no final inversion), used for
/// group descriptor checksums under uninit_bg (`gdt_csum`) without metadata_csum.
pub fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chaining_matches_one_pass() {
        let a = chksum(!0, b"hello ");
        assert_eq!(chksum(a, b"world"), chksum(!0, b"hello world"));
        // The standard check value of crc32c("123456789") is 0xE3069283.
        assert_eq!(!chksum(!0, b"123456789"), 0xE306_9283);
        // CRC-16/MODBUS (same polynomial, init 0xFFFF) check value.
        assert_eq!(crc16(0xFFFF, b"123456789"), 0x4B37);
    }
}
