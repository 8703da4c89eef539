//! What a disk holds at its start, as `info`, `ls` and `cat` see it: a filesystem with boot
//! code in its first sector (a boot loader installed into a partition that was then copied
//! out) is that filesystem, not an empty MBR; `-p 0` forces the whole disk; a real MBR disk
//! stays an MBR disk even over a stale superblock; disk labels other than MBR and GPT
//! (made by sfdisk, or with blkid agreeing on a synthesised one) are refused by name.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// An ext4 filesystem image of `size` holding `/hello` with `text`.
fn ext4(dir: &Path, name: &str, size: &str, text: &str) -> PathBuf {
    let root = dir.join(format!("{name}.root"));
    std::fs::create_dir_all(&root).expect("mkdir");
    std::fs::write(root.join("hello"), text).expect("write");
    let img = dir.join(name);
    run("truncate", &["-s", size, s(&img)]);
    run(
        "mke2fs",
        &["-q", "-F", "-t", "ext4", "-d", s(&root), s(&img)],
    );
    run("chmod", &["a+rw", s(&img)]);
    img
}

/// Real boot-loader code: GRUB's boot.img (what `grub-install` writes into a partition's
/// first sector) or syslinux's MBR code.
fn boot_code(test: &str) -> Option<Vec<u8>> {
    for (path, len) in [
        ("/usr/lib/grub/i386-pc/boot.img", 446),
        ("/usr/lib/syslinux/mbr/mbr.bin", 440),
    ] {
        if let Ok(b) = std::fs::read(path) {
            return Some(b[..len].to_vec());
        }
    }
    skip(
        test,
        "no boot code to install (grub-pc-bin or syslinux-common)",
    );
    None
}

#[test]
fn filesystem_with_boot_code_in_sector_0_is_the_filesystem() {
    const T: &str = "filesystem_with_boot_code_in_sector_0_is_the_filesystem";
    if !need("mke2fs", T) || !need("e2fsck", T) || !need("sfdisk", T) {
        return;
    }
    let Some(code) = boot_code(T) else { return };
    let d = workdir();
    let dir = d.path();
    let img = ext4(dir, "boot.img", "16M", "hello from the filesystem\n");
    patch(&img, 0, &code);
    patch(&img, 510, &[0x55, 0xaa]);
    // The filesystem is intact (ext keeps its first 1024 bytes free) and the sector is what
    // an MBR reader sees: signature, no partition.
    run("e2fsck", &["-fn", s(&img)]);
    let dump = sh("sfdisk -d \"$1\" 2>/dev/null || true", &[s(&img)]);
    assert!(
        !String::from_utf8_lossy(&dump).contains("start="),
        "sfdisk sees partitions: {}",
        String::from_utf8_lossy(&dump)
    );

    let info = ok(dir, &["info", "boot.img"]);
    assert!(
        info.contains("table:         none (sector 0 holds boot code"),
        "{info}"
    );
    assert!(info.contains("filesystem:    ext4"), "{info}");
    let json = ok(dir, &["info", "--json", "boot.img"]);
    assert!(json.contains("\"boot_code\": true"), "{json}");
    let out = subroot_in(dir, &["cat", "boot.img", "/hello"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"hello from the filesystem\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sector 0 holds boot code, not a partition table"),
        "{err}"
    );
    assert!(ok(dir, &["ls", "boot.img", "/"]).contains("hello"));
    assert!(ok(dir, &["ls", "-p", "0", "boot.img", "/"]).contains("hello"));
    run("e2fsck", &["-fn", s(&img)]);

    // Boot code whose bytes also read as a partition entry (pointing at nothing): the
    // automatic choice finds no filesystem in it, `-p 0` takes the whole disk.
    let odd = ext4(dir, "odd.img", "16M", "odd\n");
    patch(&odd, 0, &code[..440]);
    let mut entry = [0u8; 16];
    entry[4] = 0x83;
    entry[8..12].copy_from_slice(&8192u32.to_le_bytes());
    entry[12..16].copy_from_slice(&100u32.to_le_bytes());
    patch(&odd, 446, &entry);
    patch(&odd, 510, &[0x55, 0xaa]);
    fails(
        dir,
        &["ls", "odd.img", "/"],
        3,
        &["no partition of odd.img holds a filesystem"],
    );
    assert!(ok(dir, &["ls", "-p", "0", "odd.img", "/"]).contains("hello"));
    let out = subroot_in(dir, &["cat", "-p", "0", "odd.img", "/hello"]);
    assert_eq!(out.stdout, b"odd\n", "{out:?}");
    // relayout rewrites partitions in place in the disk: not a whole disk that has a table.
    fails(
        dir,
        &["-q", "relayout", "-p", "0", "odd.img", "--dry-run"],
        3,
        &["-p 0 takes the whole disk, but the disk has a partition table"],
    );

    // The reverse: a real MBR disk over a stale whole-disk superblock stays an MBR disk.
    let disk = ext4(dir, "disk.img", "32M", "stale\n");
    sh("echo 'start=2048, type=83' | sfdisk -q \"$1\"", &[s(&disk)]);
    let part = ext4(dir, "part.img", "31M", "from partition 1\n");
    sh(
        "dd if=\"$1\" of=\"$2\" bs=1M seek=1 conv=notrunc status=none",
        &[s(&part), s(&disk)],
    );
    let info = ok(dir, &["info", "disk.img"]);
    assert!(info.contains("table:         mbr"), "{info}");
    let out = subroot_in(dir, &["cat", "disk.img", "/hello"]);
    assert_eq!(out.stdout, b"from partition 1\n", "{out:?}");
}

#[test]
fn foreign_disk_labels_are_refused_by_name() {
    const T: &str = "foreign_disk_labels_are_refused_by_name";
    if !need("sfdisk", T) || !need("blkid", T) || !need("fdisk", T) {
        return;
    }
    let d = workdir();
    let dir = d.path();
    let mut labels: Vec<(PathBuf, &str, &str)> = Vec::new();
    for (label, long) in [("sun", "a Sun disk label"), ("sgi", "an SGI disk label")] {
        let img = sfdisk_image(
            dir,
            &format!("{label}.img"),
            "64M",
            &format!("label: {label}\nstart=2048, size=20000\n"),
        );
        labels.push((img, label, long));
    }
    // BSD (i386 placement: sector 1, magic again at +132) and Atari (an active "LNX" primary
    // entry at 0x1C6), which sfdisk cannot write; blkid recognises both.
    let bsd = dir.join("bsd.img");
    run("truncate", &["-s", "64M", s(&bsd)]);
    let magic = 0x8256_4557u32.to_le_bytes();
    patch(&bsd, 512, &magic);
    patch(&bsd, 512 + 132, &magic);
    patch(&bsd, 512 + 138, &8u16.to_le_bytes()); // d_npartitions
    labels.push((bsd, "bsd", "a BSD disk label"));
    let atari = dir.join("atari.img");
    run("truncate", &["-s", "64M", s(&atari)]);
    let mut entry = 100_000u32.to_be_bytes().to_vec(); // hd_size, in sectors
    entry.extend_from_slice(&[0x01, b'L', b'N', b'X']);
    entry.extend_from_slice(&2048u32.to_be_bytes());
    entry.extend_from_slice(&4096u32.to_be_bytes());
    patch(&atari, 0x1c2, &entry);
    labels.push((atari, "atari", "an Atari disk label"));
    for (img, label, long) in labels {
        run("chmod", &["a+r", s(&img)]);
        // The judge: libblkid (via `blkid -p`, which prints no type for a BSD label; fdisk,
        // through libblkid, names it).
        let judged = if label == "bsd" {
            run_stdout("fdisk", &["-l", s(&img)])
        } else {
            run_stdout("blkid", &["-p", "-o", "udev", s(&img)])
        };
        assert!(
            judged.contains(&format!("ID_PART_TABLE_TYPE={label}"))
                || judged.contains(&format!("Disklabel type: {label}")),
            "{label}: {judged}"
        );
        let msg = format!("it holds {long}; subroot reads MBR and GPT");
        for cmd in [&["info"][..], &["ls"], &["info", "--json"]] {
            let mut args = cmd.to_vec();
            args.push(s(&img));
            fails(dir, &args, 3, &[&msg, s(&img)]);
        }
    }
    // libblkid's order: an MBR comes before a BSD label (a FreeBSD slice's label belongs to
    // the partition), so such a disk is read as MBR.
    let slice = sfdisk_image(dir, "slice.img", "64M", "start=2048, type=a5\n");
    patch(&slice, 512, &magic);
    patch(&slice, 512 + 132, &magic);
    run("chmod", &["a+r", s(&slice)]);
    let blkid = run_stdout("blkid", &["-p", "-o", "udev", s(&slice)]);
    assert!(blkid.contains("ID_PART_TABLE_TYPE=dos"), "{blkid}");
    assert!(ok(dir, &["info", "slice.img"]).contains("table:         mbr"));
    // An empty disk is still what it was.
    let blank = dir.join("blank.img");
    run("truncate", &["-s", "8M", s(&blank)]);
    run("chmod", &["a+r", s(&blank)]);
    assert!(ok(dir, &["info", "blank.img"]).contains("table:         none"));
}
