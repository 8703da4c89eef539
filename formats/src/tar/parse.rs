//! Parsing of tar header blocks (v7, POSIX ustar, GNU) and pax extended-header records,
//! for the reader. Every field is checked: a bad checksum, a number field holding
//! something other than octal or GNU base-256, or a pax record whose length lies is an
//! [`Error::Corrupt`] naming the archive offset and what was found.

use super::header::BLOCK;
use crate::tree::Timestamp;
use crate::{Error, Result};

/// The fields of one header block, as stored (before pax or GNU long-name overrides).
#[derive(Debug, Clone, Default)]
pub struct RawHeader {
    /// `prefix/name` for POSIX ustar, `name` otherwise.
    pub name: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Bytes of data following the header in the archive.
    pub size: u64,
    pub mtime: i64,
    pub typeflag: u8,
    pub linkname: Vec<u8>,
    pub devmajor: u64,
    pub devminor: u64,
    /// GNU atime and ctime fields, when non-zero.
    pub gnu_atime: Option<i64>,
    pub gnu_ctime: Option<i64>,
    /// Old GNU sparse map entries in the header (`S` members): (offset, length).
    pub gnu_sparse: Vec<(u64, u64)>,
    /// An old GNU sparse map continues in extension blocks.
    pub gnu_extended: bool,
    /// Old GNU sparse: the real file size.
    pub gnu_realsize: u64,
}

fn corrupt(offset: u64, msg: impl std::fmt::Display) -> Error {
    Error::corrupt(format!("tar: header at offset {offset}: {msg}"))
}

/// Bytes of `field` up to the first NUL.
pub fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(i) => &field[..i],
        None => field,
    }
}

/// A numeric field: octal (leading spaces/NULs allowed, ending at a space or NUL), or
/// GNU base-256 (high bit of the first byte set; two's complement when bit 6 is set too).
pub fn number(field: &[u8], what: &str, offset: u64) -> Result<i128> {
    let Some((&first, rest)) = field.split_first() else {
        return Ok(0);
    };
    if first & 0x80 != 0 {
        if field.len() > 12 {
            return Err(corrupt(offset, format!("{what}: base-256 field too wide")));
        }
        let mut v: u128 = u128::from(first & 0x7f);
        for &b in rest {
            v = (v << 8) | u128::from(b);
        }
        let bits = 8 * field.len() as u32 - 1;
        let v = v as i128;
        return Ok(if first & 0x40 != 0 {
            v - (1i128 << bits)
        } else {
            v
        });
    }
    let mut i = 0;
    while i < field.len() && (field[i] == b' ' || field[i] == 0) {
        i += 1;
    }
    let mut v: i128 = 0;
    while i < field.len() && (b'0'..=b'7').contains(&field[i]) {
        v = v * 8 + i128::from(field[i] - b'0');
        i += 1;
    }
    if field[i..].iter().any(|&b| b != b' ' && b != 0) {
        return Err(corrupt(
            offset,
            format!(
                "{what} field holds {:?}, expected octal digits",
                String::from_utf8_lossy(field)
            ),
        ));
    }
    Ok(v)
}

fn unsigned(field: &[u8], what: &str, offset: u64) -> Result<u64> {
    let v = number(field, what, offset)?;
    u64::try_from(v).map_err(|_| corrupt(offset, format!("{what} is {v}, out of range")))
}

/// True when `b` is a header block with a valid checksum (signed or unsigned sum, as
/// old tars differ).
pub fn checksum_ok(b: &[u8; BLOCK]) -> bool {
    let Ok(want) = number(&b[148..156], "checksum", 0) else {
        return false;
    };
    let (mut u, mut s) = (0i64, 0i64);
    for (i, &x) in b.iter().enumerate() {
        let x = if (148..156).contains(&i) { b' ' } else { x };
        u += i64::from(x);
        s += i64::from(x as i8);
    }
    want == i128::from(u) || want == i128::from(s)
}

/// Parse one header block at archive `offset`; `Ok(None)` for an all-zero block.
pub fn parse_header(b: &[u8; BLOCK], offset: u64) -> Result<Option<RawHeader>> {
    if b.iter().all(|&x| x == 0) {
        return Ok(None);
    }
    if !checksum_ok(b) {
        return Err(corrupt(
            offset,
            format!(
                "bad checksum (field {:?}): not a tar header, or a damaged one",
                String::from_utf8_lossy(cstr(&b[148..156]))
            ),
        ));
    }
    let magic = &b[257..265];
    let gnu = magic == b"ustar  \0";
    let ustar = &magic[..6] == b"ustar\0";
    let mut name = cstr(&b[0..100]).to_vec();
    if ustar {
        let prefix = cstr(&b[345..500]);
        if !prefix.is_empty() {
            let mut n = prefix.to_vec();
            n.push(b'/');
            n.extend_from_slice(&name);
            name = n;
        }
    }
    let mode = unsigned(&b[100..108], "mode", offset)?;
    let mtime = number(&b[136..148], "mtime", offset)?;
    let mut h = RawHeader {
        name,
        mode: (mode & 0o7777) as u32,
        uid: unsigned(&b[108..116], "uid", offset)?,
        gid: unsigned(&b[116..124], "gid", offset)?,
        size: unsigned(&b[124..136], "size", offset)?,
        mtime: i64::try_from(mtime).map_err(|_| corrupt(offset, "mtime out of range"))?,
        typeflag: b[156],
        linkname: cstr(&b[157..257]).to_vec(),
        ..Default::default()
    };
    if ustar || gnu {
        h.devmajor = unsigned(&b[329..337], "devmajor", offset)?;
        h.devminor = unsigned(&b[337..345], "devminor", offset)?;
    }
    if gnu {
        let t = |f: &[u8], w| -> Result<Option<i64>> {
            let v = number(f, w, offset)?;
            let v = i64::try_from(v).map_err(|_| corrupt(offset, format!("{w} out of range")))?;
            Ok((v != 0).then_some(v))
        };
        h.gnu_atime = t(&b[345..357], "atime")?;
        h.gnu_ctime = t(&b[357..369], "ctime")?;
        if h.typeflag == b'S' {
            h.gnu_sparse = sparse_entries(&b[386..482], offset)?;
            h.gnu_extended = b[482] != 0;
            h.gnu_realsize = unsigned(&b[483..495], "realsize", offset)?;
        }
    }
    Ok(Some(h))
}

/// Old GNU sparse (offset, numbytes) pairs of 12-byte octal fields; an all-zero pair ends
/// the list.
pub fn sparse_entries(area: &[u8], offset: u64) -> Result<Vec<(u64, u64)>> {
    let mut v = Vec::new();
    for pair in area.chunks_exact(24) {
        if pair.iter().all(|&b| b == 0) {
            break;
        }
        v.push((
            unsigned(&pair[..12], "sparse offset", offset)?,
            unsigned(&pair[12..], "sparse numbytes", offset)?,
        ));
    }
    Ok(v)
}

/// Split pax extended-header data into (key, value) records, checking every length.
pub fn pax_records(data: &[u8], offset: u64) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let bad = |msg: String| {
            corrupt(
                offset,
                format!("pax record at byte {pos} of the extended header: {msg}"),
            )
        };
        let sp = rest
            .iter()
            .take(20)
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("no `LENGTH ` prefix".into()))?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                bad(format!(
                    "length {:?} is not a decimal number",
                    String::from_utf8_lossy(&rest[..sp])
                ))
            })?;
        if len <= sp + 1 || len > rest.len() {
            return Err(bad(format!(
                "claims {len} bytes, but {} remain (and at least {} are needed)",
                rest.len(),
                sp + 3
            )));
        }
        let rec = &rest[sp + 1..len];
        let Some(body) = rec.strip_suffix(b"\n") else {
            return Err(bad(format!(
                "claims {len} bytes but does not end with a newline there"
            )));
        };
        let eq = body
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("no `=` between key and value".into()))?;
        out.push((body[..eq].to_vec(), body[eq + 1..].to_vec()));
        pos += len;
    }
    Ok(out)
}

/// A pax time (`SEC[.FRACTION]`, possibly negative) as a [`Timestamp`].
pub fn pax_timestamp(v: &[u8]) -> Option<Timestamp> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let sec: i64 = int.parse().ok()?;
    let mut nsec: u32 = 0;
    for (i, c) in frac.bytes().take(9).enumerate() {
        nsec += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
    }
    Some(if !neg {
        Timestamp { sec, nsec }
    } else if nsec == 0 {
        Timestamp { sec: -sec, nsec: 0 }
    } else {
        Timestamp {
            sec: -sec - 1,
            nsec: 1_000_000_000 - nsec,
        }
    })
}

/// A decimal pax number.
pub fn pax_number(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?;
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::pax_time;

    #[test]
    fn numbers() {
        assert_eq!(number(b"0000755\0", "m", 0).unwrap(), 0o755);
        assert_eq!(number(b"   755 \0", "m", 0).unwrap(), 0o755);
        assert!(number(b"07x5\0\0\0\0", "m", 0).is_err());
        let mut f = [0u8; 8];
        f[0] = 0x80;
        f[4..].copy_from_slice(&(1u32 << 30).to_be_bytes());
        assert_eq!(number(&f, "uid", 0).unwrap(), 1 << 30);
        let neg = [0xffu8; 12];
        assert_eq!(number(&neg, "mtime", 0).unwrap(), -1);
    }

    #[test]
    fn times_round_trip_with_the_writer() {
        for (s, n) in [
            (5, 1),
            (-2, 500_000_000),
            (-3, 0),
            (0, 0),
            (1 << 40, 999_999_999),
        ] {
            let t = pax_timestamp(pax_time(s, n).as_bytes()).unwrap();
            assert_eq!((t.sec, t.nsec), (s, n));
        }
        assert_eq!(pax_timestamp(b"12.5").unwrap().nsec, 500_000_000);
        assert!(pax_timestamp(b"1e5").is_none());
    }

    #[test]
    fn pax_lengths_are_checked() {
        assert_eq!(
            pax_records(b"11 path=ab\n", 0).unwrap(),
            vec![(b"path".to_vec(), b"ab".to_vec())]
        );
        for bad in [
            &b"12 path=ab\n"[..],
            b"10 path=ab\n",
            b"99999 x=y\n",
            b"x path\n",
        ] {
            assert!(pax_records(bad, 0).is_err(), "{bad:?}");
        }
    }
}
