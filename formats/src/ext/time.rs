//! Inode timestamps: 32-bit signed seconds plus the `*_extra` word (epoch bits and
//! nanoseconds), decoded exactly as the kernel's `ext4_decode_extra_time`.

/// A point in time: seconds since 1970 (negative before) and nanoseconds (0..1e9 when the
/// filesystem is sane; the raw 30-bit value is kept as found).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

/// Decode a timestamp from its base word and, when the inode has it, the extra word.
///
/// The base is a signed 32-bit count of seconds; the low two bits of `extra` add multiples
/// of 2^32 seconds (so values up to 2446 are representable) and the upper 30 bits are the
/// nanoseconds. This is the kernel's formula, including for pre-1970 values: base
/// 0x80000000 with epoch 1 is 2038-01-19, with epoch 0 it is 1901-12-13.
pub fn decode(base: u32, extra: Option<u32>) -> Timestamp {
    let mut sec = i64::from(base as i32);
    let mut nsec = 0;
    if let Some(extra) = extra {
        sec += i64::from(extra & 3) << 32;
        nsec = extra >> 2;
    }
    Timestamp { sec, nsec }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_examples() {
        assert_eq!(decode(0, None).sec, 0);
        assert_eq!(decode(0xFFFF_FFFF, None).sec, -1);
        assert_eq!(decode(0x8000_0000, Some(0)).sec, -(1i64 << 31));
        assert_eq!(decode(0x8000_0000, Some(1)).sec, 1i64 << 31);
        assert_eq!(decode(0x7FFF_FFFF, Some(1)).sec, (1i64 << 32) + 0x7FFF_FFFF);
        let t = decode(5, Some(999_999_999 << 2));
        assert_eq!((t.sec, t.nsec), (5, 999_999_999));
    }
}
