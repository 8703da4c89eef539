//! Shared helpers for tests that use the reference tools (`qemu-img`, `sfdisk`, ...).
//!
//! A test that needs a tool calls [`need`] first. When the tool is missing the test fails
//! under `CI=true` (CI must have every judge), and elsewhere it is skipped *loudly*: a line
//! goes to stderr and to the file named by `SUBROOT_SKIP_LOG`, which the test script prints
//! as a summary at the end of the run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// True when `tool` is on PATH (or in /sbin, /usr/sbin). Records a skip otherwise.
pub fn need(tool: &str, test: &str) -> bool {
    if which(tool).is_some() {
        return true;
    }
    skip(test, &format!("reference tool `{tool}` is not installed"));
    false
}

/// The mke2fs that reads tar archives (`SUBROOT_TEST_MKE2FS_TAR`, set by
/// `scripts/test.sh` from `scripts/e2fsprogs-backports.sh`), or a recorded skip.
pub fn tar_mke2fs(test: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SUBROOT_TEST_MKE2FS_TAR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    skip(
        test,
        "SUBROOT_TEST_MKE2FS_TAR is not set (an mke2fs that reads tar: \
         bash scripts/e2fsprogs-backports.sh)",
    );
    None
}

/// Record that `test` is skipped because of `why`: a failure under `CI=true` (CI must
/// have every judge), else a line on stderr and in `SUBROOT_SKIP_LOG`.
pub fn skip(test: &str, why: &str) {
    let msg = format!("SKIPPED {test}: {why}");
    if std::env::var_os("CI").is_some_and(|v| v == "true") {
        panic!("{msg} (CI=true requires it)");
    }
    log_skip(&msg);
}

/// Record that part of `test` is skipped because the running kernel lacks a feature (XFS
/// V4 on kernels built without `CONFIG_XFS_SUPPORT_V4`): no package installs that, so
/// unlike [`skip`] it is not a failure under `CI=true`; it is listed loudly all the same.
pub fn skip_for_kernel(test: &str, why: &str) {
    log_skip(&format!(
        "SKIPPED {test}: {why} (a feature of the running kernel)"
    ));
}

fn log_skip(msg: &str) {
    eprintln!("{msg}");
    if let Some(log) = std::env::var_os("SUBROOT_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "{msg}");
        }
    }
}

/// Find `tool` on PATH or in the sbin directories (which are often not on a user's PATH).
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Run a command (found with [`which`]), panicking with its stderr if it fails.
pub fn run(tool: &str, args: &[&str]) -> Output {
    let exe = which(tool).unwrap_or_else(|| PathBuf::from(tool));
    let out = Command::new(&exe)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"));
    if !out.status.success() {
        panic!(
            "{tool} {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Run a command and return its stdout as a string.
pub fn run_stdout(tool: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&run(tool, args).stdout).into_owned()
}

/// `path` as &str (test paths are always UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Run `sh -c script` with positional args, returning stdout (panics on failure).
pub fn sh(script: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running sh");
    assert!(
        out.status.success(),
        "sh -c {script:?} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Deterministic pseudo-random bytes (a 64-bit LCG), so test data is reproducible.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let step = |x: u64| {
        x.wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
    };
    let mut x = step(seed);
    (0..len)
        .map(|_| {
            x = step(x);
            (x >> 33) as u8
        })
        .collect()
}

/// Run an mtools command (`mdir`, `mcopy`, `mtype`, …) with UTC times and UTF-8 names,
/// insisting on success; its stdout.
pub fn mt(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .env("TZ", "UTC")
        .env("LC_ALL", "C.UTF-8")
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every entry of an ext image with its content (files of 1 MiB or more: their data/hole
/// map), xattrs sorted and user flags only; and the hard-link groups as sorted paths.
pub type EntryManifest = (
    Vec<(subroot_formats::tree::Entry, Vec<u8>)>,
    Vec<Vec<Vec<u8>>>,
);

/// The [`EntryManifest`] of the ext filesystem image `img`, read with our reader.
pub fn ext_manifest(img: &Path) -> EntryManifest {
    use subroot_formats::block::RawFile;
    use subroot_formats::ext::{ExtFs, ExtTree};
    tree_manifest(&ExtTree::new(
        ExtFs::open(RawFile::open(img).unwrap()).unwrap(),
    ))
}

/// The [`EntryManifest`] of any tree (an ext image, a host directory, an archive).
pub fn tree_manifest(tree: &dyn subroot_formats::tree::TreeSource) -> EntryManifest {
    let mut out = Vec::new();
    let mut groups: std::collections::HashMap<u64, Vec<Vec<u8>>> = Default::default();
    tree.walk(b"", &mut |e, c| {
        let mut data = Vec::new();
        if let Some(c) = c {
            if e.size < (1 << 20) {
                std::io::Read::read_to_end(c, &mut data).unwrap();
            } else {
                data = format!("{:?}", c.extents().unwrap()).into_bytes();
            }
        }
        let mut e = e.clone();
        if let Some(id) = e.hardlink_id.take() {
            groups.entry(id).or_default().push(e.path.clone());
        }
        e.meta.xattrs.sort();
        if let Some(f) = e.meta.flags.as_mut() {
            *f &= subroot_formats::ext::USER_FLAGS;
        }
        out.push((e, data));
        Ok(())
    })
    .unwrap();
    let mut g: Vec<_> = groups.into_values().collect();
    g.sort();
    (out, g)
}

/// Assert that two [`EntryManifest`]s are equal, naming the first entry that differs.
pub fn assert_same_manifest(a: &EntryManifest, b: &EntryManifest) {
    assert_eq!(a.0.len(), b.0.len(), "the numbers of entries differ");
    for (x, y) in a.0.iter().zip(&b.0) {
        assert!(
            x == y,
            "entry {:?} differs:\n{:?}\n{:?}",
            String::from_utf8_lossy(&x.0.path),
            x.0,
            y.0
        );
    }
    assert_eq!(a.1, b.1, "the hard-link groups differ");
}

/// A new empty file at `path`, opened read+write (as the image writers want their output).
pub fn new_output(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()))
}
