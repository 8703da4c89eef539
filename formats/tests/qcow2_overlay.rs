//! `--overlay` outputs judged by qemu-img: an edit on a copy-on-write overlay of a raw or
//! qcow2 (also zlib-compressed) base is written both as a full image and as a qcow2 overlay
//! over the base; the overlay must pass `qemu-img check`, name its backing file and format,
//! compare equal to the full image, fold into a copy of the base with `qemu-img commit`
//! (the base then equals the full image), and hold little more than the touched clusters.

mod common;

use common::{need, new_output, run, run_stdout, s};
use std::path::{Path, PathBuf};
use subroot_formats::block::{BlockDevice, Overlay};
use subroot_formats::image::{Image, ImageFormat};
use subroot_formats::qcow2::{write_overlay, CompressionType, OverlayRequest, WriteOptions};
use subroot_formats::sparse_copy::write_raw;

const MIB: u64 = 1 << 20;
const CS: u64 = 65536;
/// Not a multiple of the cluster size: the last cluster is partial.
const SIZE: u64 = 16 * MIB + 3 * 4096 + 512;

/// A base image of `SIZE` bytes with data at the start, the middle and the end, in
/// `format` (`qcow2-zlib`: compressed clusters).
fn make_base(dir: &Path, format: &str) -> (PathBuf, ImageFormat) {
    let raw = dir.join("pattern.raw");
    run(
        "qemu-img",
        &["create", "-q", "-f", "raw", s(&raw), &SIZE.to_string()],
    );
    for (off, len, pat) in [
        (0u64, 3 * CS, 0x11u8),
        (5 * MIB, 2 * MIB, 0x22),
        (SIZE - 3 * CS, 3 * CS, 0x33),
    ] {
        let cmd = format!("write -P {pat:#x} {off} {len}");
        run("qemu-io", &["-f", "raw", "-c", &cmd, s(&raw)]);
    }
    let base = dir.join("base.img");
    match format {
        "raw" => {
            std::fs::rename(&raw, &base).unwrap();
            return (base, ImageFormat::Raw);
        }
        "qcow2" => run("qemu-img", &["convert", "-O", "qcow2", s(&raw), s(&base)]),
        _ => run(
            "qemu-img",
            &["convert", "-c", "-O", "qcow2", s(&raw), s(&base)],
        ),
    };
    std::fs::remove_file(&raw).unwrap();
    (base, ImageFormat::Qcow2)
}

/// The edit: the first cluster, an unaligned write in the partial last cluster, zeros over
/// data (must not fall through to the base), a write into a hole, and a cross-cluster write.
fn edit(dev: &dyn BlockDevice) {
    dev.write_at(&[0xa1; 100], 7).unwrap();
    dev.write_at(&[0xa2; 300], SIZE - 301).unwrap();
    dev.write_at(&vec![0u8; 4096], 5 * MIB + 8192).unwrap();
    dev.write_at(&vec![0u8; CS as usize], 6 * MIB).unwrap();
    dev.write_at(&[0xa3; 5000], 9 * MIB + 1000).unwrap();
    dev.write_at(&[0xa4; 10], 2 * CS - 5).unwrap();
}

fn check_overlay(format: &str, compression: Option<CompressionType>, test: &str) {
    if !need("qemu-img", test) || !need("qemu-io", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (base, base_format) = make_base(dir.path(), format);
    let image = Image::open(&base).unwrap();
    let spill = tempfile::tempfile_in(dir.path()).unwrap();
    let edited = Overlay::with_spill(&image, spill);
    edit(&edited);
    let changed = edited.changed();

    let full = dir.path().join("full.raw");
    write_raw(&edited, &new_output(&full), &|_| {}).unwrap();

    std::fs::create_dir(dir.path().join("out")).unwrap();
    let ov = dir.path().join("out/ov.qcow2");
    let req = OverlayRequest {
        edited: &edited,
        changed: &changed,
        backing: &base,
        backing_format: base_format,
        out_path: &ov,
    };
    let opts = WriteOptions {
        compression,
        ..WriteOptions::default()
    };
    let stats = write_overlay(&req, &new_output(&ov), &opts, &|_| {}).unwrap();
    assert_eq!(stats.virtual_size, SIZE);

    run("qemu-img", &["check", "-f", "qcow2", s(&ov)]);
    let info: serde_json::Value = serde_json::from_str(&run_stdout(
        "qemu-img",
        &["info", "--backing-chain", "--output=json", s(&ov)],
    ))
    .unwrap();
    assert_eq!(info[0]["backing-filename"], "../base.img", "{info}");
    assert_eq!(
        info[0]["backing-filename-format"],
        base_format.name(),
        "{info}"
    );
    assert_eq!(info[0]["virtual-size"], SIZE, "{info}");
    assert_eq!(info[1]["format"], base_format.name(), "{info}");
    run("qemu-img", &["compare", "-F", "raw", s(&ov), s(&full)]);

    // Touched clusters: 0, 1 and 2 (the first write and the one across 1/2), 80 (zeros over
    // part of the data at 5 MiB), 96 (6 MiB, all zeros now: a zero cluster, not the base's
    // data), 144 (9 MiB + 1000 .. + 6000), and the partial last one.
    let map: serde_json::Value =
        serde_json::from_str(&run_stdout("qemu-img", &["map", "--output=json", s(&ov)])).unwrap();
    let top: Vec<_> = map
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["depth"] == 0)
        .map(|e| {
            (
                e["start"].as_u64().unwrap(),
                e["length"].as_u64().unwrap(),
                e["zero"] == true,
            )
        })
        .collect();
    let last = SIZE / CS * CS;
    assert_eq!(
        top,
        [
            (0, 3 * CS, false),
            (5 * MIB, CS, false),
            (6 * MIB, CS, true),
            (9 * MIB, CS, false),
            (last, SIZE - last, false)
        ],
        "{map}"
    );
    // 6 data clusters, and the header, L1, one L2, one refcount block and the table.
    let size = std::fs::metadata(&ov).unwrap().len();
    assert!(
        size <= 11 * CS,
        "an overlay of 6 data clusters is {size} bytes"
    );

    // qemu-img commit folds the overlay into (a copy of) the base.
    let c = dir.path().join("commit");
    std::fs::create_dir_all(c.join("out")).unwrap();
    std::fs::copy(&base, c.join("base.img")).unwrap();
    std::fs::copy(&ov, c.join("out/ov.qcow2")).unwrap();
    run("qemu-img", &["commit", "-q", s(&c.join("out/ov.qcow2"))]);
    run(
        "qemu-img",
        &[
            "compare",
            "-f",
            base_format.name(),
            "-F",
            "raw",
            s(&c.join("base.img")),
            s(&full),
        ],
    );
    // The input itself is untouched (and differs from the result).
    let untouched = std::process::Command::new("qemu-img")
        .args(["compare", "-q", "-F", "raw", s(&base), s(&full)])
        .status()
        .unwrap();
    assert_eq!(
        untouched.code(),
        Some(1),
        "the input should differ from the edit"
    );
}

#[test]
fn overlay_over_raw() {
    check_overlay("raw", None, "overlay_over_raw");
}

#[test]
fn overlay_over_qcow2() {
    check_overlay("qcow2", None, "overlay_over_qcow2");
}

#[test]
fn overlay_over_compressed_qcow2() {
    check_overlay("qcow2-zlib", None, "overlay_over_compressed_qcow2");
}

/// The touched clusters compressed (the all-zero one still a zero cluster).
#[test]
fn compressed_overlay() {
    check_overlay("raw", Some(CompressionType::Zlib), "compressed_overlay");
}
