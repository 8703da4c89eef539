//! Carrying a plan out in one pass: one copy-on-write [`Overlay`] over the whole disk
//! (its blocks spilled to an unnamed temporary file) takes every write; each filesystem the
//! plan touches is edited through it in turn — ext2/3/4 by the in-process editor
//! ([`crate::edit::ext_edit`]: opened, changed, closed and checked), FAT by
//! [`FatVolume`] — in the order of the plan. Nothing reaches the input or the output here:
//! the caller delivers the overlay ([`crate::edit::deliver`]).

use super::installed::{FsIndex, Installed};
use super::namespace::Content as NewContent;
use super::plan::{Change, GraftSource, Step};
use crate::edit::edited_tree::Graft;
use crate::edit::ext_edit::{finish, graft, open_editor, refusal, Copied};
use crate::edit::full_check::Verify;
use crate::ops::relayout::esp::OneFile;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, Overlay, RawFile, Slice};
use subroot_formats::fat::FatVolume;
use subroot_formats::hostdir::HostDir;
use subroot_formats::tar::TarTree;
use subroot_formats::tree::{all_data, BytesContent, Content, Entry, Kind, Metadata, TreeSource};
use subroot_libext2fs::Ext2Fs;

fn shown(p: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(p))
}

fn entry(path: &[u8], kind: Kind, meta: &Metadata, size: u64) -> Entry {
    Entry {
        path: path.to_vec(),
        kind,
        meta: meta.clone(),
        size,
        rdev: (0, 0),
        link_target: None,
        hardlink_id: None,
    }
}

/// A host file's content, streamed (all data: a host file named through a symlink).
struct HostFile {
    file: std::fs::File,
    len: u64,
}

impl Read for HostFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read(buf)
    }
}

impl Content for HostFile {
    fn extents(&self) -> subroot_formats::Result<Vec<subroot_formats::block::Extent>> {
        Ok(all_data(self.len))
    }
}

/// What is done with a file's new content and its length.
type ContentUser<'a> = dyn FnMut(&mut dyn Content, u64) -> Result<()> + 'a;

/// Hand the content to write, and its length, to `f`: a host file through the host tree
/// reader, so its holes stay holes.
fn with_content(c: &NewContent, f: &mut ContentUser<'_>) -> Result<()> {
    match c {
        NewContent::Bytes(b) => f(&mut BytesContent::new(b.to_vec()), b.len() as u64),
        NewContent::Host(p) if p.symlink_metadata().is_ok_and(|m| m.is_file()) => {
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
            let dir = dir.unwrap_or(std::path::Path::new("."));
            let name = p.file_name().context("the host file has no name")?;
            let host =
                HostDir::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
            let mut failed = None;
            let mut done = false;
            let walked = host.walk(name.as_bytes(), &mut |e, content| {
                let Some(content) = content else {
                    return Ok(());
                };
                done = true;
                f(content, e.size).map_err(|err| {
                    failed = Some(err);
                    subroot_formats::Error::InvalidArgument("the edit failed".into())
                })
            });
            if let Some(err) = failed {
                return Err(err);
            }
            walked.with_context(|| format!("cannot read {}", p.display()))?;
            if !done {
                bail!("{} is not a regular file", p.display());
            }
            Ok(())
        }
        NewContent::Host(p) => {
            let file =
                std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            let len = file.metadata()?.len();
            f(&mut HostFile { file, len }, len)
        }
        NewContent::TarMember { .. } => {
            let b = c.read()?;
            let len = b.len() as u64;
            f(&mut BytesContent::new(b), len)
        }
    }
}

/// What is done with a graft's tree and the root inside it.
type TreeUser<'a, T> = dyn FnMut(&dyn TreeSource, &[u8]) -> Result<T> + 'a;

/// Open a graft's tree and hand it to `f` with the root inside it.
fn with_tree<T>(source: &GraftSource, f: &mut TreeUser<'_, T>) -> Result<T> {
    match source {
        GraftSource::Host { dir, root } => {
            let h = HostDir::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
            f(&h, root)
        }
        GraftSource::Tar(p) => {
            let dev = RawFile::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            f(&TarTree::new(dev), b"")
                .with_context(|| format!("reading the tar archive {}", p.display()))
        }
    }
}

/// Apply `steps` to an overlay over `sys`'s disk and return it.
pub fn apply(
    sys: &Installed,
    steps: &[Step],
    verify: Verify,
    ctx: &Ctx,
) -> Result<Arc<Overlay<Arc<dyn BlockDevice>>>> {
    let spill = tempfile::tempfile().context("cannot create a temporary file for the edit")?;
    let overlay = Arc::new(Overlay::with_spill(sys.disk.clone(), spill));
    let mut order: Vec<FsIndex> = Vec::new();
    for s in steps {
        if !order.contains(&s.fs) {
            order.push(s.fs);
        }
    }
    for fs in order {
        let (start, len) = sys.range(fs);
        let part: Arc<dyn BlockDevice> = Arc::new(Slice::new(overlay.clone(), start, len)?);
        let what = sys.describe(fs);
        let changes: Vec<&Change> = steps
            .iter()
            .filter(|s| s.fs == fs)
            .map(|s| &s.change)
            .collect();
        match sys.kind(fs) {
            Some(k) if k.starts_with("ext") => {
                if let Some(why) = refusal(&part, &what)? {
                    bail!("{what} cannot be edited ({why}); nothing was written");
                }
                let mut e = open_editor(&part, &what)?;
                ctx.note(format_args!("editing {what}"));
                for c in &changes {
                    ext_change(&mut e, c)?;
                }
                let (stats, _) = finish(e, &part, &what, verify, ctx)?;
                ctx.detail(format_args!(
                    "edited {what}: {} changes; {} blocks, {} inodes taken; {} bytes written",
                    changes.len(),
                    stats.blocks_used,
                    stats.inodes_used,
                    stats.bytes_written
                ));
            }
            Some("vfat") => {
                let mut vol = FatVolume::open(part.clone())
                    .with_context(|| format!("cannot open the FAT filesystem of {what}"))?;
                ctx.note(format_args!("editing {what}"));
                for c in &changes {
                    fat_change(&mut vol, c).with_context(|| format!("on {what}"))?;
                }
                vol.flush()
                    .with_context(|| format!("cannot finish the edit of {what}"))?;
            }
            _ => bail!("internal: {what} is not written by subroot"),
        }
    }
    Ok(overlay)
}

/// One change on an ext filesystem.
fn ext_change(fs: &mut Ext2Fs, c: &Change) -> Result<()> {
    let what = || format!("cannot {} {}", c.action(), shown(c.path()));
    match c {
        Change::MakeDir { path, meta } => {
            fs.create(&entry(path, Kind::Dir, meta, 0), None)
                .with_context(what)?;
        }
        Change::CreateFile {
            path,
            meta,
            content,
        } => {
            with_content(content, &mut |data, len| {
                fs.create(&entry(path, Kind::File, meta, len), Some(data))
                    .with_context(what)?;
                Ok(())
            })?;
        }
        Change::SetContent {
            path,
            meta,
            content,
        } => {
            let st = fs.stat(path).with_context(what)?;
            with_content(content, &mut |data, len| {
                if st.links > 1 {
                    // The other names keep the old inode and its content.
                    fs.unlink(path).with_context(what)?;
                    fs.create(&entry(path, Kind::File, meta, len), Some(data))
                        .with_context(what)?;
                } else {
                    fs.replace_content(path, data).with_context(what)?;
                }
                Ok(())
            })?;
            fs.set_meta(path, meta).with_context(what)?;
        }
        Change::Truncate { path, meta } => {
            fs.truncate(path, 0).with_context(what)?;
            fs.set_meta(path, meta).with_context(what)?;
        }
        Change::Symlink { path, target, meta } => {
            let mut e = entry(path, Kind::Symlink, meta, target.len() as u64);
            e.link_target = Some(target.clone());
            fs.create(&e, None).with_context(what)?;
        }
        Change::Hardlink { existing, path } => fs.link(existing, path).with_context(what)?,
        Change::SetMeta { path, meta } => fs.set_meta(path, meta).with_context(what)?,
        Change::Remove { path } => fs.remove_tree(path).with_context(what)?,
        Change::Graft {
            source,
            dest,
            keep_dirs,
        } => {
            let mut copied = Copied::default();
            with_tree(source, &mut |tree, root| {
                let g = Graft {
                    tree,
                    root: root.to_vec(),
                    dest: dest.clone(),
                };
                graft(fs, &g, *keep_dirs, &mut copied)
            })?;
        }
    }
    Ok(())
}

/// One change on a FAT filesystem (the plan has refused what FAT cannot hold).
fn fat_change(vol: &mut FatVolume<Arc<dyn BlockDevice>>, c: &Change) -> Result<()> {
    let what = || format!("cannot {} {}", c.action(), shown(c.path()));
    let put = |vol: &mut FatVolume<Arc<dyn BlockDevice>>, e: Entry, content: &[u8]| {
        let path = e.path.clone();
        vol.put_tree(&OneFile { entry: e, content }, b"", &path)
            .map(|_| ())
    };
    match c {
        Change::MakeDir { path, meta } | Change::SetMeta { path, meta } => {
            let kind = if vol.kind(path)? == Some(false) {
                bail!("internal: {} is a file on FAT", shown(path))
            } else {
                Kind::Dir
            };
            put(vol, entry(path, kind, meta, 0), b"").with_context(what)?;
        }
        Change::CreateFile {
            path,
            meta,
            content,
        }
        | Change::SetContent {
            path,
            meta,
            content,
        } => match content {
            NewContent::Bytes(b) => {
                put(vol, entry(path, Kind::File, meta, b.len() as u64), b).with_context(what)?
            }
            NewContent::Host(p) => {
                let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
                let dir = dir.unwrap_or(std::path::Path::new("."));
                let name = p.file_name().context("the host file has no name")?;
                let h =
                    HostDir::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
                vol.put_tree(&h, name.as_bytes(), path).with_context(what)?;
            }
            NewContent::TarMember { .. } => {
                let b = content.read()?;
                put(vol, entry(path, Kind::File, meta, b.len() as u64), &b).with_context(what)?
            }
        },
        Change::Remove { path } => vol.remove(path, true).with_context(what)?,
        Change::Graft { source, dest, .. } => {
            with_tree(source, &mut |tree, root| {
                vol.put_tree(tree, root, dest).with_context(what)?;
                Ok(())
            })?;
        }
        Change::Truncate { .. } | Change::Symlink { .. } | Change::Hardlink { .. } => {
            bail!("internal: {} is not planned on FAT", c.action())
        }
    }
    Ok(())
}
