//! The exit-status table of `subroot --help` checked command by command, one class of
//! failure at a time, on inputs made by the reference tools: an unsupported container
//! (qemu-img), unsupported filesystems (mkswap, mksquashfs), a disk with neither a
//! table nor a filesystem, a table none of whose partitions holds a filesystem (sfdisk), a
//! foreign disk label (sfdisk --label sun), corrupt extent trees (debugfs), bad usage, and a
//! missing file.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// The reading commands, each on `img` (a directory `/dir` and a file `/dir/file1` are
/// what they look for where they take a path).
fn readers(img: &str) -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        v(&["ls", img, "/dir"]),
        v(&["cat", img, "/dir/file1"]),
        v(&["export", img, "-o", "out.tar"]),
        v(&["manifest", img]),
        v(&["extract", img, "-C", "x"]),
    ]
}

/// Every command of `cmds` fails with `code` and a message with `phrase`, leaving no output.
fn all_fail(dir: &Path, cmds: &[Vec<String>], code: i32, phrase: &str) {
    std::fs::create_dir_all(dir.join("x")).expect("mkdir");
    run("chmod", &["777", s(&dir.join("x"))]);
    for c in cmds {
        let args: Vec<&str> = c.iter().map(String::as_str).collect();
        fails(dir, &args, code, &[phrase]);
        assert!(!dir.join("out.tar").exists(), "{args:?} left out.tar");
    }
}

/// A tree with `/dir/file1..40` and `/top`, as an ext4 image of 16 MiB.
fn ext4(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(format!("{name}.root"));
    std::fs::create_dir_all(root.join("dir")).expect("mkdir");
    for i in 1..=40 {
        std::fs::write(root.join(format!("dir/file{i}")), format!("{i}\n")).expect("write");
    }
    std::fs::write(root.join("top"), b"top\n").expect("write");
    let img = dir.join(name);
    run("truncate", &["-s", "16M", s(&img)]);
    run(
        "mke2fs",
        &["-q", "-F", "-t", "ext4", "-d", s(&root), s(&img)],
    );
    run("chmod", &["a+r", s(&img)]);
    img
}

#[test]
fn input_classes_exit_3() {
    const T: &str = "input_classes_exit_3";
    if !["qemu-img", "mke2fs", "debugfs", "sfdisk", "mkswap"]
        .iter()
        .all(|t| need(t, T))
    {
        return;
    }
    let d = workdir();
    let dir = d.path();

    // An unsupported container: every command that opens an image.
    run(
        "qemu-img",
        &["create", "-q", "-f", "qed", s(&dir.join("vm.qed")), "16M"],
    );
    let mut cmds = readers("vm.qed");
    cmds.push(vec!["info".into(), "vm.qed".into()]);
    cmds.push(vec!["convert".into(), "vm.qed".into(), "out.raw".into()]);
    all_fail(dir, &cmds, 3, "vm.qed is a QED image");

    // Unsupported filesystems: info reports them, the readers refuse them.
    let mut unsupported = vec![("swap.img", "swap")];
    run("truncate", &["-s", "16M", s(&dir.join("swap.img"))]);
    run("mkswap", &["-q", s(&dir.join("swap.img"))]);
    if which("mksquashfs").is_some() {
        std::fs::create_dir_all(dir.join("sq/dir")).expect("mkdir");
        run(
            "mksquashfs",
            &[
                s(&dir.join("sq")),
                s(&dir.join("sq.img")),
                "-quiet",
                "-no-progress",
            ],
        );
        unsupported.push(("sq.img", "squashfs"));
    }
    for (img, kind) in unsupported {
        run("chmod", &["a+r", s(&dir.join(img))]);
        let info = ok(dir, &["info", img]);
        assert!(info.contains(kind), "{info}");
        all_fail(
            dir,
            &readers(img),
            3,
            &format!("holds a {kind} filesystem; subroot reads ext2/3/4, FAT, XFS and btrfs"),
        );
    }

    // Neither a table nor a filesystem.
    run("truncate", &["-s", "4M", s(&dir.join("zero.img"))]);
    all_fail(
        dir,
        &readers("zero.img"),
        3,
        "neither a partition table nor a filesystem",
    );

    // A table whose only partition holds nothing.
    let parted = sfdisk_image(dir, "parted.img", "8M", "start=2048, type=83\n");
    run("chmod", &["a+r", s(&parted)]);
    all_fail(
        dir,
        &readers("parted.img"),
        3,
        "no partition of parted.img holds a filesystem",
    );

    // A disk label subroot does not read.
    let sun = sfdisk_image(dir, "sun.img", "8M", "label: sun\nstart=2048\n");
    run("chmod", &["a+r", s(&sun)]);
    let mut cmds = readers("sun.img");
    cmds.push(vec!["info".into(), "sun.img".into()]);
    all_fail(
        dir,
        &cmds,
        3,
        "it holds a Sun disk label; subroot reads MBR and GPT",
    );

    // A corrupt extent tree, in a directory and in a file: whatever reads it says so
    // with the same status (`manifest` and `cat` read file data through `std::io`).
    let bad_dir = ext4(dir, "baddir.img");
    run(
        "debugfs",
        &["-w", "-R", "sif /dir block[0] 0x1234", s(&bad_dir)],
    );
    all_fail(
        dir,
        &readers("baddir.img"),
        3,
        "extent header in the inode has magic 0x1234",
    );
    let bad_file = ext4(dir, "badfile.img");
    run(
        "debugfs",
        &["-w", "-R", "sif /dir/file1 block[0] 0x1234", s(&bad_file)],
    );
    let cmds: Vec<Vec<String>> = readers("badfile.img").into_iter().skip(1).collect();
    all_fail(dir, &cmds, 3, "extent header in the inode has magic 0x1234");
}

#[test]
fn usage_is_2_and_operation_failures_are_1() {
    let d = workdir();
    let dir = d.path();
    for args in [&["ls"][..], &["--no-such-option"], &["info", "a", "b", "c"]] {
        let out = subroot_in(dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    for cmd in ["info", "ls", "manifest"] {
        fails(
            dir,
            &[cmd, "missing.img"],
            1,
            &["missing.img", "No such file"],
        );
    }
    fails(
        dir,
        &["convert", "missing.img", "out.raw"],
        1,
        &["missing.img"],
    );
}

#[test]
fn help_documents_every_exit_status() {
    let help = ok(Path::new("."), &["--help"]);
    for line in [
        "0    success",
        "1    the operation failed",
        "2    usage error",
        "3    the input is invalid",
        "4    subroot's own check",
        "130  interrupted",
    ] {
        assert!(help.contains(line), "--help lacks {line:?}:\n{help}");
    }
}

/// A path that is not in the image is an operation failure (1), named as missing (a typed
/// `NotFound`, not any invalid argument) by the readers and the writers that look it up.
#[test]
fn missing_paths_in_the_image_are_1() {
    if !need("mke2fs", "missing_paths_in_the_image_are_1") {
        return;
    }
    let d = workdir();
    let dir = d.path();
    ext4(dir, "fs.img");
    std::fs::write(dir.join("local"), b"x").expect("write");
    run("chmod", &["a+r", s(&dir.join("local"))]);
    fails(dir, &["cat", "fs.img", "/nope"], 1, &["no entry \"nope\""]);
    fails(
        dir,
        &["ls", "fs.img", "/dir/nope"],
        1,
        &["no entry \"nope\""],
    );
    fails(
        dir,
        &["rm", "fs.img", "/nope", "-o", "out.img"],
        1,
        &["/nope: no such file or directory in"],
    );
    fails(
        dir,
        &["copy-in", "fs.img", "local", "/nope", "-o", "out.img"],
        1,
        &["DEST /nope does not exist in"],
    );
    assert!(!dir.join("out.img").exists());
}

/// The e2fsprogs settings the CLI reads from its environment (subroot-e2fs reads none) reach
/// the writer, and a bad one is an operation failure (1) naming the variable: the mke2fs
/// (SUBROOT_MKE2FS), the populate path (SUBROOT_POPULATE; tar with an mke2fs that cannot
/// read one) and the tools' clock (SOURCE_DATE_EPOCH, seen in the superblock by dumpe2fs).
#[test]
fn e2fsprogs_settings_come_from_the_environment() {
    const T: &str = "e2fsprogs_settings_come_from_the_environment";
    if !need("mke2fs", T) || !need("dumpe2fs", T) {
        return;
    }
    let d = workdir();
    let dir = d.path();
    ext4(dir, "fs.img");
    run("chmod", &["777", s(dir)]);
    let mkfs = ["mkfs", "fs.img", "--from", "fs.img", "-o", "out.img"];
    let with = |var: &str, value: &str| {
        subroot()
            .current_dir(dir)
            .env(var, value)
            .args(mkfs)
            .output()
            .expect("subroot")
    };
    let failing = |var: &str, value: &str, phrase: &str| {
        let out = with(var, value);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{var}={value}: {err}");
        assert!(err.contains(phrase), "{var}={value}: {err}");
        assert!(!dir.join("out.img").exists(), "{var}={value} left out.img");
    };
    failing(
        "SUBROOT_MKE2FS",
        "/nonexistent/mke2fs",
        "/nonexistent/mke2fs",
    );
    failing("SUBROOT_POPULATE", "fast", "SUBROOT_POPULATE");
    failing("SOURCE_DATE_EPOCH", "soon", "SOURCE_DATE_EPOCH");
    let version = run_stdout("sh", &["-c", "mke2fs -V 2>&1 | head -n1"]);
    if version.contains("1.45") || version.contains("1.46") || version.contains("1.47.0") {
        failing("SUBROOT_POPULATE", "tar", "cannot build from a tar archive");
    }
    let out = with("SOURCE_DATE_EPOCH", "1234567890");
    assert!(out.status.success(), "{out:?}");
    let sb = run_stdout("dumpe2fs", &["-h", s(&dir.join("out.img"))]);
    let created = sb
        .lines()
        .find(|l| l.starts_with("Filesystem created:"))
        .expect("dumpe2fs shows the creation time");
    assert!(created.contains("2009"), "{created}");
}
