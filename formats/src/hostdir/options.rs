//! What an extraction restores ([`ExtractOptions`]) and what it could not ([`ExtractSummary`]).

use super::sys::{effective_ids, show};

/// What [`extract`](super::extract) restores besides names, kinds and contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Change owners to the entries' uid/gid (default: true iff the effective uid is 0).
    pub owners: bool,
    /// Create character and block device nodes (default: true iff root). Fifos and
    /// sockets (as `S_IFSOCK` nodes) are always attempted.
    pub devices: bool,
    /// Set extended attributes and ACLs (default true). As non-root the privileged
    /// namespaces (`trusted.*`, `security.*`) are skipped and counted.
    pub xattrs: bool,
    /// Set access and modification times with nanoseconds (default true); directories get
    /// theirs after their children are written.
    pub times: bool,
    /// Replace an existing non-directory at a target path (default false: an error).
    /// Existing directories are always merged into.
    pub overwrite: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        let root = effective_ids().0 == 0;
        ExtractOptions {
            owners: root,
            devices: root,
            xattrs: true,
            times: true,
            overwrite: false,
        }
    }
}

/// What an extraction did and what it had to leave out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractSummary {
    /// Entries created (directories, files, links, nodes), the root included.
    pub entries: u64,
    /// File data bytes written (holes excluded).
    pub bytes: u64,
    /// Entries whose owner could not be (or was not asked to be) restored.
    pub skipped_owners: u64,
    /// Device nodes not created.
    pub skipped_devices: u64,
    /// Extended attributes not set (privileged ones as non-root, unsupported ones).
    pub skipped_xattrs: u64,
    /// Anything else left out: sockets that could not be created, modes or times that
    /// could not be set.
    pub skipped_other: u64,
    /// The first (up to 10) messages about what was left out, with the entry's path
    /// (everything but ownerships, which as non-root are nearly every entry).
    pub first_problems: Vec<String>,
    /// Records not yet handed to the caller's report sink (drained after every entry, so
    /// memory stays bounded however much is left out); empty in a returned summary.
    pub pending: Vec<Skipped>,
}

/// What kind of thing an extraction left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipKind {
    Owner,
    Device,
    Xattr,
    Socket,
    Mode,
    Times,
}

impl SkipKind {
    /// The word used in reports: `owner device xattr socket mode times`.
    pub fn word(self) -> &'static str {
        match self {
            SkipKind::Owner => "owner",
            SkipKind::Device => "device",
            SkipKind::Xattr => "xattr",
            SkipKind::Socket => "socket",
            SkipKind::Mode => "mode",
            SkipKind::Times => "times",
        }
    }
}

/// One thing an extraction left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The entry's path relative to the destination (empty: the destination itself).
    pub path: Vec<u8>,
    pub kind: SkipKind,
    /// The attribute's full name, for [`SkipKind::Xattr`].
    pub xattr: Option<Vec<u8>>,
    /// Why: the error, or that the operation needs root.
    pub reason: String,
}

/// How many messages [`ExtractSummary::first_problems`] keeps.
pub(crate) const MAX_PROBLEMS: usize = 10;

impl ExtractSummary {
    /// True when nothing was left out.
    pub fn is_clean(&self) -> bool {
        self.skipped_owners == 0
            && self.skipped_devices == 0
            && self.skipped_xattrs == 0
            && self.skipped_other == 0
    }

    /// One line saying what was left out, e.g. "not done as non-root: 12 ownerships, 3
    /// device nodes, 2 xattrs (run as root to keep them)"; `None` when clean.
    pub fn one_line(&self) -> Option<String> {
        if self.is_clean() {
            return None;
        }
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut parts = Vec::new();
        if self.skipped_owners > 0 {
            parts.push(plural(self.skipped_owners, "ownership", "ownerships"));
        }
        if self.skipped_devices > 0 {
            parts.push(plural(self.skipped_devices, "device node", "device nodes"));
        }
        if self.skipped_xattrs > 0 {
            parts.push(plural(self.skipped_xattrs, "xattr", "xattrs"));
        }
        if self.skipped_other > 0 {
            parts.push(plural(
                self.skipped_other,
                "other item (socket, mode or time)",
                "other items (sockets, modes or times)",
            ));
        }
        Some(if effective_ids().0 == 0 {
            format!("not restored: {}", parts.join(", "))
        } else {
            format!(
                "not done as non-root: {} (run as root to keep them)",
                parts.join(", ")
            )
        })
    }

    /// Record that `kind` (the xattr `xattr`) of the entry at `path` was left out because
    /// of `reason`: counted, the first few kept as messages (not ownerships), and queued
    /// for the caller's report.
    pub(crate) fn skip(
        &mut self,
        path: &[u8],
        kind: SkipKind,
        xattr: Option<&[u8]>,
        reason: String,
    ) {
        match kind {
            SkipKind::Owner => self.skipped_owners += 1,
            SkipKind::Device => self.skipped_devices += 1,
            SkipKind::Xattr => self.skipped_xattrs += 1,
            SkipKind::Socket | SkipKind::Mode | SkipKind::Times => self.skipped_other += 1,
        }
        if kind != SkipKind::Owner && self.first_problems.len() < MAX_PROBLEMS {
            let what = match xattr {
                Some(n) => format!("xattr {}", show(n)),
                None => kind.word().to_string(),
            };
            self.first_problems
                .push(format!("{}: {what} not restored: {reason}", show(path)));
        }
        self.pending.push(Skipped {
            path: path.to_vec(),
            kind,
            xattr: xattr.map(<[u8]>::to_vec),
            reason,
        });
    }
}
