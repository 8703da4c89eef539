//! Bounds-checked little-endian field access for on-disk structures.
//!
//! Every accessor returns 0 for a field that lies outside the buffer, so callers must check
//! structure sizes before trusting the values; this keeps indexing panics impossible.

/// Little-endian u16 at `off`, or 0 when out of bounds.
pub fn le16(b: &[u8], off: usize) -> u16 {
    match b.get(off..off.saturating_add(2)) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]),
        None => 0,
    }
}

/// Little-endian u32 at `off`, or 0 when out of bounds.
pub fn le32(b: &[u8], off: usize) -> u32 {
    match b.get(off..off.saturating_add(4)) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// Byte at `off`, or 0 when out of bounds.
pub fn u8_at(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}
