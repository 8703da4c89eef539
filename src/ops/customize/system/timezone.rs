//! `--timezone TZ`: `/etc/localtime` a relative symlink to `../usr/share/zoneinfo/TZ` (as
//! `timedatectl set-timezone` makes it, so it resolves inside a subroot too) and
//! `/etc/timezone` (Debian's) rewritten if the system has one.

use super::read_text;
use crate::ops::customize::op::{FileOp, Guest};
use anyhow::{bail, Result};

pub fn expand(tz: &str, guest: &dyn Guest) -> Result<Vec<FileOp>> {
    let plausible = !tz.is_empty()
        && !tz.starts_with('/')
        && tz
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
        && tz
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+-.".contains(&b));
    if !plausible {
        bail!("--timezone {tz:?}: not a time zone name (expected e.g. Europe/Paris or UTC)");
    }
    let zone = format!("/usr/share/zoneinfo/{tz}");
    match guest.read(&zone)? {
        Some(data) if data.starts_with(b"TZif") => {}
        Some(_) => bail!("--timezone {tz}: {zone} in the image is not a time zone file"),
        None => bail!(
            "--timezone {tz}: unknown time zone (no {zone} in the image; is its tzdata installed?)"
        ),
    }
    let mut ops = vec![
        FileOp::Delete {
            path: "/etc/localtime".into(),
        },
        FileOp::Symlink {
            target: format!("..{zone}"),
            link: "/etc/localtime".into(),
        },
    ];
    if read_text(guest, "/etc/timezone")?.is_some() {
        ops.push(FileOp::Write {
            path: "/etc/timezone".into(),
            content: format!("{tz}\n").into_bytes(),
            mode: None,
        });
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{sample, written, DirGuest};
    use super::*;

    /// A zone file of the test machine's own tzdata, placed into the Debian sample.
    fn with_zone(g: DirGuest, tz: &str) -> DirGuest {
        let data = std::fs::read(format!("/usr/share/zoneinfo/{tz}")).unwrap();
        g.file(&format!("/usr/share/zoneinfo/{tz}"), &data)
    }

    #[test]
    fn localtime_link_and_debian_timezone_file() {
        let g = with_zone(sample(&["/etc/timezone"]), "Europe/Paris")
            .symlink("/usr/share/zoneinfo/Etc/UTC", "/etc/localtime");
        let ops = expand("Europe/Paris", &g).unwrap();
        assert_eq!(
            ops[..2],
            [
                FileOp::Delete {
                    path: "/etc/localtime".into()
                },
                FileOp::Symlink {
                    target: "../usr/share/zoneinfo/Europe/Paris".into(),
                    link: "/etc/localtime".into()
                }
            ]
        );
        assert_eq!(written(&ops, "/etc/timezone"), b"Europe/Paris\n");
    }

    #[test]
    fn without_etc_timezone_only_the_link() {
        let g = with_zone(DirGuest::new(), "UTC");
        let ops = expand("UTC", &g).unwrap();
        assert_eq!(ops.len(), 2);
    }

    #[test]
    fn unknown_or_bad_zones_are_refused() {
        let g = with_zone(sample(&["/etc/timezone"]), "UTC")
            .file("/usr/share/zoneinfo/zone.tab", b"# x\n");
        let e = expand("Mars/Olympus", &g).unwrap_err().to_string();
        assert!(
            e.contains("unknown time zone") && e.contains("/usr/share/zoneinfo/Mars/Olympus"),
            "{e}"
        );
        let e = expand("zone.tab", &g).unwrap_err().to_string();
        assert!(e.contains("not a time zone file"), "{e}");
        for bad in ["../etc/passwd", "/UTC", "", "a b"] {
            let e = expand(bad, &g).unwrap_err().to_string();
            assert!(e.contains("not a time zone name"), "{bad}: {e}");
        }
    }
}
