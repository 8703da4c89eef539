//! Standard output, for everything `subroot` prints there. Rust ignores SIGPIPE, so a
//! reader that stops early (`subroot ls -R IMG | head -1`) makes writes fail with EPIPE,
//! and `println!` would panic. Every write to stdout goes through [`out`] instead: a closed
//! pipe becomes a [`StdoutClosed`] error, which `main` ends quietly with status 141 — the
//! status a shell reports for a tool killed by SIGPIPE (`ls`, `cat`), so `set -o pipefail`
//! scripts see `subroot` as they see those tools, and a stream cut short (`export -o -`)
//! is never reported as complete.

use std::io::{self, BufWriter, StdoutLock, Write};

/// The status `main` exits with when stdout was closed under it (128 + SIGPIPE).
pub const CLOSED_STATUS: u8 = 141;

/// Stdout's reader went away (EPIPE); the payload of the `io::Error` [`Out`] returns then.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct StdoutClosed;

/// Locked, buffered stdout whose writes report a closed pipe as [`StdoutClosed`].
pub struct Out(BufWriter<StdoutLock<'static>>);

/// Stdout, locked and buffered (1 MiB: listings and streams of file data alike).
pub fn out() -> Out {
    Out(BufWriter::with_capacity(1 << 20, io::stdout().lock()))
}

/// Write `text` to stdout at once (a line, a JSON document) and flush it.
pub fn print(text: &str) -> io::Result<()> {
    let mut o = out();
    o.write_all(text.as_bytes())?;
    o.flush()
}

/// Whether `e` (anywhere in its chain) is stdout having been closed.
pub fn is_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<StdoutClosed>()
            || c.downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
                .is_some_and(|inner| inner.is::<StdoutClosed>())
    })
}

fn closed(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(io::ErrorKind::BrokenPipe, StdoutClosed)
    } else {
        e
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(closed)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf).map_err(closed)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_closed_pipe_is_recognised_through_context() {
        let e = closed(io::Error::from(io::ErrorKind::BrokenPipe));
        let wrapped = subroot_formats::Error::io("writing /f", e);
        let chain = Err::<(), _>(wrapped).context("cannot read /f").unwrap_err();
        assert!(is_closed(&chain));
        let other = closed(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(!is_closed(&anyhow::Error::from(other)));
    }
}
