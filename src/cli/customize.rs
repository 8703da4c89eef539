//! `subroot customize`: its arguments, and the one place operations are parsed — from the
//! command line (in the order given: clap keeps each option's values apart, so their
//! positions come from [`ArgMatches::indices_of`]) and from `--commands-from-file` lines
//! (`write /etc/motd:hello`: the option name without `--`, a space, the value).

use super::{ImageFormatArg, Qcow2OutArgs};
use crate::ops::customize::op::{FileOp, Id, KeySource, Operation, PasswordSource, SystemOp};
use anyhow::{bail, Context, Result};
use clap::{ArgMatches, Args};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct CustomizeArgs {
    /// The image to customize.
    pub image: PathBuf,
    /// Write the customized image to OUT: a complete new image.
    #[arg(short, long, value_name = "OUT", conflicts_with_all = ["in_place", "overlay", "dry_run"])]
    pub output: Option<PathBuf>,
    /// Write only what changed, as a qcow2 overlay OUT backed by the input.
    #[arg(long, value_name = "OUT", conflicts_with_all = ["in_place", "dry_run"])]
    pub overlay: Option<PathBuf>,
    /// Change the input image itself (raw and qcow2; crash safe, see `subroot recover`).
    #[arg(long, conflicts_with = "dry_run")]
    pub in_place: bool,
    /// Only print the plan: for each operation, the filesystem its path lands on and what
    /// changes. Nothing is written.
    #[arg(long, required_unless_present_any = ["output", "overlay", "in_place"])]
    pub dry_run: bool,
    /// Print the plan as JSON on stdout (with --dry-run: only that).
    #[arg(long)]
    pub json: bool,
    /// On a relayouted image, the root to customize (default: r0).
    #[arg(long, value_name = "rN")]
    pub root: Option<String>,
    /// Output format with -o (default: the input's).
    #[arg(short = 'O', long = "output-format", value_name = "FMT")]
    pub output_format: Option<ImageFormatArg>,
    #[command(flatten)]
    pub qcow2: Qcow2OutArgs,
    /// Overwrite an existing OUT.
    #[arg(long)]
    pub force: bool,
    /// After the ext edits: `quick` (subroot re-reads what it touched) or `full` (also
    /// e2fsck -fn of each edited filesystem).
    #[arg(long, value_enum, default_value = "quick", value_name = "LEVEL")]
    pub verify: crate::edit::full_check::Verify,

    /// Read operations from FILE, one a line (`write /etc/motd:hello`; `#` comments).
    #[arg(long = "commands-from-file", value_name = "FILE")]
    pub commands_from_file: Vec<PathBuf>,
    // The operations, under their own headings (each sets the heading of what follows).
    #[command(flatten)]
    pub files: FileOperations,
    #[command(flatten)]
    pub system: SystemOperations,
    #[command(flatten)]
    pub refused: RefusedOperations,
}

/// The file operations (each option may be given many times; see [`operations`]).
#[derive(Debug, Args)]
#[command(next_help_heading = "File operations")]
pub struct FileOperations {
    /// Make a directory and its missing parents (0755 root:root).
    #[arg(long, value_name = "DIR")]
    pub mkdir: Vec<String>,
    /// Create or replace FILE with CONTENT (an existing file keeps owner, mode, xattrs).
    #[arg(long, value_name = "FILE:CONTENT")]
    pub write: Vec<String>,
    /// Copy the host file LOCAL to DEST (into DEST when it is a directory).
    #[arg(long, value_name = "LOCAL:DEST")]
    pub upload: Vec<String>,
    /// Copy the host file or directory LOCAL into the directory DIR, metadata kept.
    #[arg(long = "copy-in", value_name = "LOCAL:DIR")]
    pub copy_in: Vec<String>,
    /// Merge a tar archive (plain or compressed) into DIR, its metadata kept.
    #[arg(long = "tar-in", value_name = "ARCHIVE:DIR")]
    pub tar_in: Vec<String>,
    /// Remove PATH and everything below it (a missing PATH is not an error).
    #[arg(long, value_name = "PATH")]
    pub delete: Vec<String>,
    /// Make the symbolic link LINK (one or more) pointing at TARGET (`ln -sf`).
    #[arg(long, value_name = "TARGET:LINK[:LINK]...")]
    pub link: Vec<String>,
    /// Make LINK a new name of the file EXISTING (`ln -f`).
    #[arg(long, value_name = "EXISTING:LINK")]
    pub hardlink: Vec<String>,
    /// Set the permission bits (octal, setuid/setgid/sticky included) of PATH.
    #[arg(long, value_name = "MODE:PATH")]
    pub chmod: Vec<String>,
    /// Set the owner of PATH: numbers, or names in the image's /etc/passwd and /etc/group.
    #[arg(long, value_name = "USER:GROUP:PATH")]
    pub chown: Vec<String>,
    /// Create an empty file, or set an existing one's times to now.
    #[arg(long, value_name = "PATH")]
    pub touch: Vec<String>,
    /// Cut FILE to zero bytes (same inode, owner, mode).
    #[arg(long, value_name = "FILE")]
    pub truncate: Vec<String>,
    /// Edit FILE line by line with a sed-like substitution (regex crate syntax; `$1` in the
    /// replacement).
    #[arg(long, value_name = "FILE:s/REGEX/REPLACEMENT/[g]")]
    pub edit: Vec<String>,
    /// Append LINE to FILE unless it already has it (FILE created if missing).
    #[arg(long = "append-line", value_name = "FILE:LINE")]
    pub append_line: Vec<String>,
}

/// The system operations.
#[derive(Debug, Args)]
#[command(next_help_heading = "System operations")]
pub struct SystemOperations {
    /// Set the hostname (/etc/hostname, and /etc/hosts' 127.0.1.1 line).
    #[arg(long, value_name = "NAME")]
    pub hostname: Vec<String>,
    /// Set the time zone (/etc/localtime, /etc/timezone).
    #[arg(long, value_name = "TZ")]
    pub timezone: Vec<String>,
    /// Set root's password: password:PW, file:FILE (its first line) or disabled.
    #[arg(long = "root-password", value_name = "SOURCE")]
    pub root_password: Vec<String>,
    /// Set USER's password (SOURCE as for --root-password).
    #[arg(long, value_name = "USER:SOURCE")]
    pub password: Vec<String>,
    /// Add an SSH public key to USER's authorized_keys (default: your ~/.ssh/id_*.pub).
    #[arg(long = "ssh-inject", value_name = "USER[:file:KEY|:string:KEY]")]
    pub ssh_inject: Vec<String>,
    /// Run the host script SCRIPT once, at the next boot.
    #[arg(long, value_name = "SCRIPT")]
    pub firstboot: Vec<String>,
    /// Run the shell command CMD once, at the next boot.
    #[arg(long = "firstboot-command", value_name = "CMD")]
    pub firstboot_command: Vec<String>,
    /// Reset what makes the machine unique (machine id, SSH host keys, logs...); OPS: a
    /// comma-separated list of sysprep operations (default: the default set).
    #[arg(long, value_name = "OPS", num_args = 0..=1, default_missing_value = "")]
    pub sysprep: Vec<String>,
}

/// What virt-customize does by running code in the guest: accepted by the parser, then
/// refused with what to use instead (hidden from the help).
#[derive(Debug, Args)]
pub struct RefusedOperations {
    /// Refused: needs code running in the guest (use --firstboot-command).
    #[arg(long, value_name = "PKGS", hide = true)]
    pub install: Vec<String>,
    /// Refused: needs code running in the guest (use --firstboot-command).
    #[arg(long, value_name = "PKGS", hide = true)]
    pub uninstall: Vec<String>,
    /// Refused: needs code running in the guest (use --firstboot).
    #[arg(long, value_name = "SCRIPT", hide = true)]
    pub run: Vec<String>,
    /// Refused: needs code running in the guest (use --firstboot-command).
    #[arg(long = "run-command", value_name = "CMD", hide = true)]
    pub run_command: Vec<String>,
    /// Refused: needs code running in the guest (use --firstboot-command).
    #[arg(long, hide = true)]
    pub update: bool,
}

/// The option ids that are operations: every option of [`FileOperations`],
/// [`SystemOperations`] and [`RefusedOperations`], and `--commands-from-file` (in no
/// particular order: the command line's order comes from the indices).
fn operation_ids() -> Vec<clap::Id> {
    let cmd = clap::Command::new("customize");
    let cmd = FileOperations::augment_args(cmd);
    let cmd = SystemOperations::augment_args(cmd);
    let cmd = RefusedOperations::augment_args(cmd);
    cmd.get_arguments()
        .map(|a| a.get_id().clone())
        .chain([clap::Id::from("commands_from_file")])
        .collect()
}

/// The operations of a `customize` command line, in the order given.
pub fn operations(m: &ArgMatches) -> Result<Vec<Operation>> {
    let ids = operation_ids();
    let mut given: Vec<(usize, &str, String)> = Vec::new();
    for id in ids.iter().map(clap::Id::as_str) {
        if id == "update" {
            if m.get_flag("update") {
                let i = m.index_of("update").unwrap_or(0);
                given.push((i, "update", String::new()));
            }
            continue;
        }
        let (Some(idx), Some(vals)) = (m.indices_of(id), m.get_raw(id)) else {
            continue;
        };
        for (i, v) in idx.zip(vals) {
            given.push((i, id, v.to_string_lossy().into_owned()));
        }
    }
    given.sort_by_key(|(i, _, _)| *i);
    let mut out = Vec::new();
    for (_, id, value) in given {
        let name = id.replace('_', "-");
        if name == "commands-from-file" {
            out.extend(from_file(&PathBuf::from(&value))?);
            continue;
        }
        out.extend(
            parse(&name, &value)
                .with_context(|| format!("--{name} {value}").trim_end().to_string())?,
        );
    }
    Ok(out)
}

/// The operations of a `--commands-from-file` file.
fn from_file(path: &std::path::Path) -> Result<Vec<Operation>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the commands file {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once(' ').unwrap_or((line, ""));
        let name = name.trim_start_matches("--");
        if name == "commands-from-file" {
            bail!("{}:{}: commands files do not nest", path.display(), n + 1);
        }
        out.extend(
            parse(name, value)
                .with_context(|| format!("{}:{}: `{line}`", path.display(), n + 1))?,
        );
    }
    Ok(out)
}

fn split2<'a>(value: &'a str, what: &str) -> Result<(&'a str, &'a str)> {
    value
        .split_once(':')
        .with_context(|| format!("expected {what}"))
}

fn id(s: &str) -> Id {
    match s.parse() {
        Ok(n) => Id::Number(n),
        Err(_) => Id::Name(s.to_string()),
    }
}

fn password_source(s: &str) -> Result<PasswordSource> {
    Ok(match s.split_once(':') {
        Some(("password", pw)) => PasswordSource::Literal(pw.to_string()),
        Some(("file", f)) => PasswordSource::File(PathBuf::from(f)),
        None if s == "disabled" => PasswordSource::Disabled,
        _ => bail!("expected password:PW, file:FILE or disabled, found `{s}`"),
    })
}

/// `s/REGEX/REPLACEMENT/[g]` (any delimiter after `s`; `\` escapes it).
fn substitution(expr: &str) -> Result<(String, String, bool)> {
    let mut chars = expr.chars();
    if chars.next() != Some('s') {
        bail!("expected s/REGEX/REPLACEMENT/[g], found `{expr}`");
    }
    let delim = chars
        .next()
        .context("expected s/REGEX/REPLACEMENT/[g]: no delimiter after `s`")?;
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in chars {
        if escaped {
            if let Some(p) = parts.last_mut() {
                if c != delim {
                    p.push('\\');
                }
                p.push(c);
            }
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == delim {
            parts.push(String::new());
        } else if let Some(p) = parts.last_mut() {
            p.push(c);
        }
    }
    if parts.len() != 3 {
        bail!("expected s{delim}REGEX{delim}REPLACEMENT{delim}[g], found `{expr}`");
    }
    let flags = parts.pop().unwrap_or_default();
    let global = match flags.as_str() {
        "" => false,
        "g" => true,
        f => bail!("unknown flags `{f}` (only `g`)"),
    };
    let rep = parts.pop().unwrap_or_default();
    let re = parts.pop().unwrap_or_default();
    Ok((re, rep, global))
}

/// One operation: option `name` (without `--`) with `value`.
pub fn parse(name: &str, value: &str) -> Result<Vec<Operation>> {
    use FileOp as F;
    let file = |f: FileOp| Ok(vec![Operation::File(f)]);
    let system = |s: SystemOp| Ok(vec![Operation::System(s)]);
    let need = |what: &str| -> Result<()> {
        if value.is_empty() {
            bail!("expected {what}");
        }
        Ok(())
    };
    match name {
        "mkdir" => {
            need("DIR")?;
            file(F::Mkdir { path: value.into() })
        }
        "write" => {
            let (path, content) = split2(value, "FILE:CONTENT")?;
            file(F::Write {
                path: path.into(),
                content: content.as_bytes().to_vec(),
                mode: None,
            })
        }
        "upload" => {
            let (local, dest) = split2(value, "LOCAL:DEST")?;
            file(F::Upload {
                local: local.into(),
                dest: dest.into(),
            })
        }
        "copy-in" => {
            let (local, dir) = split2(value, "LOCAL:DIR")?;
            file(F::CopyIn {
                local: local.into(),
                dir: dir.into(),
            })
        }
        "tar-in" => {
            let (archive, dir) = split2(value, "ARCHIVE:DIR")?;
            file(F::TarIn {
                archive: archive.into(),
                dir: dir.into(),
            })
        }
        "delete" => {
            need("PATH")?;
            file(F::Delete { path: value.into() })
        }
        "link" => {
            let (target, links) = split2(value, "TARGET:LINK[:LINK]...")?;
            Ok(links
                .split(':')
                .map(|l| {
                    Operation::File(F::Symlink {
                        target: target.into(),
                        link: l.into(),
                    })
                })
                .collect())
        }
        "hardlink" => {
            let (existing, link) = split2(value, "EXISTING:LINK")?;
            file(F::Hardlink {
                existing: existing.into(),
                link: link.into(),
            })
        }
        "chmod" => {
            let (mode, path) = split2(value, "MODE:PATH")?;
            let mode = u32::from_str_radix(mode, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .with_context(|| format!("`{mode}` is not an octal mode (0 to 7777)"))?;
            file(F::Chmod {
                mode,
                path: path.into(),
            })
        }
        "chown" => {
            let mut f = value.splitn(3, ':');
            let (Some(u), Some(g), Some(p)) = (f.next(), f.next(), f.next()) else {
                bail!("expected USER:GROUP:PATH");
            };
            if u.is_empty() || g.is_empty() {
                bail!("expected USER:GROUP:PATH");
            }
            file(F::Chown {
                user: id(u),
                group: id(g),
                path: p.into(),
            })
        }
        "touch" => {
            need("PATH")?;
            file(F::Touch { path: value.into() })
        }
        "truncate" => {
            need("FILE")?;
            file(F::Truncate { path: value.into() })
        }
        "edit" => {
            let (path, expr) = split2(value, "FILE:s/REGEX/REPLACEMENT/[g]")?;
            let (regex, replacement, global) = substitution(expr)?;
            file(F::Edit {
                path: path.into(),
                regex,
                replacement,
                global,
            })
        }
        "append-line" => {
            let (path, line) = split2(value, "FILE:LINE")?;
            file(F::AppendLine {
                path: path.into(),
                line: line.into(),
            })
        }
        "hostname" => {
            need("NAME")?;
            system(SystemOp::Hostname(value.into()))
        }
        "timezone" => {
            need("TZ")?;
            system(SystemOp::Timezone(value.into()))
        }
        "root-password" => system(SystemOp::Password {
            user: "root".into(),
            source: password_source(value)?,
        }),
        "password" => {
            let (user, src) = split2(value, "USER:SOURCE")?;
            system(SystemOp::Password {
                user: user.into(),
                source: password_source(src)?,
            })
        }
        "ssh-inject" => {
            need("USER[:file:KEY|:string:KEY]")?;
            let (user, key) = match value.split_once(':') {
                None => (value, KeySource::Default),
                Some((u, k)) => match k.split_once(':') {
                    Some(("file", f)) => (u, KeySource::File(f.into())),
                    Some(("string", s)) => (u, KeySource::String(s.into())),
                    _ => bail!("expected USER, USER:file:KEYFILE or USER:string:KEY"),
                },
            };
            system(SystemOp::SshInject {
                user: user.into(),
                key,
            })
        }
        "firstboot" => {
            need("SCRIPT")?;
            system(SystemOp::Firstboot {
                script: value.into(),
            })
        }
        "firstboot-command" => {
            need("CMD")?;
            system(SystemOp::FirstbootCommand(value.into()))
        }
        "sysprep" => system(SystemOp::Sysprep(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        )),
        "install" | "uninstall" | "update" | "run" | "run-command" => bail!(
            "--{name} needs code running inside the guest, which subroot never starts; \
             do it at the next boot instead with --firstboot SCRIPT or --firstboot-command CMD"
        ),
        other => bail!("unknown operation `{other}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutions() {
        assert_eq!(
            substitution("s/a\\/b/c/g").unwrap(),
            ("a/b".into(), "c".into(), true)
        );
        assert_eq!(
            substitution("s|^#(Port) .*|$1 2222|").unwrap(),
            ("^#(Port) .*".into(), "$1 2222".into(), false)
        );
        assert_eq!(
            substitution("s/\\d+/N/").unwrap(),
            ("\\d+".into(), "N".into(), false)
        );
        assert!(substitution("s/a/b").is_err());
        assert!(substitution("y/a/b/").is_err());
        assert!(substitution("s/a/b/x").is_err());
    }

    #[test]
    fn operations_keep_the_command_line_order() {
        use clap::CommandFactory;
        let m = crate::cli::Cli::command()
            .try_get_matches_from([
                "subroot",
                "customize",
                "i.raw",
                "--dry-run",
                "--write",
                "/a:1",
                "--mkdir",
                "/b",
                "--write",
                "/c:2",
                "--sysprep",
                "--delete",
                "/d",
                "--sysprep",
                "logs",
            ])
            .unwrap();
        let ops = operations(m.subcommand_matches("customize").unwrap()).unwrap();
        let w = |p: &str, c: &str| {
            Operation::File(FileOp::Write {
                path: p.into(),
                content: c.as_bytes().to_vec(),
                mode: None,
            })
        };
        assert_eq!(
            ops,
            vec![
                w("/a", "1"),
                Operation::File(FileOp::Mkdir { path: "/b".into() }),
                w("/c", "2"),
                Operation::System(SystemOp::Sysprep(vec![])),
                Operation::File(FileOp::Delete { path: "/d".into() }),
                Operation::System(SystemOp::Sysprep(vec!["logs".into()])),
            ]
        );
    }

    #[test]
    fn operations_parse() {
        assert_eq!(
            parse("chown", "root:adm:/var/log/x").unwrap(),
            vec![Operation::File(FileOp::Chown {
                user: Id::Name("root".into()),
                group: Id::Name("adm".into()),
                path: "/var/log/x".into()
            })]
        );
        assert_eq!(parse("link", "/a:/b:/c").unwrap().len(), 2);
        assert!(parse("chmod", "9:/x").is_err());
        assert!(parse("run-command", "x")
            .unwrap_err()
            .to_string()
            .contains("--firstboot"));
        assert_eq!(
            parse("write", "/etc/x:a:b").unwrap(),
            vec![Operation::File(FileOp::Write {
                path: "/etc/x".into(),
                content: b"a:b".to_vec(),
                mode: None
            })]
        );
    }
}
