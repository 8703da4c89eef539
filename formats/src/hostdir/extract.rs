//! Safe extraction of a tree into a host directory.
//!
//! Every entry path is checked with [`check_relative_path`]; every filesystem call is
//! relative to an open directory descriptor, parents are entered one component at a time
//! with `O_DIRECTORY | O_NOFOLLOW`, and new entries are created exclusively, so neither a
//! hostile name nor a symlink written earlier by the same tree can redirect a write outside
//! the destination. Directories are kept open on a stack (depth-bounded memory); their
//! owner, xattrs, mode and times are applied when the walk leaves them, after their
//! children. Hard links are `linkat`s to the first extracted path of the same id, reached
//! again component by component without following symlinks.

use super::apply::{Applier, Target};
use super::options::{ExtractOptions, ExtractSummary, SkipKind, Skipped};
use super::sys::{effective_ids, errno, open_dir, show};
use crate::block::ExtentKind;
use crate::tree::{check_relative_path, Content, Entry, Kind, TreeSource};
use crate::{Error, Result};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{
    linkat, makedev, mkdirat, mknodat, openat, statat, symlinkat, unlinkat, AtFlags, FileType,
    Mode, OFlags, CWD,
};
use rustix::io::Errno;
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Extract the subtree `root` of `source` into `dest` (which must exist and be a
/// directory). Paths are made relative to `root`: the root directory's own metadata is
/// applied to `dest`; a non-directory root is written as `dest/<its name>`.
///
/// Hostile paths (absolute, `..`, empty components) and paths through a symlink or other
/// non-directory are [`Error::Corrupt`] naming the path; nothing is ever written outside
/// `dest`. Metadata that cannot be restored (owners and devices as non-root, privileged
/// xattrs, sockets) is counted in the returned summary.
pub fn extract(
    source: &dyn TreeSource,
    root: &[u8],
    dest: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractSummary> {
    extract_reporting(source, root, dest, opts, &mut |_| Ok(()))
}

/// [`extract`], handing every item left out to `report` as it happens (ownerships too),
/// so a caller can write a complete list without holding it in memory. An error from
/// `report` stops the extraction.
pub fn extract_reporting(
    source: &dyn TreeSource,
    root: &[u8],
    dest: &Path,
    opts: &ExtractOptions,
    report: &mut dyn FnMut(Skipped) -> Result<()>,
) -> Result<ExtractSummary> {
    check_relative_path(root).map_err(|why| {
        Error::InvalidArgument(format!("the extraction root `{}` {why}", show(root)))
    })?;
    let dest_fd = openat(
        CWD,
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| errno(format!("opening the destination {}", dest.display()), e))?;
    let (euid, egid) = effective_ids();
    let mut ex = Extractor {
        root,
        applier: Applier { opts, euid, egid },
        stack: vec![Frame {
            name: Vec::new(),
            fd: dest_fd,
            entry: None,
        }],
        links: HashMap::new(),
        sum: ExtractSummary::default(),
        buf: vec![0; 256 * 1024],
    };
    source.walk(root, &mut |e, content| {
        let r = ex.entry(e, content);
        for s in ex.sum.pending.drain(..) {
            report(s)?;
        }
        r
    })?;
    ex.leave_to(0);
    if let Some(frame) = ex.stack.pop() {
        ex.finish(frame);
    }
    for s in ex.sum.pending.drain(..) {
        report(s)?;
    }
    Ok(ex.sum)
}

/// An open directory on the path being extracted.
struct Frame {
    /// The component name (empty for the destination).
    name: Vec<u8>,
    fd: OwnedFd,
    /// The directory's entry, whose metadata is applied on leaving (`None` for
    /// directories created implicitly or pre-existing ones the tree did not describe).
    entry: Option<(Vec<u8>, Entry)>,
}

/// What became of the first entry of a hard-link id.
enum Linked {
    /// Created at this path (relative to dest), of this kind; `data` says whether content
    /// was written (GNU cpio puts it on the last link).
    At {
        rel: Vec<u8>,
        kind: Kind,
        data: bool,
    },
    /// Not created (a device as non-root, a socket that could not be made).
    Skipped,
}

struct Extractor<'a> {
    root: &'a [u8],
    applier: Applier<'a>,
    stack: Vec<Frame>,
    links: HashMap<u64, Linked>,
    sum: ExtractSummary,
    buf: Vec<u8>,
}

fn corrupt_path(rel: &[u8], why: impl std::fmt::Display) -> Error {
    Error::corrupt(format!("refusing to extract `{}`: {why}", show(rel)))
}

impl Extractor<'_> {
    /// The path of `e` relative to the extraction root.
    fn relative(&self, path: &[u8]) -> Result<Vec<u8>> {
        if self.root.is_empty() {
            return Ok(path.to_vec());
        }
        if path == self.root {
            return Ok(Vec::new());
        }
        match path.strip_prefix(self.root) {
            Some(rest) if rest.first() == Some(&b'/') => Ok(rest[1..].to_vec()),
            _ => Err(Error::corrupt(format!(
                "the tree gave `{}` while walking `{}`",
                show(path),
                show(self.root)
            ))),
        }
    }

    fn entry(&mut self, e: &Entry, content: Option<&mut dyn Content>) -> Result<()> {
        check_relative_path(&e.path).map_err(|why| corrupt_path(&e.path, why))?;
        let mut rel = self.relative(&e.path)?;
        if rel.is_empty() {
            if e.kind == Kind::Dir {
                self.leave_to(1);
                self.stack[0].entry = Some((Vec::new(), e.clone()));
                self.sum.entries += 1;
                return Ok(());
            }
            // A non-directory root goes in as dest/<its name>.
            rel = e.name().to_vec();
            if rel.is_empty() {
                return Err(corrupt_path(&e.path, "the tree's root is not a directory"));
            }
        }
        let (parent, name) = match rel.iter().rposition(|&b| b == b'/') {
            Some(i) => (rel[..i].to_vec(), rel[i + 1..].to_vec()),
            None => (Vec::new(), rel.clone()),
        };
        self.enter(&parent, &rel)?;
        match e.kind {
            Kind::Dir => self.dir(e, rel, name),
            _ => {
                if let Some(id) = e.hardlink_id {
                    if self.links.contains_key(&id) {
                        return self.link(e, id, &rel, &name, content);
                    }
                }
                let linked = self.node(e, &rel, &name, content)?;
                if let Some(id) = e.hardlink_id {
                    self.links.insert(id, linked);
                }
                Ok(())
            }
        }
    }

    /// Make the stack hold exactly the directories of `parent` (a relative path),
    /// creating missing ones and refusing anything that is not a real directory.
    fn enter(&mut self, parent: &[u8], rel: &[u8]) -> Result<()> {
        let comps: Vec<&[u8]> = if parent.is_empty() {
            Vec::new()
        } else {
            parent.split(|&b| b == b'/').collect()
        };
        let mut keep = 1;
        while keep < self.stack.len()
            && keep - 1 < comps.len()
            && self.stack[keep].name == comps[keep - 1]
        {
            keep += 1;
        }
        self.leave_to(keep);
        for comp in &comps[keep - 1..] {
            let top = self.top();
            let fd = match open_dir(top, comp) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    mkdirat(top, *comp, Mode::from_bits_retain(0o755))
                        .map_err(|e| errno(format!("creating a directory for {}", show(rel)), e))?;
                    open_dir(top, comp)
                        .map_err(|e| errno(format!("opening a directory for {}", show(rel)), e))?
                }
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    return Err(corrupt_path(
                        rel,
                        format!(
                            "its parent component `{}` is a symlink or not a directory",
                            show(comp)
                        ),
                    ))
                }
                Err(e) => return Err(errno(format!("entering the parent of {}", show(rel)), e)),
            };
            self.stack.push(Frame {
                name: comp.to_vec(),
                fd,
                entry: None,
            });
        }
        Ok(())
    }

    fn top(&self) -> BorrowedFd<'_> {
        self.stack[self.stack.len() - 1].fd.as_fd()
    }

    /// Pop (and finish) directories until `len` remain.
    fn leave_to(&mut self, len: usize) {
        while self.stack.len() > len.max(1) {
            if let Some(frame) = self.stack.pop() {
                self.finish(frame);
            }
        }
    }

    /// Apply a directory's own metadata once its children are written.
    fn finish(&mut self, frame: Frame) {
        if let Some((rel, e)) = &frame.entry {
            self.applier
                .apply(Target::Fd(frame.fd.as_fd()), e, rel, &mut self.sum);
        }
    }

    fn dir(&mut self, e: &Entry, rel: Vec<u8>, name: Vec<u8>) -> Result<()> {
        let top = self.top();
        match mkdirat(top, name.as_slice(), Mode::from_bits_retain(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(err) => return Err(errno(format!("creating directory {}", show(&rel)), err)),
        }
        let fd = match open_dir(top, &name) {
            Ok(fd) => fd,
            Err(Errno::LOOP | Errno::NOTDIR) if self.applier.opts.overwrite => {
                unlinkat(top, name.as_slice(), AtFlags::empty())
                    .map_err(|err| errno(format!("replacing {}", show(&rel)), err))?;
                mkdirat(top, name.as_slice(), Mode::from_bits_retain(0o700))
                    .map_err(|err| errno(format!("creating directory {}", show(&rel)), err))?;
                open_dir(top, &name)
                    .map_err(|err| errno(format!("opening directory {}", show(&rel)), err))?
            }
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(Error::InvalidArgument(format!(
                    "{} already exists and is not a directory (allow overwriting to replace it)",
                    show(&rel)
                )))
            }
            Err(err) => return Err(errno(format!("opening directory {}", show(&rel)), err)),
        };
        self.stack.push(Frame {
            name,
            fd,
            entry: Some((rel, e.clone())),
        });
        self.sum.entries += 1;
        Ok(())
    }

    /// Run `create` for `name` in the top directory; on `EEXIST` either fail or (with
    /// `overwrite`) remove the existing non-directory and try once more.
    fn create<T>(
        &self,
        rel: &[u8],
        name: &[u8],
        mut create: impl FnMut(BorrowedFd<'_>) -> rustix::io::Result<T>,
    ) -> Result<T> {
        let top = self.top();
        match create(top) {
            Err(Errno::EXIST) => {
                let st = statat(top, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| errno(format!("examining the existing {}", show(rel)), e))?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory
                    || !self.applier.opts.overwrite
                {
                    return Err(Error::InvalidArgument(format!(
                        "{} already exists{}",
                        show(rel),
                        if self.applier.opts.overwrite {
                            " as a directory"
                        } else {
                            " (allow overwriting to replace it)"
                        }
                    )));
                }
                unlinkat(top, name, AtFlags::empty())
                    .map_err(|e| errno(format!("replacing {}", show(rel)), e))?;
                create(top).map_err(|e| errno(format!("creating {}", show(rel)), e))
            }
            r => r.map_err(|e| errno(format!("creating {}", show(rel)), e)),
        }
    }

    /// Create a non-directory entry (the first of its hard-link id, if any).
    fn node(
        &mut self,
        e: &Entry,
        rel: &[u8],
        name: &[u8],
        content: Option<&mut dyn Content>,
    ) -> Result<Linked> {
        let at = |kind| Linked::At {
            rel: rel.to_vec(),
            kind,
            data: e.size > 0,
        };
        match e.kind {
            Kind::File => {
                let fd = self.create(rel, name, |dir| {
                    openat(
                        dir,
                        name,
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_bits_retain(0o600),
                    )
                })?;
                self.write_file(fd, e, rel, content)?;
                self.sum.entries += 1;
                Ok(at(Kind::File))
            }
            Kind::Symlink => {
                let target = e
                    .link_target
                    .as_deref()
                    .ok_or_else(|| corrupt_path(rel, "a symlink without a target"))?;
                if target.is_empty() || target.contains(&0) {
                    return Err(corrupt_path(rel, "an empty symlink target or one with NUL"));
                }
                self.create(rel, name, |dir| symlinkat(target, dir, name))?;
                self.created_at(e, rel, name);
                Ok(at(Kind::Symlink))
            }
            Kind::CharDevice | Kind::BlockDevice if !self.applier.opts.devices => {
                let reason = "device nodes need root".to_string();
                self.sum.skip(rel, SkipKind::Device, None, reason);
                Ok(Linked::Skipped)
            }
            Kind::CharDevice | Kind::BlockDevice | Kind::Fifo | Kind::Socket => {
                let ft = match e.kind {
                    Kind::CharDevice => FileType::CharacterDevice,
                    Kind::BlockDevice => FileType::BlockDevice,
                    Kind::Fifo => FileType::Fifo,
                    _ => FileType::Socket,
                };
                let dev = match e.kind {
                    Kind::CharDevice | Kind::BlockDevice => makedev(e.rdev.0, e.rdev.1),
                    _ => 0,
                };
                let r = self.create(rel, name, |dir| {
                    mknodat(dir, name, ft, Mode::from_bits_retain(0o600), dev)
                });
                match r {
                    Ok(()) => {
                        self.created_at(e, rel, name);
                        Ok(at(e.kind))
                    }
                    Err(Error::Io { source, .. })
                        if matches!(
                            e.kind,
                            Kind::CharDevice | Kind::BlockDevice | Kind::Socket
                        ) && matches!(source.raw_os_error(), Some(1 | 13 | 95)) =>
                    {
                        // EPERM, EACCES, EOPNOTSUPP: not allowed here; count and go on.
                        let kind = node_kind(e.kind);
                        let reason = format!("node not created: {source}");
                        self.sum.skip(rel, kind, None, reason);
                        Ok(Linked::Skipped)
                    }
                    Err(err) => Err(err),
                }
            }
            Kind::Dir => Err(corrupt_path(rel, "a directory where a file was expected")),
        }
    }

    /// Apply metadata to a non-file, non-directory entry just created in the top directory.
    fn created_at(&mut self, e: &Entry, rel: &[u8], name: &[u8]) {
        let top = self.stack[self.stack.len() - 1].fd.as_fd();
        self.applier
            .apply(Target::At(top, name), e, rel, &mut self.sum);
        self.sum.entries += 1;
    }

    /// Write a file's content (sparse: `Zero` extents are skipped, not written), then its
    /// length and metadata.
    fn write_file(
        &mut self,
        fd: OwnedFd,
        e: &Entry,
        rel: &[u8],
        content: Option<&mut dyn Content>,
    ) -> Result<()> {
        let file = std::fs::File::from(fd);
        let mut written_end = 0u64;
        if e.size > 0 {
            let content = content.ok_or_else(|| corrupt_path(rel, "a file without content"))?;
            let extents = content.extents()?;
            let mut pos = 0u64;
            let mut ext = extents.iter().peekable();
            while pos < e.size {
                while ext.peek().is_some_and(|x| x.end() <= pos) {
                    ext.next();
                }
                // Gaps in the map are data; a zero extent is read (to advance) but not written.
                let (kind, end) = match ext.peek() {
                    Some(x) if x.offset <= pos => (x.kind, x.end()),
                    Some(x) => (ExtentKind::Data, x.offset),
                    None => (ExtentKind::Data, e.size),
                };
                let n = (end.min(e.size) - pos).min(self.buf.len() as u64) as usize;
                let buf = &mut self.buf[..n];
                content.read_exact(buf).map_err(|err| {
                    corrupt_path(
                        rel,
                        format!("its content ended before {} bytes: {err}", e.size),
                    )
                })?;
                if kind == ExtentKind::Data {
                    file.write_all_at(buf, pos)
                        .map_err(|err| Error::io(format!("writing {}", show(rel)), err))?;
                    self.sum.bytes += n as u64;
                    written_end = pos + n as u64;
                }
                pos += n as u64;
            }
        }
        // The file is new or empty (see the callers): only a trailing hole needs a length
        // set (one syscall fewer per file otherwise).
        if written_end != e.size {
            file.set_len(e.size)
                .map_err(|err| Error::io(format!("setting the length of {}", show(rel)), err))?;
        }
        self.applier
            .apply(Target::Fd(file.as_fd()), e, rel, &mut self.sum);
        Ok(())
    }

    /// A later entry of a hard-link id: link it to the first one's path.
    fn link(
        &mut self,
        e: &Entry,
        id: u64,
        rel: &[u8],
        name: &[u8],
        content: Option<&mut dyn Content>,
    ) -> Result<()> {
        let (first, kind, data) = match self.links.get(&id) {
            Some(Linked::At { rel, kind, data }) => (rel.clone(), *kind, *data),
            Some(Linked::Skipped) | None => {
                let reason = "a hard link to a node that was not created".to_string();
                self.sum.skip(rel, node_kind(e.kind), None, reason);
                return Ok(());
            }
        };
        if kind != e.kind {
            return Err(corrupt_path(
                rel,
                format!(
                    "a hard link of kind {:?} to `{}` of kind {kind:?}",
                    e.kind,
                    show(&first)
                ),
            ));
        }
        // Reach the first path's directory again, never following a symlink.
        let (fparent, fname) = match first.iter().rposition(|&b| b == b'/') {
            Some(i) => (&first[..i], &first[i + 1..]),
            None => (&[][..], &first[..]),
        };
        let mut dir: Option<OwnedFd> = None;
        if !fparent.is_empty() {
            for comp in fparent.split(|&b| b == b'/') {
                let base = dir.as_ref().map_or(self.stack[0].fd.as_fd(), |d| d.as_fd());
                let next = open_dir(base, comp).map_err(|err| {
                    corrupt_path(rel, format!("its link target `{}`: {err}", show(&first)))
                })?;
                dir = Some(next);
            }
        }
        let base = dir.as_ref().map_or(self.stack[0].fd.as_fd(), |d| d.as_fd());
        self.create(rel, name, |top| {
            linkat(base, fname, top, name, AtFlags::empty())
        })?;
        self.sum.entries += 1;
        if kind == Kind::File && !data && e.size > 0 {
            // The first link was empty and this one carries the data (GNU cpio).
            let fd = openat(
                self.top(),
                name,
                OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|err| errno(format!("opening {}", show(rel)), err))?;
            self.write_file(fd, e, rel, content)?;
            self.links.insert(
                id,
                Linked::At {
                    rel: first,
                    kind,
                    data: true,
                },
            );
        }
        Ok(())
    }
}

/// How a node that could not be created is counted: sockets apart, devices together.
fn node_kind(kind: Kind) -> SkipKind {
    if kind == Kind::Socket {
        SkipKind::Socket
    } else {
        SkipKind::Device
    }
}
