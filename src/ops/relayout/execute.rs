//! Carrying out a relayout plan: rewrite each initrd with the hook (into the private work
//! directory), rebuild the root filesystem from the transformed tree with the input's
//! identity, splice it into the disk in place of the old one, and stream the disk into
//! the output image (temporary file + rename). The input is only read.

use super::plan::{Dev, Plan};
use super::transform::{Layout, NewContent, RelayoutTree};
use crate::cli::relayout::RelayoutArgs;
use crate::ops::write::{write_image, OutputSpec};
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, RawFile};
use subroot_formats::ext::writer::{build, BuildOptions, BuiltFs, Identity, Populate};
use subroot_formats::ext::ExtTree;
use subroot_formats::initrd::{add_subroot, AddSubrootOptions};
use subroot_formats::tools::E2fsprogs;

/// Everything the execution needs.
pub struct Job<'a> {
    pub plan: &'a Plan,
    pub layout: Layout,
    pub tree: &'a ExtTree<Dev>,
    pub disk: &'a Arc<dyn BlockDevice>,
    /// The root partition's (start, size), or `None` for a filesystem on the whole disk.
    pub root: Option<(u64, u64)>,
    pub output: &'a Path,
    pub args: &'a RelayoutArgs,
    pub work: &'a Path,
}

/// The modification time given to entries the hook adds to an initrd:
/// `SOURCE_DATE_EPOCH` when set, else 0 (reproducible output).
fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Rewrite every planned initrd; the layout then replaces their content.
fn rewrite_initrds(job: &mut Job, ctx: &Ctx) -> Result<()> {
    let opts = AddSubrootOptions {
        shared: job.plan.shared.clone(),
        compression: None,
        mtime: source_date_epoch(),
    };
    for (i, ip) in job.plan.initrds.iter().enumerate() {
        let src = RawFile::open(&ip.copy)?;
        let out_path = job.work.join(format!("initrd-{i}.new"));
        let f = std::fs::File::create(&out_path)
            .with_context(|| format!("cannot create {}", out_path.display()))?;
        let mut w = std::io::BufWriter::new(f);
        let outcome = add_subroot(&src, &mut w, &opts)
            .with_context(|| format!("cannot add the subroot hook to {}", ip.path))?;
        let f = w
            .into_inner()
            .map_err(|e| anyhow::anyhow!("cannot write {}: {}", out_path.display(), e.error()))?;
        f.sync_all().ok();
        let len = std::fs::metadata(&out_path)?.len();
        ctx.note(format_args!(
            "{}: {:?}, {} -> {} bytes",
            ip.path, outcome, ip.size, len
        ));
        let out = job.layout.output_path(&ip.input_path);
        job.layout.replaced.insert(
            out,
            NewContent::File {
                path: out_path,
                len,
            },
        );
    }
    Ok(())
}

/// Run the plan; a one-line summary.
pub fn execute(job: &Job, ctx: &Ctx) -> Result<String> {
    let mut job = Job {
        plan: job.plan,
        layout: job.layout.clone(),
        tree: job.tree,
        disk: job.disk,
        root: job.root,
        output: job.output,
        args: job.args,
        work: job.work,
    };
    rewrite_initrds(&mut job, ctx)?;
    let view = RelayoutTree::new(job.tree, &job.layout);
    let built = rebuild(&view, &job, ctx)?;
    let new_fs = built.open()?;
    let spec = OutputSpec {
        path: job.output,
        format: job.args.output_format,
        qcow2: &job.args.qcow2,
        force: job.args.force || job.args.in_place,
        quiet: ctx.quiet,
    };
    let stats = match job.root {
        Some((start, size)) => {
            if new_fs.len() != size {
                bail!(
                    "the rebuilt filesystem is {} bytes, the partition {size}",
                    new_fs.len()
                );
            }
            let spliced = subroot_formats::block::Splice::new(job.disk.clone(), start, new_fs)?;
            write_image(&spliced, &spec, "writing")?
        }
        None => write_image(&new_fs, &spec, "writing")?,
    };
    let _ = stats;
    Ok(format!(
        "relayouted {} into {} (/{}: {} entries moved, {} files edited, {} initrds with the hook)",
        job.plan.image,
        job.output.display(),
        job.plan.subroot,
        job.plan.moves.len(),
        job.plan.edits.len() + job.plan.installed.len(),
        job.plan.initrds.len()
    ))
}

/// Rebuild the root filesystem from `view` with the input's identity (UUID, label,
/// features, sizes, hash seed …) through the ext write engine; the image file lives in
/// the engine's temporary directory under the work directory until the returned value
/// is dropped.
fn rebuild(view: &RelayoutTree, job: &Job, ctx: &Ctx) -> Result<BuiltFs> {
    let tools = E2fsprogs::find(None).context("the ext write engine needs e2fsprogs")?;
    let identity =
        Identity::like(job.tree.fs()).context("cannot read the root filesystem's identity")?;
    let size = match job.root {
        Some((_, size)) => size,
        None => job.disk.len(),
    };
    let note = |step: &str| {
        if ctx.verbose > 0 {
            ctx.note(format_args!("rebuilding the root filesystem: {step}"));
        }
    };
    let opts = BuildOptions {
        size,
        identity,
        tools: &tools,
        temp_dir: Some(job.work),
        progress: Some(&note),
        populate: Populate::Auto,
    };
    build(view, b"", &opts).context("cannot rebuild the root filesystem")
}
