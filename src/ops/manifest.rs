//! `subroot manifest`: one canonical line (or JSON object) per entry of a filesystem inside
//! an image, with every metadata field and the SHA-256 of file contents.

use crate::cli::read::ManifestArgs;
use crate::open::fstree::{open, resolve_path, shown};
use crate::Ctx;
use anyhow::{Context, Result};
use std::io::Write;
use subroot_formats::manifest::{manifest, ManifestOptions};
use subroot_formats::resolve::Last;

/// Run `subroot manifest`.
pub fn run(args: &ManifestArgs, ctx: &Ctx) -> Result<()> {
    let fs = open(&args.read, ctx)?;
    let root = resolve_path(&fs, args.path.as_deref(), Last::Follow)?.path;
    let opts = ManifestOptions {
        atime: !args.no_atime,
        ctime: !args.no_ctime,
        crtime: !args.no_crtime,
        flags: !args.no_flags,
        hash: !args.no_hash,
    };
    let mut out = crate::stdout::out();
    let mut werr: Option<std::io::Error> = None;
    let walked = manifest(fs.tree.source(), &root, opts, &mut |r| {
        let res = if args.json {
            let obj: serde_json::Map<String, serde_json::Value> = r
                .pairs()
                .map(|(k, v)| {
                    let v = if v == "-" {
                        serde_json::Value::Null
                    } else {
                        serde_json::Value::String(v.to_string())
                    };
                    (k.to_string(), v)
                })
                .collect();
            writeln!(out, "{}", serde_json::Value::Object(obj))
        } else {
            writeln!(out, "{}", r.line())
        };
        if let Err(e) = res {
            let text = e.to_string();
            werr = Some(e);
            return Err(subroot_formats::Error::InvalidArgument(format!(
                "writing to stdout: {text}"
            )));
        }
        Ok(())
    });
    if let Some(e) = werr {
        return Err(e).context("cannot write to stdout");
    }
    walked.with_context(|| format!("cannot read {} in {}", shown(&root), fs.name))?;
    out.flush().context("cannot write to stdout")?;
    fs.print_warnings();
    Ok(())
}
