//! What a batch run tells the user: one `--json` line per finished image on stdout, and
//! the final summary (every failure with its message) on stderr.

use crate::json::put_bytes;
use serde_json::{json, Map, Value};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// How one image ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Done now.
    Ok,
    /// Attempted and failed (no output).
    Failed,
    /// `--resume` found it already done.
    Skipped,
}

impl Status {
    /// The `status` value of the JSON line.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// One finished image.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub input: PathBuf,
    pub output: PathBuf,
    pub status: Status,
    pub seconds: f64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// See [`super::JobStats::system`].
    pub system: Option<Value>,
    pub error: Option<String>,
}

impl Outcome {
    /// The `--json` line (schema in docs/json.md).
    pub fn json_line(&self) -> String {
        let mut line = Map::new();
        put_bytes(&mut line, "input", self.input.as_os_str().as_bytes());
        put_bytes(&mut line, "output", self.output.as_os_str().as_bytes());
        let rest = json!({
            "status": self.status.name(),
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "error": self.error,
        });
        if let Some(system) = &self.system {
            line.insert("system".into(), system.clone());
        }
        if let Value::Object(rest) = rest {
            line.extend(rest);
        }
        Value::Object(line).to_string()
    }
}

/// Print `line` and a newline to stdout in one locked write (lines of parallel jobs never
/// interleave); a closed stdout is ignored (the sidecars still record everything).
pub fn print_stdout(line: &str) {
    let _ = crate::stdout::print(&format!("{line}\n"));
}

/// Counts of a finished run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub ok: usize,
    pub skipped: usize,
    pub failed: usize,
    pub not_started: usize,
}

impl Totals {
    /// Count `outcomes` out of `selected` images.
    pub fn of(outcomes: &[Outcome], selected: usize) -> Totals {
        let count = |s| outcomes.iter().filter(|o| o.status == s).count();
        Totals {
            ok: count(Status::Ok),
            skipped: count(Status::Skipped),
            failed: count(Status::Failed),
            not_started: selected.saturating_sub(outcomes.len()),
        }
    }

    /// The one-line summary.
    pub fn line(&self, op: &str) -> String {
        let mut s = format!(
            "batch {op}: {} done, {} skipped (already done), {} failed",
            self.ok, self.skipped, self.failed
        );
        if self.not_started > 0 {
            s.push_str(&format!(
                ", {} not started (--fail-fast stopped after the first failure)",
                self.not_started
            ));
        }
        s
    }
}
