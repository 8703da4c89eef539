//! Verify: the written filesystem holds exactly the intended tree — every entry's kind,
//! permissions, owner, times (to the precision the inode can store), xattrs, user flags,
//! device numbers, link targets, hard-link grouping and file contents (length and 128-bit
//! XXH3 hash of what the populate step was given) — and `e2fsck -fn` finds nothing to fix.

use super::reconcile::{same_time, Found, USER_FLAGS};
use super::record::path_cmp;
use super::spool::Intended;
use super::sum::sum_reader;
use crate::tools::{self, E2fsprogs, ToolError};
use crate::{Error, Result};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::Path;
use subroot_formats::block::RawFile;
use subroot_formats::ext::{ExtFs, ExtTree};
use subroot_formats::tree::{Entry, Kind};

/// Differences reported before giving up.
const MAX_REPORTED: usize = 8;

fn differences(want: &Entry, f: &Found) -> Vec<String> {
    let mut d = Vec::new();
    let have = &f.entry;
    if have.kind != want.kind {
        d.push(format!("kind {:?} != {:?}", have.kind, want.kind));
        return d;
    }
    if have.meta.perm != want.meta.perm & 0o7777 {
        d.push(format!(
            "mode 0{:o} != 0{:o}",
            have.meta.perm, want.meta.perm
        ));
    }
    if (have.meta.uid, have.meta.gid) != (want.meta.uid, want.meta.gid) {
        d.push(format!(
            "owner {}:{} != {}:{}",
            have.meta.uid, have.meta.gid, want.meta.uid, want.meta.gid
        ));
    }
    let extra = f.has_extra_times();
    for (n, h, w) in [
        ("atime", have.meta.atime, want.meta.atime),
        ("mtime", have.meta.mtime, want.meta.mtime),
        ("ctime", have.meta.ctime, want.meta.ctime),
    ] {
        if !same_time(h, w, extra) {
            d.push(format!("{n} {h:?} != {w:?}"));
        }
    }
    if let (Some(w), true) = (want.meta.crtime, f.has_crtime()) {
        if have.meta.crtime != Some(w) {
            d.push(format!("crtime {:?} != {w:?}", have.meta.crtime));
        }
    }
    let mut hx = have.meta.xattrs.clone();
    let mut wx = want.meta.xattrs.clone();
    hx.sort();
    wx.sort();
    if hx != wx {
        let names = |v: &[(Vec<u8>, Vec<u8>)]| {
            v.iter()
                .map(|(n, v)| format!("{}({})", String::from_utf8_lossy(n), v.len()))
                .collect::<Vec<_>>()
                .join(",")
        };
        d.push(format!("xattrs [{}] != [{}]", names(&hx), names(&wx)));
    }
    if let Some(wf) = want.meta.flags {
        if f.flags & USER_FLAGS != wf & USER_FLAGS {
            d.push(format!("flags 0x{:x} != 0x{wf:x}", f.flags));
        }
    }
    if want.kind == Kind::File && have.size != want.size {
        d.push(format!("size {} != {}", have.size, want.size));
    }
    if matches!(want.kind, Kind::CharDevice | Kind::BlockDevice) && have.rdev != want.rdev {
        d.push(format!("device {:?} != {:?}", have.rdev, want.rdev));
    }
    if have.link_target != want.link_target {
        d.push("symlink target differs".to_string());
    }
    d
}

/// The first problems found, and how many there were.
#[derive(Default)]
struct Problems {
    first: Vec<String>,
    total: usize,
}

impl Problems {
    fn push(&mut self, p: String) {
        self.total += 1;
        if self.first.len() < MAX_REPORTED {
            self.first.push(p);
        }
    }
}

/// Compare the image with `intended` (the records the populate step was given, with the
/// length and hash of each file's content as it was read then); `Ok` when identical.
///
/// Metadata is compared against what was recorded rather than a second walk of the tree
/// because reading a host directory's files changes their atimes when `O_NOATIME` is
/// refused (a file the caller does not own): the record is what was asked for and what
/// was written. Contents are compared by length and 128-bit XXH3 hash, so the source is
/// read once. A `lost+found` the tree does not have is allowed (mke2fs and e2fsck always
/// make one).
///
/// One merge-join pass: memory grows with the depth of the tree and with the number of
/// hard-linked inodes (each group's inode, each inode's link count and names), not with
/// the number of entries.
pub fn verify(intended: &Intended, image: &Path) -> Result<()> {
    let tree = ExtTree::new(ExtFs::open(RawFile::open(image)?)?);
    let mut problems = Problems::default();
    let mut extra = 0usize;
    let mut extra_names: Vec<String> = Vec::new();
    let mut links: HashMap<u64, u32> = HashMap::new();
    let mut link_names: HashMap<u32, (u16, u16)> = HashMap::new();
    let mut want = intended.reader()?;
    let missing = |p: &[u8], problems: &mut Problems| {
        problems.push(format!("{:?}: missing", String::from_utf8_lossy(p)));
    };
    tree.walk_inodes(b"", &mut |e, ino| {
        while let Some(w) = want.peek()? {
            if path_cmp(&w.entry.path, &e.path) != Ordering::Less {
                break;
            }
            missing(&w.entry.path, &mut problems);
            want.next_record()?;
        }
        let rec = match want.peek()? {
            Some(w) if w.entry.path == e.path => want.next_record()?,
            _ => None,
        };
        let Some(rec) = rec else {
            if e.path != b"lost+found" {
                extra += 1;
                if extra_names.len() < MAX_REPORTED {
                    extra_names.push(format!("{:?}", String::from_utf8_lossy(&e.path)));
                }
            }
            return Ok(());
        };
        let want = &rec.entry;
        let show = String::from_utf8_lossy(&want.path).into_owned();
        let f = Found::new(e, &tree.fs().inode(ino)?);
        let mut d = differences(want, &f);
        if want.kind != Kind::Dir {
            match want.hardlink_id {
                Some(id) => {
                    if *links.entry(id).or_insert(f.ino) != f.ino {
                        d.push("hard link group split".to_string());
                    }
                    link_names.entry(f.ino).or_insert((f.nlink, 0)).1 += 1;
                }
                None if f.nlink != 1 => d.push(format!("link count {} != 1", f.nlink)),
                None => {}
            }
        }
        if let (Kind::File, Some(sum), true) = (want.kind, rec.content, d.is_empty()) {
            let mut r = tree.fs().open_file(ino)?;
            let got = sum_reader(&mut r)
                .map_err(|err| Error::io(format!("reading {show:?} from the image"), err))?;
            if got.len != sum.len {
                d.push(format!(
                    "content differs: {} bytes were written, {} read back",
                    sum.len, got.len
                ));
            } else if got.hash != sum.hash {
                d.push(format!(
                    "content differs: {} bytes with XXH3-128 {:032x} were written, {:032x} read back",
                    sum.len, sum.hash, got.hash
                ));
            }
        }
        for x in d {
            problems.push(format!("{show:?}: {x}"));
        }
        Ok(())
    })?;
    while let Some(w) = want.next_record()? {
        missing(&w.entry.path, &mut problems);
    }
    let mut counts: Vec<_> = link_names.into_iter().collect();
    counts.sort_unstable();
    for (ino, (nlink, n)) in counts {
        if nlink != n {
            problems.push(format!(
                "inode {ino}: link count {nlink} but the tree has {n} names"
            ));
        }
    }
    if extra > 0 {
        problems.push(format!(
            "{extra} entries in the filesystem are not in the tree ({})",
            extra_names.join(", ")
        ));
    }
    if problems.total == 0 {
        return Ok(());
    }
    Err(Error::VerifyFailed(format!(
        "the written filesystem differs from the tree in {} place(s): {}",
        problems.total,
        problems.first.join("; ")
    )))
}

/// `e2fsck -fn` as the `why` ("final check of the new filesystem"): the filesystem must
/// be clean ([`Error::VerifyFailed`] when e2fsck finds fault with it).
pub fn fsck_clean(tools: &E2fsprogs, image: &Path, why: &str) -> Result<()> {
    let mut c = tools.command(&tools.e2fsck);
    c.arg("-fn").arg(image);
    tools::run(&mut c, &format!("e2fsck -fn ({why})"), &[0]).map_err(|e| match e {
        ToolError::Failed { .. } => Error::VerifyFailed(e.to_string()),
        e => e.into(),
    })?;
    Ok(())
}

/// The final checks of a written filesystem, in order: it holds `intended` ([`verify`]),
/// `e2fsck -fn` finds it clean ([`fsck_clean`]); then the ways its identity differs from
/// `want` (empty when it has it), for the caller to judge.
pub fn final_checks(
    intended: Intended,
    tools: &E2fsprogs,
    image: &Path,
    want: &super::Identity,
) -> Result<Vec<String>> {
    verify(&intended, image)?;
    drop(intended);
    fsck_clean(tools, image, "final check of the new filesystem")?;
    let got = super::Identity::like(&ExtFs::open(RawFile::open(image)?)?)?;
    Ok(want.differences(&got))
}
