//! Manifests: one canonical text line per tree entry with every field of the model and the
//! SHA-256 of file contents, so two trees (an image and its tar export, a filesystem and
//! the directory it was extracted to) can be compared with `diff`.
//!
//! A line has 15 tab-separated fields:
//!
//! ```text
//! path kind perm uid:gid size mtime atime ctime crtime rdev link hardlink flags xattrs sha256
//! ```
//!
//! * `path`: relative to the tree root (`.` for the root itself), escaped (see [`escape`]).
//! * `kind`: `file`, `dir`, `symlink`, `char`, `block`, `fifo`, `socket`.
//! * `perm`: permission bits including suid/sgid/sticky, 4 octal digits.
//! * `size`: file length, symlink target length, else 0.
//! * times: `SEC.NNNNNNNNN` (seconds may be negative); `crtime` is `-` when not recorded.
//! * `rdev`: `MAJOR,MINOR` for devices, else `-`.
//! * `link`: the escaped symlink target, else `-`.
//! * `hardlink`: for a hard-linked non-directory, the escaped path of the first member of
//!   its group in walk order (so inode numbers never appear and two filesystems compare
//!   equal); else `-`.
//! * `flags`: the user-settable inode flags (ext `i_flags` masked with `USER_FLAGS`: what
//!   `chattr` sets, not how the data is stored — extents, htree indexing, inline data
//!   differ between equivalent filesystems) as 8 hex digits, `-` when the source has none.
//! * `xattrs`: `name=HEX` pairs sorted by name, joined by `,` (names escaped, with `,` and
//!   `=` escaped too), `-` when none.
//! * `sha256`: hex digest of the content of regular files, else `-`.
//!
//! Lines come in walk order (depth-first, siblings sorted by name bytes), which depends on
//! the paths alone. Fields that legitimately differ between copies (atime, ctime, crtime,
//! flags) can be replaced by `-` with [`ManifestOptions`].

use crate::tree::{Content, Entry, Kind, Timestamp, TreeSource};
use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Which fields to include; an omitted field prints as `-`.
#[derive(Debug, Clone, Copy)]
pub struct ManifestOptions {
    pub atime: bool,
    pub ctime: bool,
    pub crtime: bool,
    pub flags: bool,
    /// Hash file contents (reads every file).
    pub hash: bool,
}

impl Default for ManifestOptions {
    fn default() -> Self {
        ManifestOptions {
            atime: true,
            ctime: true,
            crtime: true,
            flags: true,
            hash: true,
        }
    }
}

/// The field names, in line order (also the keys of the JSON form).
pub const FIELDS: [&str; 15] = [
    "path", "kind", "perm", "owner", "size", "mtime", "atime", "ctime", "crtime", "rdev", "link",
    "hardlink", "flags", "xattrs", "sha256",
];

/// One manifest record: every field already rendered as text (`-` for "none").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The fields in [`FIELDS`] order.
    pub fields: [String; 15],
}

impl Record {
    /// The tab-separated line (without newline).
    pub fn line(&self) -> String {
        self.fields.join("\t")
    }

    /// (name, value) pairs in [`FIELDS`] order.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        FIELDS
            .iter()
            .copied()
            .zip(self.fields.iter().map(|s| s.as_str()))
    }
}

/// Builds records entry by entry, remembering the first path (and content hash) of each
/// hard-link group: sources that hand out a group's content once (tar, cpio) and those
/// that give it on every name (ext) thus produce the same records.
#[derive(Debug, Default)]
pub struct Manifester {
    opts: ManifestOptions,
    groups: HashMap<u64, String>,
    group_hashes: HashMap<u64, String>,
}

impl Manifester {
    /// A manifester with these options.
    pub fn new(opts: ManifestOptions) -> Self {
        Manifester {
            opts,
            groups: HashMap::new(),
            group_hashes: HashMap::new(),
        }
    }

    /// The record of `entry`; `content` is read to the end for the hash of a file.
    pub fn record(&mut self, entry: &Entry, content: Option<&mut dyn Content>) -> Result<Record> {
        let o = self.opts;
        let path = if entry.path.is_empty() {
            ".".to_string()
        } else {
            escape(&entry.path)
        };
        let hardlink = match entry.hardlink_id {
            Some(id) => self
                .groups
                .entry(id)
                .or_insert_with(|| path.clone())
                .clone(),
            None => "-".into(),
        };
        let sha = match (entry.kind, content, o.hash) {
            (Kind::File, Some(c), true) => sha256_hex(c, &entry.path)?,
            _ => "-".into(),
        };
        let sha = match (entry.kind, entry.hardlink_id) {
            (Kind::File, Some(id)) if sha == "-" => {
                self.group_hashes.get(&id).cloned().unwrap_or(sha)
            }
            (Kind::File, Some(id)) => {
                self.group_hashes.entry(id).or_insert_with(|| sha.clone());
                sha
            }
            _ => sha,
        };
        let opt = |on: bool, v: String| if on { v } else { "-".to_string() };
        Ok(Record {
            fields: [
                path,
                kind_name(entry.kind).into(),
                format!("{:04o}", entry.meta.perm & 0o7777),
                format!("{}:{}", entry.meta.uid, entry.meta.gid),
                entry.size.to_string(),
                time(entry.meta.mtime),
                opt(o.atime, time(entry.meta.atime)),
                opt(o.ctime, time(entry.meta.ctime)),
                opt(o.crtime, entry.meta.crtime.map_or("-".into(), time)),
                match entry.kind {
                    Kind::CharDevice | Kind::BlockDevice => {
                        format!("{},{}", entry.rdev.0, entry.rdev.1)
                    }
                    _ => "-".into(),
                },
                entry.link_target.as_deref().map_or("-".into(), escape),
                hardlink,
                opt(
                    o.flags,
                    entry.meta.flags.map_or("-".into(), |f| {
                        format!("{:08x}", f & crate::ext::USER_FLAGS)
                    }),
                ),
                xattrs(&entry.meta.xattrs),
                sha,
            ],
        })
    }
}

/// Walk `source` under `root` and call `out` with each record in walk order.
pub fn manifest(
    source: &dyn TreeSource,
    root: &[u8],
    opts: ManifestOptions,
    out: &mut dyn FnMut(&Record) -> Result<()>,
) -> Result<()> {
    let mut m = Manifester::new(opts);
    source.walk(root, &mut |e, c| {
        let r = m.record(e, c)?;
        out(&r)
    })
}

/// The name of a kind as manifests and listings print it.
pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Dir => "dir",
        Kind::Symlink => "symlink",
        Kind::CharDevice => "char",
        Kind::BlockDevice => "block",
        Kind::Fifo => "fifo",
        Kind::Socket => "socket",
    }
}

/// `SEC.NNNNNNNNN`.
pub fn time(t: Timestamp) -> String {
    format!("{}.{:09}", t.sec, t.nsec)
}

/// Escape bytes for a line: valid UTF-8 stays as it is except control characters; `\` is
/// `\\`, tab `\t`, newline `\n`, carriage return `\r`; other control characters and every
/// byte that is not part of valid UTF-8 are `\xNN`.
pub fn escape(b: &[u8]) -> String {
    escape_with(b, &[])
}

/// [`escape`], also writing the characters in `extra` as `\xNN`.
pub fn escape_with(mut b: &[u8], extra: &[char]) -> String {
    let mut s = String::with_capacity(b.len());
    while !b.is_empty() {
        let (good, rest) = match std::str::from_utf8(b) {
            Ok(v) => (v, &b[b.len()..]),
            Err(e) => {
                let (g, r) = b.split_at(e.valid_up_to());
                // `g` is valid by construction.
                (std::str::from_utf8(g).unwrap_or(""), r)
            }
        };
        for c in good.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '\t' => s.push_str("\\t"),
                '\n' => s.push_str("\\n"),
                '\r' => s.push_str("\\r"),
                c if c.is_control() || extra.contains(&c) => {
                    let mut buf = [0u8; 4];
                    for byte in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(s, "\\x{byte:02x}");
                    }
                }
                c => s.push(c),
            }
        }
        if let Some((&bad, tail)) = rest.split_first() {
            let _ = write!(s, "\\x{bad:02x}");
            b = tail;
        } else {
            b = rest;
        }
    }
    s
}

fn xattrs(x: &[(Vec<u8>, Vec<u8>)]) -> String {
    if x.is_empty() {
        return "-".into();
    }
    let mut v: Vec<&(Vec<u8>, Vec<u8>)> = x.iter().collect();
    v.sort();
    let mut s = String::new();
    for (i, (name, value)) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&escape_with(name, &[',', '=']));
        s.push('=');
        for byte in value.iter() {
            let _ = write!(s, "{byte:02x}");
        }
    }
    s
}

fn sha256_hex(c: &mut dyn Content, path: &[u8]) -> Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = c.read(&mut buf).map_err(|e| {
            Error::io(
                format!(
                    "reading {:?} for its checksum",
                    String::from_utf8_lossy(path)
                ),
                e,
            )
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let mut s = String::with_capacity(64);
    for b in h.finalize() {
        let _ = write!(s, "{b:02x}");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{BytesContent, Metadata};

    #[test]
    fn escaping() {
        assert_eq!(escape(b"a b/\xc3\xa9"), "a b/é");
        assert_eq!(escape(b"t\tn\nb\\"), "t\\tn\\nb\\\\");
        assert_eq!(escape(b"\xff\xfeok\x01"), "\\xff\\xfeok\\x01");
        assert_eq!(escape_with(b"a=b,c", &[',', '=']), "a\\x3db\\x2cc");
    }

    #[test]
    fn records_are_canonical() {
        let e = |path: &[u8], id| Entry {
            path: path.to_vec(),
            kind: Kind::File,
            meta: Metadata {
                perm: 0o4750,
                uid: 1,
                gid: 2,
                mtime: Timestamp { sec: -1, nsec: 5 },
                xattrs: vec![
                    (b"user.b".to_vec(), vec![1]),
                    (b"user.a".to_vec(), vec![0xff]),
                ],
                ..Default::default()
            },
            size: 3,
            rdev: (0, 0),
            link_target: None,
            hardlink_id: id,
        };
        let mut m = Manifester::new(ManifestOptions {
            atime: false,
            ..Default::default()
        });
        let mut c = BytesContent::new(b"abc".to_vec());
        let r = m.record(&e(b"x", Some(7)), Some(&mut c)).unwrap();
        assert_eq!(
            r.line(),
            "x\tfile\t4750\t1:2\t3\t-1.000000005\t-\t0.000000000\t-\t-\t-\tx\t-\tuser.a=ff,user.b=01\t\
             ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let r2 = m.record(&e(b"y", Some(7)), None).unwrap();
        assert_eq!(r2.fields[11], "x");
    }
}
