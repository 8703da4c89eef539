//! The 512-byte ustar header block and pax extended-header records.
//!
//! Numeric fields are octal, NUL-terminated; a value too large for its octal field is
//! written in GNU base-256 (high bit set) — GNU tar and libarchive read both.

/// Size of a tar block.
pub const BLOCK: usize = 512;

/// Typeflags.
pub mod typeflag {
    pub const FILE: u8 = b'0';
    pub const HARDLINK: u8 = b'1';
    pub const SYMLINK: u8 = b'2';
    pub const CHAR: u8 = b'3';
    pub const BLOCK: u8 = b'4';
    pub const DIR: u8 = b'5';
    pub const FIFO: u8 = b'6';
    /// A pax extended header for the next entry.
    pub const PAX: u8 = b'x';
}

/// The fields of one ustar header.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// At most 100 bytes are stored; longer names go into a pax `path` record.
    pub name: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    /// Seconds; a negative value is stored as 0 (the pax `mtime` record carries it).
    pub mtime: i64,
    pub typeflag: u8,
    pub linkname: Vec<u8>,
    pub devmajor: u64,
    pub devminor: u64,
}

impl Header {
    /// Encode as one block.
    pub fn encode(&self) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        put_bytes(&mut b[0..100], &self.name);
        put_num(&mut b[100..108], u64::from(self.mode & 0o7777));
        put_num(&mut b[108..116], self.uid);
        put_num(&mut b[116..124], self.gid);
        put_num(&mut b[124..136], self.size);
        put_num(&mut b[136..148], u64::try_from(self.mtime).unwrap_or(0));
        b[156] = self.typeflag;
        put_bytes(&mut b[157..257], &self.linkname);
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        put_num(&mut b[329..337], self.devmajor);
        put_num(&mut b[337..345], self.devminor);
        // The checksum is computed with its own field as spaces.
        b[148..156].fill(b' ');
        let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
        let s = format!("{sum:06o}\0 ");
        b[148..156].copy_from_slice(s.as_bytes());
        b
    }
}

/// Copy `v` into `field`, truncated.
fn put_bytes(field: &mut [u8], v: &[u8]) {
    let n = v.len().min(field.len());
    field[..n].copy_from_slice(&v[..n]);
}

/// True when `v` fits the octal form of a field of `width` bytes (one byte for the NUL).
pub fn fits_octal(v: u64, width: usize) -> bool {
    let digits = width - 1;
    digits >= 22 || v < (1u64 << (3 * digits))
}

/// Write `v` as NUL-terminated octal, or GNU base-256 when it does not fit.
fn put_num(field: &mut [u8], v: u64) {
    let w = field.len();
    if fits_octal(v, w) {
        let s = format!("{v:0width$o}", width = w - 1);
        field[..w - 1].copy_from_slice(s.as_bytes());
        field[w - 1] = 0;
    } else {
        field.fill(0);
        let bytes = v.to_be_bytes();
        let n = bytes.len().min(w - 1);
        field[w - n..].copy_from_slice(&bytes[8 - n..]);
        field[0] |= 0x80;
    }
}

/// A pax extended header under construction: `LEN key=value\n` records.
#[derive(Debug, Default)]
pub struct Pax {
    pub data: Vec<u8>,
}

impl Pax {
    /// Append one record; the value may be any bytes.
    pub fn record(&mut self, key: &[u8], value: &[u8]) {
        // LEN counts the whole record including its own digits.
        let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = rest + 1;
        while len.to_string().len() + rest != len {
            len = rest + len.to_string().len();
        }
        self.data.extend_from_slice(len.to_string().as_bytes());
        self.data.push(b' ');
        self.data.extend_from_slice(key);
        self.data.push(b'=');
        self.data.extend_from_slice(value);
        self.data.push(b'\n');
    }
}

/// A pax time value: `SEC.NNNNNNNNN`, exact for negative times too (-1.5 is 1.5 s before
/// the epoch, i.e. sec -2 with 500 000 000 ns).
pub fn pax_time(sec: i64, nsec: u32) -> String {
    if sec >= 0 {
        format!("{sec}.{nsec:09}")
    } else if nsec == 0 {
        format!("{sec}")
    } else {
        let whole = -(sec + 1);
        format!("-{whole}.{:09}", 1_000_000_000 - nsec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths() {
        let mut p = Pax::default();
        p.record(b"path", b"abc");
        assert_eq!(p.data, b"12 path=abc\n");
        let mut p = Pax::default();
        p.record(b"k", &[b'v'; 94]);
        // 1 + 94 + 3 = 98 + 2 digits = 100 -> 3 digits -> 101
        assert_eq!(&p.data[..4], b"101 ");
        assert_eq!(p.data.len(), 101);
    }

    #[test]
    fn times() {
        assert_eq!(pax_time(5, 1), "5.000000001");
        assert_eq!(pax_time(-2, 500_000_000), "-1.500000000");
        assert_eq!(pax_time(-3, 0), "-3");
    }

    #[test]
    fn numbers() {
        let mut f = [0u8; 8];
        put_num(&mut f, 0o755);
        assert_eq!(&f, b"0000755\0");
        put_num(&mut f, 1 << 30);
        assert_eq!(f[0], 0x80);
        assert_eq!(&f[4..], &(1u32 << 30).to_be_bytes());
    }
}
