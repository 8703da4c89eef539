//! Filesystem sniffing against `blkid -p`: each image is made by the format's own mkfs tool
//! (or, for LVM2 only, hand-built) and our TYPE/LABEL/UUID/VERSION must equal blkid's.

mod common;

use common::{need, run, s};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use subroot_formats::block::{BlockDevice, RawFile, Slice};
use subroot_formats::sniff::{sniff, FsInfo};

fn sparse(dir: &Path, name: &str, size: &str) -> PathBuf {
    let p = dir.join(name);
    run("truncate", &["-s", size, s(&p)]);
    p
}

/// `blkid -p -o export [-O offset]` as a map.
fn blkid(img: &Path, offset: Option<u64>) -> HashMap<String, String> {
    let off = offset.map(|o| o.to_string());
    let mut args = vec!["-p", "-o", "export"];
    if let Some(o) = &off {
        args.extend(["-O", o.as_str()]);
    }
    args.push(s(img));
    common::run_stdout("blkid", &args)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("\\ ", " ")))
        .collect()
}

/// Sniff `dev` and compare with blkid's view of `img` (at `offset`).
fn check_dev(dev: &dyn BlockDevice, img: &Path, offset: Option<u64>) -> FsInfo {
    let b = blkid(img, offset);
    let info = sniff(dev)
        .unwrap()
        .unwrap_or_else(|| panic!("nothing found; blkid says {b:?}"));
    assert_eq!(Some(&info.kind), b.get("TYPE"), "{info:?} vs {b:?}");
    assert_eq!(info.label.as_ref(), b.get("LABEL"), "{info:?} vs {b:?}");
    assert_eq!(info.uuid.as_ref(), b.get("UUID"), "{info:?} vs {b:?}");
    if let Some(v) = b.get("VERSION") {
        assert_eq!(info.version.as_ref(), Some(v), "{info:?} vs {b:?}");
    }
    info
}

fn check(img: &Path) -> FsInfo {
    check_dev(&RawFile::open(img).unwrap(), img, None)
}

#[test]
fn ext2_3_4() {
    if !need("mke2fs", "ext2_3_4") || !need("blkid", "ext2_3_4") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (i, t) in ["ext2", "ext3", "ext4"].iter().enumerate() {
        let img = sparse(dir.path(), &format!("{t}.img"), "64M");
        let uuid = format!("51234567-89ab-cdef-0123-456789abcde{i}");
        run(
            "mke2fs",
            &[
                "-q",
                "-F",
                "-t",
                t,
                "-L",
                &format!("lab {t}"),
                "-U",
                &uuid,
                s(&img),
            ],
        );
        let info = check(&img);
        assert_eq!(info.kind, *t);
        assert_eq!(info.uuid.as_deref(), Some(uuid.as_str()));
    }
    // ext4 features without a journal are still ext4; ext2 + journal is ext3.
    let img = sparse(dir.path(), "nj.img", "64M");
    run(
        "mke2fs",
        &["-q", "-F", "-t", "ext4", "-O", "^has_journal", s(&img)],
    );
    assert_eq!(check(&img).kind, "ext4");
    run(
        "mke2fs",
        &["-q", "-F", "-t", "ext2", "-O", "has_journal", s(&img)],
    );
    assert_eq!(check(&img).kind, "ext3");
    // An external journal device.
    run(
        "mke2fs",
        &["-q", "-F", "-O", "journal_dev", "-L", "jnl", s(&img)],
    );
    assert_eq!(check(&img).kind, "jbd");
}

#[test]
fn vfat_12_16_32() {
    if !need("mkfs.vfat", "vfat_12_16_32") || !need("blkid", "vfat_12_16_32") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (bits, size) in [(12u8, "8M"), (16, "64M"), (32, "300M")] {
        let img = sparse(dir.path(), &format!("fat{bits}.img"), size);
        run(
            "mkfs.vfat",
            &[
                "-F",
                &bits.to_string(),
                "-n",
                "MY DISK",
                "-i",
                "1234abcd",
                s(&img),
            ],
        );
        let info = check(&img);
        assert_eq!(info.fat_bits, Some(bits));
        assert_eq!(info.uuid.as_deref(), Some("1234-ABCD"));
        // No label: blkid reports none (the boot sector says "NO NAME").
        let img2 = sparse(dir.path(), &format!("nolabel{bits}.img"), size);
        run("mkfs.vfat", &["-F", &bits.to_string(), s(&img2)]);
        assert_eq!(check(&img2).label, None);
    }
}

#[test]
fn swap() {
    if !need("mkswap", "swap") || !need("blkid", "swap") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sparse(dir.path(), "swap.img", "16M");
    run(
        "mkswap",
        &[
            "-L",
            "swappy",
            "-U",
            "11111111-2222-3333-4444-555555555555",
            s(&img),
        ],
    );
    assert_eq!(check(&img).kind, "swap");
}

#[test]
fn btrfs() {
    if !need("mkfs.btrfs", "btrfs") || !need("blkid", "btrfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sparse(dir.path(), "b.img", "300M");
    run(
        "mkfs.btrfs",
        &[
            "-q",
            "-L",
            "bt label",
            "-U",
            "01234567-89ab-cdef-0123-456789abcdef",
            s(&img),
        ],
    );
    assert_eq!(check(&img).kind, "btrfs");
}

#[test]
fn xfs() {
    if !need("mkfs.xfs", "xfs") || !need("blkid", "xfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sparse(dir.path(), "x.img", "300M");
    run(
        "mkfs.xfs",
        &[
            "-q",
            "-L",
            "xf",
            "-m",
            "uuid=11234567-89ab-cdef-0123-456789abcdef",
            s(&img),
        ],
    );
    assert_eq!(check(&img).kind, "xfs");
}

fn content_dir(dir: &Path) -> PathBuf {
    let d = dir.join("content");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    std::fs::write(d.join("hello.txt"), b"hello\n").unwrap();
    std::fs::write(d.join("sub/x"), vec![7u8; 10000]).unwrap();
    d
}

#[test]
fn squashfs() {
    if !need("mksquashfs", "squashfs") || !need("blkid", "squashfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("q.sqfs");
    run(
        "mksquashfs",
        &[s(&content_dir(dir.path())), s(&img), "-quiet", "-noappend"],
    );
    assert_eq!(check(&img).kind, "squashfs");
}

#[test]
fn erofs() {
    if !need("mkfs.erofs", "erofs") || !need("blkid", "erofs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("e.img");
    let u = "-U21234567-89ab-cdef-0123-456789abcdef";
    run(
        "mkfs.erofs",
        &["--quiet", u, s(&img), s(&content_dir(dir.path()))],
    );
    let info = check(&img);
    assert_eq!(info.kind, "erofs");
    assert_eq!(
        info.uuid.as_deref(),
        Some("21234567-89ab-cdef-0123-456789abcdef")
    );
}

#[test]
fn iso9660() {
    if !need("xorriso", "iso9660") || !need("blkid", "iso9660") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("i.iso");
    let src = content_dir(dir.path());
    let args = [
        "-as",
        "mkisofs",
        "-quiet",
        "-V",
        "MY_ISO",
        "-o",
        s(&img),
        s(&src),
    ];
    run("xorriso", &args);
    let info = check(&img);
    assert_eq!(info.kind, "iso9660");
    assert!(info.uuid.is_some());
}

#[test]
fn luks1_and_luks2() {
    if !need("cryptsetup", "luks1_and_luks2") || !need("blkid", "luks1_and_luks2") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, b"secret").unwrap();
    for (v, label) in [("luks1", None), ("luks2", Some("crypt label"))] {
        let img = sparse(dir.path(), &format!("{v}.img"), "32M");
        let mut args = vec![
            "luksFormat",
            "-q",
            "--type",
            v,
            "--key-file",
            s(&key),
            "--pbkdf-force-iterations",
            "1000",
            "--uuid",
            "31234567-89ab-cdef-0123-456789abcdef",
        ];
        if v == "luks2" {
            args.extend(["--pbkdf", "pbkdf2"]);
        }
        if let Some(l) = label {
            args.extend(["--label", l]);
        }
        args.push(s(&img));
        run("cryptsetup", &args);
        let info = check(&img);
        assert_eq!(info.kind, "crypto_LUKS");
        assert_eq!(info.label.as_deref(), label);
    }
}

/// LVM's label CRC: reflected CRC-32 with initial value 0xf597a6cf and no final inversion
/// (LVM2 `lib/misc/crc.c`), expressed through crc32fast (which pre/post-inverts).
fn lvm_crc(buf: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(!0xf597_a6cfu32);
    h.update(buf);
    !h.finalize()
}

#[test]
fn lvm2_member_hand_built() {
    // pvcreate refuses regular files (it needs a block device, i.e. root and a loop device),
    // so the PV label is built by hand from the LVM2 on-disk format (lib/label/label.h,
    // lib/format_text/layout.h), and blkid judges it.
    if !need("blkid", "lvm2_member_hand_built") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sparse(dir.path(), "pv.img", "16M");
    let mut sec = vec![0u8; 512];
    sec[0..8].copy_from_slice(b"LABELONE"); // label_header.id
    sec[8..16].copy_from_slice(&1u64.to_le_bytes()); // sector_xl: this label is in sector 1
    sec[20..24].copy_from_slice(&32u32.to_le_bytes()); // offset_xl of the pv_header
    sec[24..32].copy_from_slice(b"LVM2 001"); // type
    let pv_uuid = b"AbCdEf0123456789ghIJklMNopQRstuv";
    sec[32..64].copy_from_slice(pv_uuid); // pv_header.pv_uuid
    sec[64..72].copy_from_slice(&(16u64 << 20).to_le_bytes()); // device_size_xl
                                                               // Data areas: (1 MiB, 0), terminator; metadata areas: (4096, 1 MiB - 4096), terminator.
    sec[72..80].copy_from_slice(&(1u64 << 20).to_le_bytes());
    sec[104..112].copy_from_slice(&4096u64.to_le_bytes());
    sec[112..120].copy_from_slice(&((1u64 << 20) - 4096).to_le_bytes());
    let crc = lvm_crc(&sec[20..512]); // crc_xl covers offset_xl to the end of the sector
    sec[16..20].copy_from_slice(&crc.to_le_bytes());
    RawFile::open_rw(&img).unwrap().write_at(&sec, 512).unwrap();
    let info = check(&img);
    assert_eq!(info.kind, "LVM2_member");
    assert_eq!(
        info.uuid.as_deref(),
        Some("AbCdEf-0123-4567-89gh-IJkl-MNop-QRstuv")
    );
}

#[test]
fn filesystem_inside_a_partition() {
    if !need("sgdisk", "filesystem_inside_a_partition")
        || !need("mke2fs", "x")
        || !need("blkid", "x")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sparse(dir.path(), "disk.img", "64M");
    run("sgdisk", &["-n1:0:+8M", "-n2:0:0", s(&img)]);
    let dev = RawFile::open(&img).unwrap();
    let t = subroot_formats::table::read_table(&dev).unwrap().unwrap();
    let p = t.partition(2).unwrap().clone();
    drop(dev);
    let off = format!("offset={}", p.start);
    run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            "inpart",
            "-E",
            &off,
            s(&img),
            &format!("{}k", p.size / 1024),
        ],
    );
    let dev = RawFile::open(&img).unwrap();
    let slice = Slice::new(&dev, p.start, p.size).unwrap();
    assert_eq!(
        check_dev(&slice, &img, Some(p.start)).label.as_deref(),
        Some("inpart")
    );
    // The whole disk is not a filesystem; partition 1 is empty.
    assert_eq!(sniff(&dev).unwrap(), None);
    let p1 = t.partition(1).unwrap();
    assert_eq!(
        sniff(&Slice::new(&dev, p1.start, p1.size).unwrap()).unwrap(),
        None
    );
}

#[test]
fn truncated_images_are_unknown_not_errors() {
    if !need("mke2fs", "truncated_images_are_unknown_not_errors") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sparse(dir.path(), "t.img", "8M");
    run("mke2fs", &["-q", "-F", "-t", "ext4", s(&img)]);
    for len in [0u64, 100, 1024, 1100, 2047] {
        let copy = dir.path().join(format!("t{len}.img"));
        std::fs::copy(&img, &copy).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_len(len)
            .unwrap();
        assert_eq!(
            sniff(&RawFile::open(&copy).unwrap()).unwrap(),
            None,
            "{len}"
        );
    }
}
