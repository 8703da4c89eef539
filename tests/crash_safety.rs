//! Crash safety of `subroot convert` (and of the scratch space of `relayout` and `mkfs`):
//! the process is killed with SIGKILL at several points
//! (early, mid-copy and near the end, by time and by polling the temporary file), and
//! interrupted with SIGINT and SIGTERM. Afterwards the input is byte-identical (sha256sum),
//! nothing exists under the final output name, SIGINT/SIGTERM leave no temporary file and
//! exit with status 130, and a SIGKILL leaves at most one obviously temporary file
//! (`.NAME.subroot-tmp-PID`) which the next run writing the same target removes before
//! succeeding; that run's output is judged by `qemu-img compare`.

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// A 1 GiB sparse raw disk with 300 MiB of data: random (incompressible) and text runs.
fn big_input(dir: &Path) -> PathBuf {
    let p = dir.join("input.raw");
    run("truncate", &["-s", "1G", s(&p)]);
    for (src, seek) in [
        ("/dev/urandom", "0"),
        ("/dev/urandom", "400"),
        ("/dev/urandom", "900"),
    ] {
        run(
            "dd",
            &[
                &format!("if={src}"),
                &format!("of={}", s(&p)),
                "bs=1M",
                "count=60",
                &format!("seek={seek}"),
                "conv=notrunc",
                "status=none",
            ],
        );
    }
    // Two compressible 60 MiB runs: the binary's own bytes, repeated.
    let exe = which("qemu-img").expect("qemu-img");
    for seek in [100u64, 600] {
        let mut off = seek * MIB;
        while off < (seek + 60) * MIB {
            run(
                "dd",
                &[
                    &format!("if={}", s(&exe)),
                    &format!("of={}", s(&p)),
                    "bs=64k",
                    &format!("seek={}", off / (64 << 10)),
                    "conv=notrunc",
                    "status=none",
                ],
            );
            off += std::fs::metadata(&exe).expect("stat").len().max(64 << 10) / (64 << 10)
                * (64 << 10);
        }
    }
    run("chmod", &["a+r", s(&p)]);
    p
}

fn sha256(p: &Path) -> String {
    run_stdout("sha256sum", &[s(p)])
        .split_whitespace()
        .next()
        .expect("sum")
        .to_string()
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    subroot()
        .args(args)
        .current_dir(dir)
        .env_remove("CI")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning subroot")
}

/// When to stop the run.
#[derive(Debug, Clone, Copy)]
enum When {
    /// After this long.
    After(Duration),
    /// Once the temporary file holds at least this many allocated bytes.
    TempHolds(u64),
}

fn temp_name(out: &str, pid: u32) -> String {
    format!(".{out}.subroot-tmp-{pid}")
}

/// Wait for `when`; false if the process exited first.
fn wait_for(child: &mut Child, dir: &Path, out: &str, when: When) -> bool {
    let start = Instant::now();
    let tmp = dir.join(temp_name(out, child.id()));
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return false;
        }
        match when {
            When::After(d) if start.elapsed() >= d => return true,
            When::TempHolds(n) => {
                if let Ok(m) = std::fs::metadata(&tmp) {
                    if m.blocks() * 512 >= n {
                        return true;
                    }
                }
            }
            _ => {}
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "{when:?} never happened"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(pid: u32, sig: &str) {
    run("kill", &[&format!("-{sig}"), &pid.to_string()]);
}

/// Files in `dir` other than the input.
fn leftovers(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n != "input.raw")
        .collect()
}

/// Stop one `convert` at `when` with `sig` (it must still be running then); check the
/// aftermath.
fn interrupt(
    dir: &Path,
    input: &Path,
    sum: &str,
    out: &str,
    extra: &[&str],
    sig: &str,
    when: When,
) {
    let mut args = vec!["convert", s(input), out];
    args.extend_from_slice(extra);
    let mut child = spawn(dir, &args);
    let pid = child.id();
    assert!(
        wait_for(&mut child, dir, out, when),
        "convert {extra:?} finished before {when:?}: make the input bigger"
    );
    signal(pid, sig);
    let status = child.wait().expect("wait");
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    assert!(!err.contains("panicked"), "{sig} at {when:?}: {err}");
    assert!(!dir.join(out).exists(), "{sig} at {when:?}: {out} exists");
    assert_eq!(sha256(input), sum, "{sig} at {when:?}: the input changed");
    let left = leftovers(dir);
    if sig == "KILL" {
        assert_eq!(status.code(), None, "SIGKILL: {status:?}");
        // At most the temporary file, under its obviously temporary name.
        assert!(
            left.is_empty() || left == [temp_name(out, pid)],
            "SIGKILL at {when:?}: left {left:?}"
        );
        if let When::TempHolds(_) = when {
            assert_eq!(left, [temp_name(out, pid)], "the temp file should remain");
        }
    } else {
        assert_eq!(
            status.code(),
            Some(130),
            "{sig} at {when:?}: {status:?} {err}"
        );
        assert!(left.is_empty(), "{sig} at {when:?}: left {left:?}");
        assert!(err.contains("interrupted"), "{sig}: {err}");
    }
}

/// The next run writing `out` removes a dead run's temporary file and succeeds.
fn next_run_succeeds(dir: &Path, input: &Path, out: &str, extra: &[&str]) {
    let mut args = vec!["convert", s(input), out];
    args.extend_from_slice(extra);
    ok(dir, &args);
    assert_eq!(leftovers(dir), [out.to_string()], "stale temp not removed");
    run(
        "qemu-img",
        &["compare", "-f", "raw", s(input), s(&dir.join(out))],
    );
    std::fs::remove_file(dir.join(out)).expect("rm");
}

#[test]
fn killed_convert_to_raw_leaves_input_intact() {
    if !need("qemu-img", "killed_convert_to_raw_leaves_input_intact") {
        return;
    }
    let d = workdir();
    let dir = d.path();
    let input = big_input(dir);
    let sum = sha256(&input);
    let out = "out.raw";
    for when in [
        When::After(Duration::from_millis(150)),
        When::TempHolds(100 * MIB),
        When::TempHolds(280 * MIB),
    ] {
        interrupt(dir, &input, &sum, out, &[], "KILL", when);
    }
    // Two dead runs' temporaries at once are both cleaned by the next run.
    interrupt(
        dir,
        &input,
        &sum,
        out,
        &[],
        "KILL",
        When::TempHolds(50 * MIB),
    );
    next_run_succeeds(dir, &input, out, &[]);
    for sig in ["INT", "TERM"] {
        interrupt(dir, &input, &sum, out, &[], sig, When::TempHolds(60 * MIB));
    }
    assert_eq!(sha256(&input), sum);
}

#[test]
fn killed_convert_to_compressed_qcow2_leaves_input_intact() {
    if !need(
        "qemu-img",
        "killed_convert_to_compressed_qcow2_leaves_input_intact",
    ) {
        return;
    }
    let d = workdir();
    let dir = d.path();
    let input = big_input(dir);
    let sum = sha256(&input);
    let out = "out.qcow2";
    let zc: &[&str] = &["-O", "qcow2", "-c"];
    for when in [
        When::After(Duration::from_millis(150)),
        When::TempHolds(8 * MIB),
        When::TempHolds(40 * MIB),
    ] {
        interrupt(dir, &input, &sum, out, zc, "KILL", when);
    }
    for sig in ["INT", "TERM"] {
        interrupt(dir, &input, &sum, out, zc, sig, When::TempHolds(10 * MIB));
    }
    interrupt(
        dir,
        &input,
        &sum,
        out,
        zc,
        "KILL",
        When::TempHolds(20 * MIB),
    );
    // The next run (uncompressed, to keep the test short) replaces the stale temporary.
    next_run_succeeds(dir, &input, out, &["-O", "qcow2"]);
    assert_eq!(sha256(&input), sum);
}

/// Total allocated bytes of the files below `dir`.
fn allocated(dir: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => n += allocated(&e.path()),
                Ok(m) => n += m.blocks() * 512,
                Err(_) => {}
            }
        }
    }
    n
}

/// SIGINT/SIGTERM during a command that builds a filesystem in scratch space ($TMPDIR)
/// remove the scratch directory too (it can be as large as the filesystem's data).
#[test]
fn interrupted_rebuilds_leave_no_scratch() {
    let t = "interrupted_rebuilds_leave_no_scratch";
    for tool in ["mke2fs", "debugfs", "e2fsck", "sfdisk", "cpio"] {
        if !need(tool, t) {
            return;
        }
    }
    let d = workdir();
    let dir = d.path();
    let st = common::relayout::stage(dir, Some(Path::new(common::relayout::INITRD_DIR)));
    // Enough incompressible data that the rebuild takes a while.
    run(
        "dd",
        &[
            "if=/dev/urandom",
            &format!("of={}", s(&st.join("usr/blob"))),
            "bs=1M",
            "count=150",
            "status=none",
        ],
    );
    let img = dir.join("input.raw");
    sh_img(&img, &st);
    let sum = sha256(&img);
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).expect("mkdir");
    run("chmod", &["0777", s(&tmp)]);
    let from = format!("{}:1", s(&img));
    let cases: [&[&str]; 2] = [
        &["relayout", s(&img), "-o", "out.raw", "--engine", "rebuild"],
        &["mkfs", s(&img), "-p", "1", "--from", &from, "-o", "out.raw"],
    ];
    for (i, args) in cases.iter().enumerate() {
        for sig in ["INT", "TERM"] {
            let mut child = subroot()
                .args(*args)
                .current_dir(dir)
                .env("TMPDIR", &tmp)
                .env_remove("CI")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            let start = Instant::now();
            while allocated(&tmp) < 20 * MIB {
                assert!(
                    child.try_wait().expect("try_wait").is_none(),
                    "case {i} finished before its scratch held 20 MiB: make the input bigger"
                );
                assert!(
                    start.elapsed() < Duration::from_secs(300),
                    "no scratch seen"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            signal(child.id(), sig);
            let status = child.wait().expect("wait");
            assert_eq!(status.code(), Some(130), "case {i} {sig}: {status:?}");
            // Programs it ran (mke2fs) may take a moment to let go of the scratch files.
            let until = Instant::now() + Duration::from_secs(10);
            while names(&tmp).iter().any(|n| !n.is_empty()) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
            assert_eq!(
                names(&tmp),
                Vec::<String>::new(),
                "case {i} {sig}: scratch left"
            );
            assert!(
                !dir.join("out.raw").exists(),
                "case {i} {sig}: output exists"
            );
            assert_eq!(sha256(&img), sum, "case {i} {sig}: the input changed");
        }
    }
}

/// A relayout-ready MBR disk holding `tree` (like `common::relayout::raw_disk`, sized for it).
fn sh_img(img: &Path, tree: &Path) {
    common::relayout::sh(&format!(
        "truncate -s 400M {i} && printf 'label: dos\\nstart=2048, type=83\\n' | sfdisk -q {i} && \
         mke2fs -q -F -t ext4 -L root -E offset=1048576 -d {t} {i} 399M && chmod a+r {i}",
        i = s(img),
        t = s(tree)
    ));
}
