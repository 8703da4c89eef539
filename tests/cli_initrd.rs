//! Black-box tests of `subroot initrd`: initrds built at test time by GNU cpio and the
//! reference compressors (every compression the kernel unpacks, with and without an early
//! uncompressed segment, several segments) and real initrds made by initramfs-tools and
//! dracut (`scripts/build-initrds.sh`), judged by `cpio -t`/`-tvn`/`-i` over each segment
//! decompressed by the reference tool, and by `cmp`.
//! Every subroot invocation runs as uid 65534 when the suite runs as root.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Run `bash -o pipefail -c CMD`; panics on failure; returns stdout bytes.
fn sh(cmd: &str) -> Vec<u8> {
    let out = Command::new("bash")
        .args(["-o", "pipefail", "-c", cmd])
        .output()
        .expect("running bash");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn lines(b: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(b)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The reference compressor command (stdin → stdout) and decompressor for a compression.
fn codec(name: &str) -> (&'static str, &'static str, &'static str) {
    // (tool, compress, decompress)
    match name {
        "gzip" => ("gzip", "gzip -9 -n -c", "gzip -dc"),
        "zstd" => ("zstd", "zstd -19 -q -c", "zstd -dc -q"),
        "xz" => ("xz", "xz --check=crc32 -c", "xz -dc"),
        "lzma" => ("lzma", "lzma -c", "lzma -dc"),
        "lz4" => ("lz4", "lz4 -l -q -c", "lz4 -dc -q"),
        "bzip2" => ("bzip2", "bzip2 -c", "bzip2 -dc"),
        "none" => ("cat", "cat", "cat"),
        other => panic!("unknown compression {other}"),
    }
}

const ALL: [&str; 7] = ["none", "gzip", "zstd", "xz", "lzma", "lz4", "bzip2"];

/// A small initramfs-tools-like root: init, conf/initramfs.conf, scripts/functions,
/// scripts/local-bottom/ORDER with a script, a symlink, a hard link pair, a suid file,
/// odd modes; device nodes and a fifo when running as root.
fn it_root(dir: &Path) -> PathBuf {
    let r = dir.join("root");
    sh(&format!(
        "set -e; mkdir -p {r}/conf {r}/scripts/local-bottom {r}/bin {r}/usr/lib {r}/dev
         printf '#!/bin/sh\\necho init\\n' > {r}/init; chmod 755 {r}/init
         echo 'MODULES=most' > {r}/conf/initramfs.conf
         echo '# functions' > {r}/scripts/functions
         printf '#!/bin/sh\\nexit 0\\n' > {r}/scripts/local-bottom/other; chmod 755 {r}/scripts/local-bottom/other
         printf '/scripts/local-bottom/other \"$@\"\\n[ -e /conf/param.conf ] && . /conf/param.conf\\n' > {r}/scripts/local-bottom/ORDER
         head -c 70000 /usr/bin/cpio > {r}/bin/busybox; chmod 4755 {r}/bin/busybox
         ln {r}/bin/busybox {r}/bin/sh2; ln -s busybox {r}/bin/sh
         head -c 5000 /dev/urandom > {r}/usr/lib/blob; chmod 640 {r}/usr/lib/blob
         touch -d @1000000000 {r}/usr/lib/blob
         if [ $(id -u) = 0 ]; then mknod {r}/dev/console c 5 1; mknod {r}/dev/sda b 8 0; mkfifo {r}/dev/fifo; chown 12:34 {r}/usr/lib/blob; fi",
        r = s(&r)
    ));
    r
}

/// An early-microcode-like root.
fn early_root(dir: &Path) -> PathBuf {
    let r = dir.join("early");
    sh(&format!(
        "set -e; mkdir -p {r}/kernel/x86/microcode; head -c 3000 /dev/urandom > {r}/kernel/x86/microcode/GenuineIntel.bin",
        r = s(&r)
    ));
    r
}

/// `find . | sort | cpio -o -H newc` of `root`, through `compress`, into `out`.
fn gnu_archive(root: &Path, compress: &str, out: &Path) {
    sh(&format!(
        "cd {} && find . | LC_ALL=C sort | cpio -o -H newc --quiet | {compress} > {}",
        s(root),
        s(out)
    ));
}

/// `cat parts... > out`, with zero padding so every part starts 4-byte aligned.
fn concat(parts: &[&Path], out: &Path) -> Vec<u64> {
    let mut bytes = Vec::new();
    let mut offsets = Vec::new();
    for p in parts {
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        offsets.push(bytes.len() as u64);
        bytes.extend(std::fs::read(p).expect("read part"));
    }
    std::fs::write(out, bytes).expect("write initrd");
    offsets
}

/// A shell command printing bytes `[off, off+len)` of `file`.
fn seg_bytes(file: &Path, off: u64, len: u64) -> String {
    format!(
        "dd if={} iflag=skip_bytes,count_bytes skip={off} count={len} bs=64K status=none",
        s(file)
    )
}

/// `cpio -t` (or other cpio args) of the segment `[off, off+len)` decompressed by `dec`.
fn cpio_of_segment(file: &Path, off: u64, len: u64, dec: &str, cpio_args: &str) -> Vec<u8> {
    sh(&format!(
        "{} | {dec} | cpio {cpio_args} --quiet",
        seg_bytes(file, off, len)
    ))
}

/// Judge `examine --json` and `ls` of `img` against `cpio -t` of each segment, given the
/// expected segment offsets and compressions. Returns the examine document.
fn judge_listing(dir: &Path, img: &Path, offsets: &[u64], comps: &[&str]) -> Value {
    let doc: Value = serde_json::from_str(&ok(dir, &["initrd", "examine", "--json", s(img)]))
        .expect("examine JSON");
    let segs = doc["segments"].as_array().expect("segments");
    assert_eq!(segs.len(), offsets.len(), "{doc}");
    let mut all = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        assert_eq!(
            seg["offset"].as_u64(),
            Some(offsets[i]),
            "segment {i}: {seg}"
        );
        assert_eq!(seg["compression"], comps[i], "segment {i}: {seg}");
        let len = seg["length"].as_u64().expect("length");
        let dec = codec(comps[i]).2;
        let names = lines(&cpio_of_segment(img, offsets[i], len, dec, "-t"));
        assert_eq!(
            seg["entries"].as_u64(),
            Some(names.len() as u64),
            "segment {i}"
        );
        // The uncompressed size is what the reference decompressor produces.
        let raw = sh(&format!(
            "{} | {dec} | wc -c",
            seg_bytes(img, offsets[i], len)
        ));
        let raw: u64 = String::from_utf8_lossy(&raw).trim().parse().expect("wc");
        assert_eq!(seg["uncompressed_size"].as_u64(), Some(raw), "segment {i}");
        if i + 1 < offsets.len() {
            assert!(
                offsets[i] + len <= offsets[i + 1],
                "segment {i} overlaps the next"
            );
        } else {
            // Only zero padding (GNU cpio pads to 512 bytes) may follow the last segment.
            let bytes = std::fs::read(img).expect("read");
            let end = (offsets[i] + len) as usize;
            assert!(end <= bytes.len() && bytes[end..].iter().all(|&b| b == 0));
        }
        all.extend(names);
    }
    judge_ls(dir, img, &all);
    doc
}

/// A cpio name as the kernel resolves it: `./x`, `x` and `x/` are one path, `.` the root.
fn kernel_path(name: &str) -> &str {
    let mut p = name;
    while let Some(r) = p.strip_prefix("./") {
        p = r;
    }
    let p = p.trim_end_matches('/');
    if p == "." {
        ""
    } else {
        p
    }
}

/// `ls --segments` is `all` (the `cpio -t` names of every segment, in order); `ls` (the
/// merged view) lists each path once, in the order of the last occurrences in `all` (a
/// later entry replaces an earlier one of the same path, as when the kernel unpacks).
fn judge_ls(dir: &Path, img: &Path, all: &[String]) {
    let raw = ok(dir, &["initrd", "ls", "--segments", s(img)]);
    assert_eq!(
        raw.lines().collect::<Vec<_>>(),
        all,
        "ls --segments vs cpio -t"
    );
    let want: Vec<&str> = all
        .iter()
        .enumerate()
        .filter(|(i, n)| {
            !all[i + 1..]
                .iter()
                .any(|later| kernel_path(later) == kernel_path(n))
        })
        .map(|(_, n)| n.as_str())
        .collect();
    let merged = ok(dir, &["initrd", "ls", s(img)]);
    assert_eq!(merged.lines().collect::<Vec<_>>(), want, "merged ls");
}

#[test]
fn every_compression_with_and_without_early_segment_matches_cpio() {
    for (tool, _) in [
        ("cpio", ""),
        ("gzip", ""),
        ("zstd", ""),
        ("xz", ""),
        ("lzma", ""),
        ("lz4", ""),
        ("bzip2", ""),
    ] {
        if !need(
            tool,
            "every_compression_with_and_without_early_segment_matches_cpio",
        ) {
            return;
        }
    }
    let dir = workdir();
    let d = dir.path();
    let root = it_root(d);
    let early = early_root(d);
    let early_cpio = d.join("early.cpio");
    gnu_archive(&early, "cat", &early_cpio);
    for c in ALL {
        let main = d.join(format!("main.{c}"));
        gnu_archive(&root, codec(c).1, &main);
        let img = d.join(format!("{c}.img"));
        let offs = concat(&[&main], &img);
        let doc = judge_listing(d, &img, &offs, &[c]);
        assert_eq!(doc["flavour"], "initramfs-tools", "{c}");
        assert_eq!(doc["hook_present"], false, "{c}");
        let img2 = d.join(format!("early-{c}.img"));
        let offs = concat(&[&early_cpio, &main], &img2);
        judge_listing(d, &img2, &offs, &["none", c]);
    }
}

#[test]
fn three_segments_and_long_listing_match_cpio() {
    for tool in ["cpio", "gzip", "zstd", "xz"] {
        if !need(tool, "three_segments_and_long_listing_match_cpio") {
            return;
        }
    }
    let dir = workdir();
    let d = dir.path();
    let root = it_root(d);
    let early = early_root(d);
    let (a, b, c) = (d.join("a.cpio"), d.join("b.zst"), d.join("c.xz"));
    gnu_archive(&early, "cat", &a);
    gnu_archive(&root, codec("zstd").1, &b);
    gnu_archive(&early, codec("xz").1, &c);
    let img = d.join("three.img");
    let offs = concat(&[&a, &b, &c], &img);
    judge_listing(d, &img, &offs, &["none", "zstd", "xz"]);
    // -l against GNU cpio's numeric long listing, in UTC, segment by segment.
    let doc: Value =
        serde_json::from_str(&ok(d, &["initrd", "examine", "--json", s(&img)])).expect("json");
    let mut want = Vec::new();
    for (i, seg) in doc["segments"].as_array().expect("segs").iter().enumerate() {
        let dec = codec(["none", "zstd", "xz"][i]).2;
        let len = seg["length"].as_u64().expect("len");
        want.extend(lines(&sh(&format!(
            "{} | {dec} | TZ=UTC cpio -tvn --quiet",
            seg_bytes(&img, offs[i], len)
        ))));
    }
    let got = ok(d, &["initrd", "ls", "--segments", "-l", s(&img)]);
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        want,
        "ls -l vs TZ=UTC cpio -tvn"
    );
    // JSON listing: same names, types and modes as the headers.
    let js: Value =
        serde_json::from_str(&ok(d, &["initrd", "ls", "--segments", "--json", s(&img)]))
            .expect("ls json");
    let arr = js.as_array().expect("array");
    assert_eq!(arr.len(), want.len());
    assert!(arr.iter().all(|e| e.get("replaces").is_none()));
    let sh_entry = arr
        .iter()
        .find(|e| e["name"] == "./bin/sh" || e["name"] == "bin/sh");
    let sh_entry = sh_entry.expect("bin/sh listed");
    assert_eq!(sh_entry["type"], "symlink");
    assert_eq!(sh_entry["link_target"], "busybox");
    assert_eq!(arr.last().expect("last")["segment"], 2);
}

/// The entry names of the segment holding `init`, decompressed by the reference tool.
fn main_names(img: &Path, seg: &Value, comp: &str) -> Vec<String> {
    let off = seg["offset"].as_u64().expect("off");
    let len = seg["length"].as_u64().expect("len");
    lines(&cpio_of_segment(img, off, len, codec(comp).2, "-t"))
}

/// What `lsinitramfs` (initramfs-tools) and `lsinitrd` (dracut) say about `img`: whether
/// they succeed and the lines they list (lsinitrd's `Image: NAME: SIZE` line left out);
/// `None` for a tool that is not installed.
fn reference_listings(img: &Path) -> [Option<(bool, Vec<String>)>; 2] {
    ["lsinitramfs", "lsinitrd"].map(|tool| {
        which(tool)?;
        let out = Command::new(tool).arg(img).output().expect("run lister");
        let listed = lines(&out.stdout)
            .into_iter()
            .filter(|l| !l.starts_with("Image: "))
            .collect();
        Some((out.status.success(), listed))
    })
}

/// The reference listers read `out` (`img` with the hook appended) as well as `img`: the
/// same success, and every line they list for `img` (they stop at the main archive's
/// trailer, so a compressed appended segment is not shown; a plain one may be).
fn judge_reference_listings(img: &Path, out: &Path, what: &str) {
    let before = reference_listings(img);
    let after = reference_listings(out);
    for (tool, (b, a)) in ["lsinitramfs", "lsinitrd"]
        .iter()
        .zip(before.iter().zip(&after))
    {
        let (Some((bok, bl)), Some((aok, al))) = (b, a) else {
            continue;
        };
        assert_eq!(bok, aok, "{what}: {tool} status");
        for l in bl {
            assert!(al.contains(l), "{what}: {tool} no longer lists {l}");
        }
    }
}

/// Compressions whose initrds get the hook appended (the others are recompressed).
const APPENDED: [&str; 4] = ["none", "gzip", "zstd", "xz"];

#[test]
fn add_subroot_for_every_compression_is_readable_keeps_early_and_is_idempotent() {
    for tool in ["cpio", "gzip", "zstd", "xz", "lzma", "lz4", "bzip2", "cmp"] {
        if !need(tool, "add_subroot_for_every_compression") {
            return;
        }
    }
    let dir = workdir();
    let d = dir.path();
    let root = it_root(d);
    let early = early_root(d);
    let early_cpio = d.join("early.cpio");
    gnu_archive(&early, "cat", &early_cpio);
    let early_len = std::fs::metadata(&early_cpio).expect("meta").len();
    for c in ALL {
        let main = d.join(format!("main.{c}"));
        gnu_archive(&root, codec(c).1, &main);
        let img = d.join(format!("in-{c}.img"));
        let offs = concat(&[&early_cpio, &main], &img);
        let in_len = std::fs::metadata(&img).expect("meta").len();
        let before = judge_listing(d, &img, &offs, &["none", c]);
        let before = main_names(&img, &before["segments"][1], c);
        let out = d.join(format!("out-{c}.img"));
        ok(d, &["initrd", "add-subroot", s(&img), "-o", s(&out)]);
        let doc: Value =
            serde_json::from_str(&ok(d, &["initrd", "examine", "--json", s(&out)])).expect("json");
        assert_eq!(doc["hook_present"], true, "{c}: {doc}");
        let segs = doc["segments"].as_array().expect("segs");
        // The early segment is byte-identical.
        sh(&format!(
            "cmp -n {early_len} {} {}",
            s(&early_cpio),
            s(&out)
        ));
        assert_eq!(segs[0]["role"], "early");
        assert_eq!(segs[1]["role"], "main");
        let appended = APPENDED.contains(&c);
        let hook_seg = if appended {
            // The input is kept byte for byte; one small segment of its codec follows.
            sh(&format!("cmp -n {in_len} {} {}", s(&img), s(&out)));
            assert_eq!(segs.len(), 3, "{c}: {doc}");
            assert_eq!(segs[2]["compression"], c);
            assert_eq!(segs[2]["role"], "subroot-hook");
            assert_eq!(main_names(&out, &segs[1], c), before, "{c}");
            // It holds the hook and the extended ORDER file, nothing else.
            let mut ours = main_names(&out, &segs[2], c);
            ours.sort();
            assert_eq!(
                ours,
                ["scripts/local-bottom/ORDER", "scripts/local-bottom/subroot"],
                "{c}"
            );
            let all: Vec<String> = segs
                .iter()
                .flat_map(|seg| main_names(&out, seg, seg["compression"].as_str().unwrap()))
                .collect();
            judge_ls(d, &out, &all);
            // The merged JSON listing says which entry the appended ORDER replaces.
            let js: Value =
                serde_json::from_str(&ok(d, &["initrd", "ls", "--json", s(&out)])).expect("ls");
            let order: Vec<&Value> = js
                .as_array()
                .expect("array")
                .iter()
                .filter(|e| {
                    kernel_path(e["name"].as_str().unwrap()) == "scripts/local-bottom/ORDER"
                })
                .collect();
            assert_eq!(order.len(), 1, "{c}: {order:?}");
            assert_eq!(order[0]["segment"], 2);
            assert_eq!(order[0]["replaces"], serde_json::json!([1]));
            // initramfs-tools' and dracut's listers still read the initrd: they see what
            // they saw before (they stop at the main archive's trailer).
            judge_reference_listings(&img, &out, c);
            &segs[2]
        } else {
            // lzma, bzip2, lz4: recompressed, hook inside the main segment.
            assert_eq!(segs.len(), 2, "{c}: {doc}");
            let names = main_names(&out, &segs[1], c);
            for n in &before {
                assert!(names.contains(n), "{c}: lost {n}");
            }
            assert!(
                names.iter().any(|n| n == "scripts/local-bottom/subroot"),
                "{c}: {names:?}"
            );
            &segs[1]
        };
        assert_eq!(hook_seg["compression"], c);
        let (hoff, hlen) = (
            hook_seg["offset"].as_u64().unwrap(),
            hook_seg["length"].as_u64().unwrap(),
        );
        let order = cpio_of_segment(
            &out,
            hoff,
            hlen,
            codec(c).2,
            "-i --to-stdout ./scripts/local-bottom/ORDER scripts/local-bottom/ORDER",
        );
        let order = String::from_utf8_lossy(&order);
        assert!(
            order.contains("/scripts/local-bottom/subroot"),
            "{c}: ORDER = {order}"
        );
        assert!(
            order.contains("/scripts/local-bottom/other"),
            "{c}: ORDER = {order}"
        );
        let hook = cpio_of_segment(
            &out,
            hoff,
            hlen,
            codec(c).2,
            "-i --to-stdout scripts/local-bottom/subroot",
        );
        assert!(
            hook.starts_with(b"#!"),
            "{c}: hook script {:?}",
            String::from_utf8_lossy(&hook)
        );
        // Idempotent: "already present", identical bytes.
        let again = d.join(format!("again-{c}.img"));
        let said = ok(d, &["initrd", "add-subroot", s(&out), "-o", s(&again)]);
        assert!(said.contains("already present"), "{c}: {said}");
        assert!(
            same_bytes(&out, &again),
            "{c}: second add-subroot changed the bytes"
        );
        // Reproducible: the same input gives the same output.
        let twice = d.join(format!("twice-{c}.img"));
        ok(d, &["initrd", "add-subroot", s(&img), "-o", s(&twice)]);
        assert!(same_bytes(&out, &twice), "{c}: not reproducible");
        if !appended {
            continue;
        }
        // Another hook (other shared directories) is refused without --refresh-hook...
        let other = d.join(format!("other-{c}.img"));
        let args = [
            "initrd",
            "add-subroot",
            "--shared",
            "boot,srv",
            s(&out),
            "-o",
            s(&other),
        ];
        fails(
            d,
            &args,
            3,
            &[&format!("out-{c}.img"), "--refresh-hook", "other content"],
        );
        assert!(!other.exists(), "{c}: output left behind");
        // ... and --refresh-hook replaces our segment, never stacks one more: the result is
        // what adding that hook to the original gives.
        let mut forced = args.to_vec();
        forced.push("--refresh-hook");
        ok(d, &forced);
        let direct = d.join(format!("direct-{c}.img"));
        ok(
            d,
            &[
                "initrd",
                "add-subroot",
                "--shared",
                "boot,srv",
                s(&img),
                "-o",
                s(&direct),
            ],
        );
        assert!(
            same_bytes(&other, &direct),
            "{c}: --refresh-hook stacked or differs"
        );
        let hook = cpio_of_segment(
            &other,
            hoff,
            std::fs::metadata(&other).unwrap().len() - hoff,
            codec(c).2,
            "-i --to-stdout scripts/local-bottom/subroot",
        );
        assert!(String::from_utf8_lossy(&hook).contains("SUBROOT_SHARED=\"boot srv\""));
        // --recompress folds our segment into the main one: the single-segment result.
        let (folded, rec) = (
            d.join(format!("folded-{c}.img")),
            d.join(format!("rec-{c}.img")),
        );
        ok(
            d,
            &[
                "initrd",
                "add-subroot",
                "--recompress",
                s(&out),
                "-o",
                s(&folded),
            ],
        );
        ok(
            d,
            &[
                "initrd",
                "add-subroot",
                "--recompress",
                s(&img),
                "-o",
                s(&rec),
            ],
        );
        assert!(
            same_bytes(&folded, &rec),
            "{c}: folding differs from recompressing"
        );
        let fdoc: Value =
            serde_json::from_str(&ok(d, &["initrd", "examine", "--json", s(&rec)])).expect("json");
        assert_eq!(fdoc["segments"].as_array().unwrap().len(), 2, "{c}: {fdoc}");
        assert!(main_names(&rec, &fdoc["segments"][1], c)
            .iter()
            .any(|n| n == "scripts/local-bottom/subroot"));
    }
}

/// `add-subroot --in-place` writes into the file exactly what `-o` writes (for every codec a
/// segment can follow, with an early segment in front), leaves no undo log, changes
/// nothing the second time, refuses other content without --refresh-hook (bytes
/// unchanged), and with it replaces our segment by a shorter or a longer one — each time
/// byte for byte what adding that hook to the original gives. lzma cannot be appended to:
/// refused, nothing written. Run as uid 65534 on a file it owns the write of.
#[test]
fn add_subroot_in_place_equals_the_copy_and_refreshes() {
    for tool in ["cpio", "gzip", "zstd", "xz", "lzma"] {
        if !need(tool, "add_subroot_in_place_equals_the_copy_and_refreshes") {
            return;
        }
    }
    let dir = workdir();
    let d = dir.path();
    let root = it_root(d);
    let early = early_root(d);
    let early_cpio = d.join("early.cpio");
    gnu_archive(&early, "cat", &early_cpio);
    let writable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    };
    let add = |shared: &str, input: &Path, out: &Path| {
        ok(
            d,
            &[
                "initrd",
                "add-subroot",
                "--shared",
                shared,
                s(input),
                "-o",
                s(out),
            ],
        );
    };
    let in_place = |extra: &[&str], file: &Path| {
        let mut args = vec!["initrd", "add-subroot", "--in-place"];
        args.extend_from_slice(extra);
        args.push(s(file));
        ok(d, &args)
    };
    for c in APPENDED {
        let main = d.join(format!("main.{c}"));
        gnu_archive(&root, codec(c).1, &main);
        let img = d.join(format!("in-{c}.img"));
        concat(&[&early_cpio, &main], &img);
        let file = d.join(format!("edited-{c}.img"));
        std::fs::copy(&img, &file).expect("copy");
        writable(&file);
        let undo = d.join(format!("edited-{c}.img.subroot-undo"));
        // The default hook: what -o writes.
        let expected = d.join(format!("expected-{c}.img"));
        ok(d, &["initrd", "add-subroot", s(&img), "-o", s(&expected)]);
        in_place(&[], &file);
        assert!(
            same_bytes(&file, &expected),
            "{c}: in place differs from -o"
        );
        assert!(!undo.exists(), "{c}: undo log left behind");
        let said = in_place(&[], &file);
        assert!(said.contains("already present"), "{c}: {said}");
        assert!(same_bytes(&file, &expected), "{c}: second run changed it");
        // Other content: refused, unchanged.
        let args = [
            "initrd",
            "add-subroot",
            "--in-place",
            "--shared",
            "boot",
            s(&file),
        ];
        fails(d, &args, 3, &["--refresh-hook", "other content"]);
        assert!(same_bytes(&file, &expected), "{c}: refused run changed it");
        // --refresh-hook: a shorter hook (one shared directory), then a longer one.
        for shared in ["boot", "boot,var,home,srv,opt"] {
            in_place(&["--refresh-hook", "--shared", shared], &file);
            let direct = d.join(format!("direct-{c}-{}.img", shared.len()));
            add(shared, &img, &direct);
            assert!(
                same_bytes(&file, &direct),
                "{c}: --refresh-hook --shared {shared} in place differs from -o"
            );
            assert!(!undo.exists(), "{c}: undo log left behind");
        }
        let doc: Value =
            serde_json::from_str(&ok(d, &["initrd", "examine", "--json", s(&file)])).expect("json");
        assert_eq!(
            doc["segments"].as_array().expect("segs").len(),
            3,
            "{c}: {doc}"
        );
        assert_eq!(doc["segments"][2]["role"], "subroot-hook", "{c}: {doc}");
    }
    // lzma: nothing can follow its stream.
    let main = d.join("main.lzma");
    gnu_archive(&root, codec("lzma").1, &main);
    let file = d.join("edited-lzma.img");
    std::fs::copy(&main, &file).expect("copy");
    writable(&file);
    let before = std::fs::read(&file).expect("read");
    let args = ["initrd", "add-subroot", "--in-place", s(&file)];
    fails(d, &args, 3, &["edited-lzma.img", "lzma", "-o OUT"]);
    assert_eq!(std::fs::read(&file).expect("read"), before);
    assert!(!d.join("edited-lzma.img.subroot-undo").exists());
    // -o and --in-place together: a usage error.
    let out = subroot_in(
        d,
        &[
            "initrd",
            "add-subroot",
            "--in-place",
            s(&file),
            "-o",
            "x.img",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}

/// An `add-subroot --in-place` killed after writing the segment and before making it
/// durable leaves its undo log; the next command reading the initrd (`examine`, `ls`)
/// rolls it back first and reads the initrd as it was.
#[test]
fn a_killed_in_place_append_is_rolled_back_by_the_next_reader() {
    let test = "a_killed_in_place_append_is_rolled_back_by_the_next_reader";
    for tool in ["cpio", "zstd", "strace"] {
        if !need(tool, test) {
            return;
        }
    }
    let dir = workdir();
    let d = dir.path();
    let img = d.join("in.img");
    gnu_archive(&it_root(d), codec("zstd").1, &img);
    let undo = d.join("edited.img.subroot-undo");
    for reader in ["examine", "ls"] {
        let file = d.join("edited.img");
        std::fs::copy(&img, &file).expect("copy");
        sh(&format!("chmod 666 '{}'", file.display()));
        // Killed at its one ftruncate: the segment is written, the length not yet set.
        let cmd = subroot();
        let out = Command::new(which("strace").expect("strace"))
            .args([
                "-f",
                "-qq",
                "-o",
                "/dev/null",
                "-e",
                "trace=ftruncate",
                "-e",
            ])
            .arg("inject=ftruncate:signal=KILL:when=1")
            .arg("--")
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .args(["initrd", "add-subroot", "--in-place", s(&file)])
            .current_dir(d)
            .env_remove("CI")
            .output()
            .expect("strace");
        assert!(!out.status.success(), "{reader}: the edit was not killed");
        assert!(
            undo.exists(),
            "{reader}: no undo log left by the killed edit"
        );
        assert!(
            !same_bytes(&file, &img),
            "{reader}: the killed edit wrote nothing"
        );
        let out = subroot_in(d, &["initrd", reader, s(&file)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{reader}: {err}");
        assert!(
            err.contains("rolled back an interrupted in-place edit"),
            "{reader}: {err}"
        );
        assert!(!undo.exists(), "{reader}: the undo log is still there");
        assert!(
            same_bytes(&file, &img),
            "{reader}: not the initrd as it was"
        );
        let listed = String::from_utf8_lossy(&out.stdout);
        if reader == "examine" {
            assert!(listed.contains("subroot hook absent"), "{listed}");
        } else {
            assert!(!listed.contains("scripts/local-bottom/subroot"), "{listed}");
        }
    }
}

#[test]
fn create_concatenates_initrds_as_segments() {
    for tool in ["cpio", "gzip", "zstd"] {
        if !need(tool, "create_concatenates_initrds_as_segments") {
            return;
        }
    }
    let dir = workdir();
    let d = dir.path();
    let root = it_root(d);
    let early = early_root(d);
    let (a, b) = (d.join("early.cpio"), d.join("main.gz"));
    gnu_archive(&early, "cat", &a);
    gnu_archive(&root, codec("gzip").1, &b);
    let zst = d.join("more.zst");
    gnu_archive(&early, codec("zstd").1, &zst);
    let first = d.join("first.img");
    ok(d, &["initrd", "create", "-o", s(&first), s(&a), s(&b)]);
    let want = d.join("want.img");
    let offs = concat(&[&a, &b], &want);
    assert!(
        same_bytes(&first, &want),
        "create of two files differs from cat with alignment"
    );
    judge_listing(d, &first, &offs, &["none", "gzip"]);
    // An initrd of two segments as a source keeps both.
    let second = d.join("second.img");
    ok(
        d,
        &["initrd", "create", "-o", s(&second), s(&first), s(&zst)],
    );
    let want2 = d.join("want2.img");
    let offs2 = concat(&[&a, &b, &zst], &want2);
    assert!(same_bytes(&second, &want2));
    judge_listing(d, &second, &offs2, &["none", "gzip", "zstd"]);
    // Refuses to overwrite, and a bad source leaves nothing behind.
    fails(
        d,
        &["initrd", "create", "-o", s(&second), s(&a)],
        1,
        &["already exists"],
    );
    let junk = d.join("junk.bin");
    std::fs::write(&junk, b"this is not a cpio archive at all").expect("write");
    let bad = d.join("bad.img");
    fails(
        d,
        &["initrd", "create", "-o", s(&bad), s(&a), s(&junk)],
        3,
        &["junk.bin"],
    );
    assert!(!bad.exists());
    assert!(
        !names(d).iter().any(|n| n.contains("subroot-tmp")),
        "{:?}",
        names(d)
    );
}

/// Offset of the header of the entry named `name` in a plain newc archive.
fn header_of(bytes: &[u8], name: &str) -> usize {
    let pat = format!("{name}\0");
    let pos = bytes
        .windows(pat.len())
        .position(|w| w == pat.as_bytes())
        .expect("entry present");
    pos - 110
}

#[test]
fn bad_initrds_fail_cleanly_naming_the_file() {
    for tool in ["cpio", "gzip", "zstd", "xz"] {
        if !need(tool, "bad_initrds_fail_cleanly_naming_the_file") {
            return;
        }
    }
    let dir = workdir();
    let d = dir.path();
    let root = it_root(d);
    let plain = d.join("plain.cpio");
    gnu_archive(&root, "cat", &plain);
    let good = std::fs::read(&plain).expect("read");
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    cases.push(("truncated-header", good[..50].to_vec()));
    let mut nonul = good.clone();
    let h = header_of(&good, "conf/initramfs.conf");
    let name_end = h + 110 + "conf/initramfs.conf".len();
    nonul[name_end] = b'X';
    cases.push(("name-without-nul", nonul));
    let mut big = good.clone();
    big[h + 54..h + 62].copy_from_slice(b"7FFFFFF0");
    cases.push(("size-past-end", big));
    let gz = d.join("main.gz");
    gnu_archive(&root, codec("gzip").1, &gz);
    let gzb = std::fs::read(&gz).expect("read");
    cases.push(("gzip-ends-early", gzb[..gzb.len() / 2].to_vec()));
    let zs = d.join("main.zst");
    gnu_archive(&root, "zstd -19 -q --check -c", &zs);
    let mut zsb = std::fs::read(&zs).expect("read");
    let n = zsb.len();
    zsb[n - 2] ^= 0x55;
    cases.push(("zstd-bad-checksum", zsb));
    // A trailing segment (as add-subroot appends) cut short, garbled, or followed by junk.
    let hooked = d.join("hooked.img");
    ok(d, &["initrd", "add-subroot", s(&zs), "-o", s(&hooked)]);
    let hb = std::fs::read(&hooked).expect("read");
    let main_len = n;
    assert!(hb.len() > main_len + 40);
    cases.push(("tail-truncated", hb[..hb.len() - 7].to_vec()));
    let mut garbled = hb.clone();
    for b in &mut garbled[main_len + 20..main_len + 40] {
        *b ^= 0xa5;
    }
    cases.push(("tail-garbled", garbled));
    let mut junk = hb.clone();
    junk.extend_from_slice(b"junk");
    cases.push(("tail-junk", junk));
    for (name, bytes) in &cases {
        let f = d.join(format!("{name}.img"));
        std::fs::write(&f, bytes).expect("write");
        // The reference tool agrees the input is broken (GNU cpio reads a name without
        // its NUL leniently, so that case has no judge but subroot).
        let judge = match *name {
            "truncated-header" | "size-past-end" => Some(format!("cpio -t --quiet < {}", s(&f))),
            "gzip-ends-early" => Some(format!("gzip -t {}", s(&f))),
            "zstd-bad-checksum" | "tail-truncated" | "tail-garbled" | "tail-junk" => {
                Some(format!("zstd -t -q {}", s(&f)))
            }
            _ => None,
        };
        if let Some(j) = judge {
            let st = Command::new("bash")
                .args(["-c", &format!("{j} >/dev/null 2>&1")])
                .status()
                .expect("bash");
            assert!(!st.success(), "{name}: the reference tool accepts it: {j}");
        }
        for cmd in [&["initrd", "examine"][..], &["initrd", "ls"]] {
            let mut args = cmd.to_vec();
            args.push(s(&f));
            fails(d, &args, 3, &[&format!("{name}.img")]);
        }
        let out = d.join(format!("{name}-out.img"));
        fails(
            d,
            &["initrd", "add-subroot", s(&f), "-o", s(&out)],
            3,
            &[&format!("{name}.img")],
        );
        assert!(!out.exists(), "{name}: output left behind");
    }
    assert!(
        !names(d).iter().any(|n| n.contains("subroot-tmp")),
        "{:?}",
        names(d)
    );
    // xz with CRC64: readable, with a warning that the kernel cannot verify it.
    let xz = d.join("crc64.img");
    gnu_archive(&root, "xz --check=crc64 -c", &xz);
    let out = subroot_in(d, &["initrd", "examine", s(&xz)]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning") && err.contains("crc64"), "{err}");
    let doc: Value =
        serde_json::from_str(&ok(d, &["initrd", "examine", "--json", s(&xz)])).expect("json");
    assert_eq!(doc["segments"][0]["xz_check"], "crc64");
    assert!(doc["warnings"][0]
        .as_str()
        .expect("warning")
        .contains("crc64"));
}

#[test]
fn image_path_reads_the_initrd_in_place() {
    for tool in ["cpio", "zstd", "mke2fs", "sfdisk"] {
        if !need(tool, "image_path_reads_the_initrd_in_place") {
            return;
        }
    }
    let dir = workdir();
    let d = dir.path();
    let root = it_root(d);
    let early = early_root(d);
    let (a, b) = (d.join("early.cpio"), d.join("main.zst"));
    gnu_archive(&early, "cat", &a);
    gnu_archive(&root, codec("zstd").1, &b);
    let fsroot = d.join("fsroot");
    std::fs::create_dir_all(fsroot.join("boot")).expect("mkdir");
    std::fs::create_dir_all(fsroot.join("etc")).expect("mkdir");
    std::fs::write(fsroot.join("etc/os-release"), "ID=debian\n").expect("write");
    let host = d.join("initrd.img");
    concat(&[&a, &b], &host);
    std::fs::copy(&host, fsroot.join("boot/initrd.img-6.1.0-1-amd64")).expect("copy");
    std::os::unix::fs::symlink("boot/initrd.img-6.1.0-1-amd64", fsroot.join("initrd.img"))
        .expect("symlink");
    // A GPT disk with a small first partition and the ext4 root as partition 2.
    let disk = d.join("disk.raw");
    run("truncate", &["-s", "40M", s(&disk)]);
    sh(&format!(
        "printf 'label: gpt\\nsize=2M\\nsize=+\\n' | sfdisk -q {}",
        s(&disk)
    ));
    let part = d.join("part.img");
    run("truncate", &["-s", "36M", s(&part)]);
    run("mke2fs", &["-q", "-t", "ext4", "-d", s(&fsroot), s(&part)]);
    let start: Value =
        serde_json::from_str(&run_stdout("sfdisk", &["-J", s(&disk)])).expect("sfdisk");
    let sector = start["partitiontable"]["partitions"][1]["start"]
        .as_u64()
        .expect("start");
    sh(&format!(
        "dd if={} of={} bs=512 seek={sector} conv=notrunc status=none",
        s(&part),
        s(&disk)
    ));
    let host_doc: Value =
        serde_json::from_str(&ok(d, &["initrd", "examine", "--json", s(&host)])).expect("json");
    for path in ["/initrd.img", "/boot/initrd.img-6.1.0-1-amd64"] {
        let doc: Value = serde_json::from_str(&ok(
            d,
            &["initrd", "examine", "--json", "--image", s(&disk), path],
        ))
        .expect("json");
        assert_eq!(doc["segments"], host_doc["segments"], "{path}");
        assert_eq!(
            ok(d, &["initrd", "ls", "--image", s(&disk), "-p", "2", path]),
            ok(d, &["initrd", "ls", s(&host)])
        );
    }
    let o1 = d.join("o1.img");
    let o2 = d.join("o2.img");
    ok(
        d,
        &[
            "initrd",
            "add-subroot",
            "--image",
            s(&disk),
            "/initrd.img",
            "-o",
            s(&o1),
        ],
    );
    ok(d, &["initrd", "add-subroot", s(&host), "-o", s(&o2)]);
    assert!(same_bytes(&o1, &o2));
    fails(
        d,
        &[
            "initrd",
            "-q",
            "examine",
            "--image",
            s(&disk),
            "/boot/missing.img",
        ],
        1,
        &["/boot/missing.img"],
    );
    fails(
        d,
        &[
            "initrd",
            "-q",
            "examine",
            "--image",
            s(&disk),
            "-p",
            "1",
            "/initrd.img",
        ],
        1,
        &["partition 1"],
    );
}

/// The real initrds of `scripts/build-initrds.sh` (cached); `None` (after a loud skip)
/// when they are not cached and cannot be built here. Under `CI=true` they must be built.
fn real_initrds(test: &str) -> Option<PathBuf> {
    static DIR: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let r = DIR.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-initrds.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            let dir = String::from_utf8_lossy(&out.stdout);
            let dir = dir.lines().last().unwrap_or("").trim().to_string();
            Ok(PathBuf::from(dir))
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(5).collect();
            Err(format!(
                "scripts/build-initrds.sh failed ({}): {}",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ))
        }
    });
    match r {
        Ok(d) => Some(d.clone()),
        Err(why) => {
            skip(
                test,
                &format!("real initrds are not cached and cannot be built here: {why}"),
            );
            None
        }
    }
}

/// Judge `examine --json` and `ls` of a real initrd against the reference tools: every
/// segment `[offset, offset+length)` decompresses with the reference decompressor into
/// archives whose `cpio -t` names are the segment's entries, only zeros lie between
/// segments, `ls --segments` is the concatenation and `ls` its merged view. Returns
/// (examine document, names per segment).
fn judge_real(dir: &Path, img: &Path) -> (Value, Vec<Vec<String>>) {
    let doc: Value = serde_json::from_str(&ok(dir, &["initrd", "examine", "--json", s(img)]))
        .expect("examine JSON");
    let bytes = std::fs::read(img).expect("read");
    let mut pos = 0u64;
    let mut per_seg = Vec::new();
    for seg in doc["segments"].as_array().expect("segments") {
        let off = seg["offset"].as_u64().expect("offset");
        let len = seg["length"].as_u64().expect("length");
        assert!(off >= pos, "{seg}");
        assert!(
            bytes[pos as usize..off as usize].iter().all(|&b| b == 0),
            "non-zero gap before {seg}"
        );
        pos = off + len;
        let comp = seg["compression"].as_str().expect("compression");
        let dec = codec(comp).2;
        // A segment may hold several archives: cpio -t stops at the first trailer, so
        // list each by skipping the previous ones' bytes (known from cpio's block count
        // is not exact): here every real segment holds one archive.
        assert_eq!(seg["archives"], 1, "{seg}");
        let names = lines(&cpio_of_segment(img, off, len, dec, "-t"));
        assert_eq!(seg["entries"].as_u64(), Some(names.len() as u64), "{seg}");
        per_seg.push(names);
    }
    assert!(
        bytes[pos as usize..].iter().all(|&b| b == 0),
        "junk after the last segment"
    );
    let all: Vec<String> = per_seg.iter().flatten().cloned().collect();
    judge_ls(dir, img, &all);
    (doc, per_seg)
}

#[test]
fn real_initrds_examine_ls_and_add_subroot() {
    for tool in ["cpio", "gzip", "zstd", "cmp"] {
        if !need(tool, "real_initrds_examine_ls_and_add_subroot") {
            return;
        }
    }
    let Some(cache) = real_initrds("real_initrds_examine_ls_and_add_subroot") else {
        return;
    };
    let dir = workdir();
    let d = dir.path();
    for (file, flavour) in [
        ("initramfs-tools.img", "initramfs-tools"),
        ("dracut-gzip.img", "dracut"),
        ("dracut-zstd.img", "dracut"),
    ] {
        let img = d.join(file);
        std::fs::copy(cache.join(file), &img).expect("copy");
        let (doc, _) = judge_real(d, &img);
        assert_eq!(doc["flavour"], flavour, "{file}");
        assert_eq!(doc["hook_present"], false, "{file}");
        let nseg = doc["segments"].as_array().expect("segs").len();
        assert!(
            nseg >= 2,
            "{file}: expected an early microcode segment: {doc}"
        );
        // extract (as the suite's user: root in CI) equals GNU cpio -idmu of every segment.
        if file == "initramfs-tools.img" {
            let (want, got) = (d.join("want"), d.join("got"));
            gnu_extract(d, &img, &want);
            let o = subroot_as_self(d, &["initrd", "extract", s(&img), "-C", s(&got)]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(tree_state(&got), tree_state(&want), "{file}");
            sh(&format!(
                "diff -r --no-dereference {} {}",
                s(&want),
                s(&got)
            ));
            sh(&format!("rm -rf {} {}", s(&want), s(&got)));
        }
        let main_comp = doc["segments"][nseg - 1]["compression"]
            .as_str()
            .expect("c");
        let out = d.join(format!("out-{file}"));
        ok(d, &["initrd", "add-subroot", s(&img), "-o", s(&out)]);
        let (odoc, onames) = judge_real(d, &out);
        assert_eq!(odoc["hook_present"], true, "{file}");
        // The input is kept byte for byte; one segment of the main's codec follows.
        let osegs = odoc["segments"].as_array().expect("segs");
        assert_eq!(osegs.len(), nseg + 1);
        let in_len = std::fs::metadata(&img).expect("meta").len();
        sh(&format!("cmp -n {in_len} {} {}", s(&img), s(&out)));
        let seg = &osegs[nseg];
        assert_eq!(seg["role"], "subroot-hook", "{odoc}");
        assert_eq!(seg["compression"], main_comp, "{odoc}");
        assert_eq!(osegs[nseg - 1]["role"], "main", "{odoc}");
        let ours = onames.last().expect("ours");
        let comp = seg["compression"].as_str().expect("comp");
        let (soff, slen) = (
            seg["offset"].as_u64().unwrap(),
            seg["length"].as_u64().unwrap(),
        );
        assert!(slen < 16 << 10, "{file}: appended {slen} bytes");
        // initramfs-tools' and dracut's own listers read it as they read the input.
        judge_reference_listings(&img, &out, file);
        if flavour == "initramfs-tools" {
            assert!(
                ours.iter().any(|n| n == "scripts/local-bottom/subroot"),
                "{file}"
            );
            let order = cpio_of_segment(
                &out,
                soff,
                slen,
                codec(comp).2,
                "-i --to-stdout scripts/local-bottom/ORDER",
            );
            let order = String::from_utf8_lossy(&order);
            assert!(
                order.contains("/scripts/local-bottom/subroot"),
                "{file}: ORDER = {order}"
            );
        } else {
            let hook = ours
                .iter()
                .find(|n| n.ends_with("hooks/pre-pivot/50-subroot-pre-pivot.sh"))
                .unwrap_or_else(|| panic!("{file}: no dracut hook in {ours:?}"));
            let text = cpio_of_segment(
                &out,
                soff,
                slen,
                codec(comp).2,
                &format!("-i --to-stdout {hook}"),
            );
            assert!(text.starts_with(b"#!"), "{file}");
        }
        // Decoding the main segment only up to where its sorted names pass what the hook
        // needs decides exactly as decoding everything.
        let full = d.join(format!("full-{file}"));
        ok(
            d,
            &[
                "initrd",
                "add-subroot",
                "--full-scan",
                s(&img),
                "-o",
                s(&full),
            ],
        );
        assert!(same_bytes(&out, &full), "{file}: --full-scan differs");
        let again = d.join(format!("again-{file}"));
        let said = ok(d, &["initrd", "add-subroot", s(&out), "-o", s(&again)]);
        assert!(said.contains("already present"), "{file}: {said}");
        assert!(same_bytes(&out, &again), "{file}: not idempotent");
        let said = ok(
            d,
            &[
                "initrd",
                "add-subroot",
                "--full-scan",
                s(&out),
                "-o",
                s(&again),
                "--force",
            ],
        );
        assert!(said.contains("already present"), "{file}: {said}");
    }
}

/// Everything `cpio -idm` restores, one line per entry (path, type, mode, owner, size of
/// files, mtime except of symlinks, device numbers), sorted; plus `diff -r` for contents.
fn tree_state(dir: &Path) -> Vec<String> {
    let out = sh(&format!(
        "cd {} && find . -printf '%P|%y|%m|%U|%G|%s|%T@|' -exec stat -c '%t:%T' {{}} \\;",
        s(dir)
    ));
    let mut v: Vec<String> = lines(&out)
        .into_iter()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let (kind, size, time, dev) = (f[1], f[5], f[6], f[7]);
            let size = if kind == "f" || kind == "l" {
                size
            } else {
                "-"
            };
            // GNU cpio -idm does not restore directory mtimes (checked separately).
            let time = if kind == "l" || kind == "d" {
                "-"
            } else {
                time
            };
            let dev = if kind == "b" || kind == "c" { dev } else { "-" };
            format!(
                "{}|{kind}|{}|{}|{}|{size}|{time}|{dev}",
                f[0], f[2], f[3], f[4]
            )
        })
        .collect();
    v.sort();
    v
}

/// GNU `cpio -idmu` of every segment of `img` (listed by `examine --json`) into `dest`:
/// later segments overwrite earlier ones, as the kernel does.
fn gnu_extract(dir: &Path, img: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).expect("mkdir");
    let doc: Value =
        serde_json::from_str(&ok(dir, &["initrd", "examine", "--json", s(img)])).expect("json");
    for seg in doc["segments"].as_array().expect("segs") {
        let (off, len) = (
            seg["offset"].as_u64().unwrap(),
            seg["length"].as_u64().unwrap(),
        );
        let dec = codec(seg["compression"].as_str().unwrap()).2;
        sh(&format!(
            "{} | {dec} | (cd {} && cpio -idmu --quiet)",
            seg_bytes(img, off, len),
            s(dest)
        ));
    }
}

/// Run the subroot binary as the suite's own user (root in CI), not via setpriv.
fn subroot_as_self(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_subroot"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running subroot")
}

#[test]
fn extract_matches_gnu_cpio() {
    for tool in ["cpio", "gzip", "zstd", "diff"] {
        if !need(tool, "extract_matches_gnu_cpio") {
            return;
        }
    }
    let dir = workdir();
    let d = dir.path();
    let root = it_root(d);
    let early = early_root(d);
    let (a, b) = (d.join("early.cpio"), d.join("main.zst"));
    gnu_archive(&early, "cat", &a);
    gnu_archive(&root, codec("zstd").1, &b);
    let img = d.join("initrd.img");
    concat(&[&a, &b], &img);
    let want = d.join("want");
    gnu_extract(d, &img, &want);
    // As the suite's user (root in CI: owners and devices too).
    let got = d.join("got");
    let out = subroot_as_self(d, &["initrd", "extract", s(&img), "-C", s(&got)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tree_state(&got), tree_state(&want));
    sh(&format!(
        "diff -r --no-dereference -x fifo -x console -x sda {} {}",
        s(&want),
        s(&got)
    ));
    // Directories get the archive's mtime (of the path's last entry).
    let js: Value = serde_json::from_str(&ok(d, &["initrd", "ls", "--json", s(&img)])).unwrap();
    let all = js.as_array().unwrap();
    for e in all.iter().filter(|e| e["type"] == "dir") {
        let name = e["name"].as_str().unwrap();
        let p = if name == "." {
            got.clone()
        } else {
            got.join(name)
        };
        let m = std::fs::metadata(&p).unwrap();
        let last = all.iter().rev().find(|x| x["name"] == name).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::mtime(&m) as u64,
            last["mtime"].as_u64().unwrap(),
            "{name}"
        );
    }
    if is_root() {
        // Unprivileged: what cannot be restored is summed up in one line.
        let un = d.join("unpriv");
        let out = subroot_in(d, &["initrd", "extract", s(&img), "-C", s(&un)]);
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not done as non-root"), "{err}");
        assert!(err.contains("device node"), "{err}");
    }
}

#[test]
fn extract_refuses_hostile_names_and_writes_nothing() {
    if !need("cpio", "extract_refuses_hostile_names_and_writes_nothing") {
        return;
    }
    let dir = workdir();
    let d = dir.path();
    // GNU cpio stores names as given: a `..` name and an absolute one.
    sh(&format!(
        "set -e; cd {0}; mkdir -p w/x etc; echo original > etc/passwd; echo evil > w/x/evil
         echo original > abs-target
         (cd w/x && printf 'evil\\n../../etc/passwd\\n' | cpio -o -H newc --quiet) > dotdot.img
         (cd w/x && printf 'evil\\n{0}/abs-target\\n' | cpio -o -H newc --quiet) > abs.img",
        s(d)
    ));
    for (img, bad) in [
        ("dotdot.img", "../../etc/passwd"),
        ("abs.img", "/abs-target"),
    ] {
        let names = run_stdout(
            "sh",
            &["-c", &format!("cpio -t --quiet < {}", s(&d.join(img)))],
        );
        assert!(
            names.contains(bad),
            "{img}: GNU cpio did not store {bad}: {names}"
        );
        let out = d.join(format!("out-{img}"));
        fails(
            d,
            &["initrd", "extract", s(&d.join(img)), "-C", s(&out)],
            3,
            &[img, bad],
        );
        assert!(
            names_in(&out).is_empty(),
            "{img}: something was extracted: {:?}",
            names_in(&out)
        );
    }
    assert_eq!(
        std::fs::read_to_string(d.join("etc/passwd")).unwrap(),
        "original\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("abs-target")).unwrap(),
        "original\n"
    );
}

fn names_in(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    names(dir)
}

#[test]
fn create_from_an_extracted_tree_repacks_the_same_entries() {
    for tool in ["cpio", "gzip", "diff"] {
        if !need(
            tool,
            "create_from_an_extracted_tree_repacks_the_same_entries",
        ) {
            return;
        }
    }
    let dir = workdir();
    let d = dir.path();
    let root = it_root(d);
    let orig = d.join("orig.img");
    gnu_archive(&root, codec("gzip").1, &orig);
    let x = d.join("x");
    ok(d, &["initrd", "-q", "extract", s(&orig), "-C", s(&x)]);
    let re = d.join("re.img");
    ok(
        d,
        &[
            "initrd",
            "create",
            "-o",
            s(&re),
            "--compress",
            "gzip:6",
            s(&x),
        ],
    );
    // Same names (device nodes are skipped when extracting unprivileged) and contents.
    let skipped: Vec<&str> = if is_root() {
        vec!["dev/console", "dev/sda"]
    } else {
        vec![]
    };
    let mut want = lines(&sh(&format!("gzip -dc {} | cpio -t --quiet", s(&orig))));
    want.retain(|n| !skipped.contains(&n.as_str()));
    want.sort();
    let mut got = lines(&sh(&format!("gzip -dc {} | cpio -t --quiet", s(&re))));
    got.sort();
    assert_eq!(got, want);
    let (ea, eb) = (d.join("ea"), d.join("eb"));
    std::fs::create_dir_all(&ea).unwrap();
    std::fs::create_dir_all(&eb).unwrap();
    sh(&format!(
        "gzip -dc {} | (cd {} && cpio -idm --quiet --no-preserve-owner)",
        s(&orig),
        s(&ea)
    ));
    sh(&format!(
        "gzip -dc {} | (cd {} && cpio -idm --quiet --no-preserve-owner)",
        s(&re),
        s(&eb)
    ));
    sh(&format!(
        "diff -r --no-dereference -x fifo -x console -x sda {0} {1}",
        s(&ea),
        s(&eb)
    ));
    // Hard links survive: GNU cpio extracts bin/sh2 as a link of bin/busybox.
    let st = sh(&format!("stat -c %h {}/bin/sh2", s(&eb)));
    assert_eq!(String::from_utf8_lossy(&st).trim(), "2");
    // Reproducible, and SOURCE_DATE_EPOCH clamps mtimes.
    let (r1, r2) = (d.join("r1.img"), d.join("r2.img"));
    for r in [&r1, &r2] {
        let out = subroot()
            .args([
                "initrd",
                "create",
                "-o",
                s(r),
                "--compress",
                "zstd:3",
                s(&x),
            ])
            .current_dir(d)
            .env("SOURCE_DATE_EPOCH", "1000")
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(same_bytes(&r1, &r2));
    let js: Value = serde_json::from_str(&ok(d, &["initrd", "ls", "--json", s(&r1)])).unwrap();
    assert!(js
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["mtime"].as_u64().unwrap() <= 1000));
    assert!(js.as_array().unwrap().iter().any(|e| e["mtime"] == 1000));
}
