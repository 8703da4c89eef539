//! Crafted bad inputs driven through the CLI (`info`, `convert` to raw and to qcow2):
//! truncations at many points, wrong magics, loops (backing chain, EBR chain), out-of-range
//! offsets, bad checksums (GPT CRCs), lying sizes and hostile header fields. Each must fail
//! with exit status 3 (or 1 for an I/O failure) and one `subroot: error:` line naming the
//! file and the problem, never panic, leave no output or temporary file, and leave the
//! input byte-identical (judged by `cmp`).
//!
//! The images start as real ones made by `qemu-img`/`qemu-io` and `sfdisk`/`sgdisk`, then
//! one field is damaged. ext and cpio damage, which no CLI command reads yet, is covered
//! through the library in `formats/tests/malformed_lib.rs`.

mod common;

use common::*;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

fn read_be64(img: &Path, offset: u64) -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open(img)
        .expect("open")
        .read_exact_at(&mut b, offset)
        .expect("read");
    u64::from_be_bytes(b)
}

fn read_le64(img: &Path, offset: u64) -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open(img)
        .expect("open")
        .read_exact_at(&mut b, offset)
        .expect("read");
    u64::from_le_bytes(b)
}

/// CRC-32 (IEEE), for re-sealing a damaged GPT header so that only the damage is wrong.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Recompute the CRC of the GPT header at `lba` (512-byte sectors).
fn reseal_gpt_header(img: &Path, lba: u64) {
    let f = std::fs::File::open(img).expect("open");
    let mut h = [0u8; 92];
    f.read_exact_at(&mut h, lba * 512).expect("read");
    h[16..20].fill(0);
    patch(img, lba * 512 + 16, &crc32(&h).to_le_bytes());
}

/// One bad input and what its error must say.
struct Case {
    file: PathBuf,
    /// Extra arguments before the input (e.g. `-f qcow2`).
    format: Option<&'static str>,
    /// Commands to try: info and/or convert.
    info: bool,
    convert: bool,
    code: i32,
    phrases: Vec<&'static str>,
}

/// Run every command of `case` and check the failure contract.
fn check(dir: &Path, case: &Case) {
    run("chmod", &["a+r", s(&case.file)]);
    let pristine = dir.join("pristine.copy");
    std::fs::copy(&case.file, &pristine).expect("copy");
    let name = case
        .file
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let mut phrases = vec![name.as_str()];
    phrases.extend(case.phrases.iter().copied());
    let mut runs: Vec<Vec<&str>> = Vec::new();
    let fmt: Vec<&str> = case.format.map(|f| vec!["-f", f]).unwrap_or_default();
    if case.info {
        let mut a = vec!["info"];
        a.extend(&fmt);
        a.push(s(&case.file));
        runs.push(a.clone());
        a.push("--json");
        runs.push(a);
    }
    if case.convert {
        for out in [&["out.raw"][..], &["out.qcow2", "-O", "qcow2", "-c"][..]] {
            let mut a = vec!["convert"];
            a.extend(&fmt);
            a.push(s(&case.file));
            a.extend_from_slice(out);
            runs.push(a);
        }
    }
    for args in &runs {
        let err = fails(dir, args, case.code, &phrases);
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: expected one error line, got: {err}"
        );
        let stray: Vec<String> = names(dir)
            .into_iter()
            .filter(|n| n.starts_with("out") || n.contains("subroot-tmp"))
            .collect();
        assert!(stray.is_empty(), "{args:?}: output left behind: {stray:?}");
        assert!(
            same_bytes(&case.file, &pristine),
            "{name} was modified by {args:?}"
        );
    }
    if std::env::var_os("MALFORMED_SHOW").is_some() {
        eprintln!(
            "{name}: {}",
            fails(dir, &runs[0], case.code, &phrases).trim_end()
        );
    }
    std::fs::remove_file(&pristine).expect("rm");
}

/// A 64 MiB qcow2 image with data (qemu-io writes), plus one with zlib-compressed clusters.
fn qcow2_good(dir: &Path, name: &str, opts: &str) -> PathBuf {
    let p = dir.join(name);
    run(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", "-o", opts, s(&p), "64M"],
    );
    run(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            "write -P 0x11 0 1M",
            "-c",
            "write -P 0x22 10M 64k",
            s(&p),
        ],
    );
    p
}

fn derive(dir: &Path, good: &Path, name: &str, f: impl FnOnce(&Path)) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(good, &p).expect("copy");
    f(&p);
    p
}

fn qcase(file: PathBuf, phrases: Vec<&'static str>) -> Case {
    Case {
        file,
        format: Some("qcow2"),
        info: true,
        convert: true,
        code: 3,
        phrases,
    }
}

#[test]
fn malformed_qcow2_images_fail_cleanly() {
    if !need("qemu-img", "malformed_qcow2_images_fail_cleanly")
        || !need("qemu-io", "malformed_qcow2_images_fail_cleanly")
    {
        return;
    }
    let d = workdir();
    let dir = d.path();
    let good = qcow2_good(dir, "good.qcow2", "cluster_size=65536");
    let l1 = read_be64(&good, 40);
    let l2 = read_be64(&good, l1) & 0x00ff_ffff_ffff_fe00;
    let data = read_be64(&good, l2) & 0x00ff_ffff_ffff_fe00;
    let len = std::fs::metadata(&good).expect("stat").len();
    // The undamaged image is valid by qemu-img's judgement (and subroot reads it).
    assert!(run_stdout("qemu-img", &["check", s(&good)]).contains("No errors"));
    ok(dir, &["info", s(&good)]);
    let mut cases = Vec::new();

    // Truncations: inside the magic, the v2 header, the v3 header, the first cluster,
    // the L1 table, the L2 table, and the data.
    for (cut, what) in [
        (3u64, "truncated"),
        (40, "truncated"),
        (71, "truncated"),
        (100, "truncated"),
        (4096, "L1"),
        (l1 + 4, "L1"),
        (l2 + 100, "L2"),
        (data + 4096, "end of the file"),
    ] {
        let p = derive(dir, &good, &format!("cut-{cut}.qcow2"), |p| {
            run("truncate", &["-s", &cut.to_string(), s(p)]);
        });
        cases.push(qcase(p, vec![what]));
    }
    assert!(len > data + 4096);

    let be32 = |v: u32| v.to_be_bytes();
    let be64 = |v: u64| v.to_be_bytes();
    let field_cases: Vec<(&str, u64, Vec<u8>, Vec<&'static str>)> = vec![
        ("badmagic", 0, b"QFI\x00".to_vec(), vec!["magic"]),
        ("version4", 4, be32(4).to_vec(), vec!["version 4"]),
        ("cbits8", 20, be32(8).to_vec(), vec!["cluster_bits 8"]),
        ("cbits22", 20, be32(22).to_vec(), vec!["cluster_bits 22"]),
        // Lying sizes: 2^62 bytes with the L1 of a 64 MiB disk; an L1 of 2^31 entries.
        ("size2e62", 24, be64(1 << 62).to_vec(), vec!["L1"]),
        ("l1huge", 36, be32(1 << 31).to_vec(), vec!["L1"]),
        (
            "l1unaligned",
            40,
            be64(l1 + 8).to_vec(),
            vec!["L1", "aligned"],
        ),
        (
            "l1far",
            40,
            be64(1 << 40).to_vec(),
            vec!["L1", "end of the file"],
        ),
        ("refcountfar", 48, be64(1 << 50).to_vec(), vec!["refcount"]),
        ("crypt", 32, be32(1).to_vec(), vec!["encrypted"]),
        (
            "unknownfeature",
            72,
            be64(1 << 40).to_vec(),
            vec!["unknown incompatible", "bit 40"],
        ),
        ("corruptbit", 72, be64(2).to_vec(), vec!["marked corrupt"]),
        ("dirtybit", 72, be64(1).to_vec(), vec!["dirty"]),
        (
            "externaldata",
            72,
            be64(4).to_vec(),
            vec!["external data file"],
        ),
        (
            "refcountorder",
            96,
            be32(7).to_vec(),
            vec!["refcount_order 7"],
        ),
        (
            "headerlen",
            100,
            be32(200_000).to_vec(),
            vec!["header_length 200000"],
        ),
        // A header extension whose length runs past the first cluster.
        (
            "extlen",
            112,
            [be32(0x1234_5678), be32(0x0100_0000)].concat(),
            vec!["extension", "past"],
        ),
        // A backing file name longer than the first cluster.
        (
            "backingname",
            8,
            [&be64(512)[..], &be32(1 << 20)[..]].concat(),
            vec!["backing file name"],
        ),
        // L1 entry 0 -> an L2 table beyond the end of the file; -> an unaligned one.
        (
            "l2far",
            l1,
            be64((1 << 63) | (1 << 40)).to_vec(),
            vec!["L2", "end of the file"],
        ),
        (
            "l2unaligned",
            l1,
            be64((1 << 63) | (l2 + 512)).to_vec(),
            vec!["L2", "aligned"],
        ),
        // L2 entry 0 -> data beyond the end of the file; -> unaligned data.
        (
            "datafar",
            l2,
            be64((1 << 63) | (1 << 45)).to_vec(),
            vec!["host offset", "end of the file"],
        ),
        (
            "dataunaligned",
            l2,
            be64((1 << 63) | (data + 512)).to_vec(),
            vec!["host offset", "aligned"],
        ),
        // L2 entry 0 made "compressed" over bytes that are not a deflate stream.
        (
            "badcompressed",
            l2,
            be64((1 << 62) | (1 << 54) | (l1 + 3)).to_vec(),
            vec!["compressed cluster"],
        ),
    ];
    for (name, off, bytes, phrases) in field_cases {
        let p = derive(dir, &good, &format!("{name}.qcow2"), |p| {
            patch(p, off, &bytes)
        });
        cases.push(qcase(p, phrases));
    }

    // A compressed image whose compressed cluster's bytes are destroyed.
    let zgood = dir.join("z.qcow2");
    run(
        "qemu-img",
        &[
            "convert",
            "-c",
            "-f",
            "qcow2",
            "-O",
            "qcow2",
            s(&good),
            s(&zgood),
        ],
    );
    let zl1 = read_be64(&zgood, 40);
    let zl2 = read_be64(&zgood, zl1) & 0x00ff_ffff_ffff_fe00;
    let zentry = read_be64(&zgood, zl2);
    let zoff = zentry & ((1u64 << 54) - 1);
    let zbad = derive(dir, &zgood, "zgarbage.qcow2", |p| {
        patch(p, zoff, &[0xff; 64])
    });
    cases.push(qcase(zbad, vec!["compressed cluster"]));

    // Extended L2: a subcluster marked both allocated and zero.
    let x = qcow2_good(dir, "x.qcow2", "extended_l2=on,cluster_size=65536");
    let xl1 = read_be64(&x, 40);
    let xl2 = read_be64(&x, xl1) & 0x00ff_ffff_ffff_fe00;
    let xbad = derive(dir, &x, "extl2-both.qcow2", |p| {
        patch(p, xl2 + 8, &0x0000_0001_0000_0001u64.to_be_bytes())
    });
    cases.push(qcase(xbad, vec!["both allocated and zero"]));

    for c in &cases {
        check(dir, c);
    }
    assert!(cases.len() >= 33, "{} qcow2 cases", cases.len());
}

#[test]
fn backing_loops_fail_cleanly() {
    if !need("qemu-img", "backing_loops_fail_cleanly") {
        return;
    }
    let d = workdir();
    let dir = d.path();
    // An image that is its own backing file.
    let selfish = dir.join("self.qcow2");
    run(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", s(&selfish), "64M"],
    );
    run(
        "qemu-img",
        &[
            "rebase",
            "-u",
            "-f",
            "qcow2",
            "-b",
            "self.qcow2",
            "-F",
            "qcow2",
            s(&selfish),
        ],
    );
    // A three-image loop a -> b -> c -> a.
    let names = ["a.qcow2", "b.qcow2", "c.qcow2"];
    for n in names {
        run(
            "qemu-img",
            &["create", "-q", "-f", "qcow2", s(&dir.join(n)), "64M"],
        );
    }
    for i in 0..3 {
        run(
            "qemu-img",
            &[
                "rebase",
                "-u",
                "-f",
                "qcow2",
                "-b",
                names[(i + 1) % 3],
                "-F",
                "qcow2",
                s(&dir.join(names[i])),
            ],
        );
    }
    for f in ["self.qcow2", "a.qcow2"] {
        check(
            dir,
            &Case {
                file: dir.join(f),
                format: None,
                info: true,
                convert: true,
                code: 3,
                phrases: vec!["backing file loop"],
            },
        );
    }
}

fn tcase(file: PathBuf, phrases: Vec<&'static str>) -> Case {
    Case {
        file,
        format: None,
        info: true,
        convert: false,
        code: 3,
        phrases,
    }
}

#[test]
fn malformed_partition_tables_fail_cleanly() {
    if !need("sfdisk", "malformed_partition_tables_fail_cleanly") {
        return;
    }
    let d = workdir();
    let dir = d.path();
    // MBR: an extended partition at sector 2048 holding two logical partitions.
    let mbr = sfdisk_image(
        dir,
        "mbr.raw",
        "16M",
        "label: dos\nstart=2048,size=4096,type=83\nstart=8192,size=16384,type=5\n\
         start=10240,size=2048,type=83\nstart=14336,size=2048,type=83\n",
    );
    // The first EBR (sector 8192) links to itself: a loop; or far beyond the disk.
    let ebr = 8192u64 * 512;
    let mut cases = vec![
        tcase(
            derive(dir, &mbr, "ebr-loop.raw", |p| {
                // Second entry: type 5, relative start 0 -> the same EBR again.
                patch(p, ebr + 446 + 16 + 4, &[5]);
                patch(p, ebr + 446 + 16 + 8, &0u32.to_le_bytes());
            }),
            vec!["loop"],
        ),
        tcase(
            derive(dir, &mbr, "ebr-far.raw", |p| {
                patch(p, ebr + 446 + 16 + 8, &0x0fff_0000u32.to_le_bytes())
            }),
            vec!["EBR"],
        ),
        tcase(
            derive(dir, &mbr, "primary-beyond.raw", |p| {
                patch(p, 446 + 12, &0x00ff_ffffu32.to_le_bytes())
            }),
            vec!["partition 1"],
        ),
        tcase(
            derive(dir, &mbr, "logical-beyond.raw", |p| {
                patch(p, ebr + 446 + 12, &0x00ff_ffffu32.to_le_bytes())
            }),
            vec!["partition 5"],
        ),
    ];

    // GPT: primary at LBA 1, backup at the last LBA.
    let gpt = sfdisk_image(
        dir,
        "gpt.raw",
        "16M",
        "label: gpt\nstart=2048,size=4096,type=L,name=root\nstart=8192,size=4096,type=S\n",
    );
    let last = 16 * 2048 - 1;
    let backup_entries = read_le64(&gpt, last * 512 + 72);
    cases.extend([
        // Both header CRCs wrong.
        tcase(
            derive(dir, &gpt, "gpt-both-crc.raw", |p| {
                patch(p, 512 + 16, &[0xde, 0xad, 0xbe, 0xef]);
                patch(p, last * 512 + 16, &[0xde, 0xad, 0xbe, 0xef]);
            }),
            vec!["CRC"],
        ),
        // Both entry arrays damaged (their CRCs no longer match).
        tcase(
            derive(dir, &gpt, "gpt-entries-crc.raw", |p| {
                patch(p, 2 * 512 + 56, b"X");
                patch(p, backup_entries * 512 + 56, b"X");
            }),
            vec!["CRC"],
        ),
        // A lying entry count (2^31), re-sealed so only the count is wrong.
        tcase(
            derive(dir, &gpt, "gpt-huge-count.raw", |p| {
                for lba in [1, last] {
                    patch(p, lba * 512 + 80, &0x8000_0000u32.to_le_bytes());
                    reseal_gpt_header(p, lba);
                }
            }),
            vec!["entries"],
        ),
        // Entries array placed beyond the disk, re-sealed.
        tcase(
            derive(dir, &gpt, "gpt-entries-far.raw", |p| {
                for lba in [1, last] {
                    patch(p, lba * 512 + 72, &(1u64 << 40).to_le_bytes());
                    reseal_gpt_header(p, lba);
                }
            }),
            vec!["entries"],
        ),
    ]);
    for c in &cases {
        check(dir, c);
    }
}

#[test]
fn wrong_format_and_empty_inputs_fail_cleanly() {
    let d = workdir();
    let dir = d.path();
    let empty = dir.join("empty.img");
    std::fs::write(&empty, b"").expect("write");
    let text = dir.join("notes.qcow2");
    std::fs::write(&text, b"just some text, not an image\n").expect("write");
    for (file, phrases) in [(empty, vec!["truncated"]), (text, vec!["magic"])] {
        check(
            dir,
            &Case {
                file,
                format: Some("qcow2"),
                info: true,
                convert: true,
                code: 3,
                phrases,
            },
        );
    }
}

/// A raw disk image with an ext4 filesystem holding /hello, as `qemu-img convert` input.
fn ext4_disk(dir: &Path) -> PathBuf {
    let img = dir.join("disk.raw");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).expect("mkdir");
    std::fs::write(root.join("hello"), b"hello\n").expect("write");
    run("truncate", &["-s", "16M", s(&img)]);
    run(
        "mke2fs",
        &["-q", "-F", "-t", "ext4", "-d", s(&root), s(&img)],
    );
    img
}

/// Container formats subroot does not read, made by `qemu-img convert` from a raw disk
/// with an ext4 filesystem (where qemu can write them) or with their header synthesised
/// (bochs, cloop and dmg are read-only in qemu; the bytes follow block/bochs.c, block/cloop.c
/// and the UDIF trailer): `info`, `convert` and `ls` refuse each by name with exit status 3
/// and leave no output; `-f raw` still reads the bytes as a disk; `batch convert` reports
/// the image as failed.
#[test]
fn foreign_containers_are_refused_by_name() {
    if !need("qemu-img", "foreign_containers_are_refused_by_name")
        || !need("mke2fs", "foreign_containers_are_refused_by_name")
    {
        return;
    }
    let d = workdir();
    let dir = d.path();
    let disk = ext4_disk(dir);
    let mut cases: Vec<(PathBuf, &'static str)> = Vec::new();
    for (name, fmt, opts, long) in [
        ("dynamic.vhd", "vpc", "subformat=dynamic", "VHD"),
        ("fixed.vhd", "vpc", "subformat=fixed", "VHD"),
        ("disk.vhdx", "vhdx", "", "VHDX"),
        ("disk.qed", "qed", "", "QED"),
        ("disk.parallels", "parallels", "", "Parallels"),
        ("disk.qcow", "qcow", "", "qcow (version 1)"),
    ] {
        let out = dir.join(name);
        let mut args = vec!["convert", "-q", "-f", "raw", "-O", fmt];
        if !opts.is_empty() {
            args.extend(["-o", opts]);
        }
        args.extend([s(&disk), s(&out)]);
        run("qemu-img", &args);
        // qemu agrees on what was made (a fixed VHD is only a footer, which qemu's own probe
        // does not look at: name the format to check it).
        let info = run_stdout("qemu-img", &["info", "-f", fmt, s(&out)]);
        assert!(info.contains(&format!("file format: {fmt}")), "{info}");
        if long.starts_with("VHD") {
            // Read since issue 19: the ext4 inside lists (more in tests/cli_vhd.rs).
            let listing = ok(dir, &["ls", s(&out), "/"]);
            assert!(listing.contains("hello"), "{name}: {listing}");
            continue;
        }
        cases.push((out, long));
    }
    let mut bochs = vec![0u8; 512];
    bochs[..22].copy_from_slice(b"Bochs Virtual HD Image");
    bochs[32..39].copy_from_slice(b"Redolog");
    bochs[48..55].copy_from_slice(b"Growing");
    bochs[64..68].copy_from_slice(&0x0002_0000u32.to_le_bytes());
    let mut cloop =
        b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n"
            .to_vec();
    cloop.resize(4096, 0);
    let mut dmg = std::fs::read(&disk).expect("read");
    dmg.extend_from_slice(b"koly");
    dmg.resize(dmg.len() + 508, 0);
    for (name, bytes, long) in [
        ("disk.bochs", bochs, "Bochs"),
        ("disk.cloop", cloop, "cloop"),
        ("disk.dmg", dmg, "DMG"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        cases.push((path, long));
    }
    for (file, long) in &cases {
        let kind = format!("is a {long} image; subroot reads raw, qcow2, VHD, VHDX, VMDK and VDI");
        let phrases: Vec<&'static str> = vec![Box::leak(kind.clone().into_boxed_str())];
        check(
            dir,
            &Case {
                file: file.clone(),
                format: None,
                info: true,
                convert: true,
                code: 3,
                phrases: phrases.clone(),
            },
        );
        fails(dir, &["ls", s(file), "/"], 3, &[&kind, "-f raw"]);
    }
    // -f raw reads the bytes as the disk: a fixed VHD is the disk plus a footer.
    let fixed = dir.join("fixed.vhd");
    let listing = ok(dir, &["ls", "-f", "raw", s(&fixed), "/"]);
    assert!(listing.contains("hello"), "{listing}");
    let info = ok(dir, &["info", "-f", "raw", s(&dir.join("disk.vhdx"))]);
    assert!(info.contains("raw"), "{info}");
    // A fleet conversion reports the image as failed and still converts the good one.
    std::fs::rename(dir.join("disk.qed"), dir.join("vm.qed")).expect("rename");
    let out = subroot_in(
        dir,
        &[
            "batch",
            "convert",
            "--out-dir",
            "out",
            "-j",
            "1",
            s(&disk),
            "vm.qed",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("vm.qed is a QED image"), "{err}");
    assert!(!dir.join("out/vm.raw").exists(), "{err}");
    assert!(dir.join("out/disk.raw").exists(), "{err}");
}

/// A qcow2 disk whose second partition cannot be read (its first cluster points past the
/// end of the file): commands that read the first partition are not stopped by it; the
/// automatic choice leaves it out and says so; a command that rewrites the image refuses
/// it with the reader's error (exit status 3), writing nothing.
#[test]
fn a_damaged_partition_stops_only_what_needs_it() {
    let d = workdir();
    let dir = d.path();
    sh(
        &format!(
            "cd {dir} && truncate -s 64M d.raw && printf 'label: dos\\n,20M,L\\n,,L\\n' \
         | sfdisk -q d.raw && mkdir t && echo hi > t/file && \
         mke2fs -q -t ext4 -d t -E offset=1048576 d.raw 20M && \
         mke2fs -q -t ext4 -E offset=22020096 d.raw 40M && \
         qemu-img convert -O qcow2 d.raw d.qcow2 && chmod a+r d.qcow2",
            dir = s(dir)
        ),
        &[],
    );
    let img = dir.join("d.qcow2");
    // Partition 2 starts at byte 22020096: cluster 336 of 64 KiB, in the first L2 table.
    let l1 = read_be64(&img, 40);
    let l2 = read_be64(&img, l1) & 0x00ff_ffff_ffff_fe00;
    assert_ne!(read_be64(&img, l2 + 336 * 8), 0, "cluster 336 is allocated");
    std::fs::File::options()
        .write(true)
        .open(&img)
        .expect("open")
        .write_all_at(&((1u64 << 63) | (1 << 45)).to_be_bytes(), l2 + 336 * 8)
        .expect("patch");
    let pristine = dir.join("pristine.copy");
    std::fs::copy(&img, &pristine).expect("copy");
    let out = common::subroot_in(dir, &["cat", "d.qcow2", "-p", "1", "/file"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"hi\n");
    let out = common::subroot_in(dir, &["ls", "d.qcow2", "/"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("file"),
        "{out:?}"
    );
    assert!(err.contains("partition 2 left out"), "{err}");
    fails(
        dir,
        &["cat", "d.qcow2", "-p", "2", "/x"],
        3,
        &["partition 2", "end of the file"],
    );
    fails(
        dir,
        &["relayout", "d.qcow2", "-p", "1", "-o", "out.raw"],
        3,
        &["partition 2", "end of the file"],
    );
    assert!(!dir.join("out.raw").exists());
    assert!(same_bytes(&img, &pristine));
}
