//! `subroot inspect`, judged against what made the image: a GPT disk built by sgdisk,
//! mkfs.fat + mcopy (ESP), mke2fs -d (a separate /boot and the root) and mkswap, from trees
//! written here — `inspect --json` must report what those trees hold, field by field,
//! with dpkg-query reading the same status file as the oracle for packages. The real
//! Debian images (SUBROOT_CACHE, as root) are judged against the kernel's own mount of
//! them. Bad input (a truncated image, a damaged superblock) is a clean exit 3.

mod common;

use common::relayout::{boot_tree, mk, sh, stage_named, BOOT_UUID, INITRD_DIR, ROOT_UUID};
use common::{debian_image, fails, is_root, ok, patch, run, run_stdout, s, which, workdir};
use serde_json::Value;
use std::path::{Path, PathBuf};

const SWAP_UUID: &str = "5a5a5a5a-1111-4222-8333-444455556666";
const ESP_ID: &str = "12345678";
const ESP_UUID: &str = "1234-5678";

/// The trees and the disk made from them.
struct Fixture {
    img: PathBuf,
    root: PathBuf,
    boot: PathBuf,
}

/// A dpkg status file: three installed packages, one removed with its configuration kept.
const DPKG_STATUS: &str = "Package: base-files\nEssential: yes\nStatus: install ok installed\n\
Priority: required\nArchitecture: amd64\nVersion: 12.4+deb12u5\nDescription: base\n multi-line\n\n\
Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\n\
Version: 2.36-9+deb12u4\nDescription: libc\n\n\
Package: old-tool\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0-1\n\
Description: gone\n\n\
Package: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n\
Description: tz\n";

/// GPT: p1 ESP (FAT, GRUB EFI binary and a stub grub.cfg), p2 ext4 /boot (kernel, a gzip
/// initramfs-tools initrd by GNU cpio, grub.cfg), p3 ext4 root (the demo root with
/// hostname, machine-id, passwd, fstab naming p1, p2, p4 by UUID, a dpkg status), p4 swap.
fn fixture(dir: &Path) -> Fixture {
    let root = stage_named(dir, "root", None);
    sh(&format!(
        "rm -rf {r}/boot && mkdir -p {r}/boot/efi {r}/var/lib/dpkg",
        r = s(&root)
    ));
    let w = |p: &str, c: &str| std::fs::write(root.join(p), c).expect("write");
    w("etc/hostname", "inspected-host\n");
    w("etc/machine-id", "0123456789abcdef0123456789abcdef\n");
    w(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
         demo:x:1000:1000:Demo User,,,:/home/demo:/bin/sh\n",
    );
    w(
        "etc/fstab",
        &format!(
            "# <file system> <mount point> <type> <options> <dump> <pass>\n\
             UUID={ROOT_UUID} / ext4 errors=remount-ro 0 1\n\
             UUID={BOOT_UUID}  /boot ext4 defaults 0 2\n\
             UUID={ESP_UUID} /boot/efi vfat umask=0077 0 1\n\
             UUID={SWAP_UUID} none swap sw 0 0\n\
             server:/export /mnt/nfs nfs ro 0 0\n"
        ),
    );
    w("var/lib/dpkg/status", DPKG_STATUS);
    let boot = boot_tree(&dir.join("boot"));
    // A second kernel whose initrd is an uncompressed early segment then a zstd one, and
    // an initrd with no kernel.
    std::fs::write(boot.join("vmlinuz-6.1.0-u"), b"kernel 2\n").expect("kernel");
    sh(&format!(
        "mkdir -p {e}/kernel/x86/microcode && echo ucode > {e}/kernel/x86/microcode/GenuineIntel.bin && \
         {{ (cd {e} && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet); \
         (cd {INITRD_DIR} && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | zstd -q -c); }} \
         > {b}/initrd.img-6.1.0-u && cp {b}/initrd.img-6.1.0-t {b}/initrd.img-6.1.0-orphan",
        e = s(&dir.join("early")),
        b = s(&boot)
    ));
    let esp = dir.join("esp");
    mk(&esp.join("EFI/debian"));
    std::fs::write(esp.join("EFI/debian/grubx64.efi"), b"MZ grub stand-in\n").expect("efi");
    std::fs::write(
        esp.join("EFI/debian/grub.cfg"),
        format!("search.fs_uuid {BOOT_UUID} root\nset prefix=($root)'/grub'\nconfigfile $prefix/grub.cfg\n"),
    )
    .expect("stub");
    mk(&esp.join("EFI/systemd"));
    std::fs::write(
        esp.join("EFI/systemd/systemd-bootx64.efi"),
        b"MZ sd-boot stand-in\n",
    )
    .expect("efi");
    mk(&esp.join("loader/entries"));
    std::fs::write(
        esp.join("loader/entries/debian.conf"),
        format!("title Debian (BLS)\nlinux /vmlinuz-6.1.0-t\ninitrd /initrd.img-6.1.0-t\noptions root=UUID={ROOT_UUID} ro console=ttyS0\n"),
    )
    .expect("bls");
    let img = dir.join("in.raw");
    // p1 1-9 MiB, p2 9-41 MiB, p3 41-105 MiB, p4 105-109 MiB.
    sh(&format!(
        "cd {d} && truncate -s 110M {i} && \
         sgdisk -o -n1:2048:18431 -t1:ef00 -c1:EFI -n2:18432:83967 -t2:8300 -c2:boot \
           -n3:83968:215039 -t3:8300 -c3:root -n4:215040:223231 -t4:8200 {i} >/dev/null && \
         truncate -s 8M esp.fat && mkfs.fat -i {ESP_ID} -n ESP esp.fat >/dev/null && \
         mcopy -s -i esp.fat {e}/EFI {e}/loader ::/ && dd if=esp.fat of={i} bs=1M seek=1 conv=notrunc status=none && \
         mke2fs -q -F -t ext4 -L boot -U {BOOT_UUID} -E offset=$((9<<20)) -d {b} {i} 32M && \
         mke2fs -q -F -t ext4 -L root -U {ROOT_UUID} -E offset=$((41<<20)) -d {r} {i} 64M && \
         truncate -s 4M swap.img && mkswap -q -U {SWAP_UUID} swap.img >/dev/null && \
         dd if=swap.img of={i} bs=1M seek=105 conv=notrunc status=none && chmod a+r {i}",
        d = s(dir),
        i = s(&img),
        e = s(&esp),
        b = s(&boot),
        r = s(&root)
    ));
    Fixture { img, root, boot }
}

fn inspect(dir: &Path, img: &Path) -> Value {
    serde_json::from_str(&ok(dir, &["inspect", "--json", s(img)])).expect("inspect --json is JSON")
}

/// os-release as a reader independent of subroot's: `KEY=value`, quotes stripped.
fn os_release_of(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// `/etc/passwd` as (name, uid, gid, home, shell).
fn users_of(text: &str) -> Vec<(String, u64, u64, String, String)> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() == 7)
        .map(|f| {
            (
                f[0].into(),
                f[2].parse().expect("uid"),
                f[3].parse().expect("gid"),
                f[5].into(),
                f[6].into(),
            )
        })
        .collect()
}

fn users_in(j: &Value) -> Vec<(String, u64, u64, String, String)> {
    j["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| {
            (
                u["name"].as_str().expect("name").into(),
                u["uid"].as_u64().expect("uid"),
                u["gid"].as_u64().expect("gid"),
                u["home"].as_str().expect("home").into(),
                u["shell"].as_str().expect("shell").into(),
            )
        })
        .collect()
}

/// Installed packages as dpkg-query sees the status file under `admindir`.
fn dpkg_installed(admindir: &Path) -> Vec<String> {
    let out = run_stdout(
        "dpkg-query",
        &[
            &format!("--admindir={}", s(admindir)),
            "-W",
            "-f",
            "${db:Status-Status} ${Package} ${Version} ${Architecture}\n",
        ],
    );
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("installed "))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn packages_in(j: &Value) -> Vec<String> {
    let mut v: Vec<String> = j["packages"]["installed"]
        .as_array()
        .expect("installed")
        .iter()
        .map(|p| {
            format!(
                "{} {} {}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            )
        })
        .collect();
    v.sort();
    v
}

/// fstab lines as (device, mountpoint, type, options).
fn fstab_of(text: &str) -> Vec<[String; 4]> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            [f[0].into(), f[1].into(), f[2].into(), f[3].into()]
        })
        .collect()
}

fn fstab_in(j: &Value) -> Vec<[String; 4]> {
    j["fstab"]
        .as_array()
        .expect("fstab")
        .iter()
        .map(|l| {
            ["device", "mountpoint", "type", "options"].map(|k| l[k].as_str().unwrap().to_string())
        })
        .collect()
}

/// The kernel versions in a /boot directory (`vmlinuz-VERSION`), sorted.
fn kernels_in(boot: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(boot)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix("vmlinuz-").map(str::to_string)
        })
        .collect();
    v.sort();
    v
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Everything the fixture's trees say, checked against one inspect document.
fn check_fixture(j: &Value, f: &Fixture) {
    // The OS, field by field.
    let os = os_release_of(&read(&f.root.join("etc/os-release")));
    assert!(!os.is_empty());
    for (k, v) in &os {
        assert_eq!(
            j["os"]["fields"][k].as_str(),
            Some(v.as_str()),
            "os-release {k}"
        );
    }
    assert_eq!(j["os"]["fields"].as_object().unwrap().len(), os.len());
    for (key, field) in [
        ("ID", "id"),
        ("VERSION_ID", "version_id"),
        ("NAME", "name"),
        ("PRETTY_NAME", "pretty_name"),
    ] {
        let want = os.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(j["os"][field].as_str(), want, "{field}");
    }
    assert_eq!(
        j["hostname"].as_str(),
        Some(read(&f.root.join("etc/hostname")).trim())
    );
    assert_eq!(
        j["machine_id"].as_str(),
        Some(read(&f.root.join("etc/machine-id")).trim())
    );
    assert_eq!(users_in(j), users_of(&read(&f.root.join("etc/passwd"))));
    // Packages: what dpkg-query says of the same status file.
    let want = dpkg_installed(&f.root.join("var/lib/dpkg"));
    assert_eq!(
        want.len(),
        3,
        "the oracle sees the three installed packages"
    );
    assert_eq!(packages_in(j), want);
    assert_eq!(j["packages"]["manager"], "dpkg");
    assert_eq!(j["packages"]["count"], 3);
    // fstab, each line resolved to the partition made with that UUID.
    assert_eq!(fstab_in(j), fstab_of(&read(&f.root.join("etc/fstab"))));
    let on: Vec<Value> = j["fstab"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["partition"].clone())
        .collect();
    assert_eq!(on, [3.into(), 2.into(), 1.into(), 4.into(), Value::Null]);
    // Partitions and their roles.
    let roles: Vec<Vec<String>> = j["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["roles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    assert_eq!(
        roles,
        [
            vec!["esp", "/boot/efi"],
            vec!["/boot"],
            vec!["root"],
            vec!["swap"]
        ]
    );
    let kinds: Vec<&str> = j["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["filesystem"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["vfat", "ext4", "ext4", "swap"]);
    assert_eq!(j["root"]["partition"], 3);
    assert_eq!(j["root"]["subroot"], Value::Null);
    assert_eq!(j["relayout"], Value::Null);
    // Kernels: /boot is the separate partition 2.
    let want_kernels = kernels_in(&f.boot);
    let k = j["kernels"].as_array().unwrap();
    let got: Vec<&str> = k.iter().map(|k| k["version"].as_str().unwrap()).collect();
    assert_eq!(got, want_kernels);
    assert_eq!(k[0]["partition"], 2);
    let u = &k[1]["initrd"];
    assert_eq!(u["path"], "/boot/initrd.img-6.1.0-u");
    assert_eq!(u["flavour"], "initramfs-tools");
    assert_eq!(u["compression"], serde_json::json!(["none", "zstd"]));
    assert_eq!(u["segments"], 2);
    assert!(j["notes"]
        .to_string()
        .contains("/boot/initrd.img-6.1.0-orphan: an initrd with no kernel"));
    let ir = &k[0]["initrd"];
    assert_eq!(ir["path"], "/boot/initrd.img-6.1.0-t");
    assert_eq!(
        ir["size"].as_u64(),
        Some(
            std::fs::metadata(f.boot.join("initrd.img-6.1.0-t"))
                .unwrap()
                .len()
        )
    );
    assert_eq!(ir["flavour"], "initramfs-tools");
    assert_eq!(ir["compression"], serde_json::json!(["gzip"]));
    assert_eq!(ir["hook_present"], false);
    // The boot loader: GRUB EFI on the ESP, whose stub loads /boot's grub.cfg.
    let l = j["boot_loaders"].as_array().unwrap();
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!(l[0]["kind"], "grub-efi");
    assert_eq!(l[0]["location"], "/EFI/debian/grubx64.efi");
    assert_eq!(l[0]["partition"], 1);
    let cfg = read(&f.boot.join("grub/grub.cfg"));
    let want_lines: Vec<String> = cfg
        .lines()
        .filter_map(|l| l.trim().strip_prefix("linux "))
        .map(|l| l.split_once(' ').unwrap().1.to_string())
        .collect();
    let got_lines: Vec<&str> = l[0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cmdline"].as_str().unwrap())
        .collect();
    assert_eq!(got_lines, want_lines);
    assert_eq!(l[0]["entries"][1]["title"], "Demo (recovery)");
    // systemd-boot beside it, with its Boot Loader Specification entry.
    assert_eq!(l[1]["kind"], "systemd-boot");
    assert_eq!(l[1]["location"], "/EFI/systemd/systemd-bootx64.efi");
    let e = &l[1]["entries"][0];
    assert_eq!(e["title"], "Debian (BLS)");
    assert_eq!(e["kernel"], "/vmlinuz-6.1.0-t");
    assert_eq!(e["initrds"], serde_json::json!(["/initrd.img-6.1.0-t"]));
    assert_eq!(
        e["cmdline"].as_str(),
        Some(format!("root=UUID={ROOT_UUID} ro console=ttyS0").as_str())
    );
}

#[test]
fn json_equals_the_trees_raw_and_qcow2() {
    let d = workdir();
    let f = fixture(d.path());
    let j = inspect(d.path(), &f.img);
    assert_eq!(j["format"], "raw");
    assert_eq!(j["table"]["type"], "gpt");
    check_fixture(&j, &f);
    let q = d.path().join("in.qcow2");
    sh(&format!(
        "qemu-img convert -q -f raw -O qcow2 {} {} && chmod a+r {}",
        s(&f.img),
        s(&q),
        s(&q)
    ));
    let jq = inspect(d.path(), &q);
    assert_eq!(jq["format"], "qcow2");
    check_fixture(&jq, &f);
    // The text form says the same, compactly.
    let text = ok(d.path(), &["inspect", s(&f.img)]);
    for want in [
        "inspected-host",
        "dpkg: 3 installed",
        "6.1.0-t",
        "grub-efi",
        "initramfs-tools gzip hook=no",
    ] {
        assert!(text.contains(want), "text lacks {want:?}:\n{text}");
    }
}

#[test]
fn missing_pieces_are_notes() {
    // The demo root as it is: no machine-id, passwd or package database; one partition.
    let d = workdir();
    let root = stage_named(d.path(), "bare", None);
    sh(&format!(
        "rm -rf {r}/etc/hostname {r}/boot/vmlinuz-* {r}/boot/grub",
        r = s(&root)
    ));
    let img = common::relayout::image(d.path(), &root);
    let j = inspect(d.path(), &img);
    assert_eq!(j["os"]["id"], "debian");
    assert_eq!(j["hostname"], Value::Null);
    assert_eq!(j["machine_id"], Value::Null);
    assert_eq!(j["users"], serde_json::json!([]));
    assert_eq!(j["packages"]["manager"], Value::Null);
    let notes = j["notes"].to_string();
    for want in [
        "no boot loader found",
        "no hostname",
        "no machine id",
        "no /etc/passwd",
        "no package database",
        "no kernel",
    ] {
        assert!(notes.contains(want), "notes lack {want:?}: {notes}");
    }
    // A FAT filesystem alone: no root, reported, not an error.
    let fat = d.path().join("fat.img");
    sh(&format!(
        "truncate -s 8M {f} && mkfs.fat {f} >/dev/null && chmod a+r {f}",
        f = s(&fat)
    ));
    let j = inspect(d.path(), &fat);
    assert_eq!(j["root"], Value::Null);
    assert_eq!(j["partitions"][0]["filesystem"]["type"], "vfat");
    assert!(j["notes"]
        .to_string()
        .contains("no filesystem holds a Linux root"));
}

#[test]
fn grub_bios_in_the_mbr() {
    // GRUB's own boot.img in the MBR and a core made by grub-mkimage in the MBR gap, as
    // grub-install lays them out; the configuration is the root's /boot/grub/grub.cfg.
    let boot_img = Path::new("/usr/lib/grub/i386-pc/boot.img");
    if !boot_img.is_file() || which("grub-mkimage").is_none() {
        eprintln!("SKIPPED grub_bios_in_the_mbr: needs grub-pc-bin (boot.img, grub-mkimage)");
        return;
    }
    let d = workdir();
    let root = stage_named(d.path(), "grubroot", None);
    let img = common::relayout::image(d.path(), &root);
    sh(&format!(
        "dd if={b} of={i} bs=440 count=1 conv=notrunc status=none",
        b = s(boot_img),
        i = s(&img)
    ));
    let no_core = inspect(d.path(), &img);
    assert_eq!(no_core["boot_loaders"][0]["kind"], "grub-bios");
    assert_eq!(
        no_core["boot_loaders"][0]["location"],
        "mbr (no core found)"
    );
    sh(&format!(
        "cd {d} && grub-mkimage -O i386-pc -o core.img -p '(hd0,msdos1)/boot/grub' biosdisk part_msdos ext2 && \
         dd if=core.img of={i} bs=512 seek=1 conv=notrunc status=none",
        d = s(d.path()),
        i = s(&img)
    ));
    let j = inspect(d.path(), &img);
    let l = &j["boot_loaders"];
    assert_eq!(l.as_array().unwrap().len(), 1, "{l}");
    assert_eq!(l[0]["kind"], "grub-bios");
    assert_eq!(l[0]["location"], "mbr, core in the mbr-gap");
    assert_eq!(l[0]["config"], "/boot/grub/grub.cfg");
    let cfg = read(&root.join("boot/grub/grub.cfg"));
    let want: Vec<String> = cfg
        .lines()
        .filter_map(|l| l.trim().strip_prefix("linux"))
        .map(|l| {
            l.trim()
                .split_once(' ')
                .map_or("", |x| x.1)
                .trim()
                .to_string()
        })
        .collect();
    assert!(!want.is_empty());
    let got: Vec<&str> = l[0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cmdline"].as_str().unwrap())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn unreadable_partitions_are_notes() {
    // p1 a LUKS volume (cryptsetup), p2 typed swap (0x82) but without a signature: said,
    // not an error; p2's role is still swap, from its type.
    if which("cryptsetup").is_none() {
        eprintln!("SKIPPED unreadable_partitions_are_notes: needs cryptsetup");
        return;
    }
    let d = workdir();
    let img = d.path().join("luks.raw");
    sh(&format!(
        "cd {d} && truncate -s 40M {i} && printf 'label: dos\\nstart=2048, size=34816\\nstart=36864, type=82\\n' | sfdisk -q {i} && \
         truncate -s 17M luks.img && echo -n pw | cryptsetup -q luksFormat --type luks2 --pbkdf pbkdf2 \
           --pbkdf-force-iterations 1000 --key-file - luks.img && \
         dd if=luks.img of={i} bs=1M seek=1 conv=notrunc status=none && chmod a+r {i}",
        d = s(d.path()),
        i = s(&img)
    ));
    let j = inspect(d.path(), &img);
    assert_eq!(j["partitions"][0]["filesystem"]["type"], "crypto_LUKS");
    assert_eq!(j["partitions"][1]["filesystem"], Value::Null);
    assert_eq!(j["partitions"][1]["roles"], serde_json::json!(["swap"]));
    assert_eq!(j["root"], Value::Null);
    let notes = j["notes"].to_string();
    for want in [
        "partition 1: crypto_LUKS, which subroot does not read",
        "partition 2: no filesystem subroot recognises",
        "no filesystem holds a Linux root",
    ] {
        assert!(notes.contains(want), "notes lack {want:?}: {notes}");
    }
}

#[test]
fn rpm_database_is_named_not_read() {
    let d = workdir();
    let root = stage_named(d.path(), "rpmroot", None);
    sh(&format!(
        "mkdir -p {r}/usr/lib/sysimage/rpm && echo x > {r}/usr/lib/sysimage/rpm/rpmdb.sqlite",
        r = s(&root)
    ));
    let img = common::relayout::image(d.path(), &root);
    let p = &inspect(d.path(), &img)["packages"];
    assert_eq!(p["manager"], "rpm");
    assert_eq!(p["format"], "sqlite");
    assert_eq!(p["database"], "/usr/lib/sysimage/rpm/rpmdb.sqlite");
    assert_eq!(p["read"], false);
    assert_eq!(p["count"], Value::Null);
}

#[test]
fn relayouted_image_shows_its_roots() {
    let d = workdir();
    let (img, _) = common::relayout::separate_boot_disk(d.path());
    let out = d.path().join("r0.raw");
    ok(d.path(), &["-q", "relayout", s(&img), "-o", s(&out)]);
    let j = inspect(d.path(), &out);
    assert_eq!(j["root"]["subroot"], "r0");
    assert_eq!(j["relayout"]["default"], "r0");
    assert_eq!(j["relayout"]["roots"][0]["name"], "r0");
    let os = os_release_of(&read(&d.path().join("sep-root/etc/os-release")));
    let pretty = os
        .iter()
        .find(|(k, _)| k == "PRETTY_NAME")
        .map(|(_, v)| v.as_str());
    assert_eq!(j["relayout"]["roots"][0]["pretty_name"].as_str(), pretty);
    assert_eq!(j["os"]["pretty_name"].as_str(), pretty);
    // /boot still resolves through fstab to partition 1, whose initrd now has the hook.
    assert_eq!(j["kernels"][0]["partition"], 1);
    assert_eq!(j["kernels"][0]["initrd"]["hook_present"], true);
}

#[test]
fn bad_input_is_exit_3() {
    let d = workdir();
    let f = fixture(d.path());
    // Truncated: the table names partitions past the end.
    let t = d.path().join("trunc.raw");
    sh(&format!(
        "head -c 20M {} > {t} && chmod a+r {t}",
        s(&f.img),
        t = s(&t)
    ));
    fails(d.path(), &["inspect", s(&t)], 3, &["trunc.raw"]);
    // The root's primary superblock damaged (blocks per group 0), its magic intact: the
    // backup in group 1 is read, and that is said.
    let c = d.path().join("corrupt.raw");
    std::fs::copy(&f.img, &c).unwrap();
    let root = 41u64 << 20;
    patch(&c, root + 1024 + 32, &[0, 0, 0, 0]);
    let out = common::subroot_in(d.path(), &["inspect", "--json", s(&c)]);
    assert!(out.status.success());
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        j["notes"].to_string().contains("partition 3: "),
        "{}",
        j["notes"]
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));
    assert_eq!(j["hostname"], "inspected-host");
    // The backup too (group 1 at block 8193 of this 1 KiB-block filesystem): exit 3.
    let blocks = run_stdout("dumpe2fs", &["-h", &format!("{}?offset={root}", s(&f.img))]);
    assert!(
        blocks.contains("Block size:               1024"),
        "{blocks}"
    );
    patch(&c, root + 8193 * 1024 + 32, &[0, 0, 0, 0]);
    let err = fails(
        d.path(),
        &["inspect", s(&c)],
        3,
        &["corrupt.raw", "partition 3"],
    );
    assert!(err.lines().count() < 10, "{err}");
}

/// A cached Debian image's partition `n`, mounted read-only by the kernel at `mnt`.
fn mount_part(img: &Path, n: u64, mnt: &Path) -> Mount {
    let j: Value = serde_json::from_str(&run_stdout("sfdisk", &["-J", s(img)])).unwrap();
    let p = &j["partitiontable"]["partitions"][n as usize - 1];
    let off = p["start"].as_u64().unwrap() * 512;
    let len = p["size"].as_u64().unwrap() * 512;
    mk(mnt);
    run(
        "mount",
        &[
            "-o",
            &format!("ro,loop,offset={off},sizelimit={len}"),
            s(img),
            s(mnt),
        ],
    );
    Mount(mnt.to_path_buf())
}

struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn real_debian_images_equal_their_mounts() {
    if std::env::var_os("SUBROOT_CACHE").is_none() {
        eprintln!("SKIPPED real_debian_images_equal_their_mounts: set SUBROOT_CACHE");
        return;
    }
    if !is_root() {
        eprintln!("SKIPPED real_debian_images_equal_their_mounts: mounting needs root");
        return;
    }
    let d = workdir();
    for (flavour, root_n, boot_n) in [
        ("initramfs-tools", 1, None),
        ("dracut", 2, None),
        ("bootpart", 2, Some(1)),
    ] {
        let img = debian_image(flavour).unwrap();
        let j = inspect(d.path(), &img);
        let mnt = d.path().join(format!("m-{flavour}"));
        let _root = mount_part(&img, root_n, &mnt);
        let os = os_release_of(&read(&mnt.join("etc/os-release")));
        for (k, v) in &os {
            assert_eq!(
                j["os"]["fields"][k].as_str(),
                Some(v.as_str()),
                "{flavour}: {k}"
            );
        }
        assert_eq!(
            j["hostname"].as_str(),
            Some(read(&mnt.join("etc/hostname")).trim()),
            "{flavour}"
        );
        assert_eq!(
            users_in(&j),
            users_of(&read(&mnt.join("etc/passwd"))),
            "{flavour}"
        );
        assert_eq!(
            fstab_in(&j),
            fstab_of(&read(&mnt.join("etc/fstab"))),
            "{flavour}"
        );
        let want = dpkg_installed(&mnt.join("var/lib/dpkg"));
        assert!(want.len() > 50, "{flavour}: {} packages", want.len());
        assert_eq!(packages_in(&j), want, "{flavour}");
        let bm = d.path().join(format!("b-{flavour}"));
        let _boot = boot_n.map(|n| mount_part(&img, n, &bm));
        let boot_dir = if boot_n.is_some() {
            bm.clone()
        } else {
            mnt.join("boot")
        };
        let kernels = kernels_in(&boot_dir);
        let got: Vec<&str> = j["kernels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["version"].as_str().unwrap())
            .collect();
        assert_eq!(got, kernels, "{flavour}");
        let fl = if flavour == "dracut" {
            "dracut"
        } else {
            "initramfs-tools"
        };
        assert_eq!(j["kernels"][0]["initrd"]["flavour"], fl, "{flavour}");
        assert_eq!(
            j["kernels"][0]["partition"],
            boot_n.unwrap_or(root_n),
            "{flavour}"
        );
    }
    // Relayouted: the r0 root, and the default subroot from /etc/kernel/cmdline, which
    // relayout edits (the image boots its kernel directly; copy-in gives it one to edit).
    let img = debian_image("initramfs-tools").unwrap();
    let with = d.path().join("cmdline.raw");
    let etc = d.path().join("etc-add/etc");
    mk(&etc.join("kernel"));
    std::fs::write(
        etc.join("kernel/cmdline"),
        format!("root=UUID={ROOT_UUID} ro\n"),
    )
    .unwrap();
    ok(
        d.path(),
        &["-q", "copy-in", s(&img), s(&etc), "/", "-o", s(&with)],
    );
    let plain = inspect(d.path(), &with);
    assert_eq!(plain["relayout"], Value::Null);
    let out = d.path().join("r0.qcow2");
    ok(
        d.path(),
        &["-q", "relayout", s(&with), "-o", s(&out), "-O", "qcow2"],
    );
    let j = inspect(d.path(), &out);
    assert_eq!(j["root"]["subroot"], "r0");
    assert_eq!(j["relayout"]["default"], "r0");
    assert_eq!(j["relayout"]["roots"][0]["name"], "r0");
    assert_eq!(j["os"]["fields"], plain["os"]["fields"]);
    assert_eq!(j["users"], plain["users"]);
    assert_eq!(j["packages"]["count"], plain["packages"]["count"]);
    assert_eq!(j["kernels"][0]["initrd"]["hook_present"], true);
}

/// `/boot` on the FAT ESP (systemd-boot layouts): the kernels are found there and their
/// initrds are examined too (read through the FAT reader).
#[test]
fn initrds_on_a_fat_boot_are_examined() {
    let d = workdir();
    let dir = d.path();
    let root = stage_named(dir, "root", None);
    sh(&format!(
        "rm -rf {r}/boot && mkdir -p {r}/boot",
        r = s(&root)
    ));
    std::fs::write(
        root.join("etc/fstab"),
        format!(
            "UUID={ROOT_UUID} / ext4 defaults 0 1\nUUID={ESP_UUID} /boot vfat umask=0077 0 1\n"
        ),
    )
    .expect("fstab");
    let boot = boot_tree(&dir.join("boot"));
    let img = dir.join("fatboot.raw");
    sh(&format!(
        "cd {d} && truncate -s 80M {i} && \
         sgdisk -o -n1:2048:34815 -t1:ef00 -n2:34816:157695 -t2:8300 {i} >/dev/null && \
         truncate -s 16M esp.fat && mkfs.fat -i {ESP_ID} esp.fat >/dev/null && \
         mcopy -s -i esp.fat {b}/* ::/ && dd if=esp.fat of={i} bs=1M seek=1 conv=notrunc status=none && \
         mke2fs -q -F -t ext4 -U {ROOT_UUID} -E offset=$((17<<20)) -d {r} {i} 60M && chmod a+r {i}",
        d = s(dir),
        i = s(&img),
        b = s(&boot),
        r = s(&root)
    ));
    let j = inspect(dir, &img);
    let k = &j["kernels"][0];
    assert_eq!(k["partition"], 1, "{j}");
    let ir = &k["initrd"];
    assert_eq!(ir["path"], "/boot/initrd.img-6.1.0-t", "{j}");
    assert_eq!(ir["flavour"], "initramfs-tools", "{j}");
    assert_eq!(ir["compression"], serde_json::json!(["gzip"]), "{j}");
    assert!(ir["error"].is_null(), "{j}");
}
