//! `--ssh-inject USER[:file:KEY|:string:KEY]`: the key(s) added to
//! `HOME/.ssh/authorized_keys` (HOME from the image's `/etc/passwd`) unless already there;
//! `.ssh` is 0700 and `authorized_keys` 0600, both owned by the user, as sshd's
//! `StrictModes` wants.

use super::{read_text, user, with_newline};
use crate::ops::customize::op::{FileOp, Guest, Id, KeySource};
use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;

pub fn expand(user_name: &str, key: &KeySource, guest: &dyn Guest) -> Result<Vec<FileOp>> {
    let what = format!("--ssh-inject {user_name}");
    let u = user(guest, user_name).with_context(|| what.clone())?;
    let keys = keys(key).with_context(|| what.clone())?;
    let home = u.home.trim_end_matches('/');
    if !home.starts_with('/') || guest.list(home)?.is_none() {
        bail!(
            "{what}: the home directory of {user_name:?} ({}) is not a directory in the image",
            u.home
        );
    }
    let ssh = format!("{home}/.ssh");
    let file = format!("{ssh}/authorized_keys");
    let mut text = read_text(guest, &file)?.unwrap_or_default();
    for k in &keys {
        if !text.lines().any(|l| l.trim() == k) {
            text = with_newline(text);
            text.push_str(k);
            text.push('\n');
        }
    }
    let owner = |path: &str| FileOp::Chown {
        user: Id::Number(u.uid),
        group: Id::Number(u.gid),
        path: path.to_string(),
    };
    Ok(vec![
        FileOp::Mkdir { path: ssh.clone() },
        FileOp::Chmod {
            mode: 0o700,
            path: ssh.clone(),
        },
        owner(&ssh),
        FileOp::Write {
            path: file.clone(),
            content: text.into_bytes(),
            mode: Some(0o600),
        },
        FileOp::Chmod {
            mode: 0o600,
            path: file.clone(),
        },
        owner(&file),
    ])
}

/// The public key lines to add (comments and blank lines of a key file left out).
fn keys(source: &KeySource) -> Result<Vec<String>> {
    let (text, from) = match source {
        KeySource::String(s) => (s.clone(), "the key given".to_string()),
        KeySource::File(f) => (
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the key file {}", f.display()))?,
            f.display().to_string(),
        ),
        KeySource::Default => {
            let f = default_key()?;
            (
                std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read the key file {}", f.display()))?,
                f.display().to_string(),
            )
        }
    };
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if keys.is_empty() {
        bail!("{from}: no public key in it");
    }
    for k in &keys {
        // options (`from="..." ssh-ed25519 AAAA...`) or a key type, then base64 data.
        let plausible = k.split_whitespace().count() >= 2 && !k.contains('\0');
        if !plausible {
            bail!("{from}: {k:?} is not an SSH public key line (expected e.g. \"ssh-ed25519 AAAA... comment\")");
        }
    }
    Ok(keys)
}

/// The invoking user's public key, as virt-customize takes it: the first of
/// `~/.ssh/id_{ed25519,ecdsa,rsa}.pub`.
fn default_key() -> Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow!("no key given and HOME is not set to find ~/.ssh/id_*.pub"))?;
    let dir = PathBuf::from(home).join(".ssh");
    ["id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "no key given and none of {}/id_{{ed25519,ecdsa,rsa}}.pub exists",
                dir.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{sample, written};
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOz0n5V3wYk7nq2wP1Nn2mRZ0lF9GkqH3Y3N5s0JgqYb test@host";

    /// A key made by the test machine's ssh-keygen, if it has one.
    fn generated_key() -> Option<String> {
        let d = tempfile::tempdir().unwrap();
        let k = d.path().join("k");
        let ok = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "gen@test", "-f"])
            .arg(&k)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| std::fs::read_to_string(k.with_extension("pub")).unwrap())
    }

    #[test]
    fn root_key_into_new_ssh_dir_with_owner_and_modes() {
        let g = sample(&["/etc/passwd"]).dir("/root");
        let key = generated_key().unwrap_or_else(|| KEY.to_string());
        let ops = expand("root", &KeySource::String(key.clone()), &g).unwrap();
        assert_eq!(
            written(&ops, "/root/.ssh/authorized_keys"),
            format!("{}\n", key.trim()).into_bytes()
        );
        assert!(ops.contains(&FileOp::Mkdir {
            path: "/root/.ssh".into()
        }));
        assert!(ops.contains(&FileOp::Chmod {
            mode: 0o700,
            path: "/root/.ssh".into()
        }));
        assert!(ops.contains(&FileOp::Chmod {
            mode: 0o600,
            path: "/root/.ssh/authorized_keys".into()
        }));
        assert!(ops.contains(&FileOp::Chown {
            user: Id::Number(0),
            group: Id::Number(0),
            path: "/root/.ssh/authorized_keys".into()
        }));
    }

    #[test]
    fn appended_once_to_an_existing_file_without_final_newline() {
        let g = sample(&["/etc/passwd"]).dir("/usr/games").file(
            "/usr/games/.ssh/authorized_keys",
            b"ssh-rsa AAAAB3Nza old@key",
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k.pub");
        std::fs::write(&f, format!("# mine\n\n{KEY}\n")).unwrap();
        let ops = expand("games", &KeySource::File(f.clone()), &g).unwrap();
        let out = written(&ops, "/usr/games/.ssh/authorized_keys");
        assert_eq!(
            out,
            format!("ssh-rsa AAAAB3Nza old@key\n{KEY}\n").into_bytes()
        );
        assert!(ops.contains(&FileOp::Chown {
            user: Id::Number(5),
            group: Id::Number(60),
            path: "/usr/games/.ssh".into()
        }));
        // Again, on the result: nothing added.
        let g2 = g.file("/usr/games/.ssh/authorized_keys", &out);
        assert_eq!(
            written(
                &expand("games", &KeySource::File(f), &g2).unwrap(),
                "/usr/games/.ssh/authorized_keys"
            ),
            out
        );
    }

    #[test]
    fn bad_user_home_or_key_is_refused() {
        let g = sample(&["/etc/passwd"]).dir("/root");
        let e = format!(
            "{:#}",
            expand("alice", &KeySource::String(KEY.into()), &g).unwrap_err()
        );
        assert!(e.contains("no user \"alice\""), "{e}");
        let e = format!(
            "{:#}",
            expand("nobody", &KeySource::String(KEY.into()), &g).unwrap_err()
        );
        assert!(e.contains("/nonexistent) is not a directory"), "{e}");
        let e = format!(
            "{:#}",
            expand("root", &KeySource::String("garbage".into()), &g).unwrap_err()
        );
        assert!(e.contains("not an SSH public key line"), "{e}");
        let e = format!(
            "{:#}",
            expand("root", &KeySource::File("/no/such.pub".into()), &g).unwrap_err()
        );
        assert!(e.contains("cannot read the key file /no/such.pub"), "{e}");
    }
}
