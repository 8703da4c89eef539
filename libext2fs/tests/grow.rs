//! [`Ext2Fs::grow`] judged against resize2fs: filesystems made by mke2fs -d (files, hard
//! links, symlinks, xattrs, a sparse file) in every layout grow handles are grown by a few
//! blocks, across many groups and from 2 GiB to 20 GiB; each result must be `e2fsck -fn`
//! clean, hold the same tree (manifest), and show the same `dumpe2fs` (superblock and
//! every group: locations, flags, free counts) as `resize2fs` gives for the same input
//! and size; as root, the kernel mounts it and `df` shows the new size. Layouts grow
//! refuses leave the file byte-identical.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, RawFile};
use subroot_libext2fs::{Error, Ext2Fs, GrowReport};
use subroot_test_support::mount::mount_ro;
use subroot_test_support::{assert_same_manifest, ext_manifest, need, rich, s};

/// A source tree: files, a hard link, a symlink, user xattrs, a sparse file, a directory
/// of a few hundred entries; as root, owners and a device too.
fn tree(dir: &Path, data_mib: u64) {
    let root = if rich::is_root() {
        "chown 1234:5678 etc/os-release; mknod var/null c 1 3; mkfifo var/fifo"
    } else {
        ""
    };
    bash(&format!(
        r#"mkdir -p {0}; cd {0}
mkdir -p etc usr/bin var/many home/u
echo 'ID=debian' > etc/os-release
head -c 300000 /dev/urandom > usr/bin/prog; chmod 4755 usr/bin/prog
ln usr/bin/prog usr/bin/prog2
ln -s ../usr/bin/prog etc/link
setfattr -n user.note -v hello etc/os-release
setfattr -n user.empty etc/link 2>/dev/null || true
truncate -s 8M var/sparse; printf x | dd of=var/sparse bs=1 seek=4M conv=notrunc 2>/dev/null
for i in $(seq 1 300); do echo $i > var/many/f$i; done
head -c {data_mib}M /dev/urandom > var/data
touch -d '2030-01-02 03:04:05.123456789' etc/os-release
{root}
"#,
        s(dir)
    ));
}

/// `dumpe2fs` of `img` without what differs between any two writes of the same
/// filesystem (times, mount and write counts, the lifetime writes and the checksums
/// that cover them).
fn dump(img: &Path) -> String {
    let out = bash(&format!("dumpe2fs {} 2>/dev/null", s(img)));
    out.lines()
        .filter(|l| {
            ![
                "Last write time:",
                "Last mount time:",
                "Last checked:",
                "Lifetime writes:",
                "Checksum:",
                "Mount count:",
            ]
            .iter()
            .any(|k| l.starts_with(k))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of `field` in `dumpe2fs -h` output.
fn field(dump: &str, name: &str) -> String {
    dump.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in dumpe2fs"))
        .trim()
        .to_string()
}

/// A filesystem made by mke2fs `opts` on a `size` file from [`tree`], and the copy of
/// it that resize2fs grows (both files extended to `new_size` bytes).
struct Case {
    _tmp: tempfile::TempDir,
    img: PathBuf,
    reference: PathBuf,
    mnt: PathBuf,
}

fn case(opts: &str, size: &str) -> Case {
    case_with(opts, size, 0)
}

/// [`case`] with a file of `data_mib` MiB of random bytes in the tree.
fn case_with(opts: &str, size: &str, data_mib: u64) -> Case {
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    let (src, img) = (tmp.path().join("tree"), tmp.path().join("fs.img"));
    tree(&src, data_mib);
    mkfs(&img, opts, size, Some(&src));
    std::fs::remove_dir_all(&src).unwrap();
    let (reference, mnt) = (tmp.path().join("resize2fs.img"), tmp.path().join("mnt"));
    std::fs::create_dir(&mnt).unwrap();
    Case {
        _tmp: tmp,
        img,
        reference,
        mnt,
    }
}

fn block_size(img: &Path) -> u64 {
    field(&dump(img), "Block size:").parse().unwrap()
}

fn block_count(img: &Path) -> u64 {
    field(&dump(img), "Block count:").parse().unwrap()
}

/// Extend the image to `blocks` blocks (the new space random bytes when `garbage`: a
/// device is not zero where a filesystem did not write), and make the resize2fs
/// reference of it; returns the time resize2fs took.
fn extend(c: &Case, blocks: u64, garbage: bool) -> std::time::Duration {
    let old = std::fs::metadata(&c.img).unwrap().len();
    let len = blocks * block_size(&c.img);
    if garbage {
        bash(&format!(
            "head -c {} /dev/urandom | dd of={} bs=1M seek={old} oflag=seek_bytes conv=notrunc status=none",
            len - old,
            s(&c.img)
        ));
    }
    bash(&format!(
        "truncate -s {len} {0}; cp --sparse=always {0} {1}",
        s(&c.img),
        s(&c.reference)
    ));
    let t = std::time::Instant::now();
    bash(&format!(
        "RESIZE2FS_FORCE_LAZY_ITABLE_INIT=1 resize2fs -f {} {}K >/dev/null 2>&1",
        s(&c.reference),
        len >> 10
    ));
    t.elapsed()
}

/// Grow `c.img` to `blocks` with the editor; returns the report and the close stats.
fn grow(c: &Case, blocks: u64) -> (GrowReport, subroot_libext2fs::CloseStats) {
    let (dev, mut fs) = open(&c.img);
    let report = fs.grow(blocks).unwrap();
    let stats = close_and_judge(fs, dev, &c.img);
    (report, stats)
}

/// Everything a grown filesystem must satisfy: e2fsck clean (by [`grow`]), the dumpe2fs
/// of the resize2fs reference, the same tree, and (root) a kernel mount whose `df` says
/// the new size.
fn judge(c: &Case, before: &subroot_test_support::EntryManifest, report: &GrowReport) {
    let (ours, theirs) = (dump(&c.img), dump(&c.reference));
    for name in [
        "Block count:",
        "Free blocks:",
        "Free inodes:",
        "Inode count:",
    ] {
        assert_eq!(field(&ours, name), field(&theirs, name), "{name}");
    }
    let groups = |d: &str| {
        d.lines()
            .filter(|l| l.starts_with("Group ") && l.contains(": (Blocks"))
            .count()
    };
    assert_eq!(groups(&ours), groups(&theirs), "group count");
    assert_eq!(groups(&ours), report.new_groups as usize);
    assert_eq!(
        field(&ours, "Block count:").parse::<u64>().unwrap(),
        report.new_blocks
    );
    // The whole dump: every field of the superblock and every group's layout, flags and
    // counts.
    if ours != theirs {
        let (a, b) = (c.img.with_extension("ours"), c.img.with_extension("theirs"));
        std::fs::write(&a, &ours).unwrap();
        std::fs::write(&b, &theirs).unwrap();
        let diff = bash(&format!("diff {} {} | head -40 || true", s(&a), s(&b)));
        panic!("dumpe2fs differs from resize2fs's (< ours, > resize2fs):\n{diff}");
    }
    assert_same_manifest(before, &ext_manifest(&c.img));
    kernel_sees(c, report);
}

/// As root: the kernel mounts the grown filesystem, and `df` shows the size it shows
/// for the resize2fs reference, more than the old size's.
fn kernel_sees(c: &Case, report: &GrowReport) {
    let t = "grow kernel mount";
    if !rich::is_root() || !need("mount", t) || !need("df", t) {
        eprintln!("SKIPPED {t}: needs root and mount");
        return;
    }
    let df = |img: &Path| {
        let guard = mount_ro(img, 0, &c.mnt, t)?;
        let out = bash(&format!("df -B1 --output=size {} | tail -1", s(&c.mnt)));
        drop(guard);
        Some(out.trim().parse::<u64>().unwrap())
    };
    let (Some(ours), Some(theirs)) = (df(&c.img), df(&c.reference)) else {
        return;
    };
    assert_eq!(ours, theirs, "df of ours and of resize2fs's");
    let bs = u64::from(report.block_size);
    // df leaves out the metadata (inode tables, journal, ...): less than the blocks.
    assert!(ours <= report.new_blocks * bs, "df says {ours}: {report:?}");
    if report.new_groups > report.old_groups {
        assert!(ours > report.old_blocks * bs, "df says {ours}: {report:?}");
    }
}

/// Grow a filesystem made with `opts` at `size` to `add(old)` blocks, judged.
fn grows_like_resize2fs(opts: &str, size: &str, add: impl Fn(u64) -> u64) -> GrowReport {
    grows_into(opts, size, add, false, "")
}

/// [`grows_like_resize2fs`], the new space filled with random bytes when `garbage`,
/// after the debugfs request `tweak` (when not empty).
fn grows_into(
    opts: &str,
    size: &str,
    add: impl Fn(u64) -> u64,
    garbage: bool,
    tweak: &str,
) -> GrowReport {
    let c = case(opts, size);
    if !tweak.is_empty() {
        bash(&format!(
            "debugfs -w -R '{tweak}' {} 2>/dev/null",
            s(&c.img)
        ));
    }
    let before = ext_manifest(&c.img);
    let old = block_count(&c.img);
    let new = add(old);
    extend(&c, new, garbage);
    let (report, _) = grow(&c, new);
    assert_eq!(report.old_blocks, old);
    judge(&c, &before, &report);
    report
}

const EXT4: &str = "-t ext4 -b 4096";
const EXT4_UNINIT: &str = "-t ext4 -b 4096 -O ^metadata_csum,uninit_bg";
const EXT4_NOCSUM: &str = "-t ext4 -b 4096 -O ^metadata_csum,^uninit_bg";
const EXT3: &str = "-t ext3 -b 4096";
/// Group descriptor checksums without flex_bg: each group holds its own tables.
const EXT3_UNINIT: &str = "-t ext3 -b 4096 -O uninit_bg";
/// mke2fs' default for a small filesystem: 1 KiB blocks.
const EXT2: &str = "-t ext2";
const EXT4_1K: &str = "-t ext4 -b 1024";
const META_BG: &str = "-t ext4 -b 4096 -O meta_bg,^resize_inode";

#[test]
fn grows_inside_the_last_group() {
    for opts in [EXT4, EXT4_UNINIT, EXT3, EXT2, EXT4_1K, META_BG] {
        // 100 MiB leaves a partial last group in every block size.
        let r = grows_like_resize2fs(opts, "100M", |b| b + 500);
        assert_eq!(r.new_groups, r.old_groups, "{opts}");
        assert_eq!(r.inode_tables_zeroed, 0);
    }
}

#[test]
fn grows_across_many_groups() {
    // (options, whether the new inode tables are written: no group descriptor checksums)
    let flavours = [
        (EXT4, false),
        (EXT4_UNINIT, false),
        (EXT4_NOCSUM, true),
        (EXT3, true),
        (EXT3_UNINIT, false),
        (EXT2, true),
        (EXT4_1K, false),
        (META_BG, false),
        ("-t ext4 -b 4096 -O orphan_file,metadata_csum_seed", false),
        // 32-byte descriptors.
        ("-t ext4 -b 4096 -O ^64bit", false),
        // 16 groups per descriptor block: new descriptor blocks in the new meta groups.
        ("-t ext4 -b 1024 -O meta_bg,^resize_inode", false),
    ];
    for (opts, zeroed) in flavours {
        let r = grows_like_resize2fs(opts, "100M", |b| b * 20 + 777);
        assert!(r.new_groups >= r.old_groups + 10, "{opts}: {r:?}");
        let new = r.new_groups - r.old_groups;
        assert_eq!(
            r.inode_tables_zeroed,
            if zeroed { new } else { 0 },
            "{opts}"
        );
    }
}

#[test]
fn every_group_holding_a_backup() {
    // No sparse_super (so no resize_inode): a backup superblock and descriptors in every
    // group; 1 KiB blocks, 32 groups per descriptor block, 13 -> 26 groups.
    let r = grows_like_resize2fs("-t ext2 -O ^sparse_super,^resize_inode", "100M", |b| b * 2);
    assert_eq!(r.inode_tables_zeroed, r.new_groups - r.old_groups);
}

#[test]
fn new_space_holding_old_bytes() {
    // Without checksums the new inode tables must be written with zeros; with them the
    // new groups must say INODE_UNINIT/BLOCK_UNINIT so that nothing reads the old bytes.
    for opts in [EXT2, EXT4_1K, "-t ext3 -b 1024"] {
        grows_into(opts, "20M", |_| 60 << 10, true, "");
    }
}

#[test]
fn the_stride_of_the_groups_is_kept() {
    // mke2fs -E stride staggers the bitmaps of groups without flex_bg; resize2fs places
    // the new groups' the same way, from the superblock's stride or, when it is 0, from
    // the stride it finds between the existing groups.
    grows_into("-t ext3 -b 1024 -E stride=37", "100M", |b| b * 3, false, "");
    let r = grows_into(
        "-t ext3 -b 1024 -E stride=37",
        "100M",
        |b| b * 3,
        false,
        "ssv raid_stride 0",
    );
    assert!(r.new_groups > r.old_groups);
}

#[test]
fn reserved_gdt_blocks_become_descriptors() {
    // 1 KiB blocks, 32-byte descriptors: 32 groups per descriptor block; 64 MiB holds 8
    // groups, 200 MiB 25, 300 MiB 38 (a second descriptor block from the reserve).
    let r = grows_like_resize2fs("-t ext3 -b 1024", "64M", |_| 300 << 10);
    assert_eq!((r.old_desc_blocks, r.new_desc_blocks), (1, 2));
    assert_eq!(r.reserved_gdt_used, 1);
    let r = grows_like_resize2fs("-t ext4 -b 1024", "64M", |_| 600 << 10);
    assert!(r.new_desc_blocks > r.old_desc_blocks, "{r:?}");
    assert_eq!(
        u64::from(r.reserved_gdt_used),
        r.new_desc_blocks - r.old_desc_blocks
    );
}

#[test]
fn a_last_group_too_small_is_left_out_as_resize2fs_does() {
    // 4 KiB blocks: 32768 per group; ask for a few blocks into a new group.
    let r = grows_like_resize2fs(EXT4, "200M", |_| 3 * 32768 + 10);
    assert_eq!(r.new_blocks, 3 * 32768);
}

#[test]
fn without_resize_inode_grows_within_the_descriptor_block() {
    // 1 KiB blocks, 64-byte descriptors: 16 groups of 8 MiB per descriptor block; 50 MiB
    // (7 groups) -> 120 MiB (15 groups).
    let r = grows_like_resize2fs("-t ext4 -b 1024 -O ^resize_inode", "50M", |_| 120 << 10);
    assert_eq!((r.old_desc_blocks, r.new_desc_blocks), (1, 1));
}

/// 2 GiB -> 20 GiB holding `data_mib` MiB of data, judged; prints and returns the time
/// and the bytes read and written (open, grow, close), and resize2fs' time on the copy.
fn two_to_twenty(opts: &str, data_mib: u64) -> (u64, u64) {
    let c = case_with(opts, "2G", data_mib);
    let before = ext_manifest(&c.img);
    let new = block_count(&c.img) * 10;
    let theirs = extend(&c, new, false);
    let t = std::time::Instant::now();
    let (dev, mut fs) = open(&c.img);
    let opened = t.elapsed();
    let report = fs.grow(new).unwrap();
    let grown = t.elapsed();
    let stats = fs.close().unwrap();
    let ours = t.elapsed();
    e2fsck_clean(&c.img);
    drop(dev);
    eprintln!(
        "measure: {opts} 2 GiB -> 20 GiB holding {data_mib} MiB: {ours:?} (open {opened:?}, \
         grow {:?}, close {:?}), read {} KiB, \
         wrote {} KiB ({} -> {} groups, {} reserved GDT blocks used); \
         resize2fs took {theirs:?}",
        grown - opened,
        ours - grown,
        stats.bytes_read >> 10,
        stats.bytes_written >> 10,
        report.old_groups,
        report.new_groups,
        report.reserved_gdt_used
    );
    judge(&c, &before, &report);
    // Metadata only: the descriptors and bitmaps, a few MiB at most.
    assert!(stats.bytes_read < 4 << 20, "read {}", stats.bytes_read);
    assert!(
        stats.bytes_written < 8 << 20,
        "wrote {}",
        stats.bytes_written
    );
    (stats.bytes_read, stats.bytes_written)
}

#[test]
fn two_to_twenty_gib() {
    two_to_twenty(EXT4_1K, 0);
    let empty = two_to_twenty(EXT4, 0);
    // The same with 512 MiB of data: the cost does not depend on the data held.
    let full = two_to_twenty(EXT4, 512);
    assert!(
        full.0.abs_diff(empty.0) < 64 << 10 && full.1.abs_diff(empty.1) < 64 << 10,
        "empty {empty:?}, holding data {full:?}"
    );
}

/// Make `c.img` `blocks` long, and a copy of it to compare with after a failed grow.
fn lengthen_keeping_a_copy(c: &Case, blocks: u64) -> PathBuf {
    let before = c.img.with_extension("before");
    bash(&format!(
        "truncate -s {len} {0}; cp --sparse=always {0} {1}",
        s(&c.img),
        s(&before),
        len = blocks * block_size(&c.img)
    ));
    before
}

/// `opts` at `size` grown to `blocks` must be refused naming `found`, the file unchanged.
fn refused(opts: &str, size: &str, blocks: impl Fn(u64) -> u64, found: &str) {
    let c = case(opts, size);
    let new = blocks(block_count(&c.img));
    let before = lengthen_keeping_a_copy(&c, new);
    let dev: Arc<dyn BlockDevice> = Arc::new(RawFile::open_rw(&c.img).unwrap());
    let mut fs = Ext2Fs::open(dev, s(&c.img)).unwrap();
    match fs.grow(new) {
        Err(e @ Error::GrowRefused { .. }) => {
            assert!(e.to_string().contains(found), "{opts}: {e}")
        }
        other => panic!("{opts}: not refused: {other:?}"),
    }
    drop(fs);
    bash(&format!("cmp {} {}", s(&c.img), s(&before)));
}

#[test]
fn layouts_it_cannot_grow_are_refused_with_nothing_written() {
    // 1 KiB blocks, 16 groups per descriptor block: 100 MiB (13 groups) -> 200 MiB (25).
    refused(
        "-t ext4 -b 1024 -O ^resize_inode",
        "100M",
        |_| 200 << 10,
        "only 0 reserved GDT blocks",
    );
    refused(
        "-t ext4 -O bigalloc -C 16384",
        "100M",
        |b| b * 2,
        "bigalloc",
    );
    refused(
        "-t ext4 -O sparse_super2",
        "100M",
        |b| b * 2,
        "sparse_super2",
    );
    // More descriptor blocks than were reserved: room for 200,000 blocks (25 groups, 2
    // descriptor blocks: 1 reserved), 400 MiB needs 4.
    refused(
        "-t ext4 -b 1024 -E resize=200000",
        "100M",
        |_| 400 << 10,
        "only 1 reserved GDT blocks",
    );
}

#[test]
fn a_size_smaller_or_past_the_device_is_invalid() {
    let c = case(EXT4, "100M");
    let old = block_count(&c.img);
    let (_dev, mut fs) = open(&c.img);
    assert!(matches!(fs.grow(old - 1), Err(Error::Invalid(_))));
    assert!(matches!(fs.grow(old + 1), Err(Error::Invalid(_))));
    let r = fs.grow(old).unwrap();
    assert_eq!((r.old_blocks, r.new_blocks), (old, old));
}

/// A file whose writes past `limit` fail.
struct WritesFailPast {
    file: RawFile,
    limit: u64,
}

impl BlockDevice for WritesFailPast {
    fn len(&self) -> u64 {
        self.file.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> subroot_formats::Result<()> {
        self.file.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> subroot_formats::Result<()> {
        if offset + buf.len() as u64 > self.limit {
            return Err(subroot_formats::Error::ReadOnly);
        }
        self.file.write_at(buf, offset)
    }
}

#[test]
fn a_grow_failing_half_way_is_not_written() {
    // No checksums: the new inode tables are written during grow, into the new space,
    // where this device fails; close must then refuse to write the half-grown metadata.
    let c = case(EXT2, "20M");
    let old_len = std::fs::metadata(&c.img).unwrap().len();
    let new = block_count(&c.img) * 3;
    let before = lengthen_keeping_a_copy(&c, new);
    let dev: Arc<dyn BlockDevice> = Arc::new(WritesFailPast {
        file: RawFile::open_rw(&c.img).unwrap(),
        limit: old_len,
    });
    let mut fs = Ext2Fs::open(dev, s(&c.img)).unwrap();
    let err = fs.grow(new).expect_err("the device fails");
    assert!(matches!(err, Error::Device(_)), "{err}");
    let err = fs.close().expect_err("close must refuse");
    assert!(err.to_string().contains("half-way"), "{err}");
    bash(&format!("cmp {} {}", s(&c.img), s(&before)));
}

#[test]
fn a_few_blocks_past_a_full_last_group_change_nothing() {
    // 256 MiB of 4 KiB blocks is exactly 2 groups; 10 blocks more cannot hold a group's
    // metadata: the size stays (resize2fs: "Nothing to do!") and nothing is written.
    let c = case(EXT4, "256M");
    let old = block_count(&c.img);
    assert_eq!(old, 2 * 32768);
    let before = lengthen_keeping_a_copy(&c, old + 10);
    let (dev, mut fs) = open(&c.img);
    let r = fs.grow(old + 10).unwrap();
    assert_eq!((r.new_blocks, r.new_groups), (old, 2));
    fs.close().unwrap();
    drop(dev);
    bash(&format!("cmp {} {}", s(&c.img), s(&before)));
}
