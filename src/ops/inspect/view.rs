//! The installed system as it would see itself mounted: paths resolve through its
//! `/etc/fstab` onto the right filesystem (a separate `/boot`, the ESP at `/boot/efi`,
//! `/home`, `/var`), and into the subroot (`r0/`) on a relayouted image, where only the
//! shared directories (those left at the top: `/boot`, `/var`, `/home`) stay outside it.

use crate::open::fstree::FsTree;
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, RawFile};
use subroot_formats::ext::{ExtFileDevice, ExtFs, OpenOptions};
use subroot_formats::resolve::{resolve, Last};
use subroot_formats::tree::{Entry, Kind};

/// Files larger than this are not read as text (the largest real one, a dpkg status
/// file, is a few MiB).
pub const MAX_TEXT: u64 = 64 << 20;

/// One filesystem of the disk, opened.
pub struct Mounted {
    /// The partition number (`None`: a volume, or the whole disk).
    pub partition: Option<u32>,
    /// The LVM2 logical volume, `VG/LV`.
    pub volume: Option<String>,
    pub tree: FsTree,
    /// The device, to open files as devices (initrds).
    pub device: Arc<dyn BlockDevice>,
}

/// The root filesystem and what is mounted on it.
pub struct View<'a> {
    pub root: &'a Mounted,
    /// The subroot the system lives in (`r0`), or empty.
    pub subroot: Vec<u8>,
    /// Top-level names of the physical root outside the subroot (shared directories).
    pub shared: Vec<Vec<u8>>,
    /// Mount points (tree paths, no leading `/`) and their filesystems, longest first.
    pub mounts: Vec<(Vec<u8>, &'a Mounted)>,
}

/// A file found through the view.
pub struct Found<'a> {
    pub fs: &'a Mounted,
    pub entry: Entry,
}

impl<'a> View<'a> {
    /// The filesystem and the path in it that OS path `path` (no leading `/`) lands on.
    pub fn place(&self, path: &[u8]) -> (&'a Mounted, Vec<u8>) {
        place(&self.mounts, self.root, &self.subroot, &self.shared, path)
    }

    /// The entry at OS path `path`, symlinks followed inside its filesystem.
    pub fn entry(&self, path: &str) -> Option<Found<'a>> {
        let (fs, p) = self.place(path.trim_start_matches('/').as_bytes());
        let entry = resolve(&p, Last::Follow, |q| fs.tree.entry(q)).ok()?;
        Some(Found { fs, entry })
    }

    /// The entries of directory `path` (empty when it is missing).
    pub fn children(&self, path: &str) -> Vec<Found<'a>> {
        let Some(dir) = self.entry(path).filter(|f| f.entry.kind == Kind::Dir) else {
            return Vec::new();
        };
        dir.fs
            .tree
            .children(&dir.entry.path)
            .unwrap_or_default()
            .into_iter()
            .map(|entry| Found { fs: dir.fs, entry })
            .collect()
    }

    /// The text of regular file `path`, `None` when it is missing, not a regular file,
    /// larger than [`MAX_TEXT`] or unreadable; invalid UTF-8 is replaced.
    pub fn text(&self, path: &str) -> Option<String> {
        self.entry(path)?.text()
    }
}

/// Where OS path `path` (no leading `/`) lands: the filesystem mounted there (`mounts`:
/// mount points as tree paths, longest first) or `root`, and the path inside it — under
/// `subroot` unless its first component is one of the `shared` directories.
pub fn place<T: Copy>(
    mounts: &[(Vec<u8>, T)],
    root: T,
    subroot: &[u8],
    shared: &[Vec<u8>],
    path: &[u8],
) -> (T, Vec<u8>) {
    for (at, fs) in mounts {
        if path == at.as_slice() {
            return (*fs, Vec::new());
        }
        if path.starts_with(at) && path.get(at.len()) == Some(&b'/') {
            return (*fs, path[at.len() + 1..].to_vec());
        }
    }
    let first = path.split(|&b| b == b'/').next().unwrap_or_default();
    if subroot.is_empty() || shared.iter().any(|s| s == first) {
        return (root, path.to_vec());
    }
    let mut p = subroot.to_vec();
    if !path.is_empty() {
        p.push(b'/');
        p.extend_from_slice(path);
    }
    (root, p)
}

impl Found<'_> {
    /// The file's text (see [`View::text`]).
    pub fn text(&self) -> Option<String> {
        if self.entry.kind != Kind::File || self.entry.size > MAX_TEXT {
            return None;
        }
        let mut buf = Vec::with_capacity(self.entry.size as usize);
        self.fs.tree.copy_file(&self.entry.path, &mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf).into_owned())
    }

    /// The file as a device: read in place on ext; on other filesystems (FAT: a `/boot`
    /// on the ESP, as systemd-boot layouts have) copied into an unnamed temporary file
    /// first through the reader. `None` when it cannot be read.
    pub fn device(&self) -> Option<Arc<dyn BlockDevice>> {
        match &self.fs.tree {
            FsTree::Ext(_) => {
                let fs =
                    ExtFs::open_with(self.fs.device.clone(), OpenOptions { force: true }).ok()?;
                let mut abs = b"/".to_vec();
                abs.extend_from_slice(&self.entry.path);
                Some(Arc::new(ExtFileDevice::open_path(Arc::new(fs), &abs).ok()?))
            }
            tree => {
                let mut file = tempfile::tempfile().ok()?;
                tree.copy_file(&self.entry.path, &mut file).ok()?;
                let raw = RawFile::from_file(file, std::path::Path::new("(temporary copy)"), false)
                    .ok()?;
                Some(Arc::new(raw))
            }
        }
    }

    /// `/PATH` in its filesystem, for the report.
    pub fn shown(&self) -> String {
        crate::open::fstree::shown(&self.entry.path)
    }
}
