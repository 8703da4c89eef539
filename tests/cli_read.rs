//! Black-box tests of the reading commands — `ls`, `cat`, `export`, `manifest`, `extract` —
//! on a GPT disk made by the reference tools: partition 1 a FAT32 ESP filled by `mcopy`
//! (long and Unicode names), partition 2 an ext4 root made by `mke2fs -d` from a tree with
//! the fidelity probes (owners and devices when the suite runs as root). Judges: `debugfs`,
//! `mdir`, GNU `tar`, `sha256sum`, and the host's own view of the extracted tree. Every
//! `subroot` invocation runs as uid 65534.

mod common;

use common::{fails, is_root, need, ok, run, s, subroot_in, workdir};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tools_present(test: &str) -> bool {
    [
        "mke2fs",
        "debugfs",
        "sgdisk",
        "mkfs.vfat",
        "mcopy",
        "mdir",
        "tar",
        "touch",
    ]
    .iter()
    .all(|t| need(t, test))
}

const ESP_START: u64 = 2048 * 512;
const ROOT_START: u64 = 77824 * 512;
const ROOT_MIB: u64 = 40;
/// The nanoseconds of /etc/hostname's mtime in the image.
const HOSTNAME_NSEC: u64 = 123_456_789;

/// The probe tree; as root also owners, a device node and a capability.
fn tree(root: &Path) {
    let w = |p: &str, data: &[u8]| {
        let f = root.join(p);
        std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
        std::fs::write(&f, data).expect("write");
    };
    w("etc/os-release", b"ID=debian\nVERSION_ID=12\n");
    w("etc/hostname", b"reader\n");
    w(
        "usr/bin/tool",
        &(0..70_000u32).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
    );
    if is_root() {
        // Before the chmod: chown clears the suid bit.
        run("chown", &["-h", "1234:5678", s(&root.join("usr/bin/tool"))]);
    }
    std::fs::set_permissions(
        root.join("usr/bin/tool"),
        std::fs::Permissions::from_mode(0o4750),
    )
    .expect("chmod");
    std::fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool-again")).expect("link");
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).expect("symlink");
    std::fs::create_dir_all(root.join("var/tmp")).expect("mkdir");
    std::fs::set_permissions(
        root.join("var/tmp"),
        std::fs::Permissions::from_mode(0o1777),
    )
    .expect("chmod");
    run("mkfifo", &[s(&root.join("var/fifo"))]);
    // A sparse file: 1 MiB hole, 4 KiB of data, 1 MiB hole.
    let f = std::fs::File::create(root.join("var/sparse")).expect("create");
    f.set_len(2 << 20).expect("size");
    std::os::unix::fs::FileExt::write_all_at(&f, &[0x5a; 4096], 1 << 20).expect("write");
    // A non-UTF-8 name.
    let odd =
        root.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"etc/caf\xe9"));
    std::fs::write(odd, b"latin-1\n").expect("write");
    let st = Command::new("touch")
        .env("TZ", "UTC")
        .args([
            "-h",
            "-d",
            "2001-02-03 04:05:06.123456789",
            s(&root.join("etc/hostname")),
        ])
        .status()
        .expect("touch");
    assert!(st.success());
    let _ = Command::new("setfattr")
        .args([
            "-n",
            "user.note",
            "-v",
            "hello",
            s(&root.join("etc/hostname")),
        ])
        .status();
    if is_root() {
        run("mknod", &[s(&root.join("var/null")), "c", "1", "3"]);
    }
}

/// disk.raw: GPT, p1 FAT32 ESP (files via mcopy), p2 ext4 from the probe tree.
fn disk(dir: &Path) -> (PathBuf, PathBuf) {
    let root = dir.join("tree");
    std::fs::create_dir(&root).expect("mkdir");
    tree(&root);
    let img = dir.join("disk.raw");
    let f = std::fs::File::create(&img).expect("create");
    f.set_len(ROOT_START + (ROOT_MIB << 20) + (1 << 20))
        .expect("size");
    drop(f);
    run(
        "sgdisk",
        &[
            "-n",
            "1:2048:77823",
            "-t",
            "1:ef00",
            "-n",
            &format!("2:77824:+{ROOT_MIB}M"),
            "-t",
            "2:8300",
            s(&img),
        ],
    );
    let esp = dir.join("esp.img");
    run("mkfs.vfat", &["-F", "32", "-C", s(&esp), "37888"]);
    let local = dir.join("esp-files");
    std::fs::create_dir_all(local.join("EFI/debian")).expect("mkdir");
    std::fs::write(
        local.join("EFI/debian/grub.cfg"),
        b"configfile /boot/grub/grub.cfg\n",
    )
    .expect("write");
    std::fs::write(local.join("A long file name.txt"), b"long\n").expect("write");
    std::fs::write(local.join("Zürich €.txt"), b"unicode\n").expect("write");
    let mut c = Command::new("mcopy");
    c.env("MTOOLS_SKIP_CHECK", "1")
        .args(["-s", "-m", "-i", s(&esp)])
        .arg(local.join("EFI"))
        .arg(local.join("A long file name.txt"))
        .arg(local.join("Zürich €.txt"))
        .arg("::/");
    assert!(c.status().expect("mcopy").success());
    run(
        "dd",
        &[
            &format!("if={}", s(&esp)),
            &format!("of={}", s(&img)),
            "bs=512",
            &format!("seek={}", ESP_START / 512),
            "conv=notrunc",
            "status=none",
        ],
    );
    // The root filesystem is made apart, given a nanosecond mtime (`mke2fs -d` keeps only
    // seconds), then copied into partition 2.
    let part = dir.join("root-part.img");
    run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            "root",
            "-d",
            s(&root),
            s(&part),
            &format!("{ROOT_MIB}M"),
        ],
    );
    run(
        "debugfs",
        &[
            "-w",
            "-R",
            &format!("sif /etc/hostname mtime_extra {}", HOSTNAME_NSEC << 2),
            s(&part),
        ],
    );
    run(
        "dd",
        &[
            &format!("if={}", s(&part)),
            &format!("of={}", s(&img)),
            "bs=1M",
            &format!("seek={}", ROOT_START >> 20),
            "conv=notrunc",
            "status=none",
        ],
    );
    // The CLI runs as nobody: the image must be readable (the tree keeps its modes).
    run("chmod", &["a+r", s(&img)]);
    (img, root)
}

/// `debugfs -R CMD` on the root filesystem (the copy `disk` put into partition 2).
fn debugfs(dir: &Path, cmd: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", cmd, s(&dir.join("root-part.img"))])
        .output()
        .expect("debugfs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ls_picks_the_root_and_agrees_with_debugfs() {
    if !tools_present("ls_picks_the_root_and_agrees_with_debugfs") {
        return;
    }
    let w = workdir();
    let (img, _) = disk(w.path());
    // Without -p the Linux root (p2) is picked, and the choice is said on stderr.
    let out = subroot_in(w.path(), &["ls", s(&img), "/usr/bin"]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("partition 2"), "choice not reported: {err}");
    let ours: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let theirs: Vec<String> = debugfs(w.path(), "ls -p /usr/bin")
        .lines()
        .filter_map(|l| l.split('/').nth(5).map(str::to_string))
        .filter(|n| n != "." && n != ".." && !n.is_empty())
        .collect();
    let mut sorted = theirs.clone();
    sorted.sort();
    assert_eq!(ours, sorted);
    // -l: mode string with suid, owner, size; symlink targets.
    let long = ok(w.path(), &["ls", s(&img), "-p", "2", "-l", "/usr/bin"]);
    let tool = long
        .lines()
        .find(|l| l.ends_with(" tool"))
        .expect("tool line");
    assert!(tool.starts_with("-rwsr-x---"), "{tool}");
    assert!(tool.contains(" 70000 "), "{tool}");
    if is_root() {
        assert!(tool.contains(" 1234  5678 "), "{tool}");
    }
    let top = ok(w.path(), &["ls", s(&img), "-p", "2", "-l", "/"]);
    assert!(top.lines().any(|l| l.ends_with("bin -> usr/bin")), "{top}");
    // --json -R: one object per entry; every path of the tree, kinds right.
    let json = ok(
        w.path(),
        &["ls", s(&img), "-p", "2", "-R", "--json", "/var"],
    );
    let v: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let kind = |p: &str| {
        v.iter()
            .find(|e| e["path"] == p)
            .unwrap_or_else(|| panic!("{p} missing in {json}"))["kind"]
            .clone()
    };
    assert_eq!(kind("/var/fifo"), "fifo");
    assert_eq!(kind("/var/tmp"), "dir");
    assert_eq!(
        v.iter().find(|e| e["path"] == "/var/tmp").expect("tmp")["mode"],
        "1777"
    );
    if is_root() {
        assert_eq!(kind("/var/null"), "char");
    }
    // A path that does not exist: a clear error naming it.
    fails(
        w.path(),
        &["ls", s(&img), "-p", "2", "/nope"],
        1,
        &["/nope"],
    );
}

#[test]
fn cat_copies_bytes_and_refuses_non_files() {
    if !tools_present("cat_copies_bytes_and_refuses_non_files") {
        return;
    }
    let w = workdir();
    let (img, root) = disk(w.path());
    let out = subroot_in(w.path(), &["cat", s(&img), "-p", "2", "/usr/bin/tool"]);
    assert!(out.status.success());
    assert_eq!(
        out.stdout,
        std::fs::read(root.join("usr/bin/tool")).expect("read")
    );
    let out = subroot_in(w.path(), &["cat", s(&img), "-p", "2", "/var/sparse"]);
    assert_eq!(
        out.stdout,
        std::fs::read(root.join("var/sparse")).expect("read")
    );
    // FAT: long and Unicode names.
    let out = subroot_in(w.path(), &["cat", s(&img), "-p", "1", "/Zürich €.txt"]);
    assert_eq!(out.stdout, b"unicode\n");
    let out = subroot_in(
        w.path(),
        &["cat", s(&img), "-p", "1", "/EFI/debian/grub.cfg"],
    );
    assert_eq!(out.stdout, b"configfile /boot/grub/grub.cfg\n");
    let e = fails(w.path(), &["cat", s(&img), "-p", "2", "/etc"], 1, &["/etc"]);
    assert!(e.contains("director"), "{e}");
    fails(
        w.path(),
        &["cat", s(&img), "-p", "2", "/etc/none"],
        1,
        &["/etc/none"],
    );
}

#[test]
fn fat_listing_agrees_with_mdir() {
    if !tools_present("fat_listing_agrees_with_mdir") {
        return;
    }
    let w = workdir();
    let (img, _) = disk(w.path());
    let ours = ok(w.path(), &["ls", s(&img), "-p", "1", "/"]);
    let mdir = Command::new("mdir")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-b", "-i", &format!("{}@@{ESP_START}", s(&img)), "::/"])
        .output()
        .expect("mdir");
    assert!(mdir.status.success(), "{mdir:?}");
    let mut theirs: Vec<String> = String::from_utf8_lossy(&mdir.stdout)
        .lines()
        .map(|l| {
            l.trim_start_matches("::/")
                .trim_end_matches('/')
                .to_string()
        })
        .filter(|l| !l.is_empty())
        .collect();
    theirs.sort();
    let mut mine: Vec<String> = ours.lines().map(str::to_string).collect();
    mine.sort();
    assert_eq!(mine, theirs);
}

#[test]
fn export_is_read_by_gnu_tar_and_reproducible() {
    if !tools_present("export_is_read_by_gnu_tar_and_reproducible") {
        return;
    }
    let w = workdir();
    let (img, root) = disk(w.path());
    ok(w.path(), &["export", s(&img), "-p", "2", "-o", "root.tar"]);
    let tar = w.path().join("root.tar");
    let list = Command::new("tar")
        .args(["--xattrs", "--numeric-owner", "-tvvf", s(&tar)])
        .output()
        .expect("tar");
    assert!(list.status.success(), "{list:?}");
    let list = String::from_utf8_lossy(&list.stdout);
    let line = |name: &str| {
        list.lines()
            .find(|l| l.split_whitespace().nth(5) == Some(name))
            .unwrap_or_else(|| panic!("{name} not in:\n{list}"))
            .to_string()
    };
    assert!(line("./usr/bin/tool").starts_with("-rwsr-x---"));
    assert!(line("./usr/bin/tool-again").contains("link to"), "{list}");
    assert!(line("./bin").contains("-> usr/bin"));
    assert!(line("./var/fifo").starts_with('p'));
    assert!(list.contains("user.note"), "xattr missing:\n{list}");
    // To stdout: the same bytes (the archive is reproducible).
    let out = subroot_in(w.path(), &["export", s(&img), "-p", "2", "-o", "-"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, std::fs::read(&tar).expect("read"));
    // A subtree.
    ok(
        w.path(),
        &["export", s(&img), "-p", "2", "/etc", "-o", "etc.tar"],
    );
    let names = run_tar_names(&w.path().join("etc.tar"));
    assert!(names.iter().any(|n| n.ends_with("hostname")), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("usr")), "{names:?}");
    // GNU tar extracts the archive to the same contents as the source.
    let x = w.path().join("x");
    std::fs::create_dir(&x).expect("mkdir");
    let st = Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "-xf",
            s(&tar),
            "-C",
            s(&x),
        ])
        .status()
        .expect("tar");
    assert!(st.success());
    for f in ["usr/bin/tool", "var/sparse", "etc/hostname"] {
        assert_eq!(
            std::fs::read(x.join(f)).expect("read"),
            std::fs::read(root.join(f)).expect("read"),
            "{f}"
        );
    }
    // Never renames a temporary file over a device node, even with --force.
    fails(
        w.path(),
        &["export", s(&img), "-p", "2", "-o", "/dev/null", "--force"],
        1,
        &["/dev/null", "not a regular file"],
    );
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &std::fs::metadata("/dev/null").expect("stat").file_type()
    ));
    // Refuses to overwrite without --force; nothing changed.
    fails(
        w.path(),
        &["export", s(&img), "-p", "2", "-o", "root.tar"],
        1,
        &["root.tar"],
    );
}

fn run_tar_names(tar: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .args(["-tf", s(tar)])
        .output()
        .expect("tar");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn manifest_hashes_match_sha256sum() {
    if !tools_present("manifest_hashes_match_sha256sum") || !need("sha256sum", "manifest") {
        return;
    }
    let w = workdir();
    let (img, root) = disk(w.path());
    let json = ok(w.path(), &["manifest", s(&img), "-p", "2", "--json"]);
    let recs: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let by = |p: &str| {
        recs.iter()
            .find(|r| r["path"] == p)
            .unwrap_or_else(|| panic!("{p} not in manifest"))
    };
    let sum = common::run_stdout("sha256sum", &[s(&root.join("usr/bin/tool"))]);
    let want = sum.split_whitespace().next().expect("sum");
    assert_eq!(by("usr/bin/tool")["sha256"], want, "{}", by("usr/bin/tool"));
    assert_eq!(by("usr/bin/tool")["perm"], "4750");
    // 2001-02-03T04:05:06.123456789Z
    assert_eq!(by("etc/hostname")["mtime"], "981173106.123456789");
    assert_eq!(by("var/fifo")["kind"], "fifo");
    // Sorted, one line per entry: as many as debugfs finds (lost+found included).
    let paths: Vec<&str> = recs
        .iter()
        .map(|r| r["path"].as_str().expect("path"))
        .collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    let text = ok(w.path(), &["manifest", s(&img), "-p", "2"]);
    assert_eq!(text.lines().count(), recs.len());
}

#[test]
fn extract_as_nobody_keeps_what_it_can_and_says_what_it_cannot() {
    if !tools_present("extract_as_nobody_keeps_what_it_can_and_says_what_it_cannot") {
        return;
    }
    let w = workdir();
    let (img, root) = disk(w.path());
    let out = subroot_in(w.path(), &["extract", s(&img), "-p", "2", "-C", "x"]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let x = w.path().join("x");
    if is_root() {
        // Run as nobody: ownership and the device node cannot be restored, and it says so.
        assert!(err.contains("not done as non-root"), "{err}");
        assert!(err.contains("device node"), "{err}");
        assert!(!x.join("var/null").exists());
    }
    for f in [
        "usr/bin/tool",
        "var/sparse",
        "etc/hostname",
        "etc/os-release",
    ] {
        assert_eq!(
            std::fs::read(x.join(f)).expect("read"),
            std::fs::read(root.join(f)).expect("read"),
            "{f}"
        );
    }
    let meta = |p: &Path| std::fs::symlink_metadata(p).expect("lstat");
    let (a, b) = (
        meta(&x.join("usr/bin/tool")),
        meta(&root.join("usr/bin/tool")),
    );
    assert_eq!(a.mode() & 0o777, b.mode() & 0o777);
    let a = meta(&x.join("etc/hostname"));
    assert_eq!(
        (a.mtime(), a.mtime_nsec()),
        (981_173_106, HOSTNAME_NSEC as i64)
    );
    assert_eq!(meta(&x.join("var/tmp")).mode() & 0o7777, 0o1777);
    // Hard links stay linked, symlinks stay symlinks, fifos stay fifos, sparse stays sparse.
    assert_eq!(
        meta(&x.join("usr/bin/tool")).ino(),
        meta(&x.join("usr/bin/tool-again")).ino()
    );
    assert_eq!(
        std::fs::read_link(x.join("bin")).expect("readlink"),
        Path::new("usr/bin")
    );
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &meta(&x.join("var/fifo")).file_type()
    ));
    assert!(meta(&x.join("var/sparse")).blocks() * 512 < 1 << 20);
    // A user.* xattr is restored even unprivileged (where the filesystem supports it).
    if let Ok(o) = Command::new("getfattr")
        .args([
            "--only-values",
            "-n",
            "user.note",
            s(&root.join("etc/hostname")),
        ])
        .output()
    {
        if o.status.success() {
            let got = Command::new("getfattr")
                .args([
                    "--only-values",
                    "-n",
                    "user.note",
                    s(&x.join("etc/hostname")),
                ])
                .output()
                .expect("getfattr");
            assert_eq!(got.stdout, o.stdout);
        }
    }
    // A subtree into another directory; refusals: missing path, destination a file.
    ok(
        w.path(),
        &["extract", s(&img), "-p", "2", "/etc", "-C", "etc-copy"],
    );
    assert!(w.path().join("etc-copy/hostname").is_file());
    fails(
        w.path(),
        &["extract", s(&img), "-p", "2", "/none", "-C", "y"],
        1,
        &["/none"],
    );
    assert!(!w.path().join("y").exists());
    std::fs::write(w.path().join("afile"), b"x").expect("write");
    fails(
        w.path(),
        &["extract", s(&img), "-p", "2", "-C", "afile"],
        1,
        &["afile"],
    );
    // Extracting over the earlier result refuses to replace files.
    let out = subroot_in(
        w.path(),
        &["extract", s(&img), "-p", "2", "/etc", "-C", "etc-copy"],
    );
    assert!(!out.status.success());
}

/// A merged-/usr system: `/etc/os-release` and `/lib` are symlinks into `/usr`. `cat`,
/// `extract` and `export` follow links as the installed system would (absolute targets
/// from the filesystem's root, `..` never above it); `ls` shows a link named last unless
/// `-L`. Judged against the host's own view of the same tree (`readlink -f` inside it).
#[test]
fn paths_resolve_through_symlinks_inside_the_image() {
    if !need("mke2fs", "paths_resolve_through_symlinks_inside_the_image") {
        return;
    }
    let w = workdir();
    let root = w.path().join("merged");
    std::fs::create_dir_all(root.join("usr/lib/modules/6.1")).expect("mkdir");
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    std::fs::write(root.join("usr/lib/os-release"), b"ID=debian\n").expect("write");
    std::fs::write(root.join("usr/lib/modules/6.1/modules.dep"), b"deps\n").expect("write");
    let link = |target: &str, name: &str| {
        std::os::unix::fs::symlink(target, root.join(name)).expect("symlink")
    };
    link("../usr/lib/os-release", "etc/os-release");
    link("/usr/lib/os-release", "etc/absolute");
    link("../../../../../usr/lib/os-release", "etc/escaping");
    link("usr/lib", "lib");
    link("loop", "etc/loop");
    link("/nowhere", "etc/dangling");
    let img = w.path().join("merged.ext4");
    run(
        "mke2fs",
        &["-q", "-t", "ext4", "-d", s(&root), s(&img), "8M"],
    );
    let img = s(&img);
    for path in [
        "/etc/os-release",
        "/etc/absolute",
        "/etc/escaping",
        "/lib/os-release",
        "lib/../lib/os-release",
        "/../etc/./os-release",
    ] {
        assert_eq!(ok(w.path(), &["cat", img, path]), "ID=debian\n", "{path}");
    }
    fails(
        w.path(),
        &["cat", img, "/etc/loop"],
        1,
        &["/etc/loop", "too many levels"],
    );
    fails(
        w.path(),
        &["cat", img, "/etc/dangling"],
        1,
        &["/etc/dangling"],
    );
    // ls: the link itself, or with -L what it points to; links on the way are followed.
    let shown = ok(w.path(), &["ls", "-l", img, "/lib"]);
    assert!(shown.contains("lib -> usr/lib"), "{shown}");
    assert_eq!(
        ok(w.path(), &["ls", "-L", img, "/lib"]),
        "modules\nos-release\n"
    );
    assert_eq!(ok(w.path(), &["ls", img, "/lib/modules"]), "6.1\n");
    // extract through a symlinked directory.
    let dest = w.path().join("modules");
    ok(w.path(), &["extract", img, "/lib/modules", "-C", s(&dest)]);
    assert_eq!(
        std::fs::read(dest.join("6.1/modules.dep")).expect("extracted file"),
        b"deps\n"
    );
}

/// A reader that goes away (`| head -1`) ends every printing command quietly with 141,
/// the status a shell gives `ls` killed by SIGPIPE: no panic, no error message.
#[test]
fn a_closed_stdout_ends_quietly() {
    let test = "a_closed_stdout_ends_quietly";
    if !need("mke2fs", test) {
        return;
    }
    let dir = workdir();
    let tree = dir.path().join("tree");
    for d in 0..40 {
        let sub = tree.join(format!("dir-{d:02}"));
        std::fs::create_dir_all(&sub).expect("mkdir");
        for f in 0..100 {
            std::fs::write(sub.join(format!("file-with-a-long-name-{f:03}")), b"x").expect("write");
        }
    }
    let img = dir.path().join("fs.img");
    run(
        "mke2fs",
        &[
            "-q",
            "-t",
            "ext4",
            "-N",
            "8192",
            "-d",
            s(&tree),
            s(&img),
            "32M",
        ],
    );
    let check = |args: &[&str], read_one_line: bool| {
        let mut child = common::subroot()
            .args(args)
            .current_dir(dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawning subroot");
        let mut stdout = child.stdout.take().expect("stdout");
        if read_one_line {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut stdout), &mut line)
                .expect("reading a line");
            assert!(!line.is_empty(), "subroot {args:?} printed nothing");
        }
        drop(stdout);
        let out = child.wait_with_output().expect("waiting for subroot");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked"),
            "subroot {args:?} panicked: {err}"
        );
        assert!(err.is_empty(), "subroot {args:?} said: {err}");
        assert_eq!(out.status.code(), Some(141), "subroot {args:?}: {err}");
    };
    check(&["ls", "-R", "fs.img"], true);
    check(&["ls", "-lR", "--json", "fs.img"], true);
    check(&["manifest", "fs.img"], true);
    check(&["info", "fs.img"], false);
    check(&["info", "--json", "fs.img"], false);
    check(&["man"], false);
}
