//! The VDI reader judged by qemu: fixed (`static=on`) and dynamic images filled by
//! `qemu-io` at scattered offsets, read through `Image` and compared byte for byte with
//! `qemu-img convert -O raw`, holes with `qemu-img map`; damaged headers and block maps
//! give clear errors, never panics.
mod common;

use common::oracle::{open_err, qemu_io, random_damage_never_panics, same_as_qemu};
use common::{need, run, s};
use std::fs;
use std::path::{Path, PathBuf};
use subroot_formats::block::{BlockDevice, ExtentKind};
use subroot_formats::image::{Image, ImageFormat};

const SIZE: u64 = 48 << 20;

fn skip(test: &str) -> bool {
    !need("qemu-img", test) || !need("qemu-io", test)
}

fn make(dir: &Path, name: &str, static_: bool) -> PathBuf {
    let img = dir.join(name);
    let opts = format!("static={}", if static_ { "on" } else { "off" });
    let size = SIZE.to_string();
    run(
        "qemu-img",
        &["create", "-q", "-f", "vdi", "-o", &opts, s(&img), &size],
    );
    qemu_io(
        &img,
        "vdi",
        &[
            "write -P 0x11 0 64k",
            "write -P 0x22 1M 300k",
            "write -P 0x33 5000 1000",
            "write -P 0x44 23M 2M",
            "write -P 0x55 47M 1M",
            &format!("write -P 0x66 {} 512", SIZE - 512),
        ],
    );
    img
}

#[test]
fn fixed_and_dynamic_read_as_qemu_reads_them() {
    if skip("vdi_fixed_and_dynamic") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    for (name, fixed) in [("fixed.vdi", true), ("dynamic.vdi", false)] {
        let img = make(d.path(), name, fixed);
        let i = Image::open(&img).unwrap();
        assert_eq!(i.format(), ImageFormat::Vdi);
        assert_eq!(i.len(), SIZE);
        let ext = same_as_qemu(&i, &img, "vdi");
        let data: u64 = ext
            .iter()
            .filter(|e| e.kind == ExtentKind::Data)
            .map(|e| e.len)
            .sum();
        if fixed {
            assert_eq!(data, SIZE, "{name}: a fixed image is all data");
        } else {
            // Blocks of 1 MiB: the 5 blocks written (0, 1, 23, 24, 47), the rest holes.
            assert_eq!(data, 5 << 20, "{name}: {ext:?}");
        }
    }
}

fn le32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

#[test]
fn damaged_images_give_clear_errors() {
    if skip("vdi_damaged_images") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let img = make(d.path(), "d.vdi", false);
    let orig = fs::read(&img).unwrap();
    let bmap = le32_at(&orig, 0x154) as usize;
    let target = d.path().join("bad.vdi");
    let cases: Vec<(Vec<u8>, &str)> = {
        let patched = |at: usize, v: u32| {
            let mut b = orig.clone();
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            b
        };
        vec![
            (
                orig[..orig.len() - 300_000].to_vec(),
                "beyond the end of the file",
            ),
            (patched(bmap, 40), "beyond the end of the file"),
            (patched(0x178, 3000), "block size 3000"),
            (patched(0x180, 2), "cannot hold a disk"),
            (patched(0x154, 0x7fff_ffff), "block map"),
            (patched(0x44, 0x0001_0000), "version 1.0"),
            (patched(0x4c, 4), "differencing"),
            (orig[..0x100].to_vec(), "too short for a VDI header"),
        ]
    };
    for (bytes, phrase) in cases {
        fs::write(&target, &bytes).unwrap();
        let e = if bytes.len() < 0x190 {
            Image::open_as(&target, Some(ImageFormat::Vdi))
                .unwrap_err()
                .to_string()
        } else {
            open_err(&target)
        };
        assert!(e.contains("bad.vdi") && e.contains(phrase), "{phrase}: {e}");
    }
    random_damage_never_panics(&[&img], 0x1000, 300);
}
