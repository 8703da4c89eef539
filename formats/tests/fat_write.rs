//! The FAT writer ([`FatVolume`], [`format`]) and reader timestamps, judged by dosfstools
//! and mtools: volumes made by `mkfs.fat` with files added by `mcopy`, edited by us, then
//! `fsck.fat -n` must be clean, `mdir`/`mcopy`/`mattrib`/`blkid` must see exactly the
//! expected names, contents, times, attributes and identity.

mod common;

use common::{mt, need, noise, run, s};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use subroot_formats::block::{BlockDevice, RawFile};
use subroot_formats::fat::{
    format, raw, FatFormatOptions, FatIdentity, FatTree, FatType, FatVolume,
};
use subroot_formats::hostdir::HostDir;
use subroot_formats::tree::{Kind, TreeSource};
use subroot_formats::Error;

/// `fsck.fat -n` must exit 0 and report nothing to fix.
fn fsck_clean(img: &Path) {
    let out = Command::new(common::which("fsck.fat").expect("fsck.fat"))
        .args(["-n", "-v", s(img)])
        .output()
        .expect("fsck.fat");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "fsck.fat -n failed:\n{text}");
    assert!(
        !text.contains("Free cluster summary"),
        "fsck.fat -n reports the free count:\n{text}"
    );
    for bad in [
        "Dirty bit",
        "wrong",
        "differ",
        "Reclaim",
        "bad cluster",
        "Orphan",
        "ERROR",
    ] {
        assert!(!text.contains(bad), "fsck.fat -n reports `{bad}`:\n{text}");
    }
}

/// Every path in the volume as `mdir -/ -b` lists it (directories end with `/`).
fn mdir_paths(img: &Path) -> BTreeSet<String> {
    let out = Command::new("mdir")
        .args(["-/", "-b", "-i", s(img), "::"])
        .env("LC_ALL", "C.UTF-8")
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .expect("mdir");
    let err = String::from_utf8_lossy(&out.stderr);
    // mdir fails on an empty volume ("File "::" not found").
    assert!(
        out.status.success() || err.contains("not found"),
        "mdir failed: {err}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("::/").map(str::to_string))
        .filter(|l| !l.is_empty())
        .collect()
}

fn blkid(img: &Path) -> BTreeSet<String> {
    run("blkid", &["-p", "-o", "export", s(img)])
        .stdout
        .split(|&b| b == b'\n')
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .filter(|l| {
            ["UUID=", "LABEL=", "VERSION="]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect()
}

fn touch(p: &Path, sec: i64) {
    run("touch", &["-h", "-d", &format!("@{sec}"), s(p)]);
}

fn mtime(p: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p).unwrap().mtime()
}

/// A FAT image of `bits` made by mkfs.fat, with `old.txt` and `keep/inner.txt` added by
/// mcopy (mtimes 2019-06-01 12:34:57 and 2020-02-29 23:59:58 UTC).
fn mkfat(dir: &Path, bits: u8) -> std::path::PathBuf {
    let img = dir.join(format!("fat{bits}.img"));
    let size = match bits {
        12 => 4 << 20,
        16 => 32 << 20,
        _ => 64 << 20,
    };
    std::fs::File::create(&img).unwrap().set_len(size).unwrap();
    let mut args = vec![
        "-F",
        match bits {
            12 => "12",
            16 => "16",
            _ => "32",
        },
    ];
    args.extend(["-n", "OLDLABEL", "-i", "C0FFEE42"]);
    if bits == 32 {
        args.extend(["-s", "1"]);
    }
    args.push(s(&img));
    run("mkfs.fat", &args);
    let pre = dir.join(format!("pre{bits}"));
    std::fs::create_dir_all(pre.join("keep")).unwrap();
    std::fs::write(pre.join("old.txt"), b"old content\n").unwrap();
    std::fs::write(pre.join("keep/inner.txt"), noise(5000, 7)).unwrap();
    touch(&pre.join("old.txt"), 1_559_392_497);
    touch(&pre.join("keep/inner.txt"), 1_583_020_798);
    mt(
        "mcopy",
        &["-m", "-i", s(&img), s(&pre.join("old.txt")), "::"],
    );
    mt(
        "mcopy",
        &["-s", "-m", "-i", s(&img), s(&pre.join("keep")), "::"],
    );
    img
}

/// The #3 gap: our reader's mtimes agree with what mtools shows (`mdir` minutes, `mcopy
/// -m` seconds) for files mcopy wrote with known mtimes.
fn reader_times_agree(img: &Path, work: &Path) {
    let t = FatTree::open(RawFile::open(img).unwrap()).unwrap();
    for (path, want) in [
        ("old.txt", 1_559_392_496i64),
        ("keep/inner.txt", 1_583_020_798),
    ] {
        let e = t.entry(path.as_bytes()).unwrap();
        assert_eq!(e.meta.mtime.sec, want, "{path}: our reader's mtime");
        let out = work.join("out-time");
        let _ = std::fs::remove_file(&out);
        mt(
            "mcopy",
            &["-m", "-i", s(img), &format!("::/{path}"), s(&out)],
        );
        assert_eq!(mtime(&out), e.meta.mtime.sec, "{path}: mcopy -m agrees");
    }
    let listing = mt("mdir", &["-i", s(img), "::"]);
    assert!(
        listing.contains("2019-06-01  12:34"),
        "mdir shows old.txt at 12:34:\n{listing}"
    );
}

fn source_tree(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("hello.txt"), b"hello\n").unwrap();
    std::fs::write(
        src.join("Long File Name With Spaces.data"),
        noise(100_000, 1),
    )
    .unwrap();
    std::fs::write(src.join("Ünïcode ñame – ✓.txt"), "grüße\n").unwrap();
    std::fs::write(src.join("sub/deeper/x.bin"), noise(70_000, 2)).unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::write(src.join("readonly.cfg"), b"ro\n").unwrap();
    std::fs::set_permissions(
        src.join("readonly.cfg"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    for (i, p) in [
        "hello.txt",
        "Long File Name With Spaces.data",
        "Ünïcode ñame – ✓.txt",
        "sub/deeper/x.bin",
        "empty",
        "readonly.cfg",
        "sub/deeper",
        "sub",
    ]
    .iter()
    .enumerate()
    {
        touch(&src.join(p), 1_600_000_001 + 86_400 * i as i64 * 37);
    }
    src
}

const SRC_PATHS: &[&str] = &[
    "hello.txt",
    "Long File Name With Spaces.data",
    "Ünïcode ñame – ✓.txt",
    "sub/",
    "sub/deeper/",
    "sub/deeper/x.bin",
    "empty",
    "readonly.cfg",
];

fn put_and_check(bits: u8) {
    let test = "fat_put_tree";
    for t in ["mkfs.fat", "fsck.fat", "mcopy", "mdir", "mattrib", "blkid"] {
        if !need(t, test) {
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let img = mkfat(dir.path(), bits);
    reader_times_agree(&img, dir.path());
    let ident_before = blkid(&img);
    let src = source_tree(dir.path());
    let repl = dir.path().join("repl");
    std::fs::create_dir(&repl).unwrap();
    std::fs::write(repl.join("old.txt"), b"new content, longer than before\n").unwrap();
    touch(&repl.join("old.txt"), 1_700_000_000);

    let mut v = FatVolume::open(RawFile::open_rw(&img).unwrap()).unwrap();
    assert_eq!(v.fat_type().bits(), bits);
    assert_eq!(v.volume_id(), 0xC0FF_EE42);
    assert_eq!(v.label().unwrap().as_deref(), Some("OLDLABEL"));
    let st = v
        .put_tree(&HostDir::open(&src).unwrap(), b"", b"dest/nested")
        .unwrap();
    assert_eq!((st.files, st.bytes), (6, 6 + 100_000 + 8 + 70_000 + 3));
    let st = v
        .put_tree(&HostDir::open(&repl).unwrap(), b"old.txt", b"OLD.TXT")
        .unwrap();
    assert_eq!((st.files, st.replaced), (1, 1));
    v.into_inner().unwrap();
    fsck_clean(&img);
    assert_eq!(blkid(&img), ident_before, "volume id, label and type kept");
    let mut want: BTreeSet<String> = [
        "old.txt",
        "keep/",
        "keep/inner.txt",
        "dest/",
        "dest/nested/",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    want.extend(SRC_PATHS.iter().map(|p| format!("dest/nested/{p}")));
    assert_eq!(mdir_paths(&img), want);

    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    mt("mcopy", &["-s", "-m", "-i", s(&img), "::/dest", s(&out)]);
    for p in SRC_PATHS.iter().filter(|p| !p.ends_with('/')) {
        let a = std::fs::read(src.join(p)).unwrap();
        let b = std::fs::read(out.join("dest/nested").join(p)).unwrap();
        assert!(a == b, "{p}: content differs");
        let want_t = mtime(&src.join(p)) & !1;
        assert_eq!(
            mtime(&out.join("dest/nested").join(p)),
            want_t,
            "{p}: mtime"
        );
    }
    let old = mt("mtype", &["-i", s(&img), "::/old.txt"]);
    assert_eq!(old, "new content, longer than before\n");
    let attrs = mt("mattrib", &["-i", s(&img), "::/dest/nested/readonly.cfg"]);
    let flags = attrs.split("::/").next().unwrap();
    assert!(flags.contains('R') && flags.contains('A'), "{attrs}");
    let attrs = mt("mattrib", &["-i", s(&img), "::/dest/nested/hello.txt"]);
    assert!(!attrs.split("::/").next().unwrap().contains('R'), "{attrs}");
    let listing = mt("mdir", &["-i", s(&img), "::/dest/nested/sub"]);
    // sub/deeper's mtime (index 6 above) as mdir prints it.
    let want_dir = 1_600_000_001 + 86_400 * 6 * 37;
    let d = run("date", &["-u", "-d", &format!("@{want_dir}"), "+%Y-%m-%d"]).stdout;
    let d = String::from_utf8_lossy(&d).trim().to_string();
    assert!(
        listing
            .lines()
            .any(|l| l.to_lowercase().starts_with("deeper") && l.contains(&d)),
        "directory mtime {d} in:\n{listing}"
    );

    // Our reader sees what we wrote.
    let t = FatTree::open(RawFile::open(&img).unwrap()).unwrap();
    let e = t.entry("dest/nested/readonly.cfg".as_bytes()).unwrap();
    assert_eq!(e.meta.perm, 0o444);
    assert_eq!(e.meta.mtime.sec, mtime(&src.join("readonly.cfg")) & !1);
    let e = t.entry("dest/nested/sub/deeper".as_bytes()).unwrap();
    assert_eq!(e.meta.mtime.sec, want_dir & !1);

    // Removal.
    let mut v = FatVolume::open(RawFile::open_rw(&img).unwrap()).unwrap();
    let err = v.remove(b"dest/nested/sub", false).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
    let err = v.remove(b"nope", false).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    let err = v.remove(b"/", true).unwrap_err();
    assert!(err.to_string().contains("root"), "{err}");
    v.remove(b"dest/nested/sub", true).unwrap();
    v.remove("dest/nested/Ünïcode ñame – ✓.txt".as_bytes(), false)
        .unwrap();
    v.remove(b"KEEP/inner.txt", false).unwrap();
    v.remove(b"keep", false).unwrap();
    v.into_inner().unwrap();
    fsck_clean(&img);
    let got = mdir_paths(&img);
    for gone in [
        "dest/nested/sub/",
        "dest/nested/sub/deeper/x.bin",
        "keep/",
        "keep/inner.txt",
    ] {
        assert!(want.remove(gone), "{gone}");
    }
    want.remove("dest/nested/sub/deeper/");
    want.remove("dest/nested/Ünïcode ñame – ✓.txt");
    assert_eq!(got, want);
    assert_eq!(blkid(&img), ident_before);
}

#[test]
fn put_tree_fat12() {
    put_and_check(12);
}

#[test]
fn put_tree_fat16() {
    put_and_check(16);
}

#[test]
fn put_tree_fat32() {
    put_and_check(32);
}

#[test]
fn format_esp_and_like() {
    let test = "format_esp_and_like";
    for t in ["mkfs.fat", "fsck.fat", "mdir", "blkid"] {
        if !need(t, test) {
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("esp.img");
    let dev = RawFile::create(&img, 40 << 20).unwrap();
    let id = format(
        &dev,
        &FatFormatOptions {
            esp: true,
            label: Some("EFI".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(id.fat_type, FatType::Fat32);
    drop(dev);
    fsck_clean(&img);
    let b = blkid(&img);
    assert!(
        b.contains("VERSION=FAT32") && b.contains("LABEL=EFI"),
        "{b:?}"
    );
    let uuid = format!(
        "UUID={:04X}-{:04X}",
        id.volume_id >> 16,
        id.volume_id & 0xFFFF
    );
    assert!(b.contains(&uuid), "{b:?} vs {uuid}");

    // Two ESPs get different random ids.
    let img2 = dir.path().join("esp2.img");
    let dev2 = RawFile::create(&img2, 40 << 20).unwrap();
    let id2 = format(
        &dev2,
        &FatFormatOptions {
            esp: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_ne!(id.volume_id, id2.volume_id);

    // Too small for FAT32; a FAT12/16 ESP is refused.
    let small = RawFile::create(dir.path().join("small.img"), 8 << 20).unwrap();
    let err = format(
        &small,
        &FatFormatOptions {
            esp: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(_) | Error::Io { .. }),
        "{err}"
    );
    let err = format(
        &dev2,
        &FatFormatOptions {
            esp: true,
            fat_type: Some(FatType::Fat16),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("FAT32"), "{err}");
    let err = format(
        &dev2,
        &FatFormatOptions {
            label: Some("a/b".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("label"), "{err}");

    // "Like" an mkfs.fat volume: type, id, label and cluster size kept.
    for bits in [12u8, 16, 32] {
        let orig = mkfat(dir.path(), bits);
        let want = FatIdentity::read(&RawFile::open(&orig).unwrap()).unwrap();
        assert_eq!(want.volume_id, 0xC0FF_EE42);
        assert_eq!(want.label.as_deref(), Some("OLDLABEL"));
        assert_eq!(want.fat_type.bits(), bits);
        let copy = dir.path().join(format!("like{bits}.img"));
        let len = std::fs::metadata(&orig).unwrap().len();
        let dev = RawFile::create(&copy, len).unwrap();
        let got = format(&dev, &want.options()).unwrap();
        assert_eq!(got, want);
        drop(dev);
        fsck_clean(&copy);
        assert_eq!(blkid(&copy), blkid(&orig));
        assert!(mdir_paths(&copy).is_empty());
    }
}

#[test]
fn refuses_what_fat_cannot_hold() {
    if !need("mkfs.fat", "refuses_what_fat_cannot_hold") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("f.img");
    let dev = RawFile::create(&img, 4 << 20).unwrap();
    format(&dev, &FatFormatOptions::default()).unwrap();
    drop(dev);
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("a/f"), b"x").unwrap();
    std::os::unix::fs::symlink("f", src.join("a/link")).unwrap();
    let mut v = FatVolume::open(RawFile::open_rw(&img).unwrap()).unwrap();
    let err = v
        .put_tree(&HostDir::open(&src).unwrap(), b"", b"")
        .unwrap_err();
    assert!(
        err.to_string().contains("/a/link") && err.to_string().contains("symlink"),
        "{err}"
    );
    std::fs::remove_file(src.join("a/link")).unwrap();
    std::fs::hard_link(src.join("a/f"), src.join("a/g")).unwrap();
    let err = v
        .put_tree(&HostDir::open(&src).unwrap(), b"", b"")
        .unwrap_err();
    assert!(err.to_string().contains("hard link"), "{err}");
    std::fs::remove_file(src.join("a/g")).unwrap();
    std::fs::write(src.join("A"), b"x").unwrap();
    let err = v
        .put_tree(&HostDir::open(&src).unwrap(), b"", b"fresh")
        .unwrap_err();
    assert!(err.to_string().contains("case"), "{err}");
    drop(v);
    if need("fsck.fat", "refuses_what_fat_cannot_hold") {
        fsck_clean(&img);
    }
}

/// A FAT16 image with directory `dir` (files inside) and a file, made by mtools.
fn victim(dir: &Path) -> std::path::PathBuf {
    let img = dir.join("v.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    run("mkfs.fat", &["-F", "16", s(&img)]);
    let src = dir.join("vsrc");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    for i in 0..40 {
        std::fs::write(src.join(format!("dir/file number {i}.txt")), noise(3000, i)).unwrap();
    }
    mt("mcopy", &["-s", "-i", s(&img), s(&src.join("dir")), "::"]);
    img
}

#[test]
fn corrupt_inputs_are_errors() {
    let test = "corrupt_inputs_are_errors";
    if !need("mkfs.fat", test) || !need("mcopy", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("add");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("new.txt"), b"new").unwrap();
    let add = HostDir::open(&src).unwrap();

    // Truncated.
    let img = victim(dir.path());
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.set_len(1 << 20).unwrap();
    drop(f);
    let err = FatVolume::open(RawFile::open_rw(&img).unwrap()).unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
    if let Ok(t) = FatTree::open(RawFile::open(&img).unwrap()) {
        let _ = t.walk(b"", &mut |_, _| Ok(()));
    }

    // Bad BPB: 768 bytes per sector, 0 sectors per cluster.
    for (off, bytes) in [(11u64, &[0x00u8, 0x03][..]), (13, &[0][..])] {
        let img = victim(dir.path());
        let dev = RawFile::open_rw(&img).unwrap();
        dev.write_at(bytes, off).unwrap();
        drop(dev);
        let err = FatVolume::open(RawFile::open_rw(&img).unwrap()).unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{err}");
        assert!(err.to_string().contains("boot sector"), "{err}");
        assert!(FatTree::open(RawFile::open(&img).unwrap()).is_err());
    }

    // A FAT chain loop: the last cluster of `dir` points back to its first.
    let img = victim(dir.path());
    let dev = RawFile::open_rw(&img).unwrap();
    let geo = raw::geometry(&dev).unwrap();
    let (_, e) = raw::find_entry(&dev, &geo, &[*b"DIR        "]).unwrap();
    let first = raw::first_cluster(&e, geo.fat_bits);
    let mut last = first;
    while let Some(n) = geo.next(&dev, last).unwrap() {
        last = n;
    }
    assert!(last != first, "the directory spans several clusters");
    for fat in 0..2 {
        let off = geo.fat_offset + fat * geo.fat_bytes + 2 * u64::from(last);
        dev.write_at(&(first as u16).to_le_bytes(), off).unwrap();
    }
    drop(dev);
    let mut v = FatVolume::open(RawFile::open_rw(&img).unwrap()).unwrap();
    let err = v.put_tree(&add, b"", b"dir/sub").unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("loop"), "{err}");
    let mut v = FatVolume::open(RawFile::open_rw(&img).unwrap()).unwrap();
    let err = v.remove(b"dir", true).unwrap_err();
    assert!(err.to_string().contains("loop"), "{err}");
    let t = FatTree::open(RawFile::open(&img).unwrap()).unwrap();
    let mut n = 0;
    let _ = t.walk(b"", &mut |_, _| {
        n += 1;
        Ok(())
    });
    let _ = Kind::Dir;
}
