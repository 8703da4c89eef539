//! LVM2 through the CLI (issue 20): a GPT disk with an ESP-less layout of a small ext4 and
//! an LVM2 physical volume whose volume group `vgsys` holds `root` (an ext4 with an
//! os-release, made by `mke2fs -d` and placed where lvm2 says the volume's extents are)
//! and `swap` (left empty). Built by lvm2's own tools offline on loop devices (root only);
//! the CLI then runs as uid 65534: `info` lists the group and its volumes, the reading
//! commands find the root in the volume (or take `-p vgsys/root`) and see exactly what
//! `mke2fs -d` wrote, and the writing commands refuse the volume by name.
mod common;

use common::lvm::{can_make, damage_metadata_text, make_group, partition_ranges, place};
use common::{fails, ok, run, s, sfdisk_image, subroot_in, workdir};
use std::path::{Path, PathBuf};

/// `dir/disk.raw` of `size` partitioned by sfdisk's `script`; each partition's (start, size).
fn disk(dir: &Path, size: &str, script: &str) -> (PathBuf, Vec<(u64, u64)>) {
    let img = sfdisk_image(dir, "disk.raw", size, script);
    let parts = partition_ranges(&img);
    (img, parts)
}

#[test]
fn volumes_are_listed_read_and_refused_for_writing() {
    let t = "volumes_are_listed_read_and_refused_for_writing";
    if !can_make(t, &["sfdisk", "mke2fs"]) {
        return;
    }
    let d = workdir();
    let dir = d.path();
    // The PV's partition typed "linux", as some installers leave it: found by its label.
    let (img, parts) = disk(
        dir,
        "80M",
        "label: gpt\nsize=8MiB, type=linux\nsize=64MiB, type=linux\n",
    );
    run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-E",
            &format!("offset={}", parts[0].0),
            s(&img),
            "7M",
        ],
    );
    let at = make_group(&img, parts[1], "vgsys", &[("root", 32), ("swap", 8)]);

    // The root filesystem, made apart and placed at the volume's first extent.
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(
        tree.join("etc/os-release"),
        "ID=rocky\nVERSION_ID=\"9.4\"\n",
    )
    .unwrap();
    std::fs::write(tree.join("etc/hostname"), "lvm-host\n").unwrap();
    std::fs::write(tree.join("big"), vec![0x42u8; 3 << 20]).unwrap();
    let fs = dir.join("root.ext4");
    run("truncate", &["-s", "32M", s(&fs)]);
    run(
        "mke2fs",
        &["-q", "-F", "-t", "ext4", "-d", s(&tree), s(&fs)],
    );
    place(&img, at[0], &fs);
    std::fs::set_permissions(&img, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&fs, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();

    let info = ok(dir, &["info", "disk.raw"]);
    assert!(info.contains("volume group:  vgsys"), "{info}");
    assert!(
        info.contains("vgsys/root") && info.contains("vgsys/swap"),
        "{info}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(dir, &["info", "--json", "disk.raw"])).unwrap();
    let lvs = &json["volume_groups"][0]["logical_volumes"];
    assert_eq!(lvs[0]["name"], "vgsys/root");
    assert_eq!(lvs[0]["size"], 32 << 20);
    assert_eq!(lvs[0]["filesystem"]["type"], "ext4");
    assert_eq!(
        json["volume_groups"][0]["physical_volumes"][0]["found_on"],
        "partition 2"
    );

    // Found automatically as the Linux root, and by name.
    assert_eq!(ok(dir, &["cat", "disk.raw", "/etc/hostname"]), "lvm-host\n");
    assert_eq!(
        ok(
            dir,
            &["cat", "-p", "vgsys/root", "disk.raw", "/etc/hostname"]
        ),
        "lvm-host\n"
    );
    assert_eq!(
        ok(dir, &["manifest", "-p", "vgsys/root", "disk.raw"]),
        ok(dir, &["manifest", "root.ext4"]),
        "the volume's tree differs from the filesystem placed in it"
    );
    // Errors name what exists; writing commands refuse the volume.
    fails(
        dir,
        &["ls", "-p", "vgsys/nope", "disk.raw"],
        1,
        &["no logical volume nope", "root"],
    );
    fails(
        dir,
        &["ls", "-p", "other/root", "disk.raw"],
        1,
        &["no LVM2 volume group other", "vgsys"],
    );
    std::fs::write(dir.join("f"), "x").unwrap();
    fails(
        dir,
        &[
            "copy-in",
            "-p",
            "vgsys/root",
            "disk.raw",
            "f",
            "/",
            "-o",
            "out.raw",
        ],
        1,
        &["LVM2 logical volume", "does not write"],
    );
    assert!(!dir.join("out.raw").exists());

    // Damaged metadata (one byte of the only copy's text): naming the volume is a clear
    // error; the automatic search goes on among the partitions and says why.
    damage_metadata_text(&img, parts[1].0);
    fails(
        dir,
        &["ls", "-p", "vgsys/root", "disk.raw"],
        3,
        &["checksum", "partition 2"],
    );
    let out = subroot_in(dir, &["ls", "disk.raw", "/"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("LVM2 volumes not searched"), "{err}");
}

/// An ext4 image of `size` made by `mke2fs -d` from `tree` with filesystem UUID `uuid`,
/// readable by the unprivileged CLI.
fn ext4_of(tree: &Path, out: &Path, size: &str, uuid: &str) {
    run("truncate", &["-s", size, s(out)]);
    run(
        "mke2fs",
        &["-q", "-F", "-t", "ext4", "-U", uuid, "-d", s(tree), s(out)],
    );
}

/// A RHEL-style disk: GPT, p1 an ext4 /boot (a kernel and a gzip initramfs by GNU cpio),
/// p2 an LVM2 PV whose group `rl-sys` (a `-` in its name, doubled in device-mapper names)
/// holds `root` (os-release, hostname, an fstab naming each volume a different way), `var`
/// (the rpm database) and `swap` (mkswap). `inspect --json`, as uid 65534, finds the root
/// in the volume and resolves every fstab line onto its partition or volume: the kernel is
/// read from p1 through `UUID=`, the rpm database from the `var` volume through
/// `/dev/rl-sys/var`, the swap volume is named by the UUID mkswap gave it. With the
/// metadata damaged, the volumes are a note, not an error.
#[test]
fn inspect_finds_the_root_on_a_volume_and_the_mounts_on_partitions_and_volumes() {
    let t = "inspect_finds_the_root_on_a_volume_and_the_mounts_on_partitions_and_volumes";
    if !can_make(t, &["sfdisk", "mke2fs", "mkswap", "cpio"]) {
        return;
    }
    const BOOT_UUID: &str = "b0b0b0b0-1111-4222-8333-444455556666";
    const ROOT_UUID: &str = "a0a0a0a0-1111-4222-8333-444455556666";
    const VAR_UUID: &str = "c0c0c0c0-1111-4222-8333-444455556666";
    const SWAP_UUID: &str = "d0d0d0d0-1111-4222-8333-444455556666";
    let d = workdir();
    let dir = d.path();
    let (img, parts) = disk(
        dir,
        "100M",
        "label: gpt\nsize=16MiB, type=linux\nsize=80MiB, type=lvm\n",
    );
    let at = make_group(
        &img,
        parts[1],
        "rl-sys",
        &[("root", 32), ("var", 16), ("swap", 8)],
    );

    let mkdir = |p: &Path| std::fs::create_dir_all(p).unwrap();
    let write = |p: PathBuf, c: &str| {
        mkdir(p.parent().unwrap());
        std::fs::write(p, c).unwrap();
    };
    let version = "5.14.0-427.13.1.el9_4.x86_64";
    let boot = dir.join("boot");
    write(boot.join(format!("vmlinuz-{version}")), "kernel\n");
    let initrd_dir = dir.join("initrd");
    write(initrd_dir.join("init"), "#!/bin/sh\n");
    common::relayout::initrd(&initrd_dir, &boot.join(format!("initramfs-{version}.img")));
    let root = dir.join("root");
    write(
        root.join("etc/os-release"),
        "NAME=\"Rocky Linux\"\nID=\"rocky\"\nVERSION_ID=\"9.4\"\nPRETTY_NAME=\"Rocky Linux 9.4 (Blue Onyx)\"\n",
    );
    write(root.join("etc/hostname"), "rhel-like\n");
    write(
        root.join("etc/fstab"),
        &format!(
            "/dev/mapper/rl--sys-root /     ext4 defaults 1 1\n\
             UUID={BOOT_UUID}         /boot ext4 defaults 1 2\n\
             /dev/rl-sys/var          /var  ext4 defaults 1 2\n\
             UUID={SWAP_UUID}         none  swap defaults 0 0\n"
        ),
    );
    mkdir(&root.join("boot"));
    mkdir(&root.join("var"));
    let var = dir.join("var");
    write(var.join("lib/rpm/rpmdb.sqlite"), "SQLite format 3\0");
    ext4_of(&boot, &dir.join("boot.ext4"), "15M", BOOT_UUID);
    ext4_of(&root, &dir.join("root.ext4"), "32M", ROOT_UUID);
    ext4_of(&var, &dir.join("var.ext4"), "16M", VAR_UUID);
    let swap = dir.join("swap.img");
    run("truncate", &["-s", "8M", s(&swap)]);
    run("mkswap", &["-q", "-U", SWAP_UUID, s(&swap)]);
    place(&img, parts[0].0, &dir.join("boot.ext4"));
    place(&img, at[0], &dir.join("root.ext4"));
    place(&img, at[1], &dir.join("var.ext4"));
    place(&img, at[2], &swap);
    std::fs::set_permissions(&img, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();

    let json: serde_json::Value =
        serde_json::from_str(&ok(dir, &["inspect", "--json", "disk.raw"])).unwrap();
    assert_eq!(json["root"]["volume"], "rl-sys/root", "{json:#}");
    assert_eq!(json["root"]["partition"], serde_json::Value::Null);
    assert_eq!(json["os"]["id"], "rocky");
    assert_eq!(json["hostname"], "rhel-like");
    // Each fstab line on what it names.
    let on: Vec<(String, String, String)> = json["fstab"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["mountpoint"].as_str().unwrap().to_string(),
                l["partition"].to_string(),
                l["volume"].to_string(),
            )
        })
        .collect();
    let want = |m: &str, p: &str, v: &str| (m.to_string(), p.to_string(), v.to_string());
    assert_eq!(
        on,
        [
            want("/", "null", "\"rl-sys/root\""),
            want("/boot", "1", "null"),
            want("/var", "null", "\"rl-sys/var\""),
            want("none", "null", "\"rl-sys/swap\""),
        ]
    );
    // The volumes with their roles; the PV's partition says what it is.
    let vols: Vec<(String, u64, String, Vec<String>)> = json["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().into(),
                v["size"].as_u64().unwrap(),
                v["filesystem"]["uuid"].as_str().unwrap_or("").into(),
                serde_json::from_value(v["roles"].clone()).unwrap(),
            )
        })
        .collect();
    let mib = 1u64 << 20;
    assert_eq!(
        vols,
        [
            (
                "rl-sys/root".into(),
                32 * mib,
                ROOT_UUID.into(),
                vec!["root".into()]
            ),
            (
                "rl-sys/var".into(),
                16 * mib,
                VAR_UUID.into(),
                vec!["/var".into()]
            ),
            (
                "rl-sys/swap".into(),
                8 * mib,
                SWAP_UUID.into(),
                vec!["swap".into()]
            ),
        ]
    );
    assert_eq!(json["partitions"][0]["roles"], serde_json::json!(["/boot"]));
    assert_eq!(
        json["partitions"][1]["roles"],
        serde_json::json!(["lvm2-pv"])
    );
    // Files read through the mounts: the kernel on p1, the rpm database on the volume.
    let k = &json["kernels"][0];
    assert_eq!(k["version"], version);
    assert_eq!(k["partition"], 1);
    assert_eq!(
        k["initrd"]["path"],
        format!("/boot/initramfs-{version}.img")
    );
    assert_eq!(json["packages"]["manager"], "rpm");
    assert_eq!(json["packages"]["database"], "/var/lib/rpm/rpmdb.sqlite");
    // The text form names the volumes too.
    let text = ok(dir, &["inspect", "disk.raw"]);
    assert!(
        text.contains("LVM2 volumes:") && text.contains("rl-sys/var"),
        "{text}"
    );
    assert!(text.contains("volume rl-sys/root"), "{text}");

    // Damaged LVM2 metadata (the only copy): inspect still reports the disk and says why
    // the volumes are missing, as a note.
    damage_metadata_text(&img, parts[1].0);
    let json: serde_json::Value =
        serde_json::from_str(&ok(dir, &["inspect", "--json", "disk.raw"])).unwrap();
    assert_eq!(json["volumes"], serde_json::json!([]));
    assert_eq!(json["root"], serde_json::Value::Null);
    assert_eq!(
        json["partitions"][1]["roles"],
        serde_json::json!(["lvm2-pv"])
    );
    let notes = json["notes"].to_string();
    assert!(
        notes.contains("LVM2 volumes not read") && notes.contains("checksum"),
        "{notes}"
    );
}

/// A Fedora-style disk: btrfs on a logical volume (made by mkfs.btrfs --rootdir, placed
/// at the extents lvm2 gave the volume). The reading commands find the root on it by
/// themselves, `-p VG/LV` reads it as the bare filesystem reads, and inspect reports it;
/// the CLI runs as uid 65534.
#[test]
fn btrfs_on_a_volume_is_read_and_inspected() {
    let t = "btrfs_on_a_volume_is_read_and_inspected";
    if !can_make(t, &["sfdisk", "mkfs.btrfs"]) {
        return;
    }
    let d = workdir();
    let dir = d.path();
    let (img, parts) = disk(
        dir,
        "160M",
        "label: gpt\nsize=8MiB, type=linux\nsize=140MiB, type=lvm\n",
    );
    let at = make_group(&img, parts[1], "fedora", &[("root", 128)]);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), "ID=fedora\nVERSION_ID=41\n").unwrap();
    std::fs::write(root.join("etc/hostname"), "btrfs-on-lvm\n").unwrap();
    let fs = dir.join("root.btrfs");
    run("truncate", &["-s", "128M", s(&fs)]);
    run("mkfs.btrfs", &["-q", "--rootdir", s(&root), s(&fs)]);
    run("chmod", &["a+r", s(&fs)]);
    place(&img, at[0], &fs);
    run("chmod", &["a+r", s(&img)]);
    assert_eq!(
        ok(dir, &["cat", "disk.raw", "/etc/os-release"]),
        "ID=fedora\nVERSION_ID=41\n"
    );
    assert_eq!(
        ok(dir, &["manifest", "-p", "fedora/root", "disk.raw"]),
        ok(dir, &["manifest", "root.btrfs"])
    );
    let j: serde_json::Value =
        serde_json::from_str(&ok(dir, &["inspect", "--json", "disk.raw"])).unwrap();
    assert_eq!(j["root"]["volume"], "fedora/root", "{j}");
    assert_eq!(j["hostname"], "btrfs-on-lvm", "{j}");
}
