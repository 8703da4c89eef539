//! Reconcile: read the freshly populated filesystem back, compare it with the intended
//! tree entry by entry, and fix every difference with one debugfs script — owners, modes,
//! nanosecond times (with epoch bits), xattrs, inode flags, device nodes — plus the
//! identity fields mke2fs has no option for.

use super::debugfs::{quote, value_file, Script};
use super::Identity;
use crate::block::RawFile;
use crate::ext::{ExtFs, ExtTree, Inode};
use crate::tools::E2fsprogs;
use crate::tree::{Entry, Kind, Timestamp};
use crate::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Inode flags a user may set (the kernel's `EXT4_FL_USER_MODIFIABLE` without
/// `EXTENTS_FL`): the ones compared and carried over; storage flags are the writer's.
pub const USER_FLAGS: u32 = 0x6043_C0FF;
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
    fn new(entry: &Entry, inode: &Inode) -> Self {
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

/// Every entry of the image at `image`, by path.
pub fn read_built(image: &Path) -> Result<HashMap<Vec<u8>, Found>> {
    let tree = ExtTree::new(ExtFs::open(RawFile::open(image)?)?);
    let mut map = HashMap::new();
    tree.walk_inodes(b"", &mut |e, ino| {
        let inode = tree.fs().inode(ino)?;
        map.insert(e.path.clone(), Found::new(e, &inode));
        Ok(())
    })?;
    Ok(map)
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
pub fn reconcile(
    tools: &E2fsprogs,
    image: &Path,
    intended: &[Entry],
    identity: &Identity,
    workdir: &Path,
) -> Result<ReconcileStats> {
    let found = read_built(image)?;
    let mut s = Script::default();
    let mut stats = ReconcileStats::default();
    for c in identity.ssv_commands() {
        s.cmd(c);
    }
    let mut done: HashSet<u32> = HashSet::new();
    // Hard-link groups: the inode each id was built as, and the names each inode has.
    let mut group: HashMap<u64, u32> = HashMap::new();
    let mut names: HashMap<u32, u16> = HashMap::new();
    let mut nvalue = 0usize;
    let valdir = workdir.join("xattr-values");
    std::fs::create_dir_all(&valdir)
        .map_err(|e| Error::io(format!("cannot create {}", valdir.display()), e))?;
    for want in intended {
        let show = || String::from_utf8_lossy(&want.path).into_owned();
        let linked_to = want
            .hardlink_id
            .filter(|_| want.kind != Kind::Dir)
            .and_then(|id| group.get(&id).copied());
        let Some(f) = found.get(&want.path) else {
            // A later name of a hard-link group the populate step left out (tar input
            // makes a separate inode for each name of a device, so only the first goes
            // in): link it to the group's inode.
            let (Some(gino), Some(parent)) = (linked_to, found.get(want.parent())) else {
                return Err(Error::corrupt(format!(
                    "mke2fs -d did not create {:?}",
                    show()
                )));
            };
            s.cmd(format!("cd <{}>", parent.ino));
            let mut l = format!("ln <{gino}> ").into_bytes();
            l.extend(quote(want.name())?);
            s.raw(&l);
            *names.entry(gino).or_insert(0) += 1;
            continue;
        };
        let ino = f.ino;
        if want.kind != Kind::Dir {
            if let Some(id) = want.hardlink_id {
                group.entry(id).or_insert(ino);
            }
            *names.entry(ino).or_insert(0) += 1;
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
            return Err(Error::corrupt(format!(
                "{:?}: mke2fs created a {:?}, expected a {:?}",
                show(),
                f.entry.kind,
                expected_kind
            )));
        }
        if device {
            // Re-link every name of the converted inode so the directory entries carry
            // the device's file type.
            let parent = found
                .get(want.parent())
                .ok_or_else(|| Error::corrupt(format!("no parent for {:?}", show())))?;
            s.cmd(format!("cd <{}>", parent.ino));
            let mut l = b"unlink ".to_vec();
            l.extend(quote(want.name())?);
            s.raw(&l);
            if done.contains(&ino) {
                let mut l = format!("ln <{ino}> ").into_bytes();
                l.extend(quote(want.name())?);
                s.raw(&l);
                continue;
            }
        } else if done.contains(&ino) {
            continue;
        }
        done.insert(ino);
        if device {
            stats.devices += 1;
            if f.flags & INLINE_DATA_FL != 0 {
                s.cmd(format!("ea_rm <{ino}> system.data"));
            }
            s.cmd(format!("sif <{ino}> mode 0{:o}", want.mode()));
            let flags = want.meta.flags.unwrap_or(0) & USER_FLAGS;
            s.cmd(format!("sif <{ino}> flags 0x{flags:x}"));
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
                s.cmd(format!("sif <{ino}> block[{field}] {v}"));
            }
            s.cmd(format!("sif <{ino}> size 0"));
            let mut l = format!("ln <{ino}> ").into_bytes();
            l.extend(quote(want.name())?);
            s.raw(&l);
        } else {
            if f.entry.meta.perm != want.meta.perm & 0o7777 {
                s.cmd(format!("sif <{ino}> mode 0{:o}", want.mode()));
            }
            if let Some(wf) = want.meta.flags {
                if f.flags & USER_FLAGS != wf & USER_FLAGS {
                    let v = (f.flags & !USER_FLAGS) | (wf & USER_FLAGS);
                    s.cmd(format!("sif <{ino}> flags 0x{v:x}"));
                }
            }
        }
        if f.entry.meta.uid != want.meta.uid {
            s.cmd(format!("sif <{ino}> uid {}", want.meta.uid));
        }
        if f.entry.meta.gid != want.meta.gid {
            s.cmd(format!("sif <{ino}> gid {}", want.meta.gid));
        }
        let have_x = sorted(&f.entry.meta.xattrs);
        let want_x = sorted(&want.meta.xattrs);
        if have_x != want_x {
            for (name, _) in &have_x {
                if !want_x.iter().any(|(n, _)| n == name) {
                    let mut l = format!("ea_rm <{ino}> ").into_bytes();
                    l.extend(quote(name)?);
                    s.raw(&l);
                }
            }
            for (name, value) in &want_x {
                if have_x.iter().any(|(n, v)| n == name && v == value) {
                    continue;
                }
                nvalue += 1;
                stats.xattrs_set += 1;
                let p = value_file(&valdir, &format!("v{nvalue}"), value)?;
                let mut l = b"ea_set -f ".to_vec();
                l.extend(quote(p.as_os_str().as_encoded_bytes())?);
                l.extend(format!(" <{ino}> ").into_bytes());
                l.extend(quote(name)?);
                s.raw(&l);
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
                set_time(&mut s, ino, field, wantt, extra)?;
            }
        }
        if let (Some(wc), true) = (want.meta.crtime, f.has_crtime()) {
            if f.entry.meta.crtime != Some(wc) {
                set_time(&mut s, ino, "crtime", wc, true)?;
            }
        }
        set_time(&mut s, ino, "ctime", want.meta.ctime, extra)?;
    }
    // Link counts: debugfs `ln`/`unlink` leave them alone.
    let nlinks: HashMap<u32, u16> = found.values().map(|f| (f.ino, f.nlink)).collect();
    let mut counts: Vec<(u32, u16)> = names.into_iter().collect();
    counts.sort_unstable();
    for (ino, n) in counts {
        if nlinks.get(&ino) != Some(&n) {
            s.cmd(format!("sif <{ino}> links_count {n}"));
        }
    }
    stats.commands = s.len();
    s.run(tools, image, workdir)?;
    let _ = std::fs::remove_dir_all(&valdir);
    Ok(stats)
}

fn set_time(s: &mut Script, ino: u32, field: &str, t: Timestamp, extra: bool) -> Result<()> {
    let (lo, ex) = encode_time(t, extra)?;
    s.cmd(format!("sif <{ino}> {field} @{lo}"));
    if let Some(x) = ex {
        s.cmd(format!("sif <{ino}> {field}_extra {x}"));
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
            assert_eq!(crate::ext::inode::decode_dev(b0, b1), (maj, min));
        }
    }
}
