//! The VMDK reader judged by qemu: images of every subformat `qemu-img` makes (and an ESXi
//! style `-flat.vmdk` with its descriptor), filled by `qemu-io` at scattered offsets, read
//! through `Image` and compared byte for byte with `qemu-img convert -O raw`, extents with
//! `qemu-img map`; parents followed; damaged images and descriptors give clear errors.
mod common;

use common::oracle::{open_err, qemu_io, random_damage_never_panics, same_as_qemu};
use common::{need, run, run_stdout, s};
use std::fs;
use std::path::{Path, PathBuf};
use subroot_formats::block::{BlockDevice, ExtentKind};
use subroot_formats::image::{Image, ImageFormat};

/// A little over 2 GiB, so that the twoGbMaxExtent subformats have two extents.
const BIG: u64 = 2112 << 20;
/// The size of the other images.
const SMALL: u64 = 64 << 20;

/// `qemu-io` writes for a disk of `size` bytes: data at the start, unaligned runs, a run
/// across the middle (the 2 GiB extent boundary of a big one), and the last sector.
fn writes(size: u64) -> Vec<String> {
    let mib = size >> 20;
    let middle = if size == BIG { 2047 } else { mib / 2 - 1 };
    vec![
        "write -P 0x11 0 64k".into(),
        "write -P 0x22 1M 300k".into(),
        "write -P 0x33 5000 1000".into(),
        format!("write -P 0x44 {middle}M 2M"),
        format!("write -P 0x55 {}M 1M", mib - 1),
        format!("write -P 0x56 {} 512", size - 512),
    ]
}

fn fill(img: &Path, size: u64) {
    let w = writes(size);
    qemu_io(
        img,
        "vmdk",
        &w.iter().map(String::as_str).collect::<Vec<_>>(),
    );
}

fn skip(test: &str) -> bool {
    !need("qemu-img", test) || !need("qemu-io", test)
}

fn create(dir: &Path, name: &str, subformat: &str, size: u64) -> PathBuf {
    let img = dir.join(name);
    let opts = format!("subformat={subformat}");
    let size = size.to_string();
    run(
        "qemu-img",
        &["create", "-q", "-f", "vmdk", "-o", &opts, s(&img), &size],
    );
    img
}

fn open(img: &Path) -> Image {
    let i = Image::open(img).unwrap_or_else(|e| panic!("opening {}: {e}", img.display()));
    assert_eq!(i.format(), ImageFormat::Vmdk, "{}", img.display());
    i
}

fn read_err(img: &Path) -> String {
    let i = open(img);
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    while pos < i.len() {
        let n = (i.len() - pos).min(1 << 20) as usize;
        if let Err(e) = i.read_at(&mut buf[..n], pos) {
            return e.to_string();
        }
        pos += n as u64;
    }
    panic!("{} read without error", img.display());
}

#[test]
fn every_subformat_reads_as_qemu_reads_it() {
    if skip("every_subformat_reads_as_qemu_reads_it") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    for (sf, size) in [
        ("monolithicSparse", SMALL),
        ("monolithicFlat", SMALL),
        ("twoGbMaxExtentSparse", BIG),
        ("twoGbMaxExtentFlat", BIG),
    ] {
        let img = create(d.path(), &format!("{sf}.vmdk"), sf, size);
        fill(&img, size);
        let i = open(&img);
        assert_eq!(i.len(), size, "{sf}");
        let ext = same_as_qemu(&i, &img, "vmdk");
        let data: u64 = ext
            .iter()
            .filter(|e| e.kind == ExtentKind::Data)
            .map(|e| e.len)
            .sum();
        // The holes are reported: only the written grains (or flat-file blocks) are data.
        assert!(data < 64 << 20, "{sf}: {data} bytes of data");
    }
}

#[test]
fn stream_optimized_from_a_filled_raw() {
    if skip("stream_optimized_from_a_filled_raw") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let raw = d.path().join("src.raw");
    fs::File::create(&raw).unwrap().set_len(SMALL).unwrap();
    let w = writes(SMALL);
    let mut args = vec!["-f", "raw"];
    for w in &w {
        args.extend(["-c", w]);
    }
    args.push(s(&raw));
    run("qemu-io", &args);
    let img = d.path().join("stream.vmdk");
    let opts = "subformat=streamOptimized";
    run(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            opts,
            s(&raw),
            s(&img),
        ],
    );
    let i = open(&img);
    same_as_qemu(&i, &img, "vmdk");
    // As VMware writes it: the grain directory's offset only in the footer.
    let vmware = with_footer(&img);
    assert!(check_same(&img, &vmware));
    run("qemu-img", &["compare", "-q", s(&raw), s(&vmware)]);
}

/// A copy of a qemu-made streamOptimized image laid out as VMware writes one: the header
/// says "grain directory at the end" (gdOffset all ones), and the file ends with a footer
/// marker, a copy of the header holding the real offset, and an end-of-stream marker.
fn with_footer(img: &Path) -> PathBuf {
    let mut b = fs::read(img).unwrap();
    let header = b[..512].to_vec();
    b[56..64].copy_from_slice(&u64::MAX.to_le_bytes());
    b.truncate(b.len().div_ceil(512) * 512);
    let mut marker = [0u8; 512];
    marker[..8].copy_from_slice(&1u64.to_le_bytes());
    marker[12..16].copy_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&marker);
    b.extend_from_slice(&header);
    b.extend_from_slice(&[0u8; 512]);
    let out = img.with_extension("vmware.vmdk");
    fs::write(&out, b).unwrap();
    out
}

#[test]
fn esxi_flat_with_descriptor() {
    if skip("esxi_flat_with_descriptor") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let flat = create(d.path(), "made.vmdk", "monolithicFlat", SMALL);
    fill(&flat, SMALL);
    fs::rename(
        d.path().join("made-flat.vmdk"),
        d.path().join("vm-flat.vmdk"),
    )
    .unwrap();
    let desc = d.path().join("vm.vmdk");
    let sectors = SMALL / 512;
    fs::write(
        &desc,
        format!(
            "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=fffffffe\n\
             parentCID=ffffffff\ncreateType=\"vmfs\"\n\n# Extent description\n\
             RW {sectors} VMFS \"vm-flat.vmdk\"\n\n# The Disk Data Base\n#DDB\n\n\
             ddb.adapterType = \"lsilogic\"\nddb.virtualHWVersion = \"14\"\n"
        ),
    )
    .unwrap();
    let info = run_stdout("qemu-img", &["info", s(&desc)]);
    assert!(info.contains("file format: vmdk"), "{info}");
    let i = open(&desc);
    same_as_qemu(&i, &desc, "vmdk");
}

/// `qemu-img create -b parent.vmdk -F vmdk child.vmdk`: the child's unwritten grains come
/// from the parent, whose CID the child records.
#[test]
fn child_reads_through_its_parent() {
    if skip("child_reads_through_its_parent") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let parent = create(d.path(), "parent.vmdk", "monolithicSparse", SMALL);
    fill(&parent, SMALL);
    let child = d.path().join("child.vmdk");
    make_child(&child, "parent.vmdk");
    qemu_io(
        &child,
        "vmdk",
        &["write -P 0x66 32k 64k", "write -P 0x77 31M 4k"],
    );
    let i = open(&child);
    assert_eq!(i.chain().len(), 2);
    assert_eq!(i.chain()[1].path(), d.path().join("parent.vmdk"));
    same_as_qemu(&i, &child, "vmdk");
    // A grandchild: a chain of three.
    let grand = d.path().join("grand.vmdk");
    make_child(&grand, "child.vmdk");
    qemu_io(&grand, "vmdk", &["write -P 0x88 1M 4k"]);
    let g = open(&grand);
    assert_eq!(g.chain().len(), 3);
    same_as_qemu(&g, &grand, "vmdk");
}

/// `qemu-img create -f vmdk -b PARENT -F vmdk CHILD` (PARENT relative to CHILD).
fn make_child(child: &Path, parent: &str) {
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-b",
            parent,
            "-F",
            "vmdk",
            s(child),
        ],
    );
}

/// Replace the embedded descriptor of a sparse extent with `text`.
fn set_embedded_descriptor(img: &Path, text: &str) {
    let mut b = fs::read(img).unwrap();
    let off = u64::from_le_bytes(b[28..36].try_into().unwrap()) as usize * 512;
    let size = u64::from_le_bytes(b[36..44].try_into().unwrap()) as usize * 512;
    assert!(text.len() <= size);
    b[off..off + size].fill(0);
    b[off..off + text.len()].copy_from_slice(text.as_bytes());
    fs::write(img, b).unwrap();
}

fn descriptor_text(img: &Path) -> String {
    let b = fs::read(img).unwrap();
    let off = u64::from_le_bytes(b[28..36].try_into().unwrap()) as usize * 512;
    let size = u64::from_le_bytes(b[36..44].try_into().unwrap()) as usize * 512;
    String::from_utf8_lossy(&b[off..off + size])
        .trim_end_matches('\0')
        .to_string()
}

#[test]
fn parent_loops_and_stale_parents_are_refused() {
    if skip("parent_loops_and_stale_parents_are_refused") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let a = create(d.path(), "a.vmdk", "monolithicSparse", SMALL);
    let b = d.path().join("b.vmdk");
    make_child(&b, "a.vmdk");
    open(&b);
    // a names b as its parent: a -> b -> a.
    let text = descriptor_text(&a).replace(
        "parentCID=ffffffff",
        "parentCID=12345678\nparentFileNameHint=\"b.vmdk\"",
    );
    set_embedded_descriptor(&a, &text);
    let e = open_err(&b);
    assert!(e.contains("backing file loop"), "{e}");
    // A parent whose CID is not the one the child recorded.
    let c = create(d.path(), "c.vmdk", "monolithicSparse", SMALL);
    let child = d.path().join("cc.vmdk");
    make_child(&child, "c.vmdk");
    let text = descriptor_text(&c);
    let cid_line = text.lines().find(|l| l.starts_with("CID=")).unwrap();
    set_embedded_descriptor(&c, &text.replace(cid_line, "CID=0badc0de"));
    let e = open_err(&child);
    assert!(e.contains("parentCID") && e.contains("0badc0de"), "{e}");
    // A missing parent names what was looked for.
    fs::remove_file(&c).unwrap();
    let e = open_err(&child);
    assert!(
        e.contains("parent \"c.vmdk\"") && e.contains("cc.vmdk"),
        "{e}"
    );
}

fn descriptor(dir: &Path, name: &str, extents: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(
        &p,
        format!(
            "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
             createType=\"monolithicFlat\"\n{extents}\n"
        ),
    )
    .unwrap();
    p
}

#[test]
fn descriptors_escaping_or_lying_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let sub = d.path().join("vm");
    fs::create_dir(&sub).unwrap();
    fs::write(d.path().join("outside-flat.vmdk"), vec![0u8; 1 << 20]).unwrap();
    fs::write(sub.join("in-flat.vmdk"), vec![7u8; 1 << 20]).unwrap();
    let outside = d.path().join("outside-flat.vmdk");
    for (name, line) in [
        (
            "up.vmdk",
            "RW 2048 FLAT \"../outside-flat.vmdk\" 0".to_string(),
        ),
        (
            "abs.vmdk",
            format!("RW 2048 FLAT \"{}\" 0", outside.display()),
        ),
    ] {
        let p = descriptor(&sub, name, &line);
        let e = open_err(&p);
        assert!(
            e.contains(name) && e.contains("outside the descriptor's directory"),
            "{e}"
        );
    }
    let good = descriptor(
        &sub,
        "good.vmdk",
        "RW 2048 FLAT \"in-flat.vmdk\" 0\nRW 8 ZERO",
    );
    let i = open(&good);
    assert_eq!(i.len(), (2048 + 8) * 512);
    let mut buf = vec![0u8; 4096];
    i.read_at(&mut buf, 2048 * 512 - 2048).unwrap();
    assert!(buf[..2048].iter().all(|&b| b == 7) && buf[2048..].iter().all(|&b| b == 0));
    let cowd = sub.join("esx.vmdk");
    fs::write(&cowd, b"COWD\x01\0\0\0").unwrap();
    let e = open_err(&cowd);
    assert!(e.contains("esx.vmdk") && e.contains("COWD"), "{e}");
    for (name, body, phrase) in [
        (
            "long.vmdk",
            "RW 4096 FLAT \"in-flat.vmdk\" 0",
            "needs 2097152 bytes",
        ),
        (
            "off.vmdk",
            "RW 2048 FLAT \"in-flat.vmdk\" 1",
            "from offset 512",
        ),
        (
            "type.vmdk",
            "RW 2048 SESPARSE \"in-flat.vmdk\"",
            "line 6: extent type",
        ),
        (
            "count.vmdk",
            "RW lots FLAT \"in-flat.vmdk\"",
            "is not a number",
        ),
        (
            "noquote.vmdk",
            "RW 2048 FLAT in-flat.vmdk",
            "quoted file name",
        ),
        (
            "junk.vmdk",
            "this is not a descriptor line",
            "expected key=value",
        ),
        ("none.vmdk", "", "names no extents"),
        (
            "gone.vmdk",
            "RW 2048 FLAT \"gone-flat.vmdk\"",
            "gone-flat.vmdk",
        ),
    ] {
        let p = descriptor(&sub, name, body);
        let e = open_err(&p);
        assert!(e.contains(phrase), "{name}: {e}");
    }
}

fn le32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

#[test]
fn damaged_sparse_extents_give_clear_errors() {
    if skip("damaged_sparse_extents_give_clear_errors") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let img = create(d.path(), "s.vmdk", "monolithicSparse", SMALL);
    fill(&img, SMALL);
    let orig = fs::read(&img).unwrap();
    let gd = u64::from_le_bytes(orig[56..64].try_into().unwrap()) as usize * 512;
    let target = d.path().join("bad.vmdk");
    let write = |b: &[u8]| fs::write(&target, b).unwrap();

    // Truncated: the last grains are gone.
    write(&orig[..orig.len() - 70_000]);
    let e = read_err(&target);
    assert!(
        e.contains("bad.vmdk") && e.contains("beyond the end of the file"),
        "{e}"
    );
    // Too short for a header.
    write(&orig[..300]);
    let e = open_err(&target);
    assert!(e.contains("too short"), "{e}");
    // A grain directory entry past the end.
    let mut b = orig.clone();
    b[gd..gd + 4].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    let rgd = u64::from_le_bytes(orig[48..56].try_into().unwrap()) as usize * 512;
    b[rgd..rgd + 4].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    write(&b);
    let e = open_err(&target);
    assert!(
        e.contains("grain directory entry 0") && e.contains("beyond"),
        "{e}"
    );
    // A grain table entry past the end.
    let mut b = orig.clone();
    let gt = le32_at(&orig, gd) as usize * 512;
    b[gt..gt + 4].copy_from_slice(&0x0fff_ffffu32.to_le_bytes());
    write(&b);
    let e = read_err(&target);
    assert!(
        e.contains("grain table entry") && e.contains("beyond"),
        "{e}"
    );
    // A bad grain size, version, embedded descriptor line.
    for (at, bytes, phrase) in [
        (20, &3u64.to_le_bytes()[..], "grain size of 3 sectors"),
        (4, &9u32.to_le_bytes()[..], "version 9"),
        (
            36,
            &0x00ff_ffff_u64.to_le_bytes()[..],
            "embedded descriptor",
        ),
    ] {
        let mut b = orig.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        write(&b);
        let e = open_err(&target);
        assert!(e.contains("bad.vmdk") && e.contains(phrase), "{e}");
    }
    fs::copy(&img, &target).unwrap();
    set_embedded_descriptor(&target, "# Disk DescriptorFile\nversion=1\nCID=nothex\n");
    let e = open_err(&target);
    assert!(e.contains("line 3") && e.contains("hex CID"), "{e}");
    // The redundant grain directory stands in for a primary one past the end.
    let mut b = orig.clone();
    b[56..64].copy_from_slice(&0x0fff_ffff_u64.to_le_bytes());
    write(&b);
    assert!(check_same(&img, &target));
}

fn check_same(a: &Path, b: &Path) -> bool {
    let (a, b) = (open(a), open(b));
    let mut x = vec![0u8; 1 << 20];
    let mut y = vec![0u8; 1 << 20];
    let mut pos = 0;
    while pos < a.len() {
        let n = (a.len() - pos).min(1 << 20) as usize;
        a.read_at(&mut x[..n], pos).unwrap();
        b.read_at(&mut y[..n], pos).unwrap();
        if x[..n] != y[..n] {
            return false;
        }
        pos += n as u64;
    }
    a.len() == b.len()
}

#[test]
fn damaged_stream_optimized_gives_clear_errors() {
    if skip("damaged_stream_optimized_gives_clear_errors") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let sparse = create(d.path(), "s.vmdk", "monolithicSparse", SMALL);
    qemu_io(
        &sparse,
        "vmdk",
        &["write -P 0x21 0 64k", "write -P 0x22 5M 64k"],
    );
    let img = d.path().join("stream.vmdk");
    run(
        "qemu-img",
        &[
            "convert",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            s(&sparse),
            s(&img),
        ],
    );
    let orig = fs::read(&img).unwrap();
    let target = d.path().join("bad.vmdk");
    // The footer cut off (the end-of-stream marker is missing).
    let vmware = fs::read(with_footer(&img)).unwrap();
    fs::write(&target, &vmware[..vmware.len() - 512]).unwrap();
    let e = open_err(&target);
    assert!(e.contains("bad.vmdk") && e.contains("footer"), "{e}");
    // A compressed grain that does not inflate: the first grain's deflate data.
    let overhead = u64::from_le_bytes(orig[64..72].try_into().unwrap()) as usize * 512;
    let mut b = orig.clone();
    b[overhead + 14..overhead + 40].fill(0xa5);
    fs::write(&target, &b).unwrap();
    let e = read_err(&target);
    assert!(
        e.contains("bad.vmdk") && e.contains("compressed grain"),
        "{e}"
    );
    // A grain marker for another sector.
    let mut b = orig.clone();
    b[overhead..overhead + 8].copy_from_slice(&4096u64.to_le_bytes());
    fs::write(&target, &b).unwrap();
    let e = read_err(&target);
    assert!(e.contains("says it holds sector 4096"), "{e}");
}

#[test]
fn random_mutations_never_panic() {
    if skip("vmdk_random_damage_never_panics") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("s.vmdk");
    run("qemu-img", &["create", "-q", "-f", "vmdk", s(&img), "64M"]);
    qemu_io(
        &img,
        "vmdk",
        &[
            "write -P 1 0 64k",
            "write -P 2 3M 100k",
            "write -P 3 63M 1M",
        ],
    );
    let stream = d.path().join("t.vmdk");
    run(
        "qemu-img",
        &[
            "convert",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            s(&img),
            s(&stream),
        ],
    );
    random_damage_never_panics(&[&img, &stream], 1 << 16, 300);
}
