//! FAT volumes made by `mkfs.vfat` that are unusual but valid: a label of `NO NAME`
//! (blkid's "no label"), and a FAT32 layout with fewer than 65525 clusters, which
//! `mkfs.fat -F 32` makes on small devices (sector count in the 16-bit field) and fsck.fat
//! accepts. The CLI runs unprivileged.

mod common;

use common::*;

/// `NO NAME` is what mkfs.fat writes for "no label": `info` reports none, as blkid does.
#[test]
fn a_no_name_label_is_no_label() {
    let test = "a_no_name_label_is_no_label";
    if !need("mkfs.vfat", test) || !need("blkid", test) {
        return;
    }
    let w = workdir();
    let img = w.path().join("nn.img");
    run("mkfs.vfat", &["-n", "NO NAME", "-C", s(&img), "8192"]);
    run("chmod", &["a+r", s(&img)]);
    let blkid = run_stdout("blkid", &[s(&img)]);
    assert!(!blkid.contains("LABEL="), "blkid sees no label: {blkid}");
    let info: serde_json::Value =
        serde_json::from_str(&ok(w.path(), &["info", "--json", "nn.img"])).unwrap();
    assert_eq!(
        info["filesystem"]["label"],
        serde_json::Value::Null,
        "{info}"
    );
}

/// A FAT32 layout with 59044 clusters: refused by name and reason (exit 3), not with the
/// FAT library's BPB complaint. Reading it needs a reader that takes the FAT width from
/// the BPB as Linux does (not done yet).
#[test]
fn a_small_fat32_is_refused_clearly() {
    let test = "a_small_fat32_is_refused_clearly";
    if !need("mkfs.vfat", test) || !need("fsck.fat", test) {
        return;
    }
    let w = workdir();
    let img = w.path().join("s32.img");
    run("mkfs.vfat", &["-F", "32", "-C", s(&img), "30000"]);
    run("chmod", &["a+r", s(&img)]);
    let b = std::fs::read(&img).unwrap();
    assert_ne!(
        u16::from_le_bytes([b[19], b[20]]),
        0,
        "the 16-bit count is set"
    );
    run("fsck.fat", &["-n", s(&img)]);
    fails(
        w.path(),
        &["ls", "s32.img"],
        3,
        &[
            "s32.img",
            "FAT32 volume with only 59044 clusters",
            "fewer than 65525",
        ],
    );
}
