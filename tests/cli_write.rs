//! Black-box tests of `subroot mkfs` (run as uid 65534 when the suite is root): a
//! partition rebuilt from its own tree keeps its identity (`dumpe2fs -h`), passes
//! `e2fsck -fn`, keeps owners/devices/xattrs/ns times (`debugfs`), and every byte outside
//! the partition is the input's (`cmp`); rebuilding from a host directory with a new
//! identity gives what `blkid` and `debugfs` expect; `create … from=TREE.tar.zst` (a GNU
//! tar archive) gives a filesystem whose manifest is the archive's.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;

/// The manifest rows of a tar archive read by our tar reader, without crtime and flags
/// (a tar has neither): what `subroot manifest --no-crtime --no-flags` must print for a
/// filesystem built from it.
fn tar_manifest(tar: &Path) -> Vec<Vec<String>> {
    use subroot_formats::manifest::{manifest, ManifestOptions};
    let tree = subroot_formats::tar::TarTree::new(
        subroot_formats::block::RawFile::open(tar).expect("open"),
    );
    let opts = ManifestOptions {
        crtime: false,
        flags: false,
        ..Default::default()
    };
    let mut rows = Vec::new();
    manifest(&tree, b"", opts, &mut |r| {
        rows.push(r.fields.to_vec());
        Ok(())
    })
    .expect("tar manifest");
    rows
}

fn tools_present(test: &str) -> bool {
    [
        "mke2fs", "debugfs", "e2fsck", "dumpe2fs", "sfdisk", "blkid", "cmp",
    ]
    .iter()
    .all(|t| need(t, test))
}

/// A 48 MiB MBR disk: noise in the post-MBR gap (where GRUB lives), partition 1 (1..33 MiB)
/// an ext4 filesystem with probes, partition 2 noise.
fn disk(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    let img = dir.join("disk.raw");
    let part = dir.join("p1.img");
    let script = r#"set -e; r="$1"; img="$2"; p="$3"
mkdir -p "$r/etc" "$r/dev" "$r/many"
echo ID=debian > "$r/etc/os-release"
echo secret > "$r/etc/shadow"; chown 1234:5678 "$r/etc/shadow"; chmod 4750 "$r/etc/shadow"
mknod "$r/dev/sda1" b 8 1; mkfifo "$r/dev/fifo"
(cd "$r/many" && seq -f 'f%05g' 1 3000 | xargs touch)
truncate -s 48M "$img"
printf 'label: dos\nstart=2048, size=65536, type=83\nstart=67584, type=83\n' | sfdisk -q "$img"
head -c 1000000 /dev/urandom | dd of="$img" bs=512 seek=1 conv=notrunc status=none
head -c 3000000 /dev/urandom | dd of="$img" bs=1M seek=34 conv=notrunc status=none
truncate -s 32M "$p"; mke2fs -q -F -t ext4 -b 4096 -L rootfs -d "$r" "$p"
debugfs -w -R 'sif /etc/shadow mtime_extra 4000000' "$p"
debugfs -w -R 'ea_set /etc/shadow user.note hello' "$p"
dd if="$p" of="$img" bs=1M seek=1 conv=notrunc status=none
chmod a+r "$img""#;
    sh(script, &[s(&root), s(&img), s(&part)]);
    img
}

fn identity(p: &Path) -> Vec<String> {
    let skip = [
        "Filesystem created",
        "Last ",
        "Free ",
        "Lifetime writes",
        "Checksum:",
        "Mount count",
        "Journal sequence",
        "Overhead clusters",
    ];
    run_stdout("dumpe2fs", &["-h", s(p)])
        .lines()
        .filter(|l| !skip.iter().any(|k| l.starts_with(k)))
        .map(str::to_string)
        .collect()
}

fn extract(img: &Path, out: &Path) {
    sh(
        r#"dd if="$1" of="$2" bs=1M skip=1 count=32 status=none"#,
        &[s(img), s(out)],
    );
}

#[test]
fn mkfs_round_trip_keeps_identity_and_everything_outside() {
    if !tools_present("mkfs_round_trip_keeps_identity_and_everything_outside") {
        return;
    }
    let w = workdir();
    let img = disk(w.path());
    ok(
        w.path(),
        &[
            "mkfs",
            "disk.raw",
            "-p",
            "1",
            "--from",
            "disk.raw:1",
            "-o",
            "out.raw",
        ],
    );
    let out = w.path().join("out.raw");
    same_outside(&img, &out, MIB, 33 * MIB);
    let (a, b) = (w.path().join("a.img"), w.path().join("b.img"));
    extract(&img, &a);
    extract(&out, &b);
    run("e2fsck", &["-fn", s(&b)]);
    assert_eq!(identity(&a), identity(&b));
    let st = run_stdout("debugfs", &["-R", "stat /etc/shadow", s(&b)]);
    assert!(st.contains("User:  1234   Group:  5678"), "{st}");
    assert!(st.contains("Mode:  04750"), "{st}");
    assert!(st.contains(":003d0900"), "{st}");
    assert!(st.contains("user.note (5) = \"hello\""), "{st}");
    let dev = run_stdout("debugfs", &["-R", "stat /dev/sda1", s(&b)]);
    assert!(dev.contains("Type: block special"), "{dev}");
    assert!(dev.contains("Device major/minor number: 08:01"), "{dev}");
    let many = run_stdout("debugfs", &["-R", "ls /many", s(&b)]);
    assert!(many.contains("f03000"));
}

#[test]
fn mkfs_from_directory_with_new_identity() {
    if !tools_present("mkfs_from_directory_with_new_identity") {
        return;
    }
    let w = workdir();
    let img = disk(w.path());
    let tree = w.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/hello"), b"hello world\n").unwrap();
    sh(r#"chmod -R a+rX "$1""#, &[s(&tree)]);
    ok(
        w.path(),
        &[
            "mkfs",
            "disk.raw",
            "-p",
            "1",
            "--from",
            "tree",
            "--new-identity",
            "--type",
            "ext2",
            "--label",
            "fresh",
            "--uuid",
            "01234567-89ab-cdef-0123-456789abcdef",
            "-o",
            "new.raw",
        ],
    );
    let out = w.path().join("new.raw");
    same_outside(&img, &out, MIB, 33 * MIB);
    let b = w.path().join("b.img");
    extract(&out, &b);
    run("e2fsck", &["-fn", s(&b)]);
    let id = run_stdout("blkid", &["-p", s(&b)]);
    assert!(id.contains("TYPE=\"ext2\""), "{id}");
    assert!(id.contains("LABEL=\"fresh\""), "{id}");
    assert!(
        id.contains("UUID=\"01234567-89ab-cdef-0123-456789abcdef\""),
        "{id}"
    );
    let cat = run_stdout("debugfs", &["-R", "cat /sub/hello", s(&b)]);
    assert_eq!(cat, "hello world\n");
    // The tree's owner is the test's (root), reproduced exactly although mkfs ran as nobody.
    let st = run_stdout("debugfs", &["-R", "stat /sub/hello", s(&b)]);
    let uid = std::fs::metadata(tree.join("sub/hello")).map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid()
    });
    assert!(st.contains(&format!("User: {:>5}", uid.unwrap())), "{st}");
}

#[test]
fn mkfs_refusals() {
    if !tools_present("mkfs_refusals") {
        return;
    }
    let w = workdir();
    disk(w.path());
    fails(
        w.path(),
        &[
            "mkfs",
            "disk.raw",
            "-p",
            "1",
            "--from",
            "disk.raw:1",
            "--type",
            "ext2",
            "-o",
            "x.raw",
        ],
        1,
        &["--new-identity"],
    );
    fails(
        w.path(),
        &[
            "mkfs", "disk.raw", "-p", "1", "--from", "nope", "-o", "x.raw",
        ],
        1,
        &["nope"],
    );
    assert!(!w.path().join("x.raw").exists());
}

#[test]
fn create_with_a_populated_ext4_partition() {
    if !tools_present("create_with_a_populated_ext4_partition") {
        return;
    }
    let w = workdir();
    let tree = w.path().join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/hostname"), b"gnomeos\n").unwrap();
    sh(r#"chmod -R a+rX "$1""#, &[s(&tree)]);
    ok(
        w.path(),
        &[
            "create",
            "g.raw",
            "--size",
            "40M",
            "--table",
            "mbr",
            "--part",
            "size=rest,type=linux,fs=ext4,from=tree",
        ],
    );
    ok(
        w.path(),
        &[
            "create",
            "e.raw",
            "--size",
            "40M",
            "--table",
            "gpt",
            "--part",
            "size=10M,type=esp",
            "--part",
            "size=rest,type=linux,fs=ext2",
        ],
    );
    // Judged without mounting (loop devices are not assumed in the container): the
    // partition extracted with dd, checked by e2fsck, blkid and debugfs.
    let img = w.path().join("g.raw");
    let p = w.path().join("p.img");
    sh(
        r#"dd if="$1" of="$2" bs=1M skip=1 status=none"#,
        &[s(&img), s(&p)],
    );
    run("e2fsck", &["-fn", s(&p)]);
    let id = run_stdout("blkid", &["-p", s(&p)]);
    assert!(id.contains("TYPE=\"ext4\""), "{id}");
    assert_eq!(
        run_stdout("debugfs", &["-R", "cat /etc/hostname", s(&p)]),
        "gnomeos\n"
    );
    let e = w.path().join("e.raw");
    let sf = run_stdout("sfdisk", &["-d", s(&e)]);
    let start: u64 = sf
        .lines()
        .filter(|l| l.contains("start="))
        .nth(1)
        .and_then(|l| l.split("start=").nth(1))
        .and_then(|r| r.split(',').next())
        .map(|x| x.trim().parse().unwrap())
        .unwrap();
    let p2 = w.path().join("p2.img");
    sh(
        r#"dd if="$1" of="$2" bs=512 skip="$3" count=$((28*2048)) status=none"#,
        &[s(&e), s(&p2), &start.to_string()],
    );
    run("e2fsck", &["-fn", s(&p2)]);
    assert!(run_stdout("blkid", &["-p", s(&p2)]).contains("TYPE=\"ext2\""));
    fails(
        w.path(),
        &[
            "create",
            "x.raw",
            "--size",
            "8M",
            "--table",
            "mbr",
            "--part",
            "size=rest,fs=xfs",
        ],
        1,
        &["fs=xfs"],
    );
}

/// `create ... from=TREE.tar.zst` (GNU tar, pax, sparse, xattrs, ACLs) as uid 65534: the
/// new filesystem's manifest equals the archive's, read by the library's tar reader,
/// which the formats tests judge against GNU tar and the source directory.
#[test]
fn create_from_a_compressed_gnu_tar() {
    let test = "create_from_a_compressed_gnu_tar";
    if !is_root() {
        eprintln!("SKIPPED {test}: needs root to build a tree with owners and devices");
        return;
    }
    if !tools_present(test)
        || !["tar", "zstd", "setfacl", "setcap", "setfattr"]
            .iter()
            .all(|t| need(t, test))
    {
        return;
    }
    let w = workdir();
    let tree = w.path().join("tree");
    sh(
        r#"set -e; mkdir -p "$1"; cd "$1"
mkdir -p etc dev d/sub
printf 'secret\n' > etc/shadow; chown 1234:5678 etc/shadow; chmod 4750 etc/shadow
setfattr -n user.note -v hello etc/shadow
printf 'cap' > d/cap; setcap cap_net_raw+ep d/cap
printf 'acl' > d/acl; setfacl -m u:42:rwx d/acl; setfacl -d -m u:42:rx d/sub
printf 'hard' > h1; ln h1 h2
mknod dev/sda1 b 8 1; mknod dev/null c 1 3; mkfifo dev/fifo
ln -s ../etc/shadow d/link
truncate -s 20M sparse; printf 'mid' | dd of=sparse bs=1 seek=10000000 conv=notrunc status=none
printf 'x' > "$(printf 'bad\377name')"
touch -h -d '1969-07-20 20:17:40.123456789 UTC' dev/fifo
touch -d '2040-01-01 00:00:00.5 UTC' d/cap
tar --xattrs --xattrs-include='*' --acls --numeric-owner --sort=name -S --format=pax \
    -cf - -C "$1" . | zstd -q -o "$2"
chmod a+r "$2""#,
        &[s(&tree), s(&w.path().join("tree.tar.zst"))],
    );
    ok(
        w.path(),
        &[
            "create",
            "out.raw",
            "--size",
            "64M",
            "--table",
            "gpt",
            "--part",
            "size=rest,type=linux,fs=ext4,from=tree.tar.zst",
        ],
    );
    let got = ok(
        w.path(),
        &["manifest", "out.raw", "--no-crtime", "--no-flags"],
    );
    let want = tar_manifest(&w.path().join("tree.tar.zst"));
    // (A hard link's later members carry the group's hash: the manifest reuses it.)
    let norm = |f: Vec<String>| f.join("\t");
    let got: Vec<String> = got
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect::<Vec<_>>())
        .filter(|f| f[0] != "lost+found")
        .map(norm)
        .collect();
    let want: Vec<String> = want.into_iter().map(|f| norm(f.to_vec())).collect();
    for (g, wl) in got.iter().zip(&want) {
        assert_eq!(g, wl, "entry differs");
    }
    assert_eq!(got.len(), want.len());
    assert!(want.iter().any(|l| l.contains("system.posix_acl_access")));
    assert!(want.iter().any(|l| l.starts_with("bad\\xffname\t")));
    // A tar with a hostile name is refused with the name in the error.
    sh(
        r#"set -e; cd "$1"; printf evil > evil; tar --format=pax -P --transform='s,^evil,../evil,' -cf bad.tar evil; chmod a+r bad.tar"#,
        &[s(w.path())],
    );
    fails(
        w.path(),
        &[
            "create",
            "bad.raw",
            "--size",
            "40M",
            "--table",
            "gpt",
            "--part",
            "size=rest,type=linux,fs=ext4,from=bad.tar",
        ],
        3,
        &["../evil"],
    );
    assert!(!w.path().join("bad.raw").exists());
}

use subroot_test_support::rich;

/// `subroot mkfs` (unprivileged when the suite is root) rebuilds the rich ext4 image
/// (owners 1234:5678, mode 4750, file capabilities, ACLs, a 3000-byte xattr, hard links,
/// devices, a fifo, a socket, a sparse file, ns/pre-1970/post-2038 times, non-UTF-8
/// names) from itself, on the populate path `populate`; the result passes `e2fsck -fn`
/// and its manifest equals the source's.
fn rich_rebuild(test: &str, populate: &str, mke2fs: Option<&Path>) {
    if !rich::TOOLS.iter().all(|t| need(t, test)) || !tools_present(test) {
        return;
    }
    if !is_root() {
        eprintln!("SKIPPED {test}: building the rich tree needs root");
        return;
    }
    let w = workdir();
    let tree = w.path().join("tree");
    rich::build_tree(&tree, true);
    let img = w.path().join("rich.img");
    rich::make_fs(&tree, &img, rich::Flavour::Ext4);
    sh(r#"chmod a+r "$1""#, &[s(&img)]);
    build_populating(
        w.path(),
        &["mkfs", "rich.img", "--from", "rich.img", "-o", "out.img"],
        populate,
        mke2fs,
    );
    let built = w.path().join("out.img");
    run("e2fsck", &["-fn", s(&built)]);
    assert_same_manifest(&ext_manifest(&img), &ext_manifest(&built));
    let st = run_stdout("debugfs", &["-R", "stat /d/suid", s(&built)]);
    assert!(st.contains("User:  1234   Group:  5678"), "{st}");
    assert!(st.contains("Mode:  04750"), "{st}");
    let cap = run_stdout("debugfs", &["-R", "ea_list /d/cap", s(&built)]);
    assert!(cap.contains("security.capability"), "{cap}");
}

#[test]
fn mkfs_rich_tree_staging() {
    rich_rebuild("mkfs_rich_tree_staging", "staging", None);
}

#[test]
fn mkfs_rich_tree_tar() {
    let Some(m) = tar_mke2fs("mkfs_rich_tree_tar") else {
        return;
    };
    rich_rebuild("mkfs_rich_tree_tar", "tar", Some(&m));
}

/// `mkfs --from x.tar` where the archive lists its members out of the image's walk order
/// (`tar --no-recursion` with an explicit, shuffled list): deeper paths before their
/// siblings, `a-b` before `a`, and hard links (a regular file, a fifo, a character
/// device) whose first member sorts after a later name. The intended tree is sorted on
/// disk before reconcile and verify; the result passes `e2fsck -fn` and its manifest is
/// the archive's, on the populate path `populate`.
fn out_of_order_tar(test: &str, populate: &str, mke2fs: Option<&Path>) {
    if !is_root() {
        eprintln!("SKIPPED {test}: needs root to make device nodes");
        return;
    }
    if !tools_present(test) || !need("tar", test) || !need("python3", test) {
        return;
    }
    let w = workdir();
    disk(w.path());
    sh(
        r#"set -e; t="$1/t"; mkdir -p "$t/z/y" "$t/a" "$t/a-b" "$t/a/deep/er"
printf one > "$t/z/y/f"; printf two > "$t/a/g"; printf three > "$t/a/deep/er/x"
printf hard > "$t/z/h1"; ln "$t/z/h1" "$t/a/h0"
mkfifo "$t/z/p"; ln "$t/z/p" "$t/a/p0"
mknod "$t/z/c" c 1 3; ln "$t/z/c" "$t/a-b/c0"
chown 1234:5678 "$t/z/y/f"; chmod 4750 "$t/z/y/f"
truncate -s 3M "$t/z/sparse"; printf mid | dd of="$t/z/sparse" bs=1 seek=1000000 conv=notrunc status=none
touch -d '2001-02-03 04:05:06.789 UTC' "$t/a/g"
cd "$t"; tar --format=pax --numeric-owner --no-recursion -cf "$1/x.tar" \
  . z z/y z/y/f z/h1 z/p z/c z/sparse a/deep/er/x a-b a a/deep a/deep/er a/g a/h0 a/p0 a-b/c0
python3 - "$1/x.tar" <<'PY'
# GNU tar archives every name of a fifo or device in full; add groups as link members
# (what bsdtar writes), the first member sorting after its later names.
import sys, tarfile
with tarfile.open(sys.argv[1], "a", format=tarfile.PAX_FORMAT) as t:
    for name, kind, link in [("z/q", tarfile.FIFOTYPE, ""), ("z/d", tarfile.CHRTYPE, ""),
                             ("a/q0", tarfile.LNKTYPE, "z/q"), ("a-b/d0", tarfile.LNKTYPE, "z/d")]:
        i = tarfile.TarInfo(name)
        i.type, i.linkname, i.mode, i.mtime = kind, link, 0o640, 1234567890
        i.devmajor, i.devminor = (1, 5) if name == "z/d" else (0, 0)
        t.addfile(i)
PY
chmod a+r "$1/x.tar""#,
        &[s(w.path())],
    );
    let listed = run_stdout("tar", &["-tf", s(&w.path().join("x.tar"))]);
    assert!(
        listed.find("z/y/f").unwrap() < listed.find("a-b").unwrap(),
        "the archive is out of order:\n{listed}"
    );
    build_populating(
        w.path(),
        &[
            "mkfs", "disk.raw", "-p", "1", "--from", "x.tar", "-o", "out.raw",
        ],
        populate,
        mke2fs,
    );
    let b = w.path().join("b.img");
    extract(&w.path().join("out.raw"), &b);
    run("e2fsck", &["-fn", s(&b)]);
    let got = ok(
        w.path(),
        &["manifest", "b.img", "--no-crtime", "--no-flags"],
    );
    let want = tar_manifest(&w.path().join("x.tar"));
    // The manifest's hard-link column names the group's first path: the archive's first
    // member there, the first in walk order in the image. Compare groups as sets of
    // paths instead.
    let split = |rows: Vec<Vec<String>>| {
        let mut groups: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        let mut rows: Vec<String> = rows
            .into_iter()
            .map(|mut f| {
                if f[11] != "-" {
                    groups.entry(f[11].clone()).or_default().push(f[0].clone());
                    f[11] = "linked".into();
                }
                f.join("\t")
            })
            .collect();
        rows.sort();
        let mut g: Vec<Vec<String>> = groups
            .into_values()
            .map(|mut v| {
                v.sort();
                v
            })
            .collect();
        g.sort();
        (rows, g)
    };
    let (got, got_groups) = split(
        got.lines()
            .map(|l| l.split('\t').map(str::to_string).collect::<Vec<_>>())
            .filter(|f| f[0] != "lost+found")
            .collect(),
    );
    let (want, want_groups) = split(want);
    assert_eq!(got, want);
    assert_eq!(got_groups, want_groups);
    assert_eq!(got_groups.len(), 3, "{got_groups:?}");
    let cat = run_stdout("debugfs", &["-R", "cat /a/h0", s(&b)]);
    assert_eq!(cat, "hard");
}

#[test]
fn mkfs_from_an_out_of_order_tar_staging() {
    out_of_order_tar("mkfs_from_an_out_of_order_tar_staging", "staging", None);
}

#[test]
fn mkfs_from_an_out_of_order_tar_tar() {
    let Some(m) = tar_mke2fs("mkfs_from_an_out_of_order_tar_tar") else {
        return;
    };
    out_of_order_tar("mkfs_from_an_out_of_order_tar_tar", "tar", Some(&m));
}

/// A filesystem smaller than its partition (here 1 KiB blocks, 31 MiB in a 40 MiB
/// partition) is rebuilt at its own size: same block and inode counts (filling the
/// partition would add a block group and change the inode count), and the partition's
/// bytes past the filesystem are the input's.
#[test]
fn mkfs_keeps_a_filesystem_smaller_than_its_partition() {
    let test = "mkfs_keeps_a_filesystem_smaller_than_its_partition";
    if !tools_present(test) {
        return;
    }
    let w = workdir();
    let d = w.path();
    let tree = d.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/os-release"), b"ID=debian\n").unwrap();
    let img = d.join("small.raw");
    sh(
        r#"set -e; truncate -s 42M "$1"
printf 'label: dos\nstart=2048, size=81920, type=83\n' | sfdisk -q "$1"
mke2fs -q -F -t ext4 -b 1024 -N 4000 -E offset=1048576 -d "$2" "$1" 31M
# Recognisable bytes in the partition after the filesystem's end (1 MiB + 31 MiB).
printf 'after-the-fs' | dd of="$1" bs=1 seek=$((32 << 20)) conv=notrunc status=none
chmod a+r "$1""#,
        &[s(&img), s(&tree)],
    );
    ok(
        d,
        &[
            "mkfs",
            "small.raw",
            "-p",
            "1",
            "--from",
            "small.raw:1",
            "-o",
            "out.raw",
        ],
    );
    let head = |p: &Path| {
        // e2fsprogs' io option syntax for a filesystem at an offset.
        let out = Command::new("dumpe2fs")
            .args(["-h", &format!("{}?offset=1048576", s(p))])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("Block count:") || l.starts_with("Inode count:"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let before = head(&img);
    assert_eq!(before.len(), 2, "{before:?}");
    assert_eq!(head(&d.join("out.raw")), before);
    let tail = |p: &Path| {
        let mut b = vec![0u8; 12];
        std::os::unix::fs::FileExt::read_exact_at(
            &std::fs::File::open(p).unwrap(),
            &mut b,
            32 << 20,
        )
        .unwrap();
        b
    };
    assert_eq!(tail(&d.join("out.raw")), b"after-the-fs");
    let cat = subroot_in(d, &["cat", "out.raw", "-p", "1", "/etc/os-release"]);
    assert_eq!(cat.stdout, b"ID=debian\n");
}
