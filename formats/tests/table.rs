//! Partition tables against the reference tools: disks built with sfdisk/sgdisk are read and
//! compared field by field with `sfdisk -J`; tables we write are checked by `sfdisk -J`,
//! `sfdisk -V` and `sgdisk -v`; damaged tables must give clear errors or warnings.

mod common;

use common::{need, run, run_stdout, s};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use subroot_formats::block::{BlockDevice, RawFile};
use subroot_formats::table::{
    read_table, relocate_gpt_backup, write_table, PartKind, PartSpec, PartitionTable, TableKind,
};
use subroot_formats::Error;

/// Run sfdisk with `script` on stdin.
fn sfdisk_script(img: &Path, extra: &[&str], script: &str) {
    let exe = common::which("sfdisk").expect("sfdisk");
    let mut child = Command::new(exe)
        .args(extra)
        .args(["-q", "--no-reread", "--no-tell-kernel", s(img)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sfdisk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sparse(dir: &Path, name: &str, size: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    run("truncate", &["-s", size, s(&p)]);
    p
}

fn sfdisk_json(img: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = extra.to_vec();
    args.extend(["-J", s(img)]);
    let v: serde_json::Value = serde_json::from_str(&run_stdout("sfdisk", &args)).unwrap();
    v["partitiontable"].clone()
}

/// `sfdisk -l -o Device,Type` as number -> type name.
fn sfdisk_type_names(img: &Path) -> HashMap<u32, String> {
    let out = run_stdout("sfdisk", &["-l", "-o", "Device,Type", s(img)]);
    let mut m = HashMap::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix(s(img)) {
            let (num, name) = rest.split_once(' ').unwrap();
            m.insert(num.parse().unwrap(), name.trim().to_string());
        }
    }
    m
}

/// GPT attribute string of sfdisk ("LegacyBIOSBootable GUID:60,61") as bits.
fn attr_bits(s: &str) -> u64 {
    let mut bits = 0u64;
    for word in s.split_whitespace() {
        match word {
            "RequiredPartition" => bits |= 1,
            "NoBlockIOProtocol" => bits |= 2,
            "LegacyBIOSBootable" => bits |= 4,
            w => {
                let list = w.strip_prefix("GUID:").expect(w);
                for b in list.split(',') {
                    bits |= 1 << b.parse::<u32>().unwrap();
                }
            }
        }
    }
    bits
}

/// Every field of `t` against `sfdisk -J` (and type names against `sfdisk -l`).
fn assert_matches_sfdisk(t: &PartitionTable, img: &Path, extra: &[&str]) {
    let j = sfdisk_json(img, extra);
    let ss = j["sectorsize"].as_u64().unwrap();
    assert_eq!(t.sector_size, ss);
    let label = j["label"].as_str().unwrap();
    assert_eq!(
        t.kind,
        if label == "gpt" {
            TableKind::Gpt
        } else {
            TableKind::Mbr
        }
    );
    assert_eq!(t.disk_id, j["id"].as_str().unwrap());
    assert_eq!(t.first_lba, j["firstlba"].as_u64());
    assert_eq!(t.last_lba, j["lastlba"].as_u64());
    let jp = j["partitions"].as_array().unwrap();
    assert_eq!(t.partitions.len(), jp.len(), "{t:#?}\n{jp:#?}");
    let names = if extra.is_empty() {
        Some(sfdisk_type_names(img))
    } else {
        None
    };
    for (p, q) in t.partitions.iter().zip(jp) {
        let node = q["node"].as_str().unwrap();
        let num: u32 = node.strip_prefix(s(img)).unwrap().parse().unwrap();
        assert_eq!(p.number, num);
        assert_eq!(
            p.start,
            q["start"].as_u64().unwrap() * ss,
            "partition {num}"
        );
        assert_eq!(p.size, q["size"].as_u64().unwrap() * ss, "partition {num}");
        let ty = q["type"].as_str().unwrap();
        if label == "gpt" {
            assert_eq!(p.type_code, ty);
            assert_eq!(p.kind, PartKind::Primary);
            assert_eq!(p.uuid.as_deref(), q["uuid"].as_str());
            assert_eq!(p.name.as_deref(), q["name"].as_str());
            assert_eq!(
                p.attributes,
                q["attrs"].as_str().map(attr_bits).unwrap_or(0)
            );
            assert_eq!(p.bootable, p.attributes & 4 != 0);
        } else {
            assert_eq!(
                p.type_code,
                format!("0x{:02x}", u8::from_str_radix(ty, 16).unwrap())
            );
            assert_eq!(
                p.bootable,
                q["bootable"].as_bool().unwrap_or(false),
                "partition {num}"
            );
            assert_eq!(p.attributes, 0);
            let kind = if num >= 5 {
                PartKind::Logical
            } else if ["5", "f", "85"].contains(&ty) {
                PartKind::Extended
            } else {
                PartKind::Primary
            };
            assert_eq!(p.kind, kind, "partition {num}");
        }
        if let Some(names) = &names {
            assert_eq!(&p.type_name, &names[&num], "type name of partition {num}");
        }
    }
}

fn open(p: &Path) -> RawFile {
    RawFile::open(p).unwrap()
}

fn read(p: &Path) -> PartitionTable {
    read_table(&open(p)).unwrap().expect("a partition table")
}

const MBR_SCRIPT: &str = "label: dos\n,8M,83,*\n,8M,b\n,,5\n,4M,83\n,4M,82\n,,c\n";

#[test]
fn mbr_with_logicals_matches_sfdisk() {
    if !need("sfdisk", "mbr_with_logicals_matches_sfdisk") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sparse(dir.path(), "d.img", "64M");
    sfdisk_script(&img, &[], MBR_SCRIPT);
    let t = read(&img);
    assert_eq!(
        t.partitions.iter().map(|p| p.number).collect::<Vec<_>>(),
        [1, 2, 3, 5, 6, 7]
    );
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    assert_matches_sfdisk(&t, &img, &[]);
}

#[test]
fn mbr_type_names_match_sfdisk() {
    if !need("sfdisk", "mbr_type_names_match_sfdisk") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sparse(dir.path(), "d.img", "64M");
    sfdisk_script(&img, &[], "label: dos\n,4M,7\n,4M,8e\n,4M,fd\n,,ef\n");
    assert_matches_sfdisk(&read(&img), &img, &[]);
    sfdisk_script(
        &img,
        &[],
        "label: dos\n,4M,e\n,4M,1\n,4M,a5\n,,f\n,4M,6\n,,bf\n",
    );
    assert_matches_sfdisk(&read(&img), &img, &[]);
}

fn sgdisk_disk(dir: &Path) -> std::path::PathBuf {
    let img = sparse(dir, "g.img", "64M");
    run(
        "sgdisk",
        &[
            "-n1:0:+8M",
            "-t1:ef00",
            "-c1:EFI system",
            "-A1:set:2",
            "-A1:set:0",
            "-n3:0:+16M",
            "-t3:8300",
            "-c3:root fs",
            "-A3:set:60",
            "-A3:set:63",
            "-n4:0:0",
            "-t4:8200",
            s(&img),
        ],
    );
    img
}

#[test]
fn gpt_matches_sfdisk() {
    if !need("sgdisk", "gpt_matches_sfdisk") || !need("sfdisk", "gpt_matches_sfdisk") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sgdisk_disk(dir.path());
    let t = read(&img);
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    // Entry 2 is unused: numbering follows entry indexes.
    assert_eq!(
        t.partitions.iter().map(|p| p.number).collect::<Vec<_>>(),
        [1, 3, 4]
    );
    assert_eq!(t.partitions[0].type_name, "EFI System");
    assert!(t.partitions[0].bootable);
    assert_matches_sfdisk(&t, &img, &[]);
}

#[test]
fn gpt_4k_sectors_match_fdisk() {
    // sfdisk here has no --sector-size; fdisk -b does, so fdisk makes and judges this one.
    if !need("fdisk", "gpt_4k_sectors_match_fdisk") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sparse(dir.path(), "g4k.img", "64M");
    let mut child = Command::new(common::which("fdisk").unwrap())
        .args(["-b", "4096", s(&img)])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"g\nn\n\n\n+8M\nn\n\n\n\nw\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let t = read(&img);
    assert_eq!(t.sector_size, 4096);
    let out = run_stdout(
        "fdisk",
        &[
            "-b",
            "4096",
            "-l",
            "-o",
            "Device,Start,Sectors,Type-UUID,UUID",
            s(&img),
        ],
    );
    assert!(
        out.contains(&format!("Disk identifier: {}", t.disk_id)),
        "{out}"
    );
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter_map(|l| l.strip_prefix(s(&img)))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    for (p, r) in t.partitions.iter().zip(&rows) {
        assert_eq!(p.number.to_string(), r[0]);
        assert_eq!(p.start, r[1].parse::<u64>().unwrap() * 4096);
        assert_eq!(p.size, r[2].parse::<u64>().unwrap() * 4096);
        assert_eq!(p.type_code, r[3]);
        assert_eq!(p.uuid.as_deref(), Some(r[4]));
    }
}

#[test]
fn gpt_damaged_primary_falls_back_to_backup() {
    if !need("sgdisk", "gpt_damaged_primary_falls_back_to_backup") || !need("sfdisk", "x") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sgdisk_disk(dir.path());
    let intact = read(&img);
    let total = std::fs::metadata(&img).unwrap().len() / 512;

    // 1. Damage the primary header (its disk GUID bytes): header CRC mismatch.
    let copy = dir.path().join("hdr.img");
    std::fs::copy(&img, &copy).unwrap();
    RawFile::open_rw(&copy)
        .unwrap()
        .write_at(b"garbage!", 512 + 60)
        .unwrap();
    let t = read(&copy);
    assert_eq!(t.partitions, intact.partitions);
    assert_eq!(t.disk_id, intact.disk_id);
    let w = t.warnings.join("\n");
    assert!(
        w.contains("primary GPT header")
            && w.contains(&format!("backup header at LBA {}", total - 1)),
        "{w}"
    );
    // And the partitions equal sfdisk's view of the intact disk.
    assert_matches_sfdisk(&t, &img, &[]);

    // 2. Damage only the primary entry array: the header is fine but its entries CRC is not.
    let copy2 = dir.path().join("entries.img");
    std::fs::copy(&img, &copy2).unwrap();
    RawFile::open_rw(&copy2)
        .unwrap()
        .write_at(&[0xAB; 16], 1024 + 128 + 32)
        .unwrap();
    let t = read(&copy2);
    assert_eq!(t.partitions, intact.partitions);
    assert!(t.warnings.join("\n").contains("CRC"), "{:?}", t.warnings);

    // 3. Damage both: a clear Corrupt error naming both.
    RawFile::open_rw(&copy)
        .unwrap()
        .write_at(b"garbage!", (total - 1) * 512 + 60)
        .unwrap();
    match read_table(&open(&copy)) {
        Err(Error::Corrupt(m)) => assert!(
            m.contains("both GPT headers") && m.contains("backup"),
            "{m}"
        ),
        other => panic!("expected Corrupt, got {other:?}"),
    }

    // 4. Damaged backup only: works, with a warning about the backup.
    let copy3 = dir.path().join("bak.img");
    std::fs::copy(&img, &copy3).unwrap();
    RawFile::open_rw(&copy3)
        .unwrap()
        .write_at(b"garbage!", (total - 1) * 512 + 60)
        .unwrap();
    let t = read(&copy3);
    assert_eq!(t.partitions, intact.partitions);
    assert!(
        t.warnings.join("\n").contains("backup GPT header"),
        "{:?}",
        t.warnings
    );
}

fn specs(list: &[&str]) -> Vec<PartSpec> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// Check that `sfdisk -V` (and `sgdisk -v` for GPT) find nothing wrong.
fn verify_clean(img: &Path, gpt: bool) {
    let out = Command::new(common::which("sfdisk").unwrap())
        .args(["-V", s(img)])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sfdisk -V: {text}");
    let lower = text.to_lowercase();
    assert!(text.contains("No errors detected."), "sfdisk -V: {text}");
    for bad in ["warn", "error:", "mismatch", "problem"] {
        assert!(!lower.contains(bad), "sfdisk -V: {text}");
    }
    if gpt {
        let out = run_stdout("sgdisk", &["-v", s(img)]);
        assert!(out.contains("No problems found"), "sgdisk -v: {out}");
    }
}

#[test]
fn write_mbr_with_logicals() {
    if !need("sfdisk", "write_mbr_with_logicals") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sparse(dir.path(), "w.img", "6G");
    let dev = RawFile::open_rw(&img).unwrap();
    let parts = specs(&[
        "size=100M,type=esp,bootable",
        "size=1G,type=linux",
        "size=512M,type=swap",
        "size=1G,type=lvm",
        "size=1537K,type=0x07",
        "size=2G,type=raid,bootable",
        "type=fat32",
    ]);
    let t = write_table(&dev, TableKind::Mbr, &parts).unwrap();
    drop(dev);
    assert_eq!(
        t.partitions.iter().map(|p| p.number).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    assert_eq!(t.partition(4).unwrap().kind, PartKind::Extended);
    // Sizes: exact (rounded up to sectors); starts 1 MiB aligned; the last fills the disk.
    let want = [
        100 << 20,
        1 << 30,
        512 << 20,
        0,
        1 << 30,
        1537 << 10,
        2 << 30,
    ];
    for (n, w) in [1u32, 2, 3, 4, 5, 6, 7].iter().zip(want) {
        let p = t.partition(*n).unwrap();
        assert_eq!(p.start % (1 << 20), 0, "partition {n} start");
        if w != 0 {
            assert_eq!(p.size, w, "partition {n}");
        }
    }
    let last = t.partition(8).unwrap();
    assert_eq!(last.end(), 6 << 30);
    assert!(t.partition(7).unwrap().bootable && t.partition(1).unwrap().bootable);
    assert_eq!(t.partition(5).unwrap().type_code, "0x8e");
    assert_matches_sfdisk(&t, &img, &[]);
    verify_clean(&img, false);
    // The EBRs of the logicals beyond 4 GiB are where sfdisk says they are (a u32 byte
    // offset would have wrapped).
    assert!(t.partition(8).unwrap().start > 4 << 30);
}

#[test]
fn write_mbr_four_primaries_and_gpt_over_mbr() {
    if !need("sfdisk", "write_mbr_four_primaries_and_gpt_over_mbr") || !need("sgdisk", "x") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sparse(dir.path(), "w.img", "256M");
    let dev = RawFile::open_rw(&img).unwrap();
    let t = write_table(
        &dev,
        TableKind::Mbr,
        &specs(&[
            "size=10M",
            "size=10M,type=83",
            "size=10M,type=c",
            "size=rest,type=82",
        ]),
    )
    .unwrap();
    assert!(t.partitions.iter().all(|p| p.kind == PartKind::Primary));
    assert_matches_sfdisk(&t, &img, &[]);
    verify_clean(&img, false);
    // A GPT over it, then an MBR over the GPT: no leftovers confuse the tools.
    let t = write_table(
        &dev,
        TableKind::Gpt,
        &specs(&["size=20M,type=bios", "type=home,name=h"]),
    )
    .unwrap();
    assert_matches_sfdisk(&t, &img, &[]);
    verify_clean(&img, true);
    let t = write_table(&dev, TableKind::Mbr, &specs(&["size=20M"])).unwrap();
    assert_eq!(sfdisk_json(&img, &[])["label"], "dos");
    assert_matches_sfdisk(&t, &img, &[]);
    verify_clean(&img, false);
    // Errors: too big, rest not last, type not valid for MBR.
    let e = write_table(&dev, TableKind::Mbr, &specs(&["size=1G"])).unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("does not fit"),
        "{e}"
    );
    assert!(write_table(&dev, TableKind::Mbr, &specs(&["size=rest", "size=1M"])).is_err());
    assert!(write_table(&dev, TableKind::Mbr, &specs(&["type=bios"])).is_err());
    let long = format!("size=1M,name={}", "x".repeat(37));
    assert!(write_table(&dev, TableKind::Gpt, &specs(&[&long])).is_err());
}

#[test]
fn write_gpt_verified_by_sgdisk() {
    if !need("sfdisk", "write_gpt_verified_by_sgdisk")
        || !need("sgdisk", "write_gpt_verified_by_sgdisk")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sparse(dir.path(), "w.img", "3G");
    let dev = RawFile::open_rw(&img).unwrap();
    let parts = specs(&[
        "size=1M,type=bios",
        "size=200M,type=esp,name=EFI,bootable",
        "size=1G,type=swap,name=swap",
        "size=rest,type=linux,name=root,fs=ext4",
    ]);
    let t = write_table(&dev, TableKind::Gpt, &parts).unwrap();
    drop(dev);
    assert_eq!(t.partitions.len(), 4);
    assert_eq!(t.partition(2).unwrap().size, 200 << 20);
    assert_eq!(t.partition(2).unwrap().name.as_deref(), Some("EFI"));
    assert_eq!(t.partition(2).unwrap().attributes, 4);
    assert_eq!(t.partition(4).unwrap().end() / 512, t.last_lba.unwrap() + 1);
    assert_matches_sfdisk(&t, &img, &[]);
    verify_clean(&img, true);
    let sg = run_stdout("sgdisk", &["-p", s(&img)]);
    assert!(sg.contains("holds up to 128 entries"), "{sg}");
}

#[test]
fn bad_tables_give_clear_errors() {
    if !need("sfdisk", "bad_tables_give_clear_errors") || !need("sgdisk", "x") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    // MBR partition beyond the disk end: made on a bigger file, then truncated.
    let img = sparse(dir.path(), "beyond.img", "64M");
    sfdisk_script(&img, &[], MBR_SCRIPT);
    run("truncate", &["-s", "40M", s(&img)]);
    match read_table(&open(&img)) {
        Err(Error::Corrupt(m)) => assert!(m.contains("beyond the end of the device"), "{m}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }

    // EBR loop: the first EBR's link points back to itself.
    let img = sparse(dir.path(), "loop.img", "64M");
    sfdisk_script(&img, &[], MBR_SCRIPT);
    let ext_start = read(&img).partition(3).unwrap().start;
    let dev = RawFile::open_rw(&img).unwrap();
    let mut link = [0u8; 16];
    dev.read_at(&mut link, ext_start + 446 + 16).unwrap();
    link[8..12].copy_from_slice(&0u32.to_le_bytes());
    dev.write_at(&link, ext_start + 446 + 16).unwrap();
    match read_table(&dev) {
        Err(Error::Corrupt(m)) => assert!(m.contains("loops"), "{m}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // A link pointing outside the extended partition.
    link[8..12].copy_from_slice(&0x0010_0000u32.to_le_bytes());
    dev.write_at(&link, ext_start + 446 + 16).unwrap();
    match read_table(&dev) {
        Err(Error::Corrupt(m)) => assert!(m.contains("outside the extended partition"), "{m}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // A logical partition whose start overflows 32 bits relative to its EBR.
    link[8..12].copy_from_slice(&0u32.to_le_bytes());
    link[4] = 0; // make the link empty: the chain ends at the first EBR
    dev.write_at(&link, ext_start + 446 + 16).unwrap();
    dev.write_at(&u32::MAX.to_le_bytes(), ext_start + 446 + 8)
        .unwrap();
    assert!(matches!(read_table(&dev), Err(Error::Corrupt(_))));

    // Overlapping primaries.
    let img = sparse(dir.path(), "overlap.img", "64M");
    sfdisk_script(&img, &[], "label: dos\n,8M,83\n,8M,83\n");
    let dev = RawFile::open_rw(&img).unwrap();
    dev.write_at(&4096u32.to_le_bytes(), 446 + 16 + 8).unwrap();
    match read_table(&dev) {
        Err(Error::Corrupt(m)) => assert!(m.contains("overlap"), "{m}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }

    // Truncated GPT disk: partitions beyond the end, backup missing.
    let dir2 = tempfile::tempdir().unwrap();
    let img = sgdisk_disk(dir2.path());
    run("truncate", &["-s", "20M", s(&img)]);
    match read_table(&open(&img)) {
        Err(Error::Corrupt(m)) => assert!(
            m.contains("beyond the end of the device") && m.contains("truncated"),
            "{m}"
        ),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Truncated to almost nothing: no panic, an error or nothing.
    run("truncate", &["-s", "1000", s(&img)]);
    assert!(read_table(&open(&img)).is_err());
    run("truncate", &["-s", "100", s(&img)]);
    assert!(read_table(&open(&img)).unwrap().is_none());
}

#[test]
fn no_table() {
    if !need("mkfs.vfat", "no_table") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sparse(dir.path(), "zero.img", "8M");
    assert!(read_table(&open(&img)).unwrap().is_none());
    // A whole-disk FAT filesystem also ends its sector 0 with 0x55AA: not a table.
    for bits in ["12", "16", "32"] {
        let img = sparse(dir.path(), &format!("fat{bits}.img"), "40M");
        run("mkfs.vfat", &["-F", bits, s(&img)]);
        assert!(read_table(&open(&img)).unwrap().is_none(), "FAT{bits}");
    }
}

#[test]
fn relocate_backup_after_growing() {
    if !need("sgdisk", "relocate_backup_after_growing") || !need("sfdisk", "x") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sgdisk_disk(dir.path());
    let before = read(&img);
    run("truncate", &["-s", "100M", s(&img)]);
    let grown = read(&img);
    assert!(
        grown
            .warnings
            .join("\n")
            .contains("not at the end of the device"),
        "{:?}",
        grown.warnings
    );
    let out = run_stdout("sgdisk", &["-v", s(&img)]);
    assert!(
        !out.contains("No problems found"),
        "sgdisk should see the misplaced backup: {out}"
    );
    relocate_gpt_backup(&RawFile::open_rw(&img).unwrap()).unwrap();
    let after = read(&img);
    assert!(after.warnings.is_empty(), "{:?}", after.warnings);
    assert_eq!(after.partitions, before.partitions);
    assert_eq!(after.disk_id, before.disk_id);
    assert_eq!(after.last_lba, Some((100 << 20) / 512 - 34));
    verify_clean(&img, true);
    assert_matches_sfdisk(&after, &img, &[]);
    // The protective MBR covers the grown disk (sfdisk -V above would report a "PMBR size
    // mismatch"); also check the raw entry (MBR spec: sector count at byte 446 + 12).
    let mut n = [0u8; 4];
    open(&img).read_at(&mut n, 446 + 12).unwrap();
    assert_eq!(u32::from_le_bytes(n), (100 << 20) / 512 - 1);

    // Shrinking below the last partition is refused; shrinking into free space works.
    // (Partition 4 fills the disk, so delete it first.)
    run("sgdisk", &["-d4", s(&img)]);
    run("truncate", &["-s", "40M", s(&img)]);
    relocate_gpt_backup(&RawFile::open_rw(&img).unwrap()).unwrap();
    verify_clean(&img, true);
    run("truncate", &["-s", "20M", s(&img)]);
    let e = relocate_gpt_backup(&RawFile::open_rw(&img).unwrap()).unwrap_err();
    assert!(e.to_string().contains("partition 3"), "{e}");

    // MBR disks: a no-op.
    let m = sparse(dir.path(), "m.img", "64M");
    sfdisk_script(&m, &[], MBR_SCRIPT);
    let bytes = std::fs::read(&m).unwrap();
    relocate_gpt_backup(&RawFile::open_rw(&m).unwrap()).unwrap();
    assert!(std::fs::read(&m).unwrap() == bytes);
}

/// Rewrite a field of the GPT header at `lba` and fix its CRC, so only our validation (not
/// the CRC) can reject it.
fn patch_gpt_header(dev: &RawFile, lba: u64, off: usize, bytes: &[u8]) {
    let mut h = [0u8; 92];
    dev.read_at(&mut h, lba * 512).unwrap();
    h[off..off + bytes.len()].copy_from_slice(bytes);
    h[16..20].copy_from_slice(&[0; 4]);
    let crc = crc32fast::hash(&h);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    dev.write_at(&h, lba * 512).unwrap();
}

#[test]
fn hostile_gpt_headers_with_valid_crcs() {
    if !need("sgdisk", "hostile_gpt_headers_with_valid_crcs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sgdisk_disk(dir.path());
    let intact = read(&img);
    let last = std::fs::metadata(&img).unwrap().len() / 512 - 1;
    // Header offsets (UEFI spec 5.3.2): 24 MyLBA, 72 entry array LBA, 80 entry count, 84 entry size.
    let cases: [(usize, Vec<u8>, &str); 4] = [
        (84, 256u32.to_le_bytes().to_vec(), "entry size 256"),
        (80, u32::MAX.to_le_bytes().to_vec(), "partition entries"),
        (
            72,
            (u64::MAX / 4).to_le_bytes().to_vec(),
            "outside the device",
        ),
        (24, 7u64.to_le_bytes().to_vec(), "says it is at LBA 7"),
    ];
    for (off, bytes, msg) in cases {
        let copy = dir.path().join("h.img");
        std::fs::copy(&img, &copy).unwrap();
        let dev = RawFile::open_rw(&copy).unwrap();
        patch_gpt_header(&dev, 1, off, &bytes);
        let t = read_table(&dev).unwrap().unwrap();
        assert_eq!(t.partitions, intact.partitions);
        assert!(
            t.warnings.join("\n").contains(msg),
            "{msg}: {:?}",
            t.warnings
        );
        patch_gpt_header(&dev, last, off, &bytes);
        match read_table(&dev) {
            Err(Error::Corrupt(m)) => assert!(m.contains(msg), "{m}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn random_sectors_never_panic() {
    use subroot_formats::block::MemoryDevice;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..300 {
        let mut d = vec![0u8; 256 << 10];
        // Random MBR entries (sometimes extended, sometimes 0xEE) and random EBR-ish sectors.
        for i in (0..d.len()).step_by(512) {
            if next() % 4 == 0 || i == 0 {
                for b in &mut d[i + 446..i + 510] {
                    *b = next() as u8;
                }
                for e in 0..4 {
                    let o = i + 446 + e * 16;
                    d[o] = if next() % 2 == 0 { 0 } else { 0x80 };
                    d[o + 4] = [0x05, 0x0f, 0x83, 0xee, 0x00][(next() % 5) as usize];
                    let start = (next() % 600) as u32;
                    d[o + 8..o + 12].copy_from_slice(&start.to_le_bytes());
                    if round % 3 == 0 {
                        d[o + 12..o + 16].copy_from_slice(&((next() % 600) as u32).to_le_bytes());
                    }
                }
                d[i + 510] = 0x55;
                d[i + 511] = 0xaa;
            }
        }
        if round % 5 == 0 {
            d[512..520].copy_from_slice(b"EFI PART");
        }
        let dev = MemoryDevice::from_vec(d);
        let _ = read_table(&dev);
        let _ = subroot_formats::sniff::sniff(&dev);
    }
}
