//! Batch progress on a terminal: one line per running job plus an overall bar of images
//! (indicatif `MultiProgress`). Hidden when stderr is not a terminal or with `--quiet`.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// The bars of one batch run.
pub struct BatchProgress {
    multi: Option<MultiProgress>,
    overall: ProgressBar,
}

impl BatchProgress {
    /// Bars for `total` images, drawn only when stderr is a terminal and not `quiet`.
    pub fn new(total: u64, quiet: bool) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return BatchProgress {
                multi: None,
                overall: ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden()),
            };
        }
        let multi = MultiProgress::new();
        let overall = multi.add(ProgressBar::new(total));
        overall.set_style(
            ProgressStyle::with_template("{prefix:>24} [{bar:40}] {pos}/{len} images, eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        overall.set_prefix("total");
        BatchProgress {
            multi: Some(multi),
            overall,
        }
    }

    /// A line for a job on `name` (hidden when not drawing), above the overall bar.
    pub fn job(&self, name: &str) -> ProgressBar {
        let Some(multi) = &self.multi else {
            return ProgressBar::hidden();
        };
        let bar = multi.insert_before(&self.overall, ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>24} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let short: String = if name.chars().count() > 24 {
            let tail: Vec<char> = name.chars().rev().take(23).collect();
            std::iter::once('…').chain(tail.into_iter().rev()).collect()
        } else {
            name.to_string()
        };
        bar.set_prefix(short);
        bar
    }

    /// An image is done: remove its line (if it had one) and count it.
    pub fn finish_job(&self, bar: Option<&ProgressBar>) {
        if let Some(bar) = bar {
            bar.finish_and_clear();
            if let Some(multi) = &self.multi {
                multi.remove(bar);
            }
        }
        self.overall.inc(1);
    }

    /// Print a line above the bars (or plainly when there are none).
    pub fn println(&self, line: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    /// Remove the overall bar at the end.
    pub fn finish(&self) {
        self.overall.finish_and_clear();
    }
}
