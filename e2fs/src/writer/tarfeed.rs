//! The tar populate path: the tree, shaped by [`View`] with
//! [`Shape::Tar`](super::view::Shape::Tar), written as a pax archive by
//! [`subroot_formats::tar::TarWriter`] straight into the stdin of `mke2fs -d -` (e2fsprogs 1.47.1+
//! with libarchive). No staging copy: owners, permissions, devices, fifos and hard links
//! of regular files come through the archive; what mke2fs drops (nanoseconds, atime and
//! ctime, xattrs other than `security.capability`) is left to reconcile.
//!
//! The archive is written on the calling thread (tree sources need not be `Sync`); a
//! second thread collects mke2fs's output and exit status.

use super::staging::StageStats;
use super::view::View;
use crate::tools::{self, ToolError};
use crate::{Error, Result};
use std::io::BufWriter;
use std::process::{Command, Stdio};
use subroot_formats::tar::{member_name, TarWriter};
use subroot_formats::tree::TreeSource;

/// Run `cmd` (an `mke2fs ... -d - IMAGE` command) with the archive of `view` on its stdin.
pub fn populate(view: &View, cmd: &mut Command, stats: &mut StageStats) -> Result<()> {
    let program = std::path::PathBuf::from(cmd.get_program());
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| ToolError::Spawn {
        path: program.clone(),
        source,
    })?;
    let stdin = child.stdin.take();
    let (written, out) = std::thread::scope(|s| {
        let waiter = s.spawn(move || child.wait_with_output());
        let written = match stdin {
            Some(stdin) => write_archive(view, stdin, stats),
            None => Err((
                Error::io("mke2fs has no stdin", std::io::Error::other("pipe")),
                false,
            )),
        };
        (written, waiter.join())
    });
    let out = match out {
        Ok(r) => r.map_err(|source| ToolError::Spawn {
            path: program.clone(),
            source,
        })?,
        Err(_) => {
            return Err(Error::io(
                "waiting for mke2fs",
                std::io::Error::other("the waiting thread panicked"),
            ))
        }
    };
    let broken_pipe = |e: &Error| matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe);
    if !out.status.success() {
        // A failing tree read is the cause when there is one; a broken pipe is the
        // symptom of mke2fs stopping.
        if let Err((e, _)) = written {
            if !broken_pipe(&e) {
                return Err(e);
            }
        }
        return Err(ToolError::Failed {
            what: "mke2fs -d - (populating from a tar archive)".to_string(),
            status: out.status.to_string(),
            stderr: tools::tail(&out.stderr, &out.stdout),
        }
        .into());
    }
    match written {
        Ok(()) => Ok(()),
        // mke2fs may stop reading at the end-of-archive blocks, before the padding.
        Err((e, true)) if broken_pipe(&e) => Ok(()),
        Err((e, _)) => Err(e),
    }
}

/// Write the archive; on error, also say whether every entry had been written.
fn write_archive(
    view: &View,
    stdin: std::process::ChildStdin,
    stats: &mut StageStats,
) -> std::result::Result<(), (Error, bool)> {
    let mut w = TarWriter::new(BufWriter::with_capacity(1 << 20, stdin));
    view.walk(b"", &mut |e, c| {
        w.append(e, &member_name(&e.path), c)?;
        stats.entries += 1;
        Ok(())
    })
    .map_err(|e| (e.into(), false))?;
    let (_, summary) = w.finish().map_err(|e| (e.into(), true))?;
    stats.file_bytes = summary.data_bytes;
    Ok(())
}
