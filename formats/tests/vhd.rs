//! The VHD reader judged by qemu: fixed and dynamic images made with `qemu-img create -f
//! vpc` and filled by `qemu-io` are read through `VhdImage` and compared byte for byte
//! with `qemu-img convert -O raw`, extents against `qemu-img map`. qemu cannot make a
//! differencing VHD, so children are qemu-made dynamic images turned into differencing
//! ones here (disk type, parent id, locators, checksums); what they must read is the
//! parent's bytes overlaid with the child's allocated sectors, both as qemu reads them.
//! Damaged images give clear errors, never panics.
mod common;

use common::{need, noise, oracle, run, s};
use std::fs;
use std::path::{Path, PathBuf};
use subroot_formats::block::{BlockDevice, ExtentKind};
use subroot_formats::image::{Image, ImageFormat};
use subroot_formats::vhd::VhdImage;
use subroot_formats::Error;

const MIB: u64 = 1 << 20;

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(b[o..o + 4].try_into().unwrap())
}

fn be64(b: &[u8], o: usize) -> u64 {
    u64::from_be_bytes(b[o..o + 8].try_into().unwrap())
}

/// Store the one's-complement byte-sum checksum of `b` at `field`.
fn set_checksum(b: &mut [u8], field: usize) {
    b[field..field + 4].fill(0);
    let sum = b.iter().fold(0u32, |s, &v| s.wrapping_add(u32::from(v)));
    b[field..field + 4].copy_from_slice(&(!sum).to_be_bytes());
}

/// A qemu-made VHD of `subformat` at `path`, written by `qemu-io` commands.
fn create(path: &Path, subformat: &str, size: &str, writes: &[String]) {
    let opt = format!("subformat={subformat}");
    run(
        "qemu-img",
        &["create", "-q", "-f", "vpc", "-o", &opt, s(path), size],
    );
    oracle::qemu_io(path, "vpc", writes);
}

/// Writes with data at the start, inside and across blocks, and in the last sector.
fn scattered(len: u64, seed: u8) -> Vec<String> {
    vec![
        format!("write -P {} 0 64k", seed),
        format!("write -P {} 5M 1M", seed + 1),
        format!("write -P {} 3999k 2k", seed + 2),
        format!("write -P {} {} 512", seed + 3, len - 512),
    ]
}

/// The virtual size qemu gives a VHD created with `size`.
fn vhd_len(dir: &Path, size: &str) -> u64 {
    let p = dir.join("probe.vhd");
    run("qemu-img", &["create", "-q", "-f", "vpc", s(&p), size]);
    let len = VhdImage::open(&p).unwrap().len();
    fs::remove_file(p).unwrap();
    len
}

#[test]
fn fixed_and_dynamic_match_qemu() {
    if !need("qemu-img", "fixed_and_dynamic_match_qemu") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let len = vhd_len(dir.path(), "24M");
    for sub in ["dynamic", "fixed"] {
        let img = dir.path().join(format!("{sub}.vhd"));
        create(&img, sub, "24M", &scattered(len, 0x41));
        let v = VhdImage::open(&img).unwrap();
        let ext = oracle::same_as_qemu(&v, &img, "vpc");
        let last = ext.last().unwrap();
        assert_eq!(last.kind, ExtentKind::Data, "{sub}: last sector");
        if sub == "dynamic" {
            assert!(
                ext.iter()
                    .any(|e| e.kind == ExtentKind::Zero && e.len >= 4 * MIB),
                "{sub}: holes reported: {ext:?}"
            );
        }
        // Detected by magic (a fixed VHD by its footer only), whatever the name.
        let renamed = dir.path().join(format!("{sub}.img"));
        fs::copy(&img, &renamed).unwrap();
        let i = Image::open(&renamed).unwrap();
        assert_eq!(i.format(), ImageFormat::Vhd);
        assert_eq!(i.len(), len);
        // Forced raw reads the container's bytes.
        let raw = Image::open_as(&renamed, Some(ImageFormat::Raw)).unwrap();
        assert_eq!(raw.len(), fs::metadata(&renamed).unwrap().len());
    }
}

/// Parse the start of a qemu dynamic VHD: (header offset, BAT offset, block size).
fn layout(b: &[u8]) -> (usize, usize, u64) {
    let h = be64(b, 16) as usize;
    (h, be64(b, h + 16) as usize, u64::from(be32(b, h + 32)))
}

/// Turn the dynamic VHD `child` into a differencing disk over `parent`: disk type 4 in
/// both footer copies, the parent's unique id and name, and `locators` (platform code,
/// UTF-16LE path) stored before the end footer; checksums recomputed.
fn make_differencing(child: &Path, parent: &Path, name: &str, locators: &[(&[u8; 4], &str)]) {
    let p = fs::read(parent).unwrap();
    let parent_id = p[p.len() - 512 + 68..p.len() - 512 + 84].to_vec();
    let mut b = fs::read(child).unwrap();
    let mut footer = b[b.len() - 512..].to_vec();
    b.truncate(b.len() - 512);
    footer[60..64].copy_from_slice(&4u32.to_be_bytes());
    set_checksum(&mut footer, 64);
    b[..512].copy_from_slice(&footer);
    let (h, _, _) = layout(&b);
    b[h + 40..h + 56].copy_from_slice(&parent_id);
    let units: Vec<u8> = name.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    b[h + 64..h + 576].fill(0);
    b[h + 64..h + 64 + units.len()].copy_from_slice(&units);
    b[h + 576..h + 768].fill(0);
    for (i, (code, path)) in locators.iter().enumerate() {
        let data: Vec<u8> = path.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let at = b.len() as u64;
        let e = h + 576 + 24 * i;
        b[e..e + 4].copy_from_slice(*code);
        b[e + 4..e + 8].copy_from_slice(&1u32.to_be_bytes());
        b[e + 8..e + 12].copy_from_slice(&(data.len() as u32).to_be_bytes());
        b[e + 16..e + 24].copy_from_slice(&at.to_be_bytes());
        b.extend(&data);
        b.resize(b.len().next_multiple_of(512), 0);
    }
    set_checksum(&mut b[h..h + 1024], 36);
    b.extend(&footer);
    fs::write(child, b).unwrap();
}

/// A parent and a child (dynamic, qemu-written) of the same size in `dir`, the child's
/// expected reading as a differencing disk, with `cleared` sectors of its first block's
/// bitmap cleared so that they show the parent.
fn parent_and_child(dir: &Path, len: u64) -> (PathBuf, PathBuf, Vec<u8>) {
    let parent = dir.join("parent.vhd");
    let child = dir.join("child.vhd");
    create(
        &parent,
        "dynamic",
        "24M",
        &[
            "write -P 0x50 0 8M".into(),
            format!("write -P 0x51 {} 4k", len - 4096),
        ],
    );
    create(&child, "dynamic", "24M", &scattered(len, 0x61));
    let parent_raw = oracle::qemu_raw(&parent, "vpc");
    let child_raw = oracle::qemu_raw(&child, "vpc");
    let mut want = parent_raw.clone();
    for (start, n, _zero, data) in oracle::qemu_map(&child, "vpc") {
        if data {
            let r = start as usize..(start + n) as usize;
            want[r.clone()].copy_from_slice(&child_raw[r]);
        }
    }
    // Clear the bitmap bits of sectors 8..16 of block 0: the parent shows there.
    let mut b = fs::read(&child).unwrap();
    let (_, bat, _) = layout(&b);
    let bitmap = be32(&b, bat) as usize * 512;
    b[bitmap + 1] = 0;
    fs::write(&child, b).unwrap();
    want[8 * 512..16 * 512].copy_from_slice(&parent_raw[8 * 512..16 * 512]);
    (parent, child, want)
}

#[test]
fn differencing_child_reads_through_to_its_parent() {
    if !need("qemu-img", "differencing_child_reads_through_to_its_parent") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let len = vhd_len(dir.path(), "24M");
    let (parent, child, want) = parent_and_child(dir.path(), len);
    make_differencing(
        &child,
        &parent,
        "parent.vhd",
        &[
            (b"W2ku", "C:\\images\\parent.vhd"),
            (b"W2ru", ".\\parent.vhd"),
        ],
    );
    let img = Image::open(&child).unwrap();
    assert_eq!(img.chain().len(), 2);
    assert_eq!(img.chain()[1].path(), dir.path().join("./parent.vhd"));
    let got = oracle::read_all(&img);
    assert!(got == want, "differencing read differs from parent + child");
    let ext = img.extents(0, len).unwrap();
    oracle::check_extents(&img, &ext, len);
    // Sectors only the parent holds are data; past the parent's data, holes.
    assert!(ext.iter().any(|e| e.kind == ExtentKind::Zero));
    // Without relative locators the parent is found by its name beside the child.
    let (parent, child, want) = parent_and_child(dir.path(), len);
    make_differencing(
        &child,
        &parent,
        "parent.vhd",
        &[(b"W2ku", "D:\\x\\parent.vhd")],
    );
    assert!(oracle::read_all(&Image::open(&child).unwrap()) == want);
}

#[test]
fn parent_locators_stay_beside_the_child() {
    if !need("qemu-img", "parent_locators_stay_beside_the_child") {
        return;
    }
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("child");
    fs::create_dir(&dir).unwrap();
    let len = vhd_len(top.path(), "24M");
    let (parent, child, want) = parent_and_child(&dir, len);
    // The parent moved up one directory: a relative "..\" locator is not followed.
    let moved = top.path().join("parent.vhd");
    fs::rename(&parent, &moved).unwrap();
    make_differencing(&child, &moved, "parent.vhd", &[(b"W2ru", "..\\parent.vhd")]);
    let e = VhdImage::open(&child).unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("not found") && msg.contains("..\\parent.vhd"),
        "{msg}"
    );
    // An absolute locator naming a file that exists is followed.
    let (_, child, _) = parent_and_child(&dir, len);
    make_differencing(&child, &moved, "parent.vhd", &[(b"W2ku", s(&moved))]);
    assert!(oracle::read_all(&VhdImage::open(&child).unwrap()) == want);
    // A parent whose unique id differs is refused.
    let (_, child, _) = parent_and_child(&dir, len);
    make_differencing(&child, &moved, "parent.vhd", &[(b"W2ru", ".\\parent.vhd")]);
    let msg = VhdImage::open(&child).unwrap_err().to_string();
    assert!(
        msg.contains("unique id") && msg.contains("child/./parent.vhd"),
        "{msg}"
    );
}

#[test]
fn parent_loop_is_refused() {
    if !need("qemu-img", "parent_loop_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.vhd"), dir.path().join("b.vhd"));
    create(&a, "dynamic", "4M", &[]);
    create(&b, "dynamic", "4M", &[]);
    make_differencing(&a, &b, "b.vhd", &[(b"W2ru", ".\\b.vhd")]);
    make_differencing(&b, &a, "a.vhd", &[(b"W2ru", ".\\a.vhd")]);
    // Each names the other's id as it was before the other changed: fix a's parent id.
    make_differencing(&a, &b, "b.vhd", &[(b"W2ru", ".\\b.vhd")]);
    let msg = Image::open(&a).unwrap_err().to_string();
    assert!(msg.contains("loop"), "{msg}");
}

/// Open and read everything; the first error wins.
fn read_through(path: &Path) -> subroot_formats::Result<()> {
    oracle::walk(&VhdImage::open(path)?)
}

fn expect_err(path: &Path, phrases: &[&str]) {
    let e = read_through(path).expect_err("damaged image read without error");
    let msg = e.to_string();
    for p in phrases {
        assert!(msg.contains(p), "error {msg:?} lacks {p:?}");
    }
    assert!(
        msg.contains(s(path)),
        "error {msg:?} does not name the file"
    );
}

#[test]
fn damaged_images_give_clear_errors() {
    if !need("qemu-img", "damaged_images_give_clear_errors") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let len = vhd_len(dir.path(), "8M");
    let good = dir.path().join("good.vhd");
    create(&good, "dynamic", "8M", &scattered(len, 0x21));
    let fixed = dir.path().join("fixed.vhd");
    create(&fixed, "fixed", "8M", &scattered(len, 0x21));
    read_through(&good).unwrap();
    read_through(&fixed).unwrap();
    let orig = fs::read(&good).unwrap();
    let (h, bat, _) = layout(&orig);
    let damaged = |name: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let p = dir.path().join(name);
        let mut b = orig.clone();
        f(&mut b);
        fs::write(&p, b).unwrap();
        p
    };
    // Truncated: the end footer is gone; the copy at the start is used, blocks are cut.
    let p = damaged("cut.vhd", &|b| b.truncate(b.len() / 2));
    expect_err(&p, &["beyond the end of the file"]);
    // Both footers with a bad checksum.
    let p = damaged("sum.vhd", &|b| {
        let n = b.len();
        b[n - 512 + 48] ^= 1;
        b[48] ^= 1;
    });
    expect_err(&p, &["footer checksum"]);
    // The dynamic header's checksum.
    let p = damaged("hsum.vhd", &|b| b[h + 32] ^= 0x10);
    expect_err(&p, &["dynamic header checksum"]);
    // A BAT entry past the end of the file.
    let p = damaged("bat.vhd", &|b| {
        b[bat..bat + 4].copy_from_slice(&0x0100_0000u32.to_be_bytes())
    });
    expect_err(&p, &["BAT entry 0", "beyond the end of the file"]);
    // A BAT claimed larger than the file (checksum kept valid).
    let p = damaged("entries.vhd", &|b| {
        b[h + 28..h + 32].copy_from_slice(&u32::MAX.to_be_bytes());
        set_checksum(&mut b[h..h + 1024], 36);
    });
    expect_err(&p, &["allocation table", "beyond the end of the file"]);
    // A fixed disk cut short.
    let f = fs::read(&fixed).unwrap();
    let p = dir.path().join("fixedcut.vhd");
    let mut cut = f[..f.len() / 2].to_vec();
    cut.extend(&f[f.len() - 512..]);
    fs::write(&p, cut).unwrap();
    expect_err(&p, &["truncated fixed VHD"]);
}

#[test]
fn random_damage_never_panics() {
    if !need("qemu-img", "random_damage_never_panics") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.vhd");
    create(&good, "dynamic", "8M", &["write -P 7 1M 1M".into()]);
    let orig = fs::read(&good).unwrap();
    let (h, bat, _) = layout(&orig);
    let p = dir.path().join("m.vhd");
    for round in 0..400 {
        let r = noise(64, round);
        let mut k = 0;
        let mut rnd = |n: usize| {
            k += 4;
            u32::from_le_bytes(r[k - 4..k].try_into().unwrap()) as usize % n
        };
        let mut b = orig.clone();
        for _ in 0..1 + rnd(4) {
            // Footer copies, dynamic header, BAT, a bitmap.
            let region = [(0, 512), (h, 1024), (bat, 64), (b.len() - 512, 512)][rnd(4)];
            let at = region.0 + rnd(region.1);
            b[at] = rnd(256) as u8;
        }
        if round % 2 == 0 {
            let n = b.len();
            set_checksum(&mut b[h..h + 1024], 36);
            set_checksum(&mut b[n - 512..], 64);
            set_checksum(&mut b[..512], 64);
        }
        fs::write(&p, &b).unwrap();
        if let Err(e) = read_through(&p) {
            assert!(!e.to_string().is_empty());
        }
    }
}
