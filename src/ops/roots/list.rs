//! `subroot roots IMAGE`: the roots, the boot entries and the root each selects, the
//! default; as aligned text or JSON ([`super::survey::Survey`]).

use super::survey::{survey, Survey};
use crate::cli::roots::ListArgs;
use anyhow::{Context, Result};
use std::fmt::Write;

pub fn run(args: &ListArgs) -> Result<()> {
    let image = args.image.as_deref().context("IMAGE is required")?;
    let s = survey(image, args.format)?;
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&s)?)
    } else {
        text(&s)
    };
    crate::stdout::print(&text).context("cannot write to stdout")
}

/// Columns padded to their widest cell, two spaces apart, the last one unpadded.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let width: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut o = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = width[c]);
            }
        }
        o.push_str(line.trim_end());
        o.push('\n');
    }
    o
}

fn text(s: &Survey) -> String {
    let mut rows = vec![vec![
        "ROOT".to_string(),
        "DEFAULT".into(),
        "ENTRIES".into(),
        "OS".into(),
    ]];
    for r in &s.roots {
        rows.push(vec![
            r.name.clone(),
            if r.default { "*" } else { "" }.into(),
            r.entries.to_string(),
            r.pretty_name.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut o = table(&rows);
    if !s.entries.is_empty() {
        let mut rows = vec![vec![
            "BOOT ENTRY".to_string(),
            "ROOT".into(),
            "LOADER".into(),
            "CONFIG".into(),
        ]];
        for e in &s.entries {
            rows.push(vec![
                e.title.clone().unwrap_or_else(|| e.kernel.clone()),
                e.root.clone().unwrap_or_else(|| "/ (physical)".into()),
                e.loader.to_string(),
                e.config.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        o.push('\n');
        o.push_str(&table(&rows));
    }
    for n in &s.notes {
        let _ = writeln!(o, "note: {n}");
    }
    o
}
