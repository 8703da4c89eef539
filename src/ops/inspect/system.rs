//! Parsers for the files of an installed system that `inspect` reports: `os-release`,
//! `/etc/passwd`, dpkg's `status` database, and which rpm database format a system holds.
//! Pure text in, values out; nothing here reads an image.

use serde::Serialize;
use std::collections::BTreeMap;

/// `os-release` (shell-style `KEY=value` lines; values may be double- or single-quoted,
/// with `\` escapes inside double quotes); comments and malformed lines are skipped.
pub fn os_release(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        out.insert(key.to_string(), unquote(raw));
    }
    out
}

/// A shell word as os-release writes values: `"a \"b\""`, `'a b'` or `plain`.
fn unquote(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            (None, c) if c.is_whitespace() => break,
            (_, c) => out.push(c),
        }
    }
    out
}

/// One account of `/etc/passwd` (the password field is never read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// The accounts of `/etc/passwd`, in file order; lines that are not seven fields with
/// numeric ids (comments, NIS `+` lines) are skipped.
pub fn passwd(text: &str) -> Vec<User> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() != 7 || f[0].is_empty() || f[0].starts_with(['#', '+', '-']) {
                return None;
            }
            Some(User {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
                shell: f[6].to_string(),
            })
        })
        .collect()
}

/// An installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
}

/// The installed packages of a dpkg `status` file: the stanzas whose `Status` ends in
/// `installed` (not `config-files`, `half-installed`, …), in file order.
pub fn dpkg_status(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let (mut name, mut version, mut arch, mut installed) = (None, None, None, false);
        for line in stanza.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if line.starts_with([' ', '\t']) {
                continue; // a continuation line
            }
            let v = v.trim();
            match k {
                "Package" => name = Some(v),
                "Version" => version = Some(v),
                "Architecture" => arch = Some(v),
                "Status" => installed = v.split_whitespace().nth(2) == Some("installed"),
                _ => {}
            }
        }
        if let (Some(n), true) = (name, installed) {
            out.push(Package {
                name: n.to_string(),
                version: version.unwrap_or_default().to_string(),
                architecture: arch.unwrap_or_default().to_string(),
            });
        }
    }
    out
}

/// Where rpm keeps its database, newest layout first, and the format each file name means.
pub const RPM_DATABASES: &[(&str, &str)] = &[
    ("usr/lib/sysimage/rpm/rpmdb.sqlite", "sqlite"),
    ("usr/lib/sysimage/rpm/Packages.db", "ndb"),
    ("usr/lib/sysimage/rpm/Packages", "bdb"),
    ("var/lib/rpm/rpmdb.sqlite", "sqlite"),
    ("var/lib/rpm/Packages.db", "ndb"),
    ("var/lib/rpm/Packages", "bdb"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_values() {
        let t = "# c\nNAME=\"Debian GNU/Linux\"\nVERSION_ID='12'\nID=debian\n\
                 PRETTY_NAME=\"A \\\"quoted\\\" name\"\nbad line\nHOME_URL=\"https://x/\"\n";
        let m = os_release(t);
        assert_eq!(m["NAME"], "Debian GNU/Linux");
        assert_eq!(m["VERSION_ID"], "12");
        assert_eq!(m["ID"], "debian");
        assert_eq!(m["PRETTY_NAME"], "A \"quoted\" name");
        assert_eq!(m.len(), 5);
    }

    #[test]
    fn passwd_lines() {
        let t = "root:x:0:0:root:/root:/bin/bash\n+nis::::::\nbad\n\
                 user:$y$hash:1000:1000:U,,,:/home/user:/bin/sh\n";
        let u = passwd(t);
        assert_eq!(u.len(), 2);
        assert_eq!(u[1].name, "user");
        assert_eq!((u[1].uid, u[1].gid), (1000, 1000));
        assert_eq!(u[1].shell, "/bin/sh");
    }

    #[test]
    fn dpkg_installed_only() {
        let t = "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\n\
                 Description: x\n y: z\n\nPackage: b\nStatus: deinstall ok config-files\n\
                 Version: 2\n\nPackage: c\nStatus: install ok installed\nVersion: 3\n\
                 Architecture: all\n";
        let p = dpkg_status(t);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].name.as_str(), p[0].version.as_str()), ("a", "1.0"));
        assert_eq!(p[1].architecture, "all");
    }
}
