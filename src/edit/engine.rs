//! Which engine rewrites an ext filesystem (relayout, resize, copy-in, rm).
//!
//! - **edit** (the default when possible): the filesystem is edited in process by
//!   [`subroot_libext2fs::Ext2Fs`] over a copy-on-write overlay of the input (for
//!   relayout, `crate::ops::relayout::apply`): each moved top-level entry is renamed into the subroot (no file
//!   data is copied), added files are written into free blocks, a rewritten initrd only
//!   gets its new segment appended. Cost: the metadata it reads and the blocks it writes,
//!   whatever the size of the filesystem.
//! - **rebuild**: `mke2fs -d` builds a new filesystem from the transformed tree (the
//!   relayout's `RelayoutTree`); every file is copied, and the result is compact.
//!
//! Both produce the same tree with the same identity. The editor refuses a filesystem
//! using a feature it does not write correctly (quota, inline_data, encryption, a journal
//! that needs recovery, ...) or an input e2fsck -fn already finds fault with
//! ([`crate::edit::ext_edit::refusal`] says why, before anything is written), and
//! `--engine auto` then takes the rebuild, saying why; the plan shows the engine chosen.

use anyhow::Result;
use serde::Serialize;
use std::sync::Arc;
use subroot_formats::block::BlockDevice;

/// A way of rewriting a filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Edited in process, where it lies.
    Edit,
    /// The filesystem built anew with mke2fs -d.
    Rebuild,
}

impl Engine {
    /// The engine's name (as in `--engine` and the JSON report).
    pub fn name(self) -> &'static str {
        match self {
            Engine::Edit => "edit",
            Engine::Rebuild => "rebuild",
        }
    }
}

/// The engine decided on, and why the rebuild was taken (`None` for edit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineChoice {
    pub engine: Engine,
    pub reason: Option<String>,
}

/// The engine to use for the filesystem on `device`, named `what`: the one asked for, or
/// (`asked` = `None`: auto) the edit engine unless it cannot, with the reason. Asking for
/// `edit` where it cannot is refused.
pub fn choose(
    asked: Option<Engine>,
    device: &Arc<dyn BlockDevice>,
    what: &str,
) -> Result<EngineChoice> {
    let (engine, reason) = match asked {
        Some(Engine::Rebuild) => (Engine::Rebuild, Some("asked for (--engine rebuild)".into())),
        Some(Engine::Edit) | None => match crate::edit::ext_edit::refusal(device, what)? {
            None => (Engine::Edit, None),
            Some(why) if asked.is_none() => (Engine::Rebuild, Some(why)),
            Some(why) => {
                return Err(subroot_formats::Error::unsupported(format!(
                    "{what} cannot be edited in place ({why}); use --engine rebuild"
                ))
                .into())
            }
        },
    };
    Ok(EngineChoice { engine, reason })
}
