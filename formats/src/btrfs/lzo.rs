//! btrfs's LZO framing: a 4-byte total length, then segments (a 4-byte length and an
//! LZO1X stream that decompresses to at most one sector); a segment header never
//! straddles a sector boundary (the rest of the sector is zero padding).

use std::fmt;

/// Why LZO data could not be decompressed.
#[derive(Debug)]
pub struct LzoError(String);

impl fmt::Display for LzoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn u32_at(b: &[u8], at: usize) -> Result<usize, LzoError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")) as usize)
        .ok_or_else(|| LzoError(format!("a length at {at} lies past the {} bytes", b.len())))
}

/// Decompress btrfs LZO `data` to at most `len` bytes (sectors of `sectorsize`).
pub fn decompress(data: &[u8], len: usize, sectorsize: usize) -> Result<Vec<u8>, LzoError> {
    let total = u32_at(data, 0)?;
    if total > data.len() || total < 4 {
        return Err(LzoError(format!(
            "the total length {total} does not fit the {} bytes stored",
            data.len()
        )));
    }
    let mut out = Vec::with_capacity(len);
    let mut pos = 4;
    while pos < total && out.len() < len {
        let left = sectorsize - pos % sectorsize;
        if left < 4 {
            pos += left;
            continue;
        }
        let seg = u32_at(data, pos)?;
        pos += 4;
        let body = data
            .get(pos..pos.saturating_add(seg))
            .filter(|_| pos + seg <= total)
            .ok_or_else(|| {
                LzoError(format!(
                    "a segment of {seg} bytes at {pos} runs past the end"
                ))
            })?;
        let got = lzokay_native::decompress_all(body, Some(sectorsize))
            .map_err(|e| LzoError(format!("segment at {pos}: {e}")))?;
        if got.len() > sectorsize {
            return Err(LzoError(format!(
                "the segment at {pos} decompresses to {} bytes (at most {sectorsize})",
                got.len()
            )));
        }
        out.extend_from_slice(&got);
        pos += seg;
    }
    out.truncate(len);
    Ok(out)
}
