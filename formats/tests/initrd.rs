//! Tests of initrd flavour detection and the subroot hook, judged by the reference tools:
//! fake initramfs-tools and dracut initrds are built by GNU `cpio -o -H newc` and
//! `gzip`/`zstd` at test time; what `add_subroot` writes must be read back by `gzip -dc`/
//! `zstd -dc` and `cpio -t`/`cpio -tv`/`cpio -idmu` segment by segment (later segments
//! overwriting earlier files, as the kernel unpacks them); the hook scripts must parse under
//! `dash -n` and `busybox sh -n`, and run under dash and busybox with stub mount/panic
//! functions, issuing exactly the expected mount commands.
mod common;

use common::{need, noise, run, s, sh};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use subroot_formats::block::MemoryDevice;
use subroot_formats::cpio::{list_segments, zstdframe, Compression, CompressionSpec};
use subroot_formats::initrd::scan::{scan_with, Depth, PathView, Scan};
use subroot_formats::initrd::{
    add_subroot, add_subroot_tail, detect_flavour, hook_present, installed_files, AddOutcome,
    AddSubrootOptions, Flavour, Method,
};
use subroot_formats::Error;

const ORDER_BEFORE: &str =
    "/scripts/local-bottom/ntfs_3g \"$@\"\n[ -e /conf/param.conf ] && . /conf/param.conf\n";
const ORDER_LINES: &str =
    "/scripts/local-bottom/subroot \"$@\"\n[ -e /conf/param.conf ] && . /conf/param.conf\n";

fn shared(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn write(root: &Path, rel: &str, data: &[u8], mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, data).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// What initramfs-tools' `init` starts with (abridged).
const IT_INIT: &[u8] = b"#!/bin/sh\n. /conf/initramfs.conf\nfor conf in conf/conf.d/*; do\n\t[ -f \"${conf}\" ] && . \"${conf}\"\ndone\n. /scripts/functions\n";

fn initramfs_tools_tree(root: &Path) {
    write(root, "init", IT_INIT, 0o755);
    write(root, "scripts/functions", b"panic() { :; }\n", 0o644);
    write(
        root,
        "scripts/local-bottom/ORDER",
        ORDER_BEFORE.as_bytes(),
        0o644,
    );
    write(root, "scripts/local-bottom/ntfs_3g", b"#!/bin/sh\n", 0o755);
    write(root, "conf/initramfs.conf", b"MODULES=most\n", 0o644);
    write(root, "bin/busybox", &vec![0x7f; 5000], 0o755);
}

/// A dracut layout; `new_hookdir` adds /var/lib/dracut/hooks, named by dracut-lib.sh as
/// its hook directory (dracut 057+).
fn dracut_tree(root: &Path, new_hookdir: bool) {
    write(root, "init", b"#!/bin/sh\necho init\n", 0o755);
    let lib: &[u8] = if new_hookdir {
        b"hookdir=/var/lib/dracut/hooks\ngetarg() { :; }\n"
    } else {
        b"hookdir=/lib/dracut/hooks\ngetarg() { :; }\n"
    };
    write(root, "usr/lib/dracut-lib.sh", lib, 0o644);
    write(root, "usr/lib/dracut/modules.txt", b"base\n", 0o644);
    fs::create_dir_all(root.join("usr/lib/dracut/hooks/pre-pivot")).unwrap();
    fs::create_dir_all(root.join("usr/lib/dracut/hooks/cleanup")).unwrap();
    std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
    if new_hookdir {
        fs::create_dir_all(root.join("var/lib/dracut/hooks/pre-pivot")).unwrap();
    }
}

fn other_tree(root: &Path) {
    write(root, "init", b"#!/bin/sh\n", 0o755);
    write(root, "etc/mkinitcpio.conf", b"HOOKS=()\n", 0o644);
}

/// `cpio -o -H newc` of a tree (sorted names, owner root).
fn make_cpio(tree: &Path) -> Vec<u8> {
    sh(
        "cd \"$1\" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0",
        &[s(tree)],
    )
}

fn compress(c: Compression, data: &[u8], dir: &Path) -> Vec<u8> {
    let f = dir.join("to-compress");
    fs::write(&f, data).unwrap();
    match c {
        Compression::Gzip => run("gzip", &["-9", "-n", "-c", s(&f)]).stdout,
        Compression::Zstd => run("zstd", &["-q", "-c", s(&f)]).stdout,
        Compression::Xz => run("xz", &["-c", "--check=crc32", s(&f)]).stdout,
        Compression::None => data.to_vec(),
        other => panic!("no tool set up for {other}"),
    }
}

fn decompress_tool(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => "gzip -dc",
        Compression::Zstd => "zstd -dc",
        Compression::None => "cat",
        other => panic!("no tool set up for {other}"),
    }
}

/// An uncompressed early-microcode segment.
fn early_segment(dir: &Path) -> Vec<u8> {
    let t = dir.join("early");
    write(
        &t,
        "kernel/x86/microcode/GenuineIntel.bin",
        &(0..3000u32).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
        0o644,
    );
    make_cpio(&t)
}

struct Built {
    bytes: Vec<u8>,
    early_len: usize,
}

fn build(dir: &Path, tree: fn(&Path), c: Compression, early: bool) -> Built {
    let t = dir.join("tree");
    tree(&t);
    let main = compress(c, &make_cpio(&t), dir);
    let mut bytes = if early {
        early_segment(dir)
    } else {
        Vec::new()
    };
    let early_len = bytes.len();
    bytes.extend_from_slice(&main);
    Built { bytes, early_len }
}

fn add(bytes: &[u8], opts: &AddSubrootOptions) -> (AddOutcome, Vec<u8>) {
    let dev = MemoryDevice::from_vec(bytes.to_vec());
    let mut out = Vec::new();
    let r = add_subroot(&dev, &mut out, opts).expect("add_subroot");
    // The tail-only variant (what relayout appends in place) gives the same initrd.
    let mut tail = Vec::new();
    let sc = subroot_formats::initrd::scan::scan(&dev).expect("scan");
    let t = add_subroot_tail(&dev, &sc, &mut tail, opts).expect("add_subroot_tail");
    assert_eq!(
        t, r,
        "add_subroot_tail's outcome differs from add_subroot's"
    );
    let whole = match r {
        AddOutcome::Appended {
            kept,
            bytes: appended,
            ..
        } => {
            assert_eq!(tail.len() as u64, appended, "tail length");
            [&bytes[..kept as usize], &tail[..]].concat()
        }
        AddOutcome::AlreadyPresent { .. } => {
            assert!(tail.is_empty(), "a tail written although the hook is there");
            bytes.to_vec()
        }
        AddOutcome::Recompressed { .. } => tail,
    };
    assert!(
        whole == out,
        "kept input + tail differs from add_subroot's output"
    );
    (r, out)
}

/// Decompress the main segment of `bytes` (from `offset`) with the reference tool, list
/// it with `cpio -tv` and extract it with `cpio -idm` into `dest`; returns the listing.
fn judge_main(bytes: &[u8], offset: usize, c: Compression, dir: &Path, dest: &Path) -> String {
    let f = dir.join("main-out");
    fs::write(&f, &bytes[offset..]).unwrap();
    let tool = decompress_tool(c);
    let listing =
        String::from_utf8(sh(&format!("{tool} \"$1\" | cpio --quiet -tv"), &[s(&f)])).unwrap();
    fs::create_dir_all(dest).unwrap();
    sh(
        &format!("{tool} \"$1\" | (cd \"$2\" && cpio --quiet -idm --no-absolute-filenames)"),
        &[s(&f), s(dest)],
    );
    listing
}

/// Every segment of `bytes` cut out, decompressed with the reference tool and extracted
/// with `cpio -idmu` into `dest` in order (later files overwrite earlier ones, as the
/// kernel unpacks); returns each segment's `cpio -tv` listing.
fn judge_segments(bytes: &[u8], dir: &Path, dest: &Path) -> Vec<String> {
    let segs = list_segments(&MemoryDevice::from_vec(bytes.to_vec())).unwrap();
    fs::create_dir_all(dest).unwrap();
    let f = dir.join("segment");
    segs.iter()
        .map(|seg| {
            let (a, b) = (seg.offset as usize, (seg.offset + seg.length) as usize);
            fs::write(&f, &bytes[a..b]).unwrap();
            let tool = decompress_tool(seg.compression);
            sh(
                &format!(
                    "{tool} \"$1\" | (cd \"$2\" && cpio --quiet -idmu --no-absolute-filenames)"
                ),
                &[s(&f), s(dest)],
            );
            String::from_utf8(sh(&format!("{tool} \"$1\" | cpio --quiet -tv"), &[s(&f)])).unwrap()
        })
        .collect()
}

fn listing_line<'a>(listing: &'a str, name: &str) -> &'a str {
    listing
        .lines()
        .find(|l| l.ends_with(&format!(" {name}")))
        .unwrap_or_else(|| panic!("{name} not in cpio -tv listing:\n{listing}"))
}

fn expected_script(flavour: Flavour, sh: &[String]) -> Vec<u8> {
    let files = installed_files(flavour, sh).unwrap();
    files
        .into_iter()
        .find(|f| f.path.ends_with("/subroot") || f.path.ends_with("subroot-pre-pivot.sh"))
        .unwrap()
        .content
}

fn check_flavour(test: &str, tree: fn(&Path), flavour: Flavour, hook_name: &str, tools: &[&str]) {
    for tool in ["cpio", "gzip", "zstd"].iter().chain(tools) {
        if !need(tool, test) {
            return;
        }
    }
    for method in [Method::Append, Method::Recompress(None)] {
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            for early in [false, true] {
                check_one(tree, flavour, hook_name, method, c, early);
            }
        }
    }
}

fn check_one(
    tree: fn(&Path),
    flavour: Flavour,
    hook_name: &str,
    method: Method,
    c: Compression,
    early: bool,
) {
    let what = format!("{method:?} {c} early={early}");
    let dir = tempfile::tempdir().unwrap();
    let b = build(dir.path(), tree, c, early);
    let dev = MemoryDevice::from_vec(b.bytes.clone());
    assert_eq!(detect_flavour(&dev).unwrap(), flavour);
    assert!(!hook_present(&dev).unwrap());
    let opts = AddSubrootOptions {
        method,
        ..Default::default()
    };
    let (r, out) = add(&b.bytes, &opts);
    let segs = list_segments(&MemoryDevice::from_vec(out.clone())).unwrap();
    let input_segments = if early { 2 } else { 1 };
    match method {
        Method::Append => {
            let AddOutcome::Appended {
                flavour: f,
                replaced: false,
                bytes,
                ..
            } = r
            else {
                panic!("{what}: {r:?}");
            };
            assert_eq!(f, flavour);
            // The input is kept byte for byte; one segment of the main's codec follows.
            assert!(out.starts_with(&b.bytes), "{what}: input bytes changed");
            assert_eq!(out.len() as u64, b.bytes.len() as u64 + bytes);
            assert_eq!(segs.len(), input_segments + 1, "{what}");
            let last = segs.last().unwrap();
            assert_eq!(last.compression, c, "{what}");
            if c == Compression::None {
                assert_eq!(last.offset % 4, 0, "{what}");
            }
            assert!(bytes < 8192, "{what}: appended {bytes} bytes");
        }
        Method::Recompress(_) => {
            assert_eq!(r, AddOutcome::Recompressed { flavour }, "{what}");
            assert_eq!(segs.len(), input_segments, "{what}");
            assert_eq!(segs.last().unwrap().compression, c);
        }
    }

    // The early segment is untouched, byte for byte (judged by cmp).
    if early {
        let (a, o) = (dir.path().join("in"), dir.path().join("out"));
        fs::write(&a, &b.bytes).unwrap();
        fs::write(&o, &out).unwrap();
        run("cmp", &["-n", &b.early_len.to_string(), s(&a), s(&o)]);
        let l = sh("cpio --quiet -t < \"$1\"", &[s(&o)]);
        assert_eq!(
            String::from_utf8(l).unwrap().trim(),
            ".\nkernel\nkernel/x86\nkernel/x86/microcode\nkernel/x86/microcode/GenuineIntel.bin"
        );
    }

    let dest = dir.path().join("x");
    let listings = judge_segments(&out, dir.path(), &dest);
    assert!(
        listing_line(listings.last().unwrap(), hook_name).starts_with("-rwxr-xr-x"),
        "{what}: {listings:?}"
    );
    let script = fs::read(dest.join(hook_name)).unwrap();
    assert_eq!(script, expected_script(flavour, &opts.shared));
    assert!(String::from_utf8_lossy(&script).contains("SUBROOT_SHARED=\"boot var home\""));
    let mode = fs::metadata(dest.join(hook_name))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
    // Everything else is still there, with its content.
    let init: &[u8] = match flavour {
        Flavour::InitramfsTools => IT_INIT,
        _ => b"#!/bin/sh\necho init\n",
    };
    assert_eq!(fs::read(dest.join("init")).unwrap(), init);
    if flavour == Flavour::InitramfsTools {
        let order = fs::read_to_string(dest.join("scripts/local-bottom/ORDER")).unwrap();
        assert_eq!(order, format!("{ORDER_BEFORE}{ORDER_LINES}"), "{what}");
        assert_eq!(
            fs::read(dest.join("bin/busybox")).unwrap(),
            vec![0x7f; 5000]
        );
    }

    let out_dev = MemoryDevice::from_vec(out.clone());
    assert!(hook_present(&out_dev).unwrap());
    assert_eq!(detect_flavour(&out_dev).unwrap(), flavour);
    // Reproducible, and idempotent.
    let (_, again) = add(&b.bytes, &opts);
    assert!(again == out, "{what}: same input gave different output");
    let (r2, twice) = add(&out, &opts);
    assert_eq!(r2, AddOutcome::AlreadyPresent { flavour }, "{what}");
    assert!(twice == out, "{what}: adding twice changed the bytes");
}

#[test]
fn initramfs_tools_initrd_gets_the_hook() {
    check_flavour(
        "initramfs_tools_initrd_gets_the_hook",
        initramfs_tools_tree,
        Flavour::InitramfsTools,
        "scripts/local-bottom/subroot",
        &[],
    );
}

#[test]
fn dracut_initrd_gets_the_hook_in_var_lib() {
    check_flavour(
        "dracut_initrd_gets_the_hook_in_var_lib",
        |t| dracut_tree(t, true),
        Flavour::Dracut,
        "var/lib/dracut/hooks/pre-pivot/50-subroot-pre-pivot.sh",
        &[],
    );
}

#[test]
fn older_dracut_initrd_gets_the_hook_in_usr_lib() {
    check_flavour(
        "older_dracut_initrd_gets_the_hook_in_usr_lib",
        |t| dracut_tree(t, false),
        Flavour::Dracut,
        "usr/lib/dracut/hooks/pre-pivot/50-subroot-pre-pivot.sh",
        &[],
    );
}

#[test]
fn compression_override_and_other_shared_list() {
    let test = "compression_override_and_other_shared_list";
    if !need("cpio", test) || !need("gzip", test) || !need("zstd", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = build(dir.path(), initramfs_tools_tree, Compression::Gzip, true);
    let opts = AddSubrootOptions {
        method: Method::Recompress(Some("zstd:3".parse::<CompressionSpec>().unwrap())),
        mtime: 1_700_000_000,
        ..Default::default()
    };
    let (r, out) = add(&b.bytes, &opts);
    assert!(matches!(r, AddOutcome::Recompressed { .. }));
    assert_eq!(&out[..b.early_len], &b.bytes[..b.early_len]);
    assert_eq!(
        &out[b.early_len..b.early_len + 4],
        &[0x28, 0xb5, 0x2f, 0xfd]
    );
    let dest = dir.path().join("x");
    let listing = judge_main(&out, b.early_len, Compression::Zstd, dir.path(), &dest);
    listing_line(&listing, "scripts/local-bottom/subroot");
    let mtime = fs::metadata(dest.join("scripts/local-bottom/subroot"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        mtime
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        1_700_000_000
    );

    // A different shared list is refused without `replace`, nothing written...
    let other = AddSubrootOptions {
        shared: shared(&["var", "srv"]),
        ..Default::default()
    };
    let mut sink = Vec::new();
    let e = add_subroot(&MemoryDevice::from_vec(out.clone()), &mut sink, &other).unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported(m) if m.contains("other content") && m.contains("main archive")),
        "{e}"
    );
    assert!(sink.is_empty());
    // ... and with it, a segment appended behind the recompressed one replaces the hook;
    // ORDER keeps a single subroot line.
    let other = AddSubrootOptions {
        replace: true,
        ..other
    };
    let (r, out2) = add(&out, &other);
    assert!(
        matches!(
            r,
            AddOutcome::Appended {
                replaced: false,
                ..
            }
        ),
        "{r:?}"
    );
    assert!(out2.starts_with(&out));
    let dest2 = dir.path().join("y");
    judge_segments(&out2, dir.path(), &dest2);
    let script = fs::read_to_string(dest2.join("scripts/local-bottom/subroot")).unwrap();
    assert!(script.contains("SUBROOT_SHARED=\"var srv\""));
    let order = fs::read_to_string(dest2.join("scripts/local-bottom/ORDER")).unwrap();
    assert_eq!(order, format!("{ORDER_BEFORE}{ORDER_LINES}"));

    // Bad shared names are refused.
    for bad in ["a/b", "..", "", "x y", "sysroot", "a\"b"] {
        let o = AddSubrootOptions {
            shared: shared(&[bad]),
            ..Default::default()
        };
        let dev = MemoryDevice::from_vec(b.bytes.clone());
        let e = add_subroot(&dev, Vec::new(), &o).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{bad:?}: {e}");
    }
}

/// Replacing the hook replaces the appended segment (never stacks one more): the result is
/// byte for byte what appending to the original gives; `--recompress` folds the appended
/// segment into the main one.
#[test]
fn replacing_the_hook_replaces_the_appended_segment() {
    let test = "replacing_the_hook_replaces_the_appended_segment";
    if !need("cpio", test) || !need("zstd", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = build(dir.path(), initramfs_tools_tree, Compression::Zstd, true);
    let (_, first) = add(&b.bytes, &AddSubrootOptions::default());
    let other = AddSubrootOptions {
        shared: shared(&["srv"]),
        replace: true,
        ..Default::default()
    };
    let (r, refreshed) = add(&first, &other);
    assert!(
        matches!(r, AddOutcome::Appended { replaced: true, .. }),
        "{r:?}"
    );
    let (_, direct) = add(&b.bytes, &other);
    assert!(
        refreshed == direct,
        "replacing differs from appending to the original"
    );
    assert_eq!(
        list_segments(&MemoryDevice::from_vec(refreshed.clone()))
            .unwrap()
            .len(),
        3
    );
    // Back to the default list: again exactly one appended segment.
    let back = AddSubrootOptions {
        replace: true,
        ..Default::default()
    };
    let (_, back_out) = add(&refreshed, &back);
    assert!(back_out == first);
    // Folded in by recompressing: two segments, the hook in the main one.
    let fold = AddSubrootOptions {
        method: Method::Recompress(None),
        ..Default::default()
    };
    let (r, folded) = add(&first, &fold);
    assert!(matches!(r, AddOutcome::Recompressed { .. }), "{r:?}");
    let (_, recompressed) = add(&b.bytes, &fold);
    assert!(folded == recompressed);
    let segs = list_segments(&MemoryDevice::from_vec(folded.clone())).unwrap();
    assert_eq!(segs.len(), 2);
    let dest = dir.path().join("x");
    let listings = judge_segments(&folded, dir.path(), &dest);
    listing_line(&listings[1], "scripts/local-bottom/subroot");
    assert_eq!(
        fs::read_to_string(dest.join("scripts/local-bottom/ORDER")).unwrap(),
        format!("{ORDER_BEFORE}{ORDER_LINES}")
    );
}

#[test]
fn missing_order_file_is_created() {
    let test = "missing_order_file_is_created";
    if !need("cpio", test) || !need("gzip", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = build(
        dir.path(),
        |t| {
            initramfs_tools_tree(t);
            fs::remove_file(t.join("scripts/local-bottom/ORDER")).unwrap();
        },
        Compression::Gzip,
        false,
    );
    let (_, out) = add(&b.bytes, &AddSubrootOptions::default());
    let dest = dir.path().join("x");
    let listings = judge_segments(&out, dir.path(), &dest);
    assert!(listing_line(&listings[1], "scripts/local-bottom/ORDER").starts_with("-rw-r--r--"));
    let order = fs::read_to_string(dest.join("scripts/local-bottom/ORDER")).unwrap();
    assert_eq!(order, format!("{ORDER_BEFORE}{ORDER_LINES}"));
}

#[test]
fn other_flavour_is_unsupported() {
    let test = "other_flavour_is_unsupported";
    if !need("cpio", test) || !need("gzip", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = build(dir.path(), other_tree, Compression::Gzip, false);
    let dev = MemoryDevice::from_vec(b.bytes.clone());
    assert_eq!(detect_flavour(&dev).unwrap(), Flavour::Other);
    let e = add_subroot(&dev, Vec::new(), &AddSubrootOptions::default()).unwrap_err();
    match e {
        Error::Unsupported(m) => {
            assert!(m.contains("neither initramfs-tools nor dracut"), "{m}");
            assert!(m.contains("conf/initramfs.conf missing"), "{m}");
        }
        other => panic!("expected Unsupported, got {other}"),
    }
}

// ---- the scripts themselves ----

/// Every script, as installed and as put into an initrd, for two shared lists.
fn all_scripts() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for list in [shared(&["boot", "var", "home"]), shared(&[])] {
        for f in [Flavour::InitramfsTools, Flavour::Dracut] {
            for file in installed_files(f, &list).unwrap() {
                if file.path.ends_with(".sh") || file.path.ends_with("/subroot") {
                    v.push((format!("{} ({list:?})", file.path), file.content));
                }
            }
        }
    }
    v
}

#[test]
fn scripts_parse_under_dash_and_busybox() {
    let test = "scripts_parse_under_dash_and_busybox";
    if !need("dash", test) || !need("busybox", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scripts = all_scripts();
    assert_eq!(scripts.len(), 6);
    for (i, (name, content)) in scripts.iter().enumerate() {
        let p = dir.path().join(format!("s{i}"));
        fs::write(&p, content).unwrap();
        for (tool, args) in [("dash", vec!["-n"]), ("busybox", vec!["sh", "-n"])] {
            let mut a = args.clone();
            a.push(s(&p));
            let out = Command::new(common::which(tool).unwrap())
                .args(&a)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{tool} -n {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // A broken script must fail the same check (the judge can fail).
    let p = dir.path().join("broken");
    fs::write(&p, "if true; then\n").unwrap();
    assert!(!Command::new("dash")
        .arg("-n")
        .arg(&p)
        .status()
        .unwrap()
        .success());
}

#[test]
fn scripts_have_no_bashisms() {
    if !need("checkbashisms", "scripts_have_no_bashisms") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, content)) in all_scripts().iter().enumerate() {
        let p = dir.path().join(format!("s{i}"));
        fs::write(&p, content).unwrap();
        let out = Command::new(common::which("checkbashisms").unwrap())
            .arg("-f")
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "checkbashisms {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A fake physical root: top-level boot, var, home; subroots r0 (with every mount point
/// and sysroot) and r1 (no home, no sysroot).
fn fake_root(root: &Path) {
    for d in [
        "boot",
        "var",
        "home",
        "r0/boot",
        "r0/var",
        "r0/home",
        "r0/sysroot",
        "r1/boot",
        "r1/var",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    std::os::unix::fs::symlink("/etc", root.join("evil")).unwrap();
}

struct Sandbox {
    _dir: tempfile::TempDir,
    base: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_path_buf();
        fake_root(&base.join("root"));
        let stub = "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> \"$SUBROOT_TEST_LOG\"\n";
        for n in ["mount", "umount"] {
            write(&base, &format!("bin/{n}"), stub.as_bytes(), 0o755);
        }
        Sandbox { _dir: dir, base }
    }
    fn p(&self, rel: &str) -> String {
        s(&self.base.join(rel)).to_string()
    }
    fn log(&self) -> String {
        fs::read_to_string(self.base.join("log")).unwrap_or_default()
    }
    /// Replace the sandbox paths in the log by R (root), P (phys).
    fn log_short(&self) -> Vec<String> {
        self.log()
            .replace(&self.p("root"), "R")
            .replace(&self.p("phys"), "P")
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn run_shell(shell: &str, script: &Path, env: &[(&str, String)]) {
    let mut cmd = if shell == "busybox" {
        let mut c = Command::new(common::which("busybox").unwrap());
        c.arg("sh");
        c
    } else {
        Command::new(common::which(shell).unwrap())
    };
    let out = cmd
        .arg(script)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{shell} {script:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_initramfs_tools(shell: &str, cmdline: &str) -> Sandbox {
    run_initramfs_tools_fstab(shell, cmdline, None)
}

/// The sandbox's subroot r0 gets `/etc/fstab` with `fstab`.
fn r0_fstab(sb: &Sandbox, fstab: Option<&str>) {
    if let Some(text) = fstab {
        write(&sb.base, "root/r0/etc/fstab", text.as_bytes(), 0o644);
    }
}

/// An fstab that mounts `/boot` (tab-separated, trailing `/`) and `/home` (last line,
/// no newline) itself; `/var` only in a comment.
const FSTAB_BOOT_HOME: &str = "# /var was on /dev/sda3\nUUID=r / ext4 defaults 0 1\n\n\
                               UUID=b\t/boot/\text4\tdefaults\t0 2\n  LABEL=h /home ext4 defaults 0 2";

fn run_initramfs_tools_fstab(shell: &str, cmdline: &str, fstab: Option<&str>) -> Sandbox {
    let sb = Sandbox::new();
    r0_fstab(&sb, fstab);
    let script = installed_files(Flavour::InitramfsTools, &shared(&["boot", "var", "home"]))
        .unwrap()
        .remove(0)
        .content;
    write(&sb.base, "script", &script, 0o755);
    write(&sb.base, "cmdline", cmdline.as_bytes(), 0o644);
    let functions = "log_begin_msg() { echo \"begin $*\" >> \"$SUBROOT_TEST_LOG\"; }\n\
                     log_end_msg() { echo \"end\" >> \"$SUBROOT_TEST_LOG\"; }\n\
                     log_warning_msg() { echo \"warning $*\" >> \"$SUBROOT_TEST_LOG\"; }\n\
                     panic() { echo \"panic $*\" >> \"$SUBROOT_TEST_LOG\"; }\n";
    write(&sb.base, "functions", functions.as_bytes(), 0o644);
    run_shell(
        shell,
        &sb.base.join("script"),
        &[
            ("rootmnt", sb.p("root")),
            ("SUBROOT_FUNCTIONS", sb.p("functions")),
            ("SUBROOT_CMDLINE_FILE", sb.p("cmdline")),
            ("SUBROOT_MOUNT", sb.p("bin/mount")),
            ("SUBROOT_UMOUNT", sb.p("bin/umount")),
            ("SUBROOT_PHYS", sb.p("phys")),
            ("SUBROOT_TEST_LOG", sb.p("log")),
        ],
    );
    sb
}

fn mounts(log: &[String]) -> Vec<&str> {
    log.iter()
        .map(String::as_str)
        .filter(|l| l.starts_with("mount ") || l.starts_with("umount "))
        .collect()
}

#[test]
fn initramfs_tools_hook_issues_the_right_mounts() {
    let test = "initramfs_tools_hook_issues_the_right_mounts";
    if !need("dash", test) || !need("busybox", test) {
        return;
    }
    for shell in ["dash", "busybox"] {
        let sb = run_initramfs_tools(
            shell,
            "BOOT_IMAGE=/vmlinuz root=/dev/sda1 subroot=zz ro subroot=/r0/\n",
        );
        let log = sb.log_short();
        assert_eq!(
            mounts(&log),
            [
                "mount -o move R P",
                "mount -o bind P/r0 R",
                "mount -o bind,remount,rw R R",
                "mount -o bind P/boot R/boot",
                "mount -o bind,remount,rw R/boot R/boot",
                "mount -o bind P/var R/var",
                "mount -o bind,remount,rw R/var R/var",
                "mount -o bind P/home R/home",
                "mount -o bind,remount,rw R/home R/home",
                "mount -o move P R/sysroot",
            ],
            "{shell}: {log:?}"
        );
        assert!(log.first().unwrap().starts_with("begin"), "{log:?}");
        assert_eq!(log.last().unwrap(), "end");

        // r1: home is created (the fake root is writable), no sysroot → detach.
        let sb = run_initramfs_tools(shell, "root=/dev/sda1 subroot=r1");
        let log = sb.log_short();
        assert_eq!(
            mounts(&log),
            [
                "mount -o move R P",
                "mount -o bind P/r1 R",
                "mount -o bind,remount,rw R R",
                "mount -o bind P/boot R/boot",
                "mount -o bind,remount,rw R/boot R/boot",
                "mount -o bind P/var R/var",
                "mount -o bind,remount,rw R/var R/var",
                "mount -o bind P/home R/home",
                "mount -o bind,remount,rw R/home R/home",
                "umount -l P",
            ],
            "{shell}: {log:?}"
        );
        assert!(sb.base.join("root/r1/home").is_dir());

        // Directories the subroot's own fstab mounts (a separate /boot, /home) are left
        // to the system; r1 has no fstab and still shares them.
        let sb = run_initramfs_tools_fstab(shell, "subroot=r0", Some(FSTAB_BOOT_HOME));
        let log = sb.log_short();
        assert_eq!(
            mounts(&log),
            [
                "mount -o move R P",
                "mount -o bind P/r0 R",
                "mount -o bind,remount,rw R R",
                "mount -o bind P/var R/var",
                "mount -o bind,remount,rw R/var R/var",
                "mount -o move P R/sysroot",
            ],
            "{shell} with fstab: {log:?}"
        );
        let sb = run_initramfs_tools_fstab(shell, "subroot=r1", Some(FSTAB_BOOT_HOME));
        assert_eq!(mounts(&sb.log_short()).len(), 10, "{shell}: {:?}", sb.log());

        let sb = run_initramfs_tools(shell, "root=/dev/sda1 ro quiet");
        assert_eq!(sb.log(), "", "{shell}: no subroot= must do nothing");

        for (arg, what) in [
            ("subroot=missing", "is not a directory"),
            ("subroot=../x", "invalid subroot"),
            ("subroot=r0/../r1", "invalid subroot"),
            ("subroot=//r0", "invalid subroot"),
            ("subroot=evil", "is not a directory"),
        ] {
            let sb = run_initramfs_tools(shell, &format!("root=/dev/sda1 {arg}"));
            let log = sb.log_short();
            assert!(mounts(&log).is_empty(), "{shell} {arg}: {log:?}");
            assert_eq!(log.len(), 1, "{shell} {arg}: {log:?}");
            assert!(
                log[0].starts_with("panic subroot:") && log[0].contains(what),
                "{log:?}"
            );
        }
    }
}

fn run_dracut(shell: &str, cmdline: &str) -> Sandbox {
    run_dracut_fstab(shell, cmdline, None)
}

fn run_dracut_fstab(shell: &str, cmdline: &str, fstab: Option<&str>) -> Sandbox {
    let sb = Sandbox::new();
    r0_fstab(&sb, fstab);
    let hook = installed_files(Flavour::Dracut, &shared(&["boot", "var", "home"]))
        .unwrap()
        .into_iter()
        .find(|f| f.path.ends_with("subroot-pre-pivot.sh"))
        .unwrap()
        .content;
    write(&sb.base, "hook.sh", &hook, 0o755);
    // The hook is sourced by dracut with dracut-lib.sh loaded: stub what it uses.
    let wrapper = format!(
        "CMDLINE='{cmdline}'\n\
         getarg() {{ _v=; for _o in $CMDLINE; do case $_o in subroot=*) _v=${{_o#subroot=}};; esac; done; \
         [ -n \"$_v\" ] && {{ echo \"$_v\"; return 0; }}; return 1; }}\n\
         warn() {{ echo \"warn $*\" >> \"$SUBROOT_TEST_LOG\"; }}\n\
         info() {{ echo \"info $*\" >> \"$SUBROOT_TEST_LOG\"; }}\n\
         emergency_shell() {{ echo \"emergency_shell $*\" >> \"$SUBROOT_TEST_LOG\"; }}\n\
         die() {{ echo \"die $*\" >> \"$SUBROOT_TEST_LOG\"; exit 1; }}\n\
         . \"$HOOK\"\n\
         echo \"after hook\" >> \"$SUBROOT_TEST_LOG\"\n"
    );
    write(&sb.base, "wrapper.sh", wrapper.as_bytes(), 0o755);
    run_shell(
        shell,
        &sb.base.join("wrapper.sh"),
        &[
            ("NEWROOT", sb.p("root")),
            ("HOOK", sb.p("hook.sh")),
            ("SUBROOT_MOUNT", sb.p("bin/mount")),
            ("SUBROOT_UMOUNT", sb.p("bin/umount")),
            ("SUBROOT_PHYS", sb.p("phys")),
            ("SUBROOT_TEST_LOG", sb.p("log")),
        ],
    );
    sb
}

#[test]
fn dracut_hook_issues_the_right_mounts() {
    let test = "dracut_hook_issues_the_right_mounts";
    if !need("dash", test) || !need("busybox", test) {
        return;
    }
    for shell in ["dash", "busybox"] {
        let sb = run_dracut(shell, "root=/dev/sda1 subroot=r1 subroot=r0");
        let log = sb.log_short();
        assert_eq!(
            mounts(&log),
            [
                "mount --make-rprivate /",
                "mount --move R P",
                "mount --bind P/r0 R",
                "mount -o remount,bind,rw R",
                "mount --bind P/boot R/boot",
                "mount -o remount,bind,rw R/boot",
                "mount --bind P/var R/var",
                "mount -o remount,bind,rw R/var",
                "mount --bind P/home R/home",
                "mount -o remount,bind,rw R/home",
                "mount --move P R/sysroot",
            ],
            "{shell}: {log:?}"
        );
        assert_eq!(log.last().unwrap(), "after hook", "the hook must not exit");

        let sb = run_dracut_fstab(shell, "subroot=r0", Some(FSTAB_BOOT_HOME));
        let log = sb.log_short();
        assert_eq!(
            mounts(&log),
            [
                "mount --make-rprivate /",
                "mount --move R P",
                "mount --bind P/r0 R",
                "mount -o remount,bind,rw R",
                "mount --bind P/var R/var",
                "mount -o remount,bind,rw R/var",
                "mount --move P R/sysroot",
            ],
            "{shell} with fstab: {log:?}"
        );

        let sb = run_dracut(shell, "root=/dev/sda1 ro");
        assert_eq!(
            sb.log(),
            "after hook\n",
            "{shell}: no subroot= must do nothing"
        );

        for (arg, what) in [
            ("subroot=missing", "is not a directory"),
            ("subroot=../x", "invalid subroot"),
        ] {
            let sb = run_dracut(shell, &format!("root=/dev/sda1 {arg}"));
            let log = sb.log_short();
            assert!(mounts(&log).is_empty(), "{shell} {arg}: {log:?}");
            assert_eq!(log.len(), 3, "{shell} {arg}: {log:?}");
            assert!(
                log[0].starts_with("warn subroot:") && log[0].contains(what),
                "{log:?}"
            );
            assert!(
                log[1].starts_with("emergency_shell -n subroot subroot:"),
                "{log:?}"
            );
            assert_eq!(log[2], "after hook");
        }
    }
}

#[test]
fn installed_files_are_complete() {
    let it = installed_files(Flavour::InitramfsTools, &shared(&["boot"])).unwrap();
    assert_eq!(it.len(), 1);
    assert_eq!(
        it[0].path,
        "/etc/initramfs-tools/scripts/local-bottom/subroot"
    );
    assert_eq!(it[0].mode, 0o100755);
    let d = installed_files(Flavour::Dracut, &shared(&["boot"])).unwrap();
    let paths: Vec<&str> = d.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/usr/lib/dracut/modules.d/90subroot/module-setup.sh",
            "/usr/lib/dracut/modules.d/90subroot/subroot-pre-pivot.sh",
            "/etc/dracut.conf.d/90-subroot.conf",
        ]
    );
    let setup = String::from_utf8(d[0].content.clone()).unwrap();
    assert!(setup.contains("inst_hook pre-pivot 50 \"$moddir/subroot-pre-pivot.sh\""));
    assert!(setup.contains("return 255"));
    assert_eq!(d[2].content, b"# Added by subroot: include the subroot module (boot into subroot=DIR of the root fs).\nadd_dracutmodules+=\" subroot \"\n");
    assert!(installed_files(Flavour::Other, &[]).is_err());
}

/// `tree` plus the bulk of a real initrd behind every path the hook needs: kernel modules
/// and firmware under usr/lib (noise, so that zstd writes many blocks, and zeros).
fn with_bulk(root: &Path, tree: fn(&Path)) {
    tree(root);
    for i in 0..12 {
        write(
            root,
            &format!("usr/lib/modules/6.1.0/kernel/m{i}.ko"),
            &noise(150_000, i),
            0o644,
        );
    }
    write(root, "usr/lib/firmware/zeros.bin", &vec![0; 400_000], 0o644);
    write(root, "usr/sbin/modprobe", &noise(30_000, 99), 0o755);
}

fn it_bulk(root: &Path) {
    with_bulk(root, initramfs_tools_tree);
}

fn dracut_bulk(root: &Path) {
    with_bulk(root, |r| dracut_tree(r, false));
}

fn dracut_var_bulk(root: &Path) {
    with_bulk(root, |r| dracut_tree(r, true));
}

/// The entries of `view` that the hook of `sc`'s flavour depends on: those on its paths
/// (an initramfs-tools walk stops before the dracut paths, whose entries it then lacks).
fn relevant(sc: &Scan, view: &PathView) -> PathView {
    let mut paths = sc.flavour_hook_paths();
    paths.push("scripts/local-bottom/ORDER".to_string());
    let on_path = |n: &str| {
        paths
            .iter()
            .any(|p| p == n || p.strip_prefix(n).is_some_and(|r| r.starts_with('/')))
    };
    PathView {
        names: view
            .names
            .iter()
            .filter(|(n, _)| on_path(n))
            .map(|(n, f)| (n.clone(), f.clone()))
            .collect(),
        local_bottom_scripts: view.local_bottom_scripts.clone(),
    }
}

/// The parts of a scan that decide what add-subroot does.
fn decisions(sc: &Scan) -> String {
    format!(
        "flavour {:?} init {:?} hook {} appended {:?} dracut dirs {:?} all {:?} base {:?} segments {:?}",
        sc.flavour(),
        sc.init_segments,
        sc.hook_present(),
        sc.appended_hook(),
        sc.dracut_hook_dirs(),
        relevant(sc, &sc.all),
        relevant(sc, sc.base()),
        sc.segments
            .iter()
            // A skipped gzip member's length counts the zero padding behind it.
            .map(|s| (s.offset, s.compression))
            .collect::<Vec<_>>()
    )
}

/// Scan `bytes` both ways; returns (sorted-prefix scan, full scan) after checking that
/// they decide the same and that `add_subroot` writes the same bytes either way.
fn scan_both(bytes: &[u8]) -> (Scan, Scan) {
    let dev = MemoryDevice::from_vec(bytes.to_vec());
    let quick = scan_with(&dev, Depth::SortedPrefix).expect("sorted-prefix scan");
    let full = scan_with(&dev, Depth::Full).expect("full scan");
    assert!(full.is_complete());
    assert_eq!(decisions(&quick), decisions(&full));
    let out = |depth| {
        let mut out = Vec::new();
        let opts = AddSubrootOptions {
            depth,
            ..Default::default()
        };
        let r = add_subroot(&dev, &mut out, &opts).expect("add_subroot");
        (r, out)
    };
    let (rq, oq) = out(Depth::SortedPrefix);
    let (rf, of) = out(Depth::Full);
    assert_eq!(rq, rf);
    assert!(
        oq == of,
        "add_subroot writes other bytes after a sorted-prefix scan"
    );
    (quick, full)
}

#[test]
fn sorted_main_segment_is_decoded_only_up_to_the_needed_paths() {
    if !need("cpio", "sorted_main_segment") || !need("zstd", "sorted_main_segment") {
        return;
    }
    for (name, tree, c) in [
        ("initramfs-tools", it_bulk as fn(&Path), Compression::Zstd),
        ("dracut", dracut_bulk, Compression::Zstd),
        ("initramfs-tools", it_bulk, Compression::Gzip),
        ("dracut", dracut_bulk, Compression::Gzip),
    ] {
        let name = format!("{name} {c}");
        let dir = tempfile::tempdir().unwrap();
        let built = build(dir.path(), tree, c, true);
        let (quick, full) = scan_both(&built.bytes);
        // The early segment is read whole; the main one stops before usr/lib/firmware.
        assert!(quick.segments[0].complete, "{name}");
        let main = &quick.segments[1];
        assert!(
            !main.complete && main.entries < full.segments[1].entries,
            "{name}: the main segment was decoded to its end: {main:?}"
        );
        assert!(main.uncompressed_size * 4 < full.segments[1].uncompressed_size);

        // After the hook is appended, the appended segment is still found (and read
        // whole) behind the skipped main segment: a second run changes nothing.
        let (r, out) = add(&built.bytes, &AddSubrootOptions::default());
        assert!(matches!(r, AddOutcome::Appended { .. }), "{name}: {r:?}");
        let (quick, _) = scan_both(&out);
        assert_eq!(quick.appended_hook(), Some(2), "{name}");
        assert!(!quick.segments[1].complete && quick.segments[2].complete);
        let (again, same) = add(&out, &AddSubrootOptions::default());
        assert!(matches!(again, AddOutcome::AlreadyPresent { .. }), "{name}");
        assert!(same == out);
    }
}

/// A test case: its name, the tree it builds, what it expects.
type Case<T> = (&'static str, fn(&Path), T);

/// `tree` with a plain `init` (not initramfs-tools' own script) instead of its own.
fn with_plain_init(root: &Path, tree: fn(&Path)) {
    tree(root);
    write(root, "init", b"#!/bin/sh\necho init\n", 0o755);
}

/// `tree` with dracut's markers added (`usr/lib/dracut-lib.sh`, `usr/lib/dracut/`).
fn with_dracut_markers(root: &Path, tree: fn(&Path)) {
    tree(root);
    write(root, "usr/lib/dracut-lib.sh", b"getarg() { :; }\n", 0o644);
    write(root, "usr/lib/dracut/modules.txt", b"base\n", 0o644);
}

/// Entries of the plain cpio `archive` whose names sort before `name`.
fn entries_before(archive: &[u8], name: &str) -> u64 {
    let dev = MemoryDevice::from_vec(archive.to_vec());
    let mut n = 0;
    subroot_formats::cpio::visit_entries(&dev, |_, h, _| {
        let key = h.name.strip_prefix(b"./").unwrap_or(&h.name);
        if key < name.as_bytes() {
            n += 1;
        }
        Ok(())
    })
    .unwrap();
    n
}

#[test]
fn initramfs_tools_init_ends_the_walk_after_its_own_paths() {
    let test = "initramfs_tools_init_ends_the_walk";
    if !need("cpio", test) || !need("zstd", test) {
        return;
    }
    // initramfs-tools' init: the walk stops right after scripts/local-bottom/, before usr/
    // (where dracut's markers would be); with any other init it waits for usr/lib/dracut.
    let cases: [Case<bool>; 2] = [
        ("initramfs-tools init", it_bulk, true),
        ("plain init", |r| with_plain_init(r, it_bulk), false),
    ];
    for (name, tree, stops_early) in cases {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("tree");
        tree(&t);
        let archive = make_cpio(&t);
        let bytes = compress(Compression::Zstd, &archive, dir.path());
        let (quick, full) = scan_both(&bytes);
        assert_eq!(quick.flavour(), Flavour::InitramfsTools, "{name}");
        assert_eq!(quick.init_is_initramfs_tools, stops_early, "{name}");
        let decoded = quick.segments[0].entries;
        let before_usr = entries_before(&archive, "usr");
        assert!(!quick.segments[0].complete, "{name}: decoded to the end");
        if stops_early {
            // The first name after scripts/local-bottom/ (`usr`) is decoded, then the rest is
            // skipped.
            assert!(
                decoded <= before_usr + 1,
                "{name}: {decoded} entries decoded, {before_usr} before usr/"
            );
        } else {
            assert!(
                decoded > entries_before(&archive, "usr/lib/dracut"),
                "{name}: {decoded}"
            );
        }
        assert!(decoded < full.segments[0].entries, "{name}");
    }
}

#[test]
fn both_flavours_markers_go_by_init() {
    let test = "both_flavours_markers_go_by_init";
    if !need("cpio", test) || !need("zstd", test) {
        return;
    }
    // dracut's files in an initramfs-tools initrd: its own init runs only its own scripts,
    // so it is initramfs-tools; with an init that is not initramfs-tools', nothing tells
    // which one boots, and the initrd is refused. The quick and the full scan agree.
    let cases: [Case<Flavour>; 2] = [
        (
            "initramfs-tools init",
            |r| with_dracut_markers(r, it_bulk),
            Flavour::InitramfsTools,
        ),
        (
            "plain init",
            |r| with_dracut_markers(r, |r| with_plain_init(r, it_bulk)),
            Flavour::Other,
        ),
    ];
    for (name, tree, flavour) in cases {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("tree");
        tree(&t);
        let bytes = compress(Compression::Zstd, &make_cpio(&t), dir.path());
        let dev = MemoryDevice::from_vec(bytes.clone());
        assert_eq!(detect_flavour(&dev).unwrap(), flavour, "{name}");
        let full = scan_with(&dev, Depth::Full).unwrap();
        assert_eq!(full.flavour(), flavour, "{name}");
        if flavour == Flavour::InitramfsTools {
            let (quick, _) = scan_both(&bytes);
            assert!(quick.dracut_dir || !quick.segments[0].complete, "{name}");
            let (r, out) = add(&bytes, &AddSubrootOptions::default());
            assert!(matches!(r, AddOutcome::Appended { .. }), "{name}: {r:?}");
            let listing = judge_segments(&out, dir.path(), &dir.path().join("x"));
            assert!(!listing.is_empty());
            assert!(dir.path().join("x/scripts/local-bottom/subroot").is_file());
        } else {
            let e = add_subroot(&dev, Vec::new(), &AddSubrootOptions::default()).unwrap_err();
            assert!(matches!(e, Error::Unsupported(_)), "{name}: {e}");
        }
    }
}

#[test]
fn hook_directory_after_the_bulk_or_xz_means_decoding_everything() {
    if !need("cpio", "hook_directory_after_the_bulk") || !need("zstd", "hook_directory") {
        return;
    }
    // dracut 057+ names /var/lib/dracut/hooks, which sorts after usr/: nothing to skip.
    let dir = tempfile::tempdir().unwrap();
    let built = build(dir.path(), dracut_var_bulk, Compression::Zstd, false);
    let (quick, _) = scan_both(&built.bytes);
    assert!(quick.is_complete());
    assert_eq!(quick.dracut_hook_dir().unwrap(), "var/lib/dracut/hooks");
    // The end of an xz stream is only known by decoding it.
    if need("xz", "hook_directory_after_the_bulk") {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("tree");
        it_bulk(&t);
        let bytes = compress(Compression::Xz, &make_cpio(&t), dir.path());
        let (quick, _) = scan_both(&bytes);
        assert!(quick.is_complete());
    }
}

#[test]
fn segments_behind_a_skipped_gzip_member_are_found_from_the_end() {
    if !need("cpio", "segments_behind_a_skipped_gzip") || !need("gzip", "segments_behind") {
        return;
    }
    // A gzip main segment, then an extra plain archive with another ORDER file, then a
    // gzip one with another local-bottom script: both are seen, and the later ORDER wins.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = build(dir.path(), it_bulk, Compression::Gzip, true).bytes;
    let extra = dir.path().join("extra");
    write(
        &extra,
        "scripts/local-bottom/ORDER",
        b"/scripts/local-bottom/x \"$@\"\n",
        0o644,
    );
    while bytes.len() % 4 != 0 {
        bytes.push(0);
    }
    bytes.extend(make_cpio(&extra));
    let more = dir.path().join("more");
    write(&more, "scripts/local-bottom/y", b"#!/bin/sh\n", 0o755);
    bytes.extend(compress(Compression::Gzip, &make_cpio(&more), dir.path()));
    let (quick, full) = scan_both(&bytes);
    assert_eq!(quick.segments.len(), 4);
    assert!(!quick.segments[1].complete && quick.segments[2].complete);
    assert_eq!(
        quick.all.names["scripts/local-bottom/ORDER"]
            .content
            .as_deref(),
        Some(&b"/scripts/local-bottom/x \"$@\"\n"[..])
    );
    assert!(quick.all.local_bottom_scripts.contains("y"));
    // The skipped member's length counts the zero padding up to the next segment.
    let (m, next) = (&quick.segments[1], &quick.segments[2]);
    assert_eq!(m.offset + m.length, next.offset);
    assert!(m.length >= full.segments[1].length && m.length < full.segments[1].length + 4);
}

/// `cpio -o -H newc` of `tree` with the names in the order given (not sorted).
fn cpio_in_order(tree: &Path, names: &[&str]) -> Vec<u8> {
    let list: String = names.iter().map(|n| format!("{n}\n")).collect();
    fs::write(tree.join("../list"), list).unwrap();
    sh(
        "cd \"$1\" && cpio --quiet -o -H newc -R 0:0 < ../list",
        &[s(tree)],
    )
}

#[test]
fn a_name_out_of_order_before_the_needed_paths_means_decoding_everything() {
    if !need("cpio", "a_name_out_of_order") || !need("zstd", "a_name_out_of_order") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("tree");
    it_bulk(&t);
    // `bin` comes after `conf`: out of order before anything passes the needed paths. The
    // bulk follows, and only then the local-bottom directory with its ORDER file.
    let names = [
        ".",
        "conf",
        "conf/initramfs.conf",
        "bin",
        "bin/busybox",
        "init",
        "scripts",
        "scripts/functions",
        "usr",
        "usr/lib",
        "usr/lib/modules",
        "usr/lib/modules/6.1.0",
        "usr/lib/modules/6.1.0/kernel",
        "usr/lib/modules/6.1.0/kernel/m0.ko",
        "usr/lib/modules/6.1.0/kernel/m1.ko",
        "usr/lib/firmware",
        "usr/lib/firmware/zeros.bin",
        "scripts/local-bottom",
        "scripts/local-bottom/ntfs_3g",
        "scripts/local-bottom/ORDER",
    ];
    let bytes = compress(Compression::Zstd, &cpio_in_order(&t, &names), dir.path());
    let (quick, _) = scan_both(&bytes);
    assert!(quick.is_complete(), "{:?}", quick.segments);
    // The ORDER file behind the bulk is the one extended.
    let (_, out) = add(&bytes, &AddSubrootOptions::default());
    let listing = judge_segments(&out, dir.path(), &dir.path().join("x"));
    assert!(!listing.is_empty());
    let order = fs::read_to_string(dir.path().join("x/scripts/local-bottom/ORDER")).unwrap();
    assert_eq!(order, format!("{ORDER_BEFORE}{ORDER_LINES}"));

    // What the prefix rule cannot see, and why --full-scan exists: names sorted up to the
    // bulk, then the ORDER file again out of order. Only the full scan finds it.
    let names = [
        ".",
        "bin",
        "bin/busybox",
        "conf",
        "conf/initramfs.conf",
        "init",
        "scripts",
        "scripts/functions",
        "scripts/local-bottom",
        "usr",
        "usr/lib",
        "usr/lib/firmware",
        "usr/lib/firmware/zeros.bin",
        "usr/lib/modules",
        "usr/lib/modules/6.1.0",
        "usr/lib/modules/6.1.0/kernel",
        "usr/lib/modules/6.1.0/kernel/m0.ko",
        "scripts/local-bottom/ntfs_3g",
        "scripts/local-bottom/ORDER",
    ];
    let bytes = compress(Compression::Zstd, &cpio_in_order(&t, &names), dir.path());
    let dev = MemoryDevice::from_vec(bytes);
    let quick = scan_with(&dev, Depth::SortedPrefix).unwrap();
    let full = scan_with(&dev, Depth::Full).unwrap();
    assert!(!quick.segments[0].complete);
    assert!(!quick.all.names.contains_key("scripts/local-bottom/ORDER"));
    assert!(full.all.names.contains_key("scripts/local-bottom/ORDER"));
}

#[test]
fn zstd_segment_end_from_the_headers() {
    if !need("zstd", "zstd_segment_end") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("data");
    let mut data = noise(300_000, 7);
    data.extend(vec![0u8; 300_000]);
    fs::write(&f, &data).unwrap();
    for args in [
        &["-q", "-c"][..],
        &["-q", "-c", "--no-check", "-19"],
        &["-q", "-c", "--no-content-size", "-1"],
    ] {
        let mut a = args.to_vec();
        a.push(s(&f));
        let frame = run("zstd", &a).stdout;
        let mut bytes = frame.clone();
        bytes.extend_from_slice(&run("zstd", &["-q", "-c", s(&f)]).stdout);
        let dev = MemoryDevice::from_vec(bytes);
        assert_eq!(
            zstdframe::segment_end(&dev, 0).unwrap(),
            frame.len() as u64,
            "{args:?}"
        );
        // Cut short: a clear error, not a guess.
        let cut = MemoryDevice::from_vec(frame[..frame.len() - 5].to_vec());
        let e = zstdframe::segment_end(&cut, 0).unwrap_err().to_string();
        assert!(e.contains("past the end"), "{e}");
    }
}
