//! debugfs command scripts: quoting names for its command parser, running one
//! `debugfs -w -f SCRIPT IMAGE`, and turning any error line into a failure that names
//! the command (debugfs itself exits 0 when a command fails).
//!
//! The script is written to its file as it is generated and debugfs's output is checked
//! line by line from its log file: neither is ever held whole in memory.
//!
//! Inodes are addressed as `<INO>` everywhere; names appear only where a directory entry
//! is made (`ln`, `unlink` after `cd <DIR>`), double-quoted with `"` doubled. A name with
//! a line break cannot be written in a script and is refused.

use crate::tools::{self, E2fsprogs};
use crate::{Error, Result};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Errors quoted in the failure message.
const MAX_QUOTED: usize = 5;

/// A name (or any argument) quoted for debugfs's parser.
pub fn quote(name: &[u8]) -> Result<Vec<u8>> {
    if name.iter().any(|&b| b == b'\n' || b == b'\r' || b == 0) {
        return Err(Error::unsupported(format!(
            "the name {:?} contains a line break or NUL, which a debugfs script cannot express",
            String::from_utf8_lossy(name)
        )));
    }
    let mut q = Vec::with_capacity(name.len() + 2);
    q.push(b'"');
    for &b in name {
        if b == b'"' {
            q.push(b'"');
        }
        q.push(b);
    }
    q.push(b'"');
    Ok(q)
}

/// A script being written to `debugfs.cmds` in a work directory: one command per line.
#[derive(Debug)]
pub struct Script {
    path: PathBuf,
    out: BufWriter<std::fs::File>,
    count: usize,
}

impl Script {
    /// A new, empty script file in `workdir`.
    pub fn new(workdir: &Path) -> Result<Script> {
        let path = workdir.join("debugfs.cmds");
        let f = std::fs::File::create(&path)
            .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
        Ok(Script {
            path,
            out: BufWriter::with_capacity(1 << 20, f),
            count: 0,
        })
    }

    /// Append a command (given as text).
    pub fn cmd(&mut self, line: impl AsRef<str>) -> Result<()> {
        self.raw(line.as_ref().as_bytes())
    }

    /// Append a command given as bytes (with quoted names already in it).
    pub fn raw(&mut self, line: &[u8]) -> Result<()> {
        self.out
            .write_all(line)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| Error::io(format!("cannot write {}", self.path.display()), e))?;
        self.count += 1;
        Ok(())
    }

    /// Number of commands.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Run the script against `image` (read-write), in `workdir` (for its log). Every
    /// output line must be debugfs's own echo of a command (`debugfs: CMD`) or its
    /// version banner; anything else is an error, reported with the command before it.
    pub fn run(self, tools: &E2fsprogs, image: &Path, workdir: &Path) -> Result<()> {
        let count = self.count;
        let script = self.path.clone();
        self.out
            .into_inner()
            .map_err(|e| Error::io(format!("cannot write {}", script.display()), e.into_error()))?;
        if count == 0 {
            return Ok(());
        }
        let log_path = workdir.join("debugfs.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| Error::io(format!("cannot create {}", log_path.display()), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| Error::io("cannot duplicate the debugfs log handle", e))?;
        // Line-buffered stdout keeps the echo of each command ahead of its error message
        // (stderr) in the shared log; without stdbuf the output is still checked, only the
        // attribution to a command may be off.
        let mut cmd = match &tools.stdbuf {
            Some(stdbuf) => {
                let mut c = tools.command(stdbuf);
                c.arg("-oL").arg(&tools.debugfs);
                c
            }
            None => tools.command(&tools.debugfs),
        };
        cmd.arg("-w")
            .arg("-f")
            .arg(&script)
            .arg(image)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let status = cmd.status().map_err(|e| {
            Error::from(tools::ToolError::Spawn {
                path: tools.debugfs.clone(),
                source: e,
            })
        })?;
        let out = std::fs::File::open(&log_path)
            .map_err(|e| Error::io(format!("cannot read {}", log_path.display()), e))?;
        let (errors, total) = check_output(BufReader::new(out))
            .map_err(|e| Error::io(format!("cannot read {}", log_path.display()), e))?;
        if !status.success() || total > 0 {
            let mut said: Vec<String> = errors
                .iter()
                .map(|(cmd, err)| format!("`{cmd}`: {err}"))
                .collect();
            if total > errors.len() {
                said.push(format!("and {} more errors", total - errors.len()));
            }
            return Err(Error::Tool(tools::ToolError::Failed {
                what: format!("debugfs ({count} commands on {})", image.display()),
                status: status.to_string(),
                stderr: said.join("; "),
            }));
        }
        Ok(())
    }
}

/// The first (command, error) pairs in a debugfs log and the number of errors (0 when
/// every command succeeded), read line by line.
pub fn check_output(out: impl BufRead) -> std::io::Result<(Vec<(String, String)>, usize)> {
    let mut last = String::from("(start)");
    let mut errors = Vec::new();
    let mut total = 0usize;
    for line in out.split(b'\n') {
        let line = line?;
        let text = String::from_utf8_lossy(&line);
        let t = text.trim_end();
        if t.is_empty() {
            continue;
        }
        if let Some(c) = t.strip_prefix("debugfs: ") {
            last.clear();
            last.push_str(c);
        } else if t.starts_with("debugfs ") && t.contains('(') && total == 0 && last == "(start)" {
            // The version banner.
        } else if last.starts_with("write ") && is_allocated_inode(t) {
            // `write` reports the inode it made.
        } else {
            total += 1;
            if errors.len() < MAX_QUOTED {
                errors.push((last.clone(), t.to_string()));
            }
        }
    }
    Ok((errors, total))
}

/// `Allocated inode: N`, what debugfs's `write` prints on success.
fn is_allocated_inode(t: &str) -> bool {
    t.strip_prefix("Allocated inode: ")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Write `data` to a fresh file in `dir` named `name`, for `ea_set -f`.
pub fn value_file(dir: &Path, name: &str, data: &[u8]) -> Result<std::path::PathBuf> {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p)
        .map_err(|e| Error::io(format!("cannot create {}", p.display()), e))?;
    f.write_all(data)
        .map_err(|e| Error::io(format!("cannot write {}", p.display()), e))?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote(b"a b").unwrap(), b"\"a b\"");
        assert_eq!(quote(b"q\"u").unwrap(), b"\"q\"\"u\"");
        assert_eq!(quote(b"\xffx").unwrap(), b"\"\xffx\"");
        assert!(quote(b"a\nb").is_err());
    }

    #[test]
    fn error_lines_name_their_command() {
        let log = b"debugfs 1.47.0 (5-Feb-2023)\ndebugfs: sif <12> uid 5\ndebugfs: sif <12> bogus 1\nsif: invalid field specifier: bogus\ndebugfs: cd <2>\n";
        let (e, total) = check_output(&log[..]).unwrap();
        assert_eq!((e.len(), total), (1, 1));
        assert_eq!(e[0].0, "sif <12> bogus 1");
        assert!(e[0].1.contains("invalid field"));
        let ok = check_output(&b"debugfs 1.47.0 (5-Feb-2023)\ndebugfs: cd <2>\n"[..]).unwrap();
        assert_eq!(ok.1, 0);
        let mut many = b"debugfs: x\n".to_vec();
        for _ in 0..9 {
            many.extend_from_slice(b"bad\n");
        }
        let (e, total) = check_output(&many[..]).unwrap();
        assert_eq!((e.len(), total), (MAX_QUOTED, 9));
    }
}
