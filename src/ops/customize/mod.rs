//! `subroot customize`: change an installed system in an image without booting it, as
//! virt-customize does with a VM — files (`--write`, `--upload`, `--edit`, `--chown`...)
//! and system settings (`--hostname`, `--password`, `--ssh-inject`, `--firstboot`,
//! `--sysprep`), in the order given, in one pass.
//!
//! - [`op`]: the operations as plain values (parsed by `crate::cli::customize`).
//! - [`installed`]: the image's system opened: filesystems, root, subroot, fstab mounts.
//! - [`namespace`]: OS paths resolved across mounts and symlinks, with what the run
//!   changes so far (and the read-only [`op::Guest`] system operations look at).
//! - [`system`]: system operations expanded into file operations.
//! - [`plan`]: each file operation checked and turned into changes per filesystem.
//! - [`apply`]: the changes made on one overlay, then delivered like every edit.

pub mod apply;
pub mod installed;
pub mod namespace;
pub mod op;
pub mod plan;
pub mod system;

use crate::cli::customize::CustomizeArgs;
use crate::edit::deliver::{deliver, DestinationArgs, Edit};
use crate::Ctx;
use anyhow::{Context, Result};
use installed::Installed;
use namespace::Namespace;
use op::Operation;
use plan::{Planned, Planner};
use serde::Serialize;
use subroot_formats::tree::Timestamp;

/// The run's clock: `SOURCE_DATE_EPOCH` when set, else now.
fn now() -> Result<Timestamp> {
    if let Some(t) = crate::clock::source_date_epoch()? {
        return Ok(Timestamp {
            sec: t as i64,
            nsec: 0,
        });
    }
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok(Timestamp {
        sec: d.as_secs() as i64,
        nsec: d.subsec_nanos(),
    })
}

pub fn run(args: &CustomizeArgs, operations: Vec<Operation>, ctx: &Ctx) -> Result<()> {
    let dest = if args.dry_run {
        None
    } else {
        Some(
            DestinationArgs {
                output: args.output.as_deref(),
                overlay: args.overlay.as_deref(),
                in_place: args.in_place,
                image: crate::cli::output::output_options(args.output_format, &args.qcow2),
                force: args.force,
            }
            .destination(&args.image)?,
        )
    };
    let sys = Installed::open(&args.image, args.root.as_deref())?;
    // Operations are planned in the order given; a system operation is expanded against
    // the namespace as planned so far (the image plus every earlier operation's changes).
    let clock = now()?;
    let mut expander = system::Expander::new(system::Context {
        now: u64::try_from(clock.sec).unwrap_or(0),
    });
    let mut planner = Planner::new(Namespace::new(&sys), clock);
    let mut planned = Vec::new();
    for op in operations {
        match op {
            Operation::File(f) => planned.push(planner.plan(&f)?),
            Operation::System(s) => {
                let label = plan::describe_system(&s);
                let file_ops = expander
                    .expand(&s, &planner.ns)
                    .with_context(|| format!("cannot plan --{label}"))?;
                for f in &file_ops {
                    let mut p = planner.plan(f)?;
                    p.operation = format!("{} (for --{label})", p.operation);
                    planned.push(p);
                }
            }
        }
    }
    let report = Report::new(&sys, &planned);
    if let Some(dest) = dest {
        let steps: Vec<_> = planned.into_iter().flat_map(|p| p.steps).collect();
        let overlay = apply::apply(&sys, &steps, args.verify, ctx)?;
        let edit = Edit {
            input: &sys.image,
            input_format: sys.format,
            edited: &*overlay,
            changed: overlay.changed(),
        };
        deliver(&edit, &dest, ctx)?;
    }
    // After a run, the plan says what was done.
    if args.json {
        crate::stdout::print(&format!("{}\n", serde_json::to_string_pretty(&report)?))
            .context("cannot write to stdout")?;
    } else if args.dry_run {
        crate::stdout::print(&report.text()).context("cannot write to stdout")?;
    }
    Ok(())
}

/// The plan, as `--dry-run` and `--json` show it (documented in docs/json.md).
#[derive(Debug, Serialize)]
pub struct Report {
    pub image: String,
    /// The partition holding the root filesystem (`null`: the whole disk).
    pub root_partition: Option<u32>,
    /// The subroot the system lives in (`r0`), `null` when not relayouted.
    pub subroot: Option<String>,
    pub operations: Vec<OpReport>,
}

#[derive(Debug, Serialize)]
pub struct OpReport {
    pub operation: String,
    pub changes: Vec<ChangeReport>,
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ChangeReport {
    /// The partition the path lands on (`null`: the whole disk).
    pub partition: Option<u32>,
    /// Its filesystem type (`ext4`, `vfat`...).
    pub filesystem: String,
    /// The path inside that filesystem.
    pub path: String,
    pub action: &'static str,
    pub detail: String,
}

impl Report {
    fn new(sys: &Installed, planned: &[Planned]) -> Report {
        Report {
            image: sys.image.display().to_string(),
            root_partition: sys.partition(sys.root),
            subroot: (!sys.subroot.is_empty())
                .then(|| String::from_utf8_lossy(&sys.subroot).into_owned()),
            operations: planned
                .iter()
                .map(|p| OpReport {
                    operation: p.operation.clone(),
                    changes: p
                        .steps
                        .iter()
                        .map(|s| ChangeReport {
                            partition: sys.partition(s.fs),
                            filesystem: sys.kind(s.fs).unwrap_or("").to_string(),
                            path: format!("/{}", String::from_utf8_lossy(s.change.path())),
                            action: s.change.action(),
                            detail: s.change.detail(),
                        })
                        .collect(),
                    note: p.note.clone(),
                })
                .collect(),
        }
    }

    fn text(&self) -> String {
        let mut out = format!(
            "{}: root on {}{}\n",
            self.image,
            self.root_partition
                .map_or("the whole disk".into(), |n| format!("partition {n}")),
            self.subroot
                .as_ref()
                .map_or(String::new(), |s| format!(", in /{s}"))
        );
        for op in &self.operations {
            out.push_str(&format!("--{}\n", op.operation));
            for c in &op.changes {
                let place = c
                    .partition
                    .map_or("disk".into(), |n| format!("partition {n}"));
                out.push_str(&format!(
                    "    {place} ({}) {} {}: {}\n",
                    c.filesystem, c.action, c.path, c.detail
                ));
            }
            if let Some(n) = &op.note {
                out.push_str(&format!("    nothing to do: {n}\n"));
            }
        }
        out
    }
}
