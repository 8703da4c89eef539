//! [`TarWriter`]: a POSIX pax archive writer for tree-model entries.
//!
//! Why not the `tar` crate: its `Builder::append_pax_extensions` takes `&str` keys, so
//! `SCHILY.xattr.NAME` cannot carry an xattr name that is not UTF-8, and it has no writer
//! for sparse files (GNU sparse 1.0), which would expand a 100 GiB sparse disk file into
//! 100 GiB of zeros. The format is small enough to write exactly as GNU tar does:
//!
//! * every entry gets a pax `x` header with `mtime`/`atime`/`ctime` (nanoseconds), and as
//!   needed `path`/`linkpath` (longer than 100 bytes), `uid`/`gid`/`size` (too large for
//!   octal), `SCHILY.xattr.NAME` (every xattr, ACLs in their xattr form, capabilities),
//!   and `hdrcharset=BINARY` when a name is not UTF-8;
//! * files with holes use GNU sparse format 1.0 (`GNU.sparse.major=1`, `minor=0`,
//!   `GNU.sparse.name`, `GNU.sparse.realsize`; the map leads the data area as decimal
//!   lines), so only data is stored and `tar --sparse -x` recreates the holes;
//! * POSIX ACLs also go into `SCHILY.acl.access`/`SCHILY.acl.default` in text form, which
//!   is what `tar --acls -x` restores;
//! * the second and later members of a hard-link group are `1` (hard link) entries;
//! * devices carry `devmajor`/`devminor`; fifos are type `6`. Sockets cannot be archived
//!   (tar has no type for them, GNU tar skips them too): they are skipped and counted.
//!
//! Creation times and inode flags have no keyword GNU tar understands (it warns about
//! unknown ones), so they are not written.

use super::acl::acl_text;
use super::header::{fits_octal, pax_time, typeflag, Header, Pax, BLOCK};
use crate::block::ExtentKind;
use crate::tree::{Content, Entry, Kind, TreeSource};
use crate::{Error, Result};
use std::collections::HashMap;
use std::io::Write;

/// Archives are padded to a multiple of this (GNU tar's default record size).
const RECORD: u64 = 10240;
/// Copy buffer size.
const CHUNK: usize = 1 << 20;

/// What [`TarWriter::finish`] reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TarSummary {
    /// Entries written (including hard links).
    pub entries: u64,
    /// Bytes of the archive.
    pub bytes: u64,
    /// File data bytes stored (holes excluded).
    pub data_bytes: u64,
    /// Paths of sockets that were skipped.
    pub skipped_sockets: Vec<Vec<u8>>,
}

/// Writes a pax archive to `W`.
pub struct TarWriter<W: Write> {
    out: W,
    links: HashMap<u64, Vec<u8>>,
    summary: TarSummary,
    buf: Vec<u8>,
}

impl<W: Write> std::fmt::Debug for TarWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarWriter")
            .field("summary", &self.summary)
            .finish()
    }
}

impl<W: Write> TarWriter<W> {
    /// Start an archive.
    pub fn new(out: W) -> Self {
        TarWriter {
            out,
            links: HashMap::new(),
            summary: TarSummary::default(),
            buf: Vec::new(),
        }
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.summary.bytes
    }

    /// Append `entry` under the member name `name` (no trailing `/`; the writer adds one
    /// for directories). `content` must be given for regular files (except the second and
    /// later members of a hard-link group, whose data is not stored again).
    pub fn append(
        &mut self,
        entry: &Entry,
        name: &[u8],
        content: Option<&mut dyn Content>,
    ) -> Result<()> {
        if entry.kind == Kind::Socket {
            self.summary.skipped_sockets.push(entry.path.clone());
            return Ok(());
        }
        let mut name = name.to_vec();
        if entry.kind == Kind::Dir && !name.ends_with(b"/") {
            name.push(b'/');
        }
        let mut pax = Pax::default();
        let meta = &entry.meta;
        let mut h = Header {
            mode: meta.perm & 0o7777,
            uid: u64::from(meta.uid),
            gid: u64::from(meta.gid),
            mtime: meta.mtime.sec,
            ..Default::default()
        };
        let mut binary = std::str::from_utf8(&name).is_err();
        // Hard links: the first member carries the data, later ones point to it.
        let link_to = match entry.hardlink_id {
            Some(id) if entry.kind != Kind::Dir => match self.links.get(&id) {
                Some(first) => Some(first.clone()),
                None => {
                    self.links.insert(id, name.clone());
                    None
                }
            },
            _ => None,
        };
        let mut sparse_map: Option<Vec<(u64, u64)>> = None;
        let mut stored_size = 0u64;
        let mut map_block = Vec::new();
        if let Some(target) = &link_to {
            h.typeflag = typeflag::HARDLINK;
            h.linkname = target.clone();
        } else {
            match entry.kind {
                Kind::File => {
                    h.typeflag = typeflag::FILE;
                    let c = content.as_deref().ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "tar: no content given for file {:?}",
                            String::from_utf8_lossy(&entry.path)
                        ))
                    })?;
                    let ext = c.extents()?;
                    if ext.iter().any(|e| e.kind == ExtentKind::Zero) {
                        let mut map: Vec<(u64, u64)> = ext
                            .iter()
                            .filter(|e| e.kind == ExtentKind::Data && e.offset < entry.size)
                            .map(|e| (e.offset, e.len.min(entry.size - e.offset)))
                            .collect();
                        if map.last().is_none_or(|&(o, l)| o + l < entry.size) {
                            // A trailing hole: GNU tar truncates to the real size here.
                            map.push((entry.size, 0));
                        }
                        let mut text = format!("{}\n", map.len());
                        for (o, l) in &map {
                            text.push_str(&format!("{o}\n{l}\n"));
                        }
                        map_block = text.into_bytes();
                        let padded = map_block.len().div_ceil(BLOCK) * BLOCK;
                        map_block.resize(padded, 0);
                        let data: u64 = map.iter().map(|&(_, l)| l).sum();
                        stored_size = map_block.len() as u64 + data;
                        sparse_map = Some(map);
                    } else {
                        stored_size = entry.size;
                    }
                }
                Kind::Dir => h.typeflag = typeflag::DIR,
                Kind::Symlink => {
                    h.typeflag = typeflag::SYMLINK;
                    h.linkname = entry.link_target.clone().unwrap_or_default();
                }
                Kind::CharDevice | Kind::BlockDevice => {
                    h.typeflag = if entry.kind == Kind::CharDevice {
                        typeflag::CHAR
                    } else {
                        typeflag::BLOCK
                    };
                    h.devmajor = u64::from(entry.rdev.0);
                    h.devminor = u64::from(entry.rdev.1);
                }
                Kind::Fifo => h.typeflag = typeflag::FIFO,
                Kind::Socket => unreachable_socket()?,
            }
        }
        binary |= std::str::from_utf8(&h.linkname).is_err();
        h.size = stored_size;
        // Names.
        if sparse_map.is_some() {
            pax.record(b"GNU.sparse.major", b"1");
            pax.record(b"GNU.sparse.minor", b"0");
            pax.record(b"GNU.sparse.name", &name);
            pax.record(b"GNU.sparse.realsize", entry.size.to_string().as_bytes());
            let (dir, base) = split_name(&name);
            let mut n = dir.to_vec();
            n.extend_from_slice(b"GNUSparseFile.0/");
            n.extend_from_slice(base);
            h.name = n;
        } else {
            if name.len() > 100 {
                pax.record(b"path", &name);
            }
            h.name = name.clone();
        }
        if h.linkname.len() > 100 {
            pax.record(b"linkpath", &h.linkname);
        }
        if !fits_octal(h.uid, 8) {
            pax.record(b"uid", h.uid.to_string().as_bytes());
        }
        if !fits_octal(h.gid, 8) {
            pax.record(b"gid", h.gid.to_string().as_bytes());
        }
        if !fits_octal(h.size, 12) {
            pax.record(b"size", h.size.to_string().as_bytes());
        }
        pax.record(
            b"mtime",
            pax_time(meta.mtime.sec, meta.mtime.nsec).as_bytes(),
        );
        pax.record(
            b"atime",
            pax_time(meta.atime.sec, meta.atime.nsec).as_bytes(),
        );
        pax.record(
            b"ctime",
            pax_time(meta.ctime.sec, meta.ctime.nsec).as_bytes(),
        );
        for (k, v) in &meta.xattrs {
            binary |= std::str::from_utf8(k).is_err();
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            pax.record(&key, v);
            let acl_key: &[u8] = match k.as_slice() {
                b"system.posix_acl_access" => b"SCHILY.acl.access",
                b"system.posix_acl_default" => b"SCHILY.acl.default",
                _ => continue,
            };
            if let Some(text) = acl_text(v) {
                pax.record(acl_key, text.as_bytes());
            }
        }
        if binary {
            let mut p = Pax::default();
            p.record(b"hdrcharset", b"BINARY");
            p.data.extend_from_slice(&pax.data);
            pax = p;
        }
        // The pax header entry.
        let (_, base) = split_name(&name);
        let mut pname = b"./PaxHeaders/".to_vec();
        pname.extend_from_slice(base);
        let ph = Header {
            name: pname,
            mode: 0o644,
            size: pax.data.len() as u64,
            mtime: h.mtime,
            typeflag: typeflag::PAX,
            ..Default::default()
        };
        self.put(&ph.encode())?;
        let pd = std::mem::take(&mut pax.data);
        self.put(&pd)?;
        self.pad(pd.len() as u64)?;
        self.put(&h.encode())?;
        self.summary.entries += 1;
        if h.typeflag != typeflag::FILE {
            return Ok(());
        }
        let Some(c) = content else {
            return Ok(());
        };
        let path = &entry.path;
        match sparse_map {
            Some(map) => {
                self.put(&map_block)?;
                let mut pos = 0u64;
                for (o, l) in map {
                    if o > pos {
                        c.skip(o - pos)?;
                    }
                    self.copy(c, l, path)?;
                    pos = o + l;
                }
            }
            None => self.copy(c, entry.size, path)?,
        }
        self.pad(stored_size)?;
        Ok(())
    }

    /// End the archive (two zero blocks, padding to a 10 KiB record) and return the writer.
    pub fn finish(mut self) -> Result<(W, TarSummary)> {
        self.put(&[0u8; 2 * BLOCK])?;
        let rest = self.summary.bytes.next_multiple_of(RECORD) - self.summary.bytes;
        self.put(&vec![0u8; rest as usize])?;
        self.out
            .flush()
            .map_err(|e| Error::io("tar: flushing the archive", e))?;
        Ok((self.out, self.summary))
    }

    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.out
            .write_all(b)
            .map_err(|e| Error::io("tar: writing the archive", e))?;
        self.summary.bytes += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self, len: u64) -> Result<()> {
        let rest = (len.next_multiple_of(BLOCK as u64) - len) as usize;
        self.put(&[0u8; BLOCK][..rest])
    }

    /// Copy exactly `len` bytes of `c` into the archive.
    fn copy(&mut self, c: &mut dyn Content, mut len: u64, path: &[u8]) -> Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(CHUNK, 0);
        while len > 0 {
            let want = len.min(CHUNK as u64) as usize;
            let n = c.read(&mut buf[..want]).map_err(|e| {
                Error::io(
                    format!("tar: reading {:?}", String::from_utf8_lossy(path)),
                    e,
                )
            })?;
            if n == 0 {
                return Err(Error::corrupt(format!(
                    "tar: the content of {:?} ended {len} bytes before its recorded size",
                    String::from_utf8_lossy(path)
                )));
            }
            self.put(&buf[..n])?;
            self.summary.data_bytes += n as u64;
            len -= n as u64;
        }
        self.buf = buf;
        Ok(())
    }
}

fn unreachable_socket() -> Result<()> {
    Err(Error::InvalidArgument(
        "tar: sockets cannot be archived".into(),
    ))
}

/// (directory part including its trailing `/`, last component), ignoring a trailing `/`.
fn split_name(name: &[u8]) -> (&[u8], &[u8]) {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => (&[], trimmed),
    }
}

/// The member name of tree path `path`: `./` for the root, `./PATH` otherwise.
pub fn member_name(path: &[u8]) -> Vec<u8> {
    let mut n = b"./".to_vec();
    n.extend_from_slice(path);
    if path.is_empty() {
        n.truncate(1);
    }
    n
}

/// Write every entry of `source` under `root` to a pax archive on `out`, naming members
/// with [`member_name`]. `progress` is called after each entry with the bytes written.
pub fn write_tree<W: Write>(
    source: &dyn TreeSource,
    root: &[u8],
    out: W,
    progress: &mut dyn FnMut(u64),
) -> Result<(W, TarSummary)> {
    let mut w = TarWriter::new(out);
    source.walk(root, &mut |e, c| {
        w.append(e, &member_name(&e.path), c)?;
        progress(w.bytes_written());
        Ok(())
    })?;
    w.finish()
}
