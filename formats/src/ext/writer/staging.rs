//! The staging copy for `mke2fs -d` (e2fsprogs without tar input): the intended tree
//! written into a private host directory as the current user, collecting the intended
//! entries for reconcile.
//!
//! What an ordinary user cannot create is staged as something reconcile turns into the
//! real thing: device nodes are staged as empty regular files (reconcile converts the
//! inode and re-links its directory entries); owners, permissions, times, xattrs and
//! flags are all set by reconcile. FIFOs and sockets are created with `mknod`, which
//! needs no privilege. Files are written sparse (all-zero chunks become holes).

use crate::tree::{check_relative_path, Content, Entry, Kind, TreeSource};
use crate::{Error, Result};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Copy chunk size.
const CHUNK: usize = 1 << 20;

/// `path` relative to the walk's `root` (sources may report paths relative to either).
pub fn relative<'a>(path: &'a [u8], root: &[u8]) -> &'a [u8] {
    if root.is_empty() {
        return path;
    }
    if path == root {
        return &[];
    }
    match path.strip_prefix(root) {
        Some(rest) if rest.first() == Some(&b'/') => &rest[1..],
        _ => path,
    }
}

/// Totals of a staging run.
#[derive(Debug, Default, Clone, Copy)]
pub struct StageStats {
    pub entries: u64,
    pub file_bytes: u64,
}

/// Write the tree under `root` of `tree` into the existing empty directory `dir`;
/// returns the intended entries (paths relative to `root`, in walk order).
pub fn stage(
    tree: &dyn TreeSource,
    root: &[u8],
    dir: &Path,
    stats: &mut StageStats,
) -> Result<Vec<Entry>> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut first_link: HashMap<u64, (PathBuf, usize)> = HashMap::new();
    let mut buf = vec![0u8; CHUNK];
    tree.walk(root, &mut |e, content| {
        let rel = relative(&e.path, root).to_vec();
        check_relative_path(&rel).map_err(|why| {
            Error::InvalidArgument(format!(
                "tree entry {:?} {why}",
                String::from_utf8_lossy(&e.path)
            ))
        })?;
        let mut e = e.clone();
        e.path = rel;
        if entries.is_empty() {
            if !e.path.is_empty() || e.kind != Kind::Dir {
                return Err(Error::InvalidArgument(format!(
                    "the tree's root must be a directory, found {:?} ({:?})",
                    String::from_utf8_lossy(&e.path),
                    e.kind
                )));
            }
            entries.push(e);
            return Ok(());
        }
        if e.path.is_empty() {
            return Err(Error::InvalidArgument(
                "the tree lists its root twice".to_string(),
            ));
        }
        let host = dir.join(OsStr::from_bytes(&e.path));
        let io = |what: &str, err: std::io::Error| {
            Error::io(format!("staging: cannot {what} {}", host.display()), err)
        };
        if let Some(id) = e.hardlink_id.filter(|_| e.kind != Kind::Dir) {
            if let Some((first, at)) = first_link.get(&id) {
                fs::hard_link(first, &host).map_err(|err| io("hard-link", err))?;
                // One inode, one set of metadata: the first name's. (A host directory's
                // later names are seen after the first one's content was read, which may
                // have moved the shared atime.)
                if let Some(f) = entries.get(*at) {
                    e.meta = f.meta.clone();
                }
                stats.entries += 1;
                entries.push(e);
                return Ok(());
            }
            first_link.insert(id, (host.clone(), entries.len()));
        }
        match e.kind {
            Kind::Dir => fs::create_dir(&host).map_err(|err| io("create directory", err))?,
            Kind::File => {
                let mut f = File::create(&host).map_err(|err| io("create", err))?;
                if let Some(c) = content {
                    stats.file_bytes +=
                        copy_sparse(c, &mut f, &mut buf, e.size).map_err(|err| io("write", err))?;
                } else if e.size > 0 {
                    return Err(Error::InvalidArgument(format!(
                        "tree entry {:?}: a {}-byte file without content",
                        String::from_utf8_lossy(&e.path),
                        e.size
                    )));
                }
            }
            Kind::Symlink => {
                let target = e.link_target.as_deref().unwrap_or_default();
                std::os::unix::fs::symlink(OsStr::from_bytes(target), &host)
                    .map_err(|err| io("create symlink", err))?;
            }
            Kind::Fifo | Kind::Socket => {
                let ft = if e.kind == Kind::Fifo {
                    rustix::fs::FileType::Fifo
                } else {
                    rustix::fs::FileType::Socket
                };
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &host,
                    ft,
                    rustix::fs::Mode::from_raw_mode(0o600),
                    0,
                )
                .map_err(|err| io("create", err.into()))?;
            }
            Kind::CharDevice | Kind::BlockDevice => {
                File::create(&host).map_err(|err| io("create placeholder", err))?;
            }
        }
        stats.entries += 1;
        entries.push(e);
        Ok(())
    })?;
    if entries.is_empty() {
        return Err(Error::InvalidArgument(
            "the tree is empty (not even a root directory)".to_string(),
        ));
    }
    Ok(entries)
}

/// Copy `size` bytes of `src` into `dst`, seeking over all-zero chunks; returns bytes read.
fn copy_sparse(
    src: &mut dyn Content,
    dst: &mut File,
    buf: &mut [u8],
    size: u64,
) -> std::io::Result<u64> {
    let mut pos = 0u64;
    loop {
        let mut n = 0;
        while n < buf.len() {
            let r = src.read(&mut buf[n..])?;
            if r == 0 {
                break;
            }
            n += r;
        }
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        if chunk.iter().all(|&b| b == 0) {
            dst.seek(SeekFrom::Current(n as i64))?;
        } else {
            dst.write_all(chunk)?;
        }
        pos += n as u64;
        if n < buf.len() {
            break;
        }
    }
    if pos != size {
        return Err(std::io::Error::other(format!(
            "the content has {pos} bytes, the entry says {size}"
        )));
    }
    dst.set_len(pos)?;
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(relative(b"usr/bin", b"usr"), b"bin");
        assert_eq!(relative(b"usr", b"usr"), b"");
        assert_eq!(relative(b"bin", b"usr"), b"bin");
        assert_eq!(relative(b"usrx/a", b"usr"), b"usrx/a");
        assert_eq!(relative(b"a/b", b""), b"a/b");
    }
}
