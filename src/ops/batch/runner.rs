//! Running a [`BatchOp`] over the images of a batch: planning (output names, duplicates,
//! shard), start-up cleanup, `-j` worker threads, resume checks, sidecars, and the end
//! result (exit status 0 only when nothing failed and nothing was left unstarted).

use super::progress::BatchProgress;
use super::report::{print_stdout, Outcome, Status, Totals};
use super::{shard, sidecar, BatchOp, JobCtx};
use crate::cli::BatchCommonArgs;
use crate::error_line::error_line;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// One image of this run and where its output goes.
struct Job {
    input: PathBuf,
    output: PathBuf,
}

/// Run `op` over the images `args` names; see the module docs of `ops::batch`.
pub fn run(op: &dyn BatchOp, args: &BatchCommonArgs, ctx: &Ctx) -> Result<()> {
    let all = shard::images(&args.images, args.from_list.as_deref())?;
    let jobs = plan(op, &all, args)?;
    std::fs::create_dir_all(&args.out_dir).with_context(|| {
        format!(
            "cannot create the output directory {}",
            args.out_dir.display()
        )
    })?;
    for j in &jobs {
        refuse_in_place(j)?;
    }
    let removed = remove_orphan_temps(&args.out_dir, &jobs);
    if removed > 0 && ctx.verbose > 0 {
        eprintln!("removed {removed} temporary file(s) left by killed runs");
    }
    if jobs.is_empty() {
        ctx.note(format_args!(
            "batch {}: no images in this shard ({} listed)",
            op.name(),
            all.len()
        ));
        return Ok(());
    }

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = args.jobs.map_or(cores, |j| j as usize).clamp(1, jobs.len());
    let threads = (cores / workers).max(1);
    let progress = BatchProgress::new(jobs.len() as u64, ctx.quiet);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let outcomes: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::new());

    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { break };
                let o = run_job(op, job, args.resume, &progress, threads);
                if o.status == Status::Failed && args.fail_fast {
                    stop.store(true, Ordering::SeqCst);
                }
                if args.json {
                    print_stdout(&o.json_line());
                } else if ctx.verbose > 0 {
                    progress.println(&human_line(&o));
                }
                outcomes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((i, o));
            });
        }
    });
    progress.finish();

    let mut outcomes = outcomes.into_inner().unwrap_or_else(|e| e.into_inner());
    outcomes.sort_by_key(|(i, _)| *i); // the summary in list order
    let outcomes: Vec<Outcome> = outcomes.into_iter().map(|(_, o)| o).collect();
    let totals = Totals::of(&outcomes, jobs.len());
    if !ctx.quiet {
        eprintln!("{}", totals.line(op.name()));
    }
    let failed: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.status == Status::Failed)
        .collect();
    for o in &failed {
        eprintln!(
            "  failed: {}: {}",
            o.input.display(),
            o.error.as_deref().unwrap_or("unknown error")
        );
    }
    if totals.failed > 0 || totals.not_started > 0 {
        bail!(
            "{} of {} image(s) failed{}",
            totals.failed,
            jobs.len(),
            if totals.not_started > 0 {
                format!(", {} not started", totals.not_started)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// Output names for the whole list (before sharding, so every shard refuses the same
/// collisions), then this shard's part of it.
fn plan(op: &dyn BatchOp, all: &[PathBuf], args: &BatchCommonArgs) -> Result<Vec<Job>> {
    let mut by_name: HashMap<std::ffi::OsString, &PathBuf> = HashMap::new();
    let mut jobs = Vec::new();
    for input in all {
        let name = op.output_name(input)?;
        if let Some(prev) = by_name.get(&name) {
            bail!(
                "{} and {} would both be written to {}; rename one or run them in separate batches",
                prev.display(),
                input.display(),
                args.out_dir.join(&name).display()
            );
        }
        by_name.insert(name.clone(), input);
        if args.shard.is_none_or(|s| s.contains(input)) {
            jobs.push(Job {
                input: input.clone(),
                output: args.out_dir.join(name),
            });
        }
    }
    Ok(jobs)
}

/// Refuse an output that is its own input (e.g. `batch convert -O raw --out-dir .` on
/// `./disk.raw`).
fn refuse_in_place(job: &Job) -> Result<()> {
    if let (Ok(a), Ok(b)) = (job.input.canonicalize(), job.output.canonicalize()) {
        if a == b {
            bail!(
                "the output {} would replace its input; choose another --out-dir",
                job.output.display()
            );
        }
    }
    Ok(())
}

/// Remove temporary files (`.NAME.subroot-tmp-PID`) of this run's outputs and sidecars,
/// and work directories (`.NAME.work.subroot-tmp-PID`) of its jobs, whose process is gone. Only this run's names: other shards may be writing into the
/// same directory from other machines, where their PIDs mean nothing here.
fn remove_orphan_temps(dir: &Path, jobs: &[Job]) -> usize {
    let mut ours: HashSet<String> = HashSet::new();
    for j in jobs {
        if let Some(n) = j.output.file_name() {
            let n = n.to_string_lossy().into_owned();
            ours.insert(format!("{n}{}", sidecar::SUFFIX));
            ours.insert(format!("{n}{}", super::relayout_op::WORK_SUFFIX));
            ours.insert(n);
        }
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let fname = e.file_name();
        let Some((name, pid)) = fname
            .to_str()
            .and_then(|f| f.strip_prefix('.'))
            .and_then(|f| f.rsplit_once(".subroot-tmp-"))
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if ours.contains(name)
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
            && if is_dir {
                std::fs::remove_dir_all(e.path()).is_ok()
            } else {
                std::fs::remove_file(e.path()).is_ok()
            }
        {
            removed += 1;
        }
    }
    removed
}

/// One image: skip it when `--resume` finds it done, else run the operation and record
/// the result in its sidecar (written after the output is in place).
fn run_job(
    op: &dyn BatchOp,
    job: &Job,
    resume: bool,
    progress: &BatchProgress,
    threads: usize,
) -> Outcome {
    let start = Instant::now();
    let options = op.options_fingerprint();
    let input_fp = sidecar::fingerprint(&job.input);
    let mut outcome = Outcome {
        input: job.input.clone(),
        output: job.output.clone(),
        status: Status::Skipped,
        seconds: 0.0,
        bytes_read: 0,
        bytes_written: 0,
        system: None,
        error: None,
    };
    if resume && sidecar::is_done(&job.output, op.name(), &options, &input_fp) {
        progress.finish_job(None);
        outcome.seconds = start.elapsed().as_secs_f64();
        return outcome;
    }
    let name = job.input.file_name().unwrap_or(job.input.as_os_str());
    let bar = progress.job(&name.to_string_lossy());
    let ctx = JobCtx {
        bar: bar.clone(),
        threads,
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        op.run(&job.input, &job.output, &ctx)
    }))
    .unwrap_or_else(|_| Err(anyhow::anyhow!("internal error: the operation panicked")));
    progress.finish_job(Some(&bar));
    outcome.seconds = start.elapsed().as_secs_f64();
    let mut sc = sidecar::Sidecar {
        subroot_version: sidecar::VERSION.into(),
        operation: op.name().into(),
        options,
        input: input_fp,
        output: sidecar::OutputInfo::new(&job.output),
        result: "ok".into(),
        error: None,
        seconds: outcome.seconds,
        bytes_read: 0,
        bytes_written: 0,
    };
    match result {
        Ok(stats) => {
            sc.bytes_read = stats.bytes_read;
            sc.bytes_written = stats.bytes_written;
            outcome.bytes_read = stats.bytes_read;
            outcome.bytes_written = stats.bytes_written;
            outcome.system = stats.system;
            sc.output.size = std::fs::metadata(&job.output).ok().map(|m| m.len());
            match sidecar::write(&job.output, &sc) {
                Ok(()) => outcome.status = Status::Ok,
                Err(e) => {
                    outcome.status = Status::Failed;
                    outcome.error = Some(format!(
                        "the output was written but its sidecar was not: {}",
                        error_line(&e)
                    ));
                }
            }
        }
        Err(e) => {
            let msg = error_line(&e);
            // An output of an earlier run no longer matches its input: remove it, so
            // the directory never holds an output whose sidecar says failed.
            if std::fs::symlink_metadata(&job.output).is_ok_and(|m| m.is_file()) {
                let _ = std::fs::remove_file(&job.output);
            }
            sc.result = "failed".into();
            sc.error = Some(msg.clone());
            outcome.status = Status::Failed;
            outcome.error = Some(match sidecar::write(&job.output, &sc) {
                Ok(()) => msg,
                Err(w) => format!(
                    "{msg} (and its sidecar was not written: {})",
                    error_line(&w)
                ),
            });
        }
    }
    outcome
}

/// The human line for one finished image (with `-v`).
fn human_line(o: &Outcome) -> String {
    match o.status {
        Status::Failed => format!(
            "subroot: {} failed: {}",
            o.input.display(),
            o.error.as_deref().unwrap_or("unknown error")
        ),
        Status::Skipped => format!(
            "{}: already done ({}), skipped",
            o.input.display(),
            o.output.display()
        ),
        Status::Ok => format!(
            "{} -> {} ({:.1}s, {} read, {} written)",
            o.input.display(),
            o.output.display(),
            o.seconds,
            crate::size::human(o.bytes_read),
            crate::size::human(o.bytes_written)
        ),
    }
}
