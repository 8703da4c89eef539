//! The one place external programs (mke2fs, debugfs, e2fsck, dumpe2fs) are found,
//! version-checked and run: captured output, and failures turned into typed errors.
//!
//! Programs are looked up in the caller's search path plus `/sbin` and `/usr/sbin` (often
//! not on a user's PATH). An explicit mke2fs from the caller overrides the search; its
//! sibling programs in the same directory, when present, are then preferred for the
//! others, so a private e2fsprogs build is used as one set. Nothing here reads the
//! environment: the caller says where to look and what clock to run the programs with
//! ([`FindOptions`]).

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use crate::error::ToolError;

/// A version as three numbers (`1.47.0`).
pub type Version = (u32, u32, u32);

/// Parse the first `X.Y[.Z]` in `text` (the banner `mke2fs 1.47.0 (5-Feb-2023)`).
pub fn parse_version(text: &str) -> Option<Version> {
    for word in text.split_whitespace() {
        let mut it = word.split('.');
        let (Some(a), Some(b)) = (it.next(), it.next()) else {
            continue;
        };
        let (Ok(a), Ok(b)) = (a.parse(), b.parse()) else {
            continue;
        };
        let c = it
            .next()
            .map(|c| {
                c.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        return Some((a, b, c));
    }
    None
}

/// Find `name` in `search` (the directories of PATH), then /usr/sbin and /sbin.
pub fn find(name: &str, search: &[PathBuf]) -> Result<PathBuf, ToolError> {
    search
        .iter()
        .cloned()
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| ToolError::NotFound {
            name: name.to_string(),
            hint: String::new(),
        })
}

/// The e2fsprogs programs, found and version-checked as one set.
#[derive(Debug, Clone)]
pub struct E2fsprogs {
    pub mke2fs: PathBuf,
    pub debugfs: PathBuf,
    pub e2fsck: PathBuf,
    pub dumpe2fs: PathBuf,
    /// resize2fs, when found (only `subroot resize` needs it; see [`E2fsprogs::resize2fs`]).
    pub resize2fs: Option<PathBuf>,
    /// mke2fs's version.
    pub version: Version,
    /// True when this mke2fs builds a filesystem from a tar archive on stdin
    /// (`mke2fs -d -`: 1.47.1 or newer built with libarchive, which it loads at run time):
    /// probed once by [`E2fsprogs::find`] with a real archive.
    pub tar_input: bool,
    /// `stdbuf` (coreutils), when found: debugfs runs under `stdbuf -oL` so that the echo
    /// of each script command stays ahead of its error message in the log.
    pub stdbuf: Option<PathBuf>,
    /// The time the programs take as now, in seconds since the epoch (see [`FindOptions`]).
    pub clock: Option<u64>,
}

/// Where to find e2fsprogs and how to run them; the caller fills it (from its command line
/// and environment).
#[derive(Debug, Clone, Default)]
pub struct FindOptions {
    /// The mke2fs to use instead of searching; its siblings debugfs, e2fsck and dumpe2fs
    /// are then preferred.
    pub mke2fs: Option<PathBuf>,
    /// The directories to search (PATH's); /usr/sbin and /sbin are searched after them.
    pub search: Vec<PathBuf>,
    /// The time e2fsprogs take as now (`E2FSPROGS_FAKE_TIME` for mke2fs and debugfs,
    /// `E2FSCK_TIME` for e2fsck), so the superblock times of a built filesystem, and with
    /// them the whole image, are reproducible (SOURCE_DATE_EPOCH). `None`: the real clock.
    pub clock: Option<u64>,
}

/// The first e2fsprogs whose `mke2fs -d` reads a tar archive.
pub const MIN_TAR_INPUT: Version = (1, 47, 1);

/// The locale mke2fs reads tar archives in: libarchive converts member names from UTF-8
/// to the locale's charset and refuses non-ASCII names under `C`; with `C.UTF-8` names
/// marked `hdrcharset=BINARY` pass through as bytes.
pub const TAR_LOCALE: &str = "C.UTF-8";

/// The oldest e2fsprogs the writer accepts (`mke2fs -d` with hard links, xattr copying
/// control and `debugfs ea_set -f`).
pub const MIN_E2FSPROGS: Version = (1, 45, 0);

impl E2fsprogs {
    /// Find the set as `opts` says, check its version and probe what its mke2fs reads.
    pub fn find(opts: &FindOptions) -> Result<Self, ToolError> {
        let chosen = opts.mke2fs.clone();
        let mke2fs = match &chosen {
            Some(p) if p.is_file() => p.clone(),
            Some(p) => {
                return Err(ToolError::NotFound {
                    name: p.display().to_string(),
                    hint: " (the mke2fs given by --mke2fs / SUBROOT_MKE2FS does not exist)"
                        .to_string(),
                })
            }
            None => find("mke2fs", &opts.search)?,
        };
        let sibling = |name: &str| -> Result<PathBuf, ToolError> {
            if chosen.is_some() {
                if let Some(dir) = mke2fs.parent() {
                    let p = dir.join(name);
                    if p.is_file() {
                        return Ok(p);
                    }
                }
            }
            find(name, &opts.search)
        };
        let debugfs = sibling("debugfs")?;
        let e2fsck = sibling("e2fsck")?;
        let dumpe2fs = sibling("dumpe2fs")?;
        let resize2fs = sibling("resize2fs").ok();
        let out = run(Command::new(&mke2fs).arg("-V"), "mke2fs -V", &[0])?;
        let banner = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        let version = parse_version(&banner).ok_or_else(|| ToolError::Failed {
            what: format!("{} -V", mke2fs.display()),
            status: "no version".to_string(),
            stderr: banner.trim().to_string(),
        })?;
        if version < MIN_E2FSPROGS {
            return Err(ToolError::TooOld {
                name: mke2fs.display().to_string(),
                found: format!("{}.{}.{}", version.0, version.1, version.2),
                need: format!(
                    "{}.{}.{}",
                    MIN_E2FSPROGS.0, MIN_E2FSPROGS.1, MIN_E2FSPROGS.2
                ),
            });
        }
        let tar_input = version >= MIN_TAR_INPUT && probe_tar_input(&mke2fs);
        Ok(E2fsprogs {
            mke2fs,
            debugfs,
            e2fsck,
            dumpe2fs,
            resize2fs,
            version,
            tar_input,
            stdbuf: find("stdbuf", &opts.search).ok(),
            clock: opts.clock,
        })
    }

    /// A `Command` for `program` (one of these tools) with the C locale (stable, parseable
    /// messages) and, when [`E2fsprogs::clock`] is set, that clock.
    pub fn command(&self, program: &Path) -> Command {
        command(program, self.clock)
    }

    /// resize2fs, or the error saying it was not found.
    pub fn resize2fs(&self) -> Result<&Path, ToolError> {
        self.resize2fs
            .as_deref()
            .ok_or_else(|| ToolError::NotFound {
                name: "resize2fs".into(),
                hint: String::new(),
            })
    }

    /// The version as text.
    pub fn version_string(&self) -> String {
        format!("{}.{}.{}", self.version.0, self.version.1, self.version.2)
    }
}

/// True when `mke2fs -d -` builds a small image from a pax archive (a directory and a
/// file with a non-UTF-8 name) on stdin, in [`TAR_LOCALE`].
fn probe_tar_input(mke2fs: &Path) -> bool {
    use subroot_formats::tree::{BytesContent, Entry, Kind, Metadata};
    let Ok(dir) = tempfile::Builder::new().prefix("subroot-probe.").tempdir() else {
        return false;
    };
    let image = dir.path().join("probe.img");
    let sized = std::fs::File::create(&image).and_then(|f| f.set_len(4 << 20));
    if sized.is_err() {
        return false;
    }
    let entry = |path: &[u8], kind, perm, size| Entry {
        path: path.to_vec(),
        kind,
        meta: Metadata {
            perm,
            ..Default::default()
        },
        size,
        rdev: (0, 0),
        link_target: None,
        hardlink_id: None,
    };
    let mut w = subroot_formats::tar::TarWriter::new(Vec::new());
    let root = entry(b"", Kind::Dir, 0o755, 0);
    let file = entry(b"probe\xff", Kind::File, 0o644, 2);
    let mut content = BytesContent::new(b"ok".to_vec());
    let archive = w
        .append(&root, b".", None)
        .and_then(|()| w.append(&file, b"./probe\xff", Some(&mut content)))
        .and_then(|()| w.finish());
    let Ok((archive, _)) = archive else {
        return false;
    };
    let conf = dir.path().join("mke2fs.conf");
    if std::fs::write(&conf, crate::writer::Identity::private_config()).is_err() {
        return false;
    }
    let mut c = command(mke2fs, None);
    c.env("LC_ALL", TAR_LOCALE)
        .env("MKE2FS_CONFIG", &conf)
        .args(["-F", "-q", "-t", "ext4", "-d", "-"])
        .arg(&image);
    run_with_input(
        &mut c,
        "mke2fs -d - (probe)",
        &[0],
        Some(&mut |w: &mut dyn Write| w.write_all(&archive)),
    )
    .is_ok()
}

/// Run `cmd` with stdin closed, capturing output; exit codes in `ok` count as success.
/// `what` names the step in errors.
pub fn run(cmd: &mut Command, what: &str, ok: &[i32]) -> Result<Output, ToolError> {
    run_with_input(cmd, what, ok, None)
}

/// Writes a program's standard input.
pub type Feeder<'a> = dyn FnMut(&mut dyn Write) -> std::io::Result<()> + Send + 'a;

/// [`run`], feeding `input` on stdin (streamed from a thread so large inputs do not
/// deadlock against a full stdout pipe).
pub fn run_with_input(
    cmd: &mut Command,
    what: &str,
    ok: &[i32],
    input: Option<&mut Feeder<'_>>,
) -> Result<Output, ToolError> {
    let program = PathBuf::from(cmd.get_program());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().map_err(|source| ToolError::Spawn {
        path: program.clone(),
        source,
    })?;
    let out = if let Some(feed) = input {
        let stdin = child.stdin.take();
        let fed = std::thread::scope(|s| {
            let h = s.spawn(move || -> std::io::Result<()> {
                if let Some(mut w) = stdin {
                    feed(&mut w)?;
                    w.flush()?;
                }
                Ok(())
            });
            let out = child.wait_with_output();
            (h.join(), out)
        });
        let (feed_res, out) = fed;
        let out = out.map_err(|source| ToolError::Spawn {
            path: program.clone(),
            source,
        })?;
        if let Ok(Err(e)) = feed_res {
            if out.status.success() {
                return Err(ToolError::Failed {
                    what: what.to_string(),
                    status: "input".to_string(),
                    stderr: e.to_string(),
                });
            }
        }
        out
    } else {
        child
            .wait_with_output()
            .map_err(|source| ToolError::Spawn {
                path: program.clone(),
                source,
            })?
    };
    match out.status.code() {
        Some(c) if ok.contains(&c) => Ok(out),
        _ => Err(ToolError::Failed {
            what: what.to_string(),
            status: out.status.to_string(),
            stderr: tail(&out.stderr, &out.stdout),
        }),
    }
}

/// The last lines of stderr and then stdout, for an error message (e2fsck, for one, prints
/// its banner on stderr and the problems it found on stdout).
pub(crate) fn tail(stderr: &[u8], stdout: &[u8]) -> String {
    let (e, o) = (
        String::from_utf8_lossy(stderr),
        String::from_utf8_lossy(stdout),
    );
    let lines: Vec<&str> = e
        .lines()
        .chain(o.lines())
        .filter(|l| !l.trim().is_empty())
        .collect();
    let start = lines.len().saturating_sub(12);
    lines[start..].join(" | ")
}

/// A `Command` for `program` with the C locale and, when `clock` is set, that time as
/// e2fsprogs' now (see [`FindOptions::clock`]).
fn command(program: &Path, clock: Option<u64>) -> Command {
    let mut c = Command::new(program);
    c.env("LC_ALL", "C").env_remove("LANGUAGE");
    if let Some(t) = clock {
        for var in ["E2FSPROGS_FAKE_TIME", "E2FSCK_TIME"] {
            c.env(var, t.to_string());
        }
    }
    c
}

/// `path` as an argument (for messages and argument lists).
pub fn arg(path: &Path) -> &OsStr {
    path.as_os_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("mke2fs 1.47.0 (5-Feb-2023)\n\tUsing EXT2FS Library version 1.47.0"),
            Some((1, 47, 0))
        );
        assert_eq!(
            parse_version("mke2fs 1.47.2-rc1 (1-Jan-2025)"),
            Some((1, 47, 2))
        );
        assert_eq!(parse_version("nothing here"), None);
        assert!((1, 47, 1) > (1, 47, 0));
    }

    #[test]
    fn failures_are_typed() {
        let e = run(
            Command::new("sh").args(["-c", "echo boom >&2; exit 3"]),
            "sh test",
            &[0],
        )
        .unwrap_err();
        match &e {
            ToolError::Failed { stderr, .. } => assert!(stderr.contains("boom")),
            other => panic!("{other:?}"),
        }
        assert!(run(Command::new("sh").args(["-c", "exit 1"]), "x", &[0, 1]).is_ok());
        let e = run(&mut Command::new("/nonexistent/prog"), "x", &[0]).unwrap_err();
        assert!(matches!(e, ToolError::Spawn { .. }));
        let out = run_with_input(
            Command::new("wc").arg("-c"),
            "wc",
            &[0],
            Some(&mut |w: &mut dyn Write| w.write_all(&vec![b'x'; 1 << 20])),
        )
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1048576");
    }
}
