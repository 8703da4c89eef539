//! Resolving a path through the symlinks of a tree, as a process chrooted into the tree
//! would: an absolute target starts again at the tree's root, `..` at the root stays at the
//! root, so a link can never lead outside the tree. Used where a user names a file the way
//! the installed system sees it (`/etc/os-release` is a link into `/usr/lib` on every
//! merged-/usr system).

use crate::tree::{Entry, Kind};
use crate::{Error, Result};
use std::collections::VecDeque;

/// As Linux's `MAXSYMLINKS`: more links than this on one walk is a loop (`ELOOP`).
pub const MAX_SYMLINKS: usize = 40;

/// Whether the last component is followed when it is a symlink (`stat` vs `lstat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Last {
    Follow,
    NoFollow,
}

/// The entry `path` (relative to the tree's root, components joined by `/`) names once
/// every symlink on the way is followed, with `entry` looking up one tree path (it must
/// not follow links itself). Its `path` has no `.`, `..`, or empty components; for
/// [`Last::NoFollow`] it may be a symlink. An empty path is the root, looked up too.
pub fn resolve(
    path: &[u8],
    last: Last,
    mut entry: impl FnMut(&[u8]) -> Result<Entry>,
) -> Result<Entry> {
    let mut todo: VecDeque<Vec<u8>> = components(path).collect();
    let mut done: Vec<Vec<u8>> = Vec::new();
    let mut links = 0usize;
    let mut found_last = None;
    while let Some(comp) = todo.pop_front() {
        if comp == b".." {
            done.pop();
            found_last = None;
            continue;
        }
        done.push(comp);
        let here = done.join(&b'/');
        let found = entry(&here)?;
        let is_last = todo.is_empty();
        match found.kind {
            Kind::Symlink if !(is_last && last == Last::NoFollow) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Error::InvalidArgument(format!(
                        "/{}: too many levels of symbolic links (more than {MAX_SYMLINKS})",
                        String::from_utf8_lossy(path)
                    )));
                }
                let target = found.link_target.unwrap_or_default();
                if target.is_empty() {
                    return Err(Error::corrupt(format!(
                        "/{}: symbolic link with an empty target",
                        String::from_utf8_lossy(&here)
                    )));
                }
                done.pop();
                found_last = None;
                if target.starts_with(b"/") {
                    done.clear();
                }
                for comp in components(&target).collect::<Vec<_>>().into_iter().rev() {
                    todo.push_front(comp);
                }
            }
            Kind::Dir | Kind::Symlink => found_last = Some(found),
            _ if is_last => found_last = Some(found),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "/{}: not a directory (on the way to /{})",
                    String::from_utf8_lossy(&here),
                    String::from_utf8_lossy(path)
                )))
            }
        }
    }
    match found_last {
        Some(e) => Ok(e),
        None => entry(&done.join(&b'/')),
    }
}

/// The components of a path that mean something: empty and `.` ones dropped, `..` kept.
fn components(path: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Metadata;
    use std::collections::HashMap;

    /// A tiny tree: path -> (kind, link target).
    fn tree(items: &[(&str, Kind, &str)]) -> HashMap<Vec<u8>, Entry> {
        let mut m = HashMap::new();
        m.insert(Vec::new(), entry("", Kind::Dir, ""));
        for (p, k, t) in items {
            m.insert(p.as_bytes().to_vec(), entry(p, *k, t));
        }
        m
    }

    fn entry(path: &str, kind: Kind, target: &str) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            meta: Metadata::default(),
            size: 0,
            rdev: (0, 0),
            link_target: (kind == Kind::Symlink).then(|| target.as_bytes().to_vec()),
            hardlink_id: None,
        }
    }

    fn run(t: &HashMap<Vec<u8>, Entry>, path: &str, last: Last) -> Result<String> {
        resolve(path.as_bytes(), last, |p| {
            t.get(p)
                .cloned()
                .ok_or_else(|| Error::InvalidArgument(format!("no {}", String::from_utf8_lossy(p))))
        })
        .map(|e| String::from_utf8(e.path).unwrap())
    }

    fn merged_usr() -> HashMap<Vec<u8>, Entry> {
        tree(&[
            ("etc", Kind::Dir, ""),
            ("etc/os-release", Kind::Symlink, "../usr/lib/os-release"),
            ("etc/abs", Kind::Symlink, "/usr/lib/os-release"),
            (
                "etc/escape",
                Kind::Symlink,
                "../../../../usr/lib/os-release",
            ),
            ("etc/loop", Kind::Symlink, "loop"),
            ("etc/dangling", Kind::Symlink, "/nowhere"),
            ("lib", Kind::Symlink, "usr/lib"),
            ("usr", Kind::Dir, ""),
            ("usr/lib", Kind::Dir, ""),
            ("usr/lib/os-release", Kind::File, ""),
        ])
    }

    #[test]
    fn follows_relative_absolute_and_directory_links() {
        let t = merged_usr();
        for p in [
            "/etc/os-release",
            "etc/abs",
            "/lib/os-release",
            "/./lib//os-release",
        ] {
            assert_eq!(
                run(&t, p, Last::Follow).unwrap(),
                "usr/lib/os-release",
                "{p}"
            );
        }
    }

    #[test]
    fn never_leaves_the_root() {
        let t = merged_usr();
        assert_eq!(
            run(&t, "/etc/escape", Last::Follow).unwrap(),
            "usr/lib/os-release"
        );
        assert_eq!(run(&t, "/../../usr", Last::Follow).unwrap(), "usr");
    }

    #[test]
    fn the_root_and_links_to_it_resolve_to_the_root() {
        let mut t = merged_usr();
        t.insert(b"etc/root".to_vec(), entry("etc/root", Kind::Symlink, "/"));
        t.insert(b"etc/up".to_vec(), entry("etc/up", Kind::Symlink, ".."));
        for p in [
            "",
            "/",
            "/etc/root",
            "/etc/..",
            "etc/up",
            "/etc/root/etc/up/.",
        ] {
            assert_eq!(run(&t, p, Last::Follow).unwrap(), "", "{p}");
        }
    }

    #[test]
    fn last_component_kept_when_asked() {
        let t = merged_usr();
        assert_eq!(
            run(&t, "/lib/os-release", Last::NoFollow).unwrap(),
            "usr/lib/os-release"
        );
        assert_eq!(
            run(&t, "/etc/os-release", Last::NoFollow).unwrap(),
            "etc/os-release"
        );
    }

    #[test]
    fn loops_dangling_links_and_files_as_directories_are_errors() {
        let t = merged_usr();
        let e = run(&t, "/etc/loop", Last::Follow).unwrap_err().to_string();
        assert!(e.contains("too many levels"), "{e}");
        let e = run(&t, "/etc/dangling", Last::Follow)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no nowhere"), "{e}");
        let e = run(&t, "/usr/lib/os-release/x", Last::Follow)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a directory"), "{e}");
    }
}
