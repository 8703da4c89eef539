//! `subroot man`: one roff page carrying the whole reference. clap_mangen renders the top
//! of the page (name, synopsis, description, global options); every command's long
//! `--help` (its reference, options and examples) follows under COMMANDS, as preformatted
//! text, so the page says exactly what `subroot CMD --help` says.

use super::Cli;
use clap::CommandFactory;
use std::io::{self, Write};

/// The width the command sections are laid out for (an 80-column man page, less its margins).
const WIDTH: usize = 72;

/// Write the man page to `w`.
pub fn render(w: &mut dyn Write) -> io::Result<()> {
    let mut cmd = Cli::command().term_width(WIDTH);
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    writeln!(w, ".SH COMMANDS")?;
    for sub in visible_subcommands(&cmd) {
        command_section(w, sub)?;
    }
    if let Some(after) = cmd.get_after_long_help().or(cmd.get_after_help()) {
        sections(w, &after.to_string())?;
    }
    man.render_version_section(w)
}

/// The commands a user can run, depth-first (`batch`, then `batch convert`, ...), without
/// clap's generated `help`.
pub fn visible_subcommands(cmd: &clap::Command) -> Vec<&clap::Command> {
    let mut out = Vec::new();
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        out.push(sub);
        out.extend(visible_subcommands(sub));
    }
    out
}

/// One command: a sub-heading with its full invocation, then its long help as printed.
fn command_section(w: &mut dyn Write, sub: &clap::Command) -> io::Result<()> {
    let name = sub.get_bin_name().unwrap_or(sub.get_name());
    writeln!(w, ".SS \"{}\"", escape(name))?;
    let help = sub.clone().term_width(WIDTH).render_long_help().to_string();
    preformatted(w, &help)
}

/// Text laid out as `HEADING:` lines followed by their bodies, as `.SH` sections.
fn sections(w: &mut dyn Write, text: &str) -> io::Result<()> {
    let mut body = String::new();
    for line in text.lines() {
        let is_heading = !line.starts_with(' ')
            && line.ends_with(':')
            && line.chars().any(|c| c.is_ascii_uppercase())
            && !line.chars().any(|c| c.is_ascii_lowercase());
        if is_heading {
            preformatted(w, &body)?;
            body.clear();
            writeln!(w, ".SH \"{}\"", escape(line.trim_end_matches(':')))?;
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    preformatted(w, &body)
}

/// Lines kept exactly as they are (no filling, no hyphenation).
fn preformatted(w: &mut dyn Write, text: &str) -> io::Result<()> {
    let text = text.trim_matches('\n');
    if text.is_empty() {
        return Ok(());
    }
    writeln!(w, ".nf")?;
    for line in text.lines() {
        if line.trim().is_empty() {
            writeln!(w)?;
        } else {
            writeln!(w, "{}", escape(line))?;
        }
    }
    writeln!(w, ".fi")
}

/// Escape a line for roff: backslashes, hyphens and non-ASCII characters, and a leading
/// `.` or `'` that would make it a request.
fn escape(line: &str) -> String {
    let mut s = String::with_capacity(line.len());
    for c in line.chars() {
        match c {
            '\\' => s.push_str("\\e"),
            '-' => s.push_str("\\-"),
            c if c.is_ascii() => s.push(c),
            c => s.push_str(&format!("\\[u{:04X}]", u32::from(c))),
        }
    }
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}
