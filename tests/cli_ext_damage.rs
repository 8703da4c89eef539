//! ext filesystems with structures e2fsck rejects or that carry attributes no `setxattr`
//! name exists for, read through the CLI as an unprivileged user.
//!
//! Every image is made by `mke2fs` and `debugfs` in the test, then one structure is
//! damaged with `debugfs sif` (extent headers and entries as raw i_block words, with the
//! checksum kept right) or one byte patched (an xattr name index, on a filesystem without
//! metadata_csum). `e2fsck -fn` must flag each damaged structure; subroot must refuse to
//! answer from it (exit 3, the inode named, the problem said), and `--salvage` must read
//! around what can be skipped, saying what it skipped.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use subroot_test_support::noise;

/// Tools every test here needs.
fn tools(test: &str) -> bool {
    need("mke2fs", test) && need("debugfs", test) && need("e2fsck", test)
}

/// A fresh ext4 image `name` of `size` with `opts` (extra mke2fs options), readable by
/// the unprivileged CLI.
fn mkext(dir: &Path, name: &str, size: &str, opts: &[&str]) -> PathBuf {
    let img = dir.join(name);
    let mut args = vec!["-q", "-F", "-t", "ext4"];
    args.extend_from_slice(opts);
    args.push(s(&img));
    args.push(size);
    run("mke2fs", &args);
    run("chmod", &["a+r", s(&img)]);
    img
}

/// Run the debugfs commands `cmds` (one per line) on `img` with writing enabled.
fn debugfs_w(img: &Path, cmds: &str) {
    let script = img.with_extension("debugfs");
    std::fs::write(&script, cmds).expect("writing the debugfs script");
    run("debugfs", &["-w", "-f", s(&script), s(img)]);
}

/// The physical block of logical block `lblk` of `path` (`debugfs bmap`).
fn bmap(img: &Path, path: &str, lblk: u64) -> u64 {
    run_stdout("debugfs", &["-R", &format!("bmap {path} {lblk}"), s(img)])
        .trim()
        .parse()
        .expect("debugfs bmap prints a block number")
}

/// `sif` lines rewriting the extent root of `path` in i_block as the leaf entries
/// `(logical start, raw ee_len, physical start)`.
fn extent_root(path: &str, entries: &[(u64, u32, u64)]) -> String {
    let mut cmds = format!("sif {path} block[0] {}\n", 0xF30A | (entries.len() << 16));
    for (i, &(lblk, len, phys)) in entries.iter().enumerate() {
        let w = 3 + 3 * i;
        cmds += &format!("sif {path} block[{w}] {lblk}\n");
        cmds += &format!("sif {path} block[{}] {}\n", w + 1, len);
        cmds += &format!("sif {path} block[{}] {}\n", w + 2, phys);
    }
    cmds
}

/// `e2fsck -fn` output, insisting that it found errors (the damage is real).
fn e2fsck_flags(img: &Path, phrase: &str) {
    let out = Command::new(which("e2fsck").expect("e2fsck"))
        .args(["-fn", s(img)])
        .output()
        .expect("running e2fsck");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "e2fsck accepts {img:?}: {text}");
    assert!(
        text.contains(phrase),
        "e2fsck does not say {phrase:?}: {text}"
    );
}

/// A directory `d` with `n` entries of long names (several 1 KiB blocks).
fn big_dir(img: &Path, n: usize) -> Vec<String> {
    let names: Vec<String> = (0..n)
        .map(|i| format!("entry_with_a_rather_long_name_number_{i:03}"))
        .collect();
    let mut cmds = "mkdir d\n".to_string();
    for name in &names {
        cmds += &format!("write /dev/null d/{name}\n");
    }
    debugfs_w(img, &cmds);
    names
}

fn stderr_of(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = subroot_in(dir, args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn xattrs_under_verity_and_unknown_name_indexes_do_not_stop_reading() {
    let test = "xattrs_under_verity_and_unknown_name_indexes_do_not_stop_reading";
    if !tools(test) || !need("tar", test) {
        return;
    }
    for index in [11u8, 99] {
        let dir = workdir();
        let d = dir.path();
        // No metadata_csum: the patched inode needs no new checksum.
        let img = mkext(d, "v.img", "8M", &["-O", "^metadata_csum"]);
        let data = d.join("data");
        std::fs::write(&data, b"verity-protected contents\n").unwrap();
        debugfs_w(
            &img,
            &format!(
                "write {} vfile\nea_set vfile user.verimarker 12345\nea_set vfile user.keep kept\n",
                s(&data)
            ),
        );
        // The in-inode entry: name_len, name_index, ... then the name at +16.
        let mut bytes = std::fs::read(&img).unwrap();
        let at = bytes
            .windows(10)
            .position(|w| w == b"verimarker")
            .expect("the xattr name is in the image");
        assert_eq!(bytes[at - 15], 1, "the entry is under the user. index");
        bytes[at - 15] = index;
        std::fs::write(&img, &bytes).unwrap();
        // e2fsck has nothing against it: this is a clean filesystem.
        run("e2fsck", &["-fn", s(&img)]);

        let (code, out, err) = stderr_of(d, &["ls", "v.img"]);
        assert_eq!(code, Some(0), "ls: {err}");
        assert!(out.lines().any(|l| l == "vfile"), "ls: {out}");
        assert_eq!(
            ok(d, &["cat", "v.img", "/vfile"]).as_bytes(),
            &std::fs::read(&data).unwrap()[..]
        );

        let (code, _, err) = stderr_of(d, &["-q", "export", "v.img", "-o", "v.tar"]);
        assert_eq!(code, Some(0), "export: {err}");
        let want = format!(
            "/vfile (inode 12): extended attribute \"verimarker\" under name index {index}"
        );
        assert!(
            err.contains(&want) && err.contains("not carried"),
            "export warning: {err}"
        );
        if index == 11 {
            assert!(err.contains("fs-verity"), "{err}");
        }
        let tar = std::fs::read(d.join("v.tar")).unwrap();
        let has = |needle: &[u8]| tar.windows(needle.len()).any(|w| w == needle);
        assert!(
            has(b"SCHILY.xattr.user.keep=kept"),
            "the other xattr is exported"
        );
        assert!(
            !has(b"verimarker"),
            "the unnamed xattr is not exported under some name"
        );
        let listed = run_stdout("tar", &["-tf", s(&d.join("v.tar"))]);
        assert!(listed.contains("vfile"), "{listed}");

        let (code, _, err) = stderr_of(d, &["extract", "v.img", "-C", "x"]);
        assert_eq!(code, Some(0), "extract: {err}");
        assert!(err.contains(&want), "extract warning: {err}");
        assert_eq!(
            std::fs::read(d.join("x/vfile")).unwrap(),
            std::fs::read(&data).unwrap()
        );

        let (code, _, err) = stderr_of(d, &["manifest", "v.img"]);
        assert_eq!(code, Some(0), "manifest: {err}");
        assert!(err.contains(&want), "manifest warning: {err}");

        // A rebuild from it says what it leaves out too.
        mkext(d, "t.img", "8M", &[]);
        let (code, _, err) = stderr_of(
            d,
            &["-q", "mkfs", "t.img", "--from", "v.img", "-o", "m.img"],
        );
        assert_eq!(code, Some(0), "mkfs: {err}");
        assert!(err.contains(&want), "mkfs warning: {err}");
    }
}

#[test]
fn out_of_order_extents_are_an_error_not_other_bytes() {
    let test = "out_of_order_extents_are_an_error_not_other_bytes";
    if !tools(test) {
        return;
    }
    let dir = workdir();
    let d = dir.path();
    let img = mkext(d, "o.img", "8M", &["-b", "1024"]);
    let data = d.join("data");
    std::fs::write(&data, noise(16 << 10, 13)).unwrap();
    debugfs_w(&img, &format!("write {} f\n", s(&data)));
    let p = bmap(&img, "f", 0);
    // Blocks 2..4 listed before blocks 0..2: the kernel and e2fsck reject this order.
    debugfs_w(&img, &extent_root("f", &[(2, 14, p + 2), (0, 2, p)]));
    e2fsck_flags(&img, "out of order extents");
    for args in [
        &["cat", "o.img", "/f"][..],
        &["export", "o.img", "-o", "o.tar"],
        &["extract", "o.img", "-C", "x"],
    ] {
        fails(
            d,
            args,
            3,
            &[
                "inode 12",
                "entry 1 starts at logical block 0",
                "out of order",
            ],
        );
    }
    assert!(!d.join("o.tar").exists(), "no partial export");
}

#[test]
fn a_directory_hole_is_an_error_and_force_reads_around_it() {
    let test = "a_directory_hole_is_an_error_and_force_reads_around_it";
    if !tools(test) {
        return;
    }
    let dir = workdir();
    let d = dir.path();
    let img = mkext(d, "h.img", "8M", &["-b", "1024"]);
    let names = big_dir(&img, 60);
    let p = bmap(&img, "d", 0);
    assert_eq!(bmap(&img, "d", 2), p + 2, "the directory is contiguous");
    // Block 1 of 3 becomes a hole.
    debugfs_w(&img, &extent_root("d", &[(0, 1, p), (2, 1, p + 2)]));
    e2fsck_flags(&img, "Directory inode 12 block 2 should be at block 1");
    fails(
        d,
        &["ls", "h.img", "/d"],
        3,
        &["directory inode 12", "logical block 1 of 3: a hole"],
    );
    let (code, out, err) = stderr_of(d, &["ls", "--salvage", "h.img", "/d"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("logical block 1 of 3: a hole") && err.contains("skipped"),
        "--salvage says what it skipped: {err}"
    );
    let listed: Vec<&str> = out.lines().collect();
    assert!(
        listed.len() > 10 && listed.len() < names.len(),
        "{listed:?}"
    );
    assert!(
        listed.iter().all(|l| names.iter().any(|n| n == l)),
        "{listed:?}"
    );
}

#[test]
fn an_unwritten_directory_extent_is_an_error() {
    let test = "an_unwritten_directory_extent_is_an_error";
    if !tools(test) {
        return;
    }
    let dir = workdir();
    let d = dir.path();
    let img = mkext(d, "u.img", "8M", &[]);
    debugfs_w(&img, "mkdir d\nwrite /dev/null d/a\nwrite /dev/null d/b\n");
    let p = bmap(&img, "d", 0);
    debugfs_w(&img, &extent_root("d", &[(0, 1 | 0x8000, p)]));
    e2fsck_flags(&img, "has extent marked uninitialized at block 0");
    fails(
        d,
        &["ls", "u.img", "/d"],
        3,
        &["directory inode 12", "extent marked unwritten"],
    );
    fails(
        d,
        &["export", "u.img", "-o", "u.tar"],
        3,
        &["directory inode 12"],
    );
}

#[test]
fn a_misaligned_bigalloc_extent_is_an_error() {
    let test = "a_misaligned_bigalloc_extent_is_an_error";
    if !tools(test) {
        return;
    }
    let dir = workdir();
    let d = dir.path();
    let img = mkext(
        d,
        "b.img",
        "16M",
        &["-b", "1024", "-O", "bigalloc", "-C", "4096"],
    );
    debugfs_w(&img, "mkdir d\nwrite /dev/null d/a\nwrite /dev/null d/b\n");
    let p = bmap(&img, "d", 0);
    assert_eq!(p % 4, 0, "mke2fs aligns the cluster");
    debugfs_w(&img, &extent_root("d", &[(0, 1, p + 1)]));
    e2fsck_flags(&img, "violates cluster allocation rules");
    fails(
        d,
        &["ls", "b.img", "/d"],
        3,
        &[
            "inode 12",
            "cluster allocation rules",
            "4 blocks per cluster",
        ],
    );
}

#[test]
fn an_unusable_primary_superblock_reads_the_backup_and_says_so() {
    let test = "an_unusable_primary_superblock_reads_the_backup_and_says_so";
    if !tools(test) {
        return;
    }
    for (bs, size, backup) in [("1024", "16M", 8193u64), ("4096", "160M", 32768)] {
        let dir = workdir();
        let d = dir.path();
        let img = mkext(d, "p.img", size, &["-b", bs]);
        let data = d.join("data");
        std::fs::write(&data, noise(5000, 7)).unwrap();
        debugfs_w(&img, &format!("mkdir d\nwrite {} d/f\n", s(&data)));
        // s_log_block_size (+0x18) made impossible: the primary no longer parses.
        let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &[20], 1024 + 0x18).unwrap();
        drop(f);
        e2fsck_flags(&img, "Superblock invalid, trying backup blocks");
        let (code, out, err) = stderr_of(d, &["ls", "-R", "p.img"]);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.lines().any(|l| l == "/d/f"), "{out}");
        assert!(
            err.contains("the primary superblock is unusable")
                && err.contains(&format!("backup superblock at block {backup}")),
            "the fallback is said: {err}"
        );
        let (code, _, err) = stderr_of(d, &["-q", "extract", "p.img", "-C", "x"]);
        assert_eq!(code, Some(0), "{err}");
        assert!(
            err.contains("backup superblock"),
            "said even with -q: {err}"
        );
        assert_eq!(
            std::fs::read(d.join("x/d/f")).unwrap(),
            std::fs::read(&data).unwrap()
        );
    }
}

/// A regular file whose extent tree has a damaged leaf (its magic zeroed; e2fsck: "invalid
/// extent node"): an error without --salvage; with it, cat, export and extract carry on,
/// give the file every block the other leaves map and zeros for the ones the damaged leaf
/// held, and warn naming the file.
#[test]
fn salvage_reads_a_file_around_a_damaged_extent_leaf() {
    let test = "salvage_reads_a_file_around_a_damaged_extent_leaf";
    if !tools(test) || !need("tar", test) || !need("fallocate", test) {
        return;
    }
    let dir = workdir();
    let d = dir.path();
    // 200 one-block extents (every other 1 KiB block): three leaves of the extent tree.
    let tree = d.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let data = noise(200 * 1024, 21);
    let mut want = vec![0u8; 399 * 1024];
    for i in 0..200 {
        want[i * 2048..i * 2048 + 1024].copy_from_slice(&data[i * 1024..(i + 1) * 1024]);
    }
    std::fs::write(tree.join("f"), &want).unwrap();
    sh("fallocate -d \"$1\"", &[s(&tree.join("f"))]);
    let img = mkext(d, "x.img", "8M", &["-b", "1024", "-d", s(&tree)]);
    let ex = run_stdout("debugfs", &["-R", "ex /f", s(&img)]);
    // The index entries: "0/ 1   2/  3   166 -   331  1704   166".
    let leaves: Vec<(usize, usize, u64)> = ex
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|t| t.len() >= 8 && t[0] == "0/")
        .map(|t| {
            (
                t[4].parse().unwrap(),
                t[6].parse().unwrap(),
                t[7].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(leaves.len(), 3, "{ex}");
    let (first, last, leaf) = leaves[1];
    let mut b = std::fs::read(&img).unwrap();
    let at = leaf as usize * 1024;
    b[at..at + 2].fill(0);
    std::fs::write(&img, &b).unwrap();
    e2fsck_flags(
        &img,
        &format!("Inode 12 has an invalid extent node (blk {leaf}, lblk {first})"),
    );

    fails(d, &["cat", "x.img", "/f"], 3, &["inode 12", "magic 0x0000"]);
    // What a salvaging read gives: the file with the damaged leaf's blocks as zeros.
    let mut salvaged = want.clone();
    salvaged[first * 1024..((last + 1) * 1024).min(want.len())].fill(0);
    let warned = |err: &str| {
        assert!(
            err.contains("/f (inode 12)") && err.contains("magic 0x0000") && err.contains("zeros"),
            "the warning names the file: {err}"
        );
    };
    let out = subroot_in(d, &["cat", "--salvage", "x.img", "/f"]);
    assert_eq!(out.status.code(), Some(0));
    warned(&String::from_utf8_lossy(&out.stderr));
    assert!(
        out.stdout == salvaged,
        "cat --salvage gives what can be read"
    );

    let (code, _, err) = stderr_of(d, &["export", "--salvage", "x.img", "-o", "x.tar"]);
    assert_eq!(code, Some(0), "{err}");
    warned(&err);
    let untar = d.join("untar");
    std::fs::create_dir_all(&untar).unwrap();
    run("tar", &["-xf", s(&d.join("x.tar")), "-C", s(&untar)]);
    assert!(
        std::fs::read(untar.join("f")).unwrap() == salvaged,
        "export --salvage"
    );

    let (code, _, err) = stderr_of(
        d,
        &["extract", "--salvage", "--directory", "out", "x.img", "/"],
    );
    assert_eq!(code, Some(0), "{err}");
    warned(&err);
    assert!(
        std::fs::read(d.join("out/f")).unwrap() == salvaged,
        "extract --salvage"
    );
}

/// export's two meanings of --force are two flags: `--salvage` reads a filesystem whose
/// journal needs recovery, `--force` only replaces the output. Neither implies the other.
#[test]
fn export_salvage_reads_a_dirty_journal_and_force_only_replaces_the_output() {
    let test = "export_salvage_reads_a_dirty_journal_and_force_only_replaces_the_output";
    if !tools(test) || !need("tar", test) {
        return;
    }
    let dir = workdir();
    let d = dir.path();
    let img = mkext(d, "j.img", "8M", &[]);
    let data = d.join("data");
    std::fs::write(&data, b"on disk\n").unwrap();
    debugfs_w(
        &img,
        &format!("write {} kept\nfeature needs_recovery\n", s(&data)),
    );
    let flags = run_stdout("debugfs", &["-R", "features", s(&img)]);
    assert!(flags.contains("needs_recovery"), "{flags}");
    // An existing output: --force replaces it, but does not read past the journal.
    std::fs::write(d.join("out.tar"), b"old").unwrap();
    run("chmod", &["a+rwx", s(d)]);
    run("chmod", &["a+rw", s(&d.join("out.tar"))]);
    fails(
        d,
        &["export", "j.img", "-o", "out.tar", "--force"],
        3,
        &["journal needs recovery", "--salvage"],
    );
    assert_eq!(std::fs::read(d.join("out.tar")).unwrap(), b"old");
    // --salvage reads it, but does not replace the existing output.
    fails(
        d,
        &["export", "j.img", "-o", "out.tar", "--salvage"],
        1,
        &["out.tar"],
    );
    assert_eq!(std::fs::read(d.join("out.tar")).unwrap(), b"old");
    // Both: the on-disk state, in place of the old file; GNU tar reads it.
    ok(
        d,
        &["export", "j.img", "-o", "out.tar", "--salvage", "--force"],
    );
    let listed = run_stdout("tar", &["-tf", s(&d.join("out.tar"))]);
    assert!(listed.lines().any(|l| l == "./kept"), "{listed}");
    // ls, with nothing to replace, takes --salvage alone.
    let (code, out, err) = stderr_of(d, &["ls", "--salvage", "j.img", "/"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.lines().any(|l| l == "kept"), "{out}");
}
