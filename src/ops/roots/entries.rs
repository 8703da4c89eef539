//! Boot entries per root (`roots default --entry`): a copy of a system's default boot
//! entry whose kernel command line says `subroot=rN`, so the boot menu offers each root.
//!
//! - GRUB: the first top-level `menuentry { … }` block of `grub.cfg` is copied to the end
//!   of the file, titled `TITLE (subroot rN)`, with the menu entry id `subroot-rN`;
//!   a file that already has that id keeps it.
//! - Boot Loader Specification: `loader/entries/X.conf` is copied to
//!   `X.subroot-rN.conf`, titled likewise.
//!
//! [`remove_grub_entries`] and [`is_root_entry_file`] recognise them again (for
//! `relayout --undo`).

use crate::ops::relayout::bootcfg::{edit_bls_entry, edit_grub_cfg, LineChange, ParamEdit};

/// The menu entry id of root `root`'s GRUB entry.
fn grub_id(root: &str) -> String {
    format!("subroot-{root}")
}

/// The line range `[start, end]` (0-based, inclusive) of the first top-level
/// `menuentry` block of `lines`.
fn first_menuentry(lines: &[&str]) -> Option<(usize, usize)> {
    let mut depth = 0i32;
    let mut start = None;
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim();
        if depth == 0 && start.is_none() && t.starts_with("menuentry") && t.ends_with('{') {
            start = Some(i);
        }
        if t.ends_with('{') {
            depth += 1;
        } else if t == "}" {
            depth -= 1;
            if depth == 0 {
                if let Some(s) = start {
                    return Some((s, i));
                }
            }
        }
    }
    None
}

/// The `menuentry` line retitled `TITLE (subroot ROOT)` with the id `subroot-ROOT`.
fn retitle_menuentry(line: &str, root: &str) -> String {
    let body = line.trim_start();
    let indent = &line[..line.len() - body.len()];
    let rest = body["menuentry".len()..].trim_start();
    let (title, after) = match rest.chars().next() {
        Some(q @ ('\'' | '"')) => match rest[1..].find(q) {
            Some(end) => (&rest[1..=end], &rest[end + 2..]),
            None => (rest, ""),
        },
        _ => {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        }
    };
    let title = title.replace('\'', "");
    // The id: replace the argument of `$menuentry_id_option`, or add one.
    let id = grub_id(root);
    let after = match after.find("$menuentry_id_option") {
        Some(at) => {
            let head = &after[..at];
            let tail = after[at + "$menuentry_id_option".len()..].trim_start();
            let arg_end = match tail.chars().next() {
                Some(q @ ('\'' | '"')) => tail[1..].find(q).map_or(tail.len(), |e| e + 2),
                _ => tail.find(char::is_whitespace).unwrap_or(tail.len()),
            };
            format!("{head}$menuentry_id_option '{id}'{}", &tail[arg_end..])
        }
        None => match after.rfind('{') {
            Some(b) => format!("{} --id '{id}' {}", after[..b].trim_end(), &after[b..]),
            None => after.to_string(),
        },
    };
    format!("{indent}menuentry '{title} (subroot {root})'{after}")
}

/// `grub.cfg` with an entry per root of `roots` appended (those whose id is there already
/// are skipped); `None` when nothing is added or the file has no `menuentry`.
pub fn add_grub_entries(text: &str, roots: &[String]) -> Option<(String, Vec<LineChange>)> {
    let lines: Vec<&str> = text.lines().collect();
    let (s, e) = first_menuentry(&lines)?;
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let mut changes = Vec::new();
    let mut line_no = out.lines().count();
    for root in roots {
        if text.contains(&format!("'{}'", grub_id(root))) {
            continue;
        }
        let mut block = String::new();
        block.push_str(&retitle_menuentry(lines[s], root));
        block.push('\n');
        for l in &lines[s + 1..=e] {
            block.push_str(l);
            block.push('\n');
        }
        let block = match edit_grub_cfg(&block, &ParamEdit::subroot(root)) {
            Some((b, _)) => b,
            None => block,
        };
        for l in block.lines() {
            line_no += 1;
            changes.push(LineChange {
                line: line_no,
                old: String::new(),
                new: l.to_string(),
            });
        }
        out.push_str(&block);
    }
    (!changes.is_empty()).then_some((out, changes))
}

/// `grub.cfg` without the blocks [`add_grub_entries`] added; `None` when there are none.
pub fn remove_grub_entries(text: &str) -> Option<(String, Vec<LineChange>)> {
    let mut out = String::with_capacity(text.len());
    let mut changes = Vec::new();
    let mut depth = 0i32;
    let mut skipping = false;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let t = raw.trim();
        let ours = t.starts_with("menuentry")
            && t.contains("(subroot ")
            && t.contains("'subroot-")
            && depth == 0;
        if ours {
            skipping = true;
        }
        if t.ends_with('{') {
            depth += 1;
        } else if t == "}" {
            depth -= 1;
        }
        if skipping {
            changes.push(LineChange {
                line: i + 1,
                old: raw.trim_end_matches('\n').to_string(),
                new: String::new(),
            });
            if depth == 0 {
                skipping = false;
            }
            continue;
        }
        out.push_str(raw);
    }
    (!changes.is_empty()).then_some((out, changes))
}

/// The name of root `root`'s copy of BLS entry file `name` (`X.conf`).
pub fn bls_copy_name(name: &[u8], root: &str) -> Vec<u8> {
    let stem = name.strip_suffix(b".conf").unwrap_or(name);
    [stem, b".subroot-", root.as_bytes(), b".conf"].concat()
}

/// True for a BLS entry file [`bls_copy_name`] made.
pub fn is_root_entry_file(name: &[u8]) -> bool {
    name.ends_with(b".conf") && name.windows(9).any(|w| w == b".subroot-")
}

/// Root `root`'s copy of a BLS entry: titled `TITLE (subroot ROOT)`, `subroot=ROOT` in its
/// options.
pub fn bls_copy(text: &str, root: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    for raw in text.split_inclusive('\n') {
        let body = raw.trim_start();
        match body.strip_prefix("title") {
            Some(rest) if rest.starts_with(char::is_whitespace) => {
                let (line, nl) = match raw.strip_suffix('\n') {
                    Some(l) => (l, "\n"),
                    None => (raw, ""),
                };
                out.push_str(line.trim_end());
                out.push_str(&format!(" (subroot {root}){nl}"));
            }
            _ => out.push_str(raw),
        }
    }
    match edit_bls_entry(&out, &ParamEdit::subroot(root)) {
        Some((o, _)) => o,
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "set default=0\n\
menuentry 'Debian GNU/Linux' --class debian $menuentry_id_option 'gnulinux-simple-abc' {\n\
\tload_video\n\
\tlinux\t/vmlinuz root=UUID=abc ro quiet subroot=r0\n\
\tinitrd\t/initrd.img\n\
}\n\
submenu 'Advanced' {\n\
\tmenuentry 'x' {\n\t\tlinux /vmlinuz ro\n\t}\n\
}\n";

    #[test]
    fn grub_entries_added_once_and_removed() {
        let roots = vec!["r0".to_string(), "r1".to_string()];
        let (out, ch) = add_grub_entries(CFG, &roots).expect("added");
        assert!(out.starts_with(CFG));
        assert_eq!(ch.len(), 10);
        let added = &out[CFG.len()..];
        assert!(added.starts_with(
            "menuentry 'Debian GNU/Linux (subroot r0)' --class debian $menuentry_id_option 'subroot-r0' {\n"
        ), "{added}");
        assert!(added.contains("\tlinux\t/vmlinuz root=UUID=abc ro quiet subroot=r1\n"));
        assert_eq!(added.matches("subroot=r0").count(), 1);
        assert_eq!(add_grub_entries(&out, &roots), None);
        let (back, _) = remove_grub_entries(&out).expect("removed");
        assert_eq!(back, CFG);
        assert_eq!(remove_grub_entries(CFG), None);
        // Without an id option, one is added.
        assert_eq!(
            retitle_menuentry("menuentry \"Demo\" {", "r1"),
            "menuentry 'Demo (subroot r1)' --id 'subroot-r1' {"
        );
    }

    #[test]
    fn bls_copies() {
        let t = "title Fedora 39\nlinux /vmlinuz\noptions root=x ro subroot=r0\n";
        assert_eq!(
            bls_copy(t, "r1"),
            "title Fedora 39 (subroot r1)\nlinux /vmlinuz\noptions root=x ro subroot=r1\n"
        );
        let n = bls_copy_name(b"abc-6.5.conf", "r1");
        assert_eq!(n, b"abc-6.5.subroot-r1.conf");
        assert!(is_root_entry_file(&n));
        assert!(!is_root_entry_file(b"abc-6.5.conf"));
    }
}
