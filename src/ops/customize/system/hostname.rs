//! `--hostname NAME`: `/etc/hostname`, and the `127.0.1.1` line of `/etc/hosts` (the line
//! Debian's installer writes for the machine's own name) replaced or added.

use super::{read_text, with_newline};
use crate::ops::customize::op::{FileOp, Guest};
use anyhow::{bail, Result};

pub fn expand(name: &str, guest: &dyn Guest) -> Result<Vec<FileOp>> {
    check(name)?;
    let short = name.split('.').next().unwrap_or(name);
    let names = if short == name {
        name.to_string()
    } else {
        format!("{name} {short}")
    };
    let own = format!("127.0.1.1\t{names}");
    let hosts = match read_text(guest, "/etc/hosts")? {
        Some(text) => with_own_line(&text, &own),
        None => format!(
            "127.0.0.1\tlocalhost\n{own}\n\n\
             # The following lines are desirable for IPv6 capable hosts\n\
             ::1     localhost ip6-localhost ip6-loopback\n\
             ff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n"
        ),
    };
    Ok(vec![
        FileOp::Write {
            path: "/etc/hostname".into(),
            content: format!("{name}\n").into_bytes(),
            mode: None,
        },
        FileOp::Write {
            path: "/etc/hosts".into(),
            content: hosts.into_bytes(),
            mode: None,
        },
    ])
}

/// A host name as RFC 1123 allows: dot-separated labels of letters, digits and `-`
/// (not first or last), each 1 to 63 long, 253 in all.
fn check(name: &str) -> Result<()> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        bail!(
            "--hostname {name:?}: not a host name (expected dot-separated labels of letters, \
             digits and '-', each 1 to 63 long)"
        );
    }
    Ok(())
}

/// `hosts` with its `127.0.1.1` line(s) replaced by `own`, or `own` added after the
/// `127.0.0.1` line (at the end if there is none).
fn with_own_line(hosts: &str, own: &str) -> String {
    let is_own = |l: &str| l.split_whitespace().next() == Some("127.0.1.1");
    let mut lines: Vec<&str> = hosts.lines().collect();
    if lines.iter().any(|l| is_own(l)) {
        let mut done = false;
        lines.retain(|l| !is_own(l) || !std::mem::replace(&mut done, true));
        let at = lines.iter().position(|l| is_own(l)).unwrap_or(lines.len());
        lines[at] = own;
    } else {
        let at = lines
            .iter()
            .rposition(|l| l.split_whitespace().next() == Some("127.0.0.1"))
            .map_or(lines.len(), |i| i + 1);
        lines.insert(at, own);
    }
    with_newline(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{sample, written, DirGuest};
    use super::*;

    /// The machine's own /etc/hosts (a real one: localhost, IPv6 lines, maybe 127.0.1.1).
    #[test]
    fn host_hosts_file_gets_one_own_line_and_keeps_the_others() {
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap();
        let g = DirGuest::new().file("/etc/hosts", hosts.as_bytes());
        let ops = expand("builder.example.org", &g).unwrap();
        assert_eq!(written(&ops, "/etc/hostname"), b"builder.example.org\n");
        let out = String::from_utf8(written(&ops, "/etc/hosts")).unwrap();
        let own: Vec<&str> = out.lines().filter(|l| l.starts_with("127.0.1.1")).collect();
        assert_eq!(own, ["127.0.1.1\tbuilder.example.org builder"]);
        let others = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.starts_with("127.0.1.1"))
                .map(String::from)
                .collect()
        };
        assert_eq!(others(&out), others(&hosts));
    }

    #[test]
    fn debian_installer_hosts_line_is_replaced_in_place() {
        let hosts = "127.0.0.1\tlocalhost\n127.0.1.1\told.lan\told\n\n::1     localhost ip6-localhost ip6-loopback\n";
        let g = DirGuest::new().file("/etc/hosts", hosts.as_bytes());
        let out = written(&expand("new", &g).unwrap(), "/etc/hosts");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "127.0.0.1\tlocalhost\n127.0.1.1\tnew\n\n::1     localhost ip6-localhost ip6-loopback\n"
        );
    }

    /// The cached Debian image has /etc/hostname but no /etc/hosts: one is created with
    /// the localhost lines, so that adding it does not break `localhost`.
    #[test]
    fn missing_hosts_is_created_with_localhost() {
        let g = sample(&["/etc/hostname"]);
        let ops = expand("vm1", &g).unwrap();
        let out = String::from_utf8(written(&ops, "/etc/hosts")).unwrap();
        assert!(
            out.starts_with("127.0.0.1\tlocalhost\n127.0.1.1\tvm1\n"),
            "{out}"
        );
        assert!(out.contains("::1     localhost"));
    }

    #[test]
    fn bad_names_are_refused() {
        let g = DirGuest::new();
        for bad in ["", "a b", "-a", "a-", "a..b", "x\ny", &"a".repeat(64)] {
            let e = expand(bad, &g).unwrap_err().to_string();
            assert!(e.contains("not a host name"), "{bad:?}: {e}");
        }
    }
}
