//! Black-box tests of `subroot info`, `convert` and `create` on images made by the
//! reference tools (qemu-img, qemu-io, sfdisk, sgdisk, mke2fs, mkfs.vfat), judged by them:
//! `qemu-img compare` and `check`, `qemu-img info`, `sfdisk -J`, `sgdisk -v`, `blkid`.
//! Every subroot invocation runs as uid 65534 when the suite runs as root.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;

/// A 64 MiB raw disk with varied data: real (poorly compressible) bytes, patterns,
/// a partial-cluster write, a long hole, and data in the very last sector.
fn raw_source(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    run("truncate", &["-s", "64M", s(&p)]);
    let exe = which("qemu-img").expect("qemu-img");
    let w = |src: &str, seek: &str, count: &str, bs: &str| {
        run(
            "dd",
            &[
                &format!("if={src}"),
                &format!("of={}", s(&p)),
                &format!("bs={bs}"),
                &format!("seek={seek}"),
                &format!("count={count}"),
                "conv=notrunc",
                "status=none",
            ],
        );
    };
    w(s(&exe), "1", "3", "1M"); // 3 MiB of a real binary at 1 MiB
    w("/dev/urandom", "9000", "7", "512"); // 3.5 KiB at an odd, unaligned spot
    run(
        "qemu-io",
        &[
            "-f",
            "raw",
            "-c",
            "write -P 0x5a 20M 2M",
            "-c",
            "write -P 0xa5 40M 12345",
            s(&p),
        ],
    );
    w("/dev/urandom", "131071", "1", "512"); // the last sector
    p
}

/// Build one of the qcow2 variants the disk-layer issue lists; returns the image path.
fn variant(dir: &Path, kind: &str) -> PathBuf {
    let raw = raw_source(dir, "src.raw");
    let out = dir.join(format!("{kind}.qcow2"));
    let o = s(&out);
    let conv = |extra: &[&str]| {
        let mut a = vec!["convert", "-f", "raw", "-O", "qcow2"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&[s(&raw), o]);
        run("qemu-img", &a);
    };
    match kind {
        "plain" => conv(&[]),
        "zlib" => conv(&["-c"]),
        "zstd" => conv(&["-c", "-o", "compression_type=zstd"]),
        "extl2" => {
            conv(&["-o", "extended_l2=on,cluster_size=64k"]);
            // Partial-cluster writes exercise subclusters (2 KiB each here).
            run(
                "qemu-io",
                &[
                    "-f",
                    "qcow2",
                    "-c",
                    "write -P 0x77 30M 3k",
                    "-c",
                    "write -z 20M 4k",
                    o,
                ],
            );
        }
        "c512" => conv(&["-o", "cluster_size=512"]),
        "c4k" => conv(&["-o", "cluster_size=4k"]),
        "c2m" => conv(&["-o", "cluster_size=2M"]),
        "compat010" => conv(&["-o", "compat=0.10"]),
        "qemu-io" => {
            run("qemu-img", &["create", "-q", "-f", "qcow2", o, "64M"]);
            run(
                "qemu-io",
                &[
                    "-f",
                    "qcow2",
                    "-c",
                    "write -P 0x11 0 1M",
                    "-c",
                    "write -P 0x22 5M 300k",
                    "-c",
                    "write -z 256k 64k",
                    "-c",
                    "discard 5M 64k",
                    o,
                ],
            );
        }
        "overlay-qcow2" | "overlay-raw" | "overlay-relative" | "overlay-extl2" => {
            let base = if kind == "overlay-raw" {
                raw.clone()
            } else {
                let b = dir.join("base.qcow2");
                run(
                    "qemu-img",
                    &["convert", "-q", "-f", "raw", "-O", "qcow2", s(&raw), s(&b)],
                );
                b
            };
            let fmt = if kind == "overlay-raw" {
                "raw"
            } else {
                "qcow2"
            };
            if kind == "overlay-relative" {
                // The overlay lives in a sub-directory and names its backing file relatively.
                std::fs::create_dir(dir.join("sub")).expect("mkdir");
                let ov = dir.join("sub/overlay-relative.qcow2");
                run(
                    "qemu-img",
                    &[
                        "create",
                        "-q",
                        "-f",
                        "qcow2",
                        "-b",
                        "../base.qcow2",
                        "-F",
                        fmt,
                        s(&ov),
                    ],
                );
                run(
                    "qemu-io",
                    &["-f", "qcow2", "-c", "write -P 0x33 2M 64k", s(&ov)],
                );
                return ov;
            }
            let mut args = vec!["create", "-q", "-f", "qcow2", "-b", s(&base), "-F", fmt];
            if kind == "overlay-extl2" {
                args.extend_from_slice(&["-o", "extended_l2=on"]);
            }
            args.push(o);
            run("qemu-img", &args);
            run(
                "qemu-io",
                &[
                    "-f",
                    "qcow2",
                    "-c",
                    "write -P 0x44 1M 5k",
                    "-c",
                    "write -z 21M 64k",
                    o,
                ],
            );
        }
        other => panic!("unknown variant {other}"),
    }
    // Make everything readable by the unprivileged CLI.
    run("chmod", &["-R", "a+rX", s(dir)]);
    out
}

fn compare(a: &Path, b: &Path) {
    run("qemu-img", &["compare", "-q", s(a), s(b)]);
}

fn check_clean(img: &Path) {
    let out = std::process::Command::new(which("qemu-img").expect("qemu-img"))
        .args(["check", "--output=json", s(img)])
        .output()
        .expect("qemu-img check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "qemu-img check {}: {text} {}",
        img.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&text).expect("check json");
    assert_eq!(v["check-errors"], 0, "{text}");
    assert!(
        v.get("corruptions").is_none() || v["corruptions"] == 0,
        "{text}"
    );
    assert!(v.get("leaks").is_none() || v["leaks"] == 0, "{text}");
}

fn qemu_info(img: &Path) -> Value {
    serde_json::from_str(&run_stdout("qemu-img", &["info", "--output=json", s(img)]))
        .expect("info json")
}

/// The whole conversion matrix for one variant: to raw, to qcow2, to compressed qcow2.
fn convert_matrix(kind: &str) {
    if !need("qemu-img", kind) || !need("qemu-io", kind) {
        return;
    }
    let d = workdir();
    let img = variant(d.path(), kind);
    let input = s(&img);
    let before = d.path().join("input-copy");
    std::fs::copy(&img, &before).expect("copy");

    ok(d.path(), &["convert", input, "out.raw"]);
    compare(&img, &d.path().join("out.raw"));
    // Sparse: the 64 MiB disk holds about 9 MiB of data.
    let md = std::fs::metadata(d.path().join("out.raw")).expect("stat");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(md.len(), 64 * MIB);
    assert!(
        md.blocks() * 512 < 24 * MIB,
        "{kind}: raw output is not sparse ({} bytes allocated)",
        md.blocks() * 512
    );

    for (name, extra) in [
        ("out.qcow2", vec![]),
        ("out-zlib.qcow2", vec!["-c"]),
        ("out-zstd.qcow2", vec!["-c", "zstd"]),
        ("out-512.qcow2", vec!["--cluster-size", "512"]),
        ("out-2m.qcow2", vec!["--cluster-size", "2M", "-c", "zlib"]),
    ] {
        let mut args = vec!["convert", input, name, "-O", "qcow2"];
        args.extend(extra);
        ok(d.path(), &args);
        let out = d.path().join(name);
        check_clean(&out);
        compare(&img, &out);
        let qi = qemu_info(&out);
        assert_eq!(qi["virtual-size"], 64 * MIB);
        assert!(
            qi.get("backing-filename").is_none(),
            "{kind}: the output must be flattened"
        );
    }
    assert!(same_bytes(&img, &before), "{kind}: the input was modified");
    // Nothing but the outputs (no temporary files) is left.
    let left: Vec<String> = names(d.path())
        .into_iter()
        .filter(|n| n.contains("subroot-tmp"))
        .collect();
    assert!(left.is_empty(), "{kind}: temporary files left: {left:?}");
}

macro_rules! matrix_tests {
    ($($name:ident => $kind:expr,)*) => {$(
        #[test]
        fn $name() {
            convert_matrix($kind);
        }
    )*};
}

matrix_tests! {
    convert_plain => "plain",
    convert_zlib => "zlib",
    convert_zstd => "zstd",
    convert_extended_l2 => "extl2",
    convert_cluster_512 => "c512",
    convert_cluster_4k => "c4k",
    convert_cluster_2m => "c2m",
    convert_compat_010 => "compat010",
    convert_qemu_io_writes => "qemu-io",
    convert_overlay_qcow2_backing => "overlay-qcow2",
    convert_overlay_raw_backing => "overlay-raw",
    convert_overlay_relative_backing => "overlay-relative",
    convert_overlay_extended_l2 => "overlay-extl2",
}

/// `info --json` agrees with `qemu-img info --output=json` on every container field.
#[test]
fn info_agrees_with_qemu_img() {
    if !need("qemu-img", "info_agrees_with_qemu_img")
        || !need("qemu-io", "info_agrees_with_qemu_img")
    {
        return;
    }
    for kind in [
        "plain",
        "zstd",
        "extl2",
        "c512",
        "compat010",
        "overlay-qcow2",
        "overlay-raw",
        "overlay-relative",
    ] {
        let d = workdir();
        let img = variant(d.path(), kind);
        let ours: Value =
            serde_json::from_str(&ok(d.path(), &["info", "--json", s(&img)])).expect("our json");
        let theirs = qemu_info(&img);
        let spec = &theirs["format-specific"]["data"];
        assert_eq!(ours["format"], theirs["format"], "{kind}");
        assert_eq!(ours["virtual_size"], theirs["virtual-size"], "{kind}");
        assert_eq!(ours["actual_size"], theirs["actual-size"], "{kind}");
        assert_eq!(
            ours["qcow2"]["cluster_size"], theirs["cluster-size"],
            "{kind}"
        );
        assert_eq!(ours["qcow2"]["compat"], spec["compat"], "{kind}");
        if let Some(ct) = spec.get("compression-type") {
            assert_eq!(&ours["qcow2"]["compression_type"], ct, "{kind}");
        }
        assert_eq!(
            ours["qcow2"]["extended_l2"],
            spec.get("extended-l2")
                .cloned()
                .unwrap_or(Value::Bool(false)),
            "{kind}"
        );
        assert_eq!(
            ours["qcow2"]["refcount_bits"], spec["refcount-bits"],
            "{kind}"
        );
        // qemu-img reports lazy-refcounts only for compat 1.1.
        if let Some(lazy) = spec.get("lazy-refcounts") {
            assert_eq!(&ours["qcow2"]["lazy_refcounts"], lazy, "{kind}");
        }
        match theirs.get("backing-filename") {
            Some(b) => {
                assert_eq!(&ours["qcow2"]["backing_file"], b, "{kind}");
                assert_eq!(
                    ours["backing_chain"][0]["format"], theirs["backing-filename-format"],
                    "{kind}"
                );
                let full = theirs["full-backing-filename"]
                    .as_str()
                    .expect("full backing name");
                let ours_full = ours["backing_chain"][0]["path"]
                    .as_str()
                    .expect("chain path");
                assert_eq!(
                    std::fs::canonicalize(ours_full).expect("canon ours"),
                    std::fs::canonicalize(full).expect("canon theirs"),
                    "{kind}"
                );
            }
            None => assert_eq!(
                ours["backing_chain"].as_array().map(Vec::len),
                Some(0),
                "{kind}"
            ),
        }
        // The human form names the same facts.
        let human = ok(d.path(), &["info", s(&img)]);
        assert!(
            human.contains("qcow2") && human.contains("64 MiB"),
            "{kind}: {human}"
        );
    }
}

/// A disk with an MBR holding two primaries and an extended partition with three logicals,
/// a filesystem on some of them; returned as qcow2 (read through the container).
fn mbr_disk(dir: &Path) -> PathBuf {
    let raw = dir.join("mbr.raw");
    run("truncate", &["-s", "128M", s(&raw)]);
    let script = "label: dos\nlabel-id: 0x1234abcd\nstart=2048, size=20480, type=83, bootable\n\
start=22528, size=20480, type=c\nstart=43008, size=200704, type=5\n\
start=45056, size=20480, type=83\nstart=67584, size=20480, type=82\nstart=90112, size=20480, type=83\n";
    sfdisk_script(&raw, script);
    run(
        "mke2fs",
        &[
            "-q",
            "-t",
            "ext4",
            "-L",
            "rootfs",
            "-U",
            "0d7a3c4e-5b6f-4a1b-9c8d-7e6f5a4b3c2d",
            "-E",
            &format!("offset={}", 2048 * 512),
            s(&raw),
            "10M",
        ],
    );
    run(
        "mkfs.vfat",
        &[
            "-F",
            "16",
            "-n",
            "BOOT",
            "-i",
            "1a2b3c4d",
            "--offset",
            "22528",
            s(&raw),
            "10240",
        ],
    );
    run(
        "mke2fs",
        &[
            "-q",
            "-t",
            "ext2",
            "-L",
            "logical5",
            "-E",
            &format!("offset={}", 45056 * 512),
            s(&raw),
            "10M",
        ],
    );
    let q = dir.join("mbr.qcow2");
    run(
        "qemu-img",
        &["convert", "-q", "-f", "raw", "-O", "qcow2", s(&raw), s(&q)],
    );
    q
}

/// Compare our partitions with `sfdisk -J` of the same (raw) disk.
fn assert_table_matches_sfdisk(ours: &Value, raw: &Path) {
    let sf: Value =
        serde_json::from_str(&run_stdout("sfdisk", &["-J", s(raw)])).expect("sfdisk json");
    let pt = &sf["partitiontable"];
    let label = pt["label"].as_str().expect("label");
    assert_eq!(
        ours["table"]["type"],
        if label == "dos" { "mbr" } else { "gpt" }
    );
    assert_eq!(
        ours["table"]["disk_id"]
            .as_str()
            .map(str::to_ascii_lowercase),
        pt["id"].as_str().map(str::to_ascii_lowercase)
    );
    let theirs = pt["partitions"].as_array().expect("partitions");
    let mine = ours["partitions"].as_array().expect("our partitions");
    assert_eq!(
        mine.len(),
        theirs.len(),
        "partition count: ours {mine:?} sfdisk {theirs:?}"
    );
    for (m, t) in mine.iter().zip(theirs) {
        let node = t["node"].as_str().expect("node");
        let num: u64 = node
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .expect("number");
        assert_eq!(m["number"], num);
        assert_eq!(
            m["start"].as_u64(),
            t["start"].as_u64().map(|x| x * 512),
            "start of {node}"
        );
        assert_eq!(
            m["size"].as_u64(),
            t["size"].as_u64().map(|x| x * 512),
            "size of {node}"
        );
        let ty = t["type"].as_str().expect("type");
        let mine_ty = m["type"].as_str().expect("our type");
        // MBR codes are hex bytes ("0x0c" here, "c" in sfdisk); GPT types are GUIDs.
        let norm = |x: &str| {
            let x = x.trim_start_matches("0x").to_ascii_lowercase();
            u8::from_str_radix(&x, 16)
                .map(|b| format!("{b:02x}"))
                .unwrap_or(x)
        };
        assert_eq!(norm(mine_ty), norm(ty), "type of {node}");
        if let Some(u) = t.get("uuid") {
            assert_eq!(
                m["uuid"].as_str().map(str::to_ascii_lowercase),
                u.as_str().map(str::to_ascii_lowercase)
            );
        }
        if let Some(n) = t.get("name") {
            assert_eq!(&m["name"], n, "name of {node}");
        }
        // MBR: the active flag; GPT: sfdisk lists the attribute in `attrs`.
        let boot = t.get("bootable").and_then(Value::as_bool).unwrap_or(false)
            || t.get("attrs")
                .and_then(Value::as_str)
                .unwrap_or("")
                .contains("LegacyBIOSBootable");
        assert_eq!(
            m["bootable"].as_bool(),
            Some(boot),
            "bootable flag of {node}"
        );
    }
}

#[test]
fn info_mbr_with_logical_partitions() {
    for t in ["qemu-img", "sfdisk", "mke2fs", "mkfs.vfat", "blkid"] {
        if !need(t, "info_mbr_with_logical_partitions") {
            return;
        }
    }
    let d = workdir();
    let q = mbr_disk(d.path());
    run("chmod", &["-R", "a+rX", s(d.path())]);
    let ours: Value =
        serde_json::from_str(&ok(d.path(), &["info", "--json", s(&q)])).expect("json");
    assert_table_matches_sfdisk(&ours, &d.path().join("mbr.raw"));
    let parts = ours["partitions"].as_array().expect("parts");
    let by_num = |n: u64| parts.iter().find(|p| p["number"] == n).expect("partition");
    assert_eq!(by_num(3)["kind"], "extended");
    assert_eq!(by_num(5)["kind"], "logical");
    assert_eq!(by_num(7)["kind"], "logical");
    // Filesystems agree with blkid on the same bytes.
    let blkid = |offset: u64| {
        run_stdout(
            "blkid",
            &[
                "-p",
                "-o",
                "export",
                "-O",
                &offset.to_string(),
                s(&d.path().join("mbr.raw")),
            ],
        )
    };
    for (num, offset) in [(1u64, 2048u64 * 512), (2, 22528 * 512), (5, 45056 * 512)] {
        let fs = &by_num(num)["filesystem"];
        let b = blkid(offset);
        assert!(
            b.contains(&format!("TYPE={}", fs["type"].as_str().expect("type"))),
            "p{num}: {b} vs {fs}"
        );
        assert!(
            b.contains(&format!("UUID={}", fs["uuid"].as_str().expect("uuid"))),
            "p{num}: {b} vs {fs}"
        );
        assert!(
            b.contains(&format!("LABEL={}", fs["label"].as_str().expect("label"))),
            "p{num}: {b} vs {fs}"
        );
    }
    assert_eq!(by_num(1)["filesystem"]["type"], "ext4");
    assert_eq!(by_num(2)["filesystem"]["fat_bits"], 16);
    let human = ok(d.path(), &["info", s(&q)]);
    assert!(
        human.contains("mbr (disk id 0x1234abcd)") && human.contains("ext4"),
        "{human}"
    );
}

/// A GPT disk with 128 entries made by sgdisk.
fn gpt_disk(dir: &Path) -> PathBuf {
    let raw = dir.join("gpt.raw");
    // mkfs.vfat sizes a regular file to the end of the filesystem: format first, then grow
    // the file back and partition it (sgdisk writes only the table areas).
    run("truncate", &["-s", "100M", s(&raw)]);
    run(
        "mkfs.vfat",
        &[
            "-F",
            "32",
            "-n",
            "ESP",
            "--offset",
            "2048",
            s(&raw),
            "20480",
        ],
    );
    run("truncate", &["-s", "100M", s(&raw)]);
    run(
        "sgdisk",
        &[
            "-o",
            "-U",
            "11111111-2222-3333-4444-555555555555",
            "-n",
            "1:2048:+20M",
            "-t",
            "1:ef00",
            "-c",
            "1:EFI System",
            "-n",
            "2:0:+30M",
            "-t",
            "2:8300",
            "-c",
            "2:root",
            "-A",
            "2:set:2",
            "-n",
            "3:0:0",
            "-t",
            "3:8302",
            "-c",
            "3:home",
            s(&raw),
        ],
    );
    raw
}

#[test]
fn info_gpt_and_corrupt_primary_header() {
    for t in ["qemu-img", "sfdisk", "sgdisk", "mkfs.vfat"] {
        if !need(t, "info_gpt_and_corrupt_primary_header") {
            return;
        }
    }
    let d = workdir();
    let raw = gpt_disk(d.path());
    run("chmod", &["-R", "a+rX", s(d.path())]);
    let ours: Value =
        serde_json::from_str(&ok(d.path(), &["info", "--json", s(&raw)])).expect("json");
    assert_table_matches_sfdisk(&ours, &raw);
    assert_eq!(ours["partitions"][0]["filesystem"]["type"], "vfat");
    assert_eq!(ours["partitions"][0]["filesystem"]["fat_bits"], 32);
    assert_eq!(ours["partitions"][1]["bootable"], true);
    assert_eq!(ours["table"]["warnings"].as_array().map(Vec::len), Some(0));

    // Damage the primary header (LBA 1): the backup is used, with a warning.
    let bad = d.path().join("gpt-bad.raw");
    std::fs::copy(&raw, &bad).expect("copy");
    run(
        "dd",
        &[
            "if=/dev/zero",
            &format!("of={}", s(&bad)),
            "bs=1",
            "seek=600",
            "count=16",
            "conv=notrunc",
            "status=none",
        ],
    );
    run("chmod", &["a+r", s(&bad)]);
    let damaged: Value =
        serde_json::from_str(&ok(d.path(), &["info", "--json", s(&bad)])).expect("json");
    assert_eq!(damaged["partitions"], ours["partitions"]);
    let warnings = damaged["table"]["warnings"].as_array().expect("warnings");
    assert!(
        !warnings.is_empty() && warnings[0].as_str().unwrap_or("").contains("backup"),
        "{warnings:?}"
    );
}

#[test]
fn create_tables_pass_sfdisk_and_sgdisk() {
    for t in ["qemu-img", "sfdisk", "sgdisk"] {
        if !need(t, "create_tables_pass_sfdisk_and_sgdisk") {
            return;
        }
    }
    let d = workdir();
    ok(
        d.path(),
        &[
            "create",
            "g.raw",
            "--size",
            "256M",
            "--table",
            "gpt",
            "--part",
            "size=64M,type=esp,name=EFI",
            "--part",
            "size=rest,type=linux,name=root",
        ],
    );
    let g = d.path().join("g.raw");
    let v = run_stdout("sgdisk", &["-v", s(&g)]);
    assert!(v.contains("No problems found"), "{v}");
    let sf: Value = serde_json::from_str(&run_stdout("sfdisk", &["-J", s(&g)])).expect("json");
    let parts = sf["partitiontable"]["partitions"]
        .as_array()
        .expect("parts")
        .clone();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["type"], "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    assert_eq!(parts[0]["size"], 64 * 2048);
    assert_eq!(parts[0]["name"], "EFI");
    assert_eq!(parts[1]["type"], "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
    use std::os::unix::fs::MetadataExt;
    assert!(
        std::fs::metadata(&g).expect("stat").blocks() * 512 < MIB,
        "the created raw disk is not sparse"
    );

    // MBR with more than four partitions gets logicals, in qcow2.
    ok(
        d.path(),
        &[
            "create",
            "m.qcow2",
            "-O",
            "qcow2",
            "--size",
            "1G",
            "--table",
            "mbr",
            "--part",
            "size=100M,type=linux,bootable",
            "--part",
            "size=100M,type=swap",
            "--part",
            "size=100M",
            "--part",
            "size=100M",
            "--part",
            "size=rest,type=0x8e",
        ],
    );
    let m = d.path().join("m.qcow2");
    check_clean(&m);
    assert_eq!(qemu_info(&m)["virtual-size"], 1u64 << 30);
    let mraw = d.path().join("m.raw");
    run("qemu-img", &["convert", "-O", "raw", s(&m), s(&mraw)]);
    run("sfdisk", &["-V", s(&mraw)]);
    let sf: Value = serde_json::from_str(&run_stdout("sfdisk", &["-J", s(&mraw)])).expect("json");
    let parts = sf["partitiontable"]["partitions"]
        .as_array()
        .expect("parts")
        .clone();
    assert_eq!(parts.len(), 6, "{parts:?}"); // 3 primaries, the extended, 2 logicals
    assert_eq!(parts[0]["bootable"], true);
    assert_eq!(parts.last().expect("last")["type"], "8e");
    let ours: Value =
        serde_json::from_str(&ok(d.path(), &["info", "--json", "m.qcow2"])).expect("json");
    assert_table_matches_sfdisk(&ours, &mraw);

    // A plain empty disk, no table.
    ok(
        d.path(),
        &["create", "empty.qcow2", "-O", "qcow2", "--size", "10G"],
    );
    check_clean(&d.path().join("empty.qcow2"));
    fails(
        d.path(),
        &["create", "empty.qcow2", "--size", "1G"],
        1,
        &["already exists"],
    );
    fails(
        d.path(),
        &[
            "create", "x.raw", "--size", "1G", "--table", "gpt", "--part", "size=2G",
        ],
        1,
        &["does not fit"],
    );
    assert!(!d.path().join("x.raw").exists());
}

/// Missing files and bad options (corrupt inputs are tests/malformed.rs's job).
#[test]
fn missing_inputs_and_bad_options_fail_cleanly() {
    if !need("qemu-img", "missing_inputs_and_bad_options_fail_cleanly") {
        return;
    }
    let d = workdir();
    let dir = d.path();
    let good = dir.join("good.qcow2");
    run(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", s(&good), "64M"],
    );
    run("chmod", &["a+r", s(&good)]);
    let m = dir.join("missing.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-u",
            "-b",
            "gone.qcow2",
            "-F",
            "qcow2",
            s(&m),
            "64M",
        ],
    );
    run("chmod", &["a+r", s(&m)]);
    // A dangling backing reference is a missing file: an I/O failure (1), named precisely.
    fails(
        dir,
        &["convert", "missing.qcow2", "out.raw"],
        1,
        &["missing.qcow2", "gone.qcow2", "No such file"],
    );
    assert!(!dir.join("out.raw").exists());

    // A missing input and a nonsense option.
    fails(dir, &["info", "nope.qcow2"], 1, &["nope.qcow2"]);
    let out = subroot_in(dir, &["convert", "good.qcow2", "o.raw", "-c"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs qcow2 output"));
}

#[test]
fn help_completions_and_man_page() {
    let d = workdir();
    for cmd in ["info", "convert", "create"] {
        let h = ok(d.path(), &[cmd, "--help"]);
        assert!(h.contains("EXAMPLES:"), "{cmd} --help has no examples: {h}");
    }
    let top = ok(d.path(), &["--help"]);
    assert!(top.contains("EXIT STATUS"), "{top}");
    assert!(ok(d.path(), &["completions", "bash"]).contains("_subroot"));
    let man = ok(d.path(), &["man"]);
    assert!(
        man.contains(".TH subroot"),
        "{}",
        &man[..man.len().min(200)]
    );
    let out = subroot_in(d.path(), &["convert"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}
