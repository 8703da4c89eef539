//! `--in-place` edits under an undo log: a plan from an overlay edit applied to a raw image
//! gives the intended bytes; qcow2 images with a hand-made plan (overwrites of allocated
//! clusters) and with `qcow2::plan_in_place`'s plans (sparse and compressed images: new
//! clusters appended, tables updated) stay clean for `qemu-img check` and equal the
//! intended disk; another
//! program's lock (qemu-io) is detected and ours stops qemu-io; and a real SIGKILL of a
//! child process after every step of an edit (raw and the three qcow2 kinds) followed by `recover` leaves the
//! input byte for byte or the intended output, never a mix — also for an edit that makes
//! the file shorter (the cut bytes come back).

mod common;

use common::{need, noise, run, run_stdout, s};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use subroot_formats::block::{raw_plan, BlockDevice, Overlay, PlannedWrite, WritePlan};
use subroot_formats::image::Image;
use subroot_formats::inplace::{
    apply, apply_with, pending, recover, undo_log_path, InPlaceError, RecoverOutcome, Step,
};
use subroot_formats::Error;

const MIB: u64 = 1 << 20;
/// Not a multiple of 4 KiB: the overlay's last block is partial.
const RAW_SIZE: u64 = 8 * MIB + 1536;
const CHILD_DIR: &str = "SUBROOT_INPLACE_CHILD_DIR";
const CHILD_STOP: &str = "SUBROOT_INPLACE_CHILD_STOP";
const CHILD_FORMAT: &str = "SUBROOT_INPLACE_CHILD_FORMAT";
const PAUSED: &str = "subroot-inplace-paused";

/// The edit: the first bytes, 3.5 MiB across block boundaries (several log records and
/// image writes), zeros over data, scattered single blocks (in one cluster, and in three
/// separate ones), the unaligned last bytes.
fn edit(dev: &dyn BlockDevice) {
    let len = dev.len();
    dev.write_at(&[0xa1; 100], 0).unwrap();
    dev.write_at(&noise((7 * MIB / 2) as usize, 7), MIB + 10)
        .unwrap();
    dev.write_at(&vec![0u8; 4096], 5 * MIB).unwrap();
    for k in 0..8 {
        dev.write_at(&[0xb0 + k as u8; 4096], 6 * MIB + 8192 * k)
            .unwrap();
    }
    for k in [1, 3, 5] {
        dev.write_at(&[0xd0 + k as u8; 4096], 7 * MIB + 65536 * k)
            .unwrap();
    }
    dev.write_at(&[0xc3; 10], len - 10).unwrap();
}

/// A raw image of noise.
fn make_raw(path: &Path) {
    std::fs::write(path, noise(RAW_SIZE as usize, 1)).unwrap();
}

/// A fully allocated qcow2 image (64 KiB clusters) made by qemu-img from noise.
fn make_qcow2(path: &Path) {
    let raw = path.with_extension("src.raw");
    std::fs::write(&raw, noise((8 * MIB) as usize, 2)).unwrap();
    run(
        "qemu-img",
        &["convert", "-f", "raw", "-O", "qcow2", s(&raw), s(path)],
    );
    std::fs::remove_file(raw).unwrap();
}

/// A qcow2 image made by qemu-img (compressed with `-c`) from a disk with data in
/// [0, 2 MiB) and [6, 7 MiB) and holes elsewhere, so the edit both overwrites clusters and
/// needs new ones (appended by the planner, with new L2 entries and refcounts).
fn make_sparse_qcow2(path: &Path, compressed: bool) {
    let raw = path.with_extension("src.raw");
    let mut data = vec![0u8; (8 * MIB) as usize];
    data[..(2 * MIB) as usize].copy_from_slice(&noise((2 * MIB) as usize, 3));
    data[(6 * MIB) as usize..(7 * MIB) as usize].fill(0x42);
    std::fs::write(&raw, data).unwrap();
    let mut args = vec!["convert", "-f", "raw", "-O", "qcow2"];
    if compressed {
        args.push("-c");
    }
    args.extend([s(&raw), s(path)]);
    run("qemu-img", &args);
    std::fs::remove_file(raw).unwrap();
}

/// For each guest byte range, where it lives in the qcow2 file (from `qemu-img map`).
fn qcow2_map(path: &Path) -> Vec<(u64, u64, u64)> {
    let v: serde_json::Value = serde_json::from_str(&run_stdout(
        "qemu-img",
        &["map", "--output=json", "-f", "qcow2", s(path)],
    ))
    .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"] == true)
        .map(|e| {
            (
                e["start"].as_u64().unwrap(),
                e["length"].as_u64().unwrap(),
                e["offset"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The plan for `image` edited by `edited`: raw_plan for raw, plus a metadata write into
/// a new 64 KiB tail (the file grows); for qcow2, the changed ranges translated to their
/// host offsets (all clusters are allocated, so every write is an in-place overwrite).
fn plan_for(image: &Path, format: &str, edited: &Overlay<Image>) -> WritePlan {
    let changed = edited.changed();
    if format == "raw-shrink" {
        // An initrd whose appended segment is replaced by a shorter one: the file is cut,
        // and the cut bytes must come back on a roll-back.
        let new_len = RAW_SIZE - 3 * MIB - 100;
        let mut plan = raw_plan(&changed, RAW_SIZE);
        plan.writes.retain(|w| w.offset() + w.len() <= new_len);
        assert!(!plan.writes.is_empty());
        plan.writes.push(PlannedWrite::Bytes {
            offset: new_len - 30,
            data: b"a shorter tail".to_vec(),
        });
        plan.new_len = new_len;
        return plan;
    }
    if format == "raw" {
        let mut plan = raw_plan(&changed, RAW_SIZE);
        plan.writes.push(PlannedWrite::Bytes {
            offset: RAW_SIZE + 1000,
            data: b"metadata after the old end".to_vec(),
        });
        plan.new_len = RAW_SIZE + 65536;
        return plan;
    }
    if format != "qcow2" {
        let file = std::fs::File::open(image).unwrap();
        return subroot_formats::qcow2::plan_in_place(&file, &changed).unwrap();
    }
    let map = qcow2_map(image);
    let mut writes = Vec::new();
    for c in changed {
        let mut pos = c.offset;
        while pos < c.end() {
            let &(start, len, host) = map
                .iter()
                .find(|(st, l, _)| (*st..st + l).contains(&pos))
                .expect("every guest byte is allocated");
            let n = (start + len).min(c.end()) - pos;
            writes.push(PlannedWrite::Guest {
                offset: host + (pos - start),
                guest: pos,
                len: n,
            });
            pos += n;
        }
    }
    WritePlan {
        writes,
        new_len: std::fs::metadata(image).unwrap().len(),
    }
}

/// What the image file should hold after `plan`: `input` with the plan's writes.
fn simulate(input: &[u8], plan: &WritePlan, edited: &dyn BlockDevice) -> Vec<u8> {
    let mut out = input.to_vec();
    out.resize(plan.new_len as usize, 0);
    for w in &plan.writes {
        let at = w.offset() as usize;
        match w {
            PlannedWrite::Bytes { data, .. } => out[at..at + data.len()].copy_from_slice(data),
            PlannedWrite::Guest { guest, len, .. } => edited
                .read_at(&mut out[at..at + *len as usize], *guest)
                .unwrap(),
        }
    }
    out
}

/// A test image in `dir`: "raw", "raw-shrink" (a raw image the edit makes shorter), "qcow2" (fully allocated, edited with a hand-made plan of
/// overwrites), "qcow2-planned" and "qcow2-compressed-planned" (sparse, planned by
/// `qcow2::plan_in_place`).
fn make_image(dir: &Path, format: &str) -> PathBuf {
    let image = dir.join(format!("disk.{format}"));
    match format {
        "raw" | "raw-shrink" => make_raw(&image),
        "qcow2" => make_qcow2(&image),
        "qcow2-planned" => make_sparse_qcow2(&image, false),
        _ => make_sparse_qcow2(&image, true),
    }
    image
}

/// Open `image`, edit it on a spill overlay, and plan the in-place update.
fn prepare(image: &Path, format: &str) -> (Overlay<Image>, WritePlan) {
    let spill = tempfile::tempfile().unwrap();
    let edited = Overlay::with_spill(Image::open(image).unwrap(), spill);
    edit(&edited);
    let plan = plan_for(image, format, &edited);
    (edited, plan)
}

fn check_apply(format: &str, test: &str) {
    if !format.starts_with("raw") && !need("qemu-img", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), format);
    let input = std::fs::read(&image).unwrap();
    let (edited, plan) = prepare(&image, format);
    let expected = simulate(&input, &plan, &edited);
    let full = dir.path().join("full.raw");
    if !format.starts_with("raw") {
        let out = common::new_output(&full);
        subroot_formats::sparse_copy::write_raw(&edited, &out, &|_| {}).unwrap();
    }
    let stats = apply(&image, &plan, &edited).unwrap();
    assert_eq!(std::fs::read(&image).unwrap(), expected);
    assert_ne!(input, expected);
    assert_eq!(pending(&image), None);
    let planned: u64 = plan.writes.iter().map(|w| w.len()).sum();
    assert_eq!(stats.bytes_written, planned);
    let cut = (input.len() as u64).saturating_sub(plan.new_len);
    // The old bytes of the overwritten ranges and every byte cut off are saved.
    assert!(stats.bytes_saved > cut && stats.bytes_saved <= planned + cut);
    assert_eq!(stats.new_len, plan.new_len);
    if !format.starts_with("raw") {
        run("qemu-img", &["check", "-f", "qcow2", s(&image)]);
        run(
            "qemu-img",
            &["compare", "-f", "qcow2", "-F", "raw", s(&image), s(&full)],
        );
    }
    assert_eq!(recover(&image).unwrap(), RecoverOutcome::NothingToDo);
}

#[test]
fn apply_raw() {
    check_apply("raw", "apply_raw");
}

#[test]
fn apply_raw_shrinking() {
    check_apply("raw-shrink", "apply_raw_shrinking");
}

#[test]
fn apply_qcow2_overwrites() {
    check_apply("qcow2", "apply_qcow2_overwrites");
}

/// A log left by an earlier edit blocks the next one (the image is not touched); recover
/// discards a log that was never completed; a log of another inode (a copied image with
/// its log) is refused and changes nothing.
#[test]
fn pending_and_foreign_logs() {
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "raw");
    let input = std::fs::read(&image).unwrap();
    let (edited, plan) = prepare(&image, "raw");
    let log = undo_log_path(&image);
    std::fs::write(&log, b"SUBROOT-UNDO-LOG partial").unwrap();
    assert_eq!(pending(&image), Some(log.clone()));
    let err = apply(&image, &plan, &edited).unwrap_err();
    assert!(matches!(err, InPlaceError::UndoPending { .. }), "{err}");
    assert!(err.to_string().contains("subroot recover"), "{err}");
    assert_eq!(std::fs::read(&image).unwrap(), input);
    assert_eq!(
        recover(&image).unwrap(),
        RecoverOutcome::DiscardedIncompleteLog
    );
    assert_eq!(pending(&image), None);

    // Stop an edit after its log is durable, then copy image and log.
    let copy = dir.path().join("copy.raw");
    let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        apply_with(&image, &plan, &edited, &mut |step| {
            if step
                == (Step::ImageWrite {
                    index: 1,
                    done: MIB,
                })
            {
                std::fs::copy(&image, &copy).unwrap();
                std::fs::copy(undo_log_path(&image), undo_log_path(&copy)).unwrap();
                panic!("stop here");
            }
        })
    }));
    assert!(stopped.is_err());
    let err = recover(&copy).unwrap_err();
    assert!(matches!(err, InPlaceError::UndoLogMismatch { .. }), "{err}");
    assert!(pending(&copy).is_some());
    // The original's own log rolls it back (the panic left it behind, as a crash would).
    assert!(matches!(
        recover(&image).unwrap(),
        RecoverOutcome::RolledBack { .. }
    ));
    assert_eq!(std::fs::read(&image).unwrap(), input);
}

/// qemu-io holding the image open makes apply and recover fail as busy, image and log
/// untouched; and while apply holds its lock, qemu-io cannot open the image.
#[test]
fn locks_conflict_with_qemu() {
    if !need("qemu-io", "locks_conflict_with_qemu") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "raw");
    let input = std::fs::read(&image).unwrap();
    let (edited, plan) = prepare(&image, "raw");

    let mut qemu = Command::new("qemu-io")
        .args(["-f", "raw", s(&image)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = qemu.stdin.take().unwrap();
    writeln!(stdin, "read 0 512").unwrap();
    let mut out = BufReader::new(qemu.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("read 512/512 bytes") {
        line.clear();
        assert_ne!(out.read_line(&mut line).unwrap(), 0, "qemu-io ended early");
    }
    let err = apply(&image, &plan, &edited).unwrap_err();
    assert!(matches!(err, InPlaceError::ImageBusy { .. }), "{err}");
    assert_eq!(pending(&image), None);
    // Nor does recovery run under a VM: the log stays.
    std::fs::write(undo_log_path(&image), b"SUBROOT-UNDO-LOG").unwrap();
    let err = recover(&image).unwrap_err();
    assert!(matches!(err, InPlaceError::ImageBusy { .. }), "{err}");
    assert!(pending(&image).is_some());
    std::fs::remove_file(undo_log_path(&image)).unwrap();
    writeln!(stdin, "quit").unwrap();
    drop(stdin);
    qemu.wait().unwrap();
    assert_eq!(std::fs::read(&image).unwrap(), input);

    let mut refused = None;
    apply_with(&image, &plan, &edited, &mut |step| {
        if step == Step::LogDurable {
            let o = Command::new("qemu-io")
                .args(["-f", "raw", "-c", "read 0 512", s(&image)])
                .output()
                .unwrap();
            refused = Some(String::from_utf8_lossy(&o.stderr).into_owned());
        }
    })
    .unwrap();
    let refused = refused.unwrap();
    assert!(
        refused.contains("lock"),
        "qemu-io opened a locked image: {refused}"
    );
}

/// The child side of the SIGKILL sweep: apply the edit to the image in CHILD_DIR and stop
/// (forever) after step CHILD_STOP, telling the parent on stdout. Does nothing in a normal
/// test run.
#[test]
fn sigkill_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let stop: usize = std::env::var(CHILD_STOP).unwrap().parse().unwrap();
    let format = std::env::var(CHILD_FORMAT).unwrap();
    let image = Path::new(&dir).join(format!("disk.{format}"));
    let (edited, plan) = prepare(&image, &format);
    let mut n = 0;
    apply_with(&image, &plan, &edited, &mut |_| {
        if n == stop {
            println!("{PAUSED}");
            std::io::stdout().flush().unwrap();
            // Wait for the SIGKILL; give up (failing) if it never comes.
            std::thread::sleep(std::time::Duration::from_secs(120));
            std::process::exit(3);
        }
        n += 1;
    })
    .unwrap();
}

/// Run the edit in a child process, SIGKILL it after step `stop`, then recover.
fn kill_at(image_dir: &Path, format: &str, stop: usize) -> RecoverOutcome {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, image_dir)
        .env(CHILD_STOP, stop.to_string())
        .env(CHILD_FORMAT, format)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert_ne!(
            out.read_line(&mut line).unwrap(),
            0,
            "child ended before step {stop}"
        );
        if line.trim_end().ends_with(PAUSED) {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let image = image_dir.join(format!("disk.{format}"));
    recover(&image).unwrap()
}

fn sigkill_sweep(format: &str, test: &str) {
    if !need("qemu-img", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pristine = make_image(dir.path(), format);
    let input = std::fs::read(&pristine).unwrap();
    // Count the steps of a whole edit and compute the result, on a copy.
    let (steps, expected) = {
        let d = dir.path().join("count");
        std::fs::create_dir(&d).unwrap();
        let image = d.join(pristine.file_name().unwrap());
        std::fs::copy(&pristine, &image).unwrap();
        let (edited, plan) = prepare(&image, format);
        let expected = simulate(&input, &plan, &edited);
        let mut steps = Vec::new();
        apply_with(&image, &plan, &edited, &mut |st| steps.push(st)).unwrap();
        assert_eq!(std::fs::read(&image).unwrap(), expected);
        (steps, expected)
    };
    assert!(steps.len() >= 15, "only {} steps: {steps:?}", steps.len());
    eprintln!("{test}: SIGKILL after each of {} steps", steps.len());
    let mut outcomes = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let d = dir.path().join(format!("kill{i}"));
        std::fs::create_dir(&d).unwrap();
        let image = d.join(pristine.file_name().unwrap());
        std::fs::copy(&pristine, &image).unwrap();
        let outcome = kill_at(&d, format, i);
        let now = std::fs::read(&image).unwrap();
        let done = *step == Step::LogRemoved;
        if done {
            assert_eq!(outcome, RecoverOutcome::NothingToDo);
            assert!(
                now == expected,
                "killed after {step:?}: not the edited image"
            );
        } else {
            assert!(
                now == input,
                "killed after {step:?} ({outcome:?}): not the input"
            );
        }
        assert_eq!(pending(&image), None);
        if !format.starts_with("raw") {
            run("qemu-img", &["check", "-f", "qcow2", s(&image)]);
        }
        outcomes.push(outcome);
    }
    // Every kind of outcome happened: logs cut short, edits rolled back, a finished edit.
    for want in [
        RecoverOutcome::DiscardedIncompleteLog,
        RecoverOutcome::NothingToDo,
    ] {
        assert!(
            outcomes.contains(&want),
            "{want:?} never seen: {outcomes:?}"
        );
    }
    assert!(outcomes
        .iter()
        .any(|o| matches!(o, RecoverOutcome::RolledBack { bytes } if *bytes > 0)));
}

#[test]
fn sigkill_sweep_raw() {
    sigkill_sweep("raw", "sigkill_sweep_raw");
}

#[test]
fn sigkill_sweep_raw_shrinking() {
    sigkill_sweep("raw-shrink", "sigkill_sweep_raw_shrinking");
}

#[test]
fn sigkill_sweep_qcow2() {
    sigkill_sweep("qcow2", "sigkill_sweep_qcow2");
}

/// A crash during recovery (some old bytes written back, the log still there) is recovered
/// by recovering again.
#[test]
fn recovery_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "raw");
    let input = std::fs::read(&image).unwrap();
    let (edited, plan) = prepare(&image, "raw");
    let mut mid = None;
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        apply_with(&image, &plan, &edited, &mut |step| {
            if step == Step::LengthSet {
                mid = Some((
                    std::fs::read(&image).unwrap(),
                    std::fs::read(undo_log_path(&image)).unwrap(),
                ));
                panic!("stop here");
            }
        })
    }));
    let (mid_image, log) = mid.unwrap();
    assert_ne!(mid_image, input);
    // A recovery that wrote back the first half of the old bytes, then crashed.
    let mut mixed = mid_image.clone();
    let half = input.len() / 2;
    mixed[..half].copy_from_slice(&input[..half]);
    std::fs::write(&image, &mixed).unwrap();
    // The rewritten file is the same inode (std::fs::write truncates in place).
    std::fs::write(undo_log_path(&image), &log).unwrap();
    assert!(matches!(
        recover(&image).unwrap(),
        RecoverOutcome::RolledBack { .. }
    ));
    assert_eq!(std::fs::read(&image).unwrap(), input);
    assert_eq!(recover(&image).unwrap(), RecoverOutcome::NothingToDo);
}

/// Plans that do not fit the image are refused before anything is written (no log left).
#[test]
fn bad_plans_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "raw");
    let input = std::fs::read(&image).unwrap();
    let (edited, _plan) = prepare(&image, "raw");
    let guest = |offset, len| PlannedWrite::Guest {
        offset,
        guest: offset,
        len,
    };
    let bytes = PlannedWrite::Bytes {
        offset: 0,
        data: vec![1; 16],
    };
    let bad = [
        WritePlan {
            writes: vec![guest(RAW_SIZE - 10, 10)],
            new_len: RAW_SIZE - 1,
        },
        WritePlan {
            writes: vec![guest(RAW_SIZE - 10, 20)],
            new_len: RAW_SIZE,
        },
        WritePlan {
            writes: vec![bytes, guest(0, 4096)],
            new_len: RAW_SIZE,
        },
        WritePlan {
            writes: vec![guest(u64::MAX - 1, 2)],
            new_len: RAW_SIZE,
        },
    ];
    for p in bad {
        let err = apply(&image, &p, &edited).unwrap_err();
        assert!(
            matches!(err, InPlaceError::Format(Error::InvalidArgument(_))),
            "{p:?}: {err}"
        );
        assert_eq!(pending(&image), None);
    }
    assert_eq!(std::fs::read(&image).unwrap(), input);
}

/// The qcow2 planner's plans (new clusters appended, L2 and refcounts updated) on a sparse
/// image, plain and compressed: every kill point recovers to the input, and the finished
/// edit is clean and equal to the edited disk.
#[test]
fn sigkill_sweep_qcow2_planned() {
    sigkill_sweep("qcow2-planned", "sigkill_sweep_qcow2_planned");
}

#[test]
fn sigkill_sweep_qcow2_compressed_planned() {
    sigkill_sweep(
        "qcow2-compressed-planned",
        "sigkill_sweep_qcow2_compressed_planned",
    );
}

#[test]
fn apply_qcow2_planned() {
    check_apply("qcow2-planned", "apply_qcow2_planned");
}

#[test]
fn apply_qcow2_compressed_planned() {
    check_apply("qcow2-compressed-planned", "apply_qcow2_compressed_planned");
}
