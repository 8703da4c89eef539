//! `subroot initrd examine`: the segments of an initrd (offset, length, compression,
//! archives, entries, uncompressed size, xz integrity check, role: early, main, the
//! segment subroot appended), its flavour and whether the subroot hook is present; as a
//! table or as JSON (schema in docs/json.md).

use super::open_input;
use crate::cli::ExamineArgs;
use crate::Ctx;
use anyhow::{Context, Result};
use serde::Serialize;
use std::io::Write;
use subroot_formats::initrd::scan::{scan_with, Depth};

/// The `examine --json` document.
#[derive(Debug, Serialize)]
pub struct InitrdInfo {
    pub path: String,
    pub size: u64,
    pub flavour: &'static str,
    pub hook_present: bool,
    pub segments: Vec<SegmentInfo>,
    pub warnings: Vec<String>,
}

/// One segment in the `examine --json` document.
#[derive(Debug, Serialize)]
pub struct SegmentInfo {
    pub index: usize,
    pub offset: u64,
    pub length: u64,
    pub compression: &'static str,
    pub archives: u32,
    pub entries: u64,
    pub uncompressed_size: u64,
    /// For xz: "none", "crc32", "crc64", "sha256"; `null` otherwise.
    pub xz_check: Option<&'static str>,
    /// "early", "main", "subroot-hook" (appended by `add-subroot`) or "extra".
    pub role: &'static str,
}

pub fn run(args: &ExamineArgs, ctx: &Ctx) -> Result<()> {
    let input = open_input(&args.input, ctx)?;
    // Every segment decoded to its end: the entry counts and sizes shown are whole, and
    // damage anywhere is reported.
    let sc = scan_with(&input.dev, Depth::Full)
        .with_context(|| format!("cannot read the initrd {}", input.name))?;
    let mut warnings = Vec::new();
    let segments: Vec<SegmentInfo> = sc
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if let Some(c) = s.xz_check.filter(|c| !c.kernel_verifies()) {
                warnings.push(format!(
                    "segment {i} (xz at offset {}) uses the {} integrity check, which the kernel \
                     cannot verify: it refuses to unpack it (recompress with xz --check=crc32)",
                    s.offset,
                    c.name()
                ));
            }
            SegmentInfo {
                index: i,
                offset: s.offset,
                length: s.length,
                compression: s.compression.name(),
                archives: s.archives,
                entries: s.entries,
                uncompressed_size: s.uncompressed_size,
                xz_check: s.xz_check.map(|c| c.name()),
                role: sc.role(i).name(),
            }
        })
        .collect();
    let info = InitrdInfo {
        path: input.name.clone(),
        size: input.dev.len(),
        flavour: sc.flavour().name(),
        hook_present: sc.hook_present(),
        segments,
        warnings,
    };
    for w in &info.warnings {
        eprintln!("subroot: warning: {}: {w}", info.path);
    }
    let mut o = crate::stdout::out();
    if args.json {
        writeln!(o, "{}", serde_json::to_string_pretty(&info)?)?;
        o.flush()?;
        return Ok(());
    }
    writeln!(
        o,
        "{}: {} bytes, {} segment(s), flavour {}, subroot hook {}",
        info.path,
        info.size,
        info.segments.len(),
        info.flavour,
        if info.hook_present {
            "present"
        } else {
            "absent"
        }
    )?;
    writeln!(
        o,
        "{:>3}  {:>10}  {:>10}  {:<11}  {:>8}  {:>7}  {:>12}  ROLE",
        "#", "OFFSET", "LENGTH", "COMPRESSION", "ARCHIVES", "ENTRIES", "UNCOMPRESSED"
    )?;
    for s in &info.segments {
        let comp = match s.xz_check {
            Some(c) => format!("{}/{c}", s.compression),
            None => s.compression.to_string(),
        };
        writeln!(
            o,
            "{:>3}  {:>10}  {:>10}  {:<11}  {:>8}  {:>7}  {:>12}  {}",
            s.index, s.offset, s.length, comp, s.archives, s.entries, s.uncompressed_size, s.role
        )?;
    }
    o.flush()?;
    Ok(())
}
