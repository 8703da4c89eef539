mod common;

// Initrd / cpio codec tests, judged by GNU cpio and the reference compressors.
//
// Archives are made at test time by `cpio -o` from a tree with every file type we care
// about, compressed by the reference tools, concatenated into initrds; our segment walker
// must agree with the construction and with `cpio -t`/`cpio -tv`/`cpio -i`, and what our
// writer produces must be readable by the reference tools.

use common::{need, noise, run, s, sh};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use subroot_formats::block::{MemoryDevice, RawFile};
use subroot_formats::cpio::newc::S_IFLNK;
use subroot_formats::cpio::{
    group_hardlinks, list_segments, visit_entries, Compression, CompressionSpec, CpioHeader,
    CpioReader, Encoder, Format, SegmentWriter, XzCheck,
};
use subroot_formats::Error;

/// A tree with regular files, an empty file, a symlink, a hardlink pair, a fifo, a
/// subdirectory and a non-UTF-8 name.
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("hello.txt"), b"hello, initrd\n").unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    let mut text = Vec::new();
    for i in 0..20000 {
        text.extend_from_slice(format!("line {i} of a compressible file\n").as_bytes());
    }
    std::fs::write(root.join("sub/text.log"), &text).unwrap();
    std::fs::write(root.join("sub/deeper/noise.bin"), noise(150_001, 7)).unwrap();
    std::fs::write(root.join("linked-1"), b"same inode, two names").unwrap();
    std::fs::hard_link(root.join("linked-1"), root.join("sub/linked-2")).unwrap();
    std::os::unix::fs::symlink("hello.txt", root.join("link-to-hello")).unwrap();
    run("mkfifo", &[s(&root.join("fifo"))]);
    let odd = root.join(OsStr::from_bytes(b"caf\xe9"));
    std::fs::write(&odd, b"latin-1 name").unwrap();
    std::fs::set_permissions(
        root.join("hello.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
}

/// `cpio -o -H format` of everything under `tree` (sorted, names relative).
fn make_cpio(tree: &Path, out: &Path, format: &str) {
    sh(
        "cd \"$1\" && find . | LC_ALL=C sort | cpio -o -H \"$2\" --quiet > \"$3\"",
        &[s(tree), format, s(out)],
    );
}

fn tool_of(c: Compression) -> &'static str {
    match c {
        Compression::None => "cat",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
        Compression::Xz => "xz",
        Compression::Lzma => "lzma",
        Compression::Lz4Legacy => "lz4",
        Compression::Bzip2 => "bzip2",
    }
}

/// Compress `input` with the reference tool the way initrd builders do.
fn tool_compress(c: Compression, input: &Path) -> Vec<u8> {
    let script = match c {
        Compression::None => "cat \"$1\"",
        Compression::Gzip => "gzip -9 -n -c \"$1\"",
        Compression::Zstd => "zstd -19 -q -c \"$1\"",
        Compression::Xz => "xz --check=crc32 -c \"$1\"",
        Compression::Lzma => "lzma -c \"$1\"",
        Compression::Lz4Legacy => "lz4 -l -q -c \"$1\"",
        Compression::Bzip2 => "bzip2 -c \"$1\"",
    };
    sh(script, &[s(input)])
}

/// Decompress `input` with the reference tool.
fn tool_decompress(c: Compression, input: &Path) -> Vec<u8> {
    let script = match c {
        Compression::None => "cat \"$1\"",
        Compression::Gzip => "gzip -dc \"$1\"",
        Compression::Zstd => "zstd -dcq \"$1\"",
        Compression::Xz => "xz -dc \"$1\"",
        Compression::Lzma => "lzma -dc \"$1\"",
        Compression::Lz4Legacy => "lz4 -dc \"$1\"",
        Compression::Bzip2 => "bzip2 -dc \"$1\"",
    };
    sh(script, &[s(input)])
}

/// An entry as we read it.
#[derive(Debug, Clone)]
struct Got {
    segment: usize,
    header: CpioHeader,
    data: Vec<u8>,
}

fn read_all(path: &Path) -> (Vec<subroot_formats::cpio::Segment>, Vec<Got>) {
    let dev = RawFile::open(path).unwrap();
    let mut got = Vec::new();
    let segs = visit_entries(&dev, |ctx, h, data| {
        let mut buf = Vec::new();
        data.read_to_end(&mut buf)
            .map_err(|e| Error::io("reading entry data", e))?;
        got.push(Got {
            segment: ctx.segment,
            header: h.clone(),
            data: buf,
        });
        Ok(())
    })
    .unwrap_or_else(|e| panic!("walking {}: {e}", path.display()));
    (segs, got)
}

fn mode_string(mode: u32) -> String {
    let t = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o010000 => 'p',
        0o020000 => 'c',
        0o060000 => 'b',
        0o140000 => 's',
        _ => '-',
    };
    let mut out = String::from(t);
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (i, (bit, c)) in bits.iter().enumerate() {
        let special = match i {
            2 => mode & 0o4000 != 0,
            5 => mode & 0o2000 != 0,
            8 => mode & 0o1000 != 0,
            _ => false,
        };
        let set = mode & bit != 0;
        out.push(match (special, set, i) {
            (true, true, 8) => 't',
            (true, false, 8) => 'T',
            (true, true, _) => 's',
            (true, false, _) => 'S',
            (false, true, _) => *c,
            (false, false, _) => '-',
        });
    }
    out
}

/// Check our entries of one archive against GNU cpio's view of `archive` (uncompressed):
/// names and order from `cpio -t`, mode/nlink/uid/gid/size from `cpio -tv`, and contents,
/// modes, mtimes and link targets from what `cpio -idm` extracts.
fn check_against_cpio(archive: &Path, ours: &[Got], scratch: &Path) {
    let names = sh("cpio -t --quiet < \"$1\"", &[s(archive)]);
    let names: Vec<&[u8]> = names
        .strip_suffix(b"\n")
        .unwrap_or(&names)
        .split(|&b| b == b'\n')
        .collect();
    let our_names: Vec<&[u8]> = ours.iter().map(|g| g.header.name.as_slice()).collect();
    assert_eq!(our_names, names, "names differ from cpio -t");

    let long = sh("cpio -tv --numeric-uid-gid --quiet < \"$1\"", &[s(archive)]);
    let long: Vec<&[u8]> = long
        .strip_suffix(b"\n")
        .unwrap_or(&long)
        .split(|&b| b == b'\n')
        .collect();
    assert_eq!(long.len(), ours.len());
    for (line, g) in long.iter().zip(ours) {
        let text = String::from_utf8_lossy(line);
        let cols: Vec<&str> = text.split_whitespace().collect();
        let h = &g.header;
        assert_eq!(cols[0], mode_string(h.mode), "mode of {text}");
        assert_eq!(cols[1], h.nlink.to_string(), "nlink of {text}");
        assert_eq!(cols[2], h.uid.to_string(), "uid of {text}");
        assert_eq!(cols[3], h.gid.to_string(), "gid of {text}");
        assert_eq!(cols[4], h.filesize.to_string(), "size of {text}");
    }

    let dest = scratch.join("extract");
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir_all(&dest).unwrap();
    sh(
        "cd \"$1\" && cpio -idm --quiet --no-absolute-filenames < \"$2\"",
        &[s(&dest), s(archive)],
    );
    let groups = group_hardlinks(&ours.iter().map(|g| g.header.clone()).collect::<Vec<_>>());
    for (i, g) in ours.iter().enumerate() {
        let h = &g.header;
        let path = dest.join(OsStr::from_bytes(&h.name));
        let md = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("{} not extracted: {e}", path.display()));
        assert_eq!(md.mode(), h.mode, "mode of {}", path.display());
        match h.mode & 0o170000 {
            0o100000 => {
                // A hard link's data may be on another member (GNU: the last one).
                let data = match groups.iter().find(|gr| gr.members.contains(&i)) {
                    Some(gr) => &ours[gr.data_holder.expect("linked file has data")].data,
                    None => &g.data,
                };
                assert_eq!(&std::fs::read(&path).unwrap(), data, "{}", path.display());
                assert_eq!(
                    md.mtime(),
                    i64::from(h.mtime),
                    "mtime of {}",
                    path.display()
                );
            }
            S_IFLNK => {
                let target = std::fs::read_link(&path).unwrap();
                assert_eq!(target.as_os_str().as_bytes(), g.data.as_slice());
            }
            _ => {}
        }
    }
}

/// Split our entries by segment.
fn by_segment(got: &[Got]) -> BTreeMap<usize, Vec<Got>> {
    let mut m: BTreeMap<usize, Vec<Got>> = BTreeMap::new();
    for g in got {
        m.entry(g.segment).or_default().push(g.clone());
    }
    m
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    newc: PathBuf,
    crc: PathBuf,
    early: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    make_tree(&root.join("tree"));
    let newc = root.join("main.cpio");
    make_cpio(&root.join("tree"), &newc, "newc");
    let crc = root.join("main-crc.cpio");
    make_cpio(&root.join("tree"), &crc, "crc");
    // An early-microcode style archive.
    let ucode = root.join("early/kernel/x86/microcode");
    std::fs::create_dir_all(&ucode).unwrap();
    std::fs::write(ucode.join("GenuineIntel.bin"), noise(4099, 3)).unwrap();
    let early = root.join("early.cpio");
    make_cpio(&root.join("early"), &early, "newc");
    Fixture {
        _dir: dir,
        root,
        newc,
        crc,
        early,
    }
}

fn need_all(cs: &[Compression], test: &str) -> bool {
    need("cpio", test)
        && cs
            .iter()
            .all(|&c| c == Compression::None || need(tool_of(c), test))
}

/// Length of a plain archive as GNU writes it (the end of the trailer, before the
/// 512-byte block padding): found by looking for the trailer name.
fn trailer_end(bytes: &[u8]) -> u64 {
    let i = bytes
        .windows(11)
        .rposition(|w| w == b"TRAILER!!!\0")
        .expect("trailer");
    let end = (i + 11) as u64;
    end + (4 - end % 4) % 4
}

#[test]
fn single_segment_per_codec() {
    if !need_all(&Compression::ALL, "single_segment_per_codec") {
        return;
    }
    let fx = fixture();
    for c in Compression::ALL {
        let bytes = tool_compress(c, &fx.newc);
        let path = fx.root.join(format!("initrd-{}", c.name()));
        std::fs::write(&path, &bytes).unwrap();
        let (segs, got) = read_all(&path);
        assert_eq!(segs.len(), 1, "{c}: {segs:?}");
        let seg = &segs[0];
        assert_eq!((seg.offset, seg.compression), (0, c));
        let plain = std::fs::read(&fx.newc).unwrap();
        if c == Compression::None {
            assert_eq!(seg.length, trailer_end(&plain));
        } else {
            assert_eq!(seg.length, bytes.len() as u64, "{c}: compressed length");
        }
        assert_eq!(seg.entries, got.len() as u64);
        assert_eq!(seg.archives, 1);
        // The reference decompressor's output is what we decompressed.
        let reference = fx.root.join(format!("ref-{}.cpio", c.name()));
        std::fs::write(&reference, tool_decompress(c, &path)).unwrap();
        if c != Compression::None {
            assert_eq!(seg.uncompressed_size, plain.len() as u64, "{c}");
        }
        check_against_cpio(&reference, &got, &fx.root);
        if c == Compression::Xz {
            assert_eq!(seg.xz_check, Some(XzCheck::Crc32));
        } else {
            assert_eq!(seg.xz_check, None);
        }
    }
}

#[test]
fn crc_format_is_read_and_verified() {
    if !need_all(&[Compression::Gzip], "crc_format_is_read_and_verified") {
        return;
    }
    let fx = fixture();
    let path = fx.root.join("initrd-crc.gz");
    std::fs::write(&path, tool_compress(Compression::Gzip, &fx.crc)).unwrap();
    let (segs, got) = read_all(&path);
    assert_eq!(segs.len(), 1);
    assert!(got.iter().all(|g| g.header.format == Format::Crc));
    // The checksum GNU computed is the one we recompute.
    for g in &got {
        if g.header.mode & 0o170000 == 0o100000 {
            assert_eq!(g.header.check, subroot_formats::cpio::checksum(&g.data));
        }
    }
    check_against_cpio(&fx.crc, &got, &fx.root);

    // A flipped data byte makes the crc check fail.
    let mut bad = std::fs::read(&fx.crc).unwrap();
    let pos = bad
        .windows(13)
        .position(|w| w == b"hello, initrd")
        .expect("file data");
    bad[pos] ^= 0x20;
    let err = list_segments(&MemoryDevice::from_vec(bad)).unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("crc checksum"), "{err}");
}

#[test]
fn early_uncompressed_then_compressed_main() {
    if !need_all(
        &[Compression::Zstd],
        "early_uncompressed_then_compressed_main",
    ) {
        return;
    }
    let fx = fixture();
    let early = std::fs::read(&fx.early).unwrap();
    let main = tool_compress(Compression::Zstd, &fx.newc);
    let mut initrd = early.clone();
    initrd.extend_from_slice(&main);
    let path = fx.root.join("initrd");
    std::fs::write(&path, &initrd).unwrap();
    let (segs, got) = read_all(&path);
    assert_eq!(segs.len(), 2, "{segs:?}");
    assert_eq!(
        (segs[0].offset, segs[0].compression, segs[0].length),
        (0, Compression::None, trailer_end(&early))
    );
    assert_eq!(
        (segs[1].offset, segs[1].compression, segs[1].length),
        (early.len() as u64, Compression::Zstd, main.len() as u64)
    );
    let parts = by_segment(&got);
    check_against_cpio(&fx.early, &parts[&0], &fx.root);
    check_against_cpio(&fx.newc, &parts[&1], &fx.root);
}

/// Build an initrd from (compression, padding before) parts; returns the path and the
/// expected (offset, length, compression) of each segment.
fn build_initrd(
    fx: &Fixture,
    name: &str,
    parts: &[(Compression, usize, &Path)],
) -> (PathBuf, Vec<(u64, u64, Compression)>) {
    let mut out = Vec::new();
    let mut expect = Vec::new();
    for &(c, pad, src) in parts {
        out.resize(out.len() + pad, 0);
        if c == Compression::None {
            // The kernel wants plain archives 4-byte aligned.
            out.resize(out.len().next_multiple_of(4), 0);
        }
        let bytes = tool_compress(c, src);
        let len = if c == Compression::None {
            trailer_end(&bytes)
        } else {
            bytes.len() as u64
        };
        expect.push((out.len() as u64, len, c));
        out.extend_from_slice(&bytes);
    }
    let path = fx.root.join(name);
    std::fs::write(&path, &out).unwrap();
    (path, expect)
}

#[test]
fn three_segments_with_zero_padding() {
    if !need_all(
        &[Compression::Zstd, Compression::Gzip],
        "three_segments_with_zero_padding",
    ) {
        return;
    }
    let fx = fixture();
    let (path, expect) = build_initrd(
        &fx,
        "initrd3",
        &[
            (Compression::None, 0, &fx.early),
            (Compression::Zstd, 512, &fx.newc),
            (Compression::Gzip, 4, &fx.crc),
        ],
    );
    let (segs, got) = read_all(&path);
    let found: Vec<_> = segs
        .iter()
        .map(|s| (s.offset, s.length, s.compression))
        .collect();
    assert_eq!(found, expect);
    let parts = by_segment(&got);
    check_against_cpio(&fx.early, &parts[&0], &fx.root);
    check_against_cpio(&fx.newc, &parts[&1], &fx.root);
    check_against_cpio(&fx.crc, &parts[&2], &fx.root);
}

#[test]
fn every_codec_chained_in_one_initrd() {
    if !need_all(&Compression::ALL, "every_codec_chained_in_one_initrd") {
        return;
    }
    let fx = fixture();
    // Paddings as seen in the wild (none, 4-byte, 512-byte) and odd ones after compressed
    // streams, which the kernel skips byte by byte. lz4 legacy can only be last.
    let (path, mut expect) = build_initrd(
        &fx,
        "initrd-all",
        &[
            (Compression::None, 0, &fx.early),
            (Compression::Gzip, 0, &fx.newc),
            (Compression::Zstd, 3, &fx.crc),
            (Compression::Xz, 0, &fx.early),
            (Compression::None, 8, &fx.early),
            (Compression::Lzma, 512, &fx.newc),
            (Compression::Bzip2, 1, &fx.early),
            (Compression::Gzip, 0, &fx.early),
            (Compression::Lz4Legacy, 7, &fx.newc),
        ],
    );
    // lz4 has no end marker: it runs to the end of the file or to zero padding.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.resize(bytes.len() + 1000, 0);
    std::fs::write(&path, &bytes).unwrap();
    let (segs, got) = read_all(&path);
    let found: Vec<_> = segs
        .iter()
        .map(|s| (s.offset, s.length, s.compression))
        .collect();
    assert_eq!(found, expect);
    // Anything but zeros after it is refused.
    bytes.extend_from_slice(&std::fs::read(&fx.early).unwrap());
    let e = corrupt_err(bytes);
    assert!(e.contains("after the lz4 legacy segment"), "{e}");
    expect.clear();
    let parts = by_segment(&got);
    let sources = [
        &fx.early, &fx.newc, &fx.crc, &fx.early, &fx.early, &fx.newc, &fx.early, &fx.early,
        &fx.newc,
    ];
    for (i, src) in sources.iter().enumerate() {
        let names: Vec<&[u8]> = parts[&i].iter().map(|g| g.header.name.as_slice()).collect();
        let reference = sh("cpio -t --quiet < \"$1\"", &[s(src)]);
        let reference: Vec<&[u8]> = reference
            .strip_suffix(b"\n")
            .unwrap()
            .split(|&b| b == b'\n')
            .collect();
        assert_eq!(names, reference, "segment {i}");
    }
}

#[test]
fn hardlinks_are_grouped_with_gnu_data_placement() {
    if !need("cpio", "hardlinks_are_grouped_with_gnu_data_placement") {
        return;
    }
    let fx = fixture();
    let dev = RawFile::open(&fx.newc).unwrap();
    let mut headers = Vec::new();
    visit_entries(&dev, |_, h, _| {
        headers.push(h.clone());
        Ok(())
    })
    .unwrap();
    let groups = group_hardlinks(&headers);
    assert_eq!(groups.len(), 1, "{groups:?}");
    let g = &groups[0];
    let names: Vec<&[u8]> = g
        .members
        .iter()
        .map(|&i| headers[i].name.as_slice())
        .collect();
    assert_eq!(names, [b"linked-1".as_slice(), b"sub/linked-2".as_slice()]);
    // GNU cpio puts the data on the last link.
    assert_eq!(g.data_holder, Some(*g.members.last().unwrap()));
    assert_eq!(headers[g.members[0]].filesize, 0);
    assert_eq!(
        headers[g.data_holder.unwrap()].filesize as usize,
        b"same inode, two names".len()
    );
    assert!(!g.several_with_data);
    // Directories (nlink > 1) are not grouped.
    assert!(headers
        .iter()
        .any(|h| h.nlink > 1 && h.mode & 0o170000 == 0o040000));
}

/// Entries of a GNU archive, read by our reader.
fn entries_of(path: &Path) -> Vec<(CpioHeader, Vec<u8>)> {
    let (_, got) = read_all(path);
    got.into_iter().map(|g| (g.header, g.data)).collect()
}

fn write_with(
    entries: &[(CpioHeader, Vec<u8>)],
    c: Compression,
    level: Option<u32>,
    f: Format,
) -> Vec<u8> {
    let mut w = SegmentWriter::new(Vec::new(), c, level, f).unwrap();
    for (h, d) in entries {
        w.add(h, &mut d.as_slice()).unwrap();
    }
    w.finish().unwrap()
}

#[test]
fn round_trip_through_reference_tools() {
    if !need_all(&Compression::ALL, "round_trip_through_reference_tools") {
        return;
    }
    let fx = fixture();
    for (format, src) in [(Format::Newc, &fx.newc), (Format::Crc, &fx.crc)] {
        let entries = entries_of(src);
        for c in Compression::ALL {
            let level = match c {
                Compression::Zstd => Some(3),
                Compression::Xz | Compression::Lzma => Some(1),
                _ => None,
            };
            let bytes = write_with(&entries, c, level, format);
            assert_eq!(
                bytes,
                write_with(&entries, c, level, format),
                "{c}: identical input must give identical output"
            );
            let path = fx.root.join(format!("ours-{}", c.name()));
            std::fs::write(&path, &bytes).unwrap();
            // The reference tool decompresses it and GNU cpio lists and extracts it the way
            // we read the source.
            let plain = fx.root.join(format!("ours-{}.cpio", c.name()));
            std::fs::write(&plain, tool_decompress(c, &path)).unwrap();
            let got: Vec<Got> = entries
                .iter()
                .map(|(h, d)| Got {
                    segment: 0,
                    header: h.clone(),
                    data: d.clone(),
                })
                .collect();
            check_against_cpio(&plain, &got, &fx.root);
            // GNU cpio verifies crc checksums on extraction.
            let out = Command::new("sh")
                .arg("-c")
                .arg("cd \"$1\" && cpio -i --only-verify-crc --quiet < \"$2\"")
                .arg("sh")
                .arg(s(&fx.root))
                .arg(s(&plain))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                !String::from_utf8_lossy(&out.stderr).contains("checksum"),
                "{c} {format:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // And our walker reads it back as one segment of the same entries.
            let (segs, back) = read_all(&path);
            assert_eq!(segs.len(), 1);
            assert_eq!(segs[0].compression, c);
            assert_eq!(segs[0].length, bytes.len() as u64);
            assert_eq!(back.len(), entries.len());
            for (b, (h, d)) in back.iter().zip(&entries) {
                assert_eq!((&b.header, &b.data), (h, d));
            }
        }
    }
}

#[test]
fn lz4_legacy_multi_block() {
    if !need_all(&[Compression::Lz4Legacy], "lz4_legacy_multi_block") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    // More than one 8 MiB block, partly incompressible.
    let mut big = noise(3 << 20, 11);
    big.extend(std::iter::repeat_n(b'z', 7 << 20));
    std::fs::write(tree.join("big"), &big).unwrap();
    let archive = dir.path().join("big.cpio");
    make_cpio(&tree, &archive, "newc");
    let lz = dir.path().join("big.lz4");
    std::fs::write(&lz, tool_compress(Compression::Lz4Legacy, &archive)).unwrap();
    let (segs, got) = read_all(&lz);
    assert_eq!(segs.len(), 1);
    assert_eq!(
        segs[0].uncompressed_size,
        std::fs::metadata(&archive).unwrap().len()
    );
    let file = got.iter().find(|g| g.header.name == b"big").unwrap();
    assert!(file.data == big);
    // Our encoder's output is read by lz4.
    let ours = write_with(
        &[(file.header.clone(), file.data.clone())],
        Compression::Lz4Legacy,
        None,
        Format::Newc,
    );
    let p = dir.path().join("ours.lz4");
    std::fs::write(&p, &ours).unwrap();
    let plain = tool_decompress(Compression::Lz4Legacy, &p);
    let mut r = CpioReader::new(plain.as_slice());
    let h = r.next_entry().unwrap().unwrap();
    assert_eq!(h.name, b"big");
    assert!(r.read_data(u64::MAX).unwrap() == big);
    assert!(r.next_entry().unwrap().is_none());
}

#[test]
fn xz_check_types_are_reported_not_failed() {
    if !need_all(&[Compression::Xz], "xz_check_types_are_reported_not_failed") {
        return;
    }
    let fx = fixture();
    for (flag, check) in [
        ("crc64", XzCheck::Crc64),
        ("sha256", XzCheck::Sha256),
        ("none", XzCheck::None),
        ("crc32", XzCheck::Crc32),
    ] {
        let bytes = sh("xz --check=\"$2\" -c \"$1\"", &[s(&fx.newc), flag]);
        let (segs, got) = {
            let p = fx.root.join(format!("x-{flag}.xz"));
            std::fs::write(&p, &bytes).unwrap();
            read_all(&p)
        };
        assert_eq!(segs[0].xz_check, Some(check));
        assert_eq!(
            segs[0].xz_check.unwrap().kernel_verifies(),
            flag == "crc32" || flag == "none"
        );
        assert_eq!(got.len() as u64, segs[0].entries);
        assert!(got.len() > 5);
    }
}

fn corrupt_err(bytes: Vec<u8>) -> String {
    match list_segments(&MemoryDevice::from_vec(bytes)) {
        Err(e @ Error::Corrupt(_)) => e.to_string(),
        other => panic!("expected a Corrupt error, got {other:?}"),
    }
}

#[test]
fn bad_cpio_input_gives_clear_errors() {
    if !need("cpio", "bad_cpio_input_gives_clear_errors") {
        return;
    }
    let fx = fixture();
    let good = std::fs::read(&fx.newc).unwrap();

    // Truncated inside the second header.
    let second = good[6..].windows(6).position(|w| w == b"070701").unwrap() + 6;
    let e = corrupt_err(good[..second + 50].to_vec());
    assert!(
        e.contains("truncated") && e.contains(&format!("offset {second}")),
        "{e}"
    );

    // A name without its NUL: the first entry is "." (namesize 2); claim 1 byte, so the
    // name byte that should be the NUL is '.'.
    let mut bad = good.clone();
    bad[94..102].copy_from_slice(b"00000001");
    let e = corrupt_err(bad);
    assert!(e.contains("does not end with a NUL"), "{e}");

    // A file size past the end of the archive (hello.txt claims 1 GiB).
    let mut bad = good.clone();
    let at = bad.windows(10).position(|w| w == b"hello.txt\0").unwrap() - 110;
    bad[at + 54..at + 62].copy_from_slice(b"40000000");
    let e = corrupt_err(bad);
    assert!(e.contains("truncated") && e.contains("hello.txt"), "{e}");

    // A 4 GiB name size: an error, never an allocation.
    let mut bad = good.clone();
    bad[94..102].copy_from_slice(b"FFFFFFFF");
    let e = corrupt_err(bad);
    assert!(e.contains("name size 4294967295"), "{e}");

    // Non-hex digits in a field.
    let mut bad = good.clone();
    bad[14..22].copy_from_slice(b"0000G1ED");
    let e = corrupt_err(bad);
    assert!(e.contains("mode") && e.contains("hex"), "{e}");

    // Garbage instead of a segment.
    let e = corrupt_err(b"\0\0\0\0hello world".to_vec());
    assert!(e.contains("offset 4"), "{e}");

    // LZO is recognised and refused.
    let mut lzo = vec![0x89, b'L', b'Z', b'O', 0, 0x0d, 0x0a, 0x1a, 0x0a];
    lzo.extend_from_slice(&[0; 32]);
    match list_segments(&MemoryDevice::from_vec(lzo)) {
        Err(Error::Unsupported(m)) => assert!(m.contains("LZO"), "{m}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn bad_compressed_input_gives_clear_errors() {
    if !need_all(
        &[Compression::Gzip, Compression::Zstd, Compression::Xz],
        "bad_compressed_input_gives_clear_errors",
    ) {
        return;
    }
    let fx = fixture();
    // A gzip member cut short.
    let gz = tool_compress(Compression::Gzip, &fx.newc);
    let e = corrupt_err(gz[..gz.len() / 2].to_vec());
    assert!(e.contains("gzip"), "{e}");
    // Cut in its 8-byte trailer.
    let e = corrupt_err(gz[..gz.len() - 3].to_vec());
    assert!(e.contains("gzip"), "{e}");

    // A zstd frame with a corrupted content checksum (the last 4 bytes of the frame).
    let mut zst = sh("zstd --check -q -3 -c \"$1\"", &[s(&fx.newc)]);
    let n = zst.len();
    zst[n - 1] ^= 0xff;
    let e = corrupt_err(zst);
    assert!(e.contains("zstd") && e.contains("segment 0"), "{e}");

    // An xz stream cut short.
    let xz = tool_compress(Compression::Xz, &fx.newc);
    let e = corrupt_err(xz[..xz.len() - 10].to_vec());
    assert!(e.contains("xz"), "{e}");

    // An lz4 legacy stream followed by another segment: not allowed.
    if need("lz4", "bad_compressed_input_gives_clear_errors") {
        let lz = tool_compress(Compression::Lz4Legacy, &fx.early);
        let mut after = lz.clone();
        after.extend_from_slice(&gz);
        let e = corrupt_err(after);
        assert!(e.contains("lz4 legacy block"), "{e}");
        // Cut inside its block.
        let e = corrupt_err(lz[..lz.len() - 10].to_vec());
        assert!(e.contains("lz4") && e.contains("truncated"), "{e}");
    }

    // A compressed stream whose content is not cpio.
    let junk = sh("printf 'not a cpio archive at all' | gzip -n -c", &[]);
    let e = corrupt_err(junk);
    assert!(e.contains("junk"), "{e}");
}

#[test]
fn compression_names_parse() {
    for c in Compression::ALL {
        assert_eq!(c.name().parse::<Compression>().unwrap(), c);
    }
    let spec: CompressionSpec = "zstd:19".parse().unwrap();
    assert_eq!(
        (spec.compression, spec.level),
        (Compression::Zstd, Some(19))
    );
    let spec: CompressionSpec = "gzip".parse().unwrap();
    assert_eq!((spec.compression, spec.level), (Compression::Gzip, None));
    assert!("zstd:99".parse::<CompressionSpec>().is_err());
    assert!("gzip:x".parse::<CompressionSpec>().is_err());
    assert!("lzo".parse::<Compression>().is_err());
}

#[test]
fn several_archives_in_one_stream_and_multi_member_gzip() {
    if !need_all(
        &[Compression::Gzip, Compression::Zstd],
        "several_archives_in_one_stream_and_multi_member_gzip",
    ) {
        return;
    }
    let fx = fixture();
    // One gzip stream holding two archives back to back (GNU pads each to 512 bytes).
    let both = fx.root.join("both.cpio");
    let mut cat = std::fs::read(&fx.early).unwrap();
    cat.extend_from_slice(&std::fs::read(&fx.newc).unwrap());
    std::fs::write(&both, &cat).unwrap();
    let one = fx.root.join("one-stream.gz");
    std::fs::write(&one, tool_compress(Compression::Gzip, &both)).unwrap();
    let (segs, got) = read_all(&one);
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].archives, 2);
    assert_eq!(segs[0].uncompressed_size, cat.len() as u64);
    let early_n = sh("cpio -t --quiet < \"$1\" | wc -l", &[s(&fx.early)]);
    let early_n: usize = String::from_utf8_lossy(&early_n).trim().parse().unwrap();
    check_against_cpio(&fx.early, &got[..early_n], &fx.root);
    check_against_cpio(&fx.newc, &got[early_n..], &fx.root);

    // Two gzip members: the kernel decompresses each as its own segment.
    let mut two = tool_compress(Compression::Gzip, &fx.early);
    let first_len = two.len() as u64;
    two.extend_from_slice(&tool_compress(Compression::Gzip, &fx.newc));
    let two_path = fx.root.join("two-members.gz");
    std::fs::write(&two_path, &two).unwrap();
    let (segs, _) = read_all(&two_path);
    let found: Vec<_> = segs.iter().map(|s| (s.offset, s.length)).collect();
    assert_eq!(
        found,
        [(0, first_len), (first_len, two.len() as u64 - first_len)]
    );
    // The Members::All decoder reads both members, like gzip -dc.
    let mut dec = subroot_formats::cpio::Decoder::detect(
        subroot_formats::cpio::PeekReader::new(two.as_slice()),
        subroot_formats::cpio::Members::All,
    )
    .unwrap();
    let mut plain = Vec::new();
    dec.read_to_end(&mut plain).unwrap();
    assert!(plain == tool_decompress(Compression::Gzip, &two_path));
    assert_eq!(dec.consumed(), two.len() as u64);

    // Each zstd frame is a segment of its own, as the kernel's decompressor stops where a
    // frame is complete; skippable frames go with the frame after them.
    let mut zst = vec![0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3];
    zst.extend_from_slice(&tool_compress(Compression::Zstd, &fx.early));
    let first_len = zst.len() as u64;
    zst.extend_from_slice(&[0x5f, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]);
    zst.extend_from_slice(&tool_compress(Compression::Zstd, &fx.newc));
    let zst_path = fx.root.join("frames.zst");
    std::fs::write(&zst_path, &zst).unwrap();
    assert!(tool_decompress(Compression::Zstd, &zst_path) == cat);
    let (segs, got) = read_all(&zst_path);
    let found: Vec<_> = segs
        .iter()
        .map(|s| (s.offset, s.length, s.archives))
        .collect();
    assert_eq!(
        found,
        [
            (0, first_len, 1),
            (first_len, zst.len() as u64 - first_len, 1)
        ]
    );
    check_against_cpio(&fx.early, &got[..early_n], &fx.root);
    check_against_cpio(&fx.newc, &got[early_n..], &fx.root);
}

#[test]
fn writer_rejects_inconsistent_entries() {
    use subroot_formats::cpio::CpioWriter;
    let mut w = CpioWriter::new(Vec::new(), Format::Newc);
    assert!(w.write_header(&CpioHeader::new("", 0o100644, 0)).is_err());
    assert!(w
        .write_header(&CpioHeader::new(vec![b'a'; 5000], 0o100644, 0))
        .is_err());
    assert!(w
        .write_header(&CpioHeader::new("a\0b", 0o100644, 0))
        .is_err());
    w.write_header(&CpioHeader::new("f", 0o100644, 3)).unwrap();
    assert!(w.write_data(b"abcd").is_err());
    w.write_data(b"ab").unwrap();
    // One byte short: the next header is refused.
    assert!(w.write_header(&CpioHeader::new("g", 0o100644, 0)).is_err());
    // A crc entry whose header check does not match its data.
    let mut w = CpioWriter::new(Vec::new(), Format::Crc);
    let mut h = CpioHeader::new("f", 0o100644, 2);
    h.check = 7;
    w.write_header(&h).unwrap();
    w.write_data(b"ab").unwrap();
    assert!(w.finish().is_err());
    // A well-formed archive reads back.
    let mut w = CpioWriter::new(Vec::new(), Format::Crc);
    w.write_entry(&CpioHeader::new("dir", 0o040755, 0), b"")
        .unwrap();
    w.write_entry(&CpioHeader::new("dir/f", 0o100600, 0), b"xyz")
        .unwrap();
    let bytes = w.finish().unwrap();
    assert_eq!(bytes.len() % 4, 0);
    let mut r = CpioReader::new(bytes.as_slice());
    assert_eq!(r.next_entry().unwrap().unwrap().name, b"dir");
    let f = r.next_entry().unwrap().unwrap();
    assert_eq!(
        (f.filesize, f.check),
        (3, u32::from(b'x') + u32::from(b'y') + u32::from(b'z'))
    );
    assert_eq!(r.read_data(16).unwrap(), b"xyz");
    assert!(r.next_entry().unwrap().is_none());
    assert_eq!(r.consumed(), bytes.len() as u64);
}

/// The first `want` bytes of a GNU cpio archive (`find | cpio -o`) of real binaries from
/// /usr: initrd-like content for the compressors.
fn real_cpio(dir: &Path, want: u64) -> PathBuf {
    let out = dir.join("real.cpio");
    sh(
        "find /usr/bin /usr/lib -maxdepth 2 -type f 2>/dev/null | LC_ALL=C sort | \
         cpio -o -H newc --quiet 2>/dev/null | head -c \"$2\" > \"$1\"",
        &[s(&out), &want.to_string()],
    );
    out
}

#[test]
fn encoders_are_independent_of_worker_count_and_bounded() {
    if !need_all(
        &[Compression::Zstd, Compression::Xz],
        "encoders_are_independent_of_worker_count_and_bounded",
    ) || !need(
        "cpio",
        "encoders_are_independent_of_worker_count_and_bounded",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Over two zstd jobs (4 MiB each), so several workers really split the input.
    let input = real_cpio(dir.path(), 9 << 20);
    let data = std::fs::read(&input).unwrap();
    assert!(data.len() > 8 << 20, "only {} bytes of input", data.len());
    let encode = |c: Compression, level: u32, cpus: usize| -> Vec<u8> {
        let mut e = Encoder::with_cpus(Vec::new(), c, Some(level), Some(cpus)).unwrap();
        e.write_all(&data).unwrap();
        e.finish().unwrap()
    };
    for (c, level) in [
        (Compression::Zstd, 3),
        (Compression::Zstd, 19),
        (Compression::Xz, 9),
    ] {
        let one = encode(c, level, 1);
        for cpus in [2, 4] {
            assert!(
                encode(c, level, cpus) == one,
                "{c}:{level} output differs between 1 and {cpus} worker(s)"
            );
        }
        let p = dir.path().join(format!("out-{c}-{level}"));
        std::fs::write(&p, &one).unwrap();
        assert!(
            tool_decompress(c, &p) == data,
            "{c}:{level}: the reference tool disagrees"
        );
        // The window / dictionary the decoder (and the kernel) must allocate is capped.
        let info = match c {
            Compression::Zstd => sh("zstd -lv \"$1\" 2>&1", &[s(&p)]),
            _ => sh("xz -lvv \"$1\" 2>&1", &[s(&p)]),
        };
        let info = String::from_utf8_lossy(&info);
        let ok = match c {
            Compression::Zstd => info.contains("Window Size: 4.00 MiB") || level < 9,
            _ => info.contains("dict=4MiB"),
        };
        assert!(ok, "{c}:{level}: window/dictionary not capped:\n{info}");
    }
}
