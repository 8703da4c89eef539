//! Carrying out a relayout plan: rewrite each initrd with the hook (into the private work
//! directory), rewrite the root filesystem (and a separate `/boot`) into the transformed
//! tree with the input's identity — edited in a copy or rebuilt, by the plan's engine —,
//! splice it into the disk in place of the old one, and stream the disk into the output
//! image (temporary file + rename). The input is only read.

use super::engine::Engine;
use super::plan::{Dev, Plan};
use super::request::RelayoutRequest;
use super::transform::{Layout, NewContent, RelayoutTree};
use crate::cli::ImageFormatArg;
use crate::ops::write::{write_image, OutputSpec};
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::Arc;
use subroot_e2fs::tools::E2fsprogs;
use subroot_e2fs::writer::{build, edit_copy, BuildOptions, BuiltFs, EditOptions, Identity};
use subroot_formats::block::{BlockDevice, RawFile};
use subroot_formats::ext::ExtTree;
use subroot_formats::initrd::{add_subroot, AddSubrootOptions, Method};
use subroot_formats::qcow2::WriteStats;

/// Everything the execution needs.
pub struct Job<'a> {
    pub plan: &'a Plan,
    pub layout: Layout,
    /// The engine the plan chose (an edit may still fall back to the rebuild when the
    /// request leaves the engine to subroot).
    pub engine: Engine,
    pub tree: &'a ExtTree<Dev>,
    pub disk: &'a Arc<dyn BlockDevice>,
    /// The output's format (asked for, or the input's).
    pub format: ImageFormatArg,
    /// The root partition's (start, size), or `None` for a filesystem on the whole disk.
    pub root: Option<(u64, u64)>,
    /// The separate `/boot` partition, rewritten too.
    pub boot: Option<BootJob<'a>>,
    /// Files to edit on FAT EFI system partitions.
    pub esp_edits: &'a [super::esp::EspEdit],
    pub output: &'a Path,
    pub req: &'a RelayoutRequest,
    pub work: &'a Path,
    /// The e2fsprogs both engines run (found once by the caller).
    pub tools: &'a E2fsprogs,
}

/// A separate `/boot` partition to rewrite.
pub struct BootJob<'a> {
    pub layout: Layout,
    pub tree: &'a ExtTree<Dev>,
    pub start: u64,
    pub size: u64,
}

/// Rewrite every planned initrd; the layout then replaces their content.
fn rewrite_initrds(job: &mut Job, ctx: &Ctx) -> Result<()> {
    // The plan refused an initrd that has the hook unless told to go on: replace it then.
    let opts = AddSubrootOptions {
        shared: job.plan.shared.clone(),
        method: Method::Append,
        replace: true,
        // Reproducible: SOURCE_DATE_EPOCH when set, else 0.
        mtime: crate::ops::source_date_epoch()?.unwrap_or(0),
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
            "{}: {outcome}, {} -> {} bytes",
            ip.path, ip.size, len
        ));
        let new = NewContent::File {
            path: out_path,
            len,
        };
        match (&mut job.boot, ip.partition) {
            (Some(b), Some(_)) => {
                b.layout.replaced.insert(ip.input_path.clone(), new);
            }
            _ => {
                let out = job.layout.output_path(&ip.input_path);
                job.layout.replaced.insert(out, new);
            }
        }
    }
    Ok(())
}

/// What [`execute`] did.
pub struct Done {
    /// A one-line summary.
    pub summary: String,
    /// The output's write statistics.
    pub stats: WriteStats,
    /// The filesystems whose edit failed and that were rebuilt instead.
    pub fell_back: Vec<FellBack>,
}

/// A filesystem rebuilt because editing it in place turned out impossible.
pub struct FellBack {
    /// Its partition (`None`: the whole disk).
    pub partition: Option<u32>,
    /// Why, naming the filesystem.
    pub reason: String,
}

/// Run the plan.
pub fn execute(mut job: Job, ctx: &Ctx) -> Result<Done> {
    rewrite_initrds(&mut job, ctx)?;
    let view = RelayoutTree::new(job.tree, &job.layout);
    let size = match job.root {
        Some((_, size)) => size,
        None => job.disk.len(),
    };
    let may_fall_back = job.req.engine.is_none();
    let mut fell_back = Vec::new();
    let (built, why) = Rewrite {
        view: &view,
        layout: &job.layout,
        input: job.tree,
        size,
        what: "the root filesystem",
        tools: job.tools,
    }
    .run(job.engine, may_fall_back, job.work, ctx)?;
    let root_partition = job.plan.root_partition;
    fell_back.extend(why.map(|reason| FellBack {
        partition: root_partition,
        reason,
    }));
    let new_fs = built.open()?;
    // The disk with the separate /boot rewritten (same identity, edited files replaced).
    let mut disk: Arc<dyn BlockDevice> = job.disk.clone();
    let mut _boot_built = None;
    if let Some(b) = &job.boot {
        let view = RelayoutTree::new(b.tree, &b.layout);
        let (built, why) = Rewrite {
            view: &view,
            layout: &b.layout,
            input: b.tree,
            size: b.size,
            what: "the /boot filesystem",
            tools: job.tools,
        }
        .run(job.engine, may_fall_back, job.work, ctx)?;
        let boot_partition = job.plan.boot_partition.as_ref().map(|b| b.partition);
        fell_back.extend(why.map(|reason| FellBack {
            partition: boot_partition,
            reason,
        }));
        let fs = built.open()?;
        if fs.len() > b.size {
            bail!(
                "the new /boot filesystem is {} bytes, the partition {}",
                fs.len(),
                b.size
            );
        }
        disk = Arc::new(subroot_formats::block::Splice::new(disk, b.start, fs)?);
        _boot_built = Some(built);
    }
    // ESP boot configuration, edited in scratch copies (kept until the output is written).
    let (disk, _esp_scratch) = super::esp::apply(disk, job.esp_edits, job.output)?;
    let spec = OutputSpec {
        path: job.output,
        format: job.format,
        qcow2: &job.req.qcow2,
        force: job.req.replace_output,
        quiet: ctx.quiet,
    };
    let stats = match job.root {
        Some((start, size)) => {
            if new_fs.len() > size {
                bail!(
                    "the new filesystem is {} bytes, the partition {size}",
                    new_fs.len()
                );
            }
            let spliced = subroot_formats::block::Splice::new(disk, start, new_fs)?;
            write_image(&spliced, &spec, "writing")?
        }
        // A filesystem on the whole disk: spliced at 0, so the output keeps the input's
        // length even when the filesystem is shorter than the disk.
        None => {
            let spliced = subroot_formats::block::Splice::new(disk, 0, new_fs)?;
            write_image(&spliced, &spec, "writing")?
        }
    };
    let mut boot = job.plan.boot_partition.as_ref().map_or(String::new(), |b| {
        format!("; /boot partition {} rewritten", b.partition)
    });
    if !job.esp_edits.is_empty() {
        boot.push_str(&format!("; {} ESP file(s) edited", job.esp_edits.len()));
    }
    let engine = if fell_back.is_empty() {
        job.engine
    } else {
        Engine::Rebuild
    };
    Ok(Done {
        summary: format!(
            "relayouted {} into {} (/{}: {} entries moved, {} files edited, {} initrds with the hook{boot}; engine {})",
            job.plan.image,
            job.output.display(),
            job.plan.subroot,
            job.plan.moves.len(),
            job.plan.edits.len() + job.plan.installed.len(),
            job.plan.initrds.len(),
            engine.name()
        ),
        stats,
        fell_back,
    })
}

/// One filesystem to rewrite: `what` ("the root filesystem") becomes `view`, the input
/// `input` transformed by `layout`, in a partition of `size` bytes.
struct Rewrite<'a> {
    view: &'a RelayoutTree<'a>,
    layout: &'a Layout,
    input: &'a ExtTree<Dev>,
    size: u64,
    what: &'a str,
    tools: &'a E2fsprogs,
}

/// A progress callback noting each step (with `-v`) as "`doing` `what`: step".
fn step_notes<'a>(ctx: &'a Ctx, doing: &'a str, what: &'a str) -> impl Fn(&str) + 'a {
    move |step: &str| {
        if ctx.verbose > 0 {
            ctx.note(format_args!("{doing} {what}: {step}"));
        }
    }
}

impl Rewrite<'_> {
    /// Carry it out with `engine`: edited in a copy, or rebuilt. An edit that turns out
    /// impossible is rebuilt instead when `may_fall_back` (the engine was left to
    /// subroot); the reason is returned then.
    fn run(
        &self,
        engine: Engine,
        may_fall_back: bool,
        work: &Path,
        ctx: &Ctx,
    ) -> Result<(BuiltFs, Option<String>)> {
        let what = self.what;
        if engine == Engine::Rebuild {
            return Ok((rebuild(self, work, ctx)?, None));
        }
        let note = step_notes(ctx, "editing", what);
        let ops = super::engine::ops(self.layout, work)?;
        let opts = EditOptions {
            tools: self.tools,
            temp_dir: Some(work),
            progress: Some(&note),
        };
        match edit_copy(self.input.fs().device(), &ops, self.view, &opts) {
            Ok(b) => Ok((b, None)),
            // What only the edit itself finds out (an input e2fsck already finds fault
            // with): `auto` rebuilds, as for the blockers the plan saw.
            Err(e @ subroot_e2fs::Error::CannotEditInPlace(_)) if may_fall_back => {
                ctx.note(format_args!(
                    "{what} cannot be edited in place ({e}); rebuilding it instead"
                ));
                let reason = format!("{what}: {e}");
                Ok((rebuild(self, work, ctx)?, Some(reason)))
            }
            Err(e @ subroot_e2fs::Error::CannotEditInPlace(_)) => Err(anyhow::Error::from(e)
                .context(format!(
                    "{what} cannot be edited in place; use --engine rebuild"
                ))),
            Err(e) => Err(anyhow::Error::from(e).context(format!("cannot edit {what} in place"))),
        }
    }
}

/// Rebuild `r`'s filesystem from its view with the identity of its input (UUID, label,
/// features, sizes, hash seed …) through the ext write engine; the image file lives in
/// the engine's temporary directory under `work` until the returned value is dropped.
fn rebuild(r: &Rewrite, work: &Path, ctx: &Ctx) -> Result<BuiltFs> {
    let what = r.what;
    let identity =
        Identity::like(r.input.fs()).with_context(|| format!("cannot read {what}'s identity"))?;
    let note = step_notes(ctx, "rebuilding", what);
    let opts = BuildOptions {
        size: r.size,
        identity,
        tools: r.tools,
        temp_dir: Some(work),
        progress: Some(&note),
        populate: crate::e2fsprogs::populate()?,
    };
    build(r.view, b"", &opts).with_context(|| format!("cannot rebuild {what}"))
}
