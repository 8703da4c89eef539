//! `subroot roots default` (switch the root that boots, or add a boot entry per root) and
//! `subroot relayout --undo` (the inverse of relayout), run as an unprivileged user.
//!
//! The inputs are made by the reference tools (the demo root staged with an
//! initramfs-tools initrd by GNU cpio + gzip, ext4 by `mke2fs -d`, an ESP by `mkfs.vfat`
//! and mtools, partitions by `sfdisk`) and relayouted by `subroot relayout`; the cached
//! Debian images (`scripts/debian-image.sh`) are relayouted through qcow2 overlays. The
//! judges: `subroot cat` / `mtype` on the results (every place says the same
//! `subroot=`), `e2fsck -fn`, `fsck.fat -n`, `qemu-img check`, `cmp` (the input is never
//! changed; initrds come back byte for byte), and `subroot manifest` (relayout then undo
//! gives back the input's tree).

mod common;

use common::relayout::{relayout_plan, sh, stage, INITRD_DIR};
use common::{
    debian_image, fails, names, need, ok, ok_bytes, run, s, same_bytes, subroot_in, workdir,
};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The files `roots default` edits in the fixture of [`multi_root_disk`]: (partition,
/// path).
const PLACES: [(&str, &str); 8] = [
    ("2", "/boot/grub/grub.cfg"),
    ("2", "/boot/loader/entries/demo.conf"),
    ("2", "/r0/etc/default/grub"),
    ("2", "/r0/etc/kernel/cmdline"),
    ("2", "/r1/etc/default/grub"),
    ("2", "/r1/etc/kernel/cmdline"),
    ("1", "/EFI/debian/grub.cfg"),
    ("1", "/loader/entries/esp.conf"),
];

fn tools(test: &str, more: &[&str]) -> bool {
    ["mke2fs", "e2fsck", "cpio", "sfdisk", "cmp"]
        .iter()
        .chain(more)
        .all(|t| need(t, test))
}

fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(dir, args)).expect("JSON output")
}

/// `dir/in.raw`: a 96 MiB MBR disk; p1 (1 MiB, 32 MiB) an ESP (mkfs.vfat, files by
/// mtools: a GRUB configuration with a `linux` line and a BLS entry); p2 the demo root
/// (ext4 by mke2fs -d) with a BLS entry, `/etc/kernel/cmdline`, and — when `second` — a
/// second system `r1/` (os-release, GRUB defaults, kernel command line) at the top.
fn disk(dir: &Path, second: bool) -> PathBuf {
    let st = stage(dir, Some(Path::new(INITRD_DIR)));
    sh(&format!(
        "cd {r} && mkdir -p boot/loader/entries etc/kernel && \
         printf 'title Demo\\nlinux /boot/vmlinuz-6.1.0-t\\ninitrd /boot/initrd.img-6.1.0-t\\noptions root=LABEL=root ro\\n' > boot/loader/entries/demo.conf && \
         printf 'root=LABEL=root ro quiet\\n' > etc/kernel/cmdline && \
         if {second}; then mkdir -p r1/etc/default r1/etc/kernel && cp etc/os-release r1/etc/ && \
           cp etc/default/grub r1/etc/default/ && cp etc/kernel/cmdline r1/etc/kernel/; fi",
        r = s(&st)
    ));
    let esp = dir.join("esp.v");
    let f = dir.join("espfiles");
    std::fs::create_dir_all(&f).expect("mkdir");
    std::fs::write(
        f.join("grub.cfg"),
        "menuentry 'Demo' $menuentry_id_option 'demo' {\n\tlinux /vmlinuz-6.1.0-t root=LABEL=root ro\n\tinitrd /initrd.img-6.1.0-t\n}\n",
    )
    .expect("w");
    std::fs::write(
        f.join("esp.conf"),
        "title Demo ESP\nlinux /vmlinuz-6.1.0-t\noptions root=LABEL=root ro\n",
    )
    .expect("w");
    let img = dir.join("in.raw");
    sh(&format!(
        "truncate -s 96M {i} && \
         printf 'label: dos\\nstart=2048, size=65536, type=ef\\nstart=67584, type=83\\n' | sfdisk -q {i} && \
         truncate -s 32M {e} && mkfs.vfat {e} >/dev/null && \
         mmd -i {e} ::/EFI ::/EFI/debian ::/loader ::/loader/entries && \
         mcopy -i {e} {f}/grub.cfg ::/EFI/debian/grub.cfg && mcopy -i {e} {f}/esp.conf ::/loader/entries/esp.conf && \
         dd if={e} of={i} bs=1M seek=1 conv=notrunc status=none && rm {e} && \
         mke2fs -q -F -t ext4 -L root -E offset=34603008 -d {r} {i} 63M && chmod a+r {i}",
        i = s(&img),
        e = s(&esp),
        f = s(&f),
        r = s(&st)
    ));
    img
}

/// [`disk`] with a second root, relayouted: `r0/` the demo system, `r1/` beside it.
fn multi_root_disk(dir: &Path) -> PathBuf {
    let img = disk(dir, true);
    let rel = dir.join("rel.raw");
    ok(
        dir,
        &[
            "-q",
            "relayout",
            s(&img),
            "-p",
            "2",
            "-o",
            s(&rel),
            "--move",
            "bin etc usr",
        ],
    );
    rel
}

/// The text of a file of `img`: `subroot cat` for the ext root, `mtype` for the ESP.
fn read(dir: &Path, img: &Path, part: &str, path: &str) -> String {
    if part == "1" {
        let esp = dir.join("esp-read.v");
        sh(&format!(
            "dd if={} of={} bs=1M skip=1 count=32 status=none",
            s(img),
            s(&esp)
        ));
        let o = std::process::Command::new("mtype")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-i", s(&esp), &format!("::{path}")])
            .output()
            .expect("mtype");
        assert!(o.status.success(), "mtype {path}: {o:?}");
        return String::from_utf8_lossy(&o.stdout).into_owned();
    }
    ok(dir, &["-q", "cat", "-p", part, s(img), path])
}

/// `e2fsck -fn` of p2 and `fsck.fat -n` of p1 of `img` (raw) are clean.
fn checks_clean(dir: &Path, img: &Path) {
    let p1 = dir.join("p1.v");
    let p2 = dir.join("p2.v");
    sh(&format!(
        "dd if={i} of={a} bs=1M skip=1 count=32 status=none && dd if={i} of={b} bs=1M skip=33 status=none",
        i = s(img),
        a = s(&p1),
        b = s(&p2)
    ));
    let f = run("e2fsck", &["-fn", s(&p2)]);
    assert!(f.status.success(), "e2fsck: {f:?}");
    let f = run("fsck.fat", &["-n", s(&p1)]);
    assert!(f.status.success(), "fsck.fat: {f:?}");
    std::fs::remove_file(&p1).ok();
    std::fs::remove_file(&p2).ok();
}

#[test]
fn default_switches_every_place_and_back() {
    let t = "default_switches_every_place_and_back";
    if !tools(
        t,
        &["mkfs.vfat", "mcopy", "mmd", "mtype", "fsck.fat", "qemu-img"],
    ) {
        return;
    }
    let d = workdir();
    let rel = multi_root_disk(d.path());
    let keep = d.path().join("rel.copy");
    run("cp", &[s(&rel), s(&keep)]);
    for (part, path) in PLACES {
        let text = read(d.path(), &rel, part, path);
        assert!(!text.contains("subroot=r1"), "{path}: {text}");
    }
    // The plan names every place.
    let plan = json(
        d.path(),
        &[
            "roots",
            "default",
            s(&rel),
            "r1",
            "-p",
            "2",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(plan["roots"], serde_json::json!(["r0", "r1"]));
    let planned: Vec<(String, String)> = plan["edits"]
        .as_array()
        .expect("edits")
        .iter()
        .map(|e| {
            (
                e["partition"].as_u64().unwrap_or(2).to_string(),
                e["path"].as_str().expect("path").to_string(),
            )
        })
        .collect();
    let mut want: Vec<(String, String)> = PLACES
        .iter()
        .map(|(p, f)| (p.to_string(), f.to_string()))
        .collect();
    let mut got = planned.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want);

    let out = d.path().join("r1.raw");
    ok(
        d.path(),
        &[
            "-q",
            "roots",
            "default",
            s(&rel),
            "r1",
            "-p",
            "2",
            "-o",
            s(&out),
        ],
    );
    for (part, path) in PLACES {
        let before = read(d.path(), &rel, part, path);
        let text = read(d.path(), &out, part, path);
        assert!(text.contains("subroot=r1"), "{path}: {text}");
        assert!(!text.contains("subroot=r0"), "{path}: {text}");
        // Only the parameter changed.
        assert_eq!(
            text.replace("subroot=r1", "")
                .split_whitespace()
                .collect::<Vec<_>>(),
            before
                .replace("subroot=r0", "")
                .split_whitespace()
                .collect::<Vec<_>>(),
            "{path}"
        );
    }
    checks_clean(d.path(), &out);
    assert!(same_bytes(&rel, &keep), "the input changed");
    // Again: nothing to change, the same bytes.
    let again = d.path().join("again.raw");
    let said = subroot_in(
        d.path(),
        &[
            "roots",
            "default",
            s(&out),
            "r1",
            "-p",
            "2",
            "-o",
            s(&again),
        ],
    );
    assert!(said.status.success());
    assert!(
        String::from_utf8_lossy(&said.stderr).contains("nothing to change"),
        "{said:?}"
    );
    assert!(same_bytes(&out, &again));
    // Switch back in place: every file is what the relayout wrote (r1's, which the
    // relayout left alone, now say subroot=r0 too).
    run("chmod", &["a+rw", s(&out)]);
    ok(
        d.path(),
        &[
            "-q",
            "roots",
            "default",
            s(&out),
            "r0",
            "-p",
            "2",
            "--in-place",
        ],
    );
    for (part, path) in PLACES {
        let text = read(d.path(), &out, part, path);
        if path.starts_with("/r1/") {
            assert!(
                text.contains("subroot=r0") && !text.contains("subroot=r1"),
                "{path}: {text}"
            );
        } else {
            assert_eq!(text, read(d.path(), &rel, part, path), "{path}");
        }
    }
    checks_clean(d.path(), &out);
    // As an overlay: a sound qcow2 backed by the input, holding the change.
    let ov = d.path().join("r1.qcow2");
    ok(
        d.path(),
        &[
            "-q",
            "roots",
            "default",
            s(&rel),
            "r1",
            "-p",
            "2",
            "--overlay",
            s(&ov),
        ],
    );
    assert!(run("qemu-img", &["check", s(&ov)]).status.success());
    let cfg = ok(
        d.path(),
        &["-q", "cat", "-p", "2", s(&ov), "/boot/grub/grub.cfg"],
    );
    assert!(cfg.contains("subroot=r1"), "{cfg}");
    assert!(same_bytes(&rel, &keep), "the input changed");
}

#[test]
fn entry_adds_a_boot_entry_per_root() {
    let t = "entry_adds_a_boot_entry_per_root";
    if !tools(t, &["mkfs.vfat", "mcopy", "mmd", "mtype", "fsck.fat"]) {
        return;
    }
    let d = workdir();
    let rel = multi_root_disk(d.path());
    let out = d.path().join("entries.raw");
    ok(
        d.path(),
        &[
            "-q",
            "roots",
            "default",
            s(&rel),
            "--entry",
            "-p",
            "2",
            "-o",
            s(&out),
        ],
    );
    for (part, cfg) in [("2", "/boot/grub/grub.cfg"), ("1", "/EFI/debian/grub.cfg")] {
        let before = read(d.path(), &rel, part, cfg);
        let text = read(d.path(), &out, part, cfg);
        // The default is untouched: the old file is the new one's beginning.
        assert!(text.starts_with(&before), "{cfg}: {text}");
        for r in ["r0", "r1"] {
            assert!(text.contains(&format!("'subroot-{r}'")), "{cfg}: {text}");
            assert!(text.contains(&format!("(subroot {r})'")), "{cfg}: {text}");
        }
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.trim_start().starts_with("linux"))
            .collect();
        assert_eq!(lines.len(), 3, "{cfg}: {text}");
        assert!(lines[2].ends_with(" subroot=r1"), "{cfg}: {text}");
    }
    let entries = ok(
        d.path(),
        &["-q", "ls", "-p", "2", s(&out), "/boot/loader/entries"],
    );
    let names: Vec<&str> = entries.lines().collect();
    assert_eq!(
        names,
        ["demo.conf", "demo.subroot-r0.conf", "demo.subroot-r1.conf"],
        "{entries}"
    );
    let r1 = read(
        d.path(),
        &out,
        "2",
        "/boot/loader/entries/demo.subroot-r1.conf",
    );
    assert_eq!(
        r1,
        "title Demo (subroot r1)\nlinux /boot/vmlinuz-6.1.0-t\ninitrd /boot/initrd.img-6.1.0-t\noptions root=LABEL=root ro subroot=r1\n"
    );
    // The copy has the original's owner and mode.
    let m = ok(d.path(), &["-q", "manifest", "-p", "2", s(&out)]);
    let row = |name: &str| {
        m.lines()
            .find(|l| l.starts_with(&format!("boot/loader/entries/{name}\t")))
            .map(|l| l.split('\t').skip(1).take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("{name} not in the manifest"))
    };
    assert_eq!(row("demo.subroot-r1.conf"), row("demo.conf"));
    // The /etc files are not touched by --entry.
    for f in ["/r0/etc/default/grub", "/r1/etc/kernel/cmdline"] {
        assert_eq!(
            read(d.path(), &out, "2", f),
            read(d.path(), &rel, "2", f),
            "{f}"
        );
    }
    checks_clean(d.path(), &out);
    // Again: the entries are there, nothing is added.
    let again = d.path().join("again.raw");
    ok(
        d.path(),
        &[
            "-q",
            "roots",
            "default",
            s(&out),
            "--entry",
            "-p",
            "2",
            "-o",
            s(&again),
        ],
    );
    assert!(same_bytes(&out, &again));
}

/// `subroot manifest` of the root filesystem of `img`.
fn manifest(dir: &Path, img: &Path, part: &str) -> String {
    ok(dir, &["-q", "manifest", "-p", part, s(img)])
}

#[test]
fn undo_gives_back_the_original_tree_and_initrds() {
    let t = "undo_gives_back_the_original_tree_and_initrds";
    if !tools(t, &["mkfs.vfat", "mcopy", "mmd", "mtype", "fsck.fat"]) {
        return;
    }
    let d = workdir();
    let img = disk(d.path(), false);
    let rel = d.path().join("rel.raw");
    ok(
        d.path(),
        &["-q", "relayout", s(&img), "-p", "2", "-o", s(&rel)],
    );
    // Boot entries per root on top, then undone: they go too.
    let ent = d.path().join("ent.raw");
    ok(
        d.path(),
        &[
            "-q",
            "roots",
            "default",
            s(&rel),
            "--entry",
            "-p",
            "2",
            "-o",
            s(&ent),
        ],
    );
    let keep = d.path().join("ent.copy");
    run("cp", &[s(&ent), s(&keep)]);
    let plan = json(
        d.path(),
        &[
            "relayout",
            "--undo",
            s(&ent),
            "-p",
            "2",
            "--dry-run",
            "--json",
        ],
    );
    let initrds = plan["initrds"].as_array().expect("initrds");
    assert_eq!(initrds.len(), 1, "{plan}");
    let back = d.path().join("back.raw");
    ok(
        d.path(),
        &[
            "-q",
            "relayout",
            "--undo",
            s(&ent),
            "-p",
            "2",
            "-o",
            s(&back),
        ],
    );
    assert!(same_bytes(&ent, &keep), "the input changed");
    // The tree is the input's, entry for entry (times of every directory included).
    assert_eq!(
        manifest(d.path(), &back, "2"),
        manifest(d.path(), &img, "2")
    );
    // The initrd and every boot configuration file are the original bytes.
    let initrd = "/boot/initrd.img-6.1.0-t";
    assert_eq!(
        ok_bytes(d.path(), &["-q", "cat", "-p", "2", s(&back), initrd]),
        ok_bytes(d.path(), &["-q", "cat", "-p", "2", s(&img), initrd])
    );
    for (part, path) in PLACES.iter().filter(|(_, p)| !p.starts_with("/r")) {
        assert_eq!(
            read(d.path(), &back, part, path),
            read(d.path(), &img, part, path),
            "{path}"
        );
    }
    for path in ["/etc/default/grub", "/etc/kernel/cmdline"] {
        assert_eq!(
            read(d.path(), &back, "2", path),
            read(d.path(), &img, "2", path),
            "{path}"
        );
    }
    checks_clean(d.path(), &back);
    // `roots flatten` is the same undo.
    let flat = d.path().join("flat.raw");
    ok(
        d.path(),
        &[
            "-q",
            "roots",
            "flatten",
            s(&ent),
            "r0",
            "-p",
            "2",
            "-o",
            s(&flat),
        ],
    );
    assert_eq!(
        manifest(d.path(), &flat, "2"),
        manifest(d.path(), &img, "2")
    );
    std::fs::remove_file(&flat).expect("rm");
    // In place too, and the image is no longer relayouted: a second undo is refused.
    run("chmod", &["a+rw", s(&ent)]);
    ok(
        d.path(),
        &["-q", "relayout", "--undo", s(&ent), "-p", "2", "--in-place"],
    );
    assert_eq!(manifest(d.path(), &ent, "2"), manifest(d.path(), &img, "2"));
    run("cp", &[s(&ent), s(&keep)]);
    fails(
        d.path(),
        &["relayout", "--undo", s(&ent), "-p", "2", "--in-place"],
        3,
        &["/r0 is not a root"],
    );
    assert!(same_bytes(&ent, &keep), "a refused undo changed the image");
}

/// Relayout then undo a cached Debian image (through qcow2 overlays): the manifest and
/// the initrds are the input's.
fn debian_round_trip(flavour: &str, test: &str) {
    if !tools(test, &["qemu-img"]) {
        return;
    }
    let Some(img) = debian_image(flavour) else {
        return;
    };
    let d = workdir();
    let (_, part) = relayout_plan(d.path(), &img);
    let rel = d.path().join("rel.qcow2");
    ok(d.path(), &["-q", "relayout", s(&img), "--overlay", s(&rel)]);
    let back = d.path().join("back.qcow2");
    let undo = json(
        d.path(),
        &[
            "-q",
            "relayout",
            "--undo",
            s(&rel),
            "-p",
            &part,
            "--overlay",
            s(&back),
            "--json",
        ],
    );
    assert!(run("qemu-img", &["check", s(&back)]).status.success());
    assert_eq!(
        manifest(d.path(), &back, &part),
        manifest(d.path(), &img, &part)
    );
    let initrds = undo["initrds"].as_array().expect("initrds");
    assert!(!initrds.is_empty(), "{undo}");
    for i in initrds {
        let p = i["path"].as_str().expect("path");
        let ipart = i["partition"]
            .as_u64()
            .map_or(part.clone(), |n| n.to_string());
        let orig = ok_bytes(d.path(), &["-q", "cat", "-p", &ipart, s(&img), p]);
        assert_eq!(orig.len() as u64, i["new_size"].as_u64().expect("new_size"));
        assert!(
            orig == ok_bytes(d.path(), &["-q", "cat", "-p", &ipart, s(&back), p]),
            "{p} is not the original"
        );
    }
    assert_eq!(undo["warnings"], serde_json::json!([]));
}

#[test]
fn undo_debian_initramfs_tools_image() {
    debian_round_trip("initramfs-tools", "undo_debian_initramfs_tools_image");
}

#[test]
fn undo_debian_dracut_image() {
    debian_round_trip("dracut", "undo_debian_dracut_image");
}

#[test]
fn undo_debian_separate_boot_image() {
    debian_round_trip("bootpart", "undo_debian_separate_boot_image");
}

#[test]
fn bad_input_is_refused_and_leaves_the_input_alone() {
    let t = "bad_input_is_refused_and_leaves_the_input_alone";
    if !tools(t, &["mkfs.vfat", "mcopy", "mmd"]) {
        return;
    }
    let d = workdir();
    let rel = multi_root_disk(d.path());
    // A plain (never relayouted) system.
    let pd = d.path().join("plain");
    std::fs::create_dir_all(&pd).expect("mkdir");
    let plain = disk(&pd, false);
    let keep = d.path().join("rel.copy");
    run("cp", &[s(&rel), s(&keep)]);
    let out = d.path().join("out.raw");
    let o = s(&out);
    let r = s(&rel);
    for (args, code, phrases) in [
        (
            vec!["roots", "default", r, "a/b", "-p", "2", "-o", o],
            1,
            vec!["cannot contain `/`"],
        ),
        (
            vec!["roots", "default", r, "..", "-p", "2", "-o", o],
            1,
            vec!["cannot start with"],
        ),
        (
            vec!["roots", "default", r, "r9", "-p", "2", "-o", o],
            1,
            vec!["no root \"r9\"", "does not exist", "the roots are r0, r1"],
        ),
        (
            vec!["roots", "default", r, "home", "-p", "2", "-o", o],
            1,
            vec!["holds no operating system"],
        ),
        (
            vec!["roots", "default", s(&plain), "r0", "-p", "2", "-o", o],
            3,
            vec!["no roots", "relayout the image first"],
        ),
        (
            vec!["relayout", "--undo", r, "-p", "2", "-o", o],
            3,
            vec!["other roots", "r1", "remove them first"],
        ),
        (
            vec!["relayout", "--undo", s(&plain), "-p", "2", "-o", o],
            3,
            vec!["/r0 is not a root"],
        ),
        (
            vec![
                "relayout",
                "--undo",
                r,
                "-p",
                "2",
                "--subroot",
                "r1/x",
                "-o",
                o,
            ],
            1,
            vec!["must be one directory name"],
        ),
    ] {
        fails(d.path(), &args, code, &phrases);
        assert!(!out.exists(), "{args:?} left an output");
    }
    assert!(same_bytes(&rel, &keep), "the input changed");
    assert!(
        names(d.path()).iter().all(|n| !n.contains("subroot-tmp")),
        "{:?}",
        names(d.path())
    );
}

#[test]
fn separate_boot_partition_gets_entries_and_comes_back() {
    let t = "separate_boot_partition_gets_entries_and_comes_back";
    if !tools(t, &["debugfs"]) {
        return;
    }
    let d = workdir();
    let (img, _) = common::relayout::separate_boot_disk(d.path());
    let rel = d.path().join("rel.raw");
    ok(
        d.path(),
        &["-q", "relayout", s(&img), "-p", "2", "-o", s(&rel)],
    );
    let ent = d.path().join("ent.raw");
    let plan = json(
        d.path(),
        &[
            "roots",
            "default",
            s(&rel),
            "--entry",
            "-p",
            "2",
            "-o",
            s(&ent),
            "--json",
        ],
    );
    assert_eq!(plan["edits"][0]["path"], "/grub/grub.cfg", "{plan}");
    assert_eq!(plan["edits"][0]["partition"], 1, "{plan}");
    let cfg = ok(
        d.path(),
        &["-q", "cat", "-p", "1", s(&ent), "/grub/grub.cfg"],
    );
    assert!(
        cfg.contains("'subroot-r0'") && cfg.contains("(subroot r0)'"),
        "{cfg}"
    );
    // Both filesystems are clean (the /boot partition was edited in process too).
    let (p1, p2) = (d.path().join("p1"), d.path().join("p2"));
    for (n, p) in [(1, &p1), (2, &p2)] {
        common::relayout::separate_part(&ent, n, p);
        let f = run("e2fsck", &["-fn", s(p)]);
        assert!(f.status.success(), "e2fsck p{n}: {f:?}");
    }
    // Undone: both partitions hold the input's trees again.
    let back = d.path().join("back.raw");
    ok(
        d.path(),
        &[
            "-q",
            "relayout",
            "--undo",
            s(&ent),
            "-p",
            "2",
            "-o",
            s(&back),
        ],
    );
    for part in ["1", "2"] {
        assert_eq!(
            manifest(d.path(), &back, part),
            manifest(d.path(), &img, part),
            "partition {part}"
        );
    }
}
