//! Applying an entry's metadata to something just created: owner, xattrs, mode, times —
//! in that order, because `chown` clears suid/sgid and `security.capability`, and setting
//! an ACL rewrites the group bits of the mode. Failures are counted, not fatal.

use super::options::{ExtractOptions, ExtractSummary, SkipKind};
use super::sys::{privileged_xattr, proc_path};
use crate::tree::{Entry, Kind, Timestamp};
use rustix::fd::BorrowedFd;
use rustix::fs::{
    chmodat, chownat, fchmod, fchown, fsetxattr, futimens, lsetxattr, utimensat, AtFlags, Gid,
    Mode, Timespec, Timestamps, Uid, XattrFlags,
};

/// What to apply metadata to.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    /// An open file or directory (not `O_PATH`).
    Fd(BorrowedFd<'a>),
    /// The entry `name` inside the open directory `dir`, never followed if a symlink.
    At(BorrowedFd<'a>, &'a [u8]),
}

/// The process' identity and what to restore.
pub(crate) struct Applier<'o> {
    pub opts: &'o ExtractOptions,
    pub euid: u32,
    pub egid: u32,
}

fn timespec(t: Timestamp) -> Timespec {
    Timespec {
        tv_sec: t.sec,
        tv_nsec: t.nsec.into(),
    }
}

impl Applier<'_> {
    /// Apply owner, xattrs, mode (not for symlinks) and times of `e` to `target`;
    /// `rel` is the entry's path for messages.
    pub fn apply(&self, target: Target<'_>, e: &Entry, rel: &[u8], sum: &mut ExtractSummary) {
        self.owner(target, e, rel, sum);
        self.xattrs(target, e, rel, sum);
        if e.kind != Kind::Symlink {
            let mode = Mode::from_bits_retain(e.meta.perm & 0o7777);
            let r = match target {
                Target::Fd(fd) => fchmod(fd, mode),
                // The node was created by us an instant ago in a directory opened without
                // following symlinks; Linux cannot chmod a name without following it.
                Target::At(dir, name) => chmodat(dir, name, mode, AtFlags::empty()),
            };
            if let Err(err) = r {
                sum.skip(
                    rel,
                    SkipKind::Mode,
                    None,
                    format!("mode {:o} not set: {err}", e.meta.perm),
                );
            }
        }
        if self.opts.times {
            let ts = Timestamps {
                last_access: timespec(e.meta.atime),
                last_modification: timespec(e.meta.mtime),
            };
            let r = match target {
                Target::Fd(fd) => futimens(fd, &ts),
                Target::At(dir, name) => utimensat(dir, name, &ts, AtFlags::SYMLINK_NOFOLLOW),
            };
            if let Err(err) = r {
                sum.skip(rel, SkipKind::Times, None, err.to_string());
            }
        }
    }

    fn owner(&self, target: Target<'_>, e: &Entry, rel: &[u8], sum: &mut ExtractSummary) {
        let (uid, gid) = (e.meta.uid, e.meta.gid);
        if !self.opts.owners {
            if (uid, gid) != (self.euid, self.egid) {
                sum.skip(
                    rel,
                    SkipKind::Owner,
                    None,
                    format!("owner {uid}:{gid} needs root"),
                );
            }
            return;
        }
        let (u, g) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        let r = match target {
            Target::Fd(fd) => fchown(fd, u, g),
            Target::At(dir, name) => chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW),
        };
        if let Err(err) = r {
            sum.skip(
                rel,
                SkipKind::Owner,
                None,
                format!("owner {uid}:{gid} not set: {err}"),
            );
        }
    }

    fn xattrs(&self, target: Target<'_>, e: &Entry, rel: &[u8], sum: &mut ExtractSummary) {
        if !self.opts.xattrs {
            return;
        }
        let proc = match target {
            Target::At(dir, name) => Some(proc_path(dir, name)),
            Target::Fd(_) => None,
        };
        for (name, value) in &e.meta.xattrs {
            if self.euid != 0 && privileged_xattr(name) {
                let reason = "a privileged namespace; needs root".to_string();
                sum.skip(rel, SkipKind::Xattr, Some(name), reason);
                continue;
            }
            if name.is_empty() || name.contains(&0) {
                let reason = "an invalid name".to_string();
                sum.skip(rel, SkipKind::Xattr, Some(name), reason);
                continue;
            }
            let r = match (target, &proc) {
                (Target::Fd(fd), _) => fsetxattr(fd, name.as_slice(), value, XattrFlags::empty()),
                (Target::At(..), Some(p)) => {
                    lsetxattr(p.as_slice(), name.as_slice(), value, XattrFlags::empty())
                }
                (Target::At(..), None) => continue,
            };
            if let Err(err) = r {
                sum.skip(rel, SkipKind::Xattr, Some(name), err.to_string());
            }
        }
    }
}
