//! The in-place engine: a copy of an existing filesystem, edited where it lies instead of
//! rebuilt — moves are new directory entries (no file data is copied), new and replaced
//! files are written into free blocks, everything else keeps its inodes and blocks.
//!
//! [`edit_copy`] runs five steps in a private temporary directory (removed afterwards,
//! also on error):
//! 1. **copy** — the source filesystem is copied, sparse, into `fs.img` (no sync: it is
//!    a scratch file), which `e2fsck -fn` must find clean before any edit;
//! 2. **edit** — one debugfs script carries out the [`EditOp`]s in order (`mkdir`,
//!    `write`, `symlink`, `ln` + `unlink` for a move, `rm` + `write` for new content);
//! 3. **reparent** — each moved directory's `..` is pointed at its new parent (with its
//!    checksum: [`subroot_formats::ext::ExtFs::dotdot_patch`]) and the parents' link counts are
//!    adjusted, which debugfs has no command for;
//! 4. **reconcile** — the result is compared with the intended tree and every metadata
//!    difference (the new inodes' owners, modes, ns times, xattrs; the parents' times
//!    debugfs touched) is fixed by one more debugfs script, as after a rebuild;
//! 5. **verify** — the result must hold exactly the intended tree (metadata of every
//!    entry; contents of the files the edits wrote, by length and XXH3-128), keep the
//!    source's identity, and pass `e2fsck -fn`.
//!
//! Memory is bounded as in the rebuild engine: the intended tree goes to a spool file and
//! reconcile and verify are merge-join passes.

use super::debugfs::Script;
use super::record::Record;
use super::spool::{Intended, Spool};
use super::sum::sum_reader;
use super::{reconcile, verify, BuildReport, BuiltFs, Identity};
use crate::tools::E2fsprogs;
use crate::{Error, Result};
use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use subroot_formats::block::{BlockDevice, RawFile};
use subroot_formats::ext::ExtFs;
use subroot_formats::ext::INCOMPAT_RECOVER;
use subroot_formats::tree::{Kind, TreeSource};

/// One edit, applied in the order given. Paths are relative to the filesystem's root,
/// `/`-separated, without a leading `/`; a parent must exist when its child is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditOp {
    /// A new, empty directory.
    Mkdir(Vec<u8>),
    /// A new regular file with the content of host file `from`.
    Create { path: Vec<u8>, from: PathBuf },
    /// A new symbolic link.
    Symlink { path: Vec<u8>, target: Vec<u8> },
    /// The entry `from` gets the name `to` (in an existing directory) and loses its old
    /// one; a directory's `..` follows it. Its inode and data stay where they are.
    Move { from: Vec<u8>, to: Vec<u8> },
    /// A regular file with one name gets the content of host file `from` (as a new inode:
    /// its metadata comes back from the intended tree).
    Replace { path: Vec<u8>, from: PathBuf },
}

/// How to run [`edit_copy`].
pub struct EditOptions<'a> {
    pub tools: &'a E2fsprogs,
    /// Where to make the temporary directory (default: the system's).
    pub temp_dir: Option<&'a Path>,
    /// Called with a short description as each step starts.
    pub progress: Option<&'a dyn Fn(&str)>,
}

/// Why a filesystem cannot be edited in place (`None` when it can): the features the
/// engine does not handle.
pub fn blocker<D: BlockDevice>(fs: &ExtFs<D>) -> Option<String> {
    const INCOMPAT_INLINE_DATA: u32 = 0x8000;
    const RO_COMPAT_QUOTA: u32 = 0x100;
    const RO_COMPAT_PROJECT: u32 = 0x2000;
    let f = &fs.superblock().features;
    if f.has_incompat(INCOMPAT_RECOVER) {
        // The kernel would replay the journal over the edits.
        return Some("its journal needs recovery (it was not unmounted cleanly)".into());
    }
    if f.has_incompat(INCOMPAT_INLINE_DATA) {
        return Some(
            "the filesystem has inline_data (directories may keep `..` in the inode)".into(),
        );
    }
    if f.has_ro_compat(RO_COMPAT_QUOTA) || f.has_ro_compat(RO_COMPAT_PROJECT) {
        // debugfs does not account what it writes in the quota files.
        return Some("the filesystem keeps quotas (debugfs does not update them)".into());
    }
    None
}

/// Why the file `inode` cannot get new content in place (`None` when it can): only a
/// regular file with one name is replaced (`rm` + `write` gives it a new inode), and not
/// one keeping xattrs in a block — debugfs's `rm` frees the data blocks but not that
/// block, and its `freeb` leaves the free counts behind. (In-inode xattrs go with the
/// inode; reconcile gives the new inode the intended ones.)
pub fn replace_blocker(inode: &subroot_formats::ext::Inode) -> Option<String> {
    if inode.kind() != subroot_formats::ext::InodeKind::File || inode.nlink != 1 {
        return Some(format!(
            "it has {} names (mode 0o{:o}); only a regular file with one name can be",
            inode.nlink, inode.mode
        ));
    }
    (inode.file_acl != 0).then(|| format!("it keeps xattrs in block {}", inode.file_acl))
}

fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

fn abs(path: &[u8]) -> Vec<u8> {
    let mut p = vec![b'/'];
    p.extend_from_slice(path);
    p
}

fn show(path: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(path))
}

/// A name quoted for debugfs; one it cannot express is a reason to rebuild instead.
fn quote(name: &[u8]) -> Result<Vec<u8>> {
    super::debugfs::quote(name).map_err(|e| match e {
        Error::Unsupported(why) => Error::CannotEditInPlace(why),
        e => e,
    })
}

/// `cmd "/dir"` (the directory as an absolute path, quoted).
fn cd(s: &mut Script, dir: &[u8]) -> Result<()> {
    let mut l = b"cd ".to_vec();
    l.extend(quote(&abs(dir))?);
    s.raw(&l)
}

/// `cmd ARG...` with each argument quoted.
fn line(s: &mut Script, cmd: &str, args: &[&[u8]]) -> Result<()> {
    let mut l = cmd.as_bytes().to_vec();
    for a in args {
        l.push(b' ');
        l.extend(quote(a)?);
    }
    s.raw(&l)
}

fn host(p: &Path) -> Result<&[u8]> {
    use std::os::unix::ffi::OsStrExt;
    Ok(p.as_os_str().as_bytes())
}

/// Copy the filesystem on `source` into a scratch image, apply `ops` to it in place, and
/// make and prove it equal to `intended` (the tree as it must read afterwards, root
/// first, in the tree model's order). The identity (UUID, label, features, sizes, hash
/// seed …) is the source's, checked at the end.
pub fn edit_copy(
    source: &dyn BlockDevice,
    ops: &[EditOp],
    intended: &dyn TreeSource,
    opts: &EditOptions,
) -> Result<BuiltFs> {
    let note = |s: &str| {
        if let Some(p) = opts.progress {
            p(s)
        }
    };
    let src_fs = ExtFs::open(source)?;
    if let Some(why) = blocker(&src_fs) {
        return Err(Error::CannotEditInPlace(format!(
            "cannot edit in place: {why}"
        )));
    }
    let identity = Identity::like(&src_fs)?;
    let len = identity
        .fs_bytes()
        .unwrap_or(source.len())
        .min(source.len());
    drop(src_fs);

    let (dir, work, image) = super::work_dir(opts.temp_dir, "subroot-edit.")?;

    note("copying the filesystem");
    {
        let out = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&image)
            .map_err(|e| Error::io(format!("cannot create {}", image.display()), e))?;
        let part = subroot_formats::block::Slice::new(source, 0, len)?;
        subroot_formats::convert::copy_raw(&part, &out, &|_| {})?;
    }

    // A filesystem e2fsck already finds fault with (free counts of an image taken from a
    // running system, say) cannot pass the final check, whatever the edits: say so now.
    note("checking the filesystem before editing (e2fsck -fn)");
    match verify::fsck_clean(opts.tools, &image, "check of the input before editing") {
        Err(Error::VerifyFailed(e)) => {
            return Err(Error::CannotEditInPlace(format!(
                "the filesystem is not clean before any edit ({e})"
            )))
        }
        r => r?,
    }

    note("editing in place (debugfs)");
    let moved_dirs = run_ops(opts.tools, &image, ops, &work)?;

    note("pointing moved directories at their new parents");
    reparent(opts.tools, &image, &moved_dirs, &work)?;

    note("recording the intended tree");
    let hashed: HashSet<&[u8]> = ops
        .iter()
        .filter_map(|op| match op {
            EditOp::Create { path, .. } | EditOp::Replace { path, .. } => Some(path.as_slice()),
            _ => None,
        })
        .collect();
    let intended = record(intended, &hashed, &work)?;

    note("reconciling ownership, modes, times and xattrs");
    let stats = reconcile::reconcile(opts.tools, &image, &intended, &identity, &work)?;

    note("verifying");
    let diffs = verify::final_checks(intended, opts.tools, &image, &identity)?;
    if !diffs.is_empty() {
        return Err(Error::VerifyFailed(format!(
            "editing in place changed the filesystem's identity: {}",
            diffs.join("; ")
        )));
    }
    Ok(BuiltFs {
        dir,
        path: image,
        report: BuildReport {
            reconcile: stats,
            ..Default::default()
        },
    })
}

/// A directory the moves gave a new parent: its inode, its parent before the first move
/// (an inode: the parent may move too), and its path once every op has run.
struct MovedDir {
    ino: u32,
    old_parent: u32,
    to: Vec<u8>,
}

/// The names earlier ops gave, to find entries of the image (which the script has not
/// changed yet) by the paths later ops use.
#[derive(Default)]
struct Names {
    /// Moves so far, in order: (from, to).
    moves: Vec<(Vec<u8>, Vec<u8>)>,
    /// Paths made by earlier ops.
    made: HashSet<Vec<u8>>,
}

fn rebase(p: &[u8], old: &[u8], new: &[u8]) -> Option<Vec<u8>> {
    subroot_formats::tree::is_under(p, old).then(|| [new, &p[old.len()..]].concat())
}

impl Names {
    /// The image path of the entry now at `p`, if it comes from the image.
    fn original(&self, p: &[u8]) -> Option<Vec<u8>> {
        let mut q = p.to_vec();
        for (from, to) in self.moves.iter().rev() {
            if let Some(r) = rebase(&q, to, from) {
                q = r;
            }
        }
        // `q` names the entry now at `p` only if the moves bring it back to `p`.
        let mut f = q.clone();
        for (from, to) in &self.moves {
            if let Some(r) = rebase(&f, from, to) {
                f = r;
            }
        }
        (f == p).then_some(q)
    }

    /// The image inode of the entry now at `p`.
    fn inode<D: BlockDevice>(&self, fs: &ExtFs<D>, p: &[u8]) -> Option<u32> {
        fs.lookup(&abs(&self.original(p)?)).ok()
    }

    fn exists<D: BlockDevice>(&self, fs: &ExtFs<D>, p: &[u8]) -> bool {
        self.made.contains(p) || self.inode(fs, p).is_some()
    }
}

/// Run `ops` as one debugfs script; the directories they moved.
fn run_ops(tools: &E2fsprogs, image: &Path, ops: &[EditOp], work: &Path) -> Result<Vec<MovedDir>> {
    let fs = ExtFs::open(RawFile::open(image)?)?;
    let mut s = Script::new(work)?;
    let mut moved = Vec::new();
    let mut names = Names::default();
    for op in ops {
        match op {
            EditOp::Mkdir(p) | EditOp::Create { path: p, .. } | EditOp::Symlink { path: p, .. } => {
                if names.exists(&fs, p) {
                    return Err(Error::InvalidArgument(format!(
                        "cannot create {}: it exists",
                        show(p)
                    )));
                }
                let (parent, name) = split(p);
                cd(&mut s, parent)?;
                match op {
                    EditOp::Mkdir(_) => line(&mut s, "mkdir", &[name])?,
                    EditOp::Create { from, .. } => line(&mut s, "write", &[host(from)?, name])?,
                    EditOp::Symlink { target, .. } => line(&mut s, "symlink", &[name, target])?,
                    _ => {}
                }
                names.made.insert(p.clone());
            }
            EditOp::Move { from, to } => {
                if names.exists(&fs, to) {
                    return Err(Error::InvalidArgument(format!(
                        "cannot move {} to {}: the target exists",
                        show(from),
                        show(to)
                    )));
                }
                let ino = names.inode(&fs, from).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "cannot move {}: no such entry in the filesystem",
                        show(from)
                    ))
                })?;
                if subroot_formats::tree::is_under(to, from) {
                    return Err(Error::InvalidArgument(format!(
                        "cannot move {} into itself ({})",
                        show(from),
                        show(to)
                    )));
                }
                let (to_parent, to_name) = split(to);
                let (from_parent, from_name) = split(from);
                cd(&mut s, to_parent)?;
                let mut l = format!("ln <{ino}> ").into_bytes();
                l.extend(quote(to_name)?);
                s.raw(&l)?;
                cd(&mut s, from_parent)?;
                line(&mut s, "unlink", &[from_name])?;
                if fs.inode(ino)?.kind() == subroot_formats::ext::InodeKind::Dir {
                    // Moved again: still one change of parent, from the first one.
                    match moved.iter_mut().find(|m: &&mut MovedDir| m.ino == ino) {
                        Some(m) => m.to = to.clone(),
                        None => {
                            let old_parent = names.inode(&fs, from_parent).ok_or_else(|| {
                                Error::InvalidArgument(format!(
                                    "cannot move {}: its directory is not in the filesystem",
                                    show(from)
                                ))
                            })?;
                            moved.push(MovedDir {
                                ino,
                                old_parent,
                                to: to.clone(),
                            });
                        }
                    }
                }
                names.moves.push((from.clone(), to.clone()));
                // Directories moved earlier that lay below `from` moved with it.
                for m in moved.iter_mut() {
                    if let Some(r) = rebase(&m.to, from, to) {
                        m.to = r;
                    }
                }
            }
            EditOp::Replace { path, from } => {
                let ino = names.inode(&fs, path).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "cannot replace {}: no such file in the filesystem",
                        show(path)
                    ))
                })?;
                if let Some(why) = replace_blocker(&fs.inode(ino)?) {
                    return Err(Error::CannotEditInPlace(format!(
                        "cannot replace {} in place: {why}",
                        show(path)
                    )));
                }
                let (parent, name) = split(path);
                cd(&mut s, parent)?;
                line(&mut s, "rm", &[name])?;
                line(&mut s, "write", &[host(from)?, name])?;
            }
        }
    }
    drop(fs);
    s.run(tools, image, work)?;
    Ok(moved)
}

/// Point each moved directory's `..` at its new parent and move the parents' link counts
/// with it (a subdirectory's `..` is a link to its parent).
fn reparent(tools: &E2fsprogs, image: &Path, moved: &[MovedDir], work: &Path) -> Result<()> {
    if moved.is_empty() {
        return Ok(());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .map_err(|e| Error::io(format!("cannot open {}", image.display()), e))?;
    let mut delta: BTreeMap<u32, i64> = BTreeMap::new();
    let mut patches = Vec::new();
    {
        let fs = ExtFs::open(RawFile::open(image)?)?;
        for m in moved {
            let ino = fs.lookup(&abs(&m.to))?;
            if ino != m.ino {
                return Err(Error::VerifyFailed(format!(
                    "after the edits {} is inode {ino}, not the moved directory {}",
                    show(&m.to),
                    m.ino
                )));
            }
            let new_parent = fs.lookup(&abs(split(&m.to).0))?;
            if new_parent == m.old_parent {
                continue;
            }
            patches.push(fs.dotdot_patch(ino, new_parent)?);
            *delta.entry(new_parent).or_default() += 1;
            *delta.entry(m.old_parent).or_default() -= 1;
        }
        let mut s = Script::new(work)?;
        for (&dir, &d) in &delta {
            let n = i64::from(fs.inode(dir)?.nlink);
            // A link count of 1 on a directory means "too many to count" (dir_nlink).
            if d == 0 || n == 1 {
                continue;
            }
            let want = n + d;
            if !(2..=65000).contains(&want) {
                s.cmd(format!("sif <{dir}> links_count 1"))?;
            } else {
                s.cmd(format!("sif <{dir}> links_count {want}"))?;
            }
        }
        drop(fs);
        for p in &patches {
            file.write_all_at(&p.data, p.offset).map_err(|e| {
                Error::io(
                    format!(
                        "cannot write block at byte {} of {}",
                        p.offset,
                        image.display()
                    ),
                    e,
                )
            })?;
        }
        s.run(tools, image, work)?;
    }
    Ok(())
}

/// Spool the intended tree (hashing the content of the files in `hashed`).
fn record(tree: &dyn TreeSource, hashed: &HashSet<&[u8]>, work: &Path) -> Result<Intended> {
    let mut spool = Spool::new(work)?;
    let mut count = 0u64;
    tree.walk(b"", &mut |e, content| {
        if count == 0 && (!e.path.is_empty() || e.kind != Kind::Dir) {
            return Err(Error::InvalidArgument(
                "the intended tree must start with its root directory".into(),
            )
            .into());
        }
        count += 1;
        let content = match (e.kind, content) {
            (Kind::File, Some(c)) if hashed.contains(e.path.as_slice()) => {
                Some(sum_reader(c).map_err(|err| {
                    Error::io(format!("reading the new content of {}", show(&e.path)), err)
                })?)
            }
            _ => None,
        };
        Ok(spool.push(&Record {
            entry: e.clone(),
            content,
        })?)
    })?;
    if count == 0 {
        return Err(Error::InvalidArgument("the intended tree is empty".into()));
    }
    spool.finish()
}
