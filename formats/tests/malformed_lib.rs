//! Crafted bad ext, cpio and tar inputs (and fuzzer findings on FAT, from `tests/data/`), driven through the library because no CLI command
//! reads ext trees or initrds yet (tar archives: GNU tar's pax sparse 1.0 and GNU formats,
//! cut anywhere, with a damaged sparse map, real size or pax record length) (the qcow2, MBR/GPT and backing-chain cases go through
//! the CLI in `tests/malformed.rs`). Inputs are real images made by `mke2fs -d` and
//! `cpio -o -H newc` (+ gzip/xz/zstd), then damaged in one place. Each must give an
//! `Err` whose message names the problem (never a panic, never an allocation for a
//! claimed size), and the undamaged original must read fine.

mod common;

use common::{need, run, run_stdout, s};
use std::path::Path;
use subroot_formats::block::MemoryDevice;
use subroot_formats::cpio::visit_entries;
use subroot_formats::ext::{ExtFs, InodeKind};
use subroot_formats::tree::check_relative_path;

fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

fn patched(img: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut v = img.to_vec();
    v[at..at + bytes.len()].copy_from_slice(bytes);
    v
}

/// Walk a whole ext tree the way a consumer would; the first error wins.
fn walk_ext(img: Vec<u8>) -> subroot_formats::Result<usize> {
    let fs = ExtFs::open(MemoryDevice::from_vec(img))?;
    let mut stack = vec![2u32];
    let mut seen = 0;
    while let Some(ino) = stack.pop() {
        seen += 1;
        assert!(seen < 10_000, "walk does not terminate");
        let inode = fs.inode(ino)?;
        fs.xattrs(ino)?;
        match inode.kind() {
            InodeKind::Dir => {
                for e in fs.read_dir(ino)? {
                    if e.name != b"." && e.name != b".." {
                        stack.push(e.ino);
                    }
                }
            }
            InodeKind::Symlink => {
                fs.read_link(ino)?;
            }
            InodeKind::File => {
                // Bounded: a lying size must be refused, not read for ever.
                let f = fs.open_file(ino)?;
                f.extents()?;
                let mut buf = vec![0u8; 1 << 20];
                let mut off = 0u64;
                while off < f.size() {
                    assert!(off < 64 << 20, "inode {ino}: read 64 MiB of a tiny image");
                    match f.read_at(&mut buf, off)? {
                        0 => break,
                        n => off += n as u64,
                    }
                }
            }
            _ => {}
        }
    }
    Ok(seen)
}

fn expect_err<T: std::fmt::Debug>(what: &str, r: subroot_formats::Result<T>, phrases: &[&str]) {
    let e = match r {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    };
    if std::env::var_os("MALFORMED_SHOW").is_some() {
        eprintln!("{what}: {e}");
    }
    assert!(!e.is_empty(), "{what}: empty error message");
    for p in phrases {
        assert!(e.contains(p), "{what}: error {e:?} lacks {p:?}");
    }
}

/// Where debugfs says `path`'s inode lives: (byte offset of the inode, its extent/ block
/// array's first data block).
fn debugfs_inode(img: &Path, path: &str) -> (usize, u64) {
    let ino: u32 = run_stdout("debugfs", &["-R", &format!("stat {path}"), s(img)])
        .split("Inode: ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("inode number");
    let imap = run_stdout("debugfs", &["-R", &format!("imap <{ino}>"), s(img)]);
    // "Inode N is part of block group G\n\tlocated at block B, offset 0xOFF"
    let blk: u64 = imap
        .split("located at block ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .expect("block");
    let off = imap
        .split("offset 0x")
        .nth(1)
        .and_then(|t| usize::from_str_radix(t.trim(), 16).ok())
        .expect("offset");
    let first: u64 = run_stdout("debugfs", &["-R", &format!("bmap {path} 0"), s(img)])
        .trim()
        .parse()
        .expect("bmap");
    (blk as usize * 1024 + off, first)
}

#[test]
fn malformed_ext_images_fail_cleanly() {
    if !need("mke2fs", "malformed_ext_images_fail_cleanly")
        || !need("debugfs", "malformed_ext_images_fail_cleanly")
    {
        return;
    }
    let d = tempfile::tempdir().expect("tempdir");
    let tree = d.path().join("tree");
    std::fs::create_dir_all(tree.join("dir")).expect("mkdir");
    std::fs::write(tree.join("dir/file"), vec![0x5au8; 40_000]).expect("write");
    std::os::unix::fs::symlink("dir/file", tree.join("link")).expect("symlink");
    let mk = |name: &str, features: &str| {
        let img = d.path().join(name);
        run("truncate", &["-s", "4M", s(&img)]);
        run(
            "mke2fs",
            &[
                "-q",
                "-F",
                "-b",
                "1024",
                "-t",
                "ext4",
                "-O",
                features,
                "-E",
                "root_owner=0:0",
                "-d",
                s(&tree),
                s(&img),
            ],
        );
        let bytes = std::fs::read(&img).expect("read");
        assert!(walk_ext(bytes.clone()).expect("the undamaged image reads") >= 4);
        (img, bytes)
    };
    // With metadata_csum (checksum cases) and without (so structural checks are reached).
    let (_, good) = mk("csum.img", "metadata_csum,^has_journal");
    let (plain_img, plain) = mk("plain.img", "^metadata_csum,^has_journal,^uninit_bg");
    let sb = 1024;
    let (file_inode, file_block) = debugfs_inode(&plain_img, "/dir/file");
    let (_, dir_block) = debugfs_inode(&plain_img, "/dir");

    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "truncated to 1.5 KiB",
            good[..1536].to_vec(),
            vec!["too small"],
        ),
        (
            "truncated to 100 KiB",
            good[..100 << 10].to_vec(),
            vec!["device has only"],
        ),
        (
            "bad magic",
            patched(&good, sb + 0x38, &[0, 0]),
            vec!["magic"],
        ),
        (
            "block size 2^30",
            patched(&good, sb + 0x18, &le32(20)),
            vec!["s_log_block_size"],
        ),
        (
            "lying inode count",
            patched(&good, sb, &le32(0xffff_fff0)),
            vec!["inodes"],
        ),
        // One byte of the superblock changed: its crc32c no longer matches.
        (
            "superblock checksum",
            patched(&good, sb + 0x100, &[0x42]),
            vec!["checksum"],
        ),
        // The first group descriptor's inode table moved: its checksum no longer matches.
        (
            "group descriptor checksum",
            patched(&good, 2048 + 8, &le32(3)),
            vec!["checksum"],
        ),
        // The file's extent header says depth 1 with one index entry pointing at the data
        // block, which is not an extent node.
        (
            "extent index to a data block",
            {
                let ib = file_inode + 0x28;
                let mut v = patched(&plain, ib + 6, &1u16.to_le_bytes());
                v[ib + 12..ib + 24].fill(0);
                v[ib + 16..ib + 20].copy_from_slice(&le32(file_block as u32));
                v
            },
            vec!["extent header", "magic"],
        ),
        // A directory entry with rec_len 0 (a loop in the entry chain).
        (
            "dir rec_len 0",
            patched(&plain, dir_block as usize * 1024 + 4, &[0, 0]),
            vec!["rec_len 0"],
        ),
        // A directory entry naming inode 2^31 (beyond the inode count).
        (
            "dir entry inode out of range",
            patched(&plain, dir_block as usize * 1024 + 24, &le32(0x8000_0000)),
            vec!["inode number 2147483648"],
        ),
    ];
    for (what, img, phrases) in cases {
        expect_err(what, walk_ext(img), &phrases);
    }

    // A file claiming 2^60 bytes is legal ext (the kernel reads the tail as a hole), so
    // it opens; but its extents still describe only the 40 000 real bytes, so a consumer
    // that follows extents does work proportional to the data, not the claimed size.
    let mut lying = plain.clone();
    lying[file_inode + 0x6c..file_inode + 0x70].copy_from_slice(&le32(1 << 28));
    let fs = ExtFs::open(MemoryDevice::from_vec(lying)).expect("open");
    let ino = fs.lookup(b"/dir/file").expect("lookup");
    let f = fs.open_file(ino).expect("open_file");
    assert_eq!(f.size(), (1u64 << 60) + 40_000);
    let ext = f.extents().expect("extents");
    let data: u64 = ext
        .iter()
        .filter(|e| e.kind == subroot_formats::block::ExtentKind::Data)
        .map(|e| e.len)
        .sum();
    assert!(data <= 40_960, "{ext:?}");
    assert!(ext.len() <= 4, "{ext:?}");
}

/// A newc archive of a small tree, made by GNU cpio.
fn cpio_archive(dir: &Path) -> Vec<u8> {
    let tree = dir.join("t");
    std::fs::create_dir_all(tree.join("etc")).expect("mkdir");
    std::fs::write(tree.join("etc/hostname"), b"box\n").expect("write");
    std::fs::write(tree.join("init"), vec![7u8; 3000]).expect("write");
    let list = dir.join("list");
    std::fs::write(&list, "etc\netc/hostname\ninit\n").expect("write");
    let out = dir.join("a.cpio");
    let sh = format!(
        "cd {} && cpio -o -H newc --quiet < {} > {}",
        s(&tree),
        s(&list),
        s(&out)
    );
    run("sh", &["-c", &sh]);
    std::fs::read(&out).expect("read")
}

fn walk_cpio(data: Vec<u8>) -> subroot_formats::Result<Vec<Vec<u8>>> {
    let dev = MemoryDevice::from_vec(data);
    let mut names = Vec::new();
    visit_entries(&dev, |_, h, r| {
        names.push(h.name.clone());
        let mut sink = Vec::new();
        r.read_to_end(&mut sink)
            .map_err(|e| subroot_formats::Error::io("reading entry data", e))?;
        Ok(())
    })?;
    Ok(names)
}

#[test]
fn malformed_cpio_archives_fail_cleanly() {
    if !need("cpio", "malformed_cpio_archives_fail_cleanly")
        || !need("gzip", "malformed_cpio_archives_fail_cleanly")
        || !need("xz", "malformed_cpio_archives_fail_cleanly")
        || !need("zstd", "malformed_cpio_archives_fail_cleanly")
    {
        return;
    }
    let d = tempfile::tempdir().expect("tempdir");
    let good = cpio_archive(d.path());
    assert_eq!(walk_cpio(good.clone()).expect("good archive").len(), 3);
    let hex8 = |v: u32| format!("{v:08X}").into_bytes();
    // Header fields (newc): magic 0..6, then 8-hex-digit fields; filesize at 54,
    // namesize at 94; the name at 110.
    let first_file = good
        .windows(b"etc/hostname\0".len())
        .position(|w| w == b"etc/hostname\0")
        .expect("entry")
        - 110;
    let trailer = good
        .windows(b"TRAILER!!!".len())
        .position(|w| w == b"TRAILER!!!")
        .expect("trailer")
        - 110;
    let mut cases: Vec<(String, Vec<u8>, Vec<&str>)> = vec![
        (
            "bad magic".into(),
            patched(&good, 0, b"070799"),
            vec!["cpio"],
        ),
        (
            "4 GiB name".into(),
            patched(&good, 94, &hex8(0xffff_ffff)),
            vec!["name size"],
        ),
        (
            "4 GiB file".into(),
            patched(&good, first_file + 54, &hex8(0xffff_fff0)),
            vec!["truncated"],
        ),
        (
            "non-hex field".into(),
            patched(&good, 54, b"zzzzzzzz"),
            vec!["filesize"],
        ),
        (
            "missing trailer".into(),
            good[..trailer].to_vec(),
            vec!["no TRAILER!!! seen"],
        ),
    ];
    for cut in [3, 60, 112, first_file + 115, first_file + 118] {
        let phrase = if cut == 3 {
            "expected a cpio archive"
        } else {
            "truncated"
        };
        cases.push((
            format!("truncated at {cut}"),
            good[..cut].to_vec(),
            vec![phrase],
        ));
    }
    // Compressed segments, damaged: a flipped byte in the middle, and truncated.
    for (tool, args) in [
        ("gzip", "-c"),
        ("xz", "-c --check=crc32"),
        ("zstd", "-c -q"),
    ] {
        let raw = d.path().join("a.cpio");
        std::fs::write(&raw, &good).expect("write");
        let out = d.path().join(format!("a.{tool}"));
        run(
            "sh",
            &["-c", &format!("{tool} {args} {} > {}", s(&raw), s(&out))],
        );
        let z = std::fs::read(&out).expect("read");
        assert_eq!(walk_cpio(z.clone()).expect(tool).len(), 3, "{tool}");
        let mid = z.len() / 2;
        let mut flipped = z.clone();
        flipped[mid] ^= 0xff;
        cases.push((format!("{tool} corrupted"), flipped, vec![tool]));
        cases.push((format!("{tool} truncated"), z[..mid].to_vec(), vec![tool]));
    }
    for (what, data, phrases) in cases {
        expect_err(&what, walk_cpio(data), &phrases);
    }
}

#[test]
fn hostile_cpio_names_are_reported_and_rejected_as_paths() {
    if !need(
        "cpio",
        "hostile_cpio_names_are_reported_and_rejected_as_paths",
    ) {
        return;
    }
    // GNU cpio writes what it is given; the names below are the attack.
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(d.path().join("f"), b"x").expect("write");
    let hostile = [
        "../../etc/shadow",
        "/etc/passwd",
        "a/../../b",
        "a//b",
        "./x/.",
    ];
    let mut archive = Vec::new();
    for name in hostile {
        // Rename the one-entry archive's member by patching its name field in place
        // (same length), so the header stays valid.
        let out = d.path().join("one.cpio");
        let sh = format!(
            "cd {} && echo f | cpio -o -H newc --quiet > {}",
            s(d.path()),
            s(&out)
        );
        run("sh", &["-c", &sh]);
        let mut one = std::fs::read(&out).expect("read");
        let trailer = one
            .windows(b"TRAILER!!!".len())
            .position(|w| w == b"TRAILER!!!")
            .expect("trailer")
            - 110;
        let mut hdr = one[..110].to_vec();
        hdr[94..102].copy_from_slice(format!("{:08X}", name.len() + 1).as_bytes());
        let mut entry = hdr;
        entry.extend_from_slice(name.as_bytes());
        entry.push(0);
        while entry.len() % 4 != 0 {
            entry.push(0);
        }
        // "f\0" ends at 112, already 4-byte aligned: the data starts there.
        let data_start = 112;
        entry.extend_from_slice(&one[data_start..trailer]);
        one.truncate(0);
        archive.extend_from_slice(&entry);
    }
    // The trailer, from a fresh archive.
    let empty = d.path().join("empty.cpio");
    run(
        "sh",
        &[
            "-c",
            &format!("cpio -o -H newc --quiet < /dev/null > {}", s(&empty)),
        ],
    );
    archive.extend_from_slice(&std::fs::read(&empty).expect("read"));
    let names = walk_cpio(archive).expect("hostile names are still a valid archive");
    assert_eq!(names.len(), hostile.len());
    for (got, want) in names.iter().zip(hostile) {
        assert_eq!(got, want.as_bytes());
        assert!(
            check_relative_path(got).is_err(),
            "{want:?} passed the safe-path check"
        );
    }
}

/// A GNU tar archive of a small tree with a sparse file, in `format` (pax uses GNU sparse
/// 1.0), made in `dir`.
fn gnu_tar(dir: &Path, format: &str) -> Vec<u8> {
    let t = dir.join("t");
    if !t.exists() {
        std::fs::create_dir_all(t.join("d")).expect("mkdir");
        std::fs::write(t.join("d/f"), b"file data").expect("write");
        let f = std::fs::File::create(t.join("sparse")).expect("create");
        f.set_len(1 << 20).expect("truncate");
        std::os::unix::fs::FileExt::write_at(&f, b"middle", 500_000).expect("write");
    }
    let out = dir.join(format!("{format}.tar"));
    run(
        "tar",
        &[
            "--sort=name",
            "-S",
            "--sparse-version=1.0",
            &format!("--format={format}"),
            "-cf",
            s(&out),
            "-C",
            s(&t),
            ".",
        ],
    );
    std::fs::read(&out).expect("read")
}

fn walk_tar(data: Vec<u8>) -> subroot_formats::Result<usize> {
    use subroot_formats::tar::TarTree;
    use subroot_formats::tree::TreeSource;
    let mut n = 0;
    TarTree::new(MemoryDevice::from_vec(data)).walk(b"", &mut |_, c| {
        if let Some(c) = c {
            let mut v = Vec::new();
            c.read_to_end(&mut v)
                .map_err(|e| subroot_formats::Error::io("reading content", e))?;
        }
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

fn find(h: &[u8], n: &[u8]) -> usize {
    h.windows(n.len()).position(|w| w == n).expect("pattern")
}

#[test]
fn malformed_gnu_tar_archives_fail_cleanly() {
    if !need("tar", "malformed_gnu_tar_archives_fail_cleanly") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pax = gnu_tar(dir.path(), "pax");
    let gnu = gnu_tar(dir.path(), "gnu");
    assert_eq!(walk_tar(pax.clone()).expect("pax"), 4);
    assert_eq!(walk_tar(gnu.clone()).expect("gnu"), 4);
    // Cut anywhere: an error or (at a member boundary) fewer entries, never a panic.
    for data in [&pax, &gnu] {
        for cut in (0..data.len()).step_by(97) {
            let _ = walk_tar(data[..cut].to_vec());
        }
    }
    // GNU sparse 1.0: the map (decimal lines at the start of the data) claims too much.
    let h = find(&pax, b"GNUSparseFile.") / 512 * 512;
    assert!(pax[h + 512].is_ascii_digit() && pax[h + 513] == b'\n');
    let bad = patched(&pax, h + 512, b"9");
    expect_err("sparse 1.0 map count", walk_tar(bad), &["sparse"]);
    // Old GNU sparse: the real size is smaller than the map's last segment.
    let h = find(&gnu, b"sparse\0") / 512 * 512;
    let mut bad = patched(&gnu, h + 483, b"00000000001\0");
    bad[h + 148..h + 156].fill(b' ');
    let sum: u32 = bad[h..h + 512].iter().map(|&x| u32::from(x)).sum();
    bad[h + 148..h + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    expect_err(
        "old GNU sparse realsize",
        walk_tar(bad),
        &["beyond the real size"],
    );
    // A pax record whose length runs past the extended header.
    let at = find(&pax, b" mtime=");
    let bad = patched(&pax, at - 2, b"99");
    expect_err("pax length", walk_tar(bad), &["pax record"]);
}

/// Fuzzer findings on the FAT reader, kept as regression inputs in `tests/data/`:
/// each must end (quickly) in a clear `Corrupt` error, never a hang or a panic.
#[test]
fn fat_fuzz_findings_end_cleanly() {
    use subroot_formats::fat::FatTree;
    use subroot_formats::tree::TreeSource;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    // A subdirectory whose cluster chain loops through free slots: fatfs would read it
    // forever without returning an entry (libFuzzer: timeout).
    let img = std::fs::read(data.join("fat-timeout-1.bin")).expect("read the fuzz input");
    let started = std::time::Instant::now();
    let tree = FatTree::open(MemoryDevice::from_vec(img)).expect("the boot sector is fine");
    let r = tree.walk(b"", &mut |_, c| {
        if let Some(c) = c {
            std::io::copy(c, &mut std::io::sink())
                .map_err(|e| subroot_formats::Error::io("reading", e))?;
        }
        Ok(())
    });
    expect_err("looping FAT directory", r, &["EFI", "loops"]);
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
}
