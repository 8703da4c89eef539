//! Small system helpers shared by the extractor and the host-directory reader: errno
//! conversion, `/proc/self/fd` paths, effective ids, xattr namespaces, directory opening.

use crate::Error;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{openat, Mode, OFlags};
use rustix::io::Errno;

/// Wrap an errno with what was being done.
pub(crate) fn errno(context: impl Into<String>, e: Errno) -> Error {
    Error::io(context, std::io::Error::from(e))
}

/// A path for messages: printable ASCII as is, everything else escaped.
pub(crate) fn show(path: &[u8]) -> String {
    if path.is_empty() {
        ".".to_string()
    } else {
        path.escape_ascii().to_string()
    }
}

/// `/proc/self/fd/<dir>/<name>`: a path naming `name` inside the open directory `dir`
/// whose last component is not followed by the `l*xattr` calls (the magic link to the
/// directory is, which is the point). Used for entries that cannot be opened as a file
/// descriptor usable with `f*xattr` (symlinks, devices, fifos, sockets).
pub(crate) fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> Vec<u8> {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    p
}

/// True for xattr namespaces only a privileged process may write (`trusted.*`,
/// `security.*`).
pub(crate) fn privileged_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.") || name.starts_with(b"security.")
}

/// The effective uid and gid of this process, from `/proc/self/status` (the crate's rustix
/// build has no `process` feature). When that cannot be read, assume an unprivileged user.
pub(crate) fn effective_ids() -> (u32, u32) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| -> Option<u32> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].split_whitespace().nth(1)?.parse().ok()
    };
    (
        field("Uid:").unwrap_or(u32::MAX - 1),
        field("Gid:").unwrap_or(u32::MAX - 1),
    )
}

/// Open the directory `name` inside `dir` without following a symlink at `name`.
pub(crate) fn open_dir(dir: impl AsFd, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}
