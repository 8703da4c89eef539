//! The three destinations of an edit (`-o`, `--overlay`, `--in-place`), judged by QEMU's
//! and e2fsprogs' tools, on raw and qcow2 inputs:
//! - the overlay passes `qemu-img check`, names the input as its backing file with its
//!   format, reads exactly as the `-o` output (`qemu-img compare`) and `qemu-img commit`
//!   folds it into (a copy of) the input, which then equals the `-o` output;
//! - `--in-place` changes the file where it lies (same inode, no copy beside it), leaves it
//!   equal to the `-o` output, `qemu-img check` and `e2fsck -fn` clean;
//! - SIGKILL anywhere in an `--in-place` run (strace's fault injection kills the process
//!   at the Nth write, sync, truncate or unlink: real kills at ≥ 20 points spread over the
//!   edit) leaves, once the next subroot command has run, the input byte for byte or the
//!   finished edit, never a mix.
//!
//! Every subroot run is unprivileged (uid 65534 when the suite is root).

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;

fn tools(test: &str) -> bool {
    ["mke2fs", "e2fsck", "sfdisk", "qemu-img", "cmp"]
        .iter()
        .all(|t| need(t, test))
}

/// A 48 MiB MBR disk whose first partition (1 MiB..33 MiB) is an ext4 with a small tree,
/// in `format` (raw, or qcow2 converted by qemu-img).
fn disk(dir: &Path, format: &str) -> PathBuf {
    let root = dir.join("root");
    let raw = dir.join("disk.raw");
    let part = dir.join("p1.img");
    let script = r#"set -e; r="$1"; img="$2"; p="$3"
mkdir -p "$r/etc/keep" "$r/var/cache/apt" "$r/bin"
echo ID=debian > "$r/etc/os-release"
echo a > "$r/etc/keep/a"; head -c 300000 /dev/urandom > "$r/var/cache/apt/pkg.bin"
ln -s ../etc/os-release "$r/bin/link"
truncate -s 48M "$img"
printf 'label: dos\nstart=2048, size=65536, type=83\nstart=67584, type=83\n' | sfdisk -q "$img"
truncate -s 32M "$p"; mke2fs -q -F -t ext4 -b 4096 -L rootfs -d "$r" "$p"
dd if="$p" of="$img" bs=1M seek=1 conv=notrunc status=none
head -c 3000000 /dev/urandom | dd of="$img" bs=1M seek=34 conv=notrunc status=none
chmod a+r "$img""#;
    sh(script, &[s(&root), s(&raw), s(&part)]);
    if format == "raw" {
        return raw;
    }
    let q = dir.join("disk.qcow2");
    run("qemu-img", &["convert", "-O", "qcow2", s(&raw), s(&q)]);
    sh(r#"chmod a+r "$1""#, &[s(&q)]);
    q
}

/// A copy of `img` named `name` in `dir` that the unprivileged CLI may change.
fn copy(img: &Path, dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(img, &p).expect("copy");
    sh(r#"chmod a+rw "$1""#, &[s(&p)]);
    p
}

/// Run `subroot ARGS` in `dir` with a fixed SOURCE_DATE_EPOCH (so that two runs of the
/// same edit write the same bytes), insisting on success.
fn edit_ok(dir: &Path, args: &[&str]) {
    ok_at_epoch(dir, args, EPOCH);
}

const EPOCH: &str = "1700000000";

/// `qemu-img check` finds nothing wrong (qcow2 only; raw has nothing to check).
fn qcheck(img: &Path) {
    let out = Command::new(which("qemu-img").unwrap())
        .args(["check", s(img)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("No errors were found"),
        "qemu-img check {}: {text}{}",
        img.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `qemu-img compare` says the two images read the same.
fn same_content(a: &Path, b: &Path) -> bool {
    let out = Command::new(which("qemu-img").unwrap())
        .args(["compare", s(a), s(b)])
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "qemu-img compare {} {}: {}",
            a.display(),
            b.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    out.status.success()
}

/// `e2fsck -fn` of partition 1 (flattened by qemu-img) is clean.
fn fsck(img: &Path, dir: &Path) {
    let flat = dir.join("flat.raw");
    run("qemu-img", &["convert", "-O", "raw", s(img), s(&flat)]);
    let part = dir.join("flat.p1");
    sh(
        r#"dd if="$1" of="$2" bs=1M skip=1 count=32 status=none"#,
        &[s(&flat), s(&part)],
    );
    run("e2fsck", &["-fn", s(&part)]);
    std::fs::remove_file(flat).unwrap();
    std::fs::remove_file(part).unwrap();
}

/// Host files to copy in.
fn host_tree(dir: &Path) -> PathBuf {
    let t = dir.join("drop-in");
    std::fs::create_dir_all(t.join("sub")).unwrap();
    std::fs::write(t.join("hello.txt"), "hello\n").unwrap();
    std::fs::write(t.join("sub/blob"), subroot_test_support::noise(200_000, 3)).unwrap();
    // Accessed after their last change: reading them does not move their atime
    // (relatime), so every run copies the same times.
    sh(
        r#"chmod -R a+rX "$1"; find "$1" -exec touch -m -d @1600000000 {} +
find "$1" -exec touch -a -d @4000000000 {} +"#,
        &[s(&t)],
    );
    t
}

/// The edits every destination must agree on.
fn edits(img: &Path, tree: &Path) -> Vec<Vec<String>> {
    let img = s(img).to_string();
    vec![
        vec![
            "copy-in".into(),
            img.clone(),
            "-p".into(),
            "1".into(),
            s(tree).into(),
            "/etc".into(),
        ],
        vec![
            "rm".into(),
            img,
            "-p".into(),
            "1".into(),
            "-r".into(),
            "/var/cache".into(),
        ],
    ]
}

fn three_destinations(format: &str) {
    let test = format!("three_destinations_{format}");
    if !tools(&test) {
        return;
    }
    let dir = workdir();
    let d = dir.path();
    let img = disk(d, format);
    let tree = host_tree(d);
    for (n, edit) in edits(&img, &tree).iter().enumerate() {
        let args = |extra: &[&str]| -> Vec<String> {
            edit.iter()
                .cloned()
                .chain(extra.iter().map(|s| s.to_string()))
                .collect()
        };
        let run_ok = |a: Vec<String>| {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            edit_ok(d, &a)
        };
        let full = d.join(format!("full{n}.{format}"));
        run_ok(args(&["-o", s(&full)]));
        fsck(&full, d);

        // --overlay: only the changes, the input as backing file.
        let ov = d.join(format!("ov{n}.qcow2"));
        run_ok(args(&["--overlay", s(&ov)]));
        qcheck(&ov);
        let info = run_stdout("qemu-img", &["info", "--output=json", s(&ov)]);
        assert!(
            info.contains(&format!(
                "\"backing-filename\": \"{}\"",
                img.file_name().unwrap().to_str().unwrap()
            )) && info.contains(&format!("\"backing-filename-format\": \"{format}\"")),
            "overlay's backing file: {info}"
        );
        assert!(same_content(&ov, &full), "overlay reads as the -o output");
        let ov_len = std::fs::metadata(&ov).unwrap().len();
        assert!(
            ov_len < 8 * MIB,
            "overlay holds only the changes: {ov_len} bytes"
        );
        // qemu-img commit folds it into the base (copies in their own directory: the
        // backing file is named relative to the overlay).
        let c = d.join(format!("commit{n}"));
        std::fs::create_dir(&c).unwrap();
        let base = c.join(img.file_name().unwrap());
        std::fs::copy(&img, &base).unwrap();
        std::fs::copy(&ov, c.join("ov.qcow2")).unwrap();
        run("qemu-img", &["commit", "-q", s(&c.join("ov.qcow2"))]);
        assert!(
            same_content(&base, &full),
            "committed base equals the -o output"
        );

        // --in-place: the file itself, where it lies.
        let ip = copy(&img, d, &format!("ip{n}.{format}"));
        let ino = std::fs::metadata(&ip).unwrap().ino();
        run_ok(
            edit.iter()
                .take(1)
                .cloned()
                .chain(std::iter::once(s(&ip).to_string()))
                .chain(edit.iter().skip(2).cloned())
                .chain(std::iter::once("--in-place".to_string()))
                .collect(),
        );
        assert_eq!(
            std::fs::metadata(&ip).unwrap().ino(),
            ino,
            "changed where it lies"
        );
        assert!(!d.join(format!("ip{n}.{format}.subroot-undo")).exists());
        if format == "qcow2" {
            qcheck(&ip);
        }
        assert!(
            same_content(&ip, &full),
            "in-place result equals the -o output"
        );
        fsck(&ip, d);
    }
}

#[test]
fn three_destinations_raw() {
    three_destinations("raw");
}

#[test]
fn three_destinations_qcow2() {
    three_destinations("qcow2");
}

/// How many times `subroot ARGS` makes each of `calls` (strace -c).
fn syscall_counts(d: &Path, args: &[&str], calls: &[&str]) -> Vec<(String, u64)> {
    let cmd = subroot();
    let summary = d.join("strace.txt");
    let st = Command::new(which("strace").unwrap())
        .args(["-f", "-c", "-o", s(&summary), "-e"])
        .arg(format!("trace={}", calls.join(",")))
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .args(args)
        .current_dir(d)
        .env_remove("CI")
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .status()
        .unwrap();
    assert!(st.success(), "the uninterrupted run under strace failed");
    let text = std::fs::read_to_string(&summary).unwrap();
    calls
        .iter()
        .map(|c| {
            let n = text
                .lines()
                .find(|l| l.split_whitespace().last() == Some(c))
                .and_then(|l| {
                    // % time, seconds, usecs/call, calls, [errors], syscall
                    l.split_whitespace().nth(3).and_then(|n| n.parse().ok())
                })
                .unwrap_or(0);
            (c.to_string(), n)
        })
        .collect()
}

fn sigkill_sweep(format: &str) {
    let test = format!("sigkill_sweep_{format}");
    if !tools(&test) || !need("strace", &test) {
        return;
    }
    let dir = workdir();
    let d = dir.path();
    let img = disk(d, format);
    let tree = host_tree(d);
    let full = d.join(format!("full.{format}"));
    edit_ok(
        d,
        &[
            "copy-in",
            s(&img),
            "-p",
            "1",
            s(&tree),
            "/etc",
            "-o",
            s(&full),
        ],
    );
    let edit = |ip: &Path| -> Vec<String> {
        ["copy-in", s(ip), "-p", "1", s(&tree), "/etc", "--in-place"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let probe = copy(&img, d, &format!("probe.{format}"));
    let calls = [
        "pwrite64",
        "write",
        "fsync",
        "fdatasync",
        "ftruncate",
        "unlinkat",
        "unlink",
    ];
    let a = edit(&probe);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let counts = syscall_counts(d, &a, &calls);
    assert!(
        same_content(&probe, &full),
        "the probe run finished the edit"
    );
    // Kill points: every sync, truncate and unlink, and writes spread over the run.
    let mut points: Vec<(String, u64)> = Vec::new();
    for (call, n) in &counts {
        let picks: Vec<u64> = if matches!(call.as_str(), "pwrite64" | "write") {
            let k = 8.min(*n);
            (0..k).map(|i| 1 + i * n / k.max(1)).collect()
        } else {
            (1..=*n).collect()
        };
        points.extend(picks.into_iter().map(|w| (call.clone(), w)));
    }
    assert!(
        points.len() >= 20,
        "at least 20 kill points spread over the edit: {counts:?}"
    );
    let (mut old, mut new) = (0, 0);
    for (i, (call, when)) in points.iter().enumerate() {
        let ip = copy(&img, d, &format!("kill{i}.{format}"));
        let cmd = subroot();
        let out = Command::new(which("strace").unwrap())
            .args(["-f", "-qq", "-o", "/dev/null", "-e"])
            .arg(format!("trace={call}"))
            .arg("-e")
            .arg(format!("inject={call}:signal=KILL:when={when}"))
            .arg("--")
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .args(edit(&ip))
            .current_dir(d)
            .env_remove("CI")
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .output()
            .unwrap();
        let _ = out; // killed, or finished before the point: both are fine here
                     // The next command on the image rolls an interrupted edit back.
        ok(d, &["info", s(&ip)]);
        assert!(
            !PathBuf::from(format!("{}.subroot-undo", ip.display())).exists(),
            "the undo log is gone after recovery ({call} #{when})"
        );
        if same_bytes(&ip, &img) {
            old += 1;
        } else {
            assert!(
                same_content(&ip, &full),
                "killed at {call} #{when}: the image is neither the input nor the edited one"
            );
            if format == "qcow2" {
                qcheck(&ip);
            }
            new += 1;
        }
        std::fs::remove_file(&ip).unwrap();
    }
    eprintln!(
        "{test}: {} kill points: {old} left the input, {new} the edit",
        points.len()
    );
    assert!(
        old > 0 && new > 0,
        "kills landed both before and after the commit point"
    );
}

#[test]
fn sigkill_sweep_raw() {
    sigkill_sweep("raw");
}

#[test]
fn sigkill_sweep_qcow2() {
    sigkill_sweep("qcow2");
}

#[test]
fn recover_says_what_it_did() {
    let test = "recover_says_what_it_did";
    if !tools(test) {
        return;
    }
    let dir = workdir();
    let d = dir.path();
    let img = disk(d, "raw");
    let err = String::from_utf8_lossy(&subroot_in(d, &["recover", s(&img)]).stderr).into_owned();
    assert!(err.contains("no interrupted edit"), "{err}");
    // A log that belongs to another file is refused and left alone.
    let other = copy(&img, d, "other.raw");
    let log = d.join("other.raw.subroot-undo");
    std::fs::write(&log, b"this file is not an undo log at all").unwrap();
    sh(r#"chmod a+rw "$1""#, &[s(&log)]);
    let before = std::fs::read(&other).unwrap();
    fails(d, &["recover", s(&other)], 3, &["other.raw.subroot-undo"]);
    assert_eq!(std::fs::read(&other).unwrap(), before, "image untouched");
}

/// Metadata found damaged in the middle of an edit (a directory block of the destination
/// whose checksum no longer matches): a clear error naming the damage, exit status 3, and
/// the image byte for byte as it was — with every destination, in place too.
#[test]
fn damage_found_mid_edit_leaves_the_image_unchanged() {
    let test = "damage_found_mid_edit_leaves_the_image_unchanged";
    if !tools(test) || !need("debugfs", test) {
        return;
    }
    let dir = workdir();
    let d = dir.path();
    let img = disk(d, "raw");
    let tree = host_tree(d);
    // /etc's first directory block, in the partition image the disk was made from.
    let blocks = run_stdout("debugfs", &["-R", "blocks /etc", s(&d.join("p1.img"))]);
    let block: u64 = blocks
        .split_whitespace()
        .next()
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("blocks of /etc: {blocks}"));
    // One byte of an entry's name changed: the block's checksum no longer matches (the
    // free counts are untouched, so the check before the edit passes).
    let at = MIB + block * 4096 + 24 + 8;
    let mut b = [0u8; 1];
    std::fs::File::open(&img)
        .and_then(|f| std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, at))
        .unwrap();
    patch(&img, at, &[b[0] ^ 0x20]);
    let before = std::fs::read(&img).unwrap();
    let ip = copy(&img, d, "ip.raw");
    for dest in [
        &["-o", "out.raw"][..],
        &["--overlay", "ov.qcow2"],
        &["--in-place"],
    ] {
        let target = if dest[0] == "--in-place" { &ip } else { &img };
        let mut args = vec![
            "-q",
            "copy-in",
            s(target),
            "-p",
            "1",
            s(&tree),
            "/etc",
            "--engine",
            "edit",
        ];
        args.extend_from_slice(dest);
        fails(d, &args, 3, &["checksum"]);
        assert_eq!(
            std::fs::read(target).unwrap(),
            before,
            "{dest:?}: the image is unchanged"
        );
        assert!(!d.join("out.raw").exists() && !d.join("ov.qcow2").exists());
        assert!(!d.join("ip.raw.subroot-undo").exists());
    }
}
