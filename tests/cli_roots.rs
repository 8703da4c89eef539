//! Black-box tests of `subroot roots` (list, add, remove) on relayouted images made at
//! test time (the demo root with rich content, put into ext4 by `mke2fs -d`, relayouted by
//! subroot) and on the cached Debian images (SUBROOT_CACHE). The results are judged by the
//! reference tools: `e2fsck -fn` of the partition, `debugfs` for inode numbers and link
//! counts, and (as root) the kernel's own mount.

mod common;

use common::relayout::{image, sh as bash, stage, INITRD_DIR};
use common::{debian_image, fails, is_root, need, ok, run, s, same_bytes, workdir};
use serde_json::Value;
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;

/// A relayouted demo image `dir/r0.raw` (48 MiB disk, ext4 partition at 1 MiB) whose root
/// holds the demo system plus what `extra` (a bash script run in the staged tree) adds.
fn relayouted(dir: &Path, extra: &str) -> PathBuf {
    let st = stage(dir, Some(Path::new(INITRD_DIR)));
    bash(&format!("cd {} && {extra}", s(&st)));
    let img = image(dir, &st);
    let out = dir.join("r0.raw");
    ok(dir, &["-q", "relayout", s(&img), "-o", s(&out)]);
    out
}

/// Rich content: hard links (inside usr, and across usr and etc), xattrs, a fifo, a
/// sparse file, a symlink, ns times, setuid, files in /etc and /root; devices and foreign
/// owners as root.
const RICH: &str = "mkdir -p usr/lib/x etc/app root && \
    printf data > usr/lib/x/a && ln usr/lib/x/a usr/lib/x/b && ln usr/lib/x/a etc/app/c && \
    setfattr -n user.note -v hello usr/lib/x/a && setfattr -n user.empty usr/lib/x && \
    truncate -s 4M usr/lib/x/sparse && printf tail >> usr/lib/x/sparse && \
    mkfifo usr/lib/x/fifo && ln -s ../lib/x/a usr/lib/x/lnk && chmod 4751 usr/lib/x/a && \
    printf 'key=1\\n' > etc/app/conf && printf hist > root/.bash_history && \
    touch -d '2021-05-06 07:08:09.123456789' usr/lib/x/sparse usr/lib/x && \
    if [ $(id -u) = 0 ]; then mknod usr/lib/x/null c 1 3 && chown 1234:5678 usr/lib/x/sparse; fi";

/// Every tool in `tools` is there (else the test is skipped, as `need` says).
fn needs(tools: &[&str], test: &str) -> bool {
    tools.iter().all(|t| need(t, test))
}

/// `subroot roots add IMG r1 --from r0 ARGS` (quiet), which must succeed.
fn add_r1(dir: &Path, img: &Path, args: &[&str]) {
    let mut all = vec!["-q", "roots", "add", s(img), "r1", "--from", "r0"];
    all.extend(args);
    ok(dir, &all);
}

fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(dir, args)).expect("JSON output")
}

/// The partition of a demo image, extracted for e2fsprogs.
fn partition(img: &Path, out: &Path) -> PathBuf {
    bash(&format!(
        "dd if={} of={} bs=1M skip=1 count=47 status=none",
        s(img),
        s(out)
    ));
    out.to_path_buf()
}

/// (inode, links) of `path` in the ext filesystem `part`, by debugfs.
fn inode_links(part: &Path, path: &str) -> (u64, u64) {
    let out = run("debugfs", &["-R", &format!("stat \"/{path}\""), s(part)]);
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| -> u64 {
        let at = text
            .find(key)
            .unwrap_or_else(|| panic!("debugfs stat {path}: no {key} in {text}"));
        text[at + key.len()..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("debugfs stat {path}: bad {key}"))
    };
    (field("Inode:"), field("Links:"))
}

/// `subroot manifest IMAGE /ROOT` with paths relative to the root and the hard-link
/// column (the group's first name, which may now be in another root) left out: link
/// sharing is judged with debugfs instead.
fn root_manifest(dir: &Path, img: &Path, root: &str) -> Vec<String> {
    root_manifest_of(dir, img, root, "", &[])
}

/// [`root_manifest`] of `ROOT/SUB` with extra manifest options.
fn root_manifest_of(dir: &Path, img: &Path, root: &str, sub: &str, opts: &[&str]) -> Vec<String> {
    let path = format!("/{root}{sub}");
    let mut args = vec!["-q", "manifest", s(img), &path];
    args.extend(opts);
    ok(dir, &args)
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split('\t').collect();
            let path = f[0].strip_prefix(root).unwrap_or(f[0]).to_string();
            f[0] = &path;
            // Column 12: the hard-link group's first name.
            if f.len() > 11 {
                f[11] = "-";
            }
            f.join("\t")
        })
        .collect()
}

#[test]
fn lists_the_roots_and_what_each_boot_entry_selects() {
    if !needs(
        &["mke2fs", "cpio", "sfdisk", "setfattr"],
        "lists_the_roots_and_what_each_boot_entry_selects",
    ) {
        return;
    }
    let d = workdir();
    let img = relayouted(d.path(), "true");
    let text = ok(d.path(), &["roots", s(&img)]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("ROOT") && lines[0].contains("DEFAULT"),
        "{text}"
    );
    let r0: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&r0[..3], ["r0", "*", "1"], "{text}");
    assert!(text.contains("BOOT ENTRY"), "{text}");
    let j = json(d.path(), &["roots", "--json", s(&img)]);
    assert_eq!(j["default"], "r0", "{j}");
    assert_eq!(j["partition"], 1);
    assert_eq!(j["roots"].as_array().unwrap().len(), 1);
    assert_eq!(j["roots"][0]["name"], "r0");
    assert_eq!(j["roots"][0]["default"], true);
    let entries = j["entries"].as_array().unwrap();
    assert!(!entries.is_empty(), "{j}");
    assert!(entries.iter().all(|e| e["root"] == "r0"), "{j}");
    assert!(entries.iter().any(|e| e["config"] == "/boot/grub/grub.cfg"));
    // `roots list` is the same listing.
    assert_eq!(j, json(d.path(), &["roots", "list", "--json", s(&img)]));

    // With a second root: listed, not the default, selected by no entry.
    let two = d.path().join("two.raw");
    add_r1(d.path(), &img, &["-o", s(&two)]);
    let j = json(d.path(), &["roots", "--json", s(&two)]);
    let names: Vec<&str> = j["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["r0", "r1"]);
    assert_eq!(j["roots"][1]["default"], false);
    assert_eq!(j["roots"][1]["entries"], 0);
    assert_eq!(j["default"], "r0");
    let text = ok(d.path(), &["roots", s(&two)]);
    let r1: Vec<&str> = text.lines().nth(2).unwrap().split_whitespace().collect();
    assert_eq!(&r1[..2], ["r1", "0"], "{text}");
}

#[test]
fn add_links_files_and_copies_etc() {
    if !needs(
        &["mke2fs", "debugfs", "e2fsck", "cpio", "sfdisk", "setfattr"],
        "add_links_files_and_copies_etc",
    ) {
        return;
    }
    let d = workdir();
    let img = relayouted(d.path(), RICH);
    let before = std::fs::read(&img).unwrap();
    let out = d.path().join("r1.raw");
    add_r1(d.path(), &img, &["-o", s(&out)]);
    assert_eq!(std::fs::read(&img).unwrap(), before, "the input changed");
    let part = partition(&out, &d.path().join("r1.part"));
    run("e2fsck", &["-fn", s(&part)]);

    // Every entry of r0 is in r1 with the same metadata, xattrs and content.
    let m0 = root_manifest(d.path(), &out, "r0");
    assert!(m0.len() > 20, "{m0:?}");
    assert_eq!(m0, root_manifest(d.path(), &out, "r1"));
    // And r0 is what it was before.
    assert_eq!(m0, root_manifest(d.path(), &img, "r0"));

    // Regular files are shared: the same inode, one more link.
    let in_part = partition(&img, &d.path().join("r0.part"));
    for f in ["usr/bin/hello", "usr/lib/x/sparse", "boot/EMPTY"] {
        let (i0, l0) = inode_links(&in_part, &format!("r0/{f}"));
        assert_eq!(inode_links(&part, &format!("r0/{f}")), (i0, l0 + 1), "{f}");
        assert_eq!(inode_links(&part, &format!("r1/{f}")), (i0, l0 + 1), "{f}");
    }
    // A hard-link group stays one group (a, b; c is under etc: copied).
    let (a, la) = inode_links(&part, "r1/usr/lib/x/a");
    assert_eq!(inode_links(&part, "r1/usr/lib/x/b"), (a, la));
    assert_eq!(la, 5, "r0/a, r0/b, r0/etc/app/c, r1/a, r1/b");
    // Under /etc and /root files are copied; other kinds are always made anew.
    for f in [
        "etc/app/conf",
        "etc/os-release",
        "etc/app/c",
        "root/.bash_history",
        "usr/lib/x/fifo",
        "usr/lib/x/lnk",
    ] {
        let (i0, l0) = inode_links(&part, &format!("r0/{f}"));
        let (i1, l1) = inode_links(&part, &format!("r1/{f}"));
        assert_ne!(i0, i1, "{f} is shared");
        assert_eq!(l1, 1, "{f}");
        if f != "etc/app/c" {
            assert_eq!(l0, 1, "{f}");
        }
    }

    // --copy: nothing shared, r0's link counts unchanged.
    let full = d.path().join("copy.raw");
    add_r1(d.path(), &img, &["--copy", "-o", s(&full)]);
    let fpart = partition(&full, &d.path().join("copy.part"));
    run("e2fsck", &["-fn", s(&fpart)]);
    assert_eq!(m0, root_manifest(d.path(), &full, "r1"));
    for f in ["usr/bin/hello", "usr/lib/x/sparse", "usr/lib/x/a"] {
        let (i0, l0) = inode_links(&in_part, &format!("r0/{f}"));
        assert_eq!(inode_links(&fpart, &format!("r0/{f}")), (i0, l0), "{f}");
        assert_ne!(inode_links(&fpart, &format!("r1/{f}")).0, i0, "{f}");
    }
    let (a, la) = inode_links(&fpart, "r1/usr/lib/x/a");
    assert_eq!(inode_links(&fpart, "r1/usr/lib/x/b"), (a, la));
    assert_eq!(
        la, 3,
        "r1/a, r1/b and r1/etc/app/c: the group is copied whole"
    );
    assert_eq!(inode_links(&fpart, "r1/etc/app/c").0, a);

    // --copied '': /etc is linked too.
    let all = d.path().join("all.raw");
    add_r1(d.path(), &img, &["--copied", "", "-o", s(&all)]);
    let apart = partition(&all, &d.path().join("all.part"));
    run("e2fsck", &["-fn", s(&apart)]);
    assert_eq!(
        inode_links(&apart, "r0/etc/app/conf").0,
        inode_links(&apart, "r1/etc/app/conf").0
    );
}

/// The overlay of `roots add` holds metadata only: the same size for a root holding 32 KiB
/// of file data as for one holding 16 MiB (and --copy does grow with the data, so the
/// comparison can fail).
#[test]
fn overlay_size_does_not_grow_with_data() {
    if !needs(
        &["mke2fs", "cpio", "sfdisk", "setfattr", "qemu-img"],
        "overlay_size_does_not_grow_with_data",
    ) {
        return;
    }
    let d = workdir();
    let size_of = |kib_per_file: u32, copy: bool| -> u64 {
        let dir = d.path().join(format!("set-{kib_per_file}-{copy}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let img = relayouted(
            &dir,
            &format!(
                "mkdir -p usr/lib/big && for i in 1 2 3 4 5 6 7 8; do \
                 head -c {}K /dev/urandom > usr/lib/big/f$i; done",
                kib_per_file
            ),
        );
        let ov = dir.join("r1.qcow2");
        let mut args = vec!["--overlay", s(&ov)];
        if copy {
            args.push("--copy");
        }
        add_r1(&dir, &img, &args);
        run("qemu-img", &["check", s(&ov)]);
        std::fs::metadata(&ov).unwrap().len()
    };
    let small = size_of(4, false);
    let large = size_of(2048, false);
    assert!(
        large <= small + 256 * 1024,
        "the overlay grew with the data: {small} bytes for 32 KiB of files, {large} for 16 MiB"
    );
    assert!(
        large < 4 * MIB,
        "{large} bytes of overlay for a metadata-only clone"
    );
    let copied = size_of(2048, true);
    assert!(
        copied >= large + 16 * MIB,
        "--copy wrote {copied} bytes, the linked clone {large}"
    );
}

/// What subroot's own editing commands do to a file shared between roots: copy-in replaces
/// it by a new inode (both engines) and rm drops one link, so the other root keeps its
/// copy. As root, the kernel mounts the result and a file replaced by rename (as dpkg
/// does) in r1 leaves r0's unchanged.
#[test]
fn editing_a_shared_file_changes_only_its_root() {
    if !needs(
        &["mke2fs", "debugfs", "e2fsck", "cpio", "sfdisk", "setfattr"],
        "editing_a_shared_file_changes_only_its_root",
    ) {
        return;
    }
    let d = workdir();
    let img = relayouted(d.path(), RICH);
    let two = d.path().join("two.raw");
    add_r1(d.path(), &img, &["-o", s(&two)]);
    let old = ok(d.path(), &["-q", "cat", s(&two), "/r0/usr/bin/hello"]);
    let host = d.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("hello"), "new hello\n").unwrap();
    std::fs::set_permissions(&host, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for engine in ["edit", "rebuild"] {
        let out = d.path().join(format!("edited-{engine}.raw"));
        ok(
            d.path(),
            &[
                "-q",
                "copy-in",
                s(&two),
                s(&host.join("hello")),
                "/r1/usr/bin",
                "--engine",
                engine,
                "-o",
                s(&out),
            ],
        );
        assert_eq!(
            ok(d.path(), &["-q", "cat", s(&out), "/r1/usr/bin/hello"]),
            "new hello\n"
        );
        assert_eq!(
            ok(d.path(), &["-q", "cat", s(&out), "/r0/usr/bin/hello"]),
            old,
            "{engine}"
        );
        let part = partition(&out, &d.path().join(format!("{engine}.part")));
        run("e2fsck", &["-fn", s(&part)]);
        assert_eq!(inode_links(&part, "r0/usr/bin/hello").1, 1, "{engine}");
    }
    let out = d.path().join("rm.raw");
    ok(
        d.path(),
        &["-q", "rm", s(&two), "/r1/usr/lib/x/a", "-o", s(&out)],
    );
    let part = partition(&out, &d.path().join("rm.part"));
    run("e2fsck", &["-fn", s(&part)]);
    assert_eq!(
        ok(d.path(), &["-q", "cat", s(&out), "/r0/usr/lib/x/a"]),
        "data"
    );
    assert_eq!(inode_links(&part, "r0/usr/lib/x/a").1, 4);

    if !is_root() {
        eprintln!(
            "SKIPPED the kernel part of editing_a_shared_file_changes_only_its_root: needs root"
        );
        return;
    }
    let mnt = d.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-o", "loop,offset=1048576", s(&two), s(&mnt)])
        .status()
        .unwrap();
    if !st.success() {
        common::skip(
            "editing_a_shared_file_changes_only_its_root",
            "loop mount failed",
        );
        return;
    }
    bash(&format!(
        "m={m}; trap 'umount $m' EXIT; \
         cmp $m/r0/usr/bin/hello $m/r1/usr/bin/hello && \
         [ $(stat -c %i $m/r0/usr/bin/hello) = $(stat -c %i $m/r1/usr/bin/hello) ] && \
         diff -r --no-dereference -x fifo $m/r0/usr $m/r1/usr && \
         printf 'by rename\\n' > $m/r1/usr/bin/.hello.new && mv $m/r1/usr/bin/.hello.new $m/r1/usr/bin/hello",
        m = s(&mnt)
    ));
    let part = partition(&two, &d.path().join("kernel.part"));
    run("e2fsck", &["-fn", s(&part)]);
    assert_eq!(
        ok(d.path(), &["-q", "cat", s(&two), "/r1/usr/bin/hello"]),
        "by rename\n"
    );
    assert_eq!(
        ok(d.path(), &["-q", "cat", s(&two), "/r0/usr/bin/hello"]),
        old
    );
}

#[test]
fn remove_takes_the_tree_and_keeps_shared_files() {
    if !needs(
        &["mke2fs", "debugfs", "e2fsck", "cpio", "sfdisk", "setfattr"],
        "remove_takes_the_tree_and_keeps_shared_files",
    ) {
        return;
    }
    let d = workdir();
    let img = relayouted(d.path(), RICH);
    let two = d.path().join("two.raw");
    add_r1(d.path(), &img, &["-o", s(&two)]);
    let one = d.path().join("one.raw");
    ok(
        d.path(),
        &["-q", "roots", "remove", s(&two), "r1", "-o", s(&one)],
    );
    let part = partition(&one, &d.path().join("one.part"));
    run("e2fsck", &["-fn", s(&part)]);
    let top = ok(d.path(), &["-q", "ls", s(&one), "/"]);
    assert!(!top.lines().any(|l| l == "r1"), "{top}");
    // The whole filesystem is r0.raw's again, link counts included.
    assert_eq!(
        ok(d.path(), &["-q", "manifest", s(&one)]),
        ok(d.path(), &["-q", "manifest", s(&img)])
    );
    let in_part = partition(&img, &d.path().join("r0.part"));
    for f in ["r0/usr/bin/hello", "r0/usr/lib/x/a", "r0/boot/EMPTY"] {
        assert_eq!(inode_links(&part, f), inode_links(&in_part, f), "{f}");
    }
    // In place too.
    ok(
        d.path(),
        &["-q", "roots", "remove", s(&two), "r1", "--in-place"],
    );
    assert!(
        same_bytes(&two, &one) || {
            let p2 = partition(&two, &d.path().join("inplace.part"));
            run("e2fsck", &["-fn", s(&p2)]);
            ok(d.path(), &["-q", "manifest", s(&two)]) == ok(d.path(), &["-q", "manifest", s(&img)])
        }
    );

    // The default root and the last root stay.
    let before = std::fs::read(&img).unwrap();
    fails(
        d.path(),
        &["roots", "remove", s(&img), "r0", "-o", "x.raw"],
        1,
        &["r0", "default root"],
    );
    let nodefault = d.path().join("nodefault.raw");
    ok(
        d.path(),
        &[
            "-q",
            "rm",
            s(&img),
            "/boot/grub/grub.cfg",
            "/r0/etc/default/grub",
            "-o",
            s(&nodefault),
        ],
    );
    fails(
        d.path(),
        &["roots", "remove", s(&nodefault), "r0", "-o", "x.raw"],
        1,
        &["r0", "last root"],
    );
    assert_eq!(std::fs::read(&img).unwrap(), before);
    assert!(!d.path().join("x.raw").exists());
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    if !needs(
        &["mke2fs", "cpio", "sfdisk"],
        "bad_input_is_refused_before_anything_is_written",
    ) {
        return;
    }
    let d = workdir();
    let img = relayouted(d.path(), "true");
    let before = std::fs::read(&img).unwrap();
    let i = s(&img);
    let add = |name: &str, from: &str, phrases: &[&str]| {
        fails(
            d.path(),
            &["roots", "add", i, name, "--from", from, "-o", "out.raw"],
            1,
            phrases,
        );
    };
    add("a/b", "r0", &["NAME `a/b`", "cannot contain `/`"]);
    add("..", "r0", &["NAME `..`", "cannot start with"]);
    add("", "r0", &["NAME", "cannot be empty"]);
    add("a b", "r0", &["NAME `a b`", "subroot=a b"]);
    add("boot", "r0", &["/boot already exists"]);
    add("r0", "r0", &["/r0 already exists"]);
    add("r1", "r7", &["--from r7", "no such root", "r0"]);
    add("r1", "../r0", &["--from `../r0`"]);
    fails(
        d.path(),
        &[
            "roots", "add", i, "r1", "--from", "r0", "--copied", "etc,../x", "-o", "out.raw",
        ],
        1,
        &["--copied", "`..`"],
    );
    fails(
        d.path(),
        &["roots", "remove", i, "r5", "--in-place"],
        1,
        &["NAME r5", "no such root"],
    );
    // An image that is not relayouted.
    let st = stage(&d.path().join("plain"), Some(Path::new(INITRD_DIR)));
    let plain = image(&d.path().join("plain"), &st);
    fails(
        d.path(),
        &["roots", s(&plain)],
        1,
        &["is not relayouted", "subroot relayout"],
    );
    fails(
        d.path(),
        &[
            "roots",
            "add",
            s(&plain),
            "r1",
            "--from",
            "r0",
            "--in-place",
        ],
        1,
        &["is not relayouted"],
    );
    assert_eq!(std::fs::read(&img).unwrap(), before, "the input changed");
    assert!(!d.path().join("out.raw").exists());
    assert!(common::names(d.path())
        .iter()
        .all(|n| !n.contains("subroot-tmp")));
}

/// The cached Debian image: relayouted, cloned as an overlay (checked by e2fsck -fn
/// through --verify full), the clone's manifest equal to r0's, and removed again.
#[test]
fn clones_the_debian_root() {
    if std::env::var_os("SUBROOT_CACHE").is_none() {
        eprintln!("SKIPPED clones_the_debian_root: set SUBROOT_CACHE");
        return;
    }
    let Some(deb) = debian_image("initramfs-tools") else {
        return;
    };
    let d = workdir();
    let r0 = d.path().join("r0.qcow2");
    ok(d.path(), &["-q", "relayout", s(&deb), "--overlay", s(&r0)]);
    let r1 = d.path().join("r1.qcow2");
    add_r1(d.path(), &r0, &["--overlay", s(&r1), "--verify", "full"]);
    // Metadata of everything (contents are shared inodes), contents of what was copied.
    let fast = ["--no-hash"];
    let m0 = root_manifest_of(d.path(), &r1, "r0", "", &fast);
    assert!(m0.len() > 5000, "{} entries", m0.len());
    assert_eq!(m0, root_manifest_of(d.path(), &r1, "r1", "", &fast));
    assert_eq!(
        root_manifest_of(d.path(), &r1, "r0", "/etc", &[]),
        root_manifest_of(d.path(), &r1, "r1", "/etc", &[])
    );
    assert!(std::fs::metadata(&r1).unwrap().len() < 64 * MIB);
    let back = d.path().join("back.qcow2");
    ok(
        d.path(),
        &[
            "-q",
            "roots",
            "remove",
            s(&r1),
            "r1",
            "--overlay",
            s(&back),
            "--verify",
            "full",
        ],
    );
    assert_eq!(
        ok(d.path(), &["-q", "manifest", "--no-hash", s(&back)]),
        ok(d.path(), &["-q", "manifest", "--no-hash", s(&r0)])
    );
}
