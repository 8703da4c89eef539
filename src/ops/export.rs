//! `subroot export`: write a filesystem (or a subtree) inside an image as a POSIX pax tar
//! archive with every fidelity field (ns times, xattrs, ACLs, capabilities, hard links,
//! devices, sparse files), to a file (atomically) or to stdout.

use crate::cli::read::ExportArgs;
use crate::open::fstree::{open, resolve_path, shown};
use crate::output::AtomicOutput;
use crate::progress::bytes_bar;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::io::{IsTerminal, Write};
use subroot_formats::manifest::escape;
use subroot_formats::resolve::Last;
use subroot_formats::tar::{write_tree, TarSummary};

/// Run `subroot export`.
pub fn run(args: &ExportArgs, ctx: &Ctx) -> Result<()> {
    let fs = open(&args.read, ctx)?;
    // Fails, before any output is created, when the path does not exist.
    let root = resolve_path(&fs, args.path.as_deref(), Last::Follow)?.path;
    let bar = bytes_bar(fs.tree.used_bytes(), "export", ctx.quiet);
    let mut progress = |n: u64| bar.set_position(n);
    let what = || format!("cannot export {} from {}", shown(&root), fs.name);
    let summary = if args.output.as_os_str() == "-" {
        let stdout = std::io::stdout();
        if stdout.is_terminal() {
            bail!("refusing to write a tar archive to a terminal; redirect stdout or use -o FILE");
        }
        let out = crate::stdout::out();
        let (mut out, s) =
            write_tree(fs.tree.source(), &root, out, &mut progress).with_context(what)?;
        out.flush().context("cannot write to stdout")?;
        s
    } else {
        let dest = AtomicOutput::create(&args.output, args.force)?;
        let out = std::io::BufWriter::with_capacity(1 << 20, dest.file());
        let (out, s) =
            write_tree(fs.tree.source(), &root, out, &mut progress).with_context(what)?;
        out.into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", args.output.display()))?;
        dest.commit()?;
        s
    };
    bar.finish_and_clear();
    report(&summary, ctx);
    fs.print_warnings();
    Ok(())
}

fn report(s: &TarSummary, ctx: &Ctx) {
    ctx.note(format_args!(
        "exported {} entries ({} bytes of file data, archive {} bytes)",
        s.entries, s.data_bytes, s.bytes
    ));
    if !s.skipped_sockets.is_empty() {
        let names: Vec<String> = s
            .skipped_sockets
            .iter()
            .map(|p| format!("/{}", escape(p)))
            .collect();
        ctx.note(format_args!(
            "skipped {} socket(s), which tar cannot hold: {}",
            names.len(),
            names.join(" ")
        ));
    }
}
