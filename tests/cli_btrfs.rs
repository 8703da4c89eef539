//! btrfs through the CLI (issue 20). The kernel is the judge: as root, a btrfs made by
//! `mkfs.btrfs` is loop-mounted with `compress=zstd` (or zlib, lzo), filled by `cp -a`
//! with the rich tree (owners, setuid, capabilities, ACLs, hard links, devices, a fifo, a
//! socket, a 100 MiB sparse file, long and non-UTF-8 names, a 20,000-entry directory),
//! given subvolumes, a snapshot, an inline file and a prealloc range, and set a default
//! subvolume. Then, with the CLI as uid 65534: `manifest` equals the manifest of the
//! kernel's view of the same subvolume (read ro through the kernel), `export` → GNU tar
//! and `extract` give back the kernel's tree, `--subvol` picks each subvolume and `info`
//! lists them. Rootless: a RAID1 two-device btrfs is refused by name, `--subvol` on ext4
//! is refused, and damaged images (bad checksum, truncated, a chunk mapped past the end,
//! a tree pointer loop) are clear errors, never a panic.
mod common;

use common::{fails, is_root, need, ok, ok_bytes, run, run_stdout, s, skip, workdir};
use std::path::Path;
use subroot_formats::block::RawFile;
use subroot_formats::btrfs::csum::CsumType;
use subroot_formats::btrfs::BtrfsFs;
use subroot_formats::hostdir::HostDir;
use subroot_formats::manifest::{manifest, ManifestOptions};
use subroot_test_support::mount::{diff_tree, listing, mount_ro_with, xattrs};
use subroot_test_support::rich::build_tree;

/// The manifest lines of the kernel's view of a mounted tree (nested subvolumes
/// included: they are other devices to `stat`).
fn kernel_manifest(mnt: &Path) -> String {
    let tree = HostDir::open(mnt).expect("open mount").cross_mounts(true);
    let mut out = String::new();
    manifest(&tree, b"", ManifestOptions::default(), &mut |r| {
        out.push_str(&r.line());
        out.push('\n');
        Ok(())
    })
    .expect("kernel manifest");
    out
}

/// Run a bash script as root (the fixture builder), failing loudly.
fn bash(script: &str) {
    run("bash", &["-euo", "pipefail", "-c", script]);
}

/// Build a btrfs image `img` with `compress` holding subvolume `@` (the default) with
/// `tree` copied in, a nested subvolume `@/vol`, a snapshot `@vol-snap` of it and a
/// snapshot `@snap` of `@` (where `vol` is left an empty directory), an inline file, a
/// partly written prealloc range and a compressible file.
fn build_btrfs(img: &Path, tree: &Path, compress: &str) {
    let m = img.with_extension("mnt");
    std::fs::create_dir_all(&m).expect("mkdir");
    bash(&format!(
        r#"
img={img}; m={m}; tree={tree}
truncate -s 1G "$img"
mkfs.btrfs -q -f "$img"
mount -o loop,compress={compress} "$img" "$m"
trap 'umount "$m"' EXIT
btrfs -q subvolume create "$m/@"
cp -a "$tree/." "$m/@/"
btrfs -q subvolume create "$m/@/vol"
mkdir "$m/@/vol/u"; echo 'in a nested subvolume' > "$m/@/vol/u/note"
chown -R 1000:1000 "$m/@/vol/u"
echo small > "$m/@/inline"
fallocate -l 1M "$m/@/prealloc"; printf data | dd of="$m/@/prealloc" bs=1 seek=200000 conv=notrunc status=none
fallocate -o 3M -l 1M "$m/@/prealloc"
python3 -c 'import sys; sys.stdout.write("".join("line %d of a compressible file\n" % i for i in range(100000)))' > "$m/@/text"
btrfs -q subvolume snapshot "$m/@/vol" "$m/@vol-snap"
echo 'after the snapshot' > "$m/@/vol/u/later"
btrfs -q subvolume snapshot -r "$m/@" "$m/@snap"
btrfs -q subvolume set-default "$m/@"
"#,
        img = s(img),
        m = s(&m),
        tree = s(tree),
    ));
}

/// Whether this test can build btrfs fixtures (root, tools, a kernel with btrfs).
fn can_mount(t: &str) -> bool {
    if !is_root() {
        skip(t, "needs root for the loop mount");
        return false;
    }
    for tool in [
        "mkfs.btrfs",
        "btrfs",
        "mount",
        "umount",
        "setfacl",
        "setcap",
        "setfattr",
        "python3",
        "getfattr",
        "tar",
    ] {
        if !need(tool, t) {
            return false;
        }
    }
    if !subroot_test_support::mount::kernel_has("btrfs") {
        skip(t, "the kernel has no btrfs");
        return false;
    }
    true
}

/// The compression types of the data extents of subvolume `id` (`btrfs inspect-internal
/// dump-tree`), to prove the fixture's extents really are compressed.
fn compressions(img: &Path, id: &str) -> String {
    run_stdout(
        "btrfs",
        &["inspect-internal", "dump-tree", "-t", id, s(img)],
    )
}

/// `manifest` of `img` (`--subvol` when given) as the CLI prints it.
fn cli_manifest(dir: &Path, img: &str, subvol: Option<&str>) -> String {
    let mut args = vec!["-q", "manifest", img];
    if let Some(v) = subvol {
        args.extend(["--subvol", v]);
    }
    ok(dir, &args)
}

/// A manifest line without what the kernel makes up at lookup time: the mtime and ctime
/// of `stub`, the empty directory a snapshot shows where a nested subvolume was.
fn stable(line: &str, stub: Option<&str>) -> String {
    let mut f: Vec<&str> = line.split('\t').collect();
    if Some(f[0]) == stub {
        f[5] = "-";
        f[7] = "-";
    }
    f.join("\t")
}

/// Mount `img` read-only with `opts`, and check that the CLI's manifest of `subvol`
/// equals the kernel's view (but for the made-up times of `stub`, see [`stable`]).
fn same_as_kernel(
    dir: &Path,
    img: &Path,
    opts: &str,
    subvol: Option<&str>,
    stub: Option<&str>,
    t: &str,
) {
    let mnt = dir.join("kernel");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let Some(guard) = mount_ro_with(img, opts, &mnt, t) else {
        panic!("{t}: cannot mount the fixture read-only");
    };
    let kernel = kernel_manifest(&mnt);
    drop(guard);
    let ours = cli_manifest(dir, s(img.file_name().unwrap().as_ref()), subvol);
    assert_eq!(ours.lines().count(), kernel.lines().count(), "{opts}");
    for (a, b) in ours.lines().zip(kernel.lines()) {
        assert_eq!(
            stable(a, stub),
            stable(b, stub),
            "subvolume {subvol:?} (kernel: {opts})"
        );
    }
}

#[test]
fn a_zstd_btrfs_with_subvolumes_reads_as_the_kernel_shows_it() {
    let t = "a_zstd_btrfs_with_subvolumes_reads_as_the_kernel_shows_it";
    if !can_mount(t) {
        return;
    }
    let w = workdir();
    let d = w.path();
    let tree = d.join("tree");
    build_tree(&tree, true);
    let img = d.join("fs.btrfs");
    build_btrfs(&img, &tree, "zstd");
    run("chmod", &["a+r", s(&img)]);
    let dump = compressions(&img, "256");
    assert!(dump.contains("compression 3 (zstd)"), "no zstd extent");
    assert!(dump.contains("prealloc data"), "no prealloc extent");
    assert!(
        dump.contains("inline extent data size 6"),
        "no inline extent"
    );

    // The default subvolume (@), with @/vol nested inside.
    same_as_kernel(d, &img, "loop,ro", None, None, t);
    // The top level by id: @ and the snapshots appear as directories.
    let stub = Some("@snap/vol");
    same_as_kernel(d, &img, "loop,ro,subvolid=5", Some("5"), stub, t);
    // A snapshot by path: it was taken before `later` was written.
    same_as_kernel(
        d,
        &img,
        "loop,ro,subvol=@vol-snap",
        Some("/@vol-snap"),
        None,
        t,
    );
    // A snapshot of @ holds an empty directory where @/vol was.
    let stub = Some("vol");
    same_as_kernel(d, &img, "loop,ro,subvol=@snap", Some("@snap"), stub, t);
    assert_eq!(
        ok(d, &["-q", "ls", "fs.btrfs", "--subvol", "@snap", "/vol"]),
        ""
    );
    assert!(ok(d, &["-q", "cat", "fs.btrfs", "/vol/u/later"]).contains("after"));

    // info lists the subvolumes, the default marked.
    let info = ok(d, &["info", "fs.btrfs"]);
    for want in ["5 /", "256 /@ (default)", "/@/vol", "/@vol-snap", "/@snap"] {
        assert!(info.contains(want), "{want:?} not in:\n{info}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&ok(d, &["info", "--json", "fs.btrfs"])).expect("json");
    let subvols = json["filesystem"]["subvolumes"]
        .as_array()
        .expect("subvolumes");
    assert_eq!(subvols.len(), 5, "{subvols:?}");
    assert!(subvols
        .iter()
        .any(|v| v["path"] == "/@" && v["default"] == true && v["id"] == 256));

    // export → GNU tar (extracted as root) and extract (as nobody) give the kernel's tree.
    let mnt = d.join("kernel");
    let guard = mount_ro_with(&img, "loop,ro", &mnt, t).expect("mount");
    ok(d, &["-q", "export", "fs.btrfs", "-o", "out.tar"]);
    let untar = d.join("untar");
    std::fs::create_dir(&untar).expect("mkdir");
    run(
        "tar",
        &[
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "-xpf",
            s(&d.join("out.tar")),
            "-C",
            s(&untar),
        ],
    );
    // A tar archive cannot hold the socket.
    let kernel: Vec<String> = listing(&mnt)
        .lines()
        .filter(|l| !l.starts_with("./sock "))
        .map(str::to_string)
        .collect();
    assert_eq!(listing(&untar), kernel.join("\n"));
    assert_eq!(xattrs(&untar), xattrs(&mnt));
    let diff = diff_tree(&mnt, &untar);
    assert_eq!(diff, [format!("Only in {}: sock", s(&mnt))]);
    ok(d, &["-q", "extract", "fs.btrfs", "-C", "x", "/vol"]);
    let diff = diff_tree(&mnt.join("vol"), &d.join("x"));
    assert!(diff.is_empty(), "{diff:#?}");
    drop(guard);
}

#[test]
fn zlib_and_lzo_extents_read_as_the_kernel_shows_them() {
    let t = "zlib_and_lzo_extents_read_as_the_kernel_shows_them";
    if !can_mount(t) {
        return;
    }
    let w = workdir();
    let d = w.path();
    let tree = d.join("tree");
    std::fs::create_dir(&tree).expect("mkdir");
    subroot_test_support::mount::small_tree(&tree);
    for (algo, n) in [("zlib", "1"), ("lzo", "2")] {
        let img = d.join(format!("{algo}.btrfs"));
        build_btrfs(&img, &tree, algo);
        run("chmod", &["a+r", s(&img)]);
        let dump = compressions(&img, "256");
        assert!(
            dump.contains(&format!("compression {n} ({algo})")),
            "no {algo} extent"
        );
        same_as_kernel(d, &img, "loop,ro", None, None, t);
        let stub = Some("@snap/vol");
        same_as_kernel(d, &img, "loop,ro,subvolid=5", Some("5"), stub, t);
    }
}

/// A btrfs made without root (`mkfs.btrfs --rootdir`) with a directory big enough for
/// a two-level FS tree.
fn rootless_btrfs(d: &Path, name: &str) -> std::path::PathBuf {
    let src = d.join(format!("{name}.src"));
    std::fs::create_dir_all(src.join("many")).expect("mkdir");
    for i in 0..3000 {
        std::fs::write(src.join(format!("many/file-{i:05}")), format!("{i}\n")).expect("write");
    }
    std::fs::write(src.join("hello"), "hello\n").expect("write");
    let img = d.join(name);
    run("truncate", &["-s", "128M", s(&img)]);
    run("mkfs.btrfs", &["-q", "-f", "--rootdir", s(&src), s(&img)]);
    run("chmod", &["a+rw", s(&img)]);
    img
}

#[test]
fn btrfs_made_without_root_is_read_and_damage_is_named() {
    let t = "btrfs_made_without_root_is_read_and_damage_is_named";
    if !need("mkfs.btrfs", t) {
        return;
    }
    let w = workdir();
    let d = w.path();
    let img = rootless_btrfs(d, "a.btrfs");
    assert_eq!(ok(d, &["-q", "cat", "a.btrfs", "/hello"]), "hello\n");
    assert_eq!(
        ok(d, &["-q", "cat", "a.btrfs", "/many/file-02999"]),
        "2999\n"
    );
    assert_eq!(
        ok(d, &["-q", "ls", "a.btrfs", "/many"]).lines().count(),
        3000
    );
    fails(
        d,
        &["-q", "ls", "a.btrfs", "--subvol", "nope"],
        1,
        &["no subvolume at \"nope\"", "5 /"],
    );
    // Writing commands and relayout refuse btrfs by name, writing nothing.
    std::fs::write(d.join("new"), "new\n").expect("write");
    run("chmod", &["a+r", s(&d.join("new"))]);
    let edits: [&[&str]; 3] = [
        &["rm", "a.btrfs", "/hello", "-o", "out.img"],
        &["copy-in", "a.btrfs", "new", "/new", "-o", "out.img"],
        &["relayout", "a.btrfs", "-o", "out.img"],
    ];
    for args in edits {
        let err = fails(d, args, 3, &["btrfs"]);
        assert!(
            err.contains("XFS and btrfs it only reads")
                || err.contains("relayout supports ext2/3/4"),
            "{err}"
        );
        assert!(!d.join("out.img").exists());
    }

    // A bad superblock checksum.
    let bytes = std::fs::read(&img).expect("read");
    let variant = |name: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = bytes.clone();
        f(&mut b);
        std::fs::write(d.join(name), b).expect("write");
        run("chmod", &["a+r", s(&d.join(name))]);
    };
    variant("csum.btrfs", &|b| b[0x10000 + 0x100] ^= 1);
    fails(
        d,
        &["-q", "ls", "csum.btrfs"],
        3,
        &["bad crc32c checksum", "superblock"],
    );
    // Truncated: the chunks lie past the end.
    variant("short.btrfs", &|b| b.truncate(2 << 20));
    fails(
        d,
        &["-q", "ls", "short.btrfs"],
        3,
        &["past the end of the device"],
    );
    // A bootstrap chunk mapped past the end (checksum fixed up).
    let resum = |b: &mut Vec<u8>| {
        let sb = &mut b[0x10000..0x11000];
        let c = CsumType::Crc32c.compute(&sb[32..]);
        sb[..32].copy_from_slice(&c);
    };
    variant("chunk.btrfs", &|b| {
        // The first stripe's offset: key (17) + chunk head (48) + devid (8).
        let at = 0x10000 + 0x32b + 17 + 48 + 8;
        b[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        resum(b);
    });
    fails(
        d,
        &["-q", "ls", "chunk.btrfs"],
        3,
        &["mapped to offset 1099511627776, past the end of the device"],
    );
    // A tree pointer loop: the FS tree's root points at itself (checksum fixed up).
    let fs = BtrfsFs::open(RawFile::open(&img).expect("open")).expect("btrfs");
    let item = fs.root_item(5).expect("root item").expect("fs tree");
    assert!(item.level >= 1, "the FS tree has one level only");
    let at = fs.physical(item.bytenr).expect("map");
    let nodesize = fs.superblock().nodesize as usize;
    // DUP metadata: a damaged first copy of a tree block is read from the second.
    assert_eq!(at.len(), 2, "metadata is not DUP");
    variant("dup.btrfs", &|b| b[at[0] as usize + 200] ^= 0xff);
    assert_eq!(ok(d, &["-q", "cat", "dup.btrfs", "/hello"]), "hello\n");
    variant("dup2.btrfs", &|b| {
        for &p in &at {
            b[p as usize + 200] ^= 0xff;
        }
    });
    fails(
        d,
        &["-q", "ls", "dup2.btrfs"],
        3,
        &[
            "bad crc32c checksum",
            &format!("tree block at logical {}", item.bytenr),
        ],
    );
    variant("loop.btrfs", &|b| {
        for &p in &at {
            let node = &mut b[p as usize..p as usize + nodesize];
            // The first child pointer: header (0x65) + key (17).
            node[0x65 + 17..0x65 + 25].copy_from_slice(&item.bytenr.to_le_bytes());
            let c = CsumType::Crc32c.compute(&node[32..]);
            node[..32].copy_from_slice(&c);
        }
    });
    fails(
        d,
        &["-q", "ls", "-R", "loop.btrfs"],
        3,
        &["a tree pointer loop?"],
    );
}

#[test]
fn raid1_over_two_devices_and_subvol_elsewhere_are_refused() {
    let t = "raid1_over_two_devices_and_subvol_elsewhere_are_refused";
    if !need("mkfs.btrfs", t) || !need("mke2fs", t) {
        return;
    }
    let w = workdir();
    let d = w.path();
    for f in ["r1.btrfs", "r2.btrfs"] {
        run("truncate", &["-s", "256M", s(&d.join(f))]);
    }
    run(
        "mkfs.btrfs",
        &[
            "-q",
            "-f",
            "-d",
            "raid1",
            "-m",
            "raid1",
            s(&d.join("r1.btrfs")),
            s(&d.join("r2.btrfs")),
        ],
    );
    run("chmod", &["a+r", s(&d.join("r1.btrfs"))]);
    fails(
        d,
        &["-q", "ls", "r1.btrfs"],
        3,
        &["spans 2 devices", "RAID1", "one device only"],
    );
    run("truncate", &["-s", "16M", s(&d.join("e.ext4"))]);
    run("mke2fs", &["-q", "-F", "-t", "ext4", s(&d.join("e.ext4"))]);
    run("chmod", &["a+r", s(&d.join("e.ext4"))]);
    fails(
        d,
        &["-q", "ls", "e.ext4", "--subvol", "@"],
        1,
        &["--subvol applies to btrfs only", "ext4"],
    );
    let _ = ok_bytes(d, &["-q", "ls", "e.ext4"]);
}

#[test]
fn a_root_on_btrfs_is_found_among_the_partitions() {
    let t = "a_root_on_btrfs_is_found_among_the_partitions";
    if !need("mkfs.btrfs", t) || !need("mke2fs", t) || !need("sfdisk", t) {
        return;
    }
    let w = workdir();
    let d = w.path();
    let src = d.join("root.src");
    std::fs::create_dir_all(src.join("etc")).expect("mkdir");
    std::fs::write(src.join("etc/os-release"), "ID=fedora\nVERSION_ID=41\n").expect("write");
    std::fs::write(src.join("etc/hostname"), "fedora-box\n").expect("write");
    let fs = d.join("root.btrfs");
    run("truncate", &["-s", "128M", s(&fs)]);
    run("mkfs.btrfs", &["-q", "-f", "--rootdir", s(&src), s(&fs)]);
    let img = common::sfdisk_image(
        d,
        "disk.raw",
        "150M",
        "label: gpt\nsize=8MiB, type=linux\nsize=128MiB, type=linux\n",
    );
    // Partition 1: an ext4 without a root; partition 2 (at 9 MiB): the btrfs.
    run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-E",
            "offset=1048576",
            s(&img),
            "8M",
        ],
    );
    run(
        "dd",
        &[
            &format!("if={}", s(&fs)),
            &format!("of={}", s(&img)),
            "bs=1M",
            "seek=9",
            "conv=notrunc",
            "status=none",
        ],
    );
    run("chmod", &["a+r", s(&img)]);
    let out = common::subroot_in(d, &["cat", "disk.raw", "/etc/hostname"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"fedora-box\n");
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(
        note.contains("partition 2 (btrfs") && note.contains("(root filesystem)"),
        "{note}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&ok(d, &["inspect", "--json", "disk.raw"])).expect("json");
    assert_eq!(j["hostname"], "fedora-box", "{j:#}");
}
