//! The system operations of `subroot customize` (`--hostname`, `--timezone`, `--password`,
//! `--ssh-inject`, `--firstboot`, `--sysprep`), expanded into file operations against the
//! installed system as the run has planned it so far.
//!
//! One [`Expander`] serves a whole run: each expansion sees the image with every earlier
//! operation of the run applied (a user added by `--append-line /etc/passwd:...` can then
//! get `--password`; two `--password` both land in `/etc/shadow`; two `--firstboot` get
//! consecutive numbers).

mod firstboot;
mod hostname;
mod password;
mod ssh;
mod sysprep;
mod timezone;

#[cfg(test)]
mod testing;

use super::op::{EntryKind, FileOp, Guest, SystemOp};
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};

/// What the expansions need besides the image.
#[derive(Debug, Clone)]
pub struct Context {
    /// The run's clock, seconds since the epoch (`SOURCE_DATE_EPOCH` or now): the day a
    /// password was last changed in `/etc/shadow`.
    pub now: u64,
}

/// Expands the system operations of one run, in order.
pub struct Expander {
    ctx: Context,
    /// Files the earlier expansions wrote (`Some`) or removed (`None`), by path.
    written: BTreeMap<String, Option<Vec<u8>>>,
    /// Symlinks the earlier expansions made.
    linked: BTreeSet<String>,
    /// The number the next first-boot script gets (once the scripts directory was read).
    next_script: Option<u32>,
}

impl Expander {
    pub fn new(ctx: Context) -> Self {
        Expander {
            ctx,
            written: BTreeMap::new(),
            linked: BTreeSet::new(),
            next_script: None,
        }
    }

    /// The file operations that carry out `op`.
    pub fn expand(&mut self, op: &SystemOp, guest: &dyn Guest) -> Result<Vec<FileOp>> {
        let ops = {
            let view = Layered {
                guest,
                written: &self.written,
                linked: &self.linked,
            };
            let next = &mut self.next_script;
            match op {
                SystemOp::Hostname(name) => hostname::expand(name, &view)?,
                SystemOp::Timezone(tz) => timezone::expand(tz, &view)?,
                SystemOp::Password { user, source } => {
                    password::expand(user, source, &view, self.ctx.now)?
                }
                SystemOp::SshInject { user, key } => ssh::expand(user, key, &view)?,
                SystemOp::Firstboot { script: path } => {
                    let (name, content) = firstboot::host_script(path)?;
                    script(next, &view, &name, content)?
                }
                SystemOp::FirstbootCommand(cmd) => {
                    script(next, &view, "command", firstboot::command_script(cmd))?
                }
                SystemOp::Sysprep(names) => {
                    let plan = sysprep::expand(names, &view)?;
                    let mut ops = plan.ops;
                    for (name, content) in plan.firstboot {
                        ops.extend(script(next, &view, &name, content)?);
                    }
                    ops
                }
            }
        };
        self.remember(&ops);
        Ok(ops)
    }

    /// Records what `ops` leave in the files later expansions read.
    fn remember(&mut self, ops: &[FileOp]) {
        for op in ops {
            match op {
                FileOp::Write { path, content, .. } => {
                    self.written.insert(path.clone(), Some(content.clone()));
                }
                FileOp::Truncate { path } => {
                    self.written.insert(path.clone(), Some(Vec::new()));
                }
                FileOp::Delete { path } => {
                    self.written.retain(|p, _| !under(p, path));
                    self.linked.retain(|p| !under(p, path));
                    self.written.insert(path.clone(), None);
                }
                FileOp::Symlink { link, .. } => {
                    self.written.remove(link);
                    self.linked.insert(link.clone());
                }
                _ => {}
            }
        }
    }
}

/// A first-boot script, numbered after those waiting in the image and those of the run.
fn script(
    next: &mut Option<u32>,
    view: &dyn Guest,
    name: &str,
    content: Vec<u8>,
) -> Result<Vec<FileOp>> {
    let number = match *next {
        Some(n) => n,
        None => firstboot::next_number(view)?,
    };
    *next = Some(number + 1);
    firstboot::expand(number, name, content, view)
}

/// Whether `path` is `dir` or inside it.
fn under(path: &str, dir: &str) -> bool {
    path == dir
        || (path.starts_with(dir) && (dir.ends_with('/') || path[dir.len()..].starts_with('/')))
}

/// The image as the earlier expansions of the run left it.
struct Layered<'a> {
    guest: &'a dyn Guest,
    written: &'a BTreeMap<String, Option<Vec<u8>>>,
    linked: &'a BTreeSet<String>,
}

impl Layered<'_> {
    /// What the earlier expansions decided about `path` (or a directory above it).
    fn decided(&self, path: &str) -> Option<&Option<Vec<u8>>> {
        if let Some(d) = self.written.get(path) {
            return Some(d);
        }
        self.written
            .iter()
            .find(|(p, d)| d.is_none() && under(path, p))
            .map(|(_, d)| d)
    }
}

impl Guest for Layered<'_> {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.decided(path) {
            Some(d) => Ok(d.clone()),
            None => self.guest.read(path),
        }
    }

    fn list(&self, dir: &str) -> Result<Option<Vec<String>>> {
        match self.decided(dir) {
            Some(None) => Ok(None),
            _ => Ok(self.guest.list(dir)?.map(|names| {
                names
                    .into_iter()
                    .filter(|n| !matches!(self.decided(&join(dir, n)), Some(None)))
                    .collect()
            })),
        }
    }

    fn exists(&self, path: &str) -> Result<bool> {
        if self.linked.contains(path) {
            return Ok(true);
        }
        match self.decided(path) {
            Some(d) => Ok(d.is_some()),
            None => self.guest.exists(path),
        }
    }

    fn kind(&self, path: &str) -> Result<Option<EntryKind>> {
        if self.linked.contains(path) {
            return Ok(Some(EntryKind::Symlink));
        }
        match self.decided(path) {
            Some(d) => Ok(d.as_ref().map(|_| EntryKind::File)),
            None => self.guest.kind(path),
        }
    }
}

/// `dir/name` for an absolute `dir`.
fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// A text file of the image as a string (`None` if missing); not UTF-8 is an error naming
/// the file.
fn read_text(guest: &dyn Guest, path: &str) -> Result<Option<String>> {
    match guest.read(path)? {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{path} in the image is not UTF-8 text")),
    }
}

/// `text` with a final newline (unless empty).
fn with_newline(mut text: String) -> String {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// A user of the image's `/etc/passwd`, or an error naming the user.
fn user(guest: &dyn Guest, name: &str) -> Result<crate::ops::inspect::system::User> {
    let passwd = read_text(guest, "/etc/passwd")?.ok_or_else(|| {
        anyhow::anyhow!("no /etc/passwd in the image (looking for user {name:?})")
    })?;
    crate::ops::inspect::system::passwd(&passwd)
        .into_iter()
        .find(|u| u.name == name)
        .ok_or_else(|| anyhow::anyhow!("no user {name:?} in the image's /etc/passwd"))
}

/// The home directories of the image's users that are directories in it (root's first),
/// each once.
fn user_homes(guest: &dyn Guest) -> Result<Vec<String>> {
    let passwd = read_text(guest, "/etc/passwd")?.unwrap_or_default();
    let mut homes = vec!["/root".to_string()];
    // "/" (system accounts) is a home too: a history there is a history.
    for u in crate::ops::inspect::system::passwd(&passwd) {
        let home = u.home.trim_end_matches('/').to_string();
        if home.starts_with('/') && !homes.contains(&home) && guest.list(&home)?.is_some() {
            homes.push(home);
        }
    }
    Ok(homes)
}

#[cfg(test)]
mod tests {
    use super::testing::{sample, written};
    use super::*;
    use crate::ops::customize::op::PasswordSource;

    /// Two passwords in one run: the second expansion starts from the first's shadow.
    #[test]
    fn later_expansions_see_earlier_ones() {
        let g = sample(&["/etc/passwd", "/etc/shadow", "/etc/pam.d/common-password"])
            .file("/tmp/x/y", b"");
        let mut x = Expander::new(Context { now: 0 });
        let pw = |user: &str| SystemOp::Password {
            user: user.into(),
            source: PasswordSource::Literal("pw".into()),
        };
        x.expand(&pw("root"), &g).unwrap();
        let second = x.expand(&pw("daemon"), &g).unwrap();
        let shadow = String::from_utf8(written(&second, "/etc/shadow")).unwrap();
        assert!(
            shadow.contains("\nroot:$y$") || shadow.starts_with("root:$y$"),
            "{shadow}"
        );
        assert!(shadow.contains("\ndaemon:$y$"), "{shadow}");

        x.expand(&SystemOp::Sysprep(vec!["tmp-files".into()]), &g)
            .unwrap();
        let view = Layered {
            guest: &g,
            written: &x.written,
            linked: &x.linked,
        };
        assert!(!view.exists("/tmp/x/y").unwrap());
        assert_eq!(view.list("/tmp").unwrap(), Some(vec![]));
    }
}
