//! What a relayout is asked to do, as a plain value: made from the command line in one
//! place (`TryFrom<&RelayoutArgs>` in `src/cli/relayout.rs`) or built directly by
//! `batch relayout`.

use super::plan::PlanOptions;
use crate::edit::engine::Engine;
use crate::edit::output_options::OutputOptions;
use crate::open::select::Which;
use anyhow::{bail, Result};
use std::path::PathBuf;

/// One relayout.
#[derive(Debug, Clone)]
pub struct RelayoutRequest {
    /// The installed Linux image (never modified unless it is also the output).
    pub input: PathBuf,
    /// Which filesystem of the input is the root, and the input's format.
    pub part: Which,
    /// A new image to write (`-o`).
    pub output: Option<PathBuf>,
    /// A qcow2 overlay to write, backed by the input (`--overlay`).
    pub overlay: Option<PathBuf>,
    /// Change the input itself (`--in-place`). Exactly one of the three unless a dry run.
    pub in_place: bool,
    /// Replace OUT when it exists.
    pub replace_output: bool,
    /// How much the edit engine's result is checked.
    pub verify: crate::edit::full_check::Verify,
    /// Print the plan and write nothing.
    pub dry_run: bool,
    /// Print the plan as JSON (after the work, with the engine actually used).
    pub json: bool,
    /// The subroot, the shared directories, what moves (checked).
    pub plan: PlanOptions,
    /// The engine asked for; `None`: edit when the filesystem allows, else rebuild.
    pub engine: Option<Engine>,
    /// The new image's format (`None`: the input's) and qcow2 options.
    pub image_options: OutputOptions,
    /// The private work directory to create and remove afterwards; `None`: a fresh one
    /// under $TMPDIR.
    pub work_dir: Option<PathBuf>,
}

impl PlanOptions {
    /// The plan options from their command-line spellings (`--subroot`, `--shared`,
    /// `--move` as given, comma- or space-separated), checked.
    pub fn new(
        subroot: &str,
        shared: &[String],
        move_list: Option<&str>,
        refresh_hook: bool,
    ) -> Result<PlanOptions> {
        let opts = PlanOptions {
            subroot: subroot.trim_matches('/').to_string(),
            shared: shared.iter().filter(|s| !s.is_empty()).cloned().collect(),
            move_list: parse_move_list(move_list)?,
            refresh_hook,
        };
        super::plan::check_options(&opts)?;
        Ok(opts)
    }
}

/// Parse `--move`'s list (comma- or space-separated); `None` when not given.
fn parse_move_list(m: Option<&str>) -> Result<Option<Vec<String>>> {
    let Some(m) = m else { return Ok(None) };
    let list: Vec<String> = m
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if list.is_empty() {
        bail!("--move needs at least one name");
    }
    Ok(Some(list))
}
