//! Shared harness for the black-box CLI tests.
//!
//! Every `subroot` invocation runs as an unprivileged user: when the suite runs as root
//! (as CI does), the command goes through `setpriv --reuid 65534 --regid 65534
//! --clear-groups`, so "rootless" is tested, not assumed. Oracle steps (reference tools
//! building inputs) run as the suite's own user. Work directories are world-writable so
//! the unprivileged CLI can write its outputs there.
#![allow(dead_code)]

pub mod relayout;

use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

// Not every test binary uses every helper.
#[allow(unused_imports)]
pub use subroot_test_support::{
    assert_same_manifest, ext_manifest, lvm, mt, need, run, run_stdout, s, sh, skip,
    skip_for_kernel, tar_mke2fs, which,
};

/// The uid/gid the CLI runs as when the suite runs as root.
pub const NOBODY: u32 = 65534;

/// True when the test process is root.
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A copy of the `subroot` binary in a directory every user can read and execute
/// (the build tree may sit under a 0700 home directory). One copy per build, shared by
/// every test process of that build: the directory is named after the build tree, the
/// file after the binary's size and time, and copies of earlier builds are removed.
fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let built = PathBuf::from(env!("CARGO_BIN_EXE_subroot"));
        if !is_root() {
            return built;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        built.hash(&mut h);
        let dir = std::env::temp_dir().join(format!("subroot-test-bin-{:016x}", h.finish()));
        std::fs::create_dir_all(&dir).expect("creating the binary directory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let meta = std::fs::metadata(&built).expect("the built subroot binary");
        let stamp = format!("{}-{}.{}", meta.len(), meta.mtime(), meta.mtime_nsec());
        let copy = dir.join(&stamp).join("subroot");
        if !copy.exists() {
            // Copied into a private directory and renamed into place: test processes
            // running at once never see a half-written binary.
            let part = dir.join(format!(".part-{}", std::process::id()));
            std::fs::create_dir_all(&part).expect("creating the binary directory");
            std::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            std::fs::copy(&built, part.join("subroot")).expect("copying the subroot binary");
            std::fs::set_permissions(part.join("subroot"), std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
            if std::fs::rename(&part, dir.join(&stamp)).is_err() {
                // Another test process placed it first.
                let _ = std::fs::remove_dir_all(&part);
            }
        }
        for old in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if old.file_name() != stamp.as_str()
                && !old.file_name().to_string_lossy().starts_with('.')
            {
                let _ = std::fs::remove_dir_all(old.path());
            }
        }
        copy
    })
}

/// A `subroot` command that runs unprivileged (via setpriv when the suite is root).
pub fn subroot() -> Command {
    if is_root() {
        let setpriv =
            which("setpriv").expect("setpriv (util-linux) is needed to run the CLI unprivileged");
        let mut c = Command::new(setpriv);
        c.args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ]);
        c.arg(binary());
        c
    } else {
        Command::new(binary())
    }
}

/// Run `subroot ARGS` in `dir`; returns the output whatever the status. ARGS may be any
/// bytes (names that are not UTF-8).
pub fn subroot_in<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Output {
    subroot()
        .args(args)
        .current_dir(dir)
        .env_remove("CI")
        .output()
        .expect("running subroot")
}

/// Run `subroot ARGS` in `dir` and insist on success; returns stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    String::from_utf8_lossy(&ok_bytes(dir, args)).into_owned()
}

/// [`ok`] with stdout as bytes (file contents) and ARGS of any bytes.
pub fn ok_bytes<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Vec<u8> {
    let out = subroot_in(dir, args);
    let shown: Vec<&std::ffi::OsStr> = args.iter().map(AsRef::as_ref).collect();
    assert!(
        out.status.success(),
        "subroot {shown:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// [`ok`] with `SOURCE_DATE_EPOCH` set to `epoch`, so that two runs of the same edit write
/// the same bytes.
pub fn ok_at_epoch(dir: &Path, args: &[&str], epoch: &str) -> String {
    let out = subroot()
        .args(args)
        .current_dir(dir)
        .env_remove("CI")
        .env("SOURCE_DATE_EPOCH", epoch)
        .output()
        .expect("running subroot");
    assert!(
        out.status.success(),
        "subroot {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run `subroot ARGS` in `dir` expecting a clean failure: non-zero exit status `code`,
/// no panic, a message containing every `phrase`. Returns stderr.
pub fn fails(dir: &Path, args: &[&str], code: i32, phrases: &[&str]) -> String {
    let out = subroot_in(dir, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "subroot {args:?}: expected exit {code}; stderr: {err}"
    );
    assert!(
        !err.contains("panicked"),
        "subroot {args:?} panicked: {err}"
    );
    assert!(
        err.starts_with("subroot: error: "),
        "subroot {args:?}: unexpected stderr: {err}"
    );
    for p in phrases {
        assert!(
            err.contains(p),
            "subroot {args:?}: stderr lacks {p:?}: {err}"
        );
    }
    err
}

/// A fresh work directory the unprivileged CLI can write to.
pub fn workdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    d
}

/// Names in `dir` (to prove no output or temporary file was left behind).
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// SHA-256-free content fingerprint for "input unchanged" checks: the bytes themselves
/// are compared via `cmp`, which is the reference tool for that.
pub fn same_bytes(a: &Path, b: &Path) -> bool {
    Command::new("cmp")
        .args(["-s", s(a), s(b)])
        .status()
        .map(|st| st.success())
        .unwrap_or(false)
}

/// The bytes of `a` and `b` outside `[start, end)` are identical (`cmp` on both sides):
/// a rewrite of one partition left everything else alone.
pub fn same_outside(a: &Path, b: &Path, start: u64, end: u64) {
    let len = std::fs::metadata(a).expect("stat").len();
    assert_eq!(len, std::fs::metadata(b).expect("stat").len());
    run("cmp", &["-n", &start.to_string(), s(a), s(b)]);
    run(
        "cmp",
        &[
            "-i",
            &end.to_string(),
            "-n",
            &(len - end).to_string(),
            s(a),
            s(b),
        ],
    );
}

/// Run `subroot -v ARGS` (a `mkfs`, `create`… that builds an ext filesystem) in `dir` on
/// the populate path `populate` (`SUBROOT_POPULATE`: `staging` or `tar`), with
/// `--mke2fs MKE2FS` when given; insists on success and on the path being reported.
/// Returns stderr.
pub fn build_populating(
    dir: &Path,
    args: &[&str],
    populate: &str,
    mke2fs: Option<&Path>,
) -> String {
    let mut args: Vec<&str> = std::iter::once("-v").chain(args.iter().copied()).collect();
    if let Some(m) = mke2fs {
        args.extend(["--mke2fs", s(m)]);
    }
    let out = subroot()
        .args(&args)
        .current_dir(dir)
        .env_remove("CI")
        .env("SUBROOT_POPULATE", populate)
        .output()
        .expect("running subroot");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "subroot {args:?}: {err}");
    let said = if populate == "tar" {
        "tar stream"
    } else {
        "staging copy"
    };
    assert!(err.contains(said), "populate path not reported: {err}");
    err
}

/// Overwrite `bytes` at `offset` of `img`.
pub fn patch(img: &Path, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(img)
        .expect("open");
    f.write_all_at(bytes, offset).expect("patch");
}

/// Partition `disk` with `sfdisk -q` from `script` (a `label: sun` line picks another
/// label than dos).
pub fn sfdisk_script(disk: &Path, script: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new(which("sfdisk").expect("sfdisk"))
        .args(["-q", "--no-reread", "--no-tell-kernel", s(disk)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("sfdisk");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write script");
    assert!(
        child.wait().expect("sfdisk").success(),
        "sfdisk failed on {script}"
    );
}

/// A `size` image `dir/name` partitioned by [`sfdisk_script`].
pub fn sfdisk_image(dir: &Path, name: &str, size: &str, script: &str) -> PathBuf {
    let p = dir.join(name);
    run("truncate", &["-s", size, s(&p)]);
    sfdisk_script(&p, script);
    p
}

/// The cached Debian image of `flavour` (building it needs root).
pub fn debian_image(flavour: &str) -> Option<PathBuf> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/debian-image.sh");
    let out = std::process::Command::new("bash")
        .args([script, flavour])
        .output()
        .expect("running debian-image.sh");
    if !out.status.success() {
        panic!(
            "debian-image.sh {flavour} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    assert!(path.is_file(), "debian-image.sh printed {path:?}");
    Some(path)
}

/// The bytes of a name in JSON output (docs/json.md): `v[key]` (a plain string) or
/// `v["KEY_bytes"]` (base64); both present is an error.
pub fn json_name(v: &serde_json::Value, key: &str) -> Option<Vec<u8>> {
    let plain = v.get(key).and_then(serde_json::Value::as_str);
    let coded = v
        .get(format!("{key}_bytes"))
        .and_then(serde_json::Value::as_str);
    assert!(
        plain.is_none() || coded.is_none(),
        "{key} given twice in {v}"
    );
    match (plain, coded) {
        (Some(p), None) => Some(p.as_bytes().to_vec()),
        (None, Some(c)) => {
            Some(subroot_formats::base64::decode(c.as_bytes()).expect("valid base64"))
        }
        _ => None,
    }
}

/// A raw disk of `size` (e.g. "48M") holding an ext4 made by `mke2fs -d` with
/// `/etc/hostname` = `hostname` and a 3 MiB file `/big` (data at both ends of the disk and
/// a hole): the input the foreign-container tests put into each format.
#[allow(dead_code)]
pub fn ext4_disk(dir: &Path, size: &str, hostname: &str) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    std::fs::write(root.join("etc/hostname"), format!("{hostname}\n")).expect("write");
    std::fs::write(root.join("big"), vec![0x5au8; 3 << 20]).expect("write");
    let img = dir.join("disk.raw");
    run("truncate", &["-s", size, s(&img)]);
    run(
        "mke2fs",
        &["-q", "-F", "-t", "ext4", "-d", s(&root), s(&img)],
    );
    img
}

/// `qemu-img convert -f raw -O FMT -o OPTS RAW OUT`: the reference tool making an input of
/// a foreign container format.
#[allow(dead_code)]
pub fn qemu_convert(raw: &Path, fmt: &str, opts: &str, out: &Path) {
    run(
        "qemu-img",
        &[
            "convert",
            "-q",
            "-f",
            "raw",
            "-O",
            fmt,
            "-o",
            opts,
            s(raw),
            s(out),
        ],
    );
}
