//! The VHDX reader judged by qemu: dynamic and fixed images made with `qemu-img create -f
//! vhdx` and filled by `qemu-io` are read through `VhdxImage` and compared byte for byte
//! with `qemu-img convert -O raw`, extents against `qemu-img map`. qemu cannot make a
//! differencing VHDX, so children are qemu-made dynamic images given the has-parent flag,
//! a parent locator and a partially present block with its sector bitmap here; they must
//! read as the parent's bytes overlaid with the child's present sectors. A log left by a
//! crash (crafted here: qemu replays it when it opens the image read-write, the oracle)
//! is replayed in memory. Damaged images give clear errors, never panics.
mod common;

use common::{need, noise, oracle, run, s};
use std::fs;
use std::path::{Path, PathBuf};
use subroot_formats::block::{BlockDevice, ExtentKind};
use subroot_formats::image::{Image, ImageFormat};
use subroot_formats::vhdx::VhdxImage;
use subroot_formats::Error;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const SIZE: &str = "24M";
const LEN: u64 = 24 << 20;
/// VHDX GUIDs as stored (first three fields little-endian).
const METADATA_REGION: [u8; 16] = [
    0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e,
];
const BAT_REGION: [u8; 16] = [
    0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42, 0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08,
];
const FILE_PARAMETERS: [u8; 16] = [
    0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d, 0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b,
];
const PARENT_LOCATOR: [u8; 16] = [
    0x2d, 0x5f, 0xd3, 0xa8, 0x0b, 0xb3, 0x4d, 0x45, 0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c,
];
const LOCATOR_TYPE: [u8; 16] = [
    0xb7, 0xef, 0x4a, 0xb0, 0x9e, 0xd1, 0x81, 0x4a, 0xb7, 0x89, 0x25, 0xb8, 0xe9, 0x44, 0x59, 0x13,
];

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// A qemu-made VHDX (1 MiB blocks) of `subformat` at `path`, written by `qemu-io`.
fn create(path: &Path, subformat: &str, writes: &[String]) {
    let opt = format!("subformat={subformat},block_size=1M");
    run(
        "qemu-img",
        &["create", "-q", "-f", "vhdx", "-o", &opt, s(path), SIZE],
    );
    oracle::qemu_io(path, "vhdx", writes);
}

fn scattered(seed: u8) -> Vec<String> {
    vec![
        format!("write -P {} 0 64k", seed),
        format!("write -P {} 5M 1M", seed + 1),
        format!("write -P {} 3999k 2k", seed + 2),
        format!("write -P {} {} 512", seed + 3, LEN - 512),
    ]
}

#[test]
fn fixed_and_dynamic_match_qemu() {
    if !need("qemu-img", "fixed_and_dynamic_match_qemu") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for sub in ["dynamic", "fixed"] {
        let img = dir.path().join(format!("{sub}.vhdx"));
        create(&img, sub, &scattered(0x41));
        let v = VhdxImage::open(&img).unwrap();
        let ext = oracle::same_bytes_as_qemu(&v, &img, "vhdx");
        // qemu-img map says "data" everywhere for VHDX: the BAT is the judge.
        let b = fs::read(&img).unwrap();
        let (bat, _) = region(&b, &BAT_REGION);
        for e in &ext {
            for block in e.offset >> 20..e.end().div_ceil(1 << 20) {
                let state = le64(&b, bat + 8 * block as usize) & 7;
                let want = if state == 6 {
                    ExtentKind::Data
                } else {
                    ExtentKind::Zero
                };
                assert_eq!(
                    e.kind, want,
                    "{sub}: block {block} (state {state}) in {e:?}"
                );
            }
        }
        if sub == "dynamic" {
            assert!(
                ext.iter()
                    .any(|e| e.kind == ExtentKind::Zero && e.len >= 4 << 20),
                "{sub}: holes reported: {ext:?}"
            );
        }
        assert_eq!(
            ext.last().unwrap().kind,
            ExtentKind::Data,
            "{sub}: last sector"
        );
        let renamed = dir.path().join(format!("{sub}.raw"));
        fs::copy(&img, &renamed).unwrap();
        let i = Image::open(&renamed).unwrap();
        assert_eq!(i.format(), ImageFormat::Vhdx);
        assert_eq!(i.len(), LEN);
    }
    // A larger block size, unwritten blocks "not present" rather than "zero".
    let img = dir.path().join("8m.vhdx");
    let opts = "block_size=8M,block_state_zero=off";
    run(
        "qemu-img",
        &["create", "-q", "-f", "vhdx", "-o", opts, s(&img), "40M"],
    );
    run(
        "qemu-io",
        &["-f", "vhdx", "-c", "write -P 9 17M 12k", s(&img)],
    );
    oracle::same_bytes_as_qemu(&VhdxImage::open(&img).unwrap(), &img, "vhdx");
}

/// (file offset, length) of the region with `guid`.
fn region(b: &[u8], guid: &[u8; 16]) -> (usize, usize) {
    let t = 192 * KIB;
    let n = le32(b, t + 8) as usize;
    (0..n)
        .map(|i| t + 16 + 32 * i)
        .find(|&e| b[e..e + 16] == *guid)
        .map(|e| (le64(b, e + 16) as usize, le32(b, e + 24) as usize))
        .expect("region")
}

/// The current header (higher sequence number).
fn header(b: &[u8]) -> usize {
    let (h1, h2) = (64 * KIB, 128 * KIB);
    if le64(b, h2 + 8) > le64(b, h1 + 8) {
        h2
    } else {
        h1
    }
}

fn guid_text(b: &[u8]) -> String {
    let hex = |r: &[u8]| r.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let rev = |r: &[u8]| hex(&r.iter().rev().copied().collect::<Vec<u8>>());
    format!(
        "{{{}-{}-{}-{}-{}}}",
        rev(&b[0..4]),
        rev(&b[4..6]),
        rev(&b[6..8]),
        hex(&b[8..10]),
        hex(&b[10..16])
    )
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// Turn the dynamic VHDX `child` into a differencing disk over `parent`: the has-parent
/// flag, a parent locator with `entries` (parent_linkage added from the parent's
/// DataWriteGuid unless given), and block 0 partially present with sectors 8..16 absent.
fn make_differencing(child: &Path, parent: &Path, entries: &[(&str, &str)]) {
    let p = fs::read(parent).unwrap();
    let ph = header(&p);
    let linkage = guid_text(&p[ph + 32..ph + 48]);
    let mut b = fs::read(child).unwrap();
    let (meta, _) = region(&b, &METADATA_REGION);
    let count = usize::from(u16::from_le_bytes([b[meta + 10], b[meta + 11]]));
    let entry = |i: usize| meta + 32 + 32 * i;
    let params = (0..count)
        .find(|&i| b[entry(i)..entry(i) + 16] == FILE_PARAMETERS)
        .map(|i| meta + le32(&b, entry(i) + 16) as usize)
        .unwrap();
    b[params + 4] |= 2;
    let mut kv: Vec<(String, String)> = entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if !kv.iter().any(|(k, _)| k == "parent_linkage") {
        kv.insert(0, ("parent_linkage".into(), linkage));
    }
    let mut item = LOCATOR_TYPE.to_vec();
    item.extend([0, 0]);
    item.extend((kv.len() as u16).to_le_bytes());
    let mut data: Vec<u8> = Vec::new();
    let base = item.len() + 12 * kv.len();
    for (k, v) in &kv {
        let (k, v) = (utf16(k), utf16(v));
        let ko = base + data.len();
        data.extend(&k);
        let vo = base + data.len();
        data.extend(&v);
        item.extend((ko as u32).to_le_bytes());
        item.extend((vo as u32).to_le_bytes());
        item.extend((k.len() as u16).to_le_bytes());
        item.extend((v.len() as u16).to_le_bytes());
    }
    item.extend(data);
    let at = 512 * KIB;
    b[meta + at..meta + at + item.len()].copy_from_slice(&item);
    let e = entry(count);
    b[e..e + 16].copy_from_slice(&PARENT_LOCATOR);
    b[e + 16..e + 20].copy_from_slice(&(at as u32).to_le_bytes());
    b[e + 20..e + 24].copy_from_slice(&(item.len() as u32).to_le_bytes());
    b[e + 24..e + 28].copy_from_slice(&4u32.to_le_bytes());
    b[meta + 10..meta + 12].copy_from_slice(&((count + 1) as u16).to_le_bytes());
    // Block 0 partially present; its chunk's sector bitmap in a new MiB at the end.
    let (bat, _) = region(&b, &BAT_REGION);
    // Blocks qemu marked zero become "not present", as in a Hyper-V child: the parent
    // shows through.
    for i in 0..LEN as usize >> 20 {
        if le64(&b, bat + 8 * i) & 7 == 2 {
            b[bat + 8 * i..bat + 8 * i + 8].fill(0);
        }
    }
    b.resize(b.len().next_multiple_of(MIB), 0);
    let bitmap = b.len();
    b.resize(bitmap + MIB, 0);
    b[bitmap..bitmap + 256].fill(0xff);
    b[bitmap + 1] = 0;
    let e0 = le64(&b, bat);
    assert_eq!(e0 & 7, 6, "block 0 of the child is fully present");
    b[bat..bat + 8].copy_from_slice(&(e0 | 7).to_le_bytes());
    let sb = bat + 8 * 4096;
    b[sb..sb + 8].copy_from_slice(&(bitmap as u64 | 6).to_le_bytes());
    fs::write(child, b).unwrap();
}

/// A parent and a dynamic child in `dir`, and what the child must read once made
/// differencing by [`make_differencing`].
fn parent_and_child(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let parent = dir.join("parent.vhdx");
    let child = dir.join("child.vhdx");
    create(
        &parent,
        "dynamic",
        &[
            "write -P 0x50 0 8M".into(),
            format!("write -P 0x51 {} 4k", LEN - 4096),
        ],
    );
    create(&child, "dynamic", &scattered(0x61));
    let parent_raw = oracle::qemu_raw(&parent, "vhdx");
    let child_raw = oracle::qemu_raw(&child, "vhdx");
    let mut want = parent_raw.clone();
    let b = fs::read(&child).unwrap();
    let (bat, _) = region(&b, &BAT_REGION);
    for i in 0..LEN as usize >> 20 {
        if le64(&b, bat + 8 * i) & 7 == 6 {
            want[i << 20..(i + 1) << 20].copy_from_slice(&child_raw[i << 20..(i + 1) << 20]);
        }
    }
    want[8 * 512..16 * 512].copy_from_slice(&parent_raw[8 * 512..16 * 512]);
    (parent, child, want)
}

#[test]
fn differencing_child_reads_through_to_its_parent() {
    if !need("qemu-img", "differencing_child_reads_through_to_its_parent") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (parent, child, want) = parent_and_child(dir.path());
    make_differencing(
        &child,
        &parent,
        &[
            ("relative_path", ".\\parent.vhdx"),
            ("absolute_win32_path", "\\\\?\\C:\\vms\\parent.vhdx"),
        ],
    );
    let img = Image::open(&child).unwrap();
    assert_eq!(img.chain().len(), 2);
    assert!(oracle::read_all(&img) == want, "differencing read differs");
    let ext = img.extents(0, LEN).unwrap();
    oracle::check_extents(&img, &ext, LEN);
    assert!(ext.iter().any(|e| e.kind == ExtentKind::Zero));
    // Only an absolute Windows path: the file name is looked for beside the child.
    let (parent, child, want) = parent_and_child(dir.path());
    make_differencing(
        &child,
        &parent,
        &[("absolute_win32_path", "C:\\vms\\parent.vhdx")],
    );
    assert!(oracle::read_all(&Image::open(&child).unwrap()) == want);
}

#[test]
fn parent_outside_missing_or_changed_is_refused() {
    if !need("qemu-img", "parent_outside_missing_or_changed_is_refused") {
        return;
    }
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("c");
    fs::create_dir(&dir).unwrap();
    let (parent, child, _) = parent_and_child(&dir);
    let moved = top.path().join("parent.vhdx");
    fs::rename(&parent, &moved).unwrap();
    make_differencing(&child, &moved, &[("relative_path", "..\\parent.vhdx")]);
    let e = VhdxImage::open(&child).unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    assert!(e.to_string().contains("..\\parent.vhdx"), "{e}");
    fs::rename(&moved, &parent).unwrap();
    let (_, child, _) = parent_and_child(&dir);
    make_differencing(
        &child,
        &parent,
        &[
            ("parent_linkage", "{00000000-1111-2222-3333-444444444444}"),
            ("relative_path", "parent.vhdx"),
        ],
    );
    let msg = VhdxImage::open(&child).unwrap_err().to_string();
    assert!(
        msg.contains("DataWriteGuid") && msg.contains(s(&child)),
        "{msg}"
    );
}

#[test]
fn parent_loop_is_refused() {
    if !need("qemu-img", "parent_loop_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.vhdx"), dir.path().join("b.vhdx"));
    create(&a, "dynamic", &["write 0 4k".into()]);
    create(&b, "dynamic", &["write 0 4k".into()]);
    make_differencing(&a, &b, &[("relative_path", "b.vhdx")]);
    make_differencing(&b, &a, &[("relative_path", "a.vhdx")]);
    let msg = Image::open(&a).unwrap_err().to_string();
    assert!(msg.contains("loop"), "{msg}");
}

/// Set the CRC-32C of the 4 KiB header or 64 KiB region table at `at`.
fn set_crc(b: &mut [u8], at: usize, len: usize) {
    b[at + 4..at + 8].fill(0);
    let c = crc32c::crc32c(&b[at..at + len]);
    b[at + 4..at + 8].copy_from_slice(&c.to_le_bytes());
}

/// Open and read everything; the first error wins.
fn read_through(path: &Path) -> subroot_formats::Result<()> {
    oracle::walk(&VhdxImage::open(path)?)
}

#[test]
fn damaged_images_give_clear_errors() {
    if !need("qemu-img", "damaged_images_give_clear_errors") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.vhdx");
    create(&good, "dynamic", &scattered(0x21));
    read_through(&good).unwrap();
    let orig = fs::read(&good).unwrap();
    let damaged = |name: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let p = dir.path().join(name);
        let mut b = orig.clone();
        f(&mut b);
        fs::write(&p, b).unwrap();
        p
    };
    let expect = |p: &Path, phrases: &[&str]| {
        let msg = read_through(p).expect_err("damaged image read").to_string();
        for w in phrases.iter().chain([&s(p)]) {
            assert!(msg.contains(w), "error {msg:?} lacks {w:?}");
        }
    };
    let p = damaged("heads.vhdx", &|b| {
        b[64 * KIB + 100] ^= 1;
        b[128 * KIB + 100] ^= 1;
    });
    expect(&p, &["neither VHDX header", "CRC-32C"]);
    let p = damaged("regions.vhdx", &|b| {
        b[192 * KIB + 100] ^= 1;
        b[256 * KIB + 100] ^= 1;
    });
    expect(&p, &["region table", "CRC-32C"]);
    let (bat, _) = region(&orig, &BAT_REGION);
    let p = damaged("bat.vhdx", &|b| {
        b[bat..bat + 8].copy_from_slice(&((4096u64 << 20) | 6).to_le_bytes())
    });
    expect(&p, &["BAT entry 0", "outside the file"]);
    let p = damaged("state.vhdx", &|b| b[bat] = 7);
    expect(&p, &["state 7"]);
    let p = damaged("cut.vhdx", &|b| b.truncate(b.len() - 2 * MIB));
    expect(&p, &["outside the file"]);
    let p = damaged("tiny.vhdx", &|b| b.truncate(100 * KIB));
    expect(&p, &["truncated VHDX"]);
    let (meta, _) = region(&orig, &METADATA_REGION);
    let p = damaged("meta.vhdx", &|b| b[meta] = b'M');
    expect(&p, &["metadata"]);
}

#[test]
fn random_damage_never_panics() {
    if !need("qemu-img", "random_damage_never_panics") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.vhdx");
    create(&good, "dynamic", &["write -P 7 1M 1M".into()]);
    let orig = fs::read(&good).unwrap();
    let (bat, _) = region(&orig, &BAT_REGION);
    let (meta, _) = region(&orig, &METADATA_REGION);
    let h = header(&orig);
    let p = dir.path().join("m.vhdx");
    for round in 0..300 {
        let r = noise(64, round);
        let mut k = 0;
        let mut rnd = |n: usize| {
            k += 4;
            u32::from_le_bytes(r[k - 4..k].try_into().unwrap()) as usize % n
        };
        let mut b = orig.clone();
        for _ in 0..1 + rnd(4) {
            let (start, len) = [(h, 128), (192 * KIB, 128), (meta, 4 * KIB), (bat, 256)][rnd(4)];
            b[start + rnd(len)] = rnd(256) as u8;
        }
        set_crc(&mut b, h, 4 * KIB);
        set_crc(&mut b, 192 * KIB, 64 * KIB);
        fs::write(&p, &b).unwrap();
        if let Err(e) = read_through(&p) {
            assert!(!e.to_string().is_empty());
        }
    }
}

/// A log entry (sequence `seq`, log `guid`) writing `page` at file offset `at` and zeros
/// over `zero`: header, two descriptors, one data sector; CRC-32C set.
fn log_entry(
    seq: u64,
    guid: &[u8; 16],
    at: u64,
    page: &[u8],
    zero: (u64, u64),
    file_len: u64,
) -> Vec<u8> {
    let mut e = vec![0u8; 8192];
    e[..4].copy_from_slice(b"loge");
    e[8..12].copy_from_slice(&8192u32.to_le_bytes());
    e[16..24].copy_from_slice(&seq.to_le_bytes());
    e[24..28].copy_from_slice(&2u32.to_le_bytes());
    e[32..48].copy_from_slice(guid);
    e[48..56].copy_from_slice(&file_len.to_le_bytes());
    e[56..64].copy_from_slice(&file_len.to_le_bytes());
    let d = &mut e[64..96];
    d[..4].copy_from_slice(b"desc");
    d[4..8].copy_from_slice(&page[4092..]);
    d[8..16].copy_from_slice(&page[..8]);
    d[16..24].copy_from_slice(&at.to_le_bytes());
    d[24..32].copy_from_slice(&seq.to_le_bytes());
    let z = &mut e[96..128];
    z[..4].copy_from_slice(b"zero");
    z[8..16].copy_from_slice(&zero.1.to_le_bytes());
    z[16..24].copy_from_slice(&zero.0.to_le_bytes());
    z[24..32].copy_from_slice(&seq.to_le_bytes());
    let s = &mut e[4096..];
    s[..4].copy_from_slice(b"data");
    s[4..8].copy_from_slice(&((seq >> 32) as u32).to_le_bytes());
    s[8..4092].copy_from_slice(&page[8..4092]);
    s[4092..].copy_from_slice(&(seq as u32).to_le_bytes());
    let c = crc32c::crc32c(&e);
    e[4..8].copy_from_slice(&c.to_le_bytes());
    e
}

/// An image "crashed" after logging a BAT update (block 1 allocated) and a zeroing, before
/// either reached its place: we replay the log in memory and read what qemu reads once it
/// has replayed the log itself (opening the image read-write); the file is not changed.
#[test]
fn pending_log_is_replayed_in_memory_as_qemu_does() {
    if !need("qemu-img", "pending_log_is_replayed_in_memory_as_qemu_does") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("crashed.vhdx");
    create(
        &img,
        "dynamic",
        &["write -P 0x77 1M 16k".into(), "write -P 0x33 6M 4k".into()],
    );
    let mut b = fs::read(&img).unwrap();
    let (bat, _) = region(&b, &BAT_REGION);
    let page = b[bat..bat + 4096].to_vec();
    let host = (le64(&b, bat + 8) >> 20 << 20) as usize;
    assert_ne!(host, 0, "block 1 is allocated");
    // The crash: block 1's BAT entry never reached the file; the log holds it.
    b[bat + 8..bat + 16].fill(0);
    let h = header(&b);
    let (log_len, log_off) = (le32(&b, h + 68) as usize, le64(&b, h + 72) as usize);
    assert!(log_len >= 8192);
    let guid = [0x5au8; 16];
    let e = log_entry(
        7,
        &guid,
        bat as u64,
        &page,
        (host as u64 + 4096, 4096),
        b.len() as u64,
    );
    b[log_off..log_off + e.len()].copy_from_slice(&e);
    b[h + 48..h + 64].copy_from_slice(&guid);
    set_crc(&mut b, h, 4 * KIB);
    fs::write(&img, &b).unwrap();

    let v = VhdxImage::open(&img).unwrap();
    assert!(v.log_replayed());
    let ours = oracle::read_all(&v);
    assert!(
        ours[1 << 20..(1 << 20) + 4096].iter().all(|&x| x == 0x77),
        "BAT update replayed"
    );
    assert!(
        ours[(1 << 20) + 4096..(1 << 20) + 8192]
            .iter()
            .all(|&x| x == 0),
        "zeroing replayed"
    );
    assert_eq!(fs::read(&img).unwrap(), b, "the input is not written");
    // qemu refuses the image read-only, and replays the log when it may write.
    let copy = dir.path().join("qemu.vhdx");
    fs::copy(&img, &copy).unwrap();
    run("qemu-io", &["-f", "vhdx", "-c", "read 0 512", s(&copy)]);
    let theirs = oracle::qemu_raw(&copy, "vhdx");
    assert!(ours == theirs, "our replay differs from qemu's");
    oracle::walk(&v).unwrap();
    // A log entry with a bad checksum is no entry: the header's demand cannot be met.
    b[log_off + 4096 + 100] ^= 1;
    fs::write(&img, &b).unwrap();
    let e = VhdxImage::open(&img).unwrap_err().to_string();
    assert!(
        e.contains("log holds no valid entry") && e.contains(s(&img)),
        "{e}"
    );
}

/// Write `raw` as a VHDX with our writer, as the CLI does (an empty file, then synced).
fn write_ours(raw: &Path, out: &Path) -> subroot_formats::sparse_copy::WriteStats {
    let src = subroot_formats::block::RawFile::open(raw).unwrap();
    let f = fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(out)
        .unwrap();
    subroot_formats::vhdx::write_vhdx_dynamic(&src, &f, &|_| {}).unwrap()
}

/// Our dynamic VHDX as qemu judges it: `info` (format, virtual size), `check` clean,
/// `compare` equal to the source; read back by our own reader; all-zero blocks left out
/// (the file holds the structures and the data blocks only), zero runs inside a block left
/// as holes; sizes from one sector to a size that is no multiple of the block, with data at
/// both ends and across a sector bitmap boundary of the BAT (4096 blocks).
#[test]
fn written_vhdx_is_what_qemu_reads() {
    if !need("qemu-img", "written_vhdx_is_what_qemu_reads") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // (size, data written at these offsets)
    let cases: [(u64, &[u64]); 4] = [
        (512, &[0]),
        (1000, &[0, 996]),
        (
            (5 << 30) + 3 * 512,
            &[0, (3 << 20) + 7, 4096 << 20, (5 << 30) - 4096],
        ),
        ((9 << 20) + 512, &[(1 << 20) - 2, (9 << 20) + 508]),
    ];
    for (n, (size, at)) in cases.into_iter().enumerate() {
        let raw = dir.path().join(format!("{n}.raw"));
        let f = fs::File::create(&raw).unwrap();
        f.set_len(size).unwrap();
        for (i, &o) in at.iter().enumerate() {
            let len = 4.min(size - o) as usize;
            let pat = noise(len, i as u64 + 1);
            std::os::unix::fs::FileExt::write_all_at(&f, &pat, o).unwrap();
        }
        drop(f);
        let out = dir.path().join(format!("{n}.vhdx"));
        let stats = write_ours(&raw, &out);
        let want = size.next_multiple_of(512);
        assert_eq!(stats.virtual_size, want);
        let info =
            String::from_utf8(run("qemu-img", &["info", "--output=json", s(&out)]).stdout).unwrap();
        assert!(info.contains("\"format\": \"vhdx\""), "{info}");
        assert!(
            info.contains(&format!("\"virtual-size\": {want}")),
            "{size}: {info}"
        );
        let check = run("qemu-img", &["check", "-f", "vhdx", s(&out)]);
        assert!(check.status.success(), "{size}: {check:?}");
        let cmp = run(
            "qemu-img",
            &["compare", "-f", "raw", "-F", "vhdx", s(&raw), s(&out)],
        );
        assert!(cmp.status.success(), "{size}: {cmp:?}");
        // Our reader, byte for byte.
        let ours = VhdxImage::open(&out).unwrap();
        assert_eq!(ours.len(), want);
        let mut back = [0u8; 8];
        for &o in at {
            let len = 4.min(size - o) as usize;
            ours.read_at(&mut back[..len], o).unwrap();
            let mut direct = vec![0u8; len];
            std::os::unix::fs::FileExt::read_exact_at(
                &fs::File::open(&raw).unwrap(),
                &mut direct,
                o,
            )
            .unwrap();
            assert_eq!(back[..len], direct[..], "{size} at {o}");
        }
        // Sparse: the data blocks (one per distinct MiB written) after 3 MiB of structures
        // and the BAT; inside them only the written 4 KiB pages are allocated.
        let mut blocks: Vec<u64> = at.iter().flat_map(|&o| [o >> 20, (o + 3) >> 20]).collect();
        blocks.retain(|&b| b << 20 < size);
        blocks.dedup();
        let bat_len = ((size.div_ceil(1 << 20) + size.div_ceil(1 << 20) / 4096) * 8)
            .next_multiple_of(1 << 20);
        let md = fs::metadata(&out).unwrap();
        assert_eq!(
            md.len(),
            (3 << 20) + bat_len + (blocks.len() as u64) * (1 << 20)
        );
        let used = std::os::unix::fs::MetadataExt::blocks(&md) * 512;
        assert!(used < 1 << 20, "{size}: {used} bytes allocated");
        let ext = ours.extents(0, want).unwrap();
        let data: u64 = ext
            .iter()
            .filter(|e| e.kind == ExtentKind::Data)
            .map(|e| e.len)
            .sum();
        let present: u64 = blocks.iter().map(|b| (want - (b << 20)).min(1 << 20)).sum();
        assert_eq!(data, present, "{size}");
    }
    // Nothing to write: an empty disk is refused.
    let empty = dir.path().join("empty.raw");
    fs::File::create(&empty).unwrap();
    let src = subroot_formats::block::RawFile::open(&empty).unwrap();
    let f = fs::File::create(dir.path().join("empty.vhdx")).unwrap();
    let err = subroot_formats::vhdx::write_vhdx_dynamic(&src, &f, &|_| {}).unwrap_err();
    assert!(err.to_string().contains("512 bytes to 64 TiB"), "{err}");
}
