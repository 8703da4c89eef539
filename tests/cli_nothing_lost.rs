//! Nothing lost through the CLI: an xattr whose value is empty survives export → `mkfs
//! --from TREE.tar` on both populate paths (judged with the library's full-metadata
//! manifest), and what `extract` as an ordinary user cannot restore is named, on stderr and
//! in a `--report` file.

mod common;

use common::*;
use std::path::Path;

/// A small tree with an empty-valued xattr next to ordinary ones, as an ext4 image made
/// by `mke2fs -d` (which keeps the empty value), readable by the unprivileged CLI.
fn source_image(dir: &Path) -> std::path::PathBuf {
    let tree = dir.join("tree");
    sh(
        r#"set -e; mkdir -p "$1/d"; cd "$1"
printf 'hello\n' > f; printf 'x' > d/g
setfattr -n user.empty f
setfattr -n user.full -v val f
setfattr -n user.also-empty d
setfattr -n trusted.secret -v hidden d/g
setfattr -n trusted.empty d/g"#,
        &[s(&tree)],
    );
    let img = dir.join("src.img");
    run(
        "mke2fs",
        &["-q", "-F", "-t", "ext4", "-d", s(&tree), s(&img), "16M"],
    );
    run("chmod", &["a+r", s(&img)]);
    img
}

/// The xattrs of `path` in the manifest of `img`, for the assertion messages.
fn xattrs_of(img: &Path, path: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (entries, _) = ext_manifest(img);
    entries
        .into_iter()
        .find(|(e, _)| e.path == path)
        .map(|(e, _)| e.meta.xattrs)
        .expect("the path is in the manifest")
}

/// export → mkfs --from the tar on `populate` → the rebuilt filesystem's full manifest
/// (every entry, metadata, xattrs, contents, hard-link groups) equals the source's.
fn empty_xattr_round_trip(test: &str, populate: &str, mke2fs: Option<&Path>) {
    if !is_root() {
        eprintln!("SKIPPED {test}: trusted.* xattrs in the source tree need root");
        return;
    }
    if !["mke2fs", "setfattr", "e2fsck"]
        .iter()
        .all(|t| need(t, test))
    {
        return;
    }
    let w = workdir();
    let d = w.path();
    let img = source_image(d);
    assert_eq!(
        xattrs_of(&img, b"f"),
        vec![
            (b"user.empty".to_vec(), Vec::new()),
            (b"user.full".to_vec(), b"val".to_vec())
        ],
        "mke2fs -d kept the empty value"
    );
    ok(d, &["-q", "export", "src.img", "-o", "tree.tar"]);
    let mut args = vec![
        "-v", "mkfs", "src.img", "--from", "tree.tar", "-o", "out.img",
    ];
    if let Some(m) = mke2fs {
        args.extend(["--mke2fs", s(m)]);
    }
    let out = subroot()
        .args(&args)
        .current_dir(d)
        .env_remove("CI")
        .env("SUBROOT_POPULATE", populate)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "subroot {args:?}: {err}");
    let said = if populate == "tar" {
        "tar stream"
    } else {
        "staging copy"
    };
    assert!(err.contains(said), "populate path not reported: {err}");
    let built = d.join("out.img");
    run("e2fsck", &["-fn", s(&built)]);
    // Crtime is not in a tar: the rebuilt one is "now". Everything else must match.
    let strip = |(mut e, c): (subroot_formats::tree::Entry, Vec<u8>)| {
        e.meta.crtime = None;
        (e, c)
    };
    let (a, ga) = ext_manifest(&img);
    let (b, gb) = ext_manifest(&built);
    let a: Vec<_> = a.into_iter().map(strip).collect();
    let b: Vec<_> = b.into_iter().map(strip).collect();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(
            x == y,
            "entry {:?} differs:\n{:?}\n{:?}",
            String::from_utf8_lossy(&x.0.path),
            x.0,
            y.0
        );
    }
    assert_eq!(ga, gb);
    let listed = run_stdout("debugfs", &["-R", "ea_list /f", s(&built)]);
    assert!(listed.contains("user.empty (0)"), "{listed}");
}

#[test]
fn empty_xattr_survives_export_and_mkfs_staging() {
    empty_xattr_round_trip(
        "empty_xattr_survives_export_and_mkfs_staging",
        "staging",
        None,
    );
}

#[test]
fn empty_xattr_survives_export_and_mkfs_tar() {
    let test = "empty_xattr_survives_export_and_mkfs_tar";
    let Some(m) = tar_mke2fs(test) else {
        return;
    };
    empty_xattr_round_trip(test, "tar", Some(&m));
}
