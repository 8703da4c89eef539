//! An error chain as the one line users see (`subroot: error: ...`, batch's JSON lines and
//! sidecars): the contexts outermost first, then the cause, joined by `: `, each said once.
//!
//! What is said once is decided by type, not by comparing text. The library's errors
//! ([`subroot_formats::Error`], [`ToolError`]) and `std::io::Error` print their whole story
//! (an `Io` error prints its OS cause; an `io::Error` carrying one of ours prints it), so the
//! line ends with the first of them and their sources are not printed again. Above them are
//! anyhow contexts, which never include their cause; one repeated word for word by the next
//! layer (a context added twice) is said once.

use subroot_e2fs::tools::ToolError;
use subroot_e2fs::Error as E2;
use subroot_formats::Error as F;

/// `e` and its causes on one line.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        if says_its_causes(cause) {
            break;
        }
    }
    parts.join(": ")
}

/// Whether `e`'s message already includes everything below it in the chain.
fn says_its_causes(e: &(dyn std::error::Error + 'static)) -> bool {
    e.is::<F>() || e.is::<E2>() || e.is::<ToolError>() || e.is::<std::io::Error>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use std::io;

    fn eio() -> io::Error {
        io::Error::from_raw_os_error(5)
    }

    #[test]
    fn each_cause_is_said_once() {
        // A codec's I/O error prints its OS cause; the chain holds that cause again.
        let e = Err::<(), _>(F::io("reading block 7", eio()))
            .context("cannot read /etc/passwd in disk.img")
            .unwrap_err();
        assert_eq!(
            error_line(&e),
            "cannot read /etc/passwd in disk.img: reading block 7: Input/output error (os error 5)"
        );
        // The same error travelling through std::io (a Read impl) and back.
        let through = io::Error::other(F::io("reading block 7", eio()));
        let e = Err::<(), _>(through).context("cannot copy").unwrap_err();
        assert_eq!(
            error_line(&e),
            "cannot copy: reading block 7: Input/output error (os error 5)"
        );
        // A tool that could not be started names its OS cause once.
        let spawn = ToolError::Spawn {
            path: "/sbin/mke2fs".into(),
            source: io::Error::from_raw_os_error(13),
        };
        let e = Err::<(), _>(E2::Tool(spawn)).context("mkfs").unwrap_err();
        assert_eq!(
            error_line(&e),
            "mkfs: cannot run /sbin/mke2fs: Permission denied (os error 13)"
        );
        // A context added twice by two layers is said once; different ones all show.
        let e = Err::<(), _>(F::corrupt("bad magic"))
            .context("cannot open a.img")
            .context("cannot open a.img")
            .context("batch")
            .unwrap_err();
        assert_eq!(error_line(&e), "batch: cannot open a.img: bad magic");
    }

    #[test]
    fn a_message_that_merely_ends_like_its_cause_is_kept() {
        // The old suffix comparison dropped a cause whose text the line happened to end
        // with ("... no such file" before "no such file").
        let e = Err::<(), _>(anyhow::anyhow!("file"))
            .context("expected a file")
            .unwrap_err();
        assert_eq!(error_line(&e), "expected a file: file");
    }
}
