//! A directory of the host as a [`TreeSource`].
//!
//! The walk never follows a symlink (the root included): every step is an `openat` with
//! `O_NOFOLLOW` relative to the parent's descriptor, and metadata comes from `statx` on the
//! opened descriptor (or, for symlinks and special files, on the name without following
//! it). Siblings are visited sorted by name bytes; only the names of the directories on
//! the current path are held. Files are read with `O_NOATIME` where permitted, so reading
//! a tree does not change it. Other filesystems mounted inside are not entered (their
//! mount-point directories are listed, empty), like `tar --one-file-system`, unless
//! [`HostDir::cross_mounts`] says so.

use super::sys::{errno, open_dir, proc_path, show};
use crate::block::{Extent, ExtentKind};
use crate::tree::{
    check_relative_path, join, Content, Entry, Kind, Metadata, Timestamp, TreeSource, Visitor,
};
use crate::{Error, Result};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{
    fgetxattr, fgetxattr_query, flistxattr, flistxattr_query, lgetxattr, lgetxattr_query,
    llistxattr, llistxattr_query, openat, readlinkat, seek, statx, AtFlags, Dir, Mode, OFlags,
    SeekFrom, Statx, StatxFlags, StatxTimestamp, CWD,
};
use rustix::io::Errno;
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A host directory read as a tree (for `--from DIR`).
#[derive(Debug)]
pub struct HostDir {
    path: PathBuf,
    fd: OwnedFd,
    dev: (u32, u32),
    cross_mounts: bool,
    skipped_mounts: Mutex<Vec<Vec<u8>>>,
}

impl HostDir {
    /// Open `path`, which must be a directory and not a symlink.
    pub fn open(path: &Path) -> Result<Self> {
        let fd = openat(
            CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::LOOP => Error::InvalidArgument(format!(
                "{} is a symlink; give the directory itself",
                path.display()
            )),
            Errno::NOTDIR => {
                Error::InvalidArgument(format!("{} is not a directory", path.display()))
            }
            e => errno(format!("opening {}", path.display()), e),
        })?;
        let st =
            stat_fd(fd.as_fd()).map_err(|e| errno(format!("examining {}", path.display()), e))?;
        Ok(HostDir {
            path: path.to_path_buf(),
            fd,
            dev: (st.stx_dev_major, st.stx_dev_minor),
            cross_mounts: false,
            skipped_mounts: Mutex::new(Vec::new()),
        })
    }

    /// Enter filesystems mounted inside the directory too (default: list their mount
    /// points as empty directories).
    pub fn cross_mounts(mut self, yes: bool) -> Self {
        self.cross_mounts = yes;
        self
    }

    /// The mount points (tree paths) whose contents the walks so far left out.
    pub fn skipped_mount_points(&self) -> Vec<Vec<u8>> {
        self.skipped_mounts
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }
}

fn stat_fd(fd: BorrowedFd<'_>) -> rustix::io::Result<Statx> {
    statx(
        fd,
        "",
        AtFlags::EMPTY_PATH,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )
}

/// Open `name` in `dir` without following it and without updating its atime if allowed.
fn open_noatime(dir: BorrowedFd<'_>, name: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    match openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(Errno::PERM) => openat(dir, name, flags, Mode::empty()),
        r => r,
    }
}

fn ts(t: StatxTimestamp) -> Timestamp {
    Timestamp {
        sec: t.tv_sec,
        nsec: t.tv_nsec,
    }
}

/// Where a node's xattrs are read from.
enum XattrSource<'a> {
    Fd(BorrowedFd<'a>),
    Path(Vec<u8>),
}

/// The xattrs of a node, in the order the filesystem lists them.
fn read_xattrs(src: &XattrSource<'_>) -> rustix::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let list = loop {
        let size = match src {
            XattrSource::Fd(fd) => flistxattr_query(fd),
            XattrSource::Path(p) => llistxattr_query(p.as_slice()),
        };
        let size = match size {
            Ok(n) => n,
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut buf = vec![0u8; size];
        let got = match src {
            XattrSource::Fd(fd) => flistxattr(fd, &mut buf[..]),
            XattrSource::Path(p) => llistxattr(p.as_slice(), &mut buf[..]),
        };
        match got {
            Ok(n) => {
                buf.truncate(n);
                break buf;
            }
            Err(Errno::RANGE) => continue, // grew meanwhile
            Err(e) => return Err(e),
        }
    };
    let mut out = Vec::new();
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let value = loop {
            let size = match src {
                XattrSource::Fd(fd) => fgetxattr_query(fd, name),
                XattrSource::Path(p) => lgetxattr_query(p.as_slice(), name),
            };
            let size = match size {
                Ok(n) => n,
                Err(Errno::NODATA) => break None, // removed meanwhile
                Err(e) => return Err(e),
            };
            let mut buf = vec![0u8; size];
            let got = match src {
                XattrSource::Fd(fd) => fgetxattr(fd, name, &mut buf[..]),
                XattrSource::Path(p) => lgetxattr(p.as_slice(), name, &mut buf[..]),
            };
            match got {
                Ok(n) => {
                    buf.truncate(n);
                    break Some(buf);
                }
                Err(Errno::RANGE) => continue,
                Err(Errno::NODATA) => break None,
                Err(e) => return Err(e),
            }
        };
        if let Some(v) = value {
            out.push((name.to_vec(), v));
        }
    }
    Ok(out)
}

/// A host file's content, read with `pread` (so [`Content::extents`] may seek freely).
struct FileContent {
    file: std::fs::File,
    size: u64,
    pos: u64,
}

impl Read for FileContent {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.size.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Content for FileContent {
    fn extents(&self) -> Result<Vec<Extent>> {
        let size = self.size;
        let all_data = || {
            Ok(if size == 0 {
                Vec::new()
            } else {
                vec![Extent {
                    offset: 0,
                    len: size,
                    kind: ExtentKind::Data,
                }]
            })
        };
        let mut out: Vec<Extent> = Vec::new();
        let mut push = |offset: u64, end: u64, kind| {
            if end > offset {
                out.push(Extent {
                    offset,
                    len: end - offset,
                    kind,
                });
            }
        };
        let mut off = 0;
        while off < size {
            let data = match seek(&self.file, SeekFrom::Data(off)) {
                Ok(d) => d.clamp(off, size),
                Err(Errno::NXIO) => size,
                Err(Errno::INVAL | Errno::NOTSUP) => return all_data(),
                Err(e) => return Err(errno("finding the data of a host file", e)),
            };
            push(off, data, ExtentKind::Zero);
            if data >= size {
                break;
            }
            let hole = match seek(&self.file, SeekFrom::Hole(data)) {
                Ok(h) => h.min(size),
                Err(Errno::NXIO) => size,
                Err(Errno::INVAL | Errno::NOTSUP) => return all_data(),
                Err(e) => return Err(errno("finding the holes of a host file", e)),
            };
            // A hole must lie beyond the data it ends; anything else means "data to the end".
            let hole = if hole <= data { size } else { hole };
            push(data, hole, ExtentKind::Data);
            off = hole;
        }
        Ok(out)
    }
}

/// One directory on the path being walked.
struct Level {
    fd: OwnedFd,
    path: Vec<u8>,
    names: Vec<Vec<u8>>,
    next: usize,
}

/// The sorted names in a directory (without `.` and `..`).
fn list(fd: BorrowedFd<'_>, path: &[u8]) -> Result<Vec<Vec<u8>>> {
    let ctx = || format!("listing {}", show(path));
    // A fresh descriptor for reading (its position is its own), with O_NOATIME if allowed.
    let own =
        open_noatime(fd, b".", OFlags::RDONLY | OFlags::DIRECTORY).map_err(|e| errno(ctx(), e))?;
    let mut dir = Dir::new(own).map_err(|e| errno(ctx(), e))?;
    let mut names = Vec::new();
    while let Some(ent) = dir.read() {
        let ent = ent.map_err(|e| errno(ctx(), e))?;
        let name = ent.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    names.sort();
    Ok(names)
}

/// State of one walk: hard-link ids handed out so far.
struct Walk<'v, 'w> {
    visit: &'v mut Visitor<'w>,
    ids: HashMap<(u32, u32, u64), u64>,
}

impl HostDir {
    fn describe(&self, path: &[u8]) -> String {
        let mut p = self.path.display().to_string();
        if !path.is_empty() {
            p.push('/');
            p.push_str(&show(path));
        }
        p
    }

    /// Build the entry for a node from its `statx`.
    fn entry(&self, w: &mut Walk<'_, '_>, path: Vec<u8>, st: &Statx, kind: Kind) -> Entry {
        let hardlink_id = (kind != Kind::Dir && st.stx_nlink > 1).then(|| {
            let next = w.ids.len() as u64 + 1;
            *w.ids
                .entry((st.stx_dev_major, st.stx_dev_minor, st.stx_ino))
                .or_insert(next)
        });
        Entry {
            path,
            kind,
            meta: Metadata {
                perm: u32::from(st.stx_mode) & 0o7777,
                uid: st.stx_uid,
                gid: st.stx_gid,
                atime: ts(st.stx_atime),
                mtime: ts(st.stx_mtime),
                ctime: ts(st.stx_ctime),
                crtime: (st.stx_mask & StatxFlags::BTIME.bits() != 0).then(|| ts(st.stx_btime)),
                xattrs: Vec::new(),
                flags: None,
            },
            size: if kind == Kind::File { st.stx_size } else { 0 },
            rdev: match kind {
                Kind::CharDevice | Kind::BlockDevice => (st.stx_rdev_major, st.stx_rdev_minor),
                _ => (0, 0),
            },
            link_target: None,
            hardlink_id,
        }
    }

    /// Visit the node `name` of directory `dir`; returns the directory to descend into.
    fn node(
        &self,
        w: &mut Walk<'_, '_>,
        dir: BorrowedFd<'_>,
        name: &[u8],
        path: Vec<u8>,
    ) -> Result<Option<OwnedFd>> {
        let what = self.describe(&path);
        let st = statx(
            dir,
            name,
            AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::BASIC_STATS | StatxFlags::BTIME,
        )
        .map_err(|e| errno(format!("examining {what}"), e))?;
        let kind = Kind::from_mode(u32::from(st.stx_mode)).ok_or_else(|| {
            Error::unsupported(format!(
                "{what}: unknown file type (mode {:o})",
                st.stx_mode
            ))
        })?;
        match kind {
            Kind::File | Kind::Dir => {
                let flags = if kind == Kind::Dir {
                    OFlags::RDONLY | OFlags::DIRECTORY
                } else {
                    OFlags::RDONLY
                };
                let fd = open_noatime(dir, name, flags)
                    .map_err(|e| errno(format!("opening {what}"), e))?;
                let st2 = stat_fd(fd.as_fd()).map_err(|e| errno(format!("examining {what}"), e))?;
                if Kind::from_mode(u32::from(st2.stx_mode)) != Some(kind)
                    || st2.stx_ino != st.stx_ino
                {
                    return Err(Error::io(
                        format!("reading {what}"),
                        std::io::Error::other("it was replaced while being read"),
                    ));
                }
                let mut e = self.entry(w, path, &st2, kind);
                e.meta.xattrs = read_xattrs(&XattrSource::Fd(fd.as_fd()))
                    .map_err(|e| errno(format!("reading the xattrs of {what}"), e))?;
                if kind == Kind::Dir {
                    (w.visit)(&e, None)?;
                    if !self.cross_mounts && (st2.stx_dev_major, st2.stx_dev_minor) != self.dev {
                        if let Ok(mut v) = self.skipped_mounts.lock() {
                            v.push(e.path);
                        }
                        return Ok(None);
                    }
                    Ok(Some(fd))
                } else {
                    let mut c = FileContent {
                        file: std::fs::File::from(fd),
                        size: e.size,
                        pos: 0,
                    };
                    (w.visit)(&e, Some(&mut c))?;
                    Ok(None)
                }
            }
            _ => {
                let mut e = self.entry(w, path, &st, kind);
                if kind == Kind::Symlink {
                    let target = readlinkat(dir, name, Vec::new())
                        .map_err(|e| errno(format!("reading the symlink {what}"), e))?
                        .into_bytes();
                    e.size = target.len() as u64;
                    e.link_target = Some(target);
                }
                e.meta.xattrs = read_xattrs(&XattrSource::Path(proc_path(dir, name)))
                    .map_err(|e| errno(format!("reading the xattrs of {what}"), e))?;
                (w.visit)(&e, None)?;
                Ok(None)
            }
        }
    }
}

impl TreeSource for HostDir {
    fn walk(&self, root: &[u8], visit: &mut Visitor<'_>) -> Result<()> {
        check_relative_path(root)
            .map_err(|why| Error::InvalidArgument(format!("the path `{}` {why}", show(root))))?;
        let mut w = Walk {
            visit,
            ids: HashMap::new(),
        };
        let first = if root.is_empty() {
            let st = stat_fd(self.fd.as_fd())
                .map_err(|e| errno(format!("examining {}", self.describe(b"")), e))?;
            let mut e = self.entry(&mut w, Vec::new(), &st, Kind::Dir);
            e.meta.xattrs = read_xattrs(&XattrSource::Fd(self.fd.as_fd()))
                .map_err(|e| errno(format!("reading the xattrs of {}", self.describe(b"")), e))?;
            (w.visit)(&e, None)?;
            Some(rustix::io::dup(&self.fd).map_err(|e| errno("duplicating a descriptor", e))?)
        } else {
            // Reach the parent of `root` without following symlinks, then visit it.
            let (parent, name) = match root.iter().rposition(|&b| b == b'/') {
                Some(i) => (&root[..i], &root[i + 1..]),
                None => (&[][..], root),
            };
            let mut dir: Option<OwnedFd> = None;
            let mut done = Vec::new();
            if !parent.is_empty() {
                for comp in parent.split(|&b| b == b'/') {
                    done = join(&done, comp);
                    let base = dir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd());
                    dir = Some(open_dir(base, comp).map_err(|e| match e {
                        Errno::LOOP | Errno::NOTDIR => Error::InvalidArgument(format!(
                            "{} is a symlink or not a directory",
                            self.describe(&done)
                        )),
                        e => errno(format!("opening {}", self.describe(&done)), e),
                    })?);
                }
            }
            let base = dir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd());
            self.node(&mut w, base, name, root.to_vec())?
        };
        let Some(fd) = first else { return Ok(()) };
        let names = list(fd.as_fd(), root)?;
        let mut stack = vec![Level {
            fd,
            path: root.to_vec(),
            names,
            next: 0,
        }];
        while let Some(top) = stack.last_mut() {
            let Some(name) = top.names.get_mut(top.next).map(std::mem::take) else {
                stack.pop();
                continue;
            };
            top.next += 1;
            let path = join(&top.path, &name);
            let child = self.node(&mut w, top.fd.as_fd(), &name, path.clone())?;
            if let Some(fd) = child {
                let names = list(fd.as_fd(), &path)?;
                stack.push(Level {
                    fd,
                    path,
                    names,
                    next: 0,
                });
            }
        }
        Ok(())
    }
}
