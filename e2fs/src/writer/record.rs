//! [`Record`]: one intended entry as the build remembers it — the tree's [`Entry`] plus
//! the length and hash of the content the populate step was handed — with a compact
//! binary encoding for the spool files ([`super::spool`]), and [`path_cmp`], the order
//! in which an [`subroot_formats::ext::ExtTree`] walk visits paths.
//!
//! Encoding (little-endian): `u32` record length (excluding itself), `u32` path length,
//! path, then kind, permissions, owner, the four times, flags, size, device, symlink
//! target, hard-link id, xattrs and content sum. The files are the build's own, but the
//! decoder still checks every length against the bytes it has.

use crate::{Error, Result};
use std::cmp::Ordering;
use subroot_formats::tree::{Entry, Kind, Metadata, Timestamp};

/// Length and 128-bit XXH3 hash of a file's content (holes read as zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentSum {
    pub len: u64,
    pub hash: u128,
}

/// One intended entry (path relative to the built tree's root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub entry: Entry,
    /// The content's sum for regular files whose content went through the populate step;
    /// `None` for other kinds and for later names of a hard-link group whose data was not
    /// read again (the group shares the first name's inode, which verify checks).
    pub content: Option<ContentSum>,
}

/// Compare two tree paths component by component (`a/b` < `a-c`, `a` < `a/b`): the
/// depth-first order with siblings sorted by name bytes.
pub fn path_cmp(a: &[u8], b: &[u8]) -> Ordering {
    // Names hold neither `/` nor NUL, so mapping `/` below every name byte is the same
    // as comparing the component sequences.
    let key = |c: u8| if c == b'/' { 0u16 } else { u16::from(c) + 1 };
    a.iter().map(|&c| key(c)).cmp(b.iter().map(|&c| key(c)))
}

fn kind_code(k: Kind) -> u8 {
    match k {
        Kind::File => 0,
        Kind::Dir => 1,
        Kind::Symlink => 2,
        Kind::CharDevice => 3,
        Kind::BlockDevice => 4,
        Kind::Fifo => 5,
        Kind::Socket => 6,
    }
}

fn kind_from(c: u8) -> Option<Kind> {
    Some(match c {
        0 => Kind::File,
        1 => Kind::Dir,
        2 => Kind::Symlink,
        3 => Kind::CharDevice,
        4 => Kind::BlockDevice,
        5 => Kind::Fifo,
        6 => Kind::Socket,
        _ => return None,
    })
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_time(out: &mut Vec<u8>, t: Timestamp) {
    out.extend_from_slice(&t.sec.to_le_bytes());
    out.extend_from_slice(&t.nsec.to_le_bytes());
}

impl Record {
    /// Append the encoding of the record to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let e = &self.entry;
        let too_long = |what: &str, n: usize| {
            Error::unsupported(format!(
                "{:?}: {what} of {n} bytes is too long to record",
                String::from_utf8_lossy(&e.path)
            ))
        };
        if e.path.len() > u32::MAX as usize / 2 {
            return Err(too_long("a path", e.path.len()));
        }
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        put_bytes(out, &e.path);
        out.push(kind_code(e.kind));
        for v in [e.meta.perm, e.meta.uid, e.meta.gid] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for t in [e.meta.atime, e.meta.mtime, e.meta.ctime] {
            put_time(out, t);
        }
        match e.meta.crtime {
            Some(t) => {
                out.push(1);
                put_time(out, t);
            }
            None => out.push(0),
        }
        match e.meta.flags {
            Some(f) => {
                out.push(1);
                out.extend_from_slice(&f.to_le_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&e.size.to_le_bytes());
        out.extend_from_slice(&e.rdev.0.to_le_bytes());
        out.extend_from_slice(&e.rdev.1.to_le_bytes());
        match &e.link_target {
            Some(t) => {
                out.push(1);
                put_bytes(out, t);
            }
            None => out.push(0),
        }
        match e.hardlink_id {
            Some(id) => {
                out.push(1);
                out.extend_from_slice(&id.to_le_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&(e.meta.xattrs.len() as u32).to_le_bytes());
        for (n, v) in &e.meta.xattrs {
            put_bytes(out, n);
            put_bytes(out, v);
        }
        match self.content {
            Some(c) => {
                out.push(1);
                out.extend_from_slice(&c.len.to_le_bytes());
                out.extend_from_slice(&c.hash.to_le_bytes());
            }
            None => out.push(0),
        }
        let len = out.len() - start - 4;
        let len32 = u32::try_from(len).map_err(|_| too_long("a record", len))?;
        out[start..start + 4].copy_from_slice(&len32.to_le_bytes());
        Ok(())
    }

    /// Decode one record's body (the bytes after its length prefix).
    pub fn decode(body: &[u8]) -> Result<Record> {
        let mut c = Cursor { b: body, at: 0 };
        let path = c.bytes()?.to_vec();
        let kind = kind_from(c.u8()?).ok_or_else(|| c.bad("a kind code"))?;
        let perm = c.u32()?;
        let uid = c.u32()?;
        let gid = c.u32()?;
        let atime = c.time()?;
        let mtime = c.time()?;
        let ctime = c.time()?;
        let crtime = if c.flag()? { Some(c.time()?) } else { None };
        let flags = if c.flag()? { Some(c.u32()?) } else { None };
        let size = c.u64()?;
        let rdev = (c.u32()?, c.u32()?);
        let link_target = if c.flag()? {
            Some(c.bytes()?.to_vec())
        } else {
            None
        };
        let hardlink_id = if c.flag()? { Some(c.u64()?) } else { None };
        let n = c.u32()?;
        let mut xattrs = Vec::new();
        for _ in 0..n {
            let name = c.bytes()?.to_vec();
            let value = c.bytes()?.to_vec();
            xattrs.push((name, value));
        }
        let content = if c.flag()? {
            let len = c.u64()?;
            let hash = u128::from_le_bytes(c.take(16)?.try_into().map_err(|_| c.bad("hash"))?);
            Some(ContentSum { len, hash })
        } else {
            None
        };
        if c.at != body.len() {
            return Err(c.bad("the end of the record"));
        }
        Ok(Record {
            entry: Entry {
                path,
                kind,
                meta: Metadata {
                    perm,
                    uid,
                    gid,
                    atime,
                    mtime,
                    ctime,
                    crtime,
                    xattrs,
                    flags,
                },
                size,
                rdev,
                link_target,
                hardlink_id,
            },
            content,
        })
    }
}

/// The path of an encoded record body (its first field), for sorting without decoding.
pub fn body_path(body: &[u8]) -> Result<&[u8]> {
    Cursor { b: body, at: 0 }.bytes()
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn bad(&self, what: &str) -> Error {
        Error::Scratch(format!(
            "intended-tree record: expected {what} at byte {} of a {}-byte record",
            self.at,
            self.b.len()
        ))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| self.bad(&format!("{n} more bytes")))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn flag(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.bad("a 0/1 flag")),
        }
    }

    fn u32(&mut self) -> Result<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }

    fn time(&mut self) -> Result<Timestamp> {
        let sec = self.u64()? as i64;
        let nsec = self.u32()?;
        Ok(Timestamp { sec, nsec })
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_order() {
        let mut v: Vec<&[u8]> = vec![
            b"a-c", b"a/b", b"", b"a", b"b", b"a/b/c", b"a.d", b"a/\xff", b"a/b-c", b"ab",
        ];
        v.sort_by(|a, b| path_cmp(a, b));
        let want: Vec<&[u8]> = vec![
            b"", b"a", b"a/b", b"a/b/c", b"a/b-c", b"a/\xff", b"a-c", b"a.d", b"ab", b"b",
        ];
        assert_eq!(v, want);
        assert_eq!(path_cmp(b"x", b"x"), Ordering::Equal);
    }

    #[test]
    fn round_trip_and_truncation() {
        let r = Record {
            entry: Entry {
                path: b"dir/f\xff".to_vec(),
                kind: Kind::Symlink,
                meta: Metadata {
                    perm: 0o4755,
                    uid: 7,
                    gid: 8,
                    atime: Timestamp { sec: -3, nsec: 9 },
                    mtime: Timestamp {
                        sec: 1 << 40,
                        nsec: 0,
                    },
                    ctime: Timestamp::default(),
                    crtime: Some(Timestamp { sec: 5, nsec: 6 }),
                    xattrs: vec![(b"user.a".to_vec(), vec![0, 1, 2])],
                    flags: Some(0x80000),
                },
                size: 3,
                rdev: (8, 1),
                link_target: Some(b"abc".to_vec()),
                hardlink_id: Some(42),
            },
            content: Some(ContentSum {
                len: 3,
                hash: u128::MAX - 5,
            }),
        };
        let mut buf = Vec::new();
        r.encode(&mut buf).unwrap();
        let body = &buf[4..];
        assert_eq!(
            u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize,
            body.len()
        );
        assert_eq!(Record::decode(body).unwrap(), r);
        assert_eq!(body_path(body).unwrap(), b"dir/f\xff");
        for cut in 0..body.len() {
            assert!(Record::decode(&body[..cut]).is_err(), "cut at {cut}");
        }
    }
}
