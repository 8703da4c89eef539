//! Which engine carries a relayout out, and the edit engine's side of it.
//!
//! - **edit** (the default when possible): the filesystem is copied and edited where it
//!   lies by [`subroot_e2fs::writer::edit_copy`] — each moved top-level entry
//!   gets a new directory entry in the subroot (no file data is copied), added and
//!   replaced files are written into free blocks. Cost: one sparse copy of the partition
//!   plus the edits, so it runs at close to copy speed whatever the number of files.
//! - **rebuild**: `mke2fs -d` builds a new filesystem from the transformed tree (the
//!   [`super::transform::RelayoutTree`]); every file is copied, and the result is compact.
//!
//! Both produce the same tree with the same identity and are checked the same way
//! (reconcile, verify, `e2fsck -fn`). The edit engine cannot handle what debugfs cannot
//! express cleanly; [`blocker`] says why it does not apply, and `--engine auto` then
//! takes the rebuild. What only the edit finds out (an input e2fsck already finds fault
//! with) comes back as `CannotEditInPlace` from `edit_copy`, and `auto` rebuilds then too
//! (`execute.rs`), and the plan and report then say so ([`super::plan::Plan::fell_back`]).

use super::transform::{key_of, Layout, NewContent};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;
use subroot_e2fs::writer::{in_place_blocker, replace_blocker, EditOp};
use subroot_formats::block::BlockDevice;
use subroot_formats::ext::{ExtFs, ExtTree};
use subroot_formats::manifest::kind_name;
use subroot_formats::tree::Kind;

/// Why the edit engine cannot carry out `layout` on `tree` (`None` when it can).
pub fn blocker<D: BlockDevice>(tree: &ExtTree<D>, layout: &Layout) -> Result<Option<String>> {
    let fs: &ExtFs<D> = tree.fs();
    if let Some(why) = in_place_blocker(fs) {
        return Ok(Some(why));
    }
    for a in &layout.added {
        if !matches!(a.entry.kind, Kind::Dir | Kind::File | Kind::Symlink) {
            return Ok(Some(format!(
                "/{} would be added as a {}",
                String::from_utf8_lossy(&a.entry.path),
                kind_name(a.entry.kind)
            )));
        }
    }
    for out in layout.replaced.keys() {
        let input = layout.input_path(out);
        let mut abs = b"/".to_vec();
        abs.extend_from_slice(&input);
        let ino = fs
            .lookup(&abs)
            .with_context(|| format!("cannot find /{}", String::from_utf8_lossy(&input)))?;
        if let Some(why) = replace_blocker(&fs.inode(ino)?) {
            return Ok(Some(format!(
                "/{}, which gets new content: {why}",
                String::from_utf8_lossy(&input)
            )));
        }
    }
    Ok(None)
}

/// A way of rewriting a filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// A copy of the filesystem edited in place.
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

/// The engine to use for `what`: the one asked for, or (`asked` = `None`: auto) the edit
/// engine unless it cannot, with the reason. Asking for `edit` where it cannot is refused.
pub fn choose<D: BlockDevice>(
    asked: Option<Engine>,
    tree: &ExtTree<D>,
    layout: &Layout,
    what: &str,
) -> Result<EngineChoice> {
    let (engine, reason) = match asked {
        Some(Engine::Rebuild) => (Engine::Rebuild, Some("asked for (--engine rebuild)".into())),
        Some(Engine::Edit) | None => match blocker(tree, layout)? {
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

/// The edits that turn the input filesystem into `layout`'s tree, in order: the subroot
/// directory, the moves into it, the other added entries (parents first), the replaced
/// files. Small new contents are written to files in `work` for debugfs to read.
pub fn ops(layout: &Layout, work: &Path) -> Result<Vec<EditOp>> {
    let mut n = 0usize;
    let mut host = |c: &NewContent| -> Result<std::path::PathBuf> {
        Ok(match c {
            NewContent::File { path, .. } => path.clone(),
            NewContent::Bytes(b) => {
                n += 1;
                let p = work.join(format!("new-{n}"));
                std::fs::write(&p, b).with_context(|| format!("cannot write {}", p.display()))?;
                p
            }
        })
    };
    let mut added: Vec<_> = layout.added.iter().collect();
    added.sort_by_key(|a| key_of(&a.entry.path));
    let mut out = Vec::new();
    let is_subroot = |p: &[u8]| p == layout.subroot.as_slice();
    for a in added.iter().filter(|a| is_subroot(&a.entry.path)) {
        out.push(EditOp::Mkdir(a.entry.path.clone()));
    }
    for name in layout.top.iter().filter(|n| layout.moved.contains(*n)) {
        out.push(EditOp::Move {
            from: name.clone(),
            to: layout.output_path(name),
        });
    }
    for a in added.iter().filter(|a| !is_subroot(&a.entry.path)) {
        let path = a.entry.path.clone();
        out.push(match (a.entry.kind, &a.content) {
            (Kind::Dir, _) => EditOp::Mkdir(path),
            (Kind::Symlink, _) => EditOp::Symlink {
                path,
                target: a.entry.link_target.clone().unwrap_or_default(),
            },
            (_, Some(c)) => EditOp::Create {
                path,
                from: host(c)?,
            },
            (_, None) => EditOp::Create {
                path,
                from: host(&NewContent::Bytes(Vec::new()))?,
            },
        });
    }
    for (path, c) in &layout.replaced {
        out.push(EditOp::Replace {
            path: path.clone(),
            from: host(c)?,
        });
    }
    Ok(out)
}
