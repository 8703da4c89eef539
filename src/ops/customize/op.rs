//! The operations of `subroot customize`, as plain values: what the command line (or a
//! `--commands-from-file` line) asks for, in the order given. File operations
//! ([`FileOp`]) are applied by the editor to whichever filesystem the path lands on; system
//! operations ([`SystemOp`]) are expanded, against the image with the earlier operations
//! of the run applied, into file operations (`system::Expander`).
//!
//! Paths are as the installed OS sees them: absolute, `/`-separated, resolved through its
//! `/etc/fstab` and into its subroot on a relayouted image.

use std::path::PathBuf;

/// One operation of a customize run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    File(FileOp),
    System(SystemOp),
}

/// Who owns a file: numbers, or names resolved through the image's own passwd and group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Id {
    Number(u32),
    Name(String),
}

/// A change to files (`--mkdir`, `--write`, ... in the order given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOp {
    /// `--mkdir DIR`: like `mkdir -p` (new directories 0755 root:root).
    Mkdir { path: String },
    /// `--write FILE:CONTENT`: create or replace a file's content (an existing file keeps
    /// its owner, mode and xattrs; a new one is 0644 root:root unless `mode` says).
    Write {
        path: String,
        content: Vec<u8>,
        mode: Option<u32>,
    },
    /// `--upload LOCAL:DEST`: a host file's content at DEST (into DEST if it is a directory).
    Upload { local: PathBuf, dest: String },
    /// `--copy-in LOCAL:DIR`: a host tree copied into DIR with its metadata.
    CopyIn { local: PathBuf, dir: String },
    /// `--tar-in ARCHIVE:DIR`: an archive (plain or compressed) merged into DIR, its
    /// metadata kept.
    TarIn { archive: PathBuf, dir: String },
    /// `--delete PATH`: recursive; a missing path is not an error.
    Delete { path: String },
    /// `--link TARGET:LINK`: a symbolic link.
    Symlink { target: String, link: String },
    /// `--hardlink EXISTING:LINK`.
    Hardlink { existing: String, link: String },
    /// `--chmod MODE:PATH` (octal permission bits, including setuid/setgid/sticky).
    Chmod { mode: u32, path: String },
    /// `--chown UID:GID:PATH`.
    Chown { user: Id, group: Id, path: String },
    /// `--touch PATH`: create empty if missing, else set its times to now (the run's clock).
    Touch { path: String },
    /// `--truncate FILE`: to zero length, keeping the inode and its metadata.
    Truncate { path: String },
    /// `--edit FILE:s/REGEX/REPLACEMENT/[g]`, applied per line.
    Edit {
        path: String,
        regex: String,
        replacement: String,
        global: bool,
    },
    /// `--append-line FILE:LINE`: appended unless the file already has that line (a missing
    /// final newline is added first; a missing file is created).
    AppendLine { path: String, line: String },
}

/// Where a password comes from (`--root-password`, `--password USER:...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// `password:PW`.
    Literal(String),
    /// `file:F`: the first line of a host file.
    File(PathBuf),
    /// `disabled`: the account is locked for password logins (`*`).
    Disabled,
}

/// Where an SSH public key comes from (`--ssh-inject USER[:file:KEY|:string:KEY]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// No source given: the invoking user's `~/.ssh/id_*.pub`, as virt-customize does.
    Default,
    File(PathBuf),
    String(String),
}

/// A change to the system, expanded into file operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemOp {
    /// `--hostname NAME`: `/etc/hostname` and the `127.0.1.1` line of `/etc/hosts`.
    Hostname(String),
    /// `--timezone TZ`: `/etc/localtime` → `/usr/share/zoneinfo/TZ`, `/etc/timezone`.
    Timezone(String),
    /// `--root-password ...` (user `root`) and `--password USER:...`.
    Password {
        user: String,
        source: PasswordSource,
    },
    /// `--ssh-inject USER[:file:KEY|:string:KEY]`.
    SshInject { user: String, key: KeySource },
    /// `--firstboot SCRIPT`: a host script run once at the next boot.
    Firstboot { script: PathBuf },
    /// `--firstboot-command CMD`.
    FirstbootCommand(String),
    /// `--sysprep [OPS]`: the named sysprep operations (empty: the default set).
    Sysprep(Vec<String>),
}

/// The installed system as planned so far, read-only: what system operations look at
/// when they are expanded (`/etc/passwd`, `/etc/shadow`, `/etc/hosts`, home directories,
/// globs of sysprep). Paths as in [`FileOp`].
pub trait Guest {
    /// The content of a regular file (symlinks followed as the OS would), or `None` if
    /// there is no such file.
    fn read(&self, path: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// The names in a directory (without `.` and `..`), or `None` if it is not one.
    fn list(&self, dir: &str) -> anyhow::Result<Option<Vec<String>>>;
    /// Whether anything (of any kind, a dangling symlink too) is at `path`.
    fn exists(&self, path: &str) -> anyhow::Result<bool>;
    /// What is at `path` itself (a final symlink not followed), or `None` if nothing is.
    fn kind(&self, path: &str) -> anyhow::Result<Option<EntryKind>>;
}

/// The kind of an entry of the installed system ([`Guest::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A device, fifo or socket.
    Other,
}
