//! debugfs command scripts: quoting names for its command parser, running one
//! `debugfs -w -f SCRIPT IMAGE`, and turning any error line into a failure that names
//! the command (debugfs itself exits 0 when a command fails).
//!
//! Inodes are addressed as `<INO>` everywhere; names appear only where a directory entry
//! is made (`ln`, `unlink` after `cd <DIR>`), double-quoted with `"` doubled. A name with
//! a line break cannot be written in a script and is refused.

use crate::tools::{self, E2fsprogs};
use crate::{Error, Result};
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

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

/// A script being built: one command per line.
#[derive(Debug, Default)]
pub struct Script {
    text: Vec<u8>,
    count: usize,
}

impl Script {
    /// Append a command (given as text).
    pub fn cmd(&mut self, line: impl AsRef<str>) {
        self.raw(line.as_ref().as_bytes());
    }

    /// Append a command given as bytes (with quoted names already in it).
    pub fn raw(&mut self, line: &[u8]) {
        self.text.extend_from_slice(line);
        self.text.push(b'\n');
        self.count += 1;
    }

    /// Number of commands.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when there are no commands.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Run the script against `image` (read-write), in `workdir` (for its file). Every
    /// output line must be debugfs's own echo of a command (`debugfs: CMD`) or its
    /// version banner; anything else is an error, reported with the command before it.
    pub fn run(&self, tools: &E2fsprogs, image: &Path, workdir: &Path) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let script = workdir.join("debugfs.cmds");
        std::fs::write(&script, &self.text)
            .map_err(|e| Error::io(format!("cannot write {}", script.display()), e))?;
        let log_path = workdir.join("debugfs.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| Error::io(format!("cannot create {}", log_path.display()), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| Error::io("cannot duplicate the debugfs log handle", e))?;
        // Line-buffered stdout keeps the echo of each command ahead of its error message
        // (stderr) in the shared log; without stdbuf the output is still checked, only the
        // attribution to a command may be off.
        let mut cmd = match tools::find("stdbuf") {
            Ok(stdbuf) => {
                let mut c = tools::command(&stdbuf);
                c.arg("-oL").arg(&tools.debugfs);
                c
            }
            Err(_) => tools::command(&tools.debugfs),
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
        let out = std::fs::read(&log_path)
            .map_err(|e| Error::io(format!("cannot read {}", log_path.display()), e))?;
        let errors = check_output(&out);
        if !status.success() || !errors.is_empty() {
            let mut msg = format!(
                "debugfs ({} commands on {}) failed ({status})",
                self.count,
                image.display()
            );
            for (cmd, err) in errors.iter().take(5) {
                msg.push_str(&format!("; `{cmd}`: {err}"));
            }
            if errors.len() > 5 {
                msg.push_str(&format!("; and {} more errors", errors.len() - 5));
            }
            return Err(Error::io(msg, std::io::Error::other("debugfs")));
        }
        Ok(())
    }
}

/// The (command, error) pairs in a debugfs log (empty when every command succeeded).
pub fn check_output(out: &[u8]) -> Vec<(String, String)> {
    let mut last = String::from("(start)");
    let mut errors = Vec::new();
    for line in out.split(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        let t = text.trim_end();
        if t.is_empty() {
            continue;
        }
        if let Some(c) = t.strip_prefix("debugfs: ") {
            last = c.to_string();
        } else if t.starts_with("debugfs ")
            && t.contains('(')
            && errors.is_empty()
            && last == "(start)"
        {
            // The version banner.
        } else {
            errors.push((last.clone(), t.to_string()));
        }
    }
    errors
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
        let e = check_output(log);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, "sif <12> bogus 1");
        assert!(e[0].1.contains("invalid field"));
        assert!(check_output(b"debugfs 1.47.0 (5-Feb-2023)\ndebugfs: cd <2>\n").is_empty());
    }
}
