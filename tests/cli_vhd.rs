//! VHD and VHDX through the CLI (issue 19): an ext4 made by `mke2fs -d` and put in each
//! container by `qemu-img convert` is listed, read and converted by subroot (run
//! unprivileged); the conversions are judged by `qemu-img compare` and `e2fsck -fn`, and
//! damaged inputs exit 3 naming the file.
mod common;

use common::{ext4_disk, fails, need, ok, qemu_convert, run, run_stdout, s, workdir};

#[test]
fn ext4_in_vhd_and_vhdx_reads_and_converts() {
    const T: &str = "ext4_in_vhd_and_vhdx_reads_and_converts";
    if !need("qemu-img", T) || !need("mke2fs", T) || !need("e2fsck", T) {
        return;
    }
    let d = workdir();
    let dir = d.path();
    let raw = ext4_disk(dir, "48M", "vm-one");
    for (name, fmt, opts, ours) in [
        ("dyn.vhd", "vpc", "subformat=dynamic", "vhd"),
        ("fixed.vhd", "vpc", "subformat=fixed,force_size=on", "vhd"),
        ("dyn.vhdx", "vhdx", "subformat=dynamic", "vhdx"),
        ("fixed.vhdx", "vhdx", "subformat=fixed", "vhdx"),
    ] {
        let img = dir.join(name);
        qemu_convert(&raw, fmt, opts, &img);
        std::fs::set_permissions(&img, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .expect("chmod");
        let listing = ok(dir, &["ls", name, "/etc"]);
        assert!(listing.contains("hostname"), "{name}: {listing}");
        assert_eq!(
            ok(dir, &["cat", name, "/etc/hostname"]),
            "vm-one\n",
            "{name}"
        );
        let info = ok(dir, &["info", "--json", name]);
        assert!(
            info.contains(&format!("\"format\": \"{ours}\"")),
            "{name}: {info}"
        );
        assert!(info.contains("ext4"), "{name}: {info}");
        // Forced with -f (the qemu name "vpc" too).
        let forced = ok(
            dir,
            &["info", "-f", if fmt == "vpc" { "vpc" } else { ours }, name],
        );
        assert!(forced.contains(ours), "{forced}");
        for (out_fmt, out) in [
            ("raw", format!("{name}.raw")),
            ("qcow2", format!("{name}.qcow2")),
        ] {
            ok(dir, &["convert", "-O", out_fmt, name, &out]);
            let cmp = run_stdout(
                "qemu-img",
                &[
                    "compare",
                    "-f",
                    fmt,
                    "-F",
                    out_fmt,
                    s(&img),
                    s(&dir.join(&out)),
                ],
            );
            assert!(
                cmp.contains("Images are identical"),
                "{name} -> {out}: {cmp}"
            );
        }
        // Sparse: the 48 MiB disk holds a few MiB; holes stay holes in the raw output.
        let meta = std::fs::metadata(dir.join(format!("{name}.raw"))).expect("stat");
        let used = std::os::unix::fs::MetadataExt::blocks(&meta) * 512;
        assert!(used < 24 << 20, "{name}: raw output uses {used} bytes");
        run("e2fsck", &["-fn", s(&dir.join(format!("{name}.raw")))]);
        // Edits: never in place (refused, exit 3, untouched), a qcow2 overlay backed by the
        // VHD/VHDX (backing format as qemu names it) that qemu reads as we do.
        let before = std::fs::read(&img).expect("read");
        fails(
            dir,
            &["-q", "rm", "--in-place", name, "/big"],
            3,
            &["--in-place edits raw and qcow2"],
        );
        assert!(
            std::fs::read(&img).expect("read") == before,
            "{name} changed"
        );
        let ov = format!("{name}.ov.qcow2");
        ok(dir, &["rm", name, "/big", "--overlay", &ov]);
        let info = run_stdout("qemu-img", &["info", s(&dir.join(&ov))]);
        assert!(
            info.contains(&format!("backing file format: {fmt}")),
            "{info}"
        );
        ok(dir, &["convert", &ov, &format!("{ov}.raw")]);
        let q = dir.join(format!("{ov}.qemu.raw"));
        run(
            "qemu-img",
            &["convert", "-O", "raw", s(&dir.join(&ov)), s(&q)],
        );
        assert!(
            std::fs::read(&q).expect("read")
                == std::fs::read(dir.join(format!("{ov}.raw"))).expect("read")
        );
        assert!(!ok(dir, &["ls", &ov, "/"]).contains("big"));
    }
}

#[test]
fn damaged_vhd_and_vhdx_exit_3_naming_the_file() {
    if !need("qemu-img", "damaged_vhd_and_vhdx_exit_3_naming_the_file") {
        return;
    }
    let d = workdir();
    let dir = d.path();
    let vhd = dir.join("cut.vhd");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "vpc",
            "-o",
            "subformat=fixed",
            s(&vhd),
            "8M",
        ],
    );
    let f = std::fs::File::options()
        .write(true)
        .open(&vhd)
        .expect("open");
    let len = f.metadata().expect("stat").len();
    // The footer survives, the disk is cut short.
    let mut footer = vec![0u8; 512];
    std::os::unix::fs::FileExt::read_exact_at(
        &std::fs::File::open(&vhd).unwrap(),
        &mut footer,
        len - 512,
    )
    .expect("read");
    f.set_len(1 << 20).expect("truncate");
    std::os::unix::fs::FileExt::write_all_at(&f, &footer, (1 << 20) - 512).expect("write");
    drop(f);
    fails(
        dir,
        &["info", "cut.vhd"],
        3,
        &["cut.vhd", "truncated fixed VHD"],
    );
    fails(
        dir,
        &["convert", "cut.vhd", "out.raw"],
        3,
        &["cut.vhd", "truncated"],
    );
    assert!(!dir.join("out.raw").exists());
    // A VHDX whose header demands a log replay that its log cannot give: refused by name.
    let vhdx = dir.join("log.vhdx");
    run("qemu-img", &["create", "-q", "-f", "vhdx", s(&vhdx), "8M"]);
    let mut b = std::fs::read(&vhdx).expect("read");
    for h in [64 << 10, 128 << 10] {
        b[h + 48] = 0xaa;
        b[h + 4..h + 8].fill(0);
        let c = crc32c_of(&b[h..h + 4096]);
        b[h + 4..h + 8].copy_from_slice(&c.to_le_bytes());
    }
    std::fs::write(&vhdx, b).expect("write");
    fails(
        dir,
        &["ls", "log.vhdx", "/"],
        3,
        &["log.vhdx", "log", "replayed"],
    );
}

/// CRC-32C (Castagnoli), bit by bit: the VHDX header checksum.
fn crc32c_of(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                crc >> 1 ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// An ext4 disk of `mib` MiB grown by 3 sectors (an odd size), with data in its last
/// sector; its path and size.
fn odd_ext4_disk(dir: &std::path::Path, mib: u64) -> (std::path::PathBuf, u64) {
    let raw = ext4_disk(dir, &format!("{mib}M"), "vm-one");
    let size = (mib << 20) + 1536;
    let f = std::fs::File::options()
        .write(true)
        .open(&raw)
        .expect("open");
    f.set_len(size).expect("grow");
    std::os::unix::fs::FileExt::write_all_at(&f, b"tail", size - 512).expect("write");
    (raw, size)
}

#[test]
fn convert_to_fixed_vhd_is_what_qemu_and_azure_expect() {
    const T: &str = "convert_to_fixed_vhd_is_what_qemu_and_azure_expect";
    if !need("qemu-img", T) || !need("mke2fs", T) || !need("e2fsck", T) {
        return;
    }
    let d = workdir();
    let dir = d.path();
    let (raw, _) = odd_ext4_disk(dir, 48);
    let q = dir.join("disk.qcow2");
    run(
        "qemu-img",
        &["convert", "-q", "-f", "raw", "-O", "qcow2", s(&raw), s(&q)],
    );
    for (input, out) in [("disk.raw", "a.vhd"), ("disk.qcow2", "b.vhd")] {
        ok(dir, &["convert", "-O", "vhd", input, out]);
        let out_path = dir.join(out);
        let info = run_stdout(
            "qemu-img",
            &["info", "-f", "vpc", "--output=json", s(&out_path)],
        );
        assert!(
            info.contains("\"virtual-size\": 51380224"),
            "49 MiB: {info}"
        );
        let cmp = run_stdout(
            "qemu-img",
            &["compare", "-f", "raw", "-F", "vpc", s(&raw), s(&out_path)],
        );
        assert!(cmp.contains("Images are identical"), "{input}: {cmp}");
        let md = std::fs::metadata(&out_path).expect("stat");
        assert_eq!(md.len(), 51380224 + 512, "disk then footer");
        let used = std::os::unix::fs::MetadataExt::blocks(&md) * 512;
        assert!(used < 24 << 20, "sparse: {used} bytes allocated");
        // Our own reader agrees, and the filesystem inside is intact.
        let listing = ok(dir, &["ls", out, "/etc"]);
        assert!(listing.contains("hostname"), "{listing}");
        ok(dir, &["convert", out, &format!("{out}.raw")]);
        let back = dir.join(format!("{out}.raw"));
        run("truncate", &["-s", "48M", s(&back)]);
        run("e2fsck", &["-fn", s(&back)]);
    }
    // No output is left when the input cannot be read.
    let mut b = std::fs::read(dir.join("a.vhd")).expect("read");
    let n = b.len();
    b[n - 512 + 70] ^= 1; // unique id changed, checksum not
    std::fs::write(dir.join("sum.vhd"), b).expect("write");
    fails(
        dir,
        &["convert", "-O", "vhd", "sum.vhd", "c.vhd"],
        3,
        &["sum.vhd", "footer checksum"],
    );
    assert!(!dir.join("c.vhd").exists());
}

#[test]
fn convert_to_dynamic_vhdx_is_what_qemu_reads_and_stays_sparse() {
    const T: &str = "convert_to_dynamic_vhdx_is_what_qemu_reads_and_stays_sparse";
    if !need("qemu-img", T) || !need("mke2fs", T) || !need("e2fsck", T) {
        return;
    }
    let d = workdir();
    let dir = d.path();
    // ext4 metadata over five block groups, a size that is no multiple of the 1 MiB block.
    let (raw, size) = odd_ext4_disk(dir, 600);
    let raw_used =
        std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&raw).expect("stat")) * 512;
    let q = dir.join("disk.qcow2");
    qemu_convert(&raw, "qcow2", "cluster_size=65536", &q);
    for (input, out) in [("disk.raw", "a.vhdx"), ("disk.qcow2", "b.vhdx")] {
        ok(dir, &["convert", "-O", "vhdx", input, out]);
        let out_path = dir.join(out);
        let info = run_stdout(
            "qemu-img",
            &["info", "-f", "vhdx", "--output=json", s(&out_path)],
        );
        assert!(
            info.contains(&format!("\"virtual-size\": {size}")),
            "{info}"
        );
        run("qemu-img", &["check", "-f", "vhdx", s(&out_path)]);
        let cmp = run_stdout(
            "qemu-img",
            &["compare", "-f", "raw", "-F", "vhdx", s(&raw), s(&out_path)],
        );
        assert!(cmp.contains("Images are identical"), "{input}: {cmp}");
        // Sparse: what the file allocates is what the raw disk allocates (plus a few
        // structure pages), and its length is the data blocks, 3 MiB of structures and
        // the BAT, far below the 600 MiB disk.
        let md = std::fs::metadata(&out_path).expect("stat");
        let used = std::os::unix::fs::MetadataExt::blocks(&md) * 512;
        assert!(
            used <= raw_used + (1 << 20),
            "{used} allocated, raw {raw_used}"
        );
        assert!(
            md.len() < 4 * raw_used,
            "{} long, raw allocates {raw_used}",
            md.len()
        );
        // Our own reader, and the filesystem as qemu reads it back.
        assert!(ok(dir, &["ls", out, "/etc"]).contains("hostname"));
        let back = dir.join(format!("{out}.raw"));
        run(
            "qemu-img",
            &[
                "convert",
                "-q",
                "-f",
                "vhdx",
                "-O",
                "raw",
                s(&out_path),
                s(&back),
            ],
        );
        run("e2fsck", &["-fn", s(&back)]);
    }
    // batch convert names its outputs .vhdx and writes the same image.
    let out_dir = dir.join("out");
    ok(
        dir,
        &[
            "batch",
            "convert",
            "-O",
            "vhdx",
            "--out-dir",
            s(&out_dir),
            "disk.qcow2",
        ],
    );
    let cmp = run_stdout(
        "qemu-img",
        &[
            "compare",
            "-f",
            "raw",
            "-F",
            "vhdx",
            s(&raw),
            s(&out_dir.join("disk.vhdx")),
        ],
    );
    assert!(cmp.contains("Images are identical"), "batch: {cmp}");
}
