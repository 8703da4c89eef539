//! The plan of a customize run: each file operation, in the order given, turned into
//! [`Change`]s to one filesystem each, against the [`Namespace`] as the earlier
//! operations leave it. Everything that can be checked without writing is checked here —
//! paths that escape `/`, missing parent directories, bad regular expressions, unknown
//! users and groups, what FAT cannot hold, filesystems subroot does not write — so a run
//! that fails does so before anything is written.
//!
//! Decisions:
//! - a new file or directory is `root:root`, 0644 or 0755 (`--write` may give a mode;
//!   `--upload` takes the host file's permission bits), its times the run's clock
//!   (`SOURCE_DATE_EPOCH` when set);
//! - a file whose content changes keeps its inode, owner, mode and xattrs; its mtime and
//!   ctime become the run's clock. When it has other hard links, the name gets a new inode
//!   with the same metadata and the other names keep the old content (as `sed -i` does);
//! - symbolic links in paths are followed as the booted system would (the last component
//!   too for `--write`, `--edit`, `--append-line`, `--chmod`, `--chown`, `--touch`,
//!   `--truncate`, `--upload`; not for `--delete`, `--link`, `--hardlink`).

use super::installed::FsIndex;
use super::namespace::{Content, MissingDir, Namespace, Node, Resolved};
use super::op::{FileOp, Id, SystemOp};
use crate::exit::InputError;
use anyhow::{bail, Context, Result};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subroot_formats::hostdir::HostDir;
use subroot_formats::tree::{Kind, Metadata, Timestamp, TreeSource};

/// Where a graft's tree comes from.
#[derive(Debug, Clone)]
pub enum GraftSource {
    /// `root` of the host directory `dir`.
    Host { dir: PathBuf, root: Vec<u8> },
    /// A tar archive, plain or compressed.
    Tar(PathBuf),
}

/// One change to one filesystem (paths inside it).
#[derive(Debug, Clone)]
pub enum Change {
    MakeDir {
        path: Vec<u8>,
        meta: Metadata,
    },
    /// A new regular file (nothing is at `path`).
    CreateFile {
        path: Vec<u8>,
        meta: Metadata,
        content: Content,
    },
    /// New content for the regular file at `path`, its metadata then `meta`.
    SetContent {
        path: Vec<u8>,
        meta: Metadata,
        content: Content,
    },
    /// The regular file at `path` cut to zero bytes (same inode), metadata then `meta`.
    Truncate {
        path: Vec<u8>,
        meta: Metadata,
    },
    Symlink {
        path: Vec<u8>,
        target: Vec<u8>,
        meta: Metadata,
    },
    Hardlink {
        existing: Vec<u8>,
        path: Vec<u8>,
    },
    SetMeta {
        path: Vec<u8>,
        meta: Metadata,
    },
    /// `path` and everything below it.
    Remove {
        path: Vec<u8>,
    },
    /// A tree merged in at `dest`: new entries made, existing files replaced, existing
    /// directories given the tree's metadata (unless `keep_dirs`, as `tar
    /// --no-overwrite-dir`).
    Graft {
        source: GraftSource,
        dest: Vec<u8>,
        keep_dirs: bool,
    },
}

impl Change {
    /// A short name for the plan (`mkdir`, `create`, `replace`...).
    pub fn action(&self) -> &'static str {
        match self {
            Change::MakeDir { .. } => "mkdir",
            Change::CreateFile { .. } => "create",
            Change::SetContent { .. } => "replace-content",
            Change::Truncate { .. } => "truncate",
            Change::Symlink { .. } => "symlink",
            Change::Hardlink { .. } => "hardlink",
            Change::SetMeta { .. } => "set-metadata",
            Change::Remove { .. } => "remove",
            Change::Graft { .. } => "merge-tree",
        }
    }

    /// The path the change is made at.
    pub fn path(&self) -> &[u8] {
        match self {
            Change::MakeDir { path, .. }
            | Change::CreateFile { path, .. }
            | Change::SetContent { path, .. }
            | Change::Truncate { path, .. }
            | Change::Symlink { path, .. }
            | Change::Hardlink { path, .. }
            | Change::SetMeta { path, .. }
            | Change::Remove { path } => path,
            Change::Graft { dest, .. } => dest,
        }
    }

    /// What else the plan says about it.
    pub fn detail(&self) -> String {
        let m = |meta: &Metadata| format!("{:04o} {}:{}", meta.perm, meta.uid, meta.gid);
        let c = |content: &Content| match content {
            Content::Bytes(b) => format!("{} bytes", b.len()),
            Content::Host(p) => format!("from {}", p.display()),
            Content::TarMember { archive, path } => format!(
                "/{} of {}",
                String::from_utf8_lossy(path),
                archive.display()
            ),
        };
        match self {
            Change::MakeDir { meta, .. } => m(meta),
            Change::CreateFile { meta, content, .. } | Change::SetContent { meta, content, .. } => {
                format!("{}, {}", c(content), m(meta))
            }
            Change::Truncate { .. } => "to 0 bytes".into(),
            Change::Symlink { target, .. } => {
                format!("-> {}", String::from_utf8_lossy(target))
            }
            Change::Hardlink { existing, .. } => {
                format!("a new name of /{}", String::from_utf8_lossy(existing))
            }
            Change::SetMeta { meta, .. } => m(meta),
            Change::Remove { .. } => "with everything below it".into(),
            Change::Graft {
                source: GraftSource::Host { dir, root },
                ..
            } => format!(
                "from {}",
                dir.join(Path::new(std::ffi::OsStr::from_bytes(root)))
                    .display()
            ),
            Change::Graft {
                source: GraftSource::Tar(p),
                ..
            } => format!("from the archive {}", p.display()),
        }
    }
}

/// One planned change: the filesystem and what changes there.
#[derive(Debug, Clone)]
pub struct Step {
    pub fs: FsIndex,
    pub change: Change,
}

/// The plan of one operation.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The operation as the command line gives it (`write /etc/motd`).
    pub operation: String,
    pub steps: Vec<Step>,
    /// Said when the operation changes nothing (a missing path to delete, a line already
    /// there).
    pub note: Option<String>,
}

/// Plans operations one after the other (see the module comment).
pub struct Planner<'a> {
    pub ns: Namespace<'a>,
    now: Timestamp,
}

fn shown(p: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(p))
}

impl<'a> Planner<'a> {
    pub fn new(ns: Namespace<'a>, now: Timestamp) -> Self {
        Planner { ns, now }
    }

    fn new_meta(&self, perm: u32) -> Metadata {
        Metadata {
            perm,
            uid: 0,
            gid: 0,
            atime: self.now,
            mtime: self.now,
            ctime: self.now,
            crtime: Some(self.now),
            xattrs: Vec::new(),
            flags: None,
        }
    }

    fn is_fat(&self, fs: FsIndex) -> bool {
        self.ns.sys.kind(fs) == Some("vfat")
    }

    /// Refuse what a filesystem cannot take: only ext2/3/4 and FAT are written, and FAT
    /// holds neither owners, permission bits, nor links.
    fn writable(&self, r: &Resolved, what: &str, fat_ok: bool) -> Result<()> {
        let kind = self.ns.sys.kind(r.fs).unwrap_or("");
        if !(kind.starts_with("ext") || kind == "vfat") {
            return Err(InputError::UnsupportedFilesystem(format!(
                "{}: {} is on {}, which subroot does not write (ext2/3/4 and FAT only)",
                r.shown(),
                what,
                self.ns.sys.describe(r.fs)
            ))
            .into());
        }
        if kind == "vfat" && !fat_ok {
            bail!(
                "{}: {what} is not possible on {}: FAT has no owners, permission bits or links",
                r.shown(),
                self.ns.sys.describe(r.fs)
            );
        }
        Ok(())
    }

    /// The node at a resolved path.
    fn node(&self, r: &Resolved) -> Result<Option<Node>> {
        self.ns.node(r.fs, &r.path)
    }

    /// A path that will be created (its parents exist: [`Namespace::resolve`] saw to it).
    fn not_root(&self, path: &str) -> Result<Resolved> {
        let r = self.ns.resolve(path, false)?;
        if r.os.is_empty() {
            bail!("`{path}` is the root directory");
        }
        Ok(r)
    }

    /// Plan `op`.
    pub fn plan(&mut self, op: &FileOp) -> Result<Planned> {
        let mut p = Planned {
            operation: describe(op),
            steps: Vec::new(),
            note: None,
        };
        self.plan_into(op, &mut p)
            .with_context(|| format!("--{}", p.operation))?;
        Ok(p)
    }

    fn push(&mut self, p: &mut Planned, fs: FsIndex, change: Change) {
        p.steps.push(Step { fs, change });
    }

    fn plan_into(&mut self, op: &FileOp, p: &mut Planned) -> Result<()> {
        match op {
            FileOp::Mkdir { path } => self.mkdir(path, p),
            FileOp::Write {
                path,
                content,
                mode,
            } => self.write(path, Content::Bytes(Arc::new(content.clone())), *mode, p),
            FileOp::Upload { local, dest } => self.upload(local, dest, p),
            FileOp::CopyIn { local, dir } => self.copy_in(local, dir, p),
            FileOp::TarIn { archive, dir } => self.tar_in(archive, dir, p),
            FileOp::Delete { path } => self.delete(path, p),
            FileOp::Symlink { target, link } => self.symlink(target, link, p),
            FileOp::Hardlink { existing, link } => self.hardlink(existing, link, p),
            FileOp::Chmod { mode, path } => {
                let r = self.ns.resolve(path, true)?;
                self.writable(&r, "a mode", false)?;
                let mut n = self.existing(&r)?;
                n.meta.perm = *mode & 0o7777;
                n.meta.ctime = self.now;
                self.set_meta(p, &r, n);
                Ok(())
            }
            FileOp::Chown { user, group, path } => {
                let uid = self.id(user, false)?;
                let gid = self.id(group, true)?;
                let r = self.ns.resolve(path, true)?;
                self.writable(&r, "an owner", false)?;
                let mut n = self.existing(&r)?;
                n.meta.uid = uid;
                n.meta.gid = gid;
                n.meta.ctime = self.now;
                self.set_meta(p, &r, n);
                Ok(())
            }
            FileOp::Touch { path } => {
                let r = self.ns.resolve(path, true)?;
                self.writable(&r, "a file", true)?;
                match self.node(&r)? {
                    None => {
                        self.not_root(path)?;
                        self.create(p, &r, Content::Bytes(Arc::default()), 0o644);
                    }
                    Some(mut n) => {
                        n.meta.atime = self.now;
                        n.meta.mtime = self.now;
                        n.meta.ctime = self.now;
                        if self.is_fat(r.fs) && n.kind == Kind::File {
                            // FAT files are rewritten whole (see apply).
                            let c = self.ns.content(r.fs, &r.path, &n)?;
                            self.set_content(p, &r, n, Content::Bytes(Arc::new(c)));
                        } else {
                            self.set_meta(p, &r, n);
                        }
                    }
                }
                Ok(())
            }
            FileOp::Truncate { path } => {
                let r = self.ns.resolve(path, true)?;
                self.writable(&r, "a file", true)?;
                let mut n = self.regular(&r)?;
                n.meta.mtime = self.now;
                n.meta.ctime = self.now;
                if self.is_fat(r.fs) {
                    self.set_content(p, &r, n, Content::Bytes(Arc::default()));
                } else {
                    n.size = 0;
                    n.content = Some(Content::Bytes(Arc::default()));
                    self.push(
                        p,
                        r.fs,
                        Change::Truncate {
                            path: r.path.clone(),
                            meta: n.meta.clone(),
                        },
                    );
                    self.ns.set(r.fs, &r.path, Some(n));
                }
                Ok(())
            }
            FileOp::Edit {
                path,
                regex,
                replacement,
                global,
            } => {
                let re = regex::bytes::Regex::new(regex)
                    .with_context(|| format!("`{regex}` is not a valid regular expression"))?;
                let r = self.ns.resolve(path, true)?;
                self.writable(&r, "a file", true)?;
                let n = self.regular(&r)?;
                let old = self.ns.content(r.fs, &r.path, &n)?;
                let new = edit_lines(&old, &re, replacement, *global);
                if new == old {
                    p.note = Some(format!("no line of {} matches", r.shown()));
                    return Ok(());
                }
                self.replace(p, &r, n, new);
                Ok(())
            }
            FileOp::AppendLine { path, line } => {
                let r = self.ns.resolve(path, true)?;
                self.writable(&r, "a file", true)?;
                match self.node(&r)? {
                    None => {
                        self.not_root(path)?;
                        let mut c = line.as_bytes().to_vec();
                        c.push(b'\n');
                        self.create(p, &r, Content::Bytes(Arc::new(c)), 0o644);
                    }
                    Some(_) => {
                        let n = self.regular(&r)?;
                        let old = self.ns.content(r.fs, &r.path, &n)?;
                        match append_line(&old, line.as_bytes()) {
                            None => p.note = Some(format!("{} already has the line", r.shown())),
                            Some(new) => self.replace(p, &r, n, new),
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// The node at `r`, which must exist.
    fn existing(&self, r: &Resolved) -> Result<Node> {
        self.node(r)?
            .with_context(|| format!("{} does not exist", r.shown()))
    }

    /// The regular file at `r`.
    fn regular(&self, r: &Resolved) -> Result<Node> {
        let n = self.existing(r)?;
        if n.kind != Kind::File {
            bail!("{} is not a regular file", r.shown());
        }
        Ok(n)
    }

    fn set_meta(&mut self, p: &mut Planned, r: &Resolved, n: Node) {
        self.push(
            p,
            r.fs,
            Change::SetMeta {
                path: r.path.clone(),
                meta: n.meta.clone(),
            },
        );
        self.ns.set(r.fs, &r.path, Some(n));
    }

    fn create(&mut self, p: &mut Planned, r: &Resolved, content: Content, perm: u32) {
        let meta = self.new_meta(perm);
        let size = content.len();
        self.push(
            p,
            r.fs,
            Change::CreateFile {
                path: r.path.clone(),
                meta: meta.clone(),
                content: content.clone(),
            },
        );
        self.ns.set(
            r.fs,
            &r.path,
            Some(Node::made(Kind::File, meta, size, None, Some(content))),
        );
    }

    fn set_content(&mut self, p: &mut Planned, r: &Resolved, mut n: Node, content: Content) {
        n.size = content.len();
        n.content = Some(content.clone());
        self.push(
            p,
            r.fs,
            Change::SetContent {
                path: r.path.clone(),
                meta: n.meta.clone(),
                content,
            },
        );
        self.ns.set(r.fs, &r.path, Some(n));
    }

    /// New content for the existing regular file at `r`.
    fn replace(&mut self, p: &mut Planned, r: &Resolved, mut n: Node, new: Vec<u8>) {
        n.meta.mtime = self.now;
        n.meta.ctime = self.now;
        self.set_content(p, r, n, Content::Bytes(Arc::new(new)));
    }

    fn mkdir(&mut self, path: &str, p: &mut Planned) -> Result<()> {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        if !path.starts_with('/') {
            bail!("`{path}`: paths inside the image are absolute (start with `/`)");
        }
        for i in 1..=comps.len() {
            let prefix = format!("/{}", comps[..i].join("/"));
            let r = self.ns.resolve(&prefix, true)?;
            match self.node(&r)? {
                Some(n) if n.kind == Kind::Dir => {}
                Some(_) => bail!("{} exists and is not a directory", r.shown()),
                None => {
                    self.writable(&r, "a directory", true)?;
                    let meta = self.new_meta(0o755);
                    self.push(
                        p,
                        r.fs,
                        Change::MakeDir {
                            path: r.path.clone(),
                            meta: meta.clone(),
                        },
                    );
                    self.ns.set(
                        r.fs,
                        &r.path,
                        Some(Node::made(Kind::Dir, meta, 0, None, None)),
                    );
                }
            }
        }
        if p.steps.is_empty() {
            p.note = Some(format!("{path} exists"));
        }
        Ok(())
    }

    /// `--write` and `--upload` to a file.
    fn write(
        &mut self,
        path: &str,
        content: Content,
        mode: Option<u32>,
        p: &mut Planned,
    ) -> Result<()> {
        let r = self.ns.resolve(path, true)?;
        self.writable(&r, "a file", true)?;
        match self.node(&r)? {
            None => {
                self.not_root(path)?;
                let perm = match (&content, mode) {
                    (_, Some(m)) => m & 0o7777,
                    (Content::Host(h), None) => {
                        std::fs::metadata(h).map(|m| m.permissions().mode() & 0o7777)?
                    }
                    _ => 0o644,
                };
                self.create(p, &r, content, perm);
            }
            Some(n) if n.kind == Kind::Dir => bail!("{} is a directory", r.shown()),
            Some(n) if n.kind != Kind::File => {
                // A device, fifo or socket is replaced by a regular file.
                self.push(
                    p,
                    r.fs,
                    Change::Remove {
                        path: r.path.clone(),
                    },
                );
                self.ns.set(r.fs, &r.path, None);
                self.create(p, &r, content, mode.unwrap_or(0o644) & 0o7777);
            }
            Some(mut n) => {
                if let Some(m) = mode {
                    n.meta.perm = m & 0o7777;
                }
                n.meta.mtime = self.now;
                n.meta.ctime = self.now;
                self.set_content(p, &r, n, content);
            }
        }
        Ok(())
    }

    fn upload(&mut self, local: &Path, dest: &str, p: &mut Planned) -> Result<()> {
        let md = std::fs::metadata(local)
            .with_context(|| format!("cannot read the host file {}", local.display()))?;
        if !md.is_file() {
            bail!(
                "{} is not a regular file (use --copy-in for directories)",
                local.display()
            );
        }
        let mut dest = dest.to_string();
        let r = self.ns.resolve(&dest, true)?;
        if self.node(&r)?.is_some_and(|n| n.kind == Kind::Dir) {
            let name = local
                .file_name()
                .with_context(|| format!("{} does not name a file", local.display()))?;
            dest = format!("{}/{}", dest.trim_end_matches('/'), name.to_string_lossy());
        }
        let r = self.ns.resolve(&dest, true)?;
        if self.is_fat(r.fs) {
            // FAT: the host file copied in through the tree writer (its content
            // streamed; owners and modes do not exist there).
            self.writable(&r, "a file", true)?;
            if self.node(&r)?.is_some_and(|n| n.kind == Kind::Dir) {
                bail!("{} is a directory", r.shown());
            }
            self.not_root(&dest)?;
            let (dir, root) = host_parts(local)?;
            self.push(
                p,
                r.fs,
                Change::Graft {
                    source: GraftSource::Host { dir, root },
                    dest: r.path.clone(),
                    keep_dirs: false,
                },
            );
            let mut meta = self.new_meta(0o644);
            meta.mtime = mtime_of(&md);
            self.ns.set(
                r.fs,
                &r.path,
                Some(Node::made(
                    Kind::File,
                    meta,
                    md.len(),
                    None,
                    Some(Content::Host(local.to_path_buf())),
                )),
            );
            return Ok(());
        }
        self.write(&dest, Content::Host(local.to_path_buf()), None, p)
    }

    fn copy_in(&mut self, local: &Path, dir: &str, p: &mut Planned) -> Result<()> {
        let (hdir, root) = host_parts(local)?;
        let host =
            HostDir::open(&hdir).with_context(|| format!("cannot open {}", hdir.display()))?;
        let r = self.target_dir(dir)?;
        let name = if root.is_empty() {
            local
                .canonicalize()
                .ok()
                .and_then(|c| c.file_name().map(|n| n.as_bytes().to_vec()))
                .with_context(|| format!("{}: cannot tell its name", local.display()))?
        } else {
            root.clone()
        };
        let dest = Namespace::child(&r.path, &name);
        let source = GraftSource::Host { dir: hdir, root };
        self.graft(&host, &source, &r, &dest, false)?;
        self.push(
            p,
            r.fs,
            Change::Graft {
                source,
                dest,
                keep_dirs: false,
            },
        );
        Ok(())
    }

    fn tar_in(&mut self, archive: &Path, dir: &str, p: &mut Planned) -> Result<()> {
        let dev = subroot_formats::block::RawFile::open(archive)
            .with_context(|| format!("cannot open {}", archive.display()))?;
        if subroot_formats::tar::probe(&dev)
            .with_context(|| format!("cannot read {}", archive.display()))?
            .is_none()
        {
            bail!(
                "{} is not a tar archive (plain or compressed with gzip, zstd, xz, lzma, lz4 or bzip2)",
                archive.display()
            );
        }
        let tar = subroot_formats::tar::TarTree::new(dev);
        let r = self.target_dir(dir)?;
        let dest = r.path.clone();
        let source = GraftSource::Tar(archive.to_path_buf());
        self.graft(&tar, &source, &r, &dest, true)
            .with_context(|| format!("reading the tar archive {}", archive.display()))?;
        self.push(
            p,
            r.fs,
            Change::Graft {
                source,
                dest,
                keep_dirs: true,
            },
        );
        Ok(())
    }

    /// The existing directory a tree is merged into.
    fn target_dir(&self, dir: &str) -> Result<Resolved> {
        let r = self.ns.resolve(dir, true)?;
        match self.node(&r)? {
            Some(n) if n.kind == Kind::Dir => {}
            Some(_) => bail!("{} is not a directory", r.shown()),
            None => bail!("the directory {} does not exist", r.shown()),
        }
        self.writable(&r, "a tree", true)?;
        Ok(r)
    }

    /// Check a tree merged at `dest` against what is there (a directory is never replaced
    /// by a file nor a file by a directory; FAT takes directories and regular files only),
    /// and record it in the namespace.
    fn graft(
        &mut self,
        tree: &dyn TreeSource,
        source: &GraftSource,
        at: &Resolved,
        dest: &[u8],
        keep_dirs: bool,
    ) -> Result<()> {
        let root: &[u8] = match source {
            GraftSource::Host { root, .. } => root,
            GraftSource::Tar(_) => b"",
        };
        let fat = self.is_fat(at.fs);
        let mut seen: Vec<(Vec<u8>, Node)> = Vec::new();
        let mut err: Option<anyhow::Error> = None;
        let ns = &self.ns;
        let mut linked = std::collections::HashSet::new();
        let walked = tree.walk(root, &mut |e, _| {
            let rel = subroot_formats::tree::relative(&e.path, root);
            let path = if rel.is_empty() {
                dest.to_vec()
            } else {
                Namespace::child(dest, rel)
            };
            let problem = (|| -> Result<()> {
                if fat && !matches!(e.kind, Kind::File | Kind::Dir) {
                    bail!(
                        "{}: FAT holds directories and regular files only, not a {:?}",
                        shown(&path),
                        e.kind
                    );
                }
                if fat && e.hardlink_id.is_some_and(|id| !linked.insert(id)) {
                    bail!(
                        "{}: FAT has no hard links, and this is a second name of a file",
                        shown(&path)
                    );
                }
                match ns.node(at.fs, &path)? {
                    Some(n) if n.kind == Kind::Dir && e.kind != Kind::Dir => {
                        bail!(
                            "{} is a directory; it is not replaced by a file",
                            shown(&path)
                        )
                    }
                    Some(n) if n.kind != Kind::Dir && e.kind == Kind::Dir => {
                        bail!("{} exists and is not a directory", shown(&path))
                    }
                    Some(n) if n.kind == Kind::Dir && keep_dirs => {}
                    _ => {
                        let mut n = Node {
                            kind: e.kind,
                            meta: e.meta.clone(),
                            size: e.size,
                            target: e.link_target.clone(),
                            fresh: false,
                            content: None,
                        };
                        if e.kind == Kind::File {
                            // A later operation (--edit, a FAT --touch) reads it from
                            // the source.
                            n.content = Some(match source {
                                GraftSource::Host { dir, .. } => {
                                    Content::Host(dir.join(std::ffi::OsStr::from_bytes(&e.path)))
                                }
                                GraftSource::Tar(archive) => Content::TarMember {
                                    archive: archive.clone(),
                                    path: e.path.clone(),
                                },
                            });
                        }
                        seen.push((path.clone(), n));
                    }
                }
                Ok(())
            })();
            match problem {
                Ok(()) => Ok(()),
                Err(e) => {
                    err = Some(e);
                    Err(subroot_formats::Error::InvalidArgument("stopped".into()))
                }
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        walked.context("cannot read the tree to copy in")?;
        for (path, mut n) in seen {
            let existed = self.ns.node(at.fs, &path)?.is_some();
            n.fresh = !existed;
            self.ns.set(at.fs, &path, Some(n));
        }
        Ok(())
    }

    fn delete(&mut self, path: &str, p: &mut Planned) -> Result<()> {
        let r = match self.ns.resolve(path, false) {
            Ok(r) => r,
            Err(e) if e.is::<MissingDir>() => {
                p.note = Some(format!("{path} does not exist"));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if r.os.is_empty() {
            bail!("refusing to delete the root directory");
        }
        if r.path.is_empty() {
            bail!(
                "{} is where {} is mounted; delete what is in it instead",
                r.shown(),
                self.ns.sys.describe(r.fs)
            );
        }
        if self
            .ns
            .sys
            .mounts
            .iter()
            .any(|(at, _)| at.starts_with(&r.os) && at.get(r.os.len()) == Some(&b'/'))
        {
            bail!("{} holds a mount point of /etc/fstab", r.shown());
        }
        if self.node(&r)?.is_none() {
            p.note = Some(format!("{} does not exist", r.shown()));
            return Ok(());
        }
        self.writable(&r, "a file", true)?;
        self.push(
            p,
            r.fs,
            Change::Remove {
                path: r.path.clone(),
            },
        );
        self.ns.set(r.fs, &r.path, None);
        Ok(())
    }

    /// Make room at `r` for a new link (`ln -sf`/`ln -f`): a directory is refused.
    fn clear_for_link(&mut self, r: &Resolved, p: &mut Planned) -> Result<()> {
        match self.node(r)? {
            Some(n) if n.kind == Kind::Dir => bail!("{} is a directory", r.shown()),
            Some(_) => {
                self.push(
                    p,
                    r.fs,
                    Change::Remove {
                        path: r.path.clone(),
                    },
                );
                self.ns.set(r.fs, &r.path, None);
            }
            None => {}
        }
        Ok(())
    }

    fn symlink(&mut self, target: &str, link: &str, p: &mut Planned) -> Result<()> {
        if target.is_empty() {
            bail!("the link target is empty");
        }
        let r = self.not_root(link)?;
        self.writable(&r, "a symbolic link", false)?;
        self.clear_for_link(&r, p)?;
        let mut meta = self.new_meta(0o777);
        meta.crtime = Some(self.now);
        self.push(
            p,
            r.fs,
            Change::Symlink {
                path: r.path.clone(),
                target: target.as_bytes().to_vec(),
                meta: meta.clone(),
            },
        );
        self.ns.set(
            r.fs,
            &r.path,
            Some(Node::made(
                Kind::Symlink,
                meta,
                target.len() as u64,
                Some(target.as_bytes().to_vec()),
                None,
            )),
        );
        Ok(())
    }

    fn hardlink(&mut self, existing: &str, link: &str, p: &mut Planned) -> Result<()> {
        let e = self.ns.resolve(existing, false)?;
        let n = self.existing(&e)?;
        if n.kind == Kind::Dir {
            bail!(
                "{} is a directory; directories have no hard links",
                e.shown()
            );
        }
        let r = self.not_root(link)?;
        self.writable(&r, "a hard link", false)?;
        if r.fs != e.fs {
            bail!(
                "{} is on {} and {} on {}: a hard link stays on one filesystem",
                e.shown(),
                self.ns.sys.describe(e.fs),
                r.shown(),
                self.ns.sys.describe(r.fs)
            );
        }
        if r.path == e.path {
            bail!("{} and {} are the same file", e.shown(), r.shown());
        }
        self.clear_for_link(&r, p)?;
        self.push(
            p,
            r.fs,
            Change::Hardlink {
                existing: e.path.clone(),
                path: r.path.clone(),
            },
        );
        let mut n = n;
        n.fresh = true;
        self.ns.set(r.fs, &r.path, Some(n));
        Ok(())
    }

    /// A user (`group`: false) or group id: a number, or a name in the image's
    /// `/etc/passwd` or `/etc/group`.
    fn id(&self, id: &Id, group: bool) -> Result<u32> {
        let name = match id {
            Id::Number(n) => return Ok(*n),
            Id::Name(n) => n,
        };
        // Read as planned so far: a user added by an earlier operation is found.
        use super::op::Guest;
        let file = if group { "/etc/group" } else { "/etc/passwd" };
        let text = self
            .ns
            .read(file)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        text.lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 3 && f[0] == name)
            .and_then(|f| f[2].parse().ok())
            .with_context(|| {
                format!(
                    "no {} `{name}` in the image's {file}",
                    if group { "group" } else { "user" }
                )
            })
    }
}

/// The host directory to walk and the root inside it for a host path (a directory: itself;
/// a file: its parent and its name).
fn host_parts(local: &Path) -> Result<(PathBuf, Vec<u8>)> {
    let md = local
        .symlink_metadata()
        .with_context(|| format!("cannot read {}", local.display()))?;
    if md.is_dir() {
        return Ok((local.to_path_buf(), Vec::new()));
    }
    let name = local
        .file_name()
        .with_context(|| format!("{} does not name a file", local.display()))?;
    let parent = match local.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.as_bytes().to_vec()))
}

fn mtime_of(md: &std::fs::Metadata) -> Timestamp {
    Timestamp {
        sec: md.mtime(),
        nsec: md.mtime_nsec() as u32,
    }
}

/// Apply `s/re/replacement/[g]` to each line of `text` (lines end with `\n`; the match
/// never sees it). `replacement` uses the `regex` crate's syntax: `$1`, `${name}`, `$$`.
pub fn edit_lines(
    text: &[u8],
    re: &regex::bytes::Regex,
    replacement: &str,
    global: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let rep = replacement.as_bytes();
    for line in text.split_inclusive(|&b| b == b'\n') {
        let (body, nl): (&[u8], &[u8]) = match line.strip_suffix(b"\n") {
            Some(b) => (b, b"\n"),
            None => (line, b""),
        };
        if global {
            out.extend_from_slice(&re.replace_all(body, rep));
        } else {
            out.extend_from_slice(&re.replace(body, rep));
        }
        out.extend_from_slice(nl);
    }
    out
}

/// `line` appended to `text` unless one of its lines is already `line` (`None`), a
/// missing final newline added first — as virt-customize `--append-line` does.
pub fn append_line(text: &[u8], line: &[u8]) -> Option<Vec<u8>> {
    if text
        .split(|&b| b == b'\n')
        .any(|l| l == line || l.strip_suffix(b"\r") == Some(line))
    {
        return None;
    }
    let mut out = text.to_vec();
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(line);
    out.push(b'\n');
    Some(out)
}

/// A system operation as the command line would give it (secrets left out), for the plan.
pub fn describe_system(op: &SystemOp) -> String {
    match op {
        SystemOp::Hostname(h) => format!("hostname {h}"),
        SystemOp::Timezone(t) => format!("timezone {t}"),
        SystemOp::Password { user, .. } => format!("password {user}:..."),
        SystemOp::SshInject { user, .. } => format!("ssh-inject {user}"),
        SystemOp::Firstboot { script } => format!("firstboot {}", script.display()),
        SystemOp::FirstbootCommand(c) => format!("firstboot-command {c}"),
        SystemOp::Sysprep(ops) if ops.is_empty() => "sysprep".into(),
        SystemOp::Sysprep(ops) => format!("sysprep {}", ops.join(",")),
    }
}

/// The operation as the command line would give it, for the plan.
pub fn describe(op: &FileOp) -> String {
    let id = |i: &Id| match i {
        Id::Number(n) => n.to_string(),
        Id::Name(n) => n.clone(),
    };
    match op {
        FileOp::Mkdir { path } => format!("mkdir {path}"),
        FileOp::Write { path, content, .. } => format!("write {path} ({} bytes)", content.len()),
        FileOp::Upload { local, dest } => format!("upload {}:{dest}", local.display()),
        FileOp::CopyIn { local, dir } => format!("copy-in {}:{dir}", local.display()),
        FileOp::TarIn { archive, dir } => format!("tar-in {}:{dir}", archive.display()),
        FileOp::Delete { path } => format!("delete {path}"),
        FileOp::Symlink { target, link } => format!("link {target}:{link}"),
        FileOp::Hardlink { existing, link } => format!("hardlink {existing}:{link}"),
        FileOp::Chmod { mode, path } => format!("chmod {mode:04o}:{path}"),
        FileOp::Chown { user, group, path } => format!("chown {}:{}:{path}", id(user), id(group)),
        FileOp::Touch { path } => format!("touch {path}"),
        FileOp::Truncate { path } => format!("truncate {path}"),
        FileOp::Edit {
            path,
            regex,
            replacement,
            global,
        } => format!(
            "edit {path}:s/{regex}/{replacement}/{}",
            if *global { "g" } else { "" }
        ),
        FileOp::AppendLine { path, line } => format!("append-line {path}:{line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_line_is_idempotent() {
        assert_eq!(append_line(b"a\nb\n", b"b"), None);
        assert_eq!(append_line(b"a\nb", b"c").unwrap(), b"a\nb\nc\n");
        assert_eq!(append_line(b"", b"c").unwrap(), b"c\n");
        assert_eq!(append_line(b"a\r\nb\r\n", b"a"), None);
    }

    #[test]
    fn edits_each_line() {
        let re = regex::bytes::Regex::new("^(#?)Port .*").unwrap();
        let out = edit_lines(b"x\n#Port 22\nPort 1\ny", &re, "Port 2222", false);
        assert_eq!(out, b"x\nPort 2222\nPort 2222\ny");
        let re = regex::bytes::Regex::new("o").unwrap();
        assert_eq!(edit_lines(b"foo\n", &re, "0", true), b"f00\n");
        assert_eq!(edit_lines(b"foo\n", &re, "0", false), b"f0o\n");
    }
}
