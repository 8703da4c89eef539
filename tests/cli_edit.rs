//! Black-box tests of `subroot copy-in`, `subroot rm`, `subroot mkfs --type vfat` and
//! `subroot create ... fs=vfat` (run as uid 65534 when the suite is root), judged by the
//! reference tools: FAT partitions made by `mkfs.fat` inside GPT/MBR disks with files
//! added by `mcopy`; afterwards `fsck.fat -n` is clean, `mdir -/ -b -i IMG@@OFFSET` lists
//! exactly the expected names (long and Unicode ones), `mcopy -m` gives back the contents
//! and mtimes, `blkid` the same volume id, label and FAT type, and `cmp` shows every byte
//! outside the partition unchanged. ext partitions: `subroot manifest` of the result is
//! the input's plus/minus exactly the edits, and `e2fsck -fn` is clean.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;

fn fat_tools(test: &str) -> bool {
    [
        "mkfs.fat", "fsck.fat", "mcopy", "mdir", "blkid", "cmp", "sfdisk", "sgdisk", "touch",
    ]
    .iter()
    .all(|t| need(t, test))
}

/// Paths listed by `mdir -/ -b` of the FAT at `offset` of `img` (directories end in `/`).
fn mdir(img: &Path, offset: u64) -> BTreeSet<String> {
    mt(
        "mdir",
        &["-/", "-b", "-i", &format!("{}@@{offset}", s(img)), "::"],
    )
    .lines()
    .filter_map(|l| l.strip_prefix("::/").map(str::to_string))
    .filter(|l| !l.is_empty())
    .collect()
}

/// The partition at [offset, offset+len) of `img` as its own file.
fn extract(img: &Path, offset: u64, len: u64, out: &Path) {
    sh(
        r#"dd if="$1" of="$2" bs=1M skip="$3" count="$4" status=none"#,
        &[
            s(img),
            s(out),
            &(offset / MIB).to_string(),
            &(len / MIB).to_string(),
        ],
    );
}

fn fsck_fat(part: &Path) {
    let out = Command::new(which("fsck.fat").unwrap())
        .args(["-n", s(part)])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "fsck.fat -n:\n{text}");
    assert_eq!(
        text.lines().count(),
        2,
        "fsck.fat -n reports something:\n{text}"
    );
}

fn blkid(part: &Path) -> BTreeSet<String> {
    run_stdout("blkid", &["-p", "-o", "export", s(part)])
        .lines()
        .filter(|l| {
            ["UUID=", "LABEL=", "VERSION=", "TYPE="]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(str::to_string)
        .collect()
}

fn mtime(p: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p).unwrap().mtime()
}

/// A disk with a `bits`-bit FAT partition 1 at 1 MiB made by mkfs.fat (label OLDLBL, id
/// 1234ABCD) holding `EFI/BOOT/BOOTX64.EFI` and `readme.txt` (added by mcopy), noise in
/// the gap before it and after it. Returns (disk, partition length).
fn fat_disk(dir: &Path, table: &str, bits: u8) -> (PathBuf, u64) {
    let plen = match bits {
        12 => 8 * MIB,
        16 => 32 * MIB,
        _ => 64 * MIB,
    };
    let img = dir.join(format!("fat{bits}-{table}.raw"));
    let part = dir.join(format!("p{bits}.img"));
    let pre = dir.join(format!("pre{bits}"));
    std::fs::create_dir_all(pre.join("EFI/BOOT")).unwrap();
    std::fs::write(
        pre.join("EFI/BOOT/BOOTX64.EFI"),
        subroot_test_support::noise(50_000, 3),
    )
    .unwrap();
    std::fs::write(pre.join("readme.txt"), b"read me\n").unwrap();
    run("touch", &["-d", "@1500000000", s(&pre.join("readme.txt"))]);
    let size = plen / MIB + 4;
    let script = r#"set -e; img="$1"; p="$2"; pre="$3"; table="$4"; bits="$5"; size="$6"; plen="$7"
truncate -s "${size}M" "$img"
if [ "$table" = gpt ]; then
  sgdisk -n "1:2048:+$((plen / 1048576))M" -t 1:ef00 "$img" >/dev/null
else
  printf 'label: dos\nstart=2048, size=%d, type=ef\n' $((plen / 512)) | sfdisk -q "$img"
fi
head -c 500000 /dev/urandom | dd of="$img" bs=512 seek=40 conv=notrunc status=none
head -c 1000000 /dev/urandom | dd of="$img" bs=1M seek=$((plen / 1048576 + 1)) conv=notrunc status=none
truncate -s "$plen" "$p"
extra=""; [ "$bits" = 32 ] && extra="-s 1"
mkfs.fat -F "$bits" $extra -n OLDLBL -i 1234ABCD "$p" >/dev/null
MTOOLS_SKIP_CHECK=1 TZ=UTC mcopy -s -m -i "$p" "$pre/EFI" "$pre/readme.txt" ::
dd if="$p" of="$img" bs=1M seek=1 conv=notrunc status=none
chmod a+r "$img""#;
    sh(
        script,
        &[
            s(&img),
            s(&part),
            s(&pre),
            table,
            &bits.to_string(),
            &size.to_string(),
            &plen.to_string(),
        ],
    );
    (img, plen)
}

/// Host files to copy in: a file with a Unicode long name, a directory tree.
fn host_files(dir: &Path) -> (PathBuf, PathBuf) {
    let file = dir.join("Grüße – notes.txt");
    std::fs::write(&file, "hallo\n").unwrap();
    run("touch", &["-d", "@1600000003", s(&file)]);
    let tree = dir.join("drivers");
    std::fs::create_dir_all(tree.join("x86_64/A Long Directory Name")).unwrap();
    std::fs::write(
        tree.join("x86_64/A Long Directory Name/driver.efi"),
        subroot_test_support::noise(123_457, 9),
    )
    .unwrap();
    std::fs::write(
        tree.join("x86_64/ext4_x64.efi"),
        subroot_test_support::noise(4096, 5),
    )
    .unwrap();
    run(
        "touch",
        &["-d", "@1650000000", s(&tree.join("x86_64/ext4_x64.efi"))],
    );
    sh(r#"chmod -R a+rX "$1" "$2""#, &[s(&file), s(&tree)]);
    (file, tree)
}

#[test]
fn fat_copy_in_rm_mkfs_in_gpt_and_mbr() {
    let test = "fat_copy_in_rm_mkfs_in_gpt_and_mbr";
    if !fat_tools(test) {
        return;
    }
    for (table, bits) in [("gpt", 32u8), ("mbr", 16), ("gpt", 12)] {
        let dir = workdir();
        let d = dir.path();
        let (img, plen) = fat_disk(d, table, bits);
        let (file, tree) = host_files(d);
        let orig_part = d.join("orig.part");
        extract(&img, MIB, plen, &orig_part);
        let ident = blkid(&orig_part);
        assert!(ident.contains(&format!("VERSION=FAT{bits}")), "{ident:?}");
        let mut want: BTreeSet<String> =
            ["EFI/", "EFI/BOOT/", "EFI/BOOT/BOOTX64.EFI", "readme.txt"]
                .iter()
                .map(|p| p.to_string())
                .collect();
        assert_eq!(mdir(&img, MIB), want);

        // copy-in
        ok(
            d,
            &[
                "copy-in",
                s(&img),
                "-p",
                "1",
                s(&file),
                s(&tree),
                "/EFI/BOOT",
                "-o",
                "a.raw",
            ],
        );
        let a = d.join("a.raw");
        for p in [
            "EFI/BOOT/Grüße – notes.txt",
            "EFI/BOOT/drivers/",
            "EFI/BOOT/drivers/x86_64/",
            "EFI/BOOT/drivers/x86_64/A Long Directory Name/",
            "EFI/BOOT/drivers/x86_64/A Long Directory Name/driver.efi",
            "EFI/BOOT/drivers/x86_64/ext4_x64.efi",
        ] {
            want.insert(p.to_string());
        }
        assert_eq!(mdir(&a, MIB), want, "{table} FAT{bits}");
        let part = d.join("a.part");
        extract(&a, MIB, plen, &part);
        fsck_fat(&part);
        assert_eq!(blkid(&part), ident, "volume id, label and FAT type kept");
        same_outside(&img, &a, MIB, MIB + plen);
        let out = d.join("out");
        std::fs::create_dir(&out).unwrap();
        mt(
            "mcopy",
            &[
                "-s",
                "-m",
                "-i",
                s(&part),
                "::/EFI/BOOT/drivers",
                "::/EFI/BOOT/Grüße – notes.txt",
                s(&out),
            ],
        );
        for (host, got) in [
            (file.clone(), out.join("Grüße – notes.txt")),
            (
                tree.join("x86_64/A Long Directory Name/driver.efi"),
                out.join("drivers/x86_64/A Long Directory Name/driver.efi"),
            ),
            (
                tree.join("x86_64/ext4_x64.efi"),
                out.join("drivers/x86_64/ext4_x64.efi"),
            ),
        ] {
            assert!(
                std::fs::read(&host).unwrap() == std::fs::read(&got).unwrap(),
                "{got:?}"
            );
            assert_eq!(mtime(&got), mtime(&host) & !1, "{got:?}: mtime");
        }
        // The pre-existing file is untouched, mtime included.
        let listing = mt("mdir", &["-i", &format!("{}@@{MIB}", s(&a)), "::/"]);
        assert!(
            listing.lines().any(|l| l.starts_with("readme")
                && l.contains("2017-07-14")
                && l.contains(" 2:40")),
            "{listing}"
        );

        // rm: refusals first, nothing written.
        let before = names(d);
        fails(
            d,
            &["rm", s(&a), "-p", "1", "/EFI/BOOT/drivers", "-o", "b.raw"],
            1,
            &["not empty", "-r"],
        );
        fails(
            d,
            &["rm", s(&a), "-p", "1", "/nope", "-o", "b.raw"],
            1,
            &["/nope", "no such file"],
        );
        fails(
            d,
            &["rm", s(&a), "-p", "1", "/", "-o", "b.raw"],
            1,
            &["root"],
        );
        fails(
            d,
            &[
                "copy-in",
                s(&a),
                "-p",
                "1",
                s(&file),
                "/missing",
                "-o",
                "b.raw",
            ],
            1,
            &["/missing", "does not exist"],
        );
        fails(
            d,
            &[
                "copy-in",
                s(&a),
                "-p",
                "1",
                s(&file),
                "/readme.txt",
                "-o",
                "b.raw",
            ],
            1,
            &["not a directory"],
        );
        assert_eq!(names(d), before, "refusals leave nothing behind");

        ok(
            d,
            &[
                "rm",
                s(&a),
                "-p",
                "1",
                "-r",
                "/EFI/BOOT/drivers",
                "/readme.txt",
                "-o",
                "b.raw",
            ],
        );
        let b = d.join("b.raw");
        want.retain(|p| !p.starts_with("EFI/BOOT/drivers") && p != "readme.txt");
        assert_eq!(mdir(&b, MIB), want);
        let part = d.join("b.part");
        extract(&b, MIB, plen, &part);
        fsck_fat(&part);
        assert_eq!(blkid(&part), ident);
        same_outside(&img, &b, MIB, MIB + plen);

        // mkfs --type vfat from a directory: identity kept, contents exactly the tree.
        ok(
            d,
            &[
                "mkfs",
                s(&b),
                "-p",
                "1",
                "--type",
                "vfat",
                "--from",
                s(&tree),
                "-o",
                "c.raw",
            ],
        );
        let c = d.join("c.raw");
        let part = d.join("c.part");
        extract(&c, MIB, plen, &part);
        fsck_fat(&part);
        assert_eq!(blkid(&part), ident);
        let tree_want: BTreeSet<String> = [
            "x86_64/",
            "x86_64/A Long Directory Name/",
            "x86_64/A Long Directory Name/driver.efi",
            "x86_64/ext4_x64.efi",
        ]
        .iter()
        .map(|p| p.to_string())
        .collect();
        assert_eq!(mdir(&c, MIB), tree_want);
        same_outside(&img, &c, MIB, MIB + plen);
        // ... and with a new label and id.
        ok(
            d,
            &[
                "mkfs",
                s(&b),
                "-p",
                "1",
                "--from",
                s(&tree),
                "--label",
                "NEWLBL",
                "--uuid",
                "ABCD-0123",
                "-o",
                "e.raw",
            ],
        );
        let part = d.join("e.part");
        extract(&d.join("e.raw"), MIB, plen, &part);
        fsck_fat(&part);
        let got = blkid(&part);
        assert!(
            got.contains("LABEL=NEWLBL") && got.contains("UUID=ABCD-0123"),
            "{got:?}"
        );
        assert!(got.contains(&format!("VERSION=FAT{bits}")), "{got:?}");
    }
}

#[test]
fn create_esp_is_fat32() {
    let test = "create_esp_is_fat32";
    if !fat_tools(test) {
        return;
    }
    let dir = workdir();
    let d = dir.path();
    let (_, tree) = host_files(d);
    ok(
        d,
        &[
            "create",
            "disk.raw",
            "--size",
            "100M",
            "--table",
            "gpt",
            "--part",
            &format!("size=40M,type=esp,fs=vfat,from={}", s(&tree)),
            "--part",
            "size=rest,type=linux",
        ],
    );
    let img = d.join("disk.raw");
    let dump = run_stdout("sfdisk", &["-d", s(&img)]);
    let start: u64 = dump
        .lines()
        .find(|l| l.contains("start=") && l.contains("C12A7328"))
        .and_then(|l| l.split("start=").nth(1))
        .and_then(|r| r.split(',').next())
        .map(|v| v.trim().parse().unwrap())
        .expect("partition 1 in sfdisk -d");
    let part = d.join("esp.part");
    extract(&img, start * 512, 40 * MIB, &part);
    fsck_fat(&part);
    let id = blkid(&part);
    assert!(
        id.contains("VERSION=FAT32") && id.contains("TYPE=vfat"),
        "{id:?}"
    );
    assert_eq!(mdir(&img, start * 512).len(), 4);
    // An ESP too small for FAT32 is refused, with nothing left behind.
    fails(
        d,
        &[
            "create",
            "small.raw",
            "--size",
            "40M",
            "--table",
            "gpt",
            "--part",
            "size=16M,type=esp,fs=vfat",
        ],
        1,
        &["FAT32"],
    );
    assert!(!d.join("small.raw").exists());
}

/// A 48 MiB MBR disk: noise in the gap, partition 1 (1..33 MiB) ext4 from a tree made
/// by mke2fs -d, partition 2 noise.
fn ext_disk(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    let img = dir.join("disk.raw");
    let part = dir.join("p1.img");
    let script = r#"set -e; r="$1"; img="$2"; p="$3"
mkdir -p "$r/etc/keep" "$r/var/cache/apt" "$r/bin"
echo ID=debian > "$r/etc/os-release"
echo a > "$r/etc/keep/a"; echo b > "$r/var/cache/apt/pkg.bin"; echo c > "$r/var/cache/x"
ln -s ../etc/os-release "$r/bin/link"
chown 12:34 "$r/etc/keep/a"
truncate -s 48M "$img"
printf 'label: dos\nstart=2048, size=65536, type=83\nstart=67584, type=83\n' | sfdisk -q "$img"
head -c 500000 /dev/urandom | dd of="$img" bs=512 seek=1 conv=notrunc status=none
head -c 3000000 /dev/urandom | dd of="$img" bs=1M seek=34 conv=notrunc status=none
truncate -s 32M "$p"; mke2fs -q -F -t ext4 -b 4096 -L rootfs -d "$r" "$p"
dd if="$p" of="$img" bs=1M seek=1 conv=notrunc status=none
chmod a+r "$img""#;
    sh(script, &[s(&root), s(&img), s(&part)]);
    img
}

fn manifest(dir: &Path, img: &Path) -> BTreeSet<String> {
    ok(
        dir,
        &["manifest", "--no-atime", "--no-ctime", "-p", "1", s(img)],
    )
    .lines()
    .map(str::to_string)
    .collect()
}

fn path_of(line: &str) -> &str {
    line.split('\t').next().unwrap()
}

#[test]
fn ext_copy_in_and_rm() {
    let test = "ext_copy_in_and_rm";
    for t in ["mke2fs", "e2fsck", "sfdisk", "cmp", "touch"] {
        if !need(t, test) {
            return;
        }
    }
    let dir = workdir();
    let d = dir.path();
    let img = ext_disk(d);
    let (file, tree) = host_files(d);
    let before = manifest(d, &img);

    ok(
        d,
        &[
            "copy-in",
            s(&img),
            "-p",
            "1",
            s(&file),
            s(&tree),
            "/etc",
            "-o",
            "a.raw",
        ],
    );
    let a = d.join("a.raw");
    let after = manifest(d, &a);
    assert!(
        before.is_subset(&after),
        "nothing of the input changed: {:?}",
        before.difference(&after).collect::<Vec<_>>()
    );
    let added: BTreeSet<&str> = after.difference(&before).map(|l| path_of(l)).collect();
    let want: BTreeSet<&str> = [
        "etc/Grüße – notes.txt",
        "etc/drivers",
        "etc/drivers/x86_64",
        "etc/drivers/x86_64/A Long Directory Name",
        "etc/drivers/x86_64/A Long Directory Name/driver.efi",
        "etc/drivers/x86_64/ext4_x64.efi",
    ]
    .into_iter()
    .collect();
    assert_eq!(added, want);
    let part = d.join("a.part");
    extract(&a, MIB, 32 * MIB, &part);
    run("e2fsck", &["-fn", s(&part)]);
    same_outside(&img, &a, MIB, 33 * MIB);

    let stamp = names(d);
    fails(
        d,
        &["rm", s(&a), "-p", "1", "/var/cache", "-o", "b.raw"],
        1,
        &["not empty"],
    );
    fails(
        d,
        &[
            "copy-in",
            s(&a),
            "-p",
            "1",
            s(&file),
            "/nope",
            "-o",
            "b.raw",
        ],
        1,
        &["/nope", "does not exist"],
    );
    fails(
        d,
        &[
            "copy-in",
            s(&a),
            "-p",
            "1",
            s(&tree),
            "/etc/os-release",
            "-o",
            "b.raw",
        ],
        1,
        &["not a directory"],
    );
    assert_eq!(names(d), stamp);

    ok(
        d,
        &[
            "rm",
            s(&a),
            "-p",
            "1",
            "-r",
            "/var/cache",
            "/etc/drivers",
            "/bin/link",
            "-o",
            "b.raw",
        ],
    );
    let b = d.join("b.raw");
    let after_rm = manifest(d, &b);
    let gone: BTreeSet<&str> = after.difference(&after_rm).map(|l| path_of(l)).collect();
    assert!(after_rm.is_subset(&after));
    let want_gone: BTreeSet<&str> = [
        "var/cache",
        "var/cache/apt",
        "var/cache/apt/pkg.bin",
        "var/cache/x",
        "bin/link",
        "etc/drivers",
        "etc/drivers/x86_64",
        "etc/drivers/x86_64/A Long Directory Name",
        "etc/drivers/x86_64/A Long Directory Name/driver.efi",
        "etc/drivers/x86_64/ext4_x64.efi",
    ]
    .into_iter()
    .collect();
    assert_eq!(gone, want_gone);
    let part = d.join("b.part");
    extract(&b, MIB, 32 * MIB, &part);
    run("e2fsck", &["-fn", s(&part)]);
    same_outside(&img, &b, MIB, 33 * MIB);
}

#[test]
fn corrupt_fat_partitions_fail_cleanly() {
    let test = "corrupt_fat_partitions_fail_cleanly";
    if !fat_tools(test) {
        return;
    }
    let dir = workdir();
    let d = dir.path();
    let (file, _) = host_files(d);
    // Each corruption: (offset inside the partition, bytes).
    let (img, plen) = fat_disk(d, "gpt", 16);
    let geo_dev = subroot_formats::block::RawFile::open(&img).unwrap();
    let slice = subroot_formats::block::Slice::new(geo_dev, MIB, plen).unwrap();
    let geo = subroot_formats::fat::raw::geometry(&slice).unwrap();
    let (_, e) = subroot_formats::fat::raw::find_entry(&slice, &geo, &[*b"EFI        "]).unwrap();
    let efi = subroot_formats::fat::raw::first_cluster(&e, geo.fat_bits);
    let cases: Vec<(&str, u64, Vec<u8>, &str)> = vec![
        // The BPB claims more sectors than the partition has.
        ("total sectors", 19, 0xFFFFu16.to_le_bytes().to_vec(), "fat"),
        // The EFI directory's cluster points at itself in both FATs.
        (
            "chain loop",
            geo.fat_offset + 2 * u64::from(efi),
            (efi as u16).to_le_bytes().to_vec(),
            "loop",
        ),
    ];
    for (what, off, bytes, expect) in cases {
        let bad = d.join(format!("bad-{}.raw", what.replace(' ', "-")));
        std::fs::copy(&img, &bad).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&bad).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&bytes, MIB + off).unwrap();
        if what == "chain loop" {
            f.write_all_at(&bytes, MIB + off + geo.fat_bytes).unwrap();
        }
        drop(f);
        let stamp = names(d);
        let err = subroot_in(
            d,
            &[
                "copy-in",
                s(&bad),
                "-p",
                "1",
                s(&file),
                "/EFI/BOOT",
                "-o",
                "x.raw",
            ],
        );
        let msg = String::from_utf8_lossy(&err.stderr);
        assert_eq!(err.status.code(), Some(3), "{what}: {msg}");
        assert!(!msg.contains("panicked"), "{what}: {msg}");
        assert!(msg.contains("subroot: error: "), "{what}: {msg}");
        assert!(msg.contains(expect), "{what}: {msg}");
        let err = subroot_in(d, &["rm", s(&bad), "-p", "1", "-r", "/EFI", "-o", "x.raw"]);
        let msg = String::from_utf8_lossy(&err.stderr);
        assert_eq!(err.status.code(), Some(3), "{what}: {msg}");
        assert!(
            !msg.contains("panicked") && msg.contains(expect),
            "{what}: {msg}"
        );
        assert_eq!(names(d), stamp, "{what}: nothing left behind");
    }
}
