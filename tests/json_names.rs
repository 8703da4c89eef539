//! File names in every `--json` output are lossless (docs/json.md): a name that is not
//! UTF-8 comes back, byte for byte, from `KEY_bytes` (base64), and a name that merely
//! contains a backslash is a plain string. Inputs are made by the reference tools from
//! directories holding such names: an initrd by GNU `cpio` (judged by `cpio -t`), an ext4
//! root by `mke2fs -d`; batch's qcow2 outputs are read back by `qemu-img convert`.

mod common;

use common::relayout::{image, stage, INITRD_DIR};
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A name that is not UTF-8, and one that looks like its escaped spelling.
const RAW: &[u8] = b"caf\xe9\xff";
const LOOKALIKE: &[u8] = b"caf\\xe9\\xff";

/// [`ok_bytes`] with byte-string arguments.
fn ok_raw(dir: &Path, args: &[&[u8]]) -> Vec<u8> {
    let args: Vec<&OsStr> = args.iter().map(|a| OsStr::from_bytes(a)).collect();
    ok_bytes(dir, &args)
}

#[test]
fn initrd_ls_json_names_round_trip() {
    if !need("cpio", "initrd_ls_json_names_round_trip") {
        return;
    }
    let d = workdir();
    let tree = d.path().join("tree");
    std::fs::create_dir_all(&tree).expect("mkdir");
    std::fs::write(tree.join(OsStr::from_bytes(RAW)), b"x").expect("write");
    std::fs::write(tree.join(OsStr::from_bytes(LOOKALIKE)), b"y").expect("write");
    std::os::unix::fs::symlink(OsStr::from_bytes(RAW), tree.join("link")).expect("symlink");
    let img = d.path().join("initrd.cpio");
    sh(
        "cd \"$1\" && find . | LC_ALL=C sort | cpio -o -H newc --quiet > \"$2\"",
        &[s(&tree), s(&img)],
    );
    // The oracle: the names GNU cpio lists, as bytes.
    let listed = sh("cpio -it --quiet < \"$1\"", &[s(&img)]);
    let want: BTreeSet<Vec<u8>> = listed
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    assert!(want.iter().any(|n| n.ends_with(RAW)), "{want:?}");
    for segments in [false, true] {
        let mut args: Vec<&[u8]> = vec![b"initrd", b"ls", b"--json"];
        if segments {
            args.push(b"--segments");
        }
        args.push(img.as_os_str().as_bytes());
        let out: Value = serde_json::from_slice(&ok_raw(d.path(), &args)).expect("JSON");
        let rows = out.as_array().expect("array");
        let got: BTreeSet<Vec<u8>> = rows.iter().filter_map(|r| json_name(r, "name")).collect();
        assert_eq!(got, want, "segments={segments}");
        let link = rows
            .iter()
            .find(|r| json_name(r, "name").is_some_and(|n| n.ends_with(b"link")))
            .expect("the symlink");
        assert_eq!(json_name(link, "link_target").as_deref(), Some(RAW));
        let plain = rows
            .iter()
            .find(|r| json_name(r, "name").is_some_and(|n| n.ends_with(b"caf\\xe9\\xff")))
            .expect("the lookalike");
        assert!(plain["name"].is_string(), "{plain}");
        assert!(plain["link_target"].is_null(), "{plain}");
    }
}

#[test]
fn relayout_plan_json_names_round_trip() {
    for t in ["mke2fs", "cpio", "sfdisk"] {
        if !need(t, "relayout_plan_json_names_round_trip") {
            return;
        }
    }
    let d = workdir();
    let st = stage(d.path(), Some(Path::new(INITRD_DIR)));
    std::fs::create_dir(st.join(OsStr::from_bytes(RAW))).expect("mkdir");
    std::fs::create_dir(st.join(OsStr::from_bytes(LOOKALIKE))).expect("mkdir");
    let img = image(d.path(), &st);
    let plan: Value = serde_json::from_slice(&ok_raw(
        d.path(),
        &[
            b"relayout",
            img.as_os_str().as_bytes(),
            b"--dry-run",
            b"--json",
        ],
    ))
    .expect("JSON");
    let moves = plan["moves"].as_array().expect("moves");
    let from: BTreeSet<Vec<u8>> = moves
        .iter()
        .map(|m| json_name(m, "from").expect("from"))
        .collect();
    // The top-level names of the tree mke2fs was given, all but the kept ones.
    let want: BTreeSet<Vec<u8>> = std::fs::read_dir(&st)
        .expect("read_dir")
        .map(|e| [b"/", e.expect("entry").file_name().as_bytes()].concat())
        .filter(|n| !matches!(&n[..], b"/boot" | b"/var" | b"/home"))
        .collect();
    assert_eq!(from, want);
    for m in moves {
        let f = json_name(m, "from").expect("from");
        assert_eq!(json_name(m, "to").expect("to"), [b"/r0", &f[..]].concat());
    }
    let lookalike = [b"/", LOOKALIKE].concat();
    let m = moves
        .iter()
        .find(|m| json_name(m, "from").as_deref() == Some(&lookalike[..]))
        .expect("the lookalike moves");
    assert!(m["from"].is_string(), "{m}");
}

#[test]
fn batch_lines_and_sidecars_name_paths_losslessly() {
    if !need("qemu-img", "batch_lines_and_sidecars_name_paths_losslessly") {
        return;
    }
    let d = workdir();
    let input = d.path().join(OsStr::from_bytes(b"disk\xff.raw"));
    std::fs::write(&input, vec![7u8; 1 << 20]).expect("write");
    let lookalike = d.path().join(OsStr::from_bytes(b"disk\\xff.raw"));
    std::fs::write(&lookalike, vec![8u8; 1 << 20]).expect("write");
    let out_dir = d.path().join("out");
    let stdout = ok_raw(
        d.path(),
        &[
            b"batch",
            b"convert",
            b"-O",
            b"qcow2",
            b"--out-dir",
            out_dir.as_os_str().as_bytes(),
            b"--json",
            input.as_os_str().as_bytes(),
            lookalike.as_os_str().as_bytes(),
        ],
    );
    let lines: Vec<Value> = stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2);
    for (inp, out_name) in [
        (&input, &b"disk\xff.qcow2"[..]),
        (&lookalike, &b"disk\\xff.qcow2"[..]),
    ] {
        let line = lines
            .iter()
            .find(|l| json_name(l, "input").as_deref() == Some(inp.as_os_str().as_bytes()))
            .unwrap_or_else(|| panic!("no line for {inp:?}: {lines:?}"));
        assert_eq!(line["status"], "ok", "{line}");
        let output = out_dir.join(OsStr::from_bytes(out_name));
        assert_eq!(
            json_name(line, "output").as_deref(),
            Some(output.as_os_str().as_bytes())
        );
        assert!(
            output.is_file(),
            "{output:?} was not written under its own name"
        );
        let mut sidecar = output.as_os_str().to_owned();
        sidecar.push(".subroot.json");
        let sc: Value =
            serde_json::from_slice(&std::fs::read(&sidecar).expect("sidecar")).expect("JSON");
        assert_eq!(
            json_name(&sc["output"], "path").as_deref(),
            Some(output.as_os_str().as_bytes())
        );
        assert_eq!(
            json_name(&sc["input"], "path").as_deref(),
            Some(inp.as_os_str().as_bytes())
        );
    }
    // info names the image (and its backing chain) the same way.
    let info: Value = serde_json::from_slice(&ok_raw(
        d.path(),
        &[b"info", b"--json", input.as_os_str().as_bytes()],
    ))
    .expect("JSON");
    assert_eq!(
        json_name(&info, "path").as_deref(),
        Some(input.as_os_str().as_bytes())
    );
    // The converted image holds the input's bytes.
    let back = d.path().join("back.raw");
    let st = std::process::Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(out_dir.join(OsStr::from_bytes(b"disk\xff.qcow2")))
        .arg(&back)
        .status()
        .expect("qemu-img");
    assert!(st.success());
    assert_eq!(std::fs::read(&back).expect("read"), vec![7u8; 1 << 20]);
}
