//! `--root-password` / `--password USER:...`: the user's line of `/etc/shadow` gets a new
//! hash, made the way the image itself would make it (see [`method`]), with a random salt
//! from the operating system; `disabled` locks password logins (`*`). The other fields and
//! lines stay as they are, except the day of the last change, set to the run's day as
//! `passwd` does (unless empty: ageing off). The file keeps its owner and mode.

use super::{read_text, user, with_newline};
use crate::ops::customize::op::{FileOp, Guest, PasswordSource};
use anyhow::{anyhow, bail, Context, Result};
use sha_crypt::{PasswordHasher, ShaCrypt};

/// How a system hashes passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `$y$` (libxcrypt's yescrypt; Debian 11+, Fedora 35+, Ubuntu 22.04+).
    Yescrypt,
    /// `$6$`.
    Sha512,
    /// `$5$`.
    Sha256,
}

pub fn expand(
    user_name: &str,
    source: &PasswordSource,
    guest: &dyn Guest,
    now: u64,
) -> Result<Vec<FileOp>> {
    let what = if user_name == "root" {
        "--root-password".to_string()
    } else {
        format!("--password {user_name}")
    };
    user(guest, user_name).with_context(|| what.clone())?;
    let shadow = read_text(guest, "/etc/shadow")?
        .ok_or_else(|| anyhow!("{what}: no /etc/shadow in the image"))?;
    let field = match source {
        PasswordSource::Disabled => "*".to_string(),
        PasswordSource::Literal(pw) => hash(pw, method(guest)?).with_context(|| what.clone())?,
        PasswordSource::File(f) => {
            let text = std::fs::read_to_string(f).with_context(|| {
                format!("{what}: cannot read the password file {}", f.display())
            })?;
            let pw = text.lines().next().unwrap_or("");
            if pw.is_empty() {
                bail!(
                    "{what}: the first line of {} is empty (expected the password)",
                    f.display()
                );
            }
            hash(pw, method(guest)?).with_context(|| what.clone())?
        }
    };
    let today = (now / 86_400).to_string();
    let mut found = false;
    let lines: Vec<String> = shadow
        .lines()
        .map(|line| {
            let mut f: Vec<&str> = line.split(':').collect();
            if f.len() < 3 || f[0] != user_name || found {
                return line.to_string();
            }
            found = true;
            f[1] = &field;
            if !matches!(source, PasswordSource::Disabled) && !f[2].is_empty() {
                f[2] = &today;
            }
            f.join(":")
        })
        .collect();
    if !found {
        bail!("{what}: user {user_name:?} has no line in the image's /etc/shadow");
    }
    Ok(vec![FileOp::Write {
        path: "/etc/shadow".into(),
        content: with_newline(lines.join("\n")).into_bytes(),
        mode: None,
    }])
}

/// How the image hashes passwords: the `pam_unix` options of its PAM password stack (what
/// `passwd` uses), else `ENCRYPT_METHOD` of `/etc/login.defs` (what `chpasswd` uses), else
/// the kind most of its `/etc/shadow` hashes are, else sha512-crypt (every glibc since 2.7).
pub fn method(guest: &dyn Guest) -> Result<Method> {
    for pam in [
        "/etc/pam.d/common-password",
        "/etc/pam.d/system-auth",
        "/etc/pam.d/password-auth",
    ] {
        let Some(text) = read_text(guest, pam)? else {
            continue;
        };
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.first() != Some(&"password")
                || !words.iter().any(|w| w.ends_with("pam_unix.so"))
            {
                continue;
            }
            for w in &words {
                match *w {
                    "yescrypt" => return Ok(Method::Yescrypt),
                    "sha512" => return Ok(Method::Sha512),
                    "sha256" => return Ok(Method::Sha256),
                    _ => {}
                }
            }
        }
    }
    if let Some(text) = read_text(guest, "/etc/login.defs")? {
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() == Some("ENCRYPT_METHOD") {
                match words.next() {
                    Some("YESCRYPT") => return Ok(Method::Yescrypt),
                    Some("SHA512") => return Ok(Method::Sha512),
                    Some("SHA256") => return Ok(Method::Sha256),
                    _ => {}
                }
            }
        }
    }
    let mut counts = [
        (Method::Yescrypt, "$y$", 0),
        (Method::Sha512, "$6$", 0),
        (Method::Sha256, "$5$", 0),
    ];
    if let Some(text) = read_text(guest, "/etc/shadow")? {
        for line in text.lines() {
            let hash = line.split(':').nth(1).unwrap_or("");
            for c in counts.iter_mut() {
                if hash.starts_with(c.1) {
                    c.2 += 1;
                }
            }
        }
    }
    Ok(counts
        .iter()
        .filter(|c| c.2 > 0)
        .max_by_key(|c| c.2)
        .map_or(Method::Sha512, |c| c.0))
}

/// A crypt(3) hash of `password` with a fresh random salt.
pub fn hash(password: &str, method: Method) -> Result<String> {
    if password.contains(['\0', '\n']) {
        bail!("a password cannot hold a NUL or a newline");
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow!("cannot get random bytes for a salt: {e}"))?;
    let out = match method {
        Method::Yescrypt => yescrypt::Yescrypt::default()
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map(|h| h.to_string()),
        // 12 bytes: the 16 salt characters crypt(3) uses.
        Method::Sha512 => ShaCrypt::SHA512
            .hash_password_with_salt(password.as_bytes(), &salt[..12])
            .map(|h| h.to_string()),
        Method::Sha256 => ShaCrypt::SHA256
            .hash_password_with_salt(password.as_bytes(), &salt[..12])
            .map(|h| h.to_string()),
    };
    out.map_err(|e| anyhow!("cannot hash the password: {e}"))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{sample, written, DirGuest};
    use super::*;
    use std::process::Command;

    /// Whether the system's crypt(3) (libxcrypt, through perl) accepts `password` for `hash`.
    fn crypt_verifies(password: &str, hash: &str) -> bool {
        let out = Command::new("perl")
            .args([
                "-e",
                "print crypt($ARGV[0], $ARGV[1]) eq $ARGV[1] ? 'yes' : 'no'",
            ])
            .args([password, hash])
            .output()
            .expect("perl");
        assert!(out.status.success());
        out.stdout == b"yes"
    }

    const DEBIAN: &[&str] = &[
        "/etc/passwd",
        "/etc/shadow",
        "/etc/login.defs",
        "/etc/pam.d/common-password",
    ];

    #[test]
    fn hashes_verify_with_the_system_crypt() {
        for (m, prefix) in [
            (Method::Yescrypt, "$y$j9T$"),
            (Method::Sha512, "$6$"),
            (Method::Sha256, "$5$"),
        ] {
            let h = hash("correct horse: battery staple", m).unwrap();
            assert!(h.starts_with(prefix), "{h}");
            assert!(crypt_verifies("correct horse: battery staple", &h), "{h}");
            assert!(!crypt_verifies("correct horse: battery stapl", &h), "{h}");
            assert_ne!(
                h,
                hash("correct horse: battery staple", m).unwrap(),
                "same salt twice"
            );
        }
    }

    /// Debian 12: PAM says yescrypt, login.defs still says SHA512; passwd(1) follows PAM.
    #[test]
    fn debian_image_hashes_with_yescrypt() {
        assert_eq!(method(&sample(DEBIAN)).unwrap(), Method::Yescrypt);
        let no_pam = sample(&["/etc/login.defs"]);
        assert_eq!(method(&no_pam).unwrap(), Method::Sha512);
        let only_hashes = DirGuest::new().file(
            "/etc/shadow",
            b"a:$y$j9T$x$y:1::::::\nb:$6$x$y:1::::::\nc:$y$j9T$x$y:1::::::\n",
        );
        assert_eq!(method(&only_hashes).unwrap(), Method::Yescrypt);
        assert_eq!(method(&DirGuest::new()).unwrap(), Method::Sha512);
    }

    #[test]
    fn root_line_gets_the_hash_and_todays_date_others_untouched() {
        let g = sample(DEBIAN);
        let before = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/debian12-etc/etc/shadow"
        ))
        .unwrap();
        let now = 20_800 * 86_400 + 3600;
        let ops = expand("root", &PasswordSource::Literal("s3cret!".into()), &g, now).unwrap();
        let after = String::from_utf8(written(&ops, "/etc/shadow")).unwrap();
        assert_eq!(before.lines().count(), after.lines().count());
        for (b, a) in before.lines().zip(after.lines()) {
            if b.starts_with("root:") {
                let f: Vec<&str> = a.split(':').collect();
                assert!(f[1].starts_with("$y$j9T$"), "{a}");
                assert!(crypt_verifies("s3cret!", f[1]));
                assert_eq!(f[2], "20800");
                assert_eq!(f[3..], b.split(':').collect::<Vec<_>>()[3..]);
            } else {
                assert_eq!(a, b);
            }
        }
        assert!(after.ends_with('\n'));
    }

    #[test]
    fn disabled_and_file_sources() {
        let g = sample(DEBIAN);
        let ops = expand("nobody", &PasswordSource::Disabled, &g, 0).unwrap();
        let after = String::from_utf8(written(&ops, "/etc/shadow")).unwrap();
        assert!(after.contains("\nnobody:*:20790:0:99999:7:::\n"), "{after}");

        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "from-file\nsecond line\n").unwrap();
        let ops = expand("daemon", &PasswordSource::File(f.clone()), &g, 0).unwrap();
        let after = String::from_utf8(written(&ops, "/etc/shadow")).unwrap();
        let h = after
            .lines()
            .find(|l| l.starts_with("daemon:"))
            .unwrap()
            .split(':')
            .nth(1)
            .unwrap()
            .to_string();
        assert!(crypt_verifies("from-file", &h));

        std::fs::write(&f, "\n").unwrap();
        let e = format!(
            "{:#}",
            expand("daemon", &PasswordSource::File(f), &g, 0).unwrap_err()
        );
        assert!(e.contains("is empty"), "{e}");
        let e = format!(
            "{:#}",
            expand(
                "daemon",
                &PasswordSource::File(dir.path().join("none")),
                &g,
                0
            )
            .unwrap_err()
        );
        assert!(e.contains("cannot read the password file"), "{e}");
    }

    #[test]
    fn unknown_user_is_refused() {
        let g = sample(DEBIAN);
        let e = format!(
            "{:#}",
            expand("alice", &PasswordSource::Literal("x".into()), &g, 0).unwrap_err()
        );
        assert!(
            e.contains("--password alice") && e.contains("no user \"alice\""),
            "{e}"
        );
    }
}
