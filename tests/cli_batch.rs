//! Black-box tests of `subroot batch convert` on images made by qemu-img and qemu-io (two of
//! them broken in different ways), judged by `qemu-img compare`/`check`, `cmp` and the file
//! system itself (sidecars, inode numbers and mtimes of finished outputs, leftover temporary
//! files). Every subroot invocation runs as uid 65534 when the suite runs as root.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use subroot_test_support::noise;

const MIB: usize = 1 << 20;

/// A raw file of `size` MiB with `data` MiB of pseudo-random bytes at 1 MiB and a qemu-io
/// pattern near the end (so there are holes, real data and patterns).
fn raw_image(path: &Path, size_mib: usize, data_mib: usize, seed: u64) {
    run("truncate", &["-s", &format!("{size_mib}M"), s(path)]);
    let noise_file = path.with_extension("noise");
    std::fs::write(&noise_file, noise(data_mib * MIB, seed)).expect("noise");
    run(
        "dd",
        &[
            &format!("if={}", s(&noise_file)),
            &format!("of={}", s(path)),
            "bs=1M",
            "seek=1",
            "conv=notrunc",
            "status=none",
        ],
    );
    std::fs::remove_file(&noise_file).expect("rm noise");
    let pat = format!("write -P 0x{:02x} {}M 300k", seed as u8 | 1, size_mib - 2);
    run("qemu-io", &["-f", "raw", "-c", &pat, s(path)]);
}

/// A qcow2 made by `qemu-img convert` from a raw image like [`raw_image`].
fn qcow2_image(path: &Path, size_mib: usize, data_mib: usize, seed: u64) {
    let raw = path.with_extension("src-raw");
    raw_image(&raw, size_mib, data_mib, seed);
    run(
        "qemu-img",
        &[
            "convert",
            "-q",
            "-f",
            "raw",
            "-O",
            "qcow2",
            s(&raw),
            s(path),
        ],
    );
    std::fs::remove_file(&raw).expect("rm");
}

/// The six images of the failure tests, in list order: good qcow2, a qcow2 truncated
/// inside its header, good raw, a qcow2 overlay over a raw base (outside the list), a
/// qcow2 whose backing file is missing, good raw. Returns (inputs, the four good ones).
fn six_images(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let d = dir.join("in");
    std::fs::create_dir(&d).expect("mkdir");
    let a = d.join("alpha.qcow2");
    qcow2_image(&a, 6, 2, 1);
    let trunc = d.join("trunc.qcow2");
    qcow2_image(&trunc, 4, 1, 2);
    let head = std::fs::read(&trunc).expect("read")[..60].to_vec();
    std::fs::write(&trunc, head).expect("truncate header");
    let b = d.join("beta.raw");
    raw_image(&b, 5, 2, 3);
    let base = d.join("base.raw");
    raw_image(&base, 6, 3, 4);
    let c = d.join("gamma.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.raw",
            "-F",
            "raw",
            s(&c),
        ],
    );
    run(
        "qemu-io",
        &["-f", "qcow2", "-c", "write -P 0x5c 2M 700k", s(&c)],
    );
    let nob = d.join("orphan.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-u",
            "-f",
            "qcow2",
            "-b",
            "gone.qcow2",
            "-F",
            "qcow2",
            s(&nob),
            "4M",
        ],
    );
    let e = d.join("delta.raw");
    raw_image(&e, 3, 1, 5);
    run("chmod", &["-R", "a+rX", s(&d)]);
    (
        vec![a.clone(), trunc, b.clone(), c.clone(), nob, e.clone()],
        vec![a, b, c, e],
    )
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

fn sidecar(out: &Path) -> Value {
    let mut p = out.as_os_str().to_owned();
    p.push(".subroot.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    serde_json::from_str(&text).expect("sidecar JSON")
}

/// The sidecar (`OUT.subroot.json`, the record that a job finished) of output `o`.
fn sidecar_of(o: &Path) -> PathBuf {
    let mut p = o.as_os_str().to_owned();
    p.push(".subroot.json");
    PathBuf::from(p)
}

fn stem_out(out_dir: &Path, input: &Path, ext: &str) -> PathBuf {
    out_dir.join(format!(
        "{}.{ext}",
        input.file_stem().expect("stem").to_string_lossy()
    ))
}

fn no_temps(dir: &Path) {
    let temps: Vec<_> = names(dir)
        .into_iter()
        .filter(|n| n.contains("subroot-tmp"))
        .collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
}

fn check_clean(img: &Path) {
    let out = std::process::Command::new(which("qemu-img").expect("qemu-img"))
        .args(["check", "-q", s(img)])
        .output()
        .expect("qemu-img check");
    assert!(
        out.status.success(),
        "qemu-img check {}: {}",
        img.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn args_with<'a>(base: &[&'a str], inputs: &'a [PathBuf]) -> Vec<&'a str> {
    let mut v = base.to_vec();
    v.extend(inputs.iter().map(|p| s(p)));
    v
}

#[test]
fn every_image_is_attempted_by_default_and_both_failures_reported() {
    if !need(
        "qemu-img",
        "every_image_is_attempted_by_default_and_both_failures_reported",
    ) {
        return;
    }
    let w = workdir();
    let (inputs, good) = six_images(w.path());
    let out_dir = w.path().join("out");
    let args = args_with(
        &[
            "batch",
            "convert",
            "-O",
            "qcow2",
            "-c",
            "zstd",
            "--out-dir",
            s(&out_dir),
            "-j",
            "2",
            "--json",
        ],
        &inputs,
    );
    let out = subroot_in(w.path(), &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // One JSON line per image, each with the documented fields.
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 6, "{lines:?}");
    let by_input: BTreeMap<String, &Value> = lines
        .iter()
        .map(|l| (l["input"].as_str().expect("input").to_string(), l))
        .collect();
    for g in &good {
        let l = by_input[s(g)];
        assert_eq!(l["status"], "ok", "{l}");
        assert!(l["error"].is_null());
        assert!(l["bytes_read"].as_u64().expect("bytes_read") >= MIB as u64);
        assert!(l["bytes_written"].as_u64().expect("bytes_written") > 0);
        assert!(l["seconds"].as_f64().is_some());
        let o = stem_out(&out_dir, g, "qcow2");
        assert_eq!(l["output"], s(&o));
        // Judged by qemu: same guest contents (through the backing chain), clean image,
        // zstd compressed.
        run("qemu-img", &["compare", "-q", s(g), s(&o)]);
        check_clean(&o);
        let info: Value =
            serde_json::from_str(&run_stdout("qemu-img", &["info", "--output=json", s(&o)]))
                .expect("info");
        assert_eq!(info["format-specific"]["data"]["compression-type"], "zstd");
        assert!(info.get("backing-filename").is_none(), "flattened: {info}");

        let sc = sidecar(&o);
        assert_eq!(sc["result"], "ok");
        assert_eq!(sc["operation"], "convert");
        assert_eq!(sc["subroot_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(
            sc["options"],
            serde_json::json!({"output_format": "qcow2", "compress": "zstd", "cluster_size": 65536})
        );
        let m = std::fs::metadata(g).expect("stat");
        assert_eq!(sc["input"]["path"], s(g));
        assert_eq!(sc["input"]["size"], m.size());
        assert_eq!(sc["input"]["ino"], m.ino());
        assert_eq!(sc["input"]["dev"], m.dev());
        assert_eq!(
            sc["input"]["mtime_ns"].as_i64(),
            Some(m.mtime() * 1_000_000_000 + m.mtime_nsec())
        );
        assert_eq!(
            sc["output"]["size"],
            std::fs::metadata(&o).expect("out").len()
        );
        assert_eq!(sc["bytes_read"], l["bytes_read"]);
        assert_eq!(sc["bytes_written"], l["bytes_written"]);
    }
    // The overlay's sidecar names its backing file too.
    let gamma = sidecar(&stem_out(&out_dir, &good[2], "qcow2"));
    let chain = gamma["input"]["backing_chain"].as_array().expect("chain");
    assert_eq!(chain.len(), 1, "{gamma}");
    assert_eq!(chain[0]["path"], s(&w.path().join("in/base.raw")));
    assert_eq!(
        chain[0]["ino"],
        std::fs::metadata(w.path().join("in/base.raw"))
            .expect("stat")
            .ino()
    );

    // The two broken ones: failed, with a message saying what is wrong, a failed sidecar
    // and no output.
    for (bad, phrase) in [(&inputs[1], "truncated"), (&inputs[4], "gone.qcow2")] {
        let l = by_input[s(bad)];
        assert_eq!(l["status"], "failed", "{l}");
        let err = l["error"].as_str().expect("error");
        assert!(err.contains(phrase), "{err}");
        let o = stem_out(&out_dir, bad, "qcow2");
        assert!(!o.exists());
        let sc = sidecar(&o);
        assert_eq!(sc["result"], "failed");
        assert_eq!(sc["error"], err);
        assert!(sc["output"]["size"].is_null());
        assert!(
            stderr.contains(&format!("failed: {}: ", s(bad))),
            "{stderr}"
        );
        assert!(stderr.contains(phrase), "{stderr}");
    }
    assert!(stderr.contains("4 done"), "{stderr}");
    assert!(stderr.contains("2 failed"), "{stderr}");
    no_temps(&out_dir);
    assert_eq!(names(&out_dir).len(), 4 + 6);
}

#[test]
fn with_fail_fast_no_new_image_starts_after_a_failure() {
    if !need(
        "qemu-img",
        "with_fail_fast_no_new_image_starts_after_a_failure",
    ) {
        return;
    }
    let w = workdir();
    let (inputs, _) = six_images(w.path());
    let out_dir = w.path().join("out");
    let args = args_with(
        &[
            "batch",
            "convert",
            "--out-dir",
            s(&out_dir),
            "-j1",
            "--fail-fast",
            "--json",
        ],
        &inputs,
    );
    let out = subroot_in(w.path(), &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines = json_lines(&out.stdout);
    let seen: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["input"].as_str().expect("input"),
                l["status"].as_str().expect("status"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![(s(&inputs[0]), "ok"), (s(&inputs[1]), "failed")],
        "{stderr}"
    );
    assert!(stderr.contains("4 not started"), "{stderr}");
    assert!(stderr.contains("truncated"), "{stderr}");
    run(
        "qemu-img",
        &[
            "compare",
            "-q",
            s(&inputs[0]),
            s(&out_dir.join("alpha.raw")),
        ],
    );
    assert_eq!(
        names(&out_dir),
        vec![
            "alpha.raw",
            "alpha.raw.subroot.json",
            "trunc.raw.subroot.json"
        ]
    );
}

/// Eight images of 8 MiB random data each: enough work at -j1 to stop the run part-way.
fn kill_set(dir: &Path) -> Vec<PathBuf> {
    let d = dir.join("in");
    std::fs::create_dir(&d).expect("mkdir");
    let v: Vec<PathBuf> = (0..8)
        .map(|i| {
            let p = d.join(format!(
                "img{i}.{}",
                if i % 2 == 0 { "qcow2" } else { "raw" }
            ));
            if i % 2 == 0 {
                qcow2_image(&p, 12, 8, 10 + i);
            } else {
                raw_image(&p, 12, 8, 10 + i);
            }
            p
        })
        .collect();
    run("chmod", &["-R", "a+rX", s(&d)]);
    v
}

#[test]
fn resume_after_sigkill_finishes_without_redoing_finished_images() {
    if !need(
        "qemu-img",
        "resume_after_sigkill_finishes_without_redoing_finished_images",
    ) || !need(
        "cmp",
        "resume_after_sigkill_finishes_without_redoing_finished_images",
    ) {
        return;
    }
    let w = workdir();
    let inputs = kill_set(w.path());
    let out_dir = w.path().join("out");
    let base = [
        "batch",
        "convert",
        "-O",
        "qcow2",
        "-c",
        "zstd",
        "--out-dir",
        s(&out_dir),
        "-j1",
    ];
    let mut child = subroot()
        .args(args_with(&base, &inputs))
        .current_dir(w.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn subroot");
    // Kill it (SIGKILL: no cleanup at all) as soon as the first sidecar is in place.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = std::fs::read_dir(&out_dir).map_or(0, |d| {
            d.flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.ends_with(".subroot.json") && !n.starts_with('.')
                })
                .count()
        });
        if done > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no image finished in time");
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the batch ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");

    // What was finished when it died: outputs with a sidecar (written after the output
    // is renamed into place: a kill between the two leaves an output to redo).
    let finished: BTreeMap<PathBuf, (u64, i64, i64)> = inputs
        .iter()
        .map(|i| stem_out(&out_dir, i, "qcow2"))
        .filter(|o| o.exists() && sidecar_of(o).exists())
        .map(|o| {
            let m = std::fs::metadata(&o).expect("stat");
            (o, (m.ino(), m.mtime(), m.mtime_nsec()))
        })
        .collect();
    assert!(!finished.is_empty());
    assert!(
        finished.len() < inputs.len(),
        "everything finished before the kill; the test proves nothing"
    );

    // Stale temporary files of the killed process (PID long gone): one of an output this
    // run owns (removed at start-up even though that output is not rewritten) and one of
    // a name outside this run (another shard's, left alone).
    let (first, _) = finished.iter().next().expect("one finished");
    let ours = out_dir.join(format!(
        ".{}.subroot-tmp-999999999",
        first.file_name().expect("name").to_string_lossy()
    ));
    let foreign = out_dir.join(".other-shard.raw.subroot-tmp-999999999");
    std::fs::write(&ours, b"stale").expect("plant");
    std::fs::write(&foreign, b"stale").expect("plant");

    let out = subroot_in(
        w.path(),
        &args_with(&[&base[..], &["--resume", "--json"]].concat(), &inputs),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), inputs.len());
    for l in &lines {
        let o = PathBuf::from(l["output"].as_str().expect("output"));
        let expect = if finished.contains_key(&o) {
            "skipped"
        } else {
            "ok"
        };
        assert_eq!(l["status"], expect, "{l}");
    }
    for (o, before) in &finished {
        let m = std::fs::metadata(o).expect("stat");
        assert_eq!(
            &(m.ino(), m.mtime(), m.mtime_nsec()),
            before,
            "{} was redone",
            o.display()
        );
    }
    assert!(!ours.exists(), "stale temporary file of this run left");
    assert!(foreign.exists(), "another run's temporary file was removed");
    std::fs::remove_file(&foreign).expect("rm");
    no_temps(&out_dir);

    // Identical to an uninterrupted run.
    let ref_dir = w.path().join("ref");
    let base_ref = [
        "batch",
        "convert",
        "-O",
        "qcow2",
        "-c",
        "zstd",
        "--out-dir",
        s(&ref_dir),
        "-j2",
    ];
    ok(w.path(), &args_with(&base_ref, &inputs));
    for i in &inputs {
        let a = stem_out(&out_dir, i, "qcow2");
        let b = stem_out(&ref_dir, i, "qcow2");
        assert!(
            same_bytes(&a, &b),
            "{} differs from {}",
            a.display(),
            b.display()
        );
        run("qemu-img", &["compare", "-q", s(i), s(&a)]);
    }

    // A second --resume does nothing at all.
    let again = ok(
        w.path(),
        &args_with(&[&base[..], &["--resume", "--json"]].concat(), &inputs),
    );
    assert!(json_lines(again.as_bytes())
        .iter()
        .all(|l| l["status"] == "skipped"));

    // Changing an input (new mtime/size) or the options makes it redo exactly that.
    let changed = &inputs[1];
    run(
        "qemu-io",
        &["-f", "raw", "-c", "write -P 0x99 0 4k", s(changed)],
    );
    let again = ok(
        w.path(),
        &args_with(&[&base[..], &["--resume", "--json"]].concat(), &inputs),
    );
    for l in json_lines(again.as_bytes()) {
        let expect = if l["input"] == s(changed) {
            "ok"
        } else {
            "skipped"
        };
        assert_eq!(l["status"], expect, "{l}");
    }
    run(
        "qemu-img",
        &[
            "compare",
            "-q",
            s(changed),
            s(&stem_out(&out_dir, changed, "qcow2")),
        ],
    );
    let zlib = ok(
        w.path(),
        &args_with(
            &[
                "batch",
                "convert",
                "-O",
                "qcow2",
                "-c",
                "zlib",
                "--out-dir",
                s(&out_dir),
                "--resume",
                "--json",
            ],
            &inputs,
        ),
    );
    assert!(json_lines(zlib.as_bytes())
        .iter()
        .all(|l| l["status"] == "ok"));
}

#[test]
fn three_shards_cover_every_image_exactly_once() {
    if !need("qemu-img", "three_shards_cover_every_image_exactly_once") {
        return;
    }
    let w = workdir();
    let d = w.path().join("in");
    std::fs::create_dir(&d).expect("mkdir");
    let inputs: Vec<PathBuf> = (0..12)
        .map(|i| {
            let p = d.join(format!("disk-{i:02}.qcow2"));
            run("qemu-img", &["create", "-q", "-f", "qcow2", s(&p), "2M"]);
            run(
                "qemu-io",
                &[
                    "-f",
                    "qcow2",
                    "-c",
                    &format!("write -P {i} 64k 100k"),
                    s(&p),
                ],
            );
            p
        })
        .collect();
    run("chmod", &["-R", "a+rX", s(&d)]);
    let list = w.path().join("list.txt");
    let mut text = String::from("# the images\n\n");
    for p in &inputs {
        text.push_str(&format!("  {}\n", s(p)));
    }
    std::fs::write(&list, text).expect("list");
    run("chmod", &["a+r", s(&list)]);

    let out_dir = w.path().join("out");
    let mut seen: Vec<String> = Vec::new();
    let mut per_shard = Vec::new();
    for i in 0..3 {
        let shard = format!("{i}/3");
        let stdout = ok(
            w.path(),
            &[
                "batch",
                "convert",
                "--out-dir",
                s(&out_dir),
                "--from-list",
                s(&list),
                "--shard",
                &shard,
                "--json",
            ],
        );
        let mine: BTreeSet<String> = json_lines(stdout.as_bytes())
            .iter()
            .map(|l| {
                assert_eq!(l["status"], "ok");
                l["input"].as_str().expect("input").to_string()
            })
            .collect();
        seen.extend(mine.iter().cloned());
        per_shard.push(mine);
    }
    seen.sort();
    let mut all: Vec<String> = inputs.iter().map(|p| s(p).to_string()).collect();
    all.sort();
    assert_eq!(seen, all, "every image exactly once");
    assert!(
        per_shard.iter().filter(|s| !s.is_empty()).count() >= 2,
        "{per_shard:?}"
    );
    for p in &inputs {
        run(
            "qemu-img",
            &["compare", "-q", s(p), s(&stem_out(&out_dir, p, "raw"))],
        );
    }

    // The shard depends on the file name only: relative paths from another directory
    // select the same images.
    let rel_list = w.path().join("rel.txt");
    let rel: String = inputs
        .iter()
        .map(|p| format!("{}\n", p.file_name().expect("name").to_string_lossy()))
        .collect();
    std::fs::write(&rel_list, rel).expect("list");
    run("chmod", &["a+r", s(&rel_list)]);
    let out2 = w.path().join("out2");
    let stdout = ok(
        &d,
        &[
            "batch",
            "convert",
            "--out-dir",
            s(&out2),
            "--from-list",
            s(&rel_list),
            "--shard",
            "1/3",
            "--json",
        ],
    );
    let names1: BTreeSet<String> = json_lines(stdout.as_bytes())
        .iter()
        .map(|l| l["input"].as_str().expect("input").to_string())
        .collect();
    let expect: BTreeSet<String> = per_shard[1]
        .iter()
        .map(|p| {
            Path::new(p)
                .file_name()
                .expect("n")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names1, expect);
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let w = workdir();
    let img = w.path().join("x.raw");
    std::fs::write(&img, vec![0u8; 4096]).expect("img");
    let other = w.path().join("sub");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("x.qcow2"), vec![0u8; 4096]).expect("img");
    run("chmod", &["-R", "a+rX", s(w.path())]);
    let usage = |args: &[&str], phrase: &str| {
        let out = subroot_in(w.path(), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(phrase), "{args:?}: {err}");
    };
    usage(
        &[
            "batch",
            "convert",
            "--out-dir",
            "o",
            "--shard",
            "3/3",
            "x.raw",
        ],
        "shard index 3 is out of range",
    );
    usage(
        &[
            "batch",
            "convert",
            "--out-dir",
            "o",
            "--shard",
            "x",
            "x.raw",
        ],
        "expected I/N",
    );
    usage(
        &[
            "batch",
            "convert",
            "--out-dir",
            "o",
            "--shard",
            "0/0",
            "x.raw",
        ],
        "at least 1",
    );
    usage(
        &["batch", "convert", "--out-dir", "o", "-j", "0", "x.raw"],
        "-j",
    );
    usage(&["batch", "convert", "--out-dir", "o"], "IMAGES");
    usage(&["batch", "convert", "x.raw"], "--out-dir");

    let list = w.path().join("empty.txt");
    std::fs::write(&list, "# nothing here\n\n   \n").expect("list");
    run("chmod", &["a+r", s(&list)]);
    fails(
        w.path(),
        &[
            "batch",
            "convert",
            "--out-dir",
            "o",
            "--from-list",
            "empty.txt",
        ],
        1,
        &["empty.txt", "names no images"],
    );
    fails(
        w.path(),
        &["batch", "convert", "--out-dir", "o", "x.raw", "sub/x.qcow2"],
        1,
        &["x.raw", "sub/x.qcow2", "o/x.raw"],
    );
    fails(
        w.path(),
        &["batch", "convert", "--out-dir", ".", "x.raw"],
        1,
        &["would replace its input"],
    );
    fails(
        w.path(),
        &["batch", "convert", "-c", "--out-dir", "o", "x.raw"],
        1,
        &["--compress needs qcow2 output"],
    );
    assert_eq!(names(w.path()), vec!["empty.txt", "sub", "x.raw"]);
}

// ---- batch relayout ----

/// The tools the relayout fixtures and judges need.
fn relayout_tools(test: &str) -> bool {
    ["mke2fs", "e2fsck", "cpio", "sfdisk", "qemu-img", "cmp"]
        .iter()
        .all(|t| need(t, test))
}

/// `n` relayout-ready images in `dir/in` (from one staged demo root, each with its own
/// `/etc/image-id`): raw and qcow2 alternately, named `sys-I.raw` / `sys-I.qcow2`.
fn relayout_images(dir: &Path, n: usize) -> Vec<PathBuf> {
    use common::relayout::{qcow2_disk, raw_disk, stage_named, INITRD_DIR};
    let d = dir.join("in");
    std::fs::create_dir_all(&d).expect("mkdir");
    let st = stage_named(dir, "stage", Some(Path::new(INITRD_DIR)));
    let v = (0..n)
        .map(|i| {
            std::fs::write(st.join("etc/image-id"), format!("image {i}\n")).expect("write");
            if i % 2 == 0 {
                let p = d.join(format!("sys-{i}.raw"));
                raw_disk(&p, &st);
                p
            } else {
                let p = d.join(format!("sys-{i}.qcow2"));
                qcow2_disk(&p, &st);
                p
            }
        })
        .collect();
    run("chmod", &["-R", "a+rX", s(&d)]);
    v
}

/// Run `subroot ARGS` in `dir` with `SOURCE_DATE_EPOCH` set (reproducible outputs).
fn subroot_sde(dir: &Path, args: &[&str]) -> std::process::Output {
    subroot()
        .args(args)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("running subroot")
}

/// A relayouted output judged: `subroot ls OUT /r0` lists the moved system, e2fsck -fn
/// passes on its partition, its initrd has the hook (`subroot initrd ls --image`), and
/// its /etc/image-id is the input's.
fn check_relayouted(dir: &Path, out: &Path, id: usize) {
    let top = ok(dir, &["-q", "ls", s(out), "/r0"]);
    let names: Vec<&str> = top.lines().collect();
    for n in ["bin", "etc", "usr", "boot", "sysroot"] {
        assert!(
            names.contains(&n),
            "{n} not in /r0 of {}: {names:?}",
            s(out)
        );
    }
    let id_text = ok(dir, &["-q", "cat", s(out), "/r0/etc/image-id"]);
    assert_eq!(id_text, format!("image {id}\n"));
    let part = out.with_extension("p1-check");
    common::relayout::partition1(out, &part);
    let fsck = run("e2fsck", &["-fn", s(&part)]);
    assert!(
        fsck.status.success(),
        "e2fsck {}: {}",
        s(out),
        String::from_utf8_lossy(&fsck.stdout)
    );
    std::fs::remove_file(&part).expect("rm");
    let listing = ok(
        dir,
        &[
            "-q",
            "initrd",
            "ls",
            "--image",
            s(out),
            "/boot/initrd.img-6.1.0-t",
        ],
    );
    assert!(
        listing.lines().any(|l| l == "scripts/local-bottom/subroot"),
        "no hook in the initrd of {}: {listing}",
        s(out)
    );
}

#[test]
fn batch_relayout_does_four_and_reports_two_clear_failures() {
    let t = "batch_relayout_does_four_and_reports_two_clear_failures";
    if !relayout_tools(t) {
        return;
    }
    let w = workdir();
    let good = relayout_images(w.path(), 4);
    let d = w.path().join("in");
    // Broken 1: a qcow2 cut inside its header.
    let trunc = d.join("trunc.qcow2");
    std::fs::copy(&good[1], &trunc).expect("copy");
    let head = std::fs::read(&trunc).expect("read")[..60].to_vec();
    std::fs::write(&trunc, head).expect("truncate");
    // Broken 2: an installed system without an initrd.
    let noinit = d.join("noinitrd.raw");
    let st = common::relayout::stage_named(w.path(), "stage-noinitrd", None);
    common::relayout::raw_disk(&noinit, &st);
    run("chmod", &["-R", "a+rX", s(&d)]);
    let inputs = vec![
        good[0].clone(),
        trunc.clone(),
        good[1].clone(),
        good[2].clone(),
        noinit.clone(),
        good[3].clone(),
    ];
    let out_dir = w.path().join("out");
    let out = subroot_in(
        w.path(),
        &args_with(
            &[
                "batch",
                "relayout",
                "--out-dir",
                s(&out_dir),
                "-j2",
                "-k",
                "--json",
            ],
            &inputs,
        ),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 6, "{lines:?}");
    let by_input: BTreeMap<String, &Value> = lines
        .iter()
        .map(|l| (l["input"].as_str().expect("input").to_string(), l))
        .collect();
    // For triage, each line says what the image held (from its own os-release and hostname).
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/demo-root/etc");
    let pretty = std::fs::read_to_string(demo.join("os-release"))
        .expect("os-release")
        .lines()
        .find_map(|l| {
            l.strip_prefix("PRETTY_NAME=")
                .map(|v| v.trim_matches('"').to_string())
        })
        .expect("PRETTY_NAME");
    let hostname = std::fs::read_to_string(demo.join("hostname")).expect("hostname");
    for (i, g) in good.iter().enumerate() {
        let l = by_input[s(g)];
        assert_eq!(l["status"], "ok", "{l}");
        assert_eq!(l["system"]["os"], pretty.as_str(), "{l}");
        assert_eq!(l["system"]["hostname"], hostname.trim(), "{l}");
        let o = stem_out(&out_dir, g, "raw");
        assert_eq!(l["output"], s(&o));
        check_relayouted(w.path(), &o, i);
        let sc = sidecar(&o);
        assert_eq!(sc["operation"], "relayout");
        assert_eq!(sc["result"], "ok");
        assert_eq!(sc["options"]["subroot"], "r0");
        assert_eq!(
            sc["options"]["shared"],
            serde_json::json!(["boot", "var", "home"])
        );
        assert_eq!(sc["options"]["format"]["output_format"], "raw");
        // The disk around the partition is the input's (the MBR is copied).
        let raw_in = w.path().join("check-in.raw");
        run(
            "qemu-img",
            &["convert", "-q", "-O", "raw", s(g), s(&raw_in)],
        );
        assert!(run("cmp", &["-n", "1048576", s(&raw_in), s(&o)])
            .status
            .success());
        std::fs::remove_file(&raw_in).expect("rm");
    }
    for (bad, phrase) in [(&trunc, "trunc.qcow2"), (&noinit, "no initrd found")] {
        let l = by_input[s(bad)];
        assert_eq!(l["status"], "failed", "{l}");
        let err = l["error"].as_str().expect("error");
        assert!(err.contains(phrase), "{err}");
        let o = stem_out(&out_dir, bad, "raw");
        assert!(!o.exists());
        assert_eq!(sidecar(&o)["result"], "failed");
        assert!(
            stderr.contains(&format!("failed: {}: ", s(bad))),
            "{stderr}"
        );
    }
    assert!(
        stderr.contains("batch relayout: 4 done, 0 skipped (already done), 2 failed"),
        "{stderr}"
    );
    assert!(stderr.contains("2 of 6 image(s) failed"), "{stderr}");
    no_temps(&out_dir);
    assert_eq!(names(&out_dir).len(), 4 + 6);
}

#[test]
fn batch_relayout_resumes_after_sigkill_and_matches_an_uninterrupted_run() {
    let t = "batch_relayout_resumes_after_sigkill_and_matches_an_uninterrupted_run";
    if !relayout_tools(t) {
        return;
    }
    let w = workdir();
    let inputs = relayout_images(w.path(), 6);
    let out_dir = w.path().join("out");
    let base = ["batch", "relayout", "--out-dir", s(&out_dir), "-j1"];
    let mut child = subroot()
        .args(args_with(&base, &inputs))
        .current_dir(w.path())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn subroot");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = std::fs::read_dir(&out_dir).map_or(0, |d| {
            d.flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.ends_with(".subroot.json") && !n.starts_with('.')
                })
                .count()
        });
        if done > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no image finished in time");
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the batch ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // Let the next image get under way, so the kill lands inside a job.
    std::thread::sleep(Duration::from_millis(30));
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");

    // Finished means recorded: the sidecar is written after the output is renamed into
    // place, so a kill between the two leaves an output without one, which the resumed
    // run must redo (the edit engine is fast enough for the kill to land there).
    let finished: BTreeMap<PathBuf, (u64, i64, i64)> = inputs
        .iter()
        .map(|i| stem_out(&out_dir, i, "raw"))
        .filter(|o| o.exists() && sidecar_of(o).exists())
        .map(|o| {
            let m = std::fs::metadata(&o).expect("stat");
            (o, (m.ino(), m.mtime(), m.mtime_nsec()))
        })
        .collect();
    assert!(!finished.is_empty());
    assert!(
        finished.len() < inputs.len(),
        "everything finished before the kill; the test proves nothing"
    );
    let sidecar_times: BTreeMap<PathBuf, i64> = finished
        .keys()
        .map(|o| {
            let m = std::fs::metadata(sidecar_of(o)).expect("sidecar");
            (o.clone(), m.mtime() * 1_000_000_000 + m.mtime_nsec())
        })
        .collect();

    // A work directory of a killed job (its process long gone), as a kill inside a job
    // leaves one: removed at start-up.
    let last = stem_out(&out_dir, &inputs[inputs.len() - 1], "raw");
    let stale = out_dir.join(format!(
        ".{}.work.subroot-tmp-999999999",
        last.file_name().expect("name").to_string_lossy()
    ));
    std::fs::create_dir_all(stale.join("build")).expect("plant");
    std::fs::write(stale.join("build/fs.img"), b"stale").expect("plant");
    run("chmod", &["-R", "a+rwX", s(&stale)]); // as if the unprivileged CLI had made it

    let out = subroot_sde(
        w.path(),
        &args_with(&[&base[..], &["--resume", "--json"]].concat(), &inputs),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stale.exists(), "a killed job's work directory was left");
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), inputs.len());
    for l in &lines {
        let o = PathBuf::from(l["output"].as_str().expect("output"));
        let expect = if finished.contains_key(&o) {
            "skipped"
        } else {
            "ok"
        };
        assert_eq!(l["status"], expect, "{l}");
    }
    for (o, before) in &finished {
        let m = std::fs::metadata(o).expect("stat");
        assert_eq!(
            &(m.ino(), m.mtime(), m.mtime_nsec()),
            before,
            "{} was redone",
            o.display()
        );
        let mut p = o.as_os_str().to_owned();
        p.push(".subroot.json");
        let m = std::fs::metadata(&p).expect("sidecar");
        assert_eq!(
            m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            sidecar_times[o],
            "the sidecar of {} was rewritten",
            o.display()
        );
    }
    // No temporary output, sidecar or work directory left (the killed job's included).
    no_temps(&out_dir);
    assert_eq!(names(&out_dir).len(), 2 * inputs.len());

    // Identical to an uninterrupted run (at -j2).
    let ref_dir = w.path().join("ref");
    let r = subroot_sde(
        w.path(),
        &args_with(
            &["batch", "relayout", "--out-dir", s(&ref_dir), "-j2"],
            &inputs,
        ),
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    for (i, input) in inputs.iter().enumerate() {
        let a = stem_out(&out_dir, input, "raw");
        let b = stem_out(&ref_dir, input, "raw");
        assert!(
            same_bytes(&a, &b),
            "{} differs from {}",
            a.display(),
            b.display()
        );
        check_relayouted(w.path(), &a, i);
    }

    // Other relayout options make every image redone; the same ones, none.
    let again = subroot_sde(
        w.path(),
        &args_with(&[&base[..], &["--resume", "--json"]].concat(), &inputs),
    );
    assert!(json_lines(&again.stdout)
        .iter()
        .all(|l| l["status"] == "skipped"));
    let r1 = subroot_sde(
        w.path(),
        &args_with(
            &[&base[..], &["--resume", "--json", "--subroot", "r1"]].concat(),
            &inputs,
        ),
    );
    assert!(
        r1.status.success(),
        "{}",
        String::from_utf8_lossy(&r1.stderr)
    );
    assert!(json_lines(&r1.stdout).iter().all(|l| l["status"] == "ok"));
    let o = stem_out(&out_dir, &inputs[0], "raw");
    assert_eq!(sidecar(&o)["options"]["subroot"], "r1");
    let top = ok(w.path(), &["-q", "ls", s(&o), "/r1/etc"]);
    assert!(top.lines().any(|l| l == "image-id"), "{top}");
}

#[test]
fn batch_relayout_three_shards_cover_every_image_exactly_once() {
    let t = "batch_relayout_three_shards_cover_every_image_exactly_once";
    if !relayout_tools(t) {
        return;
    }
    let w = workdir();
    let inputs = relayout_images(w.path(), 6);
    let list = w.path().join("list.txt");
    let text: String = inputs.iter().map(|p| format!("{}\n", s(p))).collect();
    std::fs::write(&list, text).expect("list");
    run("chmod", &["a+r", s(&list)]);
    let out_dir = w.path().join("out");
    let mut seen: Vec<String> = Vec::new();
    for i in 0..3 {
        let shard = format!("{i}/3");
        let stdout = ok(
            w.path(),
            &[
                "batch",
                "relayout",
                "--out-dir",
                s(&out_dir),
                "--from-list",
                s(&list),
                "--shard",
                &shard,
                "--json",
            ],
        );
        for l in json_lines(stdout.as_bytes()) {
            assert_eq!(l["status"], "ok", "{l}");
            seen.push(l["input"].as_str().expect("input").to_string());
        }
    }
    seen.sort();
    let mut all: Vec<String> = inputs.iter().map(|p| s(p).to_string()).collect();
    all.sort();
    assert_eq!(seen, all, "every image exactly once");
    for (i, p) in inputs.iter().enumerate() {
        check_relayouted(w.path(), &stem_out(&out_dir, p, "raw"), i);
    }
}

#[test]
fn batch_relayout_refuses_bad_options_before_any_image() {
    let w = workdir();
    let img = w.path().join("x.raw");
    std::fs::write(&img, vec![0u8; 4096]).expect("img");
    run("chmod", &["-R", "a+rX", s(w.path())]);
    fails(
        w.path(),
        &[
            "batch",
            "relayout",
            "--subroot",
            "a/b",
            "--out-dir",
            "o",
            "x.raw",
        ],
        1,
        &["--subroot", "one directory name"],
    );
    fails(
        w.path(),
        &[
            "batch",
            "relayout",
            "--shared",
            "boot,r0",
            "--out-dir",
            "o",
            "x.raw",
        ],
        1,
        &["cannot also be shared"],
    );
    fails(
        w.path(),
        &["batch", "relayout", "-c", "--out-dir", "o", "x.raw"],
        1,
        &["--compress needs qcow2 output"],
    );
    assert_eq!(names(w.path()), vec!["x.raw"]);
}
