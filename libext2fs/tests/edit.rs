//! Every editing operation on every flavour of ext (ext2 1K, ext3 2K, ext4 4K as Debian's
//! mke2fs makes it, ext4 4K with orphan_file and metadata_csum_seed (upstream 1.47
//! defaults), ext4 without metadata_csum, bigalloc, ext4 1K), judged by `e2fsck -fn`, by our own
//! after-edit check, and by our reader showing exactly the intended tree with full
//! metadata (the manifest of the image before, with each operation applied to it).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use subroot_formats::hostdir::HostDir;
use subroot_formats::tree::{BytesContent, Entry, Kind, Metadata, Timestamp};
use subroot_libext2fs::Error;
use subroot_test_support::{ext_manifest, noise, rich, s, tree_manifest};

/// The rich host tree (owners, setuid, capabilities, ACLs, hard links, devices, fifo,
/// socket, sparse files, long names), with `many/` cut to 300 entries; `big`: with a
/// 3,000-byte xattr (it needs an xattr block of 4 KiB).
fn host_tree(big: bool) -> &'static Path {
    static TREES: [OnceLock<(tempfile::TempDir, PathBuf)>; 2] = [OnceLock::new(), OnceLock::new()];
    let (_, p) = TREES[usize::from(big)].get_or_init(|| {
        let t = tempfile::tempdir_in("/var/tmp").unwrap();
        let p = t.path().join("tree");
        rich::build_tree(&p, big);
        bash(&format!(
            "cd {}; rm -rf many; mkdir many; for i in $(seq 300); do echo $i > many/f$i; done
             # atimes after the ctimes: reading (readlink) does not move them (relatime)
             find . -exec touch -h -a -d @$(( $(date +%s) + 3600 )).25 {{}} +",
            s(&p)
        ));
        (t, p)
    });
    p
}

fn seed(dir: &Path) -> PathBuf {
    let p = dir.join("seed");
    bash(&format!(
        r#"mkdir -p {0}; cd {0}
mkdir -p old/sub mv mvdir/inner other
printf 'A data' > old/a; ln old/a old/b; printf deep > old/sub/deep
printf one > mv/file1; printf x > mvdir/inner/x; printf target > other/target
head -c 300000 /dev/urandom > big; head -c 5000 /dev/urandom > t1; printf start > app
touch -h -d @1600000000.5 . * */* */*/*"#,
        s(&p)
    ));
    p
}

fn ts(sec: i64, nsec: u32) -> Timestamp {
    Timestamp { sec, nsec }
}

fn meta(perm: u32, uid: u32, xattrs: &[(&[u8], &[u8])]) -> Metadata {
    Metadata {
        perm,
        uid,
        gid: uid + 1,
        atime: ts(-1_000_000_000, 5),
        mtime: ts(3_000_000_000, 999_999_999),
        ctime: ts(1_700_000_000, 1),
        crtime: Some(ts(1_600_000_000, 42)),
        xattrs: xattrs
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect(),
        flags: Some(0x40), // nodump
    }
}

/// Entries created directly (besides the copied host tree).
fn extras() -> Vec<(Entry, Vec<u8>)> {
    let acl: &[u8] = &[
        2, 0, 0, 0, 1, 0, 6, 0, 255, 255, 255, 255, 2, 0, 7, 0, 42, 0, 0, 0, 4, 0, 4, 0, 255, 255,
        255, 255, 16, 0, 7, 0, 255, 255, 255, 255, 32, 0, 4, 0, 255, 255, 255, 255,
    ];
    let mut out = vec![(
        new_entry("extra", Kind::Dir, meta(0o1755, 100_000, &[])),
        vec![],
    )];
    let mut f = new_entry(
        "extra/f",
        Kind::File,
        meta(
            0o6755,
            70_000,
            &[
                (b"user.empty", b""),
                (b"security.selinux", b"system_u:object_r:bin_t:s0\0"),
                (b"system.posix_acl_access", acl),
                (b"user.x", b"y"),
            ],
        ),
    );
    let data = noise(70_000, 3);
    f.size = data.len() as u64;
    out.push((f, data));
    out.push((
        new_entry("extra/empty", Kind::File, meta(0o600, 0, &[])),
        vec![],
    ));
    for (name, target) in [
        ("extra/fast", "a".repeat(59)),
        ("extra/slow", "b".repeat(61)),
    ] {
        let mut e = new_entry(name, Kind::Symlink, meta(0o777, 5, &[]));
        e.meta.flags = Some(0);
        e.size = target.len() as u64;
        e.link_target = Some(target.into_bytes());
        out.push((e, vec![]));
    }
    for (name, kind, rdev) in [
        ("extra/c-old", Kind::CharDevice, (4, 64)),
        ("extra/c-new", Kind::CharDevice, (511, 1_048_575)),
        ("extra/b", Kind::BlockDevice, (259, 3)),
        ("extra/fifo", Kind::Fifo, (0, 0)),
        ("extra/sock", Kind::Socket, (0, 0)),
    ] {
        let mut e = new_entry(name, kind, meta(0o640, 7, &[(b"user.k", b"v")]));
        e.rdev = rdev;
        out.push((e, vec![]));
    }
    out
}

fn every_operation(flavour: &str) {
    if !rich::is_root() {
        subroot_test_support::skip(flavour, "building the rich tree needs root");
        return;
    }
    let (_, opts) = FLAVOURS.iter().find(|(n, _)| *n == flavour).unwrap();
    let host = host_tree(opts.contains("-b 4096"));
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    let img = tmp.path().join("fs.img");
    mkfs(&img, opts, "300M", Some(&seed(tmp.path())));
    let mut want = ext_manifest(&img);

    let (dev, mut fs) = open(&img);
    // Copy the host tree in, and create the extras.
    fs.add_tree(&HostDir::open(host).unwrap(), b"in").unwrap();
    let mut host_m = tree_manifest(&HostDir::open(host).unwrap());
    for (e, _) in &mut host_m.0 {
        e.path = if e.path.is_empty() {
            b"in".to_vec()
        } else {
            [b"in/", &e.path[..]].concat()
        };
        e.meta.flags.get_or_insert(0);
    }
    for g in &mut host_m.1 {
        for p in g.iter_mut() {
            *p = [b"in/", &p[..]].concat();
        }
    }
    want.0.extend(host_m.0);
    want.1.extend(host_m.1);
    for (e, data) in extras() {
        let mut c = BytesContent::new(data.clone());
        let content =
            (e.kind == Kind::File).then_some(&mut c as &mut dyn subroot_formats::tree::Content);
        fs.create(&e, content).unwrap();
        let mut e = e;
        e.meta.xattrs.sort();
        e.meta.flags = e.meta.flags.map(|f| f & subroot_formats::ext::USER_FLAGS);
        want.0.push((e, data));
    }
    assert!(matches!(
        fs.create(&new_entry("extra", Kind::Dir, Metadata::default()), None),
        Err(Error::Exists(_))
    ));

    // Removing.
    fs.unlink(b"old/a").unwrap();
    assert!(matches!(fs.unlink(b"old"), Err(Error::NotEmpty(_))));
    assert!(matches!(fs.unlink(b"nope"), Err(Error::NotFound(_))));
    fs.remove_tree(b"old/sub").unwrap();
    want.0
        .retain(|(e, _)| !e.path.starts_with(b"old/sub") && e.path != b"old/a");
    want.1.retain(|g| !g.contains(&b"old/a".to_vec()));

    // Renaming: same directory, between directories (a directory), over an existing file.
    fs.rename(b"mv/file1", b"mv/file2").unwrap();
    fs.rename(b"mvdir/inner", b"other/inner").unwrap();
    fs.rename(b"mv/file2", b"other/target").unwrap();
    assert!(matches!(
        fs.rename(b"other", b"other/inner/x2"),
        Err(Error::Invalid(_))
    ));
    want.0.retain(|(e, _)| e.path != b"other/target");
    for (e, _) in &mut want.0 {
        if e.path == b"mv/file1" {
            e.path = b"other/target".to_vec();
        } else if let Some(rest) = e.path.strip_prefix(b"mvdir/inner") {
            e.path = [b"other/inner", rest].concat();
        }
    }

    // Contents.
    let new_big = noise(200_000, 7);
    fs.replace_content(b"big", &mut BytesContent::new(new_big.clone()))
        .unwrap();
    let (e, d) = common::entry(&mut want, b"big");
    (e.size, *d) = (new_big.len() as u64, new_big);
    fs.truncate(b"t1", 10).unwrap();
    let (e, d) = common::entry(&mut want, b"t1");
    e.size = 10;
    d.truncate(10);
    let tail = noise(5000, 9);
    fs.append(b"app", &mut BytesContent::new(tail.clone()))
        .unwrap();
    let (e, d) = common::entry(&mut want, b"app");
    d.extend_from_slice(&tail);
    e.size = d.len() as u64;

    // A hard link to a copied file, and metadata set on an existing directory.
    fs.link(b"in/d/suid", b"suidlink").unwrap();
    let mut linked = common::entry(&mut want, b"in/d/suid").clone();
    linked.0.path = b"suidlink".to_vec();
    want.0.push(linked);
    want.1
        .push(vec![b"in/d/suid".to_vec(), b"suidlink".to_vec()]);
    let m = meta(0o2750, 1_000_000, &[(b"user.dir", b"")]);
    fs.set_meta(b"other", &m).unwrap();
    let (e, _) = common::entry(&mut want, b"other");
    e.meta = m;

    // stat agrees with what was set.
    let st = fs.stat(b"extra/c-new").unwrap();
    assert_eq!((st.kind, st.rdev), (Kind::CharDevice, (511, 1_048_575)));

    close_and_judge(fs, dev, &img);
    let mut got = ext_manifest(&img);
    sort(&mut got);
    sort(&mut want);
    subroot_test_support::assert_same_manifest(&want, &got);
}

#[test]
fn every_operation_ext2_1k() {
    every_operation("ext2-1k");
}

#[test]
fn every_operation_ext3_2k() {
    every_operation("ext3-2k");
}

#[test]
fn every_operation_ext4() {
    every_operation("ext4");
}

#[test]
fn every_operation_ext4_without_metadata_csum() {
    every_operation("ext4-nocsum");
}

#[test]
fn every_operation_bigalloc() {
    every_operation("bigalloc");
}

#[test]
fn every_operation_ext4_1k() {
    every_operation("ext4-1k");
}

#[test]
fn every_operation_ext4_orphan_file_csum_seed() {
    every_operation("ext4-orphan-seed");
}
