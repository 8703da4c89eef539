//! `--firstboot SCRIPT` / `--firstboot-command CMD`: scripts run once, in order, at the next
//! boot, the way virt-customize does it: a one-shot systemd unit
//! (`/etc/systemd/system/subroot-firstboot.service`, wanted by `multi-user.target`) runs
//! `/usr/lib/subroot-firstboot/run`, which moves each script of `scripts/` to `done/`
//! before running it (so it never runs twice, even if the boot is cut short), logs to the
//! journal and the console, and at the end removes the unit's `wants` link.

use crate::ops::customize::op::{FileOp, Guest};
use anyhow::{bail, Context, Result};
use std::path::Path;

pub const DIR: &str = "/usr/lib/subroot-firstboot";
const UNIT: &str = "/etc/systemd/system/subroot-firstboot.service";
const WANTS: &str = "/etc/systemd/system/multi-user.target.wants/subroot-firstboot.service";

/// The unit: after the network is configured, before the SSH server (so `ssh-keygen -A`
/// of `--sysprep ssh-hostkeys` comes first).
const UNIT_TEXT: &str = "\
# Installed by subroot customize: runs the first-boot scripts of
# /usr/lib/subroot-firstboot/scripts once, then disables itself.
[Unit]
Description=subroot first-boot scripts
After=network.target
Before=ssh.service sshd.service
ConditionDirectoryNotEmpty=/usr/lib/subroot-firstboot/scripts

[Service]
Type=oneshot
ExecStart=/usr/lib/subroot-firstboot/run
RemainAfterExit=yes
StandardOutput=journal+console
StandardError=inherit
TimeoutSec=0

[Install]
WantedBy=multi-user.target
";

const RUN_TEXT: &str = "\
#!/bin/sh
# Installed by subroot customize: runs each first-boot script once, in order, then
# disables the unit that runs this.
d=/usr/lib/subroot-firstboot
mkdir -p \"$d/done\"
for f in \"$d\"/scripts/*; do
    [ -f \"$f\" ] || continue
    n=${f##*/}
    mv \"$f\" \"$d/done/$n\"
    chmod +x \"$d/done/$n\"
    echo \"subroot-firstboot: running $n\"
    \"$d/done/$n\" 2>&1
    echo \"subroot-firstboot: $n exited with status $?\"
done
rm -f /etc/systemd/system/multi-user.target.wants/subroot-firstboot.service
";

/// Script `number` (`0001-NAME`), and the runner and unit if the image lacks them.
pub fn expand(number: u32, name: &str, content: Vec<u8>, guest: &dyn Guest) -> Result<Vec<FileOp>> {
    if !guest.exists("/usr/lib/systemd/systemd")? && !guest.exists("/lib/systemd/systemd")? {
        bail!(
            "first-boot scripts run from a systemd unit, and the image has no systemd \
             (no /usr/lib/systemd/systemd or /lib/systemd/systemd)"
        );
    }
    let mut ops = vec![
        FileOp::Mkdir {
            path: format!("{DIR}/scripts"),
        },
        FileOp::Write {
            path: format!("{DIR}/scripts/{number:04}-{}", sanitize(name)),
            content,
            mode: Some(0o755),
        },
        FileOp::Write {
            path: format!("{DIR}/run"),
            content: RUN_TEXT.into(),
            mode: Some(0o755),
        },
        FileOp::Chmod {
            mode: 0o755,
            path: format!("{DIR}/run"),
        },
        FileOp::Write {
            path: UNIT.into(),
            content: UNIT_TEXT.into(),
            mode: Some(0o644),
        },
        FileOp::Mkdir {
            path: "/etc/systemd/system/multi-user.target.wants".into(),
        },
    ];
    if !guest.exists(WANTS)? {
        ops.push(FileOp::Symlink {
            target: UNIT.into(),
            link: WANTS.into(),
        });
    }
    Ok(ops)
}

/// The number after the highest of the scripts already waiting in the image.
pub fn next_number(guest: &dyn Guest) -> Result<u32> {
    let names = guest.list(&format!("{DIR}/scripts"))?.unwrap_or_default();
    Ok(names
        .iter()
        .filter_map(|n| n.split('-').next()?.parse::<u32>().ok())
        .max()
        .map_or(1, |n| n + 1))
}

/// A host script: its file name and content.
pub fn host_script(path: &Path) -> Result<(String, Vec<u8>)> {
    let content = std::fs::read(path)
        .with_context(|| format!("--firstboot: cannot read the script {}", path.display()))?;
    let name = path
        .file_name()
        .map_or_else(|| "script".into(), |n| n.to_string_lossy().into_owned());
    Ok((name, content))
}

/// A shell script running `cmd`.
pub fn command_script(cmd: &str) -> Vec<u8> {
    format!("#!/bin/sh\n{cmd}\n").into_bytes()
}

/// `name` with only the characters safe in a file name the runner globs over.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_start_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{written, DirGuest};
    use super::super::{Context, Expander};
    use super::*;
    use crate::ops::customize::op::SystemOp;
    use std::process::Command;

    /// A system with systemd where Debian 12 has it (merged /usr: /lib is a link).
    fn with_systemd() -> DirGuest {
        DirGuest::new()
            .file("/usr/lib/systemd/systemd", b"")
            .symlink("usr/lib", "/lib")
    }

    fn script_paths(ops: &[FileOp]) -> Vec<String> {
        ops.iter()
            .filter_map(|o| match o {
                FileOp::Write { path, .. } if path.contains("/scripts/") => Some(path.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn consecutive_numbers_after_those_waiting() {
        let g = with_systemd().file(&format!("{DIR}/scripts/0007-old"), b"#!/bin/sh\n");
        let mut x = Expander::new(Context { now: 0 });
        let a = x
            .expand(&SystemOp::FirstbootCommand("echo a".into()), &g)
            .unwrap();
        let b = x
            .expand(&SystemOp::FirstbootCommand("echo b".into()), &g)
            .unwrap();
        assert_eq!(script_paths(&a), [format!("{DIR}/scripts/0008-command")]);
        assert_eq!(script_paths(&b), [format!("{DIR}/scripts/0009-command")]);
        assert_eq!(
            written(&a, &format!("{DIR}/scripts/0008-command")),
            b"#!/bin/sh\necho a\n"
        );
        let link = FileOp::Symlink {
            target: UNIT.into(),
            link: WANTS.into(),
        };
        assert!(a.contains(&link));
        assert!(!b.contains(&link), "the wants link made twice");
    }

    #[test]
    fn host_script_name_is_kept_safe() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join(".my script;rm");
        std::fs::write(&f, "#!/bin/bash\necho hi\n").unwrap();
        let (name, content) = host_script(&f).unwrap();
        let ops = expand(1, &name, content.clone(), &with_systemd()).unwrap();
        assert_eq!(
            script_paths(&ops),
            [format!("{DIR}/scripts/0001-my_script_rm")]
        );
        let e = format!("{:#}", host_script(&d.path().join("none")).unwrap_err());
        assert!(e.contains("cannot read the script"), "{e}");
        let e = format!(
            "{:#}",
            expand(1, &name, content, &DirGuest::new()).unwrap_err()
        );
        assert!(e.contains("the image has no systemd"), "{e}");
    }

    /// The unit parses as systemd reads units (systemd-analyze verify, when the test
    /// machine has it).
    #[test]
    fn unit_is_valid_for_systemd() {
        let d = tempfile::tempdir().unwrap();
        let unit = d.path().join("subroot-firstboot.service");
        std::fs::write(
            &unit,
            UNIT_TEXT.replace("/usr/lib/subroot-firstboot/run", "/bin/true"),
        )
        .unwrap();
        let Ok(out) = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
        else {
            eprintln!("no systemd-analyze: skipped");
            return;
        };
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("subroot-firstboot.service:"), "{err}");
    }

    /// The runner, run on the host against a scratch copy of its directory: each script
    /// runs once, in order, its output and status logged, and the wants link removed.
    #[test]
    fn runner_runs_each_script_once_in_order() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let run = RUN_TEXT
            .replace(
                "/usr/lib/subroot-firstboot",
                &root.join("fb").to_string_lossy(),
            )
            .replace("/etc/systemd", &root.join("etc").to_string_lossy());
        std::fs::create_dir_all(root.join("fb/scripts")).unwrap();
        std::fs::create_dir_all(root.join("etc/system/multi-user.target.wants")).unwrap();
        let wants = root.join("etc/system/multi-user.target.wants/subroot-firstboot.service");
        std::fs::write(&wants, "").unwrap();
        std::fs::write(root.join("fb/run"), run).unwrap();
        for (n, body) in [("0002-b", "echo second; exit 3"), ("0001-a", "echo first")] {
            std::fs::write(
                root.join("fb/scripts").join(n),
                format!("#!/bin/sh\n{body}\n"),
            )
            .unwrap();
        }
        let go = || {
            Command::new("sh")
                .arg(root.join("fb/run"))
                .output()
                .unwrap()
        };
        let out = String::from_utf8(go().stdout).unwrap();
        assert_eq!(
            out,
            "subroot-firstboot: running 0001-a\nfirst\nsubroot-firstboot: 0001-a exited with status 0\n\
             subroot-firstboot: running 0002-b\nsecond\nsubroot-firstboot: 0002-b exited with status 3\n"
        );
        assert!(!wants.exists());
        assert_eq!(go().stdout, b"");
    }
}
