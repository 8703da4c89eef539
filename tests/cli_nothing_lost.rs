//! Nothing lost through the CLI: an xattr whose value is empty survives export → `mkfs
//! --from TREE.tar` on both populate paths (judged with the library's full-metadata
//! manifest), and what `extract` as an ordinary user cannot restore is named, on stderr and
//! in a `--report` file.

mod common;

use common::*;
use std::path::Path;
use subroot_test_support::EntryManifest;

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
    build_populating(
        d,
        &["mkfs", "src.img", "--from", "tree.tar", "-o", "out.img"],
        populate,
        mke2fs,
    );
    let built = d.join("out.img");
    run("e2fsck", &["-fn", s(&built)]);
    // Crtime is not in a tar: the rebuilt one is "now". Everything else must match.
    let without_crtime = |(mut entries, groups): EntryManifest| {
        for (e, _) in &mut entries {
            e.meta.crtime = None;
        }
        (entries, groups)
    };
    assert_same_manifest(
        &without_crtime(ext_manifest(&img)),
        &without_crtime(ext_manifest(&built)),
    );
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

/// An ext4 image whose entries are made by `debugfs` from `script` (raw bytes: names
/// need not be UTF-8), readable by the unprivileged CLI.
fn debugfs_image(dir: &Path, script: &[u8]) -> std::path::PathBuf {
    let img = dir.join("n.img");
    run("mke2fs", &["-q", "-F", "-t", "ext4", s(&img), "8M"]);
    let cmds = dir.join("cmds");
    std::fs::write(&cmds, script).unwrap();
    run("debugfs", &["-w", "-f", s(&cmds), s(&img)]);
    run("chmod", &["a+r", s(&img)]);
    img
}

fn base64(b: &[u8]) -> String {
    subroot_formats::base64::encode(b)
}

#[test]
fn ls_json_names_are_lossless() {
    let test = "ls_json_names_are_lossless";
    if !need("mke2fs", test) || !need("debugfs", test) {
        return;
    }
    let w = workdir();
    let d = w.path();
    debugfs_image(
        d,
        b"mkdir dir\xfe\nwrite /dev/null dir\xfe/caf\xe9\nwrite /dev/null dir\xfe/a\\xfe\n\
          write /dev/null dir\xfe/plain\nsymlink dir\xfe/lnk tgt\xff\nsymlink dir\xfe/ok target\n",
    );
    let out = ok(d, &["ls", "--json", "-R", "n.img"]);
    let v: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let by_name_bytes = |b: &[u8]| {
        v.iter()
            .find(|e| e["name_bytes"] == base64(b).as_str())
            .unwrap_or_else(|| panic!("no name_bytes for {b:?} in {out}"))
    };
    let cafe = by_name_bytes(b"caf\xe9");
    assert!(cafe.get("name").is_none(), "{cafe}");
    assert!(cafe.get("path").is_none(), "{cafe}");
    assert_eq!(cafe["path_bytes"], base64(b"/dir\xfe/caf\xe9").as_str());
    let dir = by_name_bytes(b"dir\xfe");
    assert_eq!(dir["kind"], "dir");
    // A real backslash in a UTF-8 name is the name itself, not an escape.
    let bs = v
        .iter()
        .find(|e| e["name"] == "a\\xfe")
        .unwrap_or_else(|| panic!("a\\xfe missing: {out}"));
    assert!(bs.get("name_bytes").is_none());
    assert_eq!(bs["path_bytes"], base64(b"/dir\xfe/a\\xfe").as_str());
    let lnk = v.iter().find(|e| e["name"] == "lnk").expect("lnk");
    assert!(lnk.get("link").is_none(), "{lnk}");
    assert_eq!(lnk["link_bytes"], base64(b"tgt\xff").as_str());
    let okl = v.iter().find(|e| e["name"] == "ok").expect("ok");
    assert_eq!(okl["link"], "target");
    let plain = v.iter().find(|e| e["name"] == "plain").expect("plain");
    assert_eq!(plain["link"], serde_json::Value::Null);
    // The root: path "/", name "".
    assert!(
        v.iter().any(|e| e["path"] == "/" && e["name"] == ""),
        "{out}"
    );
}

#[test]
fn extract_as_nobody_names_what_it_did_not_restore() {
    let test = "extract_as_nobody_names_what_it_did_not_restore";
    if !need("mke2fs", test) || !need("debugfs", test) {
        return;
    }
    let w = workdir();
    let d = w.path();
    let mut script = b"mkdir d\nwrite /dev/null d/f\nea_set d/f trusted.one 1\n\
        ea_set d/f user.kept yes\nwrite /dev/null d/b\xffd\nea_set d/b\xffd security.two 2\n"
        .to_vec();
    for i in 0..7 {
        script.extend(format!("write /dev/null n{i}\nea_set n{i} trusted.n{i} {i}\n").bytes());
    }
    debugfs_image(d, &script);
    let out = subroot_in(
        d,
        &["-q", "extract", "n.img", "-C", "x", "--report", "r.jsonl"],
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("9 xattrs"), "{err}");
    assert!(
        err.contains("d/f: xattr trusted.one not restored"),
        "the first items are named: {err}"
    );
    assert!(err.contains("every item is listed in r.jsonl"), "{err}");
    let report = std::fs::read_to_string(d.join("r.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = report
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let xattrs: Vec<&serde_json::Value> = lines.iter().filter(|l| l["what"] == "xattr").collect();
    assert_eq!(xattrs.len(), 9, "{report}");
    assert!(xattrs
        .iter()
        .any(|l| l["path"] == "d/f" && l["xattr"] == "trusted.one"));
    assert!(
        xattrs.iter().any(
            |l| l["path_bytes"] == base64(b"d/b\xffd").as_str() && l["xattr"] == "security.two"
        ),
        "{report}"
    );
    for i in 0..7 {
        let name = format!("trusted.n{i}");
        assert!(
            xattrs.iter().any(|l| l["xattr"] == name.as_str()),
            "{name}: {report}"
        );
    }
    // Owners (root-owned entries, extracted as nobody) are in the report too.
    assert!(lines.iter().any(|l| l["what"] == "owner"), "{report}");
    // user.* was restored.
    let kept = std::process::Command::new("getfattr")
        .args(["-n", "user.kept", "--only-values", s(&d.join("x/d/f"))])
        .output();
    if let Ok(k) = kept {
        if k.status.success() {
            assert_eq!(k.stdout, b"yes");
        }
    }
    // Without --report: the count of the unnamed rest and how to get them.
    let out = subroot_in(d, &["extract", "n.img", "-C", "y"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("4 more not named here; --report FILE lists every item"),
        "{err}"
    );
}
