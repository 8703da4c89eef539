//! XFS through the CLI (issue 20), judged by the kernel and by xfsprogs.
//!
//! As root: filesystems made by `mkfs.xfs` (v5 with and without bigtime, with 64-bit
//! extent counters, v4 with `-m crc=0`) are loop-mounted and filled with the rich tree (owners, suid, ACLs,
//! `security.*`/`trusted.*`/empty/remote xattrs, hard links, devices, fifos, a socket,
//! sparse and unwritten extents, odd and long names, pre-1970 and post-2038 times), with
//! one directory in each of the four formats, a file whose extent map is a B+tree, and
//! attribute forks in leaf and node form; `xfs_db` confirms each format is really there.
//! `subroot export` (as uid 65534) unpacked by GNU tar, and `subroot extract`, must equal
//! the kernel's view of the mounted filesystem. A filesystem shut down with its log dirty
//! is refused without `--salvage`, and XFS inside an LVM2 logical volume is read with
//! `-p VG/LV` and found as the root automatically.
//!
//! Rootless: a filesystem built from an `mkfs.xfs -p` protofile, damaged in the ways a
//! reader must survive (bad CRCs, a bad AG header, a directory extent past the end, a
//! truncated image): each a clear error with the corrupt-input exit status, never a panic.
mod common;

use common::lvm::{lvm, pe_start, Loops};
use common::{
    fails, is_root, need, ok, patch, run, run_stdout, s, sfdisk_script, skip, skip_for_kernel,
    workdir,
};
use std::path::Path;
use std::process::Command;
use subroot_test_support::mount::{diff_tree, listing, mount_ro, small_tree, xattrs, Mounted};

/// `xfs_db -r` commands on `img`; their output.
fn xfs_db(img: &Path, cmds: &[&str]) -> String {
    let mut args = vec!["-r"];
    for c in cmds {
        args.extend(["-c", c]);
    }
    args.push(s(img));
    run_stdout("xfs_db", &args)
}

/// The inode number of `path`.
fn ino(path: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::symlink_metadata(path).expect("stat"))
}

/// The tree beyond [`small_tree`]: one directory per directory format, attribute forks in
/// leaf and node form, a remote value, ACLs, odd names, a fragmented and a preallocated
/// file, a socket, a long symlink and a far-future time.
fn xfs_extras(root: &Path) {
    let st = Command::new("sh")
        .args([
            "-ec",
            r#"d="$1"
mkdir "$d/dirs" "$d/dirs/short" "$d/dirs/block" "$d/dirs/leaf" "$d/dirs/node"
for i in 1 2 3; do echo "$i" > "$d/dirs/short/f$i"; done
for i in $(seq 20); do : > "$d/dirs/block/entry_$i"; done
for i in $(seq 300); do : > "$d/dirs/leaf/a_longer_entry_name_$i"; done
for i in $(seq 5000); do : > "$d/dirs/node/a_rather_long_file_name_number_$i"; done
printf x > "$d/dirs/name with spaces"
printf y > "$d/dirs/$(printf 'tab\there\001')"
printf z > "$d/dirs/$(printf '\377\376-not-utf8')"
: > "$d/dirs/é-ünïcödé"
: > "$d/dirs/$(printf 'L%.0s' $(seq 255))"
ln -s "$(printf 't%.0s' $(seq 700))" "$d/dirs/longlink"
setfacl -m u:1000:rw,g:100:r "$d/etc/os-release"
setfacl -d -m u:1000:rwx "$d/home/u"
setfattr -n security.selinux -v system_u:object_r:etc_t:s0 "$d/etc/os-release"
setfattr -n trusted.overlay.opaque -v y "$d/dirs"
setfattr -n user.empty "$d/dirs/short/f1"
setfattr -n user.big -v "$(head -c 20000 /dev/zero | tr '\0' v)" "$d/usr/bin/prog"
for i in $(seq 30); do setfattr -n "user.leaf$i" -v "value$i" "$d/dirs/block/entry_1"; done
for i in $(seq 600); do setfattr -n "user.node_attribute_$i" -v "value_$i" "$d/dirs/block/entry_2"; done
seq 0 8192 12288000 | sed 's/.*/pwrite -q -S 0x5a & 4096/' | xfs_io -f "$d/frag" >/dev/null
xfs_io -f -c 'falloc 0 1m' -c 'pwrite -q -S 0x61 512k 4k' -c 'truncate 3m' "$d/prealloc"
python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$d/var/sock"
touch -d '2200-01-01 00:00:00.5' "$d/dirs/future"
"#,
            "sh",
            s(root),
        ])
        .status()
        .expect("sh");
    assert!(st.success());
}

/// Check with `xfs_db` that each format the test means to cover is on disk.
fn assert_formats(img: &Path, mnt: &Path, v5: bool) {
    let dir = |p: &str| ino(&mnt.join(p)).to_string();
    let core = |p: &str, field: &str| {
        xfs_db(
            img,
            &[&format!("inode {}", dir(p)), &format!("print {field}")],
        )
    };
    assert!(core("dirs/short", "core.format").contains("(local)"));
    let block = xfs_db(img, &[&format!("inode {}", dir("dirs/block")), "bmap"]);
    assert_eq!(block.lines().count(), 1, "one directory block: {block}");
    let (leaf_magic, node_magic) = if v5 {
        ("0x3df1", "0x3ebe")
    } else {
        ("0xd2f1", "0xfebe")
    };
    // The magic of the block an xfs_db command (`dblock N`, `ablock N`) selects in the
    // inode of `p`.
    let magic = |p: &str, block: &str| {
        xfs_db(img, &[&format!("inode {}", dir(p)), block, "print"])
            .lines()
            .find(|l| l.contains("magic = "))
            .unwrap_or_default()
            .to_string()
    };
    let (aleaf, anode) = if v5 {
        ("0x3bee", "0x3ebe")
    } else {
        ("0xfbee", "0xfebe")
    };
    for (p, block, want) in [
        // A leaf directory's hash leaf (LEAF1), a node directory's dabtree node above them.
        ("dirs/leaf", "dblock 8388608", leaf_magic),
        ("dirs/node", "dblock 8388608", node_magic),
        // Attribute forks: one leaf block; a dabtree node above leaves.
        ("dirs/block/entry_1", "ablock 0", aleaf),
        ("dirs/block/entry_2", "ablock 0", anode),
    ] {
        let got = magic(p, block);
        assert!(got.contains(want), "{p} {block}: {got}, expected {want}");
    }
    assert!(core("frag", "core.format").contains("(btree)"));
    assert!(core("dirs/longlink", "core.format").contains("(extents)"));
}

/// The xattrs of a mounted XFS without its raw copies of the ACLs (`trusted.SGI_ACL_*`,
/// which the kernel lists to root next to the `system.posix_acl_*` it decodes them into).
fn acl_xattrs(mnt: &Path) -> Vec<String> {
    xattrs(mnt)
        .into_iter()
        .map(|b| {
            b.lines()
                .filter(|l| !l.starts_with("trusted.SGI_ACL_"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|b| b.lines().count() > 1)
        .collect()
}

/// Compare a tree written from the image with the kernel's view of it.
fn assert_like_kernel(mnt: &Path, got: &Path, what: &str) {
    let kernel = listing(mnt);
    let mine = listing(got);
    // Sockets are not carried by tar; extract makes them.
    let drop_sock = |l: &str| {
        l.lines()
            .filter(|l| !l.starts_with("./var/sock "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (kernel, mine) = if what == "export" {
        (drop_sock(&kernel), drop_sock(&mine))
    } else {
        (kernel, mine)
    };
    if kernel != mine {
        let k: Vec<&str> = kernel.lines().collect();
        let m: Vec<&str> = mine.lines().collect();
        let only_k: Vec<_> = k.iter().filter(|l| !m.contains(l)).take(10).collect();
        let only_m: Vec<_> = m.iter().filter(|l| !k.contains(l)).take(10).collect();
        panic!("{what}: listing differs\nkernel only: {only_k:#?}\n{what} only: {only_m:#?}");
    }
    let (k, m) = (acl_xattrs(mnt), acl_xattrs(got));
    if k != m {
        let short = |v: Vec<&String>| -> Vec<String> {
            v.iter()
                .take(5)
                .map(|b| b.chars().take(300).collect())
                .collect()
        };
        panic!(
            "{what}: xattrs differ\nkernel only: {:#?}\n{what} only: {:#?}",
            short(k.iter().filter(|b| !m.contains(b)).collect()),
            short(m.iter().filter(|b| !k.contains(b)).collect())
        );
    }
    let real: Vec<String> = diff_tree(mnt, got)
        .into_iter()
        .filter(|l| what != "export" || !l.ends_with("var: sock"))
        .collect();
    assert!(real.is_empty(), "{what}: {real:#?}");
    assert_eq!(
        ino(&got.join("usr/bin/prog")),
        ino(&got.join("usr/bin/prog2")),
        "{what}: hard link"
    );
    let blocks =
        std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(got.join("var/sparse")).unwrap());
    assert!(
        blocks * 512 < 1 << 20,
        "{what}: sparse file has {blocks} sectors"
    );
}

/// `subroot` as the test's own user (root), for what only root can recreate: owners,
/// devices, trusted.* xattrs.
fn subroot_as_root(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_subroot"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("subroot");
    assert!(
        out.status.success(),
        "subroot {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether the running kernel mounts an XFS V4 (crc=0) filesystem: kernels built without
/// `CONFIG_XFS_SUPPORT_V4` (deprecated since 5.10) refuse it.
fn kernel_mounts_xfs_v4(d: &Path) -> bool {
    let img = d.join("v4-probe.img");
    let mnt = d.join("v4-probe");
    std::fs::create_dir_all(&mnt).unwrap();
    run("truncate", &["-s", "320M", s(&img)]);
    run("mkfs.xfs", &["-q", "-f", "-m", "crc=0", s(&img)]);
    let ok = Command::new("mount")
        .args(["-o", "loop,ro", s(&img), s(&mnt)])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("mount")
        .success();
    if ok {
        run("umount", &[s(&mnt)]);
    }
    let _ = std::fs::remove_file(&img);
    ok
}

/// Make `img` with `mkfs.xfs OPTS` and fill it with the rich tree through a loop mount.
fn make_rich(img: &Path, mnt: &Path, opts: &[&str], t: &str) -> bool {
    run("truncate", &["-s", "320M", s(img)]);
    run("mkfs.xfs", &[&["-q", "-f"], opts, &[s(img)]].concat());
    let st = Command::new("mount")
        .args(["-o", "loop", s(img), s(mnt)])
        .status()
        .expect("mount");
    if !st.success() {
        skip(t, "loop mount failed (no loop devices here?)");
        return false;
    }
    let guard = Mounted(mnt);
    small_tree(mnt);
    xfs_extras(mnt);
    drop(guard);
    run("chmod", &["a+r", s(img)]);
    true
}

#[test]
fn every_format_reads_as_the_kernel_sees_it() {
    let t = "every_format_reads_as_the_kernel_sees_it";
    if !is_root() {
        return skip(t, "needs root for the loop mount");
    }
    for tool in [
        "mkfs.xfs", "xfs_db", "xfs_io", "mount", "setfacl", "setfattr", "getfattr", "tar",
        "python3",
    ] {
        if !need(tool, t) {
            return;
        }
    }
    let w = workdir();
    let d = w.path();
    let mnt = d.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    // Outputs go to an XFS of their own: the work directory's filesystem may not hold
    // 600 xattrs on one file or a 20 kB value (ext4 keeps them in one block).
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    let scratch = d.join("scratch.img");
    run("truncate", &["-s", "1G", s(&scratch)]);
    run("mkfs.xfs", &["-q", s(&scratch)]);
    run("mount", &["-o", "loop", s(&scratch), s(&out)]);
    let _scratch = Mounted(&out);
    run("chmod", &["1777", s(&out)]);
    for (name, opts, v5) in [
        ("v5", &["-m", "bigtime=1"][..], true),
        ("v5-oldtime", &["-m", "bigtime=0,inobtcount=0"][..], true),
        ("v5-nrext64", &["-i", "nrext64=1"][..], true),
        ("v4", &["-m", "crc=0"][..], false),
    ] {
        let img = d.join(format!("{name}.img"));
        if !v5 && !kernel_mounts_xfs_v4(d) {
            // The kernel is the judge here, and this one cannot read V4 at all.
            skip_for_kernel(
                t,
                "v4: this kernel does not mount XFS V4 (CONFIG_XFS_SUPPORT_V4 off)",
            );
            continue;
        }
        if !make_rich(&img, &mnt, opts, t) {
            return;
        }
        let Some(guard) = mount_ro(&img, 0, &mnt, t) else {
            return;
        };
        assert_formats(&img, &mnt, v5);
        let file = format!("{name}.img");
        // export as nobody, unpacked by GNU tar (as root: owners, devices, trusted.*).
        let tar = format!("out/{name}.tar");
        ok(d, &["export", &file, "-o", &tar]);
        let untar = out.join(format!("{name}-tar"));
        std::fs::create_dir(&untar).unwrap();
        run(
            "tar",
            &[
                "--xattrs",
                "--xattrs-include=*",
                "--acls",
                "--numeric-owner",
                "-xpf",
                s(&d.join(&tar)),
                "-C",
                s(&untar),
            ],
        );
        assert_like_kernel(&mnt, &untar, "export");
        let x = out.join(format!("{name}-x"));
        subroot_as_root(d, &["-q", "extract", &file, "/", "-C", s(&x)]);
        assert_like_kernel(&mnt, &x, "extract");
        // cat and ls agree too.
        assert_eq!(
            ok(d, &["cat", &file, "/etc/os-release"]),
            std::fs::read_to_string(mnt.join("etc/os-release")).unwrap()
        );
        assert_eq!(
            ok(d, &["ls", &file, "/dirs/node"]).lines().count(),
            5000,
            "{name}"
        );
        drop(guard);
    }
}

#[test]
fn a_dirty_log_is_refused_unless_salvaging() {
    let t = "a_dirty_log_is_refused_unless_salvaging";
    if !is_root() {
        return skip(t, "needs root for the loop mount");
    }
    if !need("mkfs.xfs", t) || !need("xfs_io", t) || !need("xfs_logprint", t) {
        return;
    }
    let w = workdir();
    let d = w.path();
    let img = d.join("dirty.img");
    let mnt = d.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    run("truncate", &["-s", "320M", s(&img)]);
    run("mkfs.xfs", &["-q", s(&img)]);
    let st = Command::new("mount")
        .args(["-o", "loop", s(&img), s(&mnt)])
        .status()
        .expect("mount");
    if !st.success() {
        return skip(t, "loop mount failed (no loop devices here?)");
    }
    {
        let _guard = Mounted(&mnt);
        std::fs::write(mnt.join("before"), "kept\n").unwrap();
        // A freeze writes the metadata back in place; what follows stays in the log.
        run("xfs_io", &["-x", "-c", "freeze", "-c", "thaw", s(&mnt)]);
        std::fs::write(mnt.join("logged"), "only in the log\n").unwrap();
        // Shut down without flushing the log: what a crash leaves.
        run("xfs_io", &["-x", "-c", "shutdown", s(&mnt)]);
    }
    run("chmod", &["a+r", s(&img)]);
    let lp = run_stdout("xfs_logprint", &["-t", s(&img)]);
    assert!(lp.contains("DIRTY"), "xfs_logprint sees a clean log: {lp}");
    fails(
        d,
        &["ls", "dirty.img", "/"],
        3,
        &["log needs recovery", "--salvage"],
    );
    let out = ok(d, &["ls", "--salvage", "dirty.img", "/"]);
    assert_eq!(
        out, "before\n",
        "the on-disk state, without the logged file"
    );
    // And a clean filesystem is read without a word.
    run("mkfs.xfs", &["-q", "-f", s(&img)]);
    ok(d, &["ls", "dirty.img", "/"]);
}

/// A small XFS (320 MiB, sparse: mkfs.xfs makes nothing smaller than 300 MB) built
/// rootless from a protofile: `/etc/os-release`, a file of 3 blocks,
/// and a directory of 20 entries (block form).
fn proto_fs(dir: &Path, name: &str, opts: &[&str]) -> std::path::PathBuf {
    let rel = dir.join("os-release");
    std::fs::write(&rel, "ID=rocky\nVERSION_ID=\"9.4\"\n").unwrap();
    let data = dir.join("data");
    std::fs::write(&data, vec![0x42u8; 3 * 4096 + 5]).unwrap();
    let mut proto = format!(
        "/dev/null\n0 0\nd--755 0 0\netc d--755 0 0\nos-release ---644 0 0 {}\n$\n\
         data ---600 1000 1000 {}\nlink l--777 0 0 etc/os-release\n\
         null c--666 0 0 1 3\nmany d--750 12 34\n",
        s(&rel),
        s(&data)
    );
    for i in 0..20 {
        proto.push_str(&format!("entry_with_a_name_{i} ---644 0 0 {}\n", s(&rel)));
    }
    proto.push_str("$\n$\n");
    let p = dir.join(format!("{name}.proto"));
    std::fs::write(&p, proto).unwrap();
    let img = dir.join(name);
    run("truncate", &["-s", "320M", s(&img)]);
    run(
        "mkfs.xfs",
        &[&["-q", "-f", "-p", s(&p)], opts, &[s(&img)]].concat(),
    );
    run("chmod", &["a+r", s(&img)]);
    img
}

/// The byte offset of the first data block of inode `inum`, as `xfs_db bmap` says.
fn first_block(img: &Path, inum: &str) -> u64 {
    let bmap = xfs_db(img, &[&format!("inode {inum}"), "bmap"]);
    // "data offset 0 startblock 1234 (0/1234) count 1 flag 0": (AG/block in AG)
    let ag_bno = bmap
        .split_whitespace()
        .find(|w| w.starts_with('('))
        .unwrap_or_else(|| panic!("{bmap}"));
    let (ag, bno) = ag_bno
        .trim_matches(|c| c == '(' || c == ')')
        .split_once('/')
        .unwrap();
    let agblocks: u64 = xfs_db(img, &["sb 0", "print agblocks"])
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (ag.parse::<u64>().unwrap() * agblocks + bno.parse::<u64>().unwrap()) * 4096
}

/// The inode number of `name` in directory inode `dir`, as `xfs_db` lists it.
fn db_lookup(img: &Path, path: &str) -> String {
    let out = xfs_db(img, &[&format!("path {path}"), "print core.mode", "inode"]);
    out.lines()
        .find_map(|l| l.strip_prefix("current inode number is "))
        .unwrap_or_else(|| panic!("{out}"))
        .trim()
        .to_string()
}

#[test]
fn a_protofile_filesystem_reads_rootless_and_damage_is_a_clear_error() {
    let t = "a_protofile_filesystem_reads_rootless_and_damage_is_a_clear_error";
    if !need("mkfs.xfs", t) || !need("xfs_db", t) {
        return;
    }
    let w = workdir();
    let d = w.path();
    for (name, opts) in [("p5.img", &[][..]), ("p4.img", &["-m", "crc=0"][..])] {
        proto_fs(d, name, opts);
        assert_eq!(
            ok(d, &["cat", name, "/etc/os-release"]),
            "ID=rocky\nVERSION_ID=\"9.4\"\n"
        );
        let ls = ok(d, &["ls", "-l", name, "/"]);
        assert!(ls.contains("crw-rw-rw-") && ls.contains("1, 3"), "{ls}");
        assert!(ls.contains("link -> etc/os-release"), "{ls}");
        assert!(ls.contains("1000  1000      12293"), "{ls}");
        assert_eq!(ok(d, &["ls", name, "/many"]).lines().count(), 20);
        let info = ok(d, &["info", name]);
        assert!(info.contains("xfs"), "{info}");
        let inspect = ok(d, &["inspect", name]);
        assert!(
            inspect.contains("id=rocky version_id=9.4") && inspect.contains("root xfs"),
            "{inspect}"
        );
    }
    let img = d.join("p5.img");
    // Each damaged copy made sparse (the images are 320 MB) and patched in place.
    let damaged = |file: &str, at: u64, bytes: &[u8]| {
        let p = d.join(file);
        run("cp", &["--sparse=always", s(&img), s(&p)]);
        patch(&p, at, bytes);
        run("chmod", &["a+r", s(&p)]);
    };
    let many = db_lookup(&img, "/many");
    let dir_at = first_block(&img, &many);
    let root_ino: u64 = xfs_db(&img, &["sb 0", "print rootino"])
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Superblock CRC: a byte of the label changed, the CRC not.
    damaged("sbcrc.img", 108, b"Z");
    // A directory data block's CRC.
    damaged("dircrc.img", dir_at + 200, b"\xff\xfe");
    // The AGF of AG 0.
    damaged("agf.img", 512, b"Y");
    // The root inode's magic (in AG 0, inode N is at byte N * 512 with 512-byte inodes).
    damaged("rootino.img", root_ino * 512, b"X");
    let trunc = d.join("trunc.img");
    run("cp", &["--sparse=always", s(&img), s(&trunc)]);
    run("truncate", &["-s", "100M", s(&trunc)]);
    for (file, args, phrases) in [
        ("sbcrc.img", vec!["ls"], vec!["superblock's CRC"]),
        (
            "dircrc.img",
            vec!["ls"],
            vec!["CRC", &format!("directory inode {many}")],
        ),
        ("dircrc.img", vec!["manifest"], vec!["CRC"]),
        ("agf.img", vec!["ls"], vec!["allocation group 0", "XAGF"]),
        ("rootino.img", vec!["ls"], vec!["inode", "magic"]),
        ("trunc.img", vec!["ls"], vec!["truncated"]),
    ] {
        let mut a: Vec<&str> = args.clone();
        a.push(file);
        if a[0] == "ls" {
            a.push("/many");
        }
        fails(d, &a, 3, &phrases);
    }
    for file in ["dircrc.img", "trunc.img"] {
        for args in [
            vec!["export", file, "-o", "out.tar"],
            vec!["extract", "--directory", "xout", file, "/"],
        ] {
            let out = common::subroot_in(d, &args);
            assert_eq!(out.status.code(), Some(3), "{args:?}");
            assert!(!d.join("out.tar").exists(), "no partial export");
        }
    }
    // A directory extent moved past the end of the filesystem (xfs_db recomputes the
    // inode's CRC, so only the extent is wrong).
    let past = d.join("past.img");
    run("cp", &["--sparse=always", s(&img), s(&past)]);
    run(
        "xfs_db",
        &[
            "-x",
            "-c",
            &format!("inode {many}"),
            "-c",
            "write u3.bmx[0].startblock 9999999",
            s(&past),
        ],
    );
    run("chmod", &["a+r", s(&past)]);
    fails(
        d,
        &["ls", "past.img", "/many"],
        3,
        &["outside the filesystem"],
    );
}

#[test]
fn xfs_in_a_logical_volume_is_read_and_writing_commands_refuse_xfs() {
    let t = "xfs_in_a_logical_volume_is_read_and_writing_commands_refuse_xfs";
    if !need("mkfs.xfs", t) {
        return;
    }
    let w = workdir();
    let d = w.path();
    let fs = proto_fs(d, "root.xfs", &[]);
    // Writing commands name the filesystem.
    std::fs::write(d.join("f"), "x").unwrap();
    for args in [
        vec!["copy-in", "root.xfs", "f", "/", "-o", "out.raw"],
        vec!["relayout", "root.xfs", "-o", "out.raw"],
    ] {
        let out = common::subroot_in(d, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains("xfs"), "{args:?}: {err}");
        assert!(!d.join("out.raw").exists());
    }
    if !is_root() {
        return skip(t, "needs root for loop devices (LVM2 part)");
    }
    for tool in [
        "pvcreate", "vgcreate", "lvcreate", "lvs", "losetup", "sfdisk",
    ] {
        if !need(tool, t) {
            return;
        }
    }
    let img = d.join("disk.raw");
    run("truncate", &["-s", "400M", s(&img)]);
    sfdisk_script(&img, "label: gpt\nstart=1MiB, size=360MiB, type=lvm\n");
    let pv_start = 1u64 << 20;
    let loops = Loops::attach(&img, &[(pv_start, 360 << 20)]);
    let devs = loops.0.clone();
    lvm(&devs, &["pvcreate", "-q", &devs[0]]);
    lvm(&devs, &["vgcreate", "-q", "-s", "1M", "rhel", &devs[0]]);
    lvm(
        &devs,
        &[
            "lvcreate",
            "-q",
            "--driverloaded",
            "n",
            "-an",
            "-Zn",
            "-y",
            "-L",
            "320M",
            "-n",
            "root",
            "rhel",
        ],
    );
    let pe_start = pe_start(&devs, &devs[0]);
    drop(loops);
    // The filesystem placed at the volume's first extent (the group's only volume).
    run(
        "dd",
        &[
            &format!("if={}", s(&fs)),
            &format!("of={}", s(&img)),
            "bs=1M",
            &format!("seek={}", (pv_start + pe_start) >> 20),
            "conv=sparse,notrunc",
            "status=none",
        ],
    );
    run("chmod", &["a+r", s(&img)]);
    assert_eq!(
        ok(d, &["manifest", "-p", "rhel/root", "disk.raw"]),
        ok(d, &["manifest", "root.xfs"])
    );
    // The XFS root is found by itself inside the volume.
    assert_eq!(
        ok(d, &["cat", "disk.raw", "/etc/os-release"]),
        "ID=rocky\nVERSION_ID=\"9.4\"\n"
    );
    let x = d.join("x");
    ok(
        d,
        &[
            "extract",
            "-p",
            "rhel/root",
            "disk.raw",
            "/etc",
            "-C",
            s(&x),
        ],
    );
    assert!(x.join("os-release").exists() || x.join("etc/os-release").exists());
}
