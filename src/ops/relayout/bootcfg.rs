//! Editing kernel command lines in boot configuration files: `grub.cfg` (`linux`,
//! `linuxefi`, `linux16` lines), Boot Loader Specification entries (`options`),
//! `/etc/default/grub` (`GRUB_CMDLINE_LINUX="…"`) and `/etc/kernel/cmdline`.
//!
//! Every editor carries out one [`ParamEdit`] idempotently — the one place where boot
//! configuration gets `subroot=DIR` (relayout, `roots default`) or loses it (`relayout
//! --undo`): setting replaces an existing `subroot=` in place (extra copies are dropped)
//! or appends the parameter; removing drops every `subroot=` with the whitespace before
//! it, so a set followed by a remove gives the line back byte for byte. Everything else
//! on the line — spacing, quoting, other parameters — is kept. An editor returns `None`
//! when the file needs no change.
//!
//! The readers ([`grub_entries`], [`bls_entry`]) parse the same lines into boot entries
//! (title, kernel, initrds, command line) for `inspect`.

use serde::Serialize;

/// One changed line of a file (1-based line number; texts without the newline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineChange {
    pub line: usize,
    pub old: String,
    pub new: String,
}

/// Which kind of file an edit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfigKind {
    /// A GRUB configuration (`grub.cfg`): `linux`/`linuxefi`/`linux16` lines.
    GrubCfg,
    /// A Boot Loader Specification entry: the `options` line.
    BlsEntry,
    /// `/etc/default/grub`: `GRUB_CMDLINE_LINUX`.
    DefaultGrub,
    /// `/etc/kernel/cmdline`: the whole file is one command line.
    KernelCmdline,
}

impl ConfigKind {
    /// Short description for the plan.
    pub fn describe(self) -> &'static str {
        match self {
            ConfigKind::GrubCfg => "GRUB configuration",
            ConfigKind::BlsEntry => "boot loader entry",
            ConfigKind::DefaultGrub => "GRUB defaults",
            ConfigKind::KernelCmdline => "kernel command line",
        }
    }
}

/// What an editor does to the kernel command lines of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamEdit<'a> {
    /// Set `key=value` (replacing any value it had).
    Set { key: &'a str, value: &'a str },
    /// Remove every `key=…` parameter.
    Remove { key: &'a str },
}

impl<'a> ParamEdit<'a> {
    /// `subroot=DIR`.
    pub fn subroot(dir: &'a str) -> Self {
        ParamEdit::Set {
            key: "subroot",
            value: dir,
        }
    }

    /// No `subroot=` at all.
    pub const REMOVE_SUBROOT: ParamEdit<'static> = ParamEdit::Remove { key: "subroot" };

    /// `args` (a command line) edited.
    pub fn apply(&self, args: &str) -> String {
        match *self {
            ParamEdit::Set { key, value } => set_param(args, key, value),
            ParamEdit::Remove { key } => remove_param(args, key),
        }
    }

    /// The line a file without any command line gets (`None` when removing: nothing to
    /// add).
    fn lone(&self) -> Option<String> {
        match *self {
            ParamEdit::Set { key, value } => Some(format!("{key}={value}")),
            ParamEdit::Remove { .. } => None,
        }
    }
}

/// `args` with every `key=` token removed together with the whitespace before it (a
/// leading one with the whitespace after it): the inverse of [`set_param`] appending.
pub fn remove_param(args: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    let mut out = String::with_capacity(args.len());
    let mut rest = args;
    let mut dropped_first = false;
    loop {
        let ws_len = rest.len() - rest.trim_start().len();
        let (ws, after) = rest.split_at(ws_len);
        if after.is_empty() {
            out.push_str(ws);
            return out;
        }
        let tok_len = after.find(char::is_whitespace).unwrap_or(after.len());
        let (tok, next) = after.split_at(tok_len);
        if tok.starts_with(&prefix) {
            // Dropped with the whitespace before it; the first token of the line keeps
            // its leading whitespace and loses the whitespace after it instead.
            if out.trim().is_empty() {
                out.push_str(ws);
                dropped_first = true;
            }
        } else {
            if dropped_first && out.trim().is_empty() {
                // The whitespace that separated the dropped first token goes with it.
                dropped_first = false;
            } else {
                out.push_str(ws);
            }
            out.push_str(tok);
        }
        rest = next;
    }
}

/// `args` (a whitespace-separated command line) with `key=value` set: the first existing
/// `key=` token replaced, later ones removed, or the parameter appended. Spacing between
/// the other tokens is kept.
pub fn set_param(args: &str, key: &str, value: &str) -> String {
    let want = format!("{key}={value}");
    let prefix = format!("{key}=");
    let mut out = String::with_capacity(args.len() + want.len() + 1);
    let mut replaced = false;
    let mut rest = args;
    // Walk tokens, copying the whitespace before each.
    loop {
        let ws_len = rest.len() - rest.trim_start().len();
        let (ws, after) = rest.split_at(ws_len);
        if after.is_empty() {
            if !replaced {
                let body = out.trim_end().len();
                out.truncate(body);
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(&want);
                out.push_str(ws);
            } else {
                out.push_str(ws);
            }
            break;
        }
        let tok_len = after.find(char::is_whitespace).unwrap_or(after.len());
        let (tok, next) = after.split_at(tok_len);
        if tok.starts_with(&prefix) {
            if !replaced {
                out.push_str(ws);
                out.push_str(&want);
                replaced = true;
            }
            // A duplicate is dropped together with the whitespace before it.
        } else {
            out.push_str(ws);
            out.push_str(tok);
        }
        rest = next;
    }
    out
}

/// Apply `edit` to every line of `text` (keeping line endings); the changes, or `None`.
fn edit_lines(
    text: &str,
    mut edit: impl FnMut(&str) -> Option<String>,
) -> Option<(String, Vec<LineChange>)> {
    let mut out = String::with_capacity(text.len() + 64);
    let mut changes = Vec::new();
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let (line, nl) = match raw.strip_suffix('\n') {
            Some(l) => match l.strip_suffix('\r') {
                Some(l2) => (l2, "\r\n"),
                None => (l, "\n"),
            },
            None => (raw, ""),
        };
        match edit(line) {
            Some(new) if new != line => {
                changes.push(LineChange {
                    line: i + 1,
                    old: line.to_string(),
                    new: new.clone(),
                });
                out.push_str(&new);
            }
            _ => out.push_str(line),
        }
        out.push_str(nl);
    }
    if changes.is_empty() {
        None
    } else {
        Some((out, changes))
    }
}

/// A `linux`, `linuxefi` or `linux16` line split into (indent, command, the whitespace
/// after it, kernel path, the arguments with their leading whitespace); `None` for any
/// other line, or one without a kernel path.
fn split_linux(line: &str) -> Option<(&str, &str, &str, &str, &str)> {
    let body = line.trim_start();
    let indent = &line[..line.len() - body.len()];
    let cmd_len = body.find(char::is_whitespace).unwrap_or(body.len());
    let cmd = &body[..cmd_len];
    if !matches!(cmd, "linux" | "linuxefi" | "linux16") {
        return None;
    }
    let after_cmd = &body[cmd_len..];
    let ws = after_cmd.len() - after_cmd.trim_start().len();
    let path_part = &after_cmd[ws..];
    if path_part.is_empty() {
        return None;
    }
    let path_len = path_part
        .find(char::is_whitespace)
        .unwrap_or(path_part.len());
    let (path, args) = path_part.split_at(path_len);
    Some((indent, cmd, &after_cmd[..ws], path, args))
}

/// A `grub.cfg` with `p` carried out on every `linux`, `linuxefi` and `linux16` line (the
/// kernel path is the first argument and is left alone).
pub fn edit_grub_cfg(text: &str, p: &ParamEdit) -> Option<(String, Vec<LineChange>)> {
    edit_lines(text, |line| {
        let (indent, cmd, ws, path, args) = split_linux(line)?;
        Some(format!("{indent}{cmd}{ws}{path}{}", p.apply(args)))
    })
}

/// A boot entry as a configuration file describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootEntry {
    /// The `menuentry` title (GRUB) or `title` (BLS), when there is one.
    pub title: Option<String>,
    /// The kernel path as the boot loader sees it.
    pub kernel: String,
    pub initrds: Vec<String>,
    /// The kernel command line.
    pub cmdline: String,
}

/// The boot entries of a `grub.cfg`: one per `linux` line, titled by the enclosing
/// `menuentry`, with the `initrd` lines that follow it.
pub fn grub_entries(text: &str) -> Vec<BootEntry> {
    let mut out: Vec<BootEntry> = Vec::new();
    let mut title = None;
    for line in text.lines() {
        let body = line.trim_start();
        if let Some(rest) = body.strip_prefix("menuentry") {
            title = menu_title(rest);
        } else if let Some((_, _, _, kernel, args)) = split_linux(line) {
            out.push(BootEntry {
                title: title.clone(),
                kernel: kernel.to_string(),
                initrds: Vec::new(),
                cmdline: args.trim().to_string(),
            });
        } else if let Some(last) = out.last_mut() {
            last.initrds.extend(super::initrds::grub_initrds(line));
        }
    }
    out
}

/// The first word of a `menuentry` line, unquoted.
fn menu_title(rest: &str) -> Option<String> {
    let rest = rest.trim_start();
    let q = rest.chars().next()?;
    if q == '\'' || q == '"' {
        let inner = &rest[1..];
        return inner.find(q).map(|end| inner[..end].to_string());
    }
    rest.split_whitespace().next().map(str::to_string)
}

/// The boot entry of a Boot Loader Specification file (`None` without a `linux` line).
pub fn bls_entry(text: &str) -> Option<BootEntry> {
    let (mut title, mut kernel, mut options) = (None, None, Vec::new());
    for line in text.lines() {
        let body = line.trim();
        let (key, value) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
        match key {
            "title" => title = Some(value.trim().to_string()),
            "linux" => kernel = Some(value.trim().to_string()),
            "options" => options.push(value.trim()),
            _ => {}
        }
    }
    Some(BootEntry {
        title,
        kernel: kernel?,
        initrds: super::initrds::bls_initrds(text),
        cmdline: options.join(" "),
    })
}

/// A Boot Loader Specification entry with `p` carried out on its `options` line(s); an
/// entry without one gets `options key=value` appended when setting. An `options` line a
/// removal leaves empty goes (relayout added it).
pub fn edit_bls_entry(text: &str, p: &ParamEdit) -> Option<(String, Vec<LineChange>)> {
    let mut seen = false;
    let edited = edit_lines(text, |line| {
        let body = line.trim_start();
        let rest = body.strip_prefix("options")?;
        if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
            return None;
        }
        seen = true;
        let indent = &line[..line.len() - body.len()];
        let mut args = p.apply(rest);
        if args.trim().is_empty() && matches!(p, ParamEdit::Remove { .. }) {
            return Some(String::new());
        }
        if !args.starts_with(char::is_whitespace) {
            args.insert(0, ' ');
        }
        Some(format!("{indent}options{args}"))
    });
    if seen {
        return edited.map(|(out, changes)| (drop_emptied(&out, &changes), changes));
    }
    let new = format!("options {}", p.lone()?);
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let line = out.lines().count() + 1;
    out.push_str(&new);
    out.push('\n');
    Some((
        out,
        vec![LineChange {
            line,
            old: String::new(),
            new,
        }],
    ))
}

/// `/etc/default/grub` with `p` carried out in `GRUB_CMDLINE_LINUX` (double-, single- or
/// un-quoted); a file without that variable gets `GRUB_CMDLINE_LINUX="key=value"` when
/// setting.
pub fn edit_default_grub(text: &str, p: &ParamEdit) -> Option<(String, Vec<LineChange>)> {
    let mut seen = false;
    let edited = edit_lines(text, |line| {
        let body = line.trim_start();
        let rest = body.strip_prefix("GRUB_CMDLINE_LINUX=")?;
        seen = true;
        let indent = &line[..line.len() - body.len()];
        let (quote, inner, tail) = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner_start = 1;
                let end = rest[inner_start..].find(q)? + inner_start;
                (q.to_string(), &rest[inner_start..end], &rest[end + 1..])
            }
            _ => {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                if rest[..end].is_empty() {
                    (String::from("\""), "", &rest[end..])
                } else {
                    (String::from("\""), &rest[..end], &rest[end..])
                }
            }
        };
        Some(format!(
            "{indent}GRUB_CMDLINE_LINUX={quote}{}{quote}{tail}",
            p.apply(inner)
        ))
    });
    if seen {
        return edited;
    }
    let new = format!("GRUB_CMDLINE_LINUX=\"{}\"", p.lone()?);
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let line = out.lines().count() + 1;
    out.push_str(&new);
    out.push('\n');
    Some((
        out,
        vec![LineChange {
            line,
            old: String::new(),
            new,
        }],
    ))
}

/// `/etc/kernel/cmdline` (one command line, possibly over several lines: only the first
/// non-empty line is edited) with `p` carried out.
pub fn edit_kernel_cmdline(text: &str, p: &ParamEdit) -> Option<(String, Vec<LineChange>)> {
    if text.trim().is_empty() {
        let new = p.lone()?;
        return Some((
            format!("{new}\n"),
            vec![LineChange {
                line: 1,
                old: text.trim_end_matches('\n').to_string(),
                new,
            }],
        ));
    }
    let mut done = false;
    edit_lines(text, |line| {
        if done || line.trim().is_empty() {
            return None;
        }
        done = true;
        Some(p.apply(line))
    })
}

/// `text` without the lines `changes` emptied (their line endings too).
fn drop_emptied(text: &str, changes: &[LineChange]) -> String {
    let gone: Vec<usize> = changes
        .iter()
        .filter(|c| c.new.is_empty())
        .map(|c| c.line)
        .collect();
    text.split_inclusive('\n')
        .enumerate()
        .filter(|(i, _)| !gone.contains(&(i + 1)))
        .map(|(_, l)| l)
        .collect()
}

/// Dispatch on the kind of file.
pub fn edit(kind: ConfigKind, text: &str, p: &ParamEdit) -> Option<(String, Vec<LineChange>)> {
    match kind {
        ConfigKind::GrubCfg => edit_grub_cfg(text, p),
        ConfigKind::BlsEntry => edit_bls_entry(text, p),
        ConfigKind::DefaultGrub => edit_default_grub(text, p),
        ConfigKind::KernelCmdline => edit_kernel_cmdline(text, p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grub.cfg as `grub-mkconfig` writes it on Debian bookworm (abridged).
    const GRUB_CFG: &str = "\
#
# DO NOT EDIT THIS FILE
#
insmod part_msdos
insmod ext2
set root='hd0,msdos1'
search --no-floppy --fs-uuid --set=root 5e1f0b0a-7c3d-4e2a-9b1c-2d3e4f5a6b7c
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-simple-5e1f0b0a' {
\tload_video
\tinsmod gzio
\techo\t'Loading Linux 6.1.0-28-amd64 ...'
\tlinux\t/boot/vmlinuz-6.1.0-28-amd64 root=UUID=5e1f0b0a-7c3d-4e2a-9b1c-2d3e4f5a6b7c ro  quiet
\techo\t'Loading initial ramdisk ...'
\tinitrd\t/boot/initrd.img-6.1.0-28-amd64
}
submenu 'Advanced options for Debian GNU/Linux' {
\tmenuentry 'Debian GNU/Linux, with Linux 6.1.0-28-amd64 (recovery mode)' {
\t\tlinux\t/boot/vmlinuz-6.1.0-28-amd64 root=UUID=5e1f0b0a-7c3d-4e2a-9b1c-2d3e4f5a6b7c ro single subroot=old
\t\tinitrd\t/boot/initrd.img-6.1.0-28-amd64
\t}
}
menuentry 'UEFI Firmware Settings' $menuentry_id_option 'uefi-firmware' {
\tfwsetup
}
";

    const R0: ParamEdit = ParamEdit::Set {
        key: "subroot",
        value: "r0",
    };

    #[test]
    fn params_are_set_idempotently() {
        assert_eq!(R0.apply(" ro quiet"), " ro quiet subroot=r0");
        assert_eq!(R0.apply(""), "subroot=r0");
        assert_eq!(
            R0.apply(" subroot=a ro subroot=b quiet"),
            " subroot=r0 ro quiet"
        );
        assert_eq!(R0.apply(" ro  quiet  "), " ro  quiet subroot=r0  ");
        // A parameter that merely starts with the key is not it.
        assert_eq!(R0.apply("subrootx=1"), "subrootx=1 subroot=r0");
        let once = R0.apply(" ro");
        assert_eq!(R0.apply(&once), once);
    }

    #[test]
    fn grub_cfg_linux_lines() {
        let (out, ch) = edit_grub_cfg(GRUB_CFG, &R0).expect("changes");
        assert_eq!(ch.len(), 2);
        assert_eq!(ch[0].line, 12);
        assert_eq!(
            ch[0].new,
            "\tlinux\t/boot/vmlinuz-6.1.0-28-amd64 root=UUID=5e1f0b0a-7c3d-4e2a-9b1c-2d3e4f5a6b7c ro  quiet subroot=r0"
        );
        assert_eq!(
            ch[1].new,
            "\t\tlinux\t/boot/vmlinuz-6.1.0-28-amd64 root=UUID=5e1f0b0a-7c3d-4e2a-9b1c-2d3e4f5a6b7c ro single subroot=r0"
        );
        // Nothing else changed: same number of lines, every other line identical.
        let a: Vec<&str> = GRUB_CFG.lines().collect();
        let b: Vec<&str> = out.lines().collect();
        assert_eq!(a.len(), b.len());
        let differing: Vec<usize> = (0..a.len())
            .filter(|&i| a[i] != b[i])
            .map(|i| i + 1)
            .collect();
        assert_eq!(differing, vec![12, 18]);
        // Idempotent.
        assert_eq!(edit_grub_cfg(&out, &R0), None);
        // Another value replaces, never duplicates.
        let (again, _) = edit_grub_cfg(&out, &ParamEdit::subroot("r1")).expect("changes");
        assert_eq!(again.matches("subroot=").count(), 2);
        assert!(!again.contains("subroot=r0"));
    }

    #[test]
    fn grub_entries_read() {
        let e = grub_entries(GRUB_CFG);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].title.as_deref(), Some("Debian GNU/Linux"));
        assert_eq!(e[0].kernel, "/boot/vmlinuz-6.1.0-28-amd64");
        assert_eq!(
            e[0].cmdline,
            "root=UUID=5e1f0b0a-7c3d-4e2a-9b1c-2d3e4f5a6b7c ro  quiet"
        );
        assert_eq!(e[0].initrds, vec!["/boot/initrd.img-6.1.0-28-amd64"]);
        assert_eq!(
            e[1].title.as_deref(),
            Some("Debian GNU/Linux, with Linux 6.1.0-28-amd64 (recovery mode)")
        );
        assert!(e[1].cmdline.ends_with("ro single subroot=old"));
        let b = bls_entry("title F 39\nlinux /vmlinuz-6.5\ninitrd /i.img\noptions root=x ro\n")
            .expect("entry");
        assert_eq!(b.title.as_deref(), Some("F 39"));
        assert_eq!(
            (b.kernel.as_str(), b.cmdline.as_str()),
            ("/vmlinuz-6.5", "root=x ro")
        );
        assert_eq!(b.initrds, vec!["/i.img"]);
        assert_eq!(bls_entry("title x\n"), None);
    }

    #[test]
    fn grub_cfg_linuxefi_and_crlf() {
        let t =
            "menuentry x {\r\n  linuxefi /vmlinuz root=/dev/sda2\r\n  initrdefi /initrd\r\n}\r\n";
        let (out, ch) = edit_grub_cfg(t, &R0).expect("changes");
        assert_eq!(ch.len(), 1);
        assert_eq!(
            out,
            "menuentry x {\r\n  linuxefi /vmlinuz root=/dev/sda2 subroot=r0\r\n  initrdefi /initrd\r\n}\r\n"
        );
        // A `linux` with no kernel path is left alone, and so is `linux_foo`.
        assert_eq!(edit_grub_cfg("linux\nlinux_foo /x\n", &R0), None);
    }

    #[test]
    fn bls_entries() {
        // As kernel-install writes them on Fedora.
        let t = "title Fedora Linux (6.5.6-300.fc39.x86_64) 39 (Workstation Edition)\n\
version 6.5.6-300.fc39.x86_64\n\
linux /vmlinuz-6.5.6-300.fc39.x86_64\n\
initrd /initramfs-6.5.6-300.fc39.x86_64.img\n\
options root=UUID=0b3c rootflags=subvol=root rhgb quiet\n\
grub_users $grub_users\n\
grub_arg --unrestricted\n\
grub_class fedora\n";
        let (out, ch) = edit_bls_entry(t, &R0).expect("changes");
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].line, 5);
        assert_eq!(
            ch[0].new,
            "options root=UUID=0b3c rootflags=subvol=root rhgb quiet subroot=r0"
        );
        assert_eq!(edit_bls_entry(&out, &R0), None);
        // No options line: one is added.
        let (out, ch) = edit_bls_entry("title x\nlinux /vmlinuz", &R0).expect("changes");
        assert_eq!(out, "title x\nlinux /vmlinuz\noptions subroot=r0\n");
        assert_eq!(ch[0].line, 3);
        assert_eq!(edit_bls_entry(&out, &R0), None);
    }

    #[test]
    fn default_grub() {
        // Debian's /etc/default/grub (abridged).
        let t = "# If you change this file, run 'update-grub' afterwards\n\
GRUB_DEFAULT=0\n\
GRUB_TIMEOUT=5\n\
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n\
GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n\
GRUB_CMDLINE_LINUX=\"\"\n";
        let (out, ch) = edit_default_grub(t, &R0).expect("changes");
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].line, 6);
        assert_eq!(ch[0].new, "GRUB_CMDLINE_LINUX=\"subroot=r0\"");
        assert!(out.contains("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"));
        assert_eq!(edit_default_grub(&out, &R0), None);
        let (_, ch) = edit_default_grub("GRUB_CMDLINE_LINUX='console=ttyS0 subroot=x' # c\n", &R0)
            .expect("changes");
        assert_eq!(
            ch[0].new,
            "GRUB_CMDLINE_LINUX='console=ttyS0 subroot=r0' # c"
        );
        let (out, ch) = edit_default_grub("GRUB_TIMEOUT=1", &R0).expect("changes");
        assert_eq!(out, "GRUB_TIMEOUT=1\nGRUB_CMDLINE_LINUX=\"subroot=r0\"\n");
        assert_eq!(ch[0].line, 2);
    }

    #[test]
    fn kernel_cmdline() {
        let (out, _) = edit_kernel_cmdline("root=UUID=abc ro quiet\n", &R0).expect("changes");
        assert_eq!(out, "root=UUID=abc ro quiet subroot=r0\n");
        assert_eq!(edit_kernel_cmdline(&out, &R0), None);
        let (out, _) = edit_kernel_cmdline("", &R0).expect("changes");
        assert_eq!(out, "subroot=r0\n");
    }

    #[test]
    fn removal_undoes_setting_byte_for_byte() {
        let rm = ParamEdit::REMOVE_SUBROOT;
        for line in [
            " ro quiet",
            "",
            " ro  quiet  ",
            "subrootx=1",
            "root=UUID=abc ro",
        ] {
            assert_eq!(rm.apply(&R0.apply(line)), line, "{line:?}");
        }
        assert_eq!(remove_param("subroot=r0 ro", "subroot"), "ro");
        assert_eq!(
            remove_param(" subroot=a ro subroot=b q", "subroot"),
            " ro q"
        );
        // Every kind of file: set then removed gives the input back.
        let files = [
            (ConfigKind::GrubCfg, GRUB_CFG.replace(" subroot=old", "")),
            (
                ConfigKind::BlsEntry,
                "title x\nlinux /vmlinuz\noptions root=x ro\n".to_string(),
            ),
            (
                ConfigKind::BlsEntry,
                "title x\nlinux /vmlinuz\n".to_string(),
            ),
            (
                ConfigKind::DefaultGrub,
                "GRUB_CMDLINE_LINUX=\"\"\nGRUB_TIMEOUT=5\n".to_string(),
            ),
            (
                ConfigKind::KernelCmdline,
                "root=UUID=abc ro quiet\n".to_string(),
            ),
        ];
        for (kind, text) in files {
            let (set, _) = edit(kind, &text, &R0).expect("set");
            let (back, _) = edit(kind, &set, &rm).expect("removed");
            assert_eq!(back, text, "{kind:?}");
            assert_eq!(edit(kind, &back, &rm), None, "{kind:?}");
        }
    }
}
