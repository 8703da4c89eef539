//! `subroot extract`: a filesystem (or a subtree) inside an image into a host directory,
//! through the safe host-directory writer (`subroot_formats::hostdir::extract`: every
//! operation relative to an open directory, no symlink ever followed, nothing written
//! outside the destination). As non-root, what cannot be restored (ownership, device
//! nodes, privileged xattrs) is skipped and reported: one summary line and the first few
//! items by name on stderr, every item in the `--report` file (JSON Lines).

use crate::cli::read::ExtractArgs;
use crate::json::put_bytes;
use crate::open::fstree::{open, resolve_path, shown};
use crate::output::AtomicOutput;
use crate::Ctx;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;
use subroot_formats::hostdir::{extract_reporting, ExtractOptions, ExtractSummary, Skipped};
use subroot_formats::resolve::Last;

/// Items named on stderr without -v (with -v: all the summary keeps).
const NAMED_ON_STDERR: usize = 5;

/// Run `subroot extract`.
pub fn run(args: &ExtractArgs, ctx: &Ctx) -> Result<()> {
    let fs = open(&args.read, ctx)?;
    // Fails, before anything is created, when the path does not exist.
    let root = resolve_path(&fs, args.path.as_deref(), Last::Follow)?.path;
    let dest = &args.dir;
    let report = match &args.report {
        Some(p) => Some(AtomicOutput::create(p, args.force)?),
        None => None,
    };
    let mut writer = report.as_ref().map(|o| std::io::BufWriter::new(o.file()));
    std::fs::create_dir_all(dest)
        .with_context(|| format!("cannot create the directory {}", dest.display()))?;
    let mut sink = |s: Skipped| -> subroot_formats::Result<()> {
        if let Some(w) = writer.as_mut() {
            writeln!(w, "{}", report_line(&s))
                .map_err(|e| subroot_formats::Error::io("writing the report", e))?;
        }
        Ok(())
    };
    let sum = extract_reporting(
        fs.tree.source(),
        &root,
        dest,
        &ExtractOptions::default(),
        &mut sink,
    )
    .with_context(|| {
        format!(
            "cannot extract {} from {} into {}",
            shown(&root),
            fs.name,
            dest.display()
        )
    })?;
    if let (Some(w), Some(path)) = (writer, &args.report) {
        w.into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(out) = report {
        out.commit()?;
    }
    ctx.note(format_args!(
        "{}: extracted {} entries ({} bytes of file data) into {}",
        fs.name,
        sum.entries,
        sum.bytes,
        dest.display()
    ));
    print_skipped(&sum, args.report.as_deref(), ctx);
    fs.print_warnings();
    Ok(())
}

/// Say what an extraction left out, even with -q (leaving metadata out must never be
/// silent): the summary line, then the first items by path and name (all that the summary
/// keeps with -v), then where the full list is or how to get it.
pub fn print_skipped(sum: &ExtractSummary, report: Option<&Path>, ctx: &Ctx) {
    let Some(line) = sum.one_line() else {
        return;
    };
    eprintln!("subroot: {line}");
    let shown = if ctx.verbose > 0 {
        sum.first_problems.len()
    } else {
        NAMED_ON_STDERR.min(sum.first_problems.len())
    };
    for p in &sum.first_problems[..shown] {
        eprintln!("subroot:   {p}");
    }
    let total = sum.skipped_devices + sum.skipped_xattrs + sum.skipped_other;
    let rest = total.saturating_sub(shown as u64);
    match report {
        Some(r) => eprintln!("subroot:   every item is listed in {}", r.display()),
        None if rest > 0 || sum.skipped_owners > 0 => eprintln!(
            "subroot:   {}--report FILE lists every item",
            if rest > 0 {
                format!("{rest} more not named here; ")
            } else {
                String::new()
            }
        ),
        None => {}
    }
}

/// One `--report` line: `path` (relative to the destination), `what`, `xattr` for
/// attributes, `reason`; names that are not UTF-8 as `*_bytes` (see [`crate::json`]).
fn report_line(s: &Skipped) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    put_bytes(&mut o, "path", &s.path);
    o.insert("what".into(), s.kind.word().into());
    if let Some(x) = &s.xattr {
        put_bytes(&mut o, "xattr", x);
    }
    o.insert("reason".into(), s.reason.clone().into());
    serde_json::Value::Object(o)
}
