//! VMDK and VDI inputs through the CLI, run unprivileged: an ext4 filesystem made by
//! `mke2fs -d` and converted by `qemu-img` into each subformat is listed by `ls`, read by
//! `cat`, reported by `info`, and converted back to raw identically to qemu's conversion
//! (`qemu-img compare`); `-f vmdk` forces the format; a descriptor whose extent escapes
//! its directory and a damaged image are refused with exit status 3 and no output.
mod common;

use common::{ext4_disk, fails, need, ok, qemu_convert, run, s, workdir};

#[test]
fn ext4_inside_vmdk_and_vdi_is_read() {
    let t = "ext4_inside_vmdk_and_vdi_is_read";
    if !need("qemu-img", t) || !need("mke2fs", t) {
        return;
    }
    let d = workdir();
    let dir = d.path();
    let disk = ext4_disk(dir, "40M", "vm-from-vmware");
    for (name, fmt, opts) in [
        ("sparse.vmdk", "vmdk", "subformat=monolithicSparse"),
        ("stream.vmdk", "vmdk", "subformat=streamOptimized"),
        ("flat.vmdk", "vmdk", "subformat=monolithicFlat"),
        ("split.vmdk", "vmdk", "subformat=twoGbMaxExtentSparse"),
        ("dynamic.vdi", "vdi", "static=off"),
        ("fixed.vdi", "vdi", "static=on"),
    ] {
        let img = dir.join(name);
        qemu_convert(&disk, fmt, opts, &img);
        let listing = ok(dir, &["ls", name, "/etc"]);
        assert!(listing.contains("hostname"), "{name}: {listing}");
        assert_eq!(ok(dir, &["cat", name, "/etc/hostname"]), "vm-from-vmware\n");
        let info = ok(dir, &["info", "--json", name]);
        assert!(
            info.contains(&format!("\"format\": \"{fmt}\"")),
            "{name}: {info}"
        );
        let forced = ok(dir, &["info", "-f", fmt, name]);
        assert!(forced.contains("ext4"), "{name}: {forced}");
        let out = format!("{name}.raw");
        ok(dir, &["convert", name, &out]);
        run(
            "qemu-img",
            &[
                "compare",
                "-q",
                "-f",
                "raw",
                "-F",
                fmt,
                &dir.join(&out).display().to_string(),
                s(&img),
            ],
        );
        run("cmp", &[s(&disk), s(&dir.join(&out))]);
    }
}

#[test]
fn escaping_and_damaged_vmdk_are_refused() {
    let t = "escaping_and_damaged_vmdk_are_refused";
    if !need("qemu-img", t) || !need("mke2fs", t) {
        return;
    }
    let d = workdir();
    let dir = d.path();
    let disk = ext4_disk(dir, "40M", "vm-from-vmware");
    let vm = dir.join("vm");
    std::fs::create_dir(&vm).expect("mkdir");
    std::fs::set_permissions(&vm, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    let sectors = std::fs::metadata(&disk).expect("stat").len() / 512;
    std::fs::write(
        vm.join("esc.vmdk"),
        format!(
            "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
             createType=\"vmfs\"\nRW {sectors} VMFS \"../disk.raw\"\n"
        ),
    )
    .expect("write");
    fails(
        dir,
        &["convert", "vm/esc.vmdk", "out.raw"],
        3,
        &["esc.vmdk", "outside the descriptor's directory"],
    );
    fails(dir, &["ls", "vm/esc.vmdk", "/"], 3, &["\"../disk.raw\""]);
    assert!(!dir.join("out.raw").exists());
    // ... unless the user says so.
    assert!(ok(dir, &["--allow-outside", "ls", "vm/esc.vmdk", "/etc"]).contains("hostname"));
    ok(
        dir,
        &["convert", "--allow-outside", "vm/esc.vmdk", "out.raw"],
    );
    assert!(common::same_bytes(&dir.join("out.raw"), &disk));
    std::fs::remove_file(dir.join("out.raw")).expect("rm");
    // The same descriptor beside its extent reads.
    std::fs::write(
        dir.join("ok.vmdk"),
        std::fs::read_to_string(vm.join("esc.vmdk"))
            .expect("read")
            .replace("../disk.raw", "disk.raw"),
    )
    .expect("write");
    assert!(ok(dir, &["ls", "ok.vmdk", "/etc"]).contains("hostname"));
    // A sparse extent cut short.
    let img = dir.join("cut.vmdk");
    run(
        "qemu-img",
        &[
            "convert",
            "-q",
            "-f",
            "raw",
            "-O",
            "vmdk",
            s(&disk),
            s(&img),
        ],
    );
    let len = std::fs::metadata(&img).expect("stat").len();
    run("truncate", &["-s", &(len / 2).to_string(), s(&img)]);
    fails(
        dir,
        &["convert", "cut.vmdk", "cut.raw"],
        3,
        &["cut.vmdk", "beyond the end of the file"],
    );
    assert!(!dir.join("cut.raw").exists());
}

/// `convert -O vmdk` writes streamOptimized: `qemu-img check` finds no errors, `qemu-img
/// compare` finds it identical to the source (data across several grain tables, random
/// and compressible grains, the last sector), and subroot reads the filesystem back;
/// `batch convert -O vmdk` names outputs `.vmdk`.
#[test]
fn convert_writes_stream_optimized_vmdk() {
    let t = "convert_writes_stream_optimized_vmdk";
    if !need("qemu-img", t) || !need("mke2fs", t) || !need("qemu-io", t) {
        return;
    }
    let d = workdir();
    let dir = d.path();
    let disk = ext4_disk(dir, "40M", "vm-from-vmware");
    let noise = subroot_test_support::noise(200_000, 7);
    std::fs::write(dir.join("noise"), &noise).expect("write");
    run(
        "qemu-io",
        &["-f", "raw", "-c", "write -P 0x77 41942528 512", s(&disk)],
    );
    let qcow = dir.join("src.qcow2");
    run(
        "qemu-img",
        &["convert", "-q", "-O", "qcow2", s(&disk), s(&qcow)],
    );
    run(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            &format!("write -s {} 36M 200000", s(&dir.join("noise"))),
            s(&qcow),
        ],
    );
    ok(dir, &["convert", "-O", "vmdk", "src.qcow2", "out.vmdk"]);
    let vmdk = dir.join("out.vmdk");
    let check = common::run_stdout("qemu-img", &["check", s(&vmdk)]);
    assert!(check.contains("No errors"), "{check}");
    let info = common::run_stdout("qemu-img", &["info", s(&vmdk)]);
    assert!(info.contains("create type: streamOptimized"), "{info}");
    run("qemu-img", &["compare", "-q", s(&qcow), s(&vmdk)]);
    assert!(ok(dir, &["ls", "out.vmdk", "/etc"]).contains("hostname"));
    // Far smaller than the disk: zero grains are left out, the rest compressed.
    assert!(std::fs::metadata(&vmdk).expect("stat").len() < 4 << 20);
    ok(
        dir,
        &[
            "batch",
            "convert",
            "-O",
            "vmdk",
            "--out-dir",
            "b",
            "-j",
            "1",
            "src.qcow2",
        ],
    );
    run(
        "qemu-img",
        &["compare", "-q", s(&qcow), s(&dir.join("b/src.vmdk"))],
    );
    // A raw input that is not a whole number of sectors: the VMDK holds it rounded up.
    let odd = dir.join("odd.raw");
    std::fs::write(&odd, vec![0x7eu8; (1 << 20) + 100]).expect("write");
    ok(dir, &["convert", "-O", "vmdk", "odd.raw", "odd.vmdk"]);
    let info = common::run_stdout("qemu-img", &["info", s(&dir.join("odd.vmdk"))]);
    assert!(info.contains("1049088 bytes"), "{info}");
    run(
        "qemu-img",
        &[
            "compare",
            "-q",
            "-f",
            "raw",
            "-F",
            "vmdk",
            s(&odd),
            s(&dir.join("odd.vmdk")),
        ],
    );
}

/// Editing a VMDK: `-o OUT` writes a new image (raw by default), `--overlay` a qcow2 whose
/// backing file is the VMDK (format recorded, read back through the chain), `--in-place`
/// is refused with exit status 3 and the image left as it was.
#[test]
fn edits_of_a_vmdk_write_new_images() {
    let t = "edits_of_a_vmdk_write_new_images";
    if !need("qemu-img", t) || !need("mke2fs", t) {
        return;
    }
    let d = workdir();
    let dir = d.path();
    let disk = ext4_disk(dir, "40M", "vm-from-vmware");
    run(
        "qemu-img",
        &[
            "convert",
            "-q",
            "-O",
            "vmdk",
            s(&disk),
            s(&dir.join("d.vmdk")),
        ],
    );
    let before = std::fs::read(dir.join("d.vmdk")).expect("read");
    fails(
        dir,
        &["rm", "--in-place", "d.vmdk", "/etc/hostname"],
        3,
        &["d.vmdk is a vmdk image", "does not edit in place", "-o OUT"],
    );
    assert_eq!(std::fs::read(dir.join("d.vmdk")).expect("read"), before);
    ok(
        dir,
        &["rm", "--overlay", "ov.qcow2", "d.vmdk", "/etc/hostname"],
    );
    let info = common::run_stdout("qemu-img", &["info", s(&dir.join("ov.qcow2"))]);
    assert!(info.contains("backing file format: vmdk"), "{info}");
    assert!(!ok(dir, &["ls", "ov.qcow2", "/etc"]).contains("hostname"));
    assert!(ok(dir, &["ls", "d.vmdk", "/etc"]).contains("hostname"));
    ok(dir, &["rm", "-o", "out.raw", "d.vmdk", "/big"]);
    assert!(!ok(dir, &["ls", "out.raw", "/"]).contains("big"));
    assert_eq!(std::fs::read(dir.join("d.vmdk")).expect("read"), before);
}
