//! Helpers of the editor's tests: images made by mke2fs, opening them for editing, the
//! judges (e2fsck -fn, our after-edit check) and manifest bookkeeping.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, RawFile};
use subroot_libext2fs::{check, CloseStats, Ext2Fs};
use subroot_test_support::{s, EntryManifest};

/// The flavours every operation is tried on: name and mke2fs options.
pub const FLAVOURS: &[(&str, &str)] = &[
    ("ext2-1k", "-t ext2 -b 1024 -I 256"),
    ("ext3-2k", "-t ext3 -b 2048"),
    ("ext4", "-t ext4"),
    (
        "ext4-orphan-seed",
        "-t ext4 -O orphan_file,metadata_csum_seed",
    ),
    ("ext4-nocsum", "-t ext4 -O ^metadata_csum"),
    ("bigalloc", "-t ext4 -O bigalloc -C 16384"),
    ("ext4-1k", "-t ext4 -b 1024"),
];

/// Run bash with `set -euo pipefail` and the sbin directories on PATH.
pub fn bash(script: &str) -> String {
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .env("PATH", "/usr/sbin:/sbin:/usr/bin:/bin")
        .output()
        .expect("running bash");
    assert!(
        out.status.success(),
        "script failed:\n{script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// mke2fs `opts` of `size` at `img`, filled from `seed` when given.
pub fn mkfs(img: &Path, opts: &str, size: &str, seed: Option<&Path>) {
    let d = seed.map_or(String::new(), |p| format!("-d {}", s(p)));
    bash(&format!("mke2fs -q -F {opts} {d} {} {size}", s(img)));
}

/// Open the image file for editing.
pub fn open(img: &Path) -> (Arc<dyn BlockDevice>, Ext2Fs) {
    let dev: Arc<dyn BlockDevice> = Arc::new(RawFile::open_rw(img).unwrap());
    let fs = Ext2Fs::open(dev.clone(), s(img)).unwrap();
    (dev, fs)
}

/// Close, run our after-edit check and `e2fsck -fn`; both must be clean.
pub fn close_and_judge(fs: Ext2Fs, dev: Arc<dyn BlockDevice>, img: &Path) -> CloseStats {
    let stats = fs.close().unwrap();
    let report = check(dev, &stats.touched_dirs).unwrap_or_else(|e| panic!("{}: {e}", s(img)));
    assert!(
        report.dirs > 0 || stats.touched_dirs.is_empty(),
        "the check read none of {:?}",
        stats.touched_dirs
    );
    e2fsck_clean(img);
    stats
}

/// `e2fsck -fn` must find nothing.
pub fn e2fsck_clean(img: &Path) {
    let out = std::process::Command::new("e2fsck")
        .args(["-fn", s(img)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "e2fsck -fn {} is not clean:\n{}{}",
        s(img),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sort a manifest's entries in walk order (component by component).
pub fn sort(m: &mut EntryManifest) {
    m.0.sort_by(|a, b| {
        a.0.path
            .split(|&c| c == b'/')
            .cmp(b.0.path.split(|&c| c == b'/'))
    });
    for g in &mut m.1 {
        g.sort();
    }
    m.1.retain(|g| g.len() > 1);
    m.1.sort();
}

/// The entry at `path` of a manifest.
pub fn entry<'a>(
    m: &'a mut EntryManifest,
    path: &[u8],
) -> &'a mut (subroot_formats::tree::Entry, Vec<u8>) {
    m.0.iter_mut()
        .find(|(e, _)| e.path == path)
        .unwrap_or_else(|| panic!("no {:?}", String::from_utf8_lossy(path)))
}

/// An entry to create: `path`, `kind`, `meta`; no size, device number, target or link.
pub fn new_entry(
    path: &str,
    kind: subroot_formats::tree::Kind,
    meta: subroot_formats::tree::Metadata,
) -> subroot_formats::tree::Entry {
    subroot_formats::tree::Entry {
        path: path.as_bytes().to_vec(),
        kind,
        meta,
        size: 0,
        rdev: (0, 0),
        link_target: None,
        hardlink_id: None,
    }
}
