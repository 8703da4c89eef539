//! The ext writer against e2fsprogs: filesystems made by mke2fs (as root, with every
//! fidelity probe) are rebuilt from their own tree with the same identity, and judged by
//! `dumpe2fs -h` (identity fields), `e2fsck -fn`, `debugfs` (probes) and a full
//! entry-by-entry comparison through the reader. Every round trip runs on both populate
//! paths: a staging directory (the system's mke2fs) and a tar archive on stdin (the
//! mke2fs named by `SUBROOT_TEST_MKE2FS_TAR`, see scripts/e2fsprogs-backports.sh).

use subroot_test_support as common;

use common::{assert_same_manifest, ext_manifest, need, noise, run, run_stdout, s, sh, tar_mke2fs};
use std::path::{Path, PathBuf};
use subroot_e2fs::tools::{E2fsprogs, FindOptions};
use subroot_e2fs::writer::{build, BuildOptions, Identity, Populate};
use subroot_formats::block::{BlockDevice, RawFile};
use subroot_formats::ext::{ExtFs, ExtTree};
use subroot_formats::tree::Kind;

/// The standard xattr encoding of an ACL: user::rw-, user:1000:rw-, group::r--, mask::rw-, other::r--.
fn acl_value() -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (1u16, 6u16, u32::MAX),
        (2, 6, 1000),
        (4, 4, u32::MAX),
        (0x10, 6, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        v.extend(tag.to_le_bytes());
        v.extend(perm.to_le_bytes());
        v.extend(id.to_le_bytes());
    }
    v
}

/// A VFS capability v2 blob granting cap_net_raw (bit 13) permitted + effective.
fn cap_value() -> Vec<u8> {
    let mut v = (0x0200_0000u32 | 1).to_le_bytes().to_vec();
    v.extend((1u32 << 13).to_le_bytes());
    v.extend(0u32.to_le_bytes());
    v.extend([0u8; 8]);
    v
}

/// Make a source filesystem with every probe; `mkfs_opts` picks the kind.
fn make_source(dir: &Path, mkfs_opts: &str, entries: usize) -> PathBuf {
    let src = dir.join("src");
    sh(
        r#"set -e; d="$1"; n="$2"
mkdir -p "$d/dir/many" "$d/links" "$d/dev"
echo hello > "$d/file"; chown 1234:5678 "$d/file"; chmod 4750 "$d/file"
echo x > "$d/links/a"; ln "$d/links/a" "$d/links/b"; ln "$d/links/a" "$d/dir/c"
mknod -m 600 "$d/dev/null" c 1 3; mknod -m 600 "$d/dev/sda1" b 8 1; mknod -m 600 "$d/dev/big" c 259 70000
mkfifo "$d/dev/fifo"
truncate -s 100M "$d/sparse"; printf data | dd of="$d/sparse" bs=1 seek=52428800 conv=notrunc 2>/dev/null
ln -s file "$d/symlink"; ln -s "$(printf 'x%.0s' $(seq 1 200))" "$d/longlink"
touch "$d/$(printf 'bad\377name')" "$d/with space" "$d/q\"uote"
(cd "$d/dir/many" && seq -f 'entry-%06g' 1 "$n" | xargs touch)
chmod 1777 "$d/dir"; chown -R 42:43 "$d/dir/many"
"#,
        &[s(&src), &entries.to_string()],
    );
    std::os::unix::net::UnixListener::bind(src.join("dev/sock")).unwrap();
    let big = if mkfs_opts.contains("-b 1024") {
        700
    } else {
        3000
    };
    std::fs::write(dir.join("big"), noise(big, 1)).unwrap();
    std::fs::write(dir.join("acl"), acl_value()).unwrap();
    std::fs::write(dir.join("cap"), cap_value()).unwrap();
    let img = dir.join("src.img");
    sh(
        &format!(r#"set -e; truncate -s 256M "$1"; mke2fs -q -F {mkfs_opts} -d "$2" "$1""#),
        &[s(&img), s(&src)],
    );
    let cmds = format!(
        "ea_set -f {big} /file user.big\nea_set -f {acl} /file system.posix_acl_access\n\
         ea_set -f {cap} /file security.capability\nea_set /dir user.small hello\n\
         sif /file mtime_extra 4000000\nsif /file atime_extra 13\nsif /dir mtime @1500000000\n\
         sif /dir/many mtime_extra 400\nsif /file flags {flags}\n",
        big = s(&dir.join("big")),
        acl = s(&dir.join("acl")),
        cap = s(&dir.join("cap")),
        flags = if mkfs_opts.contains("ext4") {
            "0x80080"
        } else {
            "0x80"
        },
    );
    let cmdf = dir.join("cmds");
    std::fs::write(&cmdf, cmds).unwrap();
    let out = run("debugfs", &["-w", "-f", s(&cmdf), s(&img)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "debugfs setup: {err}");
    img
}

/// dumpe2fs -h lines that make up the identity (not times, counts of free things, checksums).
fn identity_lines(img: &Path) -> Vec<String> {
    let skip = [
        "Filesystem created",
        "Last ",
        "Free ",
        "Lifetime writes",
        "Checksum:",
        "Filesystem state",
        "Mount count",
        "Journal sequence",
        "Journal start",
        "Journal checksum",
        "Overhead clusters",
    ];
    run_stdout("dumpe2fs", &["-h", s(img)])
        .lines()
        .filter(|l| !l.trim().is_empty() && !skip.iter().any(|p| l.starts_with(p)))
        .map(str::to_string)
        .collect()
}

/// The e2fsprogs found as the CLI finds them (PATH, or `mke2fs` and its siblings), with the
/// real clock.
fn find_tools(mke2fs: Option<PathBuf>) -> E2fsprogs {
    let search = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    E2fsprogs::find(&FindOptions {
        mke2fs,
        search,
        clock: None,
    })
    .unwrap()
}

/// The e2fsprogs for a populate path: the system's for staging, the tar-reading one for
/// tar (checked to read tar); `None` to skip.
fn tools_for(populate: Populate, test: &str) -> Option<E2fsprogs> {
    if populate == Populate::Staging {
        return Some(find_tools(None));
    }
    let path = tar_mke2fs(test)?;
    let tools = find_tools(Some(path.clone()));
    assert!(
        tools.tar_input,
        "{} ({}) does not read tar archives",
        path.display(),
        tools.version_string()
    );
    Some(tools)
}

fn round_trip(test: &str, mkfs_opts: &str, entries: usize, populate: Populate) {
    for t in ["mke2fs", "debugfs", "e2fsck", "dumpe2fs"] {
        if !need(t, test) {
            return;
        }
    }
    let Some(tools) = tools_for(populate, test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), mkfs_opts, entries);
    let fs = ExtFs::open(RawFile::open(&src).unwrap()).unwrap();
    let identity = Identity::like(&fs).unwrap();
    let size = fs.device().len();
    let built = build(
        &ExtTree::new(fs),
        b"",
        &BuildOptions {
            size,
            identity,
            tools: &tools,
            temp_dir: Some(dir.path()),
            progress: None,
            populate,
        },
    )
    .unwrap();
    assert_eq!(built.report.populate, populate);
    let out = built.path();
    // Judges: e2fsck, dumpe2fs identity, the full manifest, debugfs probes, sparseness.
    run("e2fsck", &["-fn", s(out)]);
    assert_eq!(identity_lines(&src), identity_lines(out));
    let a = ext_manifest(&src);
    assert_same_manifest(&a, &ext_manifest(out));
    assert_eq!(a.1.len(), 1, "one hard-link group");
    let stat = run_stdout("debugfs", &["-R", "stat /file", s(out)]);
    assert!(stat.contains("User:  1234   Group:  5678"), "{stat}");
    assert!(stat.contains("Mode:  04750"), "{stat}");
    if mkfs_opts.contains("ext4") && !mkfs_opts.contains("-I 128") {
        // mtime_extra 4000000 as set on the source: 1 ms, epoch bits 0.
        assert!(stat.contains(":003d0900"), "mtime ns: {stat}");
    }
    let caps = run_stdout(
        "debugfs",
        &["-R", "ea_get /file security.capability", s(out)],
    );
    assert!(!caps.trim().is_empty());
    let dev = run_stdout("debugfs", &["-R", "stat /dev/big", s(out)]);
    assert!(
        dev.contains("Device major/minor number: 259:70000"),
        "{dev}"
    );
    // The device node's mode as debugfs lists it, equal to the source's (a char device).
    let null_mode = |img: &Path| {
        let ls = run_stdout("debugfs", &["-R", "ls -l /dev", s(img)]);
        ls.lines()
            .find(|l| l.trim_end().ends_with(" null"))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
            .unwrap_or_else(|| panic!("no /dev/null in {ls}"))
    };
    let mode = null_mode(out);
    assert!(mode.starts_with("20"), "{mode}");
    assert_eq!(mode, null_mode(&src));
    let nfs = ExtFs::open(RawFile::open(out).unwrap()).unwrap();
    let ino = nfs.lookup(b"/sparse").unwrap();
    let blocks = nfs.inode(ino).unwrap().blocks_raw;
    assert!(
        blocks * 512 < (1 << 20),
        "sparse file allocated {blocks} sectors"
    );
    let htree = run_stdout("debugfs", &["-R", "htree /dir/many", s(out)]);
    assert!(
        htree.contains("Root node dump"),
        "the large directory is indexed"
    );
}

#[test]
fn round_trip_ext4() {
    round_trip(
        "round_trip_ext4",
        "-t ext4 -b 4096 -O ^orphan_file,^metadata_csum_seed",
        20_000,
        Populate::Staging,
    );
}

#[test]
fn round_trip_ext4_tar() {
    round_trip(
        "round_trip_ext4_tar",
        "-t ext4 -b 4096 -O ^orphan_file,^metadata_csum_seed",
        20_000,
        Populate::Tar,
    );
}

#[test]
fn round_trip_ext3() {
    round_trip(
        "round_trip_ext3",
        "-t ext3 -b 4096",
        20_000,
        Populate::Staging,
    );
}

#[test]
fn round_trip_ext3_tar() {
    round_trip(
        "round_trip_ext3_tar",
        "-t ext3 -b 4096",
        20_000,
        Populate::Tar,
    );
}

#[test]
fn round_trip_ext2() {
    round_trip(
        "round_trip_ext2",
        "-t ext2 -b 4096",
        20_000,
        Populate::Staging,
    );
}

#[test]
fn round_trip_ext2_tar() {
    round_trip(
        "round_trip_ext2_tar",
        "-t ext2 -b 4096",
        20_000,
        Populate::Tar,
    );
}

#[test]
fn round_trip_small_inodes_no_csum() {
    round_trip(
        "round_trip_small_inodes_no_csum",
        "-t ext4 -I 128 -O ^metadata_csum,uninit_bg -b 1024",
        500,
        Populate::Staging,
    );
}

#[test]
fn round_trip_small_inodes_no_csum_tar() {
    round_trip(
        "round_trip_small_inodes_no_csum_tar",
        "-t ext4 -I 128 -O ^metadata_csum,uninit_bg -b 1024",
        500,
        Populate::Tar,
    );
}

#[test]
fn round_trip_csum_seed_and_bigalloc() {
    round_trip(
        "round_trip_csum_seed_and_bigalloc",
        "-t ext4 -b 4096 -O metadata_csum_seed,bigalloc,^resize_inode -C 16384",
        500,
        Populate::Staging,
    );
}

#[test]
fn round_trip_csum_seed_and_bigalloc_tar() {
    round_trip(
        "round_trip_csum_seed_and_bigalloc_tar",
        "-t ext4 -b 4096 -O metadata_csum_seed,bigalloc,^resize_inode -C 16384",
        500,
        Populate::Tar,
    );
}

#[test]
fn debugfs_errors_are_fatal() {
    if !need("mke2fs", "debugfs_errors_are_fatal") {
        return;
    }
    // An xattr too large for any block of a 1 KiB-block filesystem without ea_inode.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("f"), b"x").unwrap();
    let img = dir.path().join("src.img");
    sh(
        r#"set -e; truncate -s 8M "$1"; mke2fs -q -F -t ext4 -b 1024 -d "$2" "$1""#,
        &[s(&img), s(&root)],
    );
    std::fs::write(dir.path().join("v"), noise(900, 2)).unwrap();
    run(
        "debugfs",
        &[
            "-w",
            "-R",
            &format!("ea_set -f {} /f user.v", s(&dir.path().join("v"))),
            s(&img),
        ],
    );
    let fs = ExtFs::open(RawFile::open(&img).unwrap()).unwrap();
    // Rebuild into a filesystem with 128-byte inodes: value still fits a block. Then make
    // the identity impossible: ask for 1 KiB blocks with a 2000-byte value via a tree.
    let tools = find_tools(None);
    let mut id = Identity::like(&fs).unwrap();
    id.features.retain(|f| f != "ext_attr");
    let size = fs.device().len();
    let r = build(
        &ExtTree::new(fs),
        b"",
        &BuildOptions {
            size,
            identity: id,
            tools: &tools,
            temp_dir: Some(dir.path()),
            progress: None,
            populate: Populate::Auto,
        },
    );
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("ea_set") || e.contains("ext_attr") || e.contains("xattrs"),
        "{e}"
    );
    no_leftovers(dir.path(), "subroot-mkfs.");
    let _ = Kind::File;
}

/// The engine's temporary directories (named `prefix…`) are gone from `dir`.
fn no_leftovers(dir: &Path, prefix: &str) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .collect();
    assert!(
        left.is_empty(),
        "the temporary directory is removed on error: {left:?}"
    );
}
