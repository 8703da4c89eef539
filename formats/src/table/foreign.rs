//! Disk labels other than MBR and GPT (BSD, Sun, SGI, Atari), recognised so that a disk
//! holding one is refused by name rather than reported as having no table.
//!
//! The signatures are libblkid's (util-linux `libblkid/src/partitions/{bsd,sun,sgi,atari}.c`):
//! the magic numbers, with the label checksums (Sun, SGI) and the second BSD magic that fdisk
//! also checks; Atari has no magic, only libblkid's heuristic of a plausible primary entry.
//! libblkid's order is kept: Sun and SGI before MBR, BSD and Atari only where no MBR or GPT
//! is found.

use crate::block::BlockDevice;
use crate::Result;

/// A disk label this crate recognises but does not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignLabel {
    /// BSD disklabel (magic 0x82564557 at 512, 64 or 128, again 132 bytes further on).
    Bsd,
    /// Sun VTOC (magic 0xDABE at 508, XOR of the sector's 16-bit words is zero).
    Sun,
    /// SGI volume header (magic 0x0BE5A941 at 0, sum of its 32-bit words is zero).
    Sgi,
    /// Atari (AHDI) root sector (no magic: an active primary entry with an alphanumeric id
    /// inside the disk).
    Atari,
}

impl ForeignLabel {
    /// libblkid's name (`blkid -p`'s PTTYPE).
    pub fn name(&self) -> &'static str {
        match self {
            ForeignLabel::Bsd => "bsd",
            ForeignLabel::Sun => "sun",
            ForeignLabel::Sgi => "sgi",
            ForeignLabel::Atari => "atari",
        }
    }

    /// "a Sun disk label" and so on.
    pub fn long_name(&self) -> &'static str {
        match self {
            ForeignLabel::Bsd => "a BSD disk label",
            ForeignLabel::Sun => "a Sun disk label",
            ForeignLabel::Sgi => "an SGI disk label",
            ForeignLabel::Atari => "an Atari disk label",
        }
    }
}

const BSD_MAGIC: u32 = 0x8256_4557;
const BSD_MAGIC2_AT: usize = 132;

/// A Sun or SGI label in sector 0 of `dev` (libblkid probes these before MBR).
pub fn sun_or_sgi(dev: &dyn BlockDevice) -> Result<Option<ForeignLabel>> {
    let Some(s0) = head(dev, 512)? else {
        return Ok(None);
    };
    let be16 = |o: usize| u16::from_be_bytes([s0[o], s0[o + 1]]);
    let be32 = |o: usize| u32::from_be_bytes([s0[o], s0[o + 1], s0[o + 2], s0[o + 3]]);
    if be16(508) == 0xdabe && s0.chunks_exact(2).fold(0u16, |x, w| x ^ be16_of(w)) == 0 {
        return Ok(Some(ForeignLabel::Sun));
    }
    let sum = s0.chunks_exact(4).fold(0u32, |s, w| {
        s.wrapping_add(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    });
    if be32(0) == 0x0be5_a941 && sum == 0 {
        return Ok(Some(ForeignLabel::Sgi));
    }
    Ok(None)
}

/// A BSD disklabel at the start of `dev` (libblkid probes it after MBR and GPT: a BSD
/// label inside an MBR disk belongs to a partition).
pub fn is_bsd(dev: &dyn BlockDevice) -> Result<bool> {
    let Some(b) = head(dev, 1024)? else {
        return Ok(false);
    };
    let le32 = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    Ok([512usize, 64, 128]
        .iter()
        .any(|&o| le32(o) == BSD_MAGIC && le32(o + BSD_MAGIC2_AT) == BSD_MAGIC))
}

fn be16_of(w: &[u8]) -> u16 {
    u16::from_be_bytes([w[0], w[1]])
}

/// Whether sector 0 of `dev` looks like an Atari root sector: the disk size it records at
/// 0x1C2 (big-endian sectors) is no larger than the device, and one of the four primary
/// entries at 0x1C6 (12 bytes each: flags, 3-byte id, big-endian start and size) is active
/// with an id of three alphanumeric characters (the kernel's `isalnum`, Latin-1) and lies
/// within that size (libblkid 2.38 decides the same, checked in the tests). A heuristic:
/// call it only when nothing else was recognised.
pub fn is_atari(dev: &dyn BlockDevice) -> Result<bool> {
    let Some(s0) = head(dev, 512)? else {
        return Ok(false);
    };
    let hd_size = u64::from(u32::from_be_bytes([
        s0[0x1c2], s0[0x1c3], s0[0x1c4], s0[0x1c5],
    ]));
    if hd_size > dev.len() / 512 {
        return Ok(false);
    }
    let alnum = |c: u8| c.is_ascii_alphanumeric() || (c >= 0xc0 && c != 0xd7 && c != 0xf7);
    Ok(s0[0x1c6..0x1c6 + 48].chunks_exact(12).any(|e| {
        let start = u64::from(u32::from_be_bytes([e[4], e[5], e[6], e[7]]));
        let size = u64::from(u32::from_be_bytes([e[8], e[9], e[10], e[11]]));
        e[0] & 1 == 1
            && e[1..4].iter().all(|&c| alnum(c))
            && start <= hd_size
            && start + size <= hd_size
    }))
}

/// The first `len` bytes of `dev`, or `None` when it is smaller.
fn head(dev: &dyn BlockDevice, len: usize) -> Result<Option<Vec<u8>>> {
    if dev.len() < len as u64 {
        return Ok(None);
    }
    let mut b = vec![0u8; len];
    dev.read_at(&mut b, 0)?;
    Ok(Some(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MemoryDevice;

    #[test]
    fn zeros_and_noise_are_no_label() {
        let d = MemoryDevice::new(1 << 20);
        assert_eq!(sun_or_sgi(&d).unwrap(), None);
        assert!(!is_bsd(&d).unwrap());
        assert!(!is_atari(&d).unwrap());
        assert_eq!(sun_or_sgi(&MemoryDevice::new(100)).unwrap(), None);
        // A Sun magic with a wrong checksum is not a Sun label (libblkid ignores it too).
        let mut v = vec![0u8; 4096];
        v[508] = 0xda;
        v[509] = 0xbe;
        v[0] = 1;
        assert_eq!(sun_or_sgi(&MemoryDevice::from_vec(v)).unwrap(), None);
    }

    #[test]
    fn bsd_needs_both_magics() {
        let mut v = vec![0u8; 4096];
        v[512..516].copy_from_slice(&BSD_MAGIC.to_le_bytes());
        assert!(!is_bsd(&MemoryDevice::from_vec(v.clone())).unwrap());
        v[644..648].copy_from_slice(&BSD_MAGIC.to_le_bytes());
        assert!(is_bsd(&MemoryDevice::from_vec(v)).unwrap());
    }
}
