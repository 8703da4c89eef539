//! The installed system `customize` changes, opened read-only: every filesystem of the
//! disk ([`crate::ops::inspect`]'s slots), the one holding the Linux root, the subroot the
//! system lives in on a relayouted image (`r0`, or the one `--root` names), and what its
//! `/etc/fstab` mounts where. [`Installed::place`] says which filesystem an OS path lands
//! on ([`crate::ops::inspect::view::place`]); filesystems subroot does not write (xfs,
//! btrfs, swap...) are kept as mounts too, so a path below them is refused instead of
//! landing on the root filesystem underneath.

use crate::exit::InputError;
use crate::ops::inspect::{fstab_lines, open_slots, subroots_of, Slot};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subroot_formats::block::BlockDevice;
use subroot_formats::image::ImageFormat;

/// One filesystem of the disk, by index into [`Installed::slots`].
pub type FsIndex = usize;

/// The installed system of an image (see the module comment).
pub struct Installed {
    pub image: PathBuf,
    pub format: ImageFormat,
    pub disk: Arc<dyn BlockDevice>,
    pub slots: Vec<Slot>,
    /// The slot holding the root filesystem.
    pub root: FsIndex,
    /// The subroot the system lives in (`r0`), or empty.
    pub subroot: Vec<u8>,
    /// Top-level names of the physical root that stay outside the subroot.
    pub shared: Vec<Vec<u8>>,
    /// Mount points (OS paths without the leading `/`) from fstab, longest first.
    pub mounts: Vec<(Vec<u8>, FsIndex)>,
}

impl Installed {
    /// Open `image` and find its installed system; `root` (`--root rN`) picks the subroot
    /// of a relayouted image (default: `r0`, else the first).
    pub fn open(image: &Path, root: Option<&str>) -> Result<Installed> {
        let survey = crate::open::survey::ImageSurvey::open(image, None)?;
        survey.complete()?;
        let mut notes = Vec::new();
        let slots = open_slots(&survey, &mut notes)
            .with_context(|| format!("cannot read {}", image.display()))?;
        let (format, disk, table) = (survey.format, survey.disk, survey.table);
        let Some(ri) = slots.iter().position(|s| s.root.is_some()) else {
            return Err(InputError::UnsupportedFilesystem(format!(
                "{}: no filesystem holds a Linux root (an ext2/3/4 filesystem with \
                 /etc/os-release or /usr/lib/os-release, or the same under r0/)",
                image.display()
            ))
            .into());
        };
        let mounted = slots[ri]
            .mounted
            .as_ref()
            .context("internal: the root is not open")?;
        let top = mounted.tree.children(b"").unwrap_or_default();
        let subroots = subroots_of(mounted, &top);
        let relayouted = slots[ri].root == Some(crate::open::select::RootKind::Relayouted);
        let subroot = match root {
            Some(r) => {
                if !subroots.iter().any(|s| s == r.as_bytes()) {
                    bail!(
                        "--root {r}: {} has no such root (its roots: {})",
                        image.display(),
                        if subroots.is_empty() {
                            "none: it is not relayouted".to_string()
                        } else {
                            subroots
                                .iter()
                                .map(|s| String::from_utf8_lossy(s).into_owned())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    );
                }
                r.as_bytes().to_vec()
            }
            None if relayouted => subroots
                .iter()
                .find(|s| s.as_slice() == b"r0")
                .or(subroots.first())
                .cloned()
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let shared: Vec<Vec<u8>> = top
            .iter()
            .map(|e| e.path.clone())
            .filter(|p| !subroots.contains(p))
            .collect();
        let mut sys = Installed {
            image: image.to_path_buf(),
            format,
            disk,
            slots,
            root: ri,
            subroot,
            shared,
            mounts: Vec::new(),
        };
        let fstab = crate::ops::inspect::view::View {
            root: mounted_of(&sys.slots[ri])?,
            subroot: sys.subroot.clone(),
            shared: sys.shared.clone(),
            mounts: Vec::new(),
        }
        .text("etc/fstab")
        .unwrap_or_default();
        let mut mounts = Vec::new();
        for l in fstab_lines(&fstab, table.as_ref(), &sys.slots) {
            let at = l.mountpoint.trim_matches('/').as_bytes().to_vec();
            if at.is_empty() || l.fs_type == "swap" || !l.mountpoint.starts_with('/') {
                continue;
            }
            let Some(i) = l.slot else {
                continue;
            };
            if i != ri {
                mounts.push((at, i));
            }
        }
        mounts.sort_by_key(|(at, _)| std::cmp::Reverse(at.len()));
        sys.mounts = mounts;
        Ok(sys)
    }

    /// The filesystem OS path `path` (no leading `/`) lands on, and the path inside it.
    pub fn place(&self, path: &[u8]) -> (FsIndex, Vec<u8>) {
        crate::ops::inspect::view::place(&self.mounts, self.root, &self.subroot, &self.shared, path)
    }

    /// "partition 2 (ext4)", "the whole disk (ext4)", for messages and the plan.
    pub fn describe(&self, fs: FsIndex) -> String {
        let s = &self.slots[fs];
        let kind = self.kind(fs).unwrap_or("no filesystem subroot recognises");
        match &s.part {
            Some(p) => format!("partition {} ({kind})", p.number),
            None => format!("the whole disk ({kind})"),
        }
    }

    /// The filesystem type sniffed on slot `fs` (`ext4`, `vfat`, `xfs`...).
    pub fn kind(&self, fs: FsIndex) -> Option<&str> {
        self.slots[fs].fs.as_ref().map(|f| f.kind.as_str())
    }

    /// The partition number of slot `fs` (`None`: the whole disk).
    pub fn partition(&self, fs: FsIndex) -> Option<u32> {
        self.slots[fs].part.as_ref().map(|p| p.number)
    }

    /// The byte range of slot `fs` on the disk.
    pub fn range(&self, fs: FsIndex) -> (u64, u64) {
        match &self.slots[fs].part {
            Some(p) => (p.start, p.size),
            None => (0, self.disk.len()),
        }
    }
}

fn mounted_of(s: &Slot) -> Result<&crate::ops::inspect::view::Mounted> {
    s.mounted
        .as_ref()
        .context("internal: the root filesystem is not open")
}
