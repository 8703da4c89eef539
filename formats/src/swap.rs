//! Linux swap areas (the v1 header mkswap writes): re-made for a new size, keeping their
//! UUID and label.
//!
//! The header lies in the first page: the signature `SWAPSPACE2` ends the page (whose size
//! is the page size of the system that made it), and at byte 1024 come the version (1),
//! the last usable page, the bad-page count, the UUID and the 16-byte label. Only the last
//! page depends on the size of the area, so re-making it for another size is rewriting
//! that one field, exactly what `mkswap -U UUID -L LABEL` writes for an area without bad
//! pages.

use crate::block::BlockDevice;
use crate::{Error, Result};

/// Page sizes a swap signature is looked for at, as libblkid does.
const PAGE_SIZES: [u64; 4] = [4096, 8192, 16384, 65536];
/// Where the v1 header starts.
const HEADER: u64 = 1024;

/// The page size of the v1 swap area on `dev`, or `None` when there is none.
pub fn page_size(dev: &dyn BlockDevice) -> Result<Option<u64>> {
    let mut sig = [0u8; 10];
    for page in PAGE_SIZES {
        if dev.len() >= page {
            dev.read_at(&mut sig, page - 10)?;
            if &sig == b"SWAPSPACE2" {
                return Ok(Some(page));
            }
        }
    }
    Ok(None)
}

/// Make the v1 swap area on `dev` span the whole of `dev` (its UUID, label and the rest of
/// the header kept). Refused when `dev` holds no v1 swap header, or one with bad pages
/// (their list would have to be re-checked against the new size).
pub fn fit_to_device(dev: &dyn BlockDevice) -> Result<()> {
    let page = page_size(dev)?
        .ok_or_else(|| Error::InvalidArgument("no swap v1 signature (SWAPSPACE2)".into()))?;
    let mut h = [0u8; 12];
    dev.read_at(&mut h, HEADER)?;
    let le = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    if le(0) != 1 {
        return Err(Error::unsupported(format!(
            "swap header version {} (only version 1 is re-made)",
            le(0)
        )));
    }
    if le(8) != 0 {
        return Err(Error::unsupported(format!(
            "the swap area lists {} bad pages; re-make it with mkswap",
            le(8)
        )));
    }
    let pages = dev.len() / page;
    if pages < 10 {
        return Err(Error::InvalidArgument(format!(
            "{} bytes is too small for a swap area (mkswap needs 10 pages)",
            dev.len()
        )));
    }
    let last = u32::try_from(pages - 1).map_err(|_| {
        Error::unsupported(format!(
            "{} bytes is beyond the largest swap area of {page}-byte pages",
            dev.len()
        ))
    })?;
    dev.write_at(&last.to_le_bytes(), HEADER + 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MemoryDevice;

    #[test]
    fn last_page_follows_the_device() {
        let m = MemoryDevice::new(64 * 4096);
        m.write_at(b"SWAPSPACE2", 4096 - 10).unwrap();
        m.write_at(&1u32.to_le_bytes(), 1024).unwrap();
        m.write_at(&9u32.to_le_bytes(), 1028).unwrap();
        fit_to_device(&m).unwrap();
        let mut b = [0u8; 4];
        m.read_at(&mut b, 1028).unwrap();
        assert_eq!(u32::from_le_bytes(b), 63);
        m.write_at(&2u32.to_le_bytes(), 1032).unwrap();
        assert!(fit_to_device(&m).is_err());
        assert!(fit_to_device(&MemoryDevice::new(8192)).is_err());
    }
}
