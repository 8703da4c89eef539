//! The member stream of a tar archive: decompression (by magic), header blocks, pax
//! local and global headers, GNU long names/links and old GNU sparse extension blocks
//! folded into one [`Member`] per archive entry, and the current member's data as a
//! [`Content`] that expands sparse files (old GNU, pax 0.0, 0.1 and 1.0) with their holes.
//!
//! Bounds: a pax header may hold at most [`MAX_PAX`] bytes, a GNU long name
//! [`MAX_LONG_NAME`], a sparse map [`MAX_SPARSE`] entries; claimed sizes never drive an
//! allocation beyond those caps. A member's data ending early is an [`Error::Corrupt`].

use super::header::BLOCK;
use super::parse::{cstr, parse_header, pax_number, pax_records, pax_timestamp, RawHeader};
use crate::block::{push_extent, BlockDevice, DeviceIo, Extent, ExtentKind};
use crate::cpio::{detect, Compression, Decoder, Members as GzMembers, PeekReader};
use crate::tree::{Content, Metadata, Timestamp};
use crate::{Error, Result};
use std::io::{self, Read};

/// Largest pax extended header accepted.
pub const MAX_PAX: u64 = 1 << 20;
/// Largest GNU long name or link accepted.
pub const MAX_LONG_NAME: u64 = 64 << 10;
/// Most sparse map entries accepted for one file.
pub const MAX_SPARSE: usize = 1 << 19;

/// The archive bytes, decompressed when the file starts with a known compression magic.
pub enum Input<'a, D: BlockDevice> {
    Plain {
        dev: &'a D,
        pos: u64,
    },
    Packed {
        dec: Box<Decoder<DeviceIo<&'a D>>>,
        pos: u64,
    },
}

fn io_corrupt(pos: u64, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => Error::corrupt(format!(
            "tar: cannot decompress the archive at (decompressed) offset {pos}: {e}"
        )),
        _ => Error::io(format!("tar: reading the archive at offset {pos}"), e),
    }
}

impl<'a, D: BlockDevice> Input<'a, D> {
    /// Open `dev`, detecting gzip/zstd/xz/lzma/lz4/bzip2 by magic.
    pub fn open(dev: &'a D) -> Result<(Self, Compression)> {
        let mut peek = PeekReader::new(DeviceIo::new(dev));
        let head = peek
            .peek(6)
            .map_err(|e| Error::io("tar: reading the first bytes", e))?;
        match detect(head)? {
            None | Some(Compression::None) => Ok((Input::Plain { dev, pos: 0 }, Compression::None)),
            Some(c) => Ok((
                Input::Packed {
                    dec: Box::new(Decoder::new(c, peek, GzMembers::All)?),
                    pos: 0,
                },
                c,
            )),
        }
    }

    /// Decompressed bytes consumed so far.
    pub fn pos(&self) -> u64 {
        match self {
            Input::Plain { pos, .. } | Input::Packed { pos, .. } => *pos,
        }
    }

    fn read_io(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Plain { dev, pos } => {
                let len = dev.len();
                if *pos >= len {
                    return Ok(0);
                }
                let n = (buf.len() as u64).min(len - *pos) as usize;
                dev.read_at(&mut buf[..n], *pos)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                *pos += n as u64;
                Ok(n)
            }
            Input::Packed { dec, pos } => {
                let n = dec.read(buf)?;
                *pos += n as u64;
                Ok(n)
            }
        }
    }

    /// Read up to `buf.len()` bytes (fewer only at the end of the archive).
    pub fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.read_io(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_corrupt(self.pos(), e)),
            }
        }
        Ok(got)
    }

    /// Move `n` bytes forward; the archive ending first is an error naming `what`.
    pub fn skip(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<()> {
        if let Input::Plain { dev, pos } = self {
            let end = pos.saturating_add(n);
            if end > dev.len() {
                return Err(Error::corrupt(format!(
                    "tar: {} is truncated: {} bytes needed at offset {}, the archive ends at {}",
                    what(),
                    n,
                    pos,
                    dev.len()
                )));
            }
            *pos = end;
            return Ok(());
        }
        let mut buf = [0u8; 8192];
        let mut left = n;
        while left > 0 {
            let k = left.min(buf.len() as u64) as usize;
            let got = self.fill(&mut buf[..k])?;
            if got < k {
                return Err(Error::corrupt(format!(
                    "tar: {} is truncated: the archive ends at offset {} with {} of {n} bytes missing",
                    what(),
                    self.pos(),
                    left - got as u64
                )));
            }
            left -= k as u64;
        }
        Ok(())
    }
}

/// How a member's sparse map is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sparse {
    /// Not sparse: the data is the content.
    No,
    /// (offset, length) data segments; the stored data is their concatenation.
    Map(Vec<(u64, u64)>),
    /// GNU sparse 1.0: the map leads the data area (read by [`Members::sparse_map`]).
    InData,
}

/// One archive entry with every extension header applied.
#[derive(Debug, Clone)]
pub struct Member {
    /// Decompressed offset of the member's first header (its pax or long-name header).
    pub offset: u64,
    /// The name as archived (possibly with `./` prefix or trailing `/`).
    pub name: Vec<u8>,
    /// `0` file, `1` hard link, `2` symlink, `3` char, `4` block, `5` dir, `6` fifo.
    pub typeflag: u8,
    pub meta: Metadata,
    /// Content length of a file (the real size of a sparse file).
    pub size: u64,
    /// Bytes of data stored in the archive after the header.
    pub stored: u64,
    /// Symlink or hard-link target.
    pub link: Vec<u8>,
    pub rdev: (u32, u32),
    pub sparse: Sparse,
}

impl Member {
    /// The name for messages.
    pub fn shown(&self) -> String {
        format!(
            "member {:?} at offset {}",
            String::from_utf8_lossy(&self.name),
            self.offset
        )
    }
}

/// Iterates the members of an archive.
pub struct Members<'a, D: BlockDevice> {
    input: Input<'a, D>,
    global: Vec<(Vec<u8>, Vec<u8>)>,
    /// Unread data bytes of the current member, then its padding.
    left: u64,
    pad: u64,
    done: bool,
}

fn corrupt_at(offset: u64, msg: impl std::fmt::Display) -> Error {
    Error::corrupt(format!("tar: header at offset {offset}: {msg}"))
}

impl<'a, D: BlockDevice> Members<'a, D> {
    /// Start reading `dev`.
    pub fn new(dev: &'a D) -> Result<Self> {
        Ok(Members {
            input: Input::open(dev)?.0,
            global: Vec::new(),
            left: 0,
            pad: 0,
            done: false,
        })
    }

    fn block(&mut self) -> Result<Option<[u8; BLOCK]>> {
        let mut b = [0u8; BLOCK];
        let at = self.input.pos();
        match self.input.fill(&mut b)? {
            0 => Ok(None),
            BLOCK => Ok(Some(b)),
            n => Err(corrupt_at(
                at,
                format!("the archive ends {n} bytes into a 512-byte header block"),
            )),
        }
    }

    /// The data of an extension header (pax, long name), at most `cap` bytes.
    fn ext_data(&mut self, h: &RawHeader, at: u64, cap: u64, what: &str) -> Result<Vec<u8>> {
        if h.size > cap {
            return Err(corrupt_at(
                at,
                format!("{what} of {} bytes (at most {cap} accepted)", h.size),
            ));
        }
        let mut v = vec![0u8; h.size as usize];
        let got = self.input.fill(&mut v)?;
        if got < v.len() {
            return Err(corrupt_at(
                at,
                format!("{what} of {} bytes is truncated after {got}", h.size),
            ));
        }
        let pad = pad_of(h.size);
        self.input
            .skip(pad, &|| format!("the {what} at offset {at}"))?;
        Ok(v)
    }

    /// Skip what is left of the current member.
    fn finish_current(&mut self) -> Result<()> {
        let n = self.left.saturating_add(self.pad);
        self.left = 0;
        self.pad = 0;
        self.input.skip(n, &|| "the last member's data".to_string())
    }

    /// The next member, or `None` at the end of the archive (a zero block or the end of
    /// the input). The previous member's unread data is skipped.
    pub fn next_member(&mut self) -> Result<Option<Member>> {
        self.finish_current()?;
        if self.done {
            return Ok(None);
        }
        let mut local: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut first_at: Option<u64> = None;
        loop {
            let at = self.input.pos();
            let Some(b) = self.block()? else {
                if let Some(f) = first_at {
                    return Err(corrupt_at(
                        f,
                        "the archive ends after an extended header, before its member",
                    ));
                }
                self.done = true;
                return Ok(None);
            };
            let Some(h) = parse_header(&b, at)? else {
                if let Some(f) = first_at {
                    return Err(corrupt_at(
                        f,
                        "an extended header is followed by the end-of-archive block",
                    ));
                }
                self.done = true;
                return Ok(None);
            };
            first_at.get_or_insert(at);
            match h.typeflag {
                b'x' | b'X' => {
                    let d = self.ext_data(&h, at, MAX_PAX, "pax extended header")?;
                    local.extend(pax_records(&d, at)?);
                }
                b'g' => {
                    let d = self.ext_data(&h, at, MAX_PAX, "pax global header")?;
                    for (k, v) in pax_records(&d, at)? {
                        self.global.retain(|(gk, _)| *gk != k);
                        if !deletes(&k, &v) {
                            self.global.push((k, v));
                        }
                    }
                    first_at = None;
                }
                b'L' => {
                    let d = self.ext_data(&h, at, MAX_LONG_NAME, "GNU long name")?;
                    long_name = Some(cstr(&d).to_vec());
                }
                b'K' => {
                    let d = self.ext_data(&h, at, MAX_LONG_NAME, "GNU long link name")?;
                    long_link = Some(cstr(&d).to_vec());
                }
                b'V' => {
                    self.input
                        .skip(h.size.saturating_add(pad_of(h.size)), &|| {
                            format!("the volume label at offset {at}")
                        })?;
                    first_at = None;
                }
                b'M' | b'N' => {
                    return Err(Error::unsupported(format!(
                        "tar: header at offset {at}: GNU {} members are not supported",
                        if h.typeflag == b'M' {
                            "multi-volume continuation"
                        } else {
                            "old long-name (N)"
                        }
                    )))
                }
                _ => {
                    let mut records = self.global.clone();
                    for (k, v) in local {
                        // GNU sparse 0.0 repeats these two keys, once per segment.
                        let repeated = k == b"GNU.sparse.offset" || k == b"GNU.sparse.numbytes";
                        if !repeated {
                            records.retain(|(rk, _)| *rk != k);
                        }
                        records.push((k, v));
                    }
                    // Deleted keys (empty values) fall back to the header.
                    records.retain(|(k, v)| !deletes(k, v));
                    let m = self.member(
                        h,
                        at,
                        first_at.unwrap_or(at),
                        &records,
                        long_name,
                        long_link,
                    )?;
                    return Ok(Some(m));
                }
            }
        }
    }

    fn member(
        &mut self,
        h: RawHeader,
        at: u64,
        first: u64,
        pax: &[(Vec<u8>, Vec<u8>)],
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
    ) -> Result<Member> {
        let get = |k: &[u8]| pax.iter().rev().find(|(pk, _)| pk == k).map(|(_, v)| v);
        let bad = |k: &str, v: &[u8]| {
            corrupt_at(
                first,
                format!(
                    "pax record {k} has value {:?}, expected a number",
                    String::from_utf8_lossy(v)
                ),
            )
        };
        let num = |k: &str| -> Result<Option<u64>> {
            match get(k.as_bytes()) {
                Some(v) => pax_number(v).map(Some).ok_or_else(|| bad(k, v)),
                None => Ok(None),
            }
        };
        let time = |k: &str| -> Result<Option<Timestamp>> {
            match get(k.as_bytes()) {
                Some(v) => pax_timestamp(v).map(Some).ok_or_else(|| bad(k, v)),
                None => Ok(None),
            }
        };
        let id = |v: u64, what: &str| {
            u32::try_from(v)
                .map_err(|_| corrupt_at(first, format!("{what} {v} does not fit 32 bits")))
        };
        let mut name = long_name.unwrap_or(h.name.clone());
        if let Some(p) = get(b"path") {
            name = p.clone();
        }
        let mut link = long_link.unwrap_or(h.linkname.clone());
        if let Some(p) = get(b"linkpath") {
            link = p.clone();
        }
        let stored = num("size")?.unwrap_or(h.size);
        let mtime = time("mtime")?.unwrap_or(Timestamp {
            sec: h.mtime,
            nsec: 0,
        });
        let gnu_t = |t: Option<i64>| t.map(|sec| Timestamp { sec, nsec: 0 });
        let atime = time("atime")?.or(gnu_t(h.gnu_atime)).unwrap_or(mtime);
        let ctime = time("ctime")?.or(gnu_t(h.gnu_ctime)).unwrap_or(mtime);
        let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (k, v) in pax {
            let (name, value) = if let Some(n) = k.strip_prefix(b"SCHILY.xattr.") {
                (n.to_vec(), v.clone())
            } else if let Some(n) = k.strip_prefix(b"LIBARCHIVE.xattr.") {
                let n = percent_decode(n).ok_or_else(|| bad("LIBARCHIVE.xattr name", n))?;
                let val = crate::base64::decode(v).ok_or_else(|| {
                    corrupt_at(
                        first,
                        format!(
                            "pax record {}: value is not base64",
                            String::from_utf8_lossy(k)
                        ),
                    )
                })?;
                (n, val)
            } else {
                continue;
            };
            if !xattrs.iter().any(|(x, _)| *x == name) {
                xattrs.push((name, value));
            }
        }
        for (key, xname, access) in [
            (
                &b"SCHILY.acl.access"[..],
                &b"system.posix_acl_access"[..],
                true,
            ),
            (b"SCHILY.acl.default", b"system.posix_acl_default", false),
        ] {
            let Some(text) = get(key) else { continue };
            if xattrs.iter().any(|(x, _)| x == xname) {
                continue;
            }
            match super::acl::acl_from_text(text, access) {
                Ok(Some(v)) => xattrs.push((xname.to_vec(), v)),
                Ok(None) => {}
                Err(why) => {
                    return Err(Error::unsupported(format!(
                        "tar: member {:?} at offset {first}: {} cannot be converted: {why}",
                        String::from_utf8_lossy(&name),
                        String::from_utf8_lossy(key)
                    )))
                }
            }
        }
        let devmajor = num("SCHILY.devmajor")?.unwrap_or(h.devmajor);
        let devminor = num("SCHILY.devminor")?.unwrap_or(h.devminor);
        let mut typeflag = match h.typeflag {
            0 | b'7' => b'0',
            b'S' => b'0',
            b'D' => b'5',
            t @ b'0'..=b'6' => t,
            t => {
                return Err(Error::unsupported(format!(
                    "tar: header at offset {at}: unknown member type {:?} (byte {t:#04x})",
                    t as char
                )))
            }
        };
        if typeflag == b'0' && name.ends_with(b"/") {
            typeflag = b'5';
        }
        let mut size = if typeflag == b'0' { stored } else { 0 };
        let mut sparse = Sparse::No;
        if h.typeflag == b'S' {
            let mut map = h.gnu_sparse.clone();
            let mut ext = h.gnu_extended;
            while ext {
                let eat = self.input.pos();
                let b = self.block()?.ok_or_else(|| {
                    corrupt_at(
                        at,
                        "the archive ends inside the sparse map extension blocks",
                    )
                })?;
                map.extend(super::parse::sparse_entries(&b[..504], eat)?);
                if map.len() > MAX_SPARSE {
                    return Err(corrupt_at(
                        at,
                        format!("sparse map of more than {MAX_SPARSE} entries"),
                    ));
                }
                ext = b[504] != 0;
            }
            size = h.gnu_realsize;
            sparse = Sparse::Map(map);
        } else if get(b"GNU.sparse.major").map(|v| v.as_slice()) == Some(b"1") {
            if get(b"GNU.sparse.minor").map(|v| v.as_slice()) != Some(b"0") {
                return Err(Error::unsupported(format!(
                    "tar: header at offset {first}: GNU sparse format 1.{} (only 1.0 is known)",
                    String::from_utf8_lossy(get(b"GNU.sparse.minor").map_or(&b"?"[..], |v| v))
                )));
            }
            size = num("GNU.sparse.realsize")?.ok_or_else(|| {
                corrupt_at(first, "GNU sparse 1.0 member without GNU.sparse.realsize")
            })?;
            if let Some(n) = get(b"GNU.sparse.name") {
                name = n.clone();
            }
            sparse = Sparse::InData;
        } else if let Some(m) = get(b"GNU.sparse.map") {
            let nums: Option<Vec<u64>> = m.split(|&b| b == b',').map(pax_number).collect();
            let nums = nums
                .filter(|n| n.len() % 2 == 0)
                .ok_or_else(|| bad("GNU.sparse.map", m))?;
            if nums.len() / 2 > MAX_SPARSE {
                return Err(corrupt_at(
                    first,
                    format!("sparse map of more than {MAX_SPARSE} entries"),
                ));
            }
            sparse = Sparse::Map(nums.chunks_exact(2).map(|c| (c[0], c[1])).collect());
            size = num("GNU.sparse.size")?
                .or(num("GNU.sparse.realsize")?)
                .unwrap_or(stored);
            if let Some(n) = get(b"GNU.sparse.name") {
                name = n.clone();
            }
        } else if get(b"GNU.sparse.offset").is_some() {
            // 0.0: offset/numbytes records repeat, in order.
            let mut map = Vec::new();
            let mut off: Option<u64> = None;
            for (k, v) in pax {
                match k.as_slice() {
                    b"GNU.sparse.offset" => {
                        off = Some(pax_number(v).ok_or_else(|| bad("GNU.sparse.offset", v))?)
                    }
                    b"GNU.sparse.numbytes" => {
                        let n = pax_number(v).ok_or_else(|| bad("GNU.sparse.numbytes", v))?;
                        let o = off.take().ok_or_else(|| {
                            corrupt_at(first, "GNU.sparse.numbytes without an offset")
                        })?;
                        map.push((o, n));
                    }
                    _ => {}
                }
            }
            if map.len() > MAX_SPARSE {
                return Err(corrupt_at(
                    first,
                    format!("sparse map of more than {MAX_SPARSE} entries"),
                ));
            }
            size = num("GNU.sparse.size")?.unwrap_or(stored);
            if let Some(n) = get(b"GNU.sparse.name") {
                name = n.clone();
            }
            sparse = Sparse::Map(map);
        }
        if let Sparse::Map(map) = &sparse {
            check_map(map, size, stored).map_err(|why| corrupt_at(first, why))?;
        }
        if sparse != Sparse::No && typeflag != b'0' {
            return Err(corrupt_at(
                first,
                "a sparse map on a member that is not a regular file",
            ));
        }
        let rdev = match typeflag {
            b'3' | b'4' => (id(devmajor, "devmajor")?, id(devminor, "devminor")?),
            _ => (0, 0),
        };
        let meta = Metadata {
            perm: h.mode & 0o7777,
            uid: id(num("uid")?.unwrap_or(h.uid), "uid")?,
            gid: id(num("gid")?.unwrap_or(h.gid), "gid")?,
            atime,
            mtime,
            ctime,
            crtime: None,
            xattrs,
            flags: None,
        };
        // Data stored after the header: files (and, as GNU tar does, nothing for links and
        // directories — but honour a size anyway so the stream stays in step).
        self.left = stored;
        self.pad = pad_of(stored);
        Ok(Member {
            offset: first,
            name,
            typeflag,
            meta,
            size,
            stored,
            link,
            rdev,
            sparse,
        })
    }

    /// Read the GNU sparse 1.0 map at the start of the current member's data.
    pub fn sparse_map(&mut self, m: &Member) -> Result<Vec<(u64, u64)>> {
        let mut nums: Vec<u64> = Vec::new();
        let mut want: Option<usize> = None;
        let mut cur: Option<u64> = None;
        let mut used = 0u64;
        loop {
            if want.is_some_and(|w| nums.len() == 1 + 2 * w) {
                break;
            }
            if used + BLOCK as u64 > self.left {
                return Err(Error::corrupt(format!(
                    "tar: {}: the sparse map runs past the member's {} stored bytes",
                    m.shown(),
                    m.stored
                )));
            }
            let mut b = [0u8; BLOCK];
            if self.input.fill(&mut b)? < BLOCK {
                return Err(Error::corrupt(format!(
                    "tar: {}: the archive ends inside the sparse map",
                    m.shown()
                )));
            }
            used += BLOCK as u64;
            for &c in &b {
                if want.is_some_and(|w| nums.len() == 1 + 2 * w) {
                    break;
                }
                match c {
                    b'0'..=b'9' => {
                        let v = cur.unwrap_or(0);
                        cur = Some(
                            v.checked_mul(10)
                                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                                .ok_or_else(|| {
                                    Error::corrupt(format!(
                                        "tar: {}: sparse map number overflows",
                                        m.shown()
                                    ))
                                })?,
                        );
                    }
                    b'\n' => {
                        let v = cur.take().ok_or_else(|| {
                            Error::corrupt(format!(
                                "tar: {}: empty line in the sparse map",
                                m.shown()
                            ))
                        })?;
                        nums.push(v);
                        if nums.len() == 1 {
                            if v as usize > MAX_SPARSE || v > u64::from(u32::MAX) {
                                return Err(Error::corrupt(format!(
                                    "tar: {}: sparse map of {v} entries (at most {MAX_SPARSE})",
                                    m.shown()
                                )));
                            }
                            want = Some(v as usize);
                        }
                    }
                    _ => {
                        return Err(Error::corrupt(format!(
                            "tar: {}: byte {c:#04x} in the sparse map, expected decimal lines",
                            m.shown()
                        )))
                    }
                }
            }
        }
        self.left -= used;
        let map: Vec<(u64, u64)> = nums[1..].chunks_exact(2).map(|c| (c[0], c[1])).collect();
        check_map(&map, m.size, self.left)
            .map_err(|why| Error::corrupt(format!("tar: {}: {why}", m.shown())))?;
        Ok(map)
    }

    /// The current member's content; `map` for sparse files.
    pub fn content<'m>(
        &'m mut self,
        m: &Member,
        map: Option<Vec<(u64, u64)>>,
    ) -> MemberContent<'m, 'a, D> {
        MemberContent {
            size: m.size,
            pos: 0,
            seg: 0,
            map,
            name: m.shown(),
            members: self,
        }
    }
}

/// Zero bytes after `len` data bytes up to the next block boundary.
/// True when pax record `key=value` deletes `key` (POSIX: an empty value unsets a keyword)
/// rather than setting it. An xattr record with an empty value is an xattr whose value is
/// empty (as GNU tar, libarchive and our writer write it), never a deletion.
fn deletes(key: &[u8], value: &[u8]) -> bool {
    value.is_empty() && !key.starts_with(b"SCHILY.xattr.") && !key.starts_with(b"LIBARCHIVE.xattr.")
}

fn pad_of(len: u64) -> u64 {
    (BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64
}

/// Sparse map entries must be in order, not overlap, stay within the real size, and
/// their lengths must add up to the stored data.
fn check_map(map: &[(u64, u64)], size: u64, data: u64) -> std::result::Result<(), String> {
    let mut end = 0u64;
    let mut sum = 0u64;
    for &(o, l) in map {
        let e = o
            .checked_add(l)
            .filter(|&e| e <= size)
            .ok_or_else(|| format!("sparse segment {o}+{l} lies beyond the real size {size}"))?;
        if o < end {
            return Err(format!(
                "sparse segment at {o} overlaps or precedes the one ending at {end}"
            ));
        }
        end = e;
        sum += l;
    }
    if sum != data {
        return Err(format!(
            "the sparse map's segments hold {sum} bytes but {data} bytes of data are stored"
        ));
    }
    Ok(())
}

/// The current member's data as [`Content`].
pub struct MemberContent<'m, 'a, D: BlockDevice> {
    members: &'m mut Members<'a, D>,
    size: u64,
    pos: u64,
    seg: usize,
    map: Option<Vec<(u64, u64)>>,
    name: String,
}

/// What lies at the current position: stored data or a hole, and for how long.
enum Span {
    Data(u64),
    Hole(u64),
    End,
}

impl<D: BlockDevice> MemberContent<'_, '_, D> {
    fn span(&mut self) -> Span {
        if self.pos >= self.size {
            return Span::End;
        }
        let Some(map) = &self.map else {
            return Span::Data(self.size - self.pos);
        };
        while let Some(&(o, l)) = map.get(self.seg) {
            if o + l > self.pos {
                break;
            }
            self.seg += 1;
        }
        match map.get(self.seg) {
            Some(&(o, l)) if self.pos >= o => Span::Data(o + l - self.pos),
            Some(&(o, _)) => Span::Hole(o - self.pos),
            None => Span::Hole(self.size - self.pos),
        }
    }

    fn truncated(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "tar: {} is truncated: the archive ends at offset {} with {} of its data bytes missing",
                self.name,
                self.members.input.pos(),
                self.members.left
            ),
        )
    }
}

impl<D: BlockDevice> Read for MemberContent<'_, '_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.span() {
            Span::End => Ok(0),
            Span::Hole(n) => {
                let k = n.min(buf.len() as u64) as usize;
                buf[..k].fill(0);
                self.pos += k as u64;
                Ok(k)
            }
            Span::Data(n) => {
                let k = n.min(buf.len() as u64).min(self.members.left) as usize;
                if k == 0 {
                    return Err(self.truncated());
                }
                let got = self
                    .members
                    .input
                    .fill(&mut buf[..k])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                if got == 0 {
                    return Err(self.truncated());
                }
                self.members.left -= got as u64;
                self.pos += got as u64;
                Ok(got)
            }
        }
    }
}

impl<D: BlockDevice> Content for MemberContent<'_, '_, D> {
    fn extents(&self) -> Result<Vec<Extent>> {
        let mut v = Vec::new();
        let Some(map) = &self.map else {
            if self.size > 0 {
                v.push(Extent {
                    offset: 0,
                    len: self.size,
                    kind: ExtentKind::Data,
                });
            }
            return Ok(v);
        };
        let mut pos = 0u64;
        for &(o, l) in map {
            if o > pos {
                push_extent(
                    &mut v,
                    Extent {
                        offset: pos,
                        len: o - pos,
                        kind: ExtentKind::Zero,
                    },
                );
            }
            if l > 0 {
                push_extent(
                    &mut v,
                    Extent {
                        offset: o,
                        len: l,
                        kind: ExtentKind::Data,
                    },
                );
            }
            pos = o + l;
        }
        if self.size > pos {
            push_extent(
                &mut v,
                Extent {
                    offset: pos,
                    len: self.size - pos,
                    kind: ExtentKind::Zero,
                },
            );
        }
        Ok(v)
    }

    fn skip(&mut self, mut n: u64) -> Result<()> {
        while n > 0 {
            match self.span() {
                Span::End => {
                    return Err(Error::corrupt(format!(
                        "tar: {}: skipping {n} bytes past the end of the content",
                        self.name
                    )))
                }
                Span::Hole(k) => {
                    let k = k.min(n);
                    self.pos += k;
                    n -= k;
                }
                Span::Data(k) => {
                    let k = k.min(n);
                    if k > self.members.left {
                        return Err(Error::corrupt(self.truncated().to_string()));
                    }
                    let name = self.name.clone();
                    self.members.input.skip(k, &|| name.clone())?;
                    self.members.left -= k;
                    self.pos += k;
                    n -= k;
                }
            }
        }
        Ok(())
    }
}

/// `%XX` escapes (libarchive's xattr names).
fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let h = std::str::from_utf8(s.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs() {
        assert_eq!(percent_decode(b"user.a%3Db").unwrap(), b"user.a=b");
        assert!(percent_decode(b"x%4").is_none());
    }

    #[test]
    fn maps_are_checked() {
        assert!(check_map(&[(0, 5), (10, 5)], 20, 10).is_ok());
        assert!(check_map(&[(10, 5), (0, 5)], 20, 10).is_err());
        assert!(check_map(&[(0, 5), (18, 5)], 20, 10).is_err());
        assert!(check_map(&[(0, 5)], 20, 6).is_err());
        assert!(check_map(&[(u64::MAX, 5)], 20, 5).is_err());
    }
}
