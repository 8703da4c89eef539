//! Reconcile: read the freshly populated filesystem back, compare it with the intended
//! tree entry by entry (one merge-join pass over the image's walk and the sorted
//! [`Intended`] records), and fix every difference with one debugfs script — owners, modes,
//! nanosecond times (with epoch bits), xattrs, inode flags, device nodes — plus the
//! identity fields mke2fs has no option for.

use super::debugfs::{quote, value_file, Script};
use super::record::path_cmp;
use super::spool::Intended;
use super::Identity;
use crate::tools::E2fsprogs;
use crate::{Error, Result};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use subroot_formats::block::RawFile;
use subroot_formats::ext::{ExtFs, ExtTree, Inode};
use subroot_formats::tree::{Entry, Kind, Timestamp};

pub use subroot_formats::ext::USER_FLAGS;
/// `EXT4_INLINE_DATA_FL`.
const INLINE_DATA_FL: u32 = 0x1000_0000;

/// What is known about a built inode.
#[derive(Debug, Clone)]
pub struct Found {
    pub entry: Entry,
    pub ino: u32,
    pub flags: u32,
    pub nlink: u16,
    pub extra_isize: u16,
    pub inode_size: usize,
}

impl Found {
    pub fn new(entry: &Entry, inode: &Inode) -> Self {
        Found {
            entry: entry.clone(),
            ino: inode.ino,
            flags: inode.flags,
            nlink: inode.nlink,
            extra_isize: inode.extra_isize,
            inode_size: inode.raw.len(),
        }
    }

    /// True when the inode stores nanoseconds and epoch bits of atime/mtime/ctime.
    pub fn has_extra_times(&self) -> bool {
        self.inode_size > 128 && self.extra_isize >= 16
    }

    /// True when the inode has room for a creation time.
    pub fn has_crtime(&self) -> bool {
        self.inode_size > 128 && self.extra_isize >= 24
    }
}

/// The on-disk (low 32 bits, extra) encoding of a time, when representable.
pub fn encode_time(t: Timestamp, extra: bool) -> Result<(i32, Option<u32>)> {
    let lo = t.sec as i32;
    let epoch = (t.sec - i64::from(lo)) >> 32;
    let ok = if extra {
        (0..=3).contains(&epoch) && t.nsec < 1_000_000_000
    } else {
        epoch == 0
    };
    if !ok {
        return Err(Error::unsupported(format!(
            "time {}.{:09} cannot be stored in this inode ({})",
            t.sec,
            t.nsec,
            if extra {
                "ext4 times reach 2446"
            } else {
                "128-byte inodes hold 32-bit seconds"
            }
        )));
    }
    Ok((lo, extra.then_some((t.nsec << 2) | epoch as u32)))
}

/// True when `a` and `b` are the same time as far as `found` can store it.
pub fn same_time(a: Timestamp, b: Timestamp, extra: bool) -> bool {
    if extra {
        a == b
    } else {
        a.sec == b.sec
    }
}

fn sorted(x: &[(Vec<u8>, Vec<u8>)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut v = x.to_vec();
    v.sort();
    v
}

/// The device number as ext4 stores it in i_block[0] / i_block[1].
pub fn encode_dev(major: u32, minor: u32) -> (u32, u32) {
    if major < 256 && minor < 256 {
        ((major << 8) | minor, 0)
    } else {
        (0, (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
    }
}

/// Totals of a reconcile run.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReconcileStats {
    pub commands: usize,
    pub devices: usize,
    pub xattrs_set: usize,
}

/// Build and run the script that makes `image` match `intended`.
///
/// One merge-join pass: the image is walked in [`path_cmp`] order next to the sorted
/// intended records. Memory grows with the depth of the tree (the inodes of the
/// directories on the current path) and with the hard-linked inodes (their group's inode
/// and name count, and the names the populate step left out until their group's inode is
/// known), not with the number of entries.
pub fn reconcile(
    tools: &E2fsprogs,
    image: &Path,
    intended: &Intended,
    identity: &Identity,
    workdir: &Path,
) -> Result<ReconcileStats> {
    let tree = ExtTree::new(ExtFs::open(RawFile::open(image)?)?);
    let valdir = workdir.join("xattr-values");
    std::fs::create_dir_all(&valdir)
        .map_err(|e| Error::io(format!("cannot create {}", valdir.display()), e))?;
    let mut r = Reconciler {
        s: Script::new(workdir)?,
        stats: ReconcileStats::default(),
        valdir,
        nvalue: 0,
        dirs: Vec::new(),
        group: HashMap::new(),
        links: HashMap::new(),
        done: HashSet::new(),
        deferred: Vec::new(),
    };
    for c in identity.ssv_commands() {
        r.s.cmd(c)?;
    }
    let mut want = intended.reader()?;
    tree.walk_inodes(b"", &mut |e, ino| {
        // Intended entries sorting before this one are not in the image.
        while let Some(w) = want.peek()? {
            if path_cmp(&w.entry.path, &e.path) != Ordering::Less {
                break;
            }
            if let Some(w) = want.next_record()? {
                r.missing(&w.entry)?;
            }
        }
        r.dirs.retain(|(p, _)| p.is_empty() || is_below(&e.path, p));
        if want.peek()?.is_some_and(|w| w.entry.path == e.path) {
            if let Some(w) = want.next_record()? {
                let f = Found::new(e, &tree.fs().inode(ino)?);
                r.pair(&w.entry, &f)?;
            }
        }
        // Anything else in the image (mke2fs's lost+found) is left alone.
        if e.kind == Kind::Dir {
            r.dirs.push((e.path.clone(), ino));
        }
        Ok(())
    })?;
    while let Some(w) = want.next_record()? {
        r.missing(&w.entry)?;
    }
    r.finish(tools, image, workdir)
}

/// True when `path` is inside directory `dir` (not `dir` itself).
fn is_below(path: &[u8], dir: &[u8]) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path.get(dir.len()) == Some(&b'/')
}

/// The state of one reconcile pass.
struct Reconciler {
    s: Script,
    stats: ReconcileStats,
    valdir: std::path::PathBuf,
    nvalue: usize,
    /// The directories on the current path of the walk: (path, inode).
    dirs: Vec<(Vec<u8>, u32)>,
    /// Hard-link groups: the inode each id was built as.
    group: HashMap<u64, u32>,
    /// Hard-linked inodes: their built link count and the names the tree gives them.
    links: HashMap<u32, (u16, u16)>,
    /// Hard-linked inodes already fixed.
    done: HashSet<u32>,
    /// Names left out by the populate step whose group's inode was not seen yet:
    /// (directory inode, name, group id, path).
    deferred: Vec<(u32, Vec<u8>, u64, Vec<u8>)>,
}

impl Reconciler {
    /// The inode of directory `path`, an ancestor of the walk's position.
    fn dir_ino(&self, path: &[u8]) -> Option<u32> {
        self.dirs
            .iter()
            .rev()
            .find(|(p, _)| p == path)
            .map(|&(_, ino)| ino)
    }

    /// An intended entry the image does not have: a later name of a hard-link group the
    /// populate step left out (tar input makes a separate inode for each name of a
    /// device, so only the first goes in) is linked to the group's inode.
    fn missing(&mut self, want: &Entry) -> Result<()> {
        let not_created = || {
            Error::VerifyFailed(format!(
                "mke2fs -d did not create {:?}",
                String::from_utf8_lossy(&want.path)
            ))
        };
        let id = want
            .hardlink_id
            .filter(|_| want.kind != Kind::Dir)
            .ok_or_else(not_created)?;
        let parent = self.dir_ino(want.parent()).ok_or_else(not_created)?;
        match self.group.get(&id).copied() {
            Some(gino) => self.link(parent, want.name(), gino),
            None => {
                self.deferred
                    .push((parent, want.name().to_vec(), id, want.path.clone()));
                Ok(())
            }
        }
    }

    /// Give inode `ino` the name `name` in directory `dir`.
    fn link(&mut self, dir: u32, name: &[u8], ino: u32) -> Result<()> {
        self.s.cmd(format!("cd <{dir}>"))?;
        let mut l = format!("ln <{ino}> ").into_bytes();
        l.extend(quote(name)?);
        self.s.raw(&l)?;
        self.links.entry(ino).or_insert((0, 0)).1 += 1;
        Ok(())
    }

    /// Make the built inode `f` at `want`'s path match `want`.
    fn pair(&mut self, want: &Entry, f: &Found) -> Result<()> {
        let show = || String::from_utf8_lossy(&want.path).into_owned();
        let s = &mut self.s;
        let ino = f.ino;
        let linked = want.kind != Kind::Dir && want.hardlink_id.is_some();
        if let (Some(id), true) = (want.hardlink_id, linked) {
            self.group.entry(id).or_insert(ino);
            self.links.entry(ino).or_insert((f.nlink, 0)).1 += 1;
        } else if want.kind != Kind::Dir && f.nlink != 1 {
            s.cmd(format!("sif <{ino}> links_count 1"))?;
        }
        // Nodes an ordinary user cannot create (devices when staging a host directory,
        // sockets in a tar archive) arrive as empty regular files: placeholders that are
        // converted here.
        let device = matches!(
            want.kind,
            Kind::CharDevice | Kind::BlockDevice | Kind::Socket | Kind::Fifo
        ) && f.entry.kind == Kind::File;
        let expected_kind = if device { Kind::File } else { want.kind };
        if f.entry.kind != expected_kind {
            return Err(Error::VerifyFailed(format!(
                "{:?}: mke2fs created a {:?}, expected a {:?}",
                show(),
                f.entry.kind,
                expected_kind
            )));
        }
        if device {
            // Re-link every name of the converted inode so the directory entries carry
            // the device's file type.
            let parent = self
                .dirs
                .iter()
                .rev()
                .find(|(p, _)| p == want.parent())
                .map(|&(_, ino)| ino)
                .ok_or_else(|| Error::VerifyFailed(format!("no parent for {:?}", show())))?;
            s.cmd(format!("cd <{parent}>"))?;
            let mut l = b"unlink ".to_vec();
            l.extend(quote(want.name())?);
            s.raw(&l)?;
            if self.done.contains(&ino) {
                let mut l = format!("ln <{ino}> ").into_bytes();
                l.extend(quote(want.name())?);
                s.raw(&l)?;
                return Ok(());
            }
        } else if self.done.contains(&ino) {
            return Ok(());
        }
        if linked {
            self.done.insert(ino);
        }
        if device {
            self.stats.devices += 1;
            if f.flags & INLINE_DATA_FL != 0 {
                s.cmd(format!("ea_rm <{ino}> system.data"))?;
            }
            s.cmd(format!("sif <{ino}> mode 0{:o}", want.mode()))?;
            let flags = want.meta.flags.unwrap_or(0) & USER_FLAGS;
            s.cmd(format!("sif <{ino}> flags 0x{flags:x}"))?;
            let (b0, b1) = encode_dev(want.rdev.0, want.rdev.1);
            for i in 0..15 {
                let v = match i {
                    0 => b0,
                    1 => b1,
                    _ => 0,
                };
                let field = match i {
                    12 => "IND".to_string(),
                    13 => "DIND".to_string(),
                    14 => "TIND".to_string(),
                    n => n.to_string(),
                };
                s.cmd(format!("sif <{ino}> block[{field}] {v}"))?;
            }
            s.cmd(format!("sif <{ino}> size 0"))?;
            let mut l = format!("ln <{ino}> ").into_bytes();
            l.extend(quote(want.name())?);
            s.raw(&l)?;
        } else {
            if f.entry.meta.perm != want.meta.perm & 0o7777 {
                s.cmd(format!("sif <{ino}> mode 0{:o}", want.mode()))?;
            }
            if let Some(wf) = want.meta.flags {
                if f.flags & USER_FLAGS != wf & USER_FLAGS {
                    let v = (f.flags & !USER_FLAGS) | (wf & USER_FLAGS);
                    s.cmd(format!("sif <{ino}> flags 0x{v:x}"))?;
                }
            }
        }
        if f.entry.meta.uid != want.meta.uid {
            s.cmd(format!("sif <{ino}> uid {}", want.meta.uid))?;
        }
        if f.entry.meta.gid != want.meta.gid {
            s.cmd(format!("sif <{ino}> gid {}", want.meta.gid))?;
        }
        let have_x = sorted(&f.entry.meta.xattrs);
        let want_x = sorted(&want.meta.xattrs);
        if have_x != want_x {
            for (name, _) in &have_x {
                if !want_x.iter().any(|(n, _)| n == name) {
                    let mut l = format!("ea_rm <{ino}> ").into_bytes();
                    l.extend(quote(name)?);
                    s.raw(&l)?;
                }
            }
            for (name, value) in &want_x {
                if have_x.iter().any(|(n, v)| n == name && v == value) {
                    continue;
                }
                self.nvalue += 1;
                self.stats.xattrs_set += 1;
                let p = value_file(&self.valdir, &format!("v{}", self.nvalue), value)?;
                let mut l = b"ea_set -f ".to_vec();
                l.extend(quote(p.as_os_str().as_encoded_bytes())?);
                l.extend(format!(" <{ino}> ").into_bytes());
                l.extend(quote(name)?);
                s.raw(&l)?;
            }
        }
        // Times last, ctime after everything else.
        let extra = f.has_extra_times();
        let times = [
            ("atime", f.entry.meta.atime, want.meta.atime, extra),
            ("mtime", f.entry.meta.mtime, want.meta.mtime, extra),
        ];
        for (field, have, wantt, extra) in times {
            if !same_time(have, wantt, extra) || device {
                set_time(s, ino, field, wantt, extra)?;
            }
        }
        if let (Some(wc), true) = (want.meta.crtime, f.has_crtime()) {
            if f.entry.meta.crtime != Some(wc) {
                set_time(s, ino, "crtime", wc, true)?;
            }
        }
        set_time(s, ino, "ctime", want.meta.ctime, extra)
    }

    /// Link the deferred names, fix link counts, run the script.
    fn finish(mut self, tools: &E2fsprogs, image: &Path, workdir: &Path) -> Result<ReconcileStats> {
        for (dir, name, id, path) in std::mem::take(&mut self.deferred) {
            let gino = self.group.get(&id).copied().ok_or_else(|| {
                Error::VerifyFailed(format!(
                    "mke2fs -d did not create {:?}",
                    String::from_utf8_lossy(&path)
                ))
            })?;
            self.link(dir, &name, gino)?;
        }
        // Link counts: debugfs `ln`/`unlink` leave them alone.
        let mut counts: Vec<(u32, (u16, u16))> = self.links.drain().collect();
        counts.sort_unstable();
        for (ino, (nlink, n)) in counts {
            if nlink != n {
                self.s.cmd(format!("sif <{ino}> links_count {n}"))?;
            }
        }
        self.stats.commands = self.s.len();
        self.s.run(tools, image, workdir)?;
        let _ = std::fs::remove_dir_all(&self.valdir);
        Ok(self.stats)
    }
}

fn set_time(s: &mut Script, ino: u32, field: &str, t: Timestamp, extra: bool) -> Result<()> {
    let (lo, ex) = encode_time(t, extra)?;
    s.cmd(format!("sif <{ino}> {field} @{lo}"))?;
    if let Some(x) = ex {
        s.cmd(format!("sif <{ino}> {field}_extra {x}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_encoding() {
        let t = |sec, nsec| Timestamp { sec, nsec };
        assert_eq!(encode_time(t(-5, 1), true).unwrap(), (-5, Some(4)));
        assert_eq!(
            encode_time(t(4_000_000_000, 3), true).unwrap(),
            (4_000_000_000u32 as i32, Some((3 << 2) | 1))
        );
        assert!(encode_time(t(4_000_000_000, 0), false).is_err());
        assert_eq!(encode_time(t(7, 9), false).unwrap(), (7, None));
    }

    #[test]
    fn device_encoding_matches_the_reader() {
        for (maj, min) in [(8, 1), (259, 70000), (1, 3), (4095, 1 << 19)] {
            let (b0, b1) = encode_dev(maj, min);
            assert_eq!(subroot_formats::ext::decode_dev(b0, b1), (maj, min));
        }
    }
}
