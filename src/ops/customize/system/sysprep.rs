//! `--sysprep [OPS]`: what makes an image a template rather than one machine, removed (the
//! operations and their names follow virt-sysprep's). Without names, all of them.

use super::{join, user_homes};
use crate::ops::customize::op::{EntryKind, FileOp, Guest};
use anyhow::{anyhow, bail, Result};

/// The operations, in the order they run (what each does: `customize_system!` in
/// src/cli/help.rs).
pub const OPERATIONS: &[&str] = &[
    "machine-id",
    "ssh-hostkeys",
    "logfiles",
    "random-seed",
    "dhcp-client-state",
    "bash-history",
    "package-manager-cache",
    "tmp-files",
    "passwd-backups",
    "udev-persistent-net",
];

/// What the selected operations do: file operations, and first-boot scripts (name,
/// content) to install.
pub struct Plan {
    pub ops: Vec<FileOp>,
    pub firstboot: Vec<(String, Vec<u8>)>,
}

pub fn expand(names: &[String], guest: &dyn Guest) -> Result<Plan> {
    for n in names {
        if !OPERATIONS.contains(&n.as_str()) {
            bail!(
                "--sysprep: unknown operation {n:?} (known: {})",
                OPERATIONS.join(", ")
            );
        }
    }
    let mut plan = Plan {
        ops: Vec::new(),
        firstboot: Vec::new(),
    };
    for name in OPERATIONS {
        if names.is_empty() || names.iter().any(|n| n == name) {
            run(name, guest, &mut plan)?;
        }
    }
    Ok(plan)
}

fn run(name: &str, guest: &dyn Guest, plan: &mut Plan) -> Result<()> {
    let ops = &mut plan.ops;
    match name {
        "machine-id" => {
            if guest.kind("/etc/machine-id")? == Some(EntryKind::File) {
                ops.push(FileOp::Truncate {
                    path: "/etc/machine-id".into(),
                });
            }
            delete_if_there(guest, "/var/lib/dbus/machine-id", ops)?;
        }
        "ssh-hostkeys" => {
            let keys = matching(guest, "/etc/ssh", |n| n.starts_with("ssh_host_"))?;
            let had_keys = !keys.is_empty();
            delete_all(keys, ops);
            if had_keys || guest.exists("/usr/sbin/sshd")? {
                plan.firstboot.push((
                    "ssh-hostkeys".into(),
                    b"#!/bin/sh\n# new SSH host keys for this machine (subroot customize --sysprep)\nssh-keygen -A\n".to_vec(),
                ));
            }
        }
        "logfiles" => logfiles(guest, "/var/log", 0, ops)?,
        "random-seed" => {
            for seed in [
                "/var/lib/systemd/random-seed",
                "/var/lib/urandom/random-seed",
                "/var/lib/random-seed",
            ] {
                if guest.kind(seed)? == Some(EntryKind::File) {
                    let len = guest.read(seed)?.map_or(0, |d| d.len()).clamp(32, 4096);
                    let mut content = vec![0u8; len];
                    getrandom::fill(&mut content)
                        .map_err(|e| anyhow!("--sysprep random-seed: no random bytes: {e}"))?;
                    ops.push(FileOp::Write {
                        path: seed.into(),
                        content,
                        mode: Some(0o600),
                    });
                }
            }
        }
        "dhcp-client-state" => {
            for dir in ["/var/lib/dhcp", "/var/lib/dhclient", "/var/lib/dhcpcd"] {
                let leases = matching(guest, dir, |n| n.contains("lease"))?;
                delete_all(leases, ops);
            }
            let nm = matching(guest, "/var/lib/NetworkManager", |n| {
                n.ends_with(".lease") || n.starts_with("dhclient-")
            })?;
            delete_all(nm, ops);
        }
        "bash-history" => {
            const HISTORIES: &[&str] = &[
                ".bash_history",
                ".zsh_history",
                ".sh_history",
                ".ash_history",
                ".history",
                ".python_history",
                ".lesshst",
                ".mysql_history",
                ".psql_history",
                ".sqlite_history",
                ".node_repl_history",
            ];
            for home in user_homes(guest)? {
                for h in HISTORIES {
                    delete_if_there(guest, &join(&home, h), ops)?;
                }
            }
        }
        "package-manager-cache" => {
            let apt = matching(guest, "/var/cache/apt", |n| n.ends_with(".bin"))?;
            delete_all(apt, ops);
            let debs = matching(guest, "/var/cache/apt/archives", |n| n.ends_with(".deb"))?;
            delete_all(debs, ops);
            for dir in [
                "/var/cache/apt/archives/partial",
                "/var/cache/dnf",
                "/var/cache/yum",
            ] {
                delete_all(matching(guest, dir, |_| true)?, ops);
            }
        }
        "tmp-files" => {
            for dir in ["/tmp", "/var/tmp"] {
                delete_all(matching(guest, dir, |_| true)?, ops);
            }
        }
        "passwd-backups" => {
            for f in [
                "passwd-", "shadow-", "group-", "gshadow-", "subuid-", "subgid-",
            ] {
                delete_if_there(guest, &format!("/etc/{f}"), ops)?;
            }
        }
        "udev-persistent-net" => {
            delete_if_there(guest, "/etc/udev/rules.d/70-persistent-net.rules", ops)?;
        }
        _ => unreachable!("{name} is checked against OPERATIONS"),
    }
    Ok(())
}

/// The paths of the entries of `dir` whose names `keep` accepts (none if `dir` is not a
/// directory).
fn matching(guest: &dyn Guest, dir: &str, keep: impl Fn(&str) -> bool) -> Result<Vec<String>> {
    Ok(guest
        .list(dir)?
        .unwrap_or_default()
        .into_iter()
        .filter(|n| keep(n))
        .map(|n| join(dir, &n))
        .collect())
}

fn delete_all(paths: Vec<String>, ops: &mut Vec<FileOp>) {
    ops.extend(paths.into_iter().map(|path| FileOp::Delete { path }));
}

fn delete_if_there(guest: &dyn Guest, path: &str, ops: &mut Vec<FileOp>) -> Result<()> {
    if guest.exists(path)? {
        ops.push(FileOp::Delete { path: path.into() });
    }
    Ok(())
}

/// Logs under `dir`: the journal's files and rotated or compressed logs removed, other
/// regular files truncated (they keep their owner and mode, which the programs writing
/// them expect: `wtmp`, `btmp`, `lastlog`); symlinks and directories left.
fn logfiles(guest: &dyn Guest, dir: &str, depth: u32, ops: &mut Vec<FileOp>) -> Result<()> {
    let Some(names) = guest.list(dir)? else {
        return Ok(());
    };
    for n in names {
        let path = join(dir, &n);
        if dir == "/var/log/journal" {
            ops.push(FileOp::Delete { path });
            continue;
        }
        match guest.kind(&path)? {
            Some(EntryKind::Dir) if depth < 16 => logfiles(guest, &path, depth + 1, ops)?,
            Some(EntryKind::File) if rotated(&n) => ops.push(FileOp::Delete { path }),
            Some(EntryKind::File) => ops.push(FileOp::Truncate { path }),
            _ => {}
        }
    }
    Ok(())
}

/// A rotated or compressed log: `syslog.1`, `dpkg.log.2.gz`, `messages-20240101`,
/// `x.old`, a journal file.
fn rotated(name: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        ".gz",
        ".xz",
        ".bz2",
        ".zst",
        ".lz4",
        ".old",
        ".journal",
        ".journal~",
    ];
    if SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return true;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let numbered = name.rsplit_once('.').is_some_and(|(_, n)| digits(n));
    let dated = name
        .rsplit_once('-')
        .is_some_and(|(_, d)| d.len() == 8 && digits(d));
    numbered || dated
}

#[cfg(test)]
mod tests {
    use super::super::testing::{sample, DirGuest};
    use super::*;

    /// The paths of the removals (`delete`) or truncations in `ops`.
    fn paths(ops: &[FileOp], delete: bool) -> Vec<&str> {
        ops.iter()
            .filter_map(|o| match o {
                FileOp::Delete { path } if delete => Some(path.as_str()),
                FileOp::Truncate { path } if !delete => Some(path.as_str()),
                _ => None,
            })
            .collect()
    }

    fn deleted(ops: &[FileOp]) -> Vec<&str> {
        paths(ops, true)
    }

    fn truncated(ops: &[FileOp]) -> Vec<&str> {
        paths(ops, false)
    }

    /// A used Debian system: the image's own passwd and machine-id with what a running
    /// machine adds.
    fn used_debian() -> DirGuest {
        sample(&["/etc/passwd", "/etc/machine-id"])
            .file("/etc/machine-id", b"0123456789abcdef0123456789abcdef\n")
            .symlink("/etc/machine-id", "/var/lib/dbus/machine-id")
            .file("/etc/ssh/ssh_host_ed25519_key", b"k")
            .file("/etc/ssh/ssh_host_ed25519_key.pub", b"k")
            .file("/etc/ssh/sshd_config", b"# keep\n")
            .file("/var/log/dpkg.log", b"x")
            .file("/var/log/dpkg.log.1", b"x")
            .file("/var/log/apt/history.log.2.gz", b"x")
            .file("/var/log/wtmp", b"x")
            .file(
                "/var/log/journal/0123456789abcdef0123456789abcdef/system.journal",
                b"x",
            )
            .symlink("../../usr/share/doc/systemd/README.logs", "/var/log/README")
            .file("/var/lib/systemd/random-seed", &[7u8; 512])
            .file("/var/lib/dhcp/dhclient.enp1s0.leases", b"lease {}")
            .file("/root/.bash_history", b"ls\n")
            .file("/usr/games/.python_history", b"1+1\n")
            .file("/var/cache/apt/pkgcache.bin", b"x")
            .file("/var/cache/apt/archives/vim_9.0_amd64.deb", b"x")
            .file("/var/cache/apt/archives/lock", b"")
            .dir("/var/cache/apt/archives/partial")
            .file("/tmp/.X0-lock", b"")
            .dir("/var/tmp/systemd-private-x/tmp")
            .file("/etc/shadow-", b"root:*:1::::::\n")
    }

    #[test]
    fn all_operations_on_a_used_system() {
        let plan = expand(&[], &used_debian()).unwrap();
        let mut d = deleted(&plan.ops);
        d.sort();
        assert_eq!(
            d,
            [
                "/etc/shadow-",
                "/etc/ssh/ssh_host_ed25519_key",
                "/etc/ssh/ssh_host_ed25519_key.pub",
                "/root/.bash_history",
                "/tmp/.X0-lock",
                "/usr/games/.python_history",
                "/var/cache/apt/archives/vim_9.0_amd64.deb",
                "/var/cache/apt/pkgcache.bin",
                "/var/lib/dbus/machine-id",
                "/var/lib/dhcp/dhclient.enp1s0.leases",
                "/var/log/apt/history.log.2.gz",
                "/var/log/dpkg.log.1",
                "/var/log/journal/0123456789abcdef0123456789abcdef",
                "/var/tmp/systemd-private-x",
            ]
        );
        let mut t = truncated(&plan.ops);
        t.sort();
        assert_eq!(t, ["/etc/machine-id", "/var/log/dpkg.log", "/var/log/wtmp"]);
        let seed = plan.ops.iter().find_map(|o| match o {
            FileOp::Write { path, content, .. } if path == "/var/lib/systemd/random-seed" => {
                Some(content)
            }
            _ => None,
        });
        assert!(seed.is_some_and(|s| s.len() == 512 && s != &vec![7u8; 512]));
        assert_eq!(plan.firstboot.len(), 1);
        assert!(String::from_utf8_lossy(&plan.firstboot[0].1).contains("\nssh-keygen -A\n"));
    }

    #[test]
    fn named_operations_only_and_unknown_names_refused() {
        let plan = expand(&["machine-id".into()], &used_debian()).unwrap();
        assert_eq!(truncated(&plan.ops), ["/etc/machine-id"]);
        assert_eq!(deleted(&plan.ops), ["/var/lib/dbus/machine-id"]);
        assert!(plan.firstboot.is_empty());
        let e = expand(&["machine-id".into(), "hostname".into()], &used_debian())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("unknown operation \"hostname\"") && e.contains("ssh-hostkeys"),
            "{e}"
        );
    }

    /// The test machine's own /var/log: every regular file is truncated or removed,
    /// nothing else touched, nothing outside /var/log.
    #[test]
    fn host_var_log_is_covered() {
        let g = DirGuest::at(std::path::Path::new("/"));
        let plan = expand(&["logfiles".into()], &g).unwrap();
        let mut expect = Vec::new();
        let mut stack = vec![std::path::PathBuf::from("/var/log")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let t = e.file_type().unwrap();
                let p = e.path().to_string_lossy().into_owned();
                if d.ends_with("journal") && d.parent() == Some(std::path::Path::new("/var/log")) {
                    expect.push(p);
                } else if t.is_dir() {
                    stack.push(e.path());
                } else if t.is_file() {
                    expect.push(p);
                }
            }
        }
        let mut got: Vec<&str> = deleted(&plan.ops);
        got.extend(truncated(&plan.ops));
        got.sort();
        expect.sort();
        assert_eq!(got, expect);
        assert_eq!(got.len(), plan.ops.len());
    }

    #[test]
    fn help_describes_every_operation() {
        for op in OPERATIONS {
            assert!(
                crate::cli::help::CUSTOMIZE.contains(&format!("\n     {op} ")),
                "{op} is not in the help"
            );
        }
    }

    #[test]
    fn rotated_names() {
        for r in [
            "syslog.1",
            "dpkg.log.2.gz",
            "messages-20240101",
            "x.old",
            "system@a.journal~",
        ] {
            assert!(rotated(r), "{r}");
        }
        for l in ["syslog", "dpkg.log", "wtmp", "cloud-init.log", "Xorg.0.log"] {
            assert!(!rotated(l), "{l}");
        }
    }
}
