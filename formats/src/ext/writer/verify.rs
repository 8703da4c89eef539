//! Verify: the written filesystem holds exactly the intended tree — every entry's kind,
//! permissions, owner, times (to the precision the inode can store), xattrs, user flags,
//! device numbers, link targets, hard-link grouping and file contents byte for byte — and
//! `e2fsck -fn` finds nothing to fix.

use super::reconcile::{read_built, same_time, Found, USER_FLAGS};
use super::staging::relative;
use crate::block::RawFile;
use crate::ext::ExtFs;
use crate::tools::{self, E2fsprogs};
use crate::tree::{Entry, Kind, TreeSource};
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

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

/// Compare the image with `intended` (the metadata snapshot taken while staging, paths
/// relative to `root`) and, walking the tree again, with its contents; `Ok` when identical.
///
/// Metadata is compared against the snapshot rather than the second walk because reading
/// a host directory's files changes their atimes when `O_NOATIME` is refused (a file
/// the caller does not own): the snapshot is what was asked for and what was written.
/// A `lost+found` the tree does not have is allowed (mke2fs and e2fsck always make one).
pub fn verify_tree(
    tree: &dyn TreeSource,
    root: &[u8],
    intended: &[Entry],
    image: &Path,
) -> Result<()> {
    let snapshot: HashMap<&[u8], &Entry> =
        intended.iter().map(|e| (e.path.as_slice(), e)).collect();
    let built = read_built(image)?;
    let fs = ExtFs::open(RawFile::open(image)?)?;
    let mut problems: Vec<String> = Vec::new();
    let mut seen = 0usize;
    let mut links: HashMap<u64, u32> = HashMap::new();
    let mut link_names: HashMap<u32, u16> = HashMap::new();
    let mut buf_a = vec![0u8; 1 << 16];
    let mut buf_b = vec![0u8; 1 << 16];
    tree.walk(root, &mut |e, content| {
        let path = relative(&e.path, root);
        let show = String::from_utf8_lossy(path).into_owned();
        let Some(f) = built.get(path) else {
            problems.push(format!("{show:?}: missing"));
            return Ok(());
        };
        seen += 1;
        let e = snapshot.get(path).copied().unwrap_or(e);
        let mut d = differences(e, f);
        if e.kind != Kind::Dir {
            match e.hardlink_id {
                Some(id) => {
                    if *links.entry(id).or_insert(f.ino) != f.ino {
                        d.push("hard link group split".to_string());
                    }
                    *link_names.entry(f.ino).or_insert(0) += 1;
                }
                None if f.nlink != 1 => d.push(format!("link count {} != 1", f.nlink)),
                None => {}
            }
        }
        if let (Kind::File, Some(c), true) = (e.kind, content, d.is_empty()) {
            let r = fs.open_file(f.ino)?;
            let mut pos = 0u64;
            loop {
                let mut n = 0;
                while n < buf_a.len() {
                    let k = c
                        .read(&mut buf_a[n..])
                        .map_err(|err| Error::io(format!("reading {show:?} from the tree"), err))?;
                    if k == 0 {
                        break;
                    }
                    n += k;
                }
                let m = r.read_at(&mut buf_b[..n], pos)?;
                if m != n || buf_a[..n] != buf_b[..n] {
                    d.push(format!("content differs near byte {pos}"));
                    break;
                }
                pos += n as u64;
                if n < buf_a.len() {
                    break;
                }
            }
        }
        for x in d {
            problems.push(format!("{show:?}: {x}"));
        }
        Ok(())
    })?;
    for (ino, n) in &link_names {
        let f = built.values().find(|f| f.ino == *ino);
        if let Some(f) = f {
            if f.nlink != *n {
                problems.push(format!(
                    "inode {ino}: link count {} but the tree has {n} names",
                    f.nlink
                ));
            }
        }
    }
    let extra: Vec<_> = built
        .keys()
        .filter(|p| p.as_slice() != b"lost+found")
        .count()
        .checked_sub(seen)
        .into_iter()
        .filter(|&n| n > 0)
        .collect();
    if let Some(n) = extra.first() {
        problems.push(format!("{n} entries in the filesystem are not in the tree"));
    }
    if problems.is_empty() {
        return Ok(());
    }
    let total = problems.len();
    problems.truncate(MAX_REPORTED);
    Err(Error::corrupt(format!(
        "the written filesystem differs from the tree in {total} place(s): {}",
        problems.join("; ")
    )))
}

/// `e2fsck -fn`: the filesystem must be clean.
pub fn fsck_clean(tools: &E2fsprogs, image: &Path) -> Result<()> {
    let mut c = tools::command(&tools.e2fsck);
    c.arg("-fn").arg(image);
    tools::run(
        &mut c,
        "e2fsck -fn (final check of the new filesystem)",
        &[0],
    )?;
    Ok(())
}
