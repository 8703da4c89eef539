//! The edit engine's work on one filesystem: a relayout [`Layout`] carried out by the
//! in-process ext editor ([`subroot_libext2fs::Ext2Fs`]), in this order:
//! 1. the subroot directory (`r0`) is made with the metadata the layout gives it;
//! 2. each moved top-level entry is renamed into it (its inode and data stay where they
//!    are; a moved directory's `..` and the link counts follow);
//! 3. the other added entries are made, parents first, with their metadata and content;
//! 4. each replaced file gets its new content, keeping its inode and metadata — unless it
//!    has other hard links: then the name gets an inode of its own with the same metadata,
//!    as after `sed -i`, and the other links keep the old content. A rewritten initrd whose
//!    new content is the old one with a segment appended ([`NewContent::Appended`]) is
//!    appended to where it lies: only the new segment is written.
//!
//! The result is the tree [`super::transform::RelayoutTree`] describes, which the rebuild
//! engine builds from.

use super::transform::{key_of, Layout, NewContent};
use anyhow::{Context, Result};
use subroot_formats::tree::{Content, Entry, Kind};
use subroot_libext2fs::Ext2Fs;

/// What [`apply`] did, for the report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Applied {
    pub moved: usize,
    pub added: usize,
    pub replaced: usize,
    /// Replaced files that only had bytes appended.
    pub appended: usize,
}

fn shown(p: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(p))
}

/// Carry `layout` out on `fs` (see the module comment).
pub fn apply(fs: &mut Ext2Fs, layout: &Layout) -> Result<Applied> {
    let mut done = Applied::default();
    let mut added: Vec<_> = layout.added.iter().collect();
    added.sort_by_key(|a| key_of(&a.entry.path));
    let is_subroot = |p: &[u8]| p == layout.subroot.as_slice();
    for a in added.iter().filter(|a| is_subroot(&a.entry.path)) {
        fs.create(&a.entry, None)
            .with_context(|| format!("cannot make {}", shown(&a.entry.path)))?;
        done.added += 1;
    }
    for name in layout.top.iter().filter(|n| layout.moved.contains(*n)) {
        let to = layout.output_path(name);
        fs.rename(name, &to)
            .with_context(|| format!("cannot move {} to {}", shown(name), shown(&to)))?;
        done.moved += 1;
    }
    for a in added.iter().filter(|a| !is_subroot(&a.entry.path)) {
        let mut content: Option<Box<dyn Content>> = match (&a.content, a.entry.kind) {
            (Some(c), _) => Some(c.open()?),
            (None, Kind::File) => Some(NewContent::Bytes(Vec::new()).open()?),
            (None, _) => None,
        };
        let content: Option<&mut dyn Content> = match content.as_mut() {
            Some(c) => Some(&mut **c),
            None => None,
        };
        fs.create(&a.entry, content)
            .with_context(|| format!("cannot add {}", shown(&a.entry.path)))?;
        done.added += 1;
    }
    for (path, new) in &layout.replaced {
        if replace_file(fs, path, new)? {
            done.appended += 1;
        }
        done.replaced += 1;
    }
    Ok(done)
}

/// Give file `path` the content `new`, keeping its inode and metadata — unless it has
/// other hard links: then the name gets an inode of its own with the same metadata, as
/// after `sed -i`, and the other links keep the old content. Content that is the old one
/// with bytes appended is appended to where it lies. True when only bytes were appended.
pub fn replace_file(fs: &mut Ext2Fs, path: &[u8], new: &NewContent) -> Result<bool> {
    let st = fs
        .stat(path)
        .with_context(|| format!("cannot find {}", shown(path)))?;
    let what = || format!("cannot write the new content of {}", shown(path));
    let mut appended = false;
    if st.links > 1 {
        fs.unlink(path).with_context(what)?;
        let entry = Entry {
            path: path.to_vec(),
            kind: Kind::File,
            meta: st.meta.clone(),
            size: new.len(),
            rdev: (0, 0),
            link_target: None,
            hardlink_id: None,
        };
        fs.create(&entry, Some(&mut *new.open()?))
            .with_context(what)?;
    } else if let Some((keep, mut tail)) = new.appended_to(st.size)? {
        fs.truncate(path, keep).with_context(what)?;
        fs.append(path, &mut *tail).with_context(what)?;
        appended = true;
    } else {
        fs.replace_content(path, &mut *new.open()?)
            .with_context(what)?;
    }
    // The new content keeps the file's times, as the intended tree says.
    fs.set_meta(path, &st.meta).with_context(what)?;
    Ok(appended)
}
