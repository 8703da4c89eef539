//! Reading a VMDK image (a hosted sparse extent, or a text descriptor naming flat, sparse
//! and zero extents) and its parent chain as a read-only [`BlockDevice`].
//!
//! Extent files are resolved beside the descriptor and never outside its directory: an
//! absolute name or one with `..` is refused unless [`VmdkOptions::allow_outside`] is set.
//! A parent (`parentFileNameHint`, when `parentCID` is not `ffffffff`) is opened like a
//! qcow2 backing file, its CID checked against `parentCID`, with loop detection.

use super::descriptor::{Descriptor, ExtentType, NO_PARENT_CID};
use super::sparse::{Grain, SparseExtent, MAGIC};
use crate::block::{check_range, BlockDevice, Extent, RawFile, Slice};
use crate::image::chain::{self, Run};
use crate::image::Image;
use crate::{Error, Result};
use std::path::{Component, Path, PathBuf};

/// Choices when opening a VMDK image.
#[derive(Debug, Clone, Copy, Default)]
pub struct VmdkOptions {
    /// Accept extent files named by absolute paths or through `..`.
    pub allow_outside: bool,
}

/// How one extent stores its part of the disk.
#[derive(Debug)]
enum Store {
    Flat(Slice<RawFile>),
    Sparse(Box<SparseExtent>),
    Zero,
}

/// One extent and the disk bytes `[start, start + len)` it holds.
#[derive(Debug)]
struct Part {
    start: u64,
    len: u64,
    store: Store,
}

/// How a run of disk bytes is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Map {
    /// Not here: the parent's bytes, or zeros.
    Unallocated,
    Zero,
    /// In a flat extent (its own extents say where the holes are).
    Flat,
    /// A plain grain at this byte offset of its file.
    Data(u64),
    /// Inside the compressed grain behind the marker at this offset.
    Compressed(u64),
}

/// An open VMDK image, read-only, with its parent chain.
#[derive(Debug)]
pub struct VmdkImage {
    path: PathBuf,
    size: u64,
    parts: Vec<Part>,
    descriptor: Descriptor,
    parent: Option<Image>,
}

impl VmdkImage {
    /// Open a VMDK image read-only, with its parents.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_chain(path.as_ref(), VmdkOptions::default(), &mut Vec::new())
    }

    /// Open `path` as part of a chain whose images are `seen` (see [`Image::open_as`]).
    pub(crate) fn open_chain(
        path: &Path,
        opts: VmdkOptions,
        seen: &mut Vec<PathBuf>,
    ) -> Result<Self> {
        chain::enter(path, seen)?;
        let file = RawFile::open(path)?;
        let mut magic = [0u8; 4];
        if file.len() >= 4 {
            file.read_at(&mut magic, 0)?;
        }
        if &magic == b"COWD" {
            return Err(Error::unsupported(format!(
                "{}: a VMware 3 / ESX sparse extent (\"COWD\") is not supported; hosted \
                 sparse (\"KDMV\"), streamOptimized and flat VMDKs are",
                path.display()
            )));
        }
        let (descriptor, parts) = if &magic == MAGIC {
            let (sparse, embedded) = SparseExtent::open(file)?;
            let len = sparse.capacity_bytes();
            let part = Part {
                start: 0,
                len,
                store: Store::Sparse(Box::new(sparse)),
            };
            (embedded.unwrap_or_default(), vec![part])
        } else {
            let len = file.len();
            if len > super::descriptor::MAX_DESCRIPTOR {
                return Err(Error::corrupt(format!(
                    "{}: a VMDK descriptor of {len} bytes is too large",
                    path.display()
                )));
            }
            let mut text = vec![0u8; len as usize];
            file.read_at(&mut text, 0)?;
            let d = Descriptor::parse(&text).map_err(|e| e.in_file(path))?;
            let parts = open_extents(path, &d, opts)?;
            (d, parts)
        };
        let size = parts.last().map_or(0, |p| p.start + p.len);
        let parent = match descriptor.parent() {
            None => None,
            Some(name) => Some(open_parent(path, name, &descriptor, seen)?),
        };
        Ok(VmdkImage {
            path: path.to_path_buf(),
            size,
            parts,
            descriptor,
            parent,
        })
    }

    /// The path the image was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor (embedded in a sparse extent, or the file itself).
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// Bytes the image's files (descriptor and extents) occupy on the host filesystem.
    pub fn files_allocated_bytes(&self) -> Result<u64> {
        let mut total = 0;
        let mut own = true;
        for p in &self.parts {
            total += match &p.store {
                Store::Flat(f) => f.inner().allocated_bytes()?,
                Store::Sparse(s) => s.file_allocated_bytes()?,
                Store::Zero => 0,
            };
            own &= !matches!(&p.store, Store::Sparse(s) if s.path() == self.path);
        }
        if own {
            total += RawFile::open(&self.path)?.allocated_bytes()?;
        }
        Ok(total)
    }

    /// The parent image, if any.
    pub fn parent(&self) -> Option<&Image> {
        self.parent.as_ref()
    }

    /// The extent holding disk byte `pos` (`pos < size`).
    fn part(&self, pos: u64) -> &Part {
        let i = self.parts.partition_point(|p| p.start + p.len <= pos);
        &self.parts[i]
    }

    /// How `pos` is stored and how many bytes from it (at most `max`) are stored alike.
    fn map_run(&self, pos: u64, max: u64) -> Result<(Map, u64)> {
        let part = self.part(pos);
        let rel = pos - part.start;
        let in_part = (part.len - rel).min(max);
        Ok(match &part.store {
            Store::Zero => (Map::Zero, in_part),
            Store::Flat(_) => (Map::Flat, in_part),
            Store::Sparse(s) => {
                let within = rel % s.grain_bytes();
                let (grain, n) = s.run(rel, in_part)?;
                let map = match grain {
                    Grain::Unallocated => Map::Unallocated,
                    Grain::Zero => Map::Zero,
                    Grain::Data(host) => Map::Data(host + within),
                    Grain::Compressed(host) => Map::Compressed(host),
                };
                (map, n)
            }
        })
    }
}

/// Open every extent a descriptor names, beside the descriptor.
fn open_extents(path: &Path, d: &Descriptor, opts: VmdkOptions) -> Result<Vec<Part>> {
    if d.extents.is_empty() {
        return Err(Error::corrupt(format!(
            "{}: the VMDK descriptor names no extents",
            path.display()
        )));
    }
    let mut parts = Vec::with_capacity(d.extents.len());
    let mut start = 0u64;
    for e in &d.extents {
        let len = e.sectors.checked_mul(512).ok_or_else(|| {
            Error::corrupt(format!(
                "{}: extent of {} sectors is too large",
                path.display(),
                e.sectors
            ))
        })?;
        let store = match (&e.file, e.kind) {
            (_, ExtentType::Zero) | (None, _) => Store::Zero,
            (Some(name), kind) => {
                let file = RawFile::open(extent_path(path, name, opts)?)?;
                if kind == ExtentType::Flat {
                    let off = e.offset.saturating_mul(512);
                    let flen = file.len();
                    let fpath = file.path().display().to_string();
                    Store::Flat(Slice::new(file, off, len).map_err(|_| {
                        Error::corrupt(format!(
                            "{}: flat extent {fpath} is {flen} bytes, the descriptor needs \
                             {len} bytes from offset {off}",
                            path.display()
                        ))
                    })?)
                } else {
                    let (s, _) = SparseExtent::open(file)?;
                    if s.capacity_bytes() < len {
                        return Err(Error::corrupt(format!(
                            "{}: sparse extent {name:?} holds {} bytes, the descriptor says \
                             {len}",
                            path.display(),
                            s.capacity_bytes()
                        )));
                    }
                    Store::Sparse(Box::new(s))
                }
            }
        };
        parts.push(Part { start, len, store });
        start = start.checked_add(len).ok_or_else(|| {
            Error::corrupt(format!(
                "{}: extents add up past 2^64 bytes",
                path.display()
            ))
        })?;
    }
    // Lookups assume no empty parts.
    parts.retain(|p| p.len > 0);
    Ok(parts)
}

/// Where extent file `name` of the descriptor at `path` is.
fn extent_path(path: &Path, name: &str, opts: VmdkOptions) -> Result<PathBuf> {
    let p = Path::new(name);
    let escapes = p.is_absolute() || p.components().any(|c| c == Component::ParentDir);
    if escapes && !opts.allow_outside {
        return Err(Error::unsupported(format!(
            "{}: extent file {name:?} is outside the descriptor's directory (an absolute \
             path or one through \"..\"); refusing to read it",
            path.display()
        )));
    }
    Ok(chain::resolve_parent(path, name))
}

fn open_parent(path: &Path, name: &str, d: &Descriptor, seen: &mut Vec<PathBuf>) -> Result<Image> {
    let resolved = chain::resolve_parent(path, name);
    if let Err(e) = std::fs::metadata(&resolved) {
        return Err(Error::io(
            format!(
                "opening parent {name:?} of {} (resolved to {})",
                path.display(),
                resolved.display()
            ),
            e,
        ));
    }
    let parent = Image::open_chain(&resolved, None, seen)?;
    if let (Image::Vmdk(p), Some(want)) = (&parent, d.parent_cid) {
        if want != NO_PARENT_CID && p.descriptor.cid.is_some_and(|cid| cid != want) {
            return Err(Error::corrupt(format!(
                "{}: parentCID is {want:08x} but the parent {} has CID {:08x} (the parent \
                 changed after this image was made)",
                path.display(),
                resolved.display(),
                p.descriptor.cid.unwrap_or(0)
            )));
        }
    }
    Ok(parent)
}

impl BlockDevice for VmdkImage {
    fn len(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.size, offset, buf.len() as u64)?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (map, n) = self.map_run(pos, (buf.len() - done) as u64)?;
            let out = &mut buf[done..done + n as usize];
            let part = self.part(pos);
            match (map, &part.store) {
                (Map::Zero, _) => out.fill(0),
                (Map::Unallocated, _) => chain::read_parent(self.parent.as_ref(), out, pos)?,
                (Map::Flat, Store::Flat(f)) => f.read_at(out, pos - part.start)?,
                (Map::Data(host), Store::Sparse(s)) => s.read_plain(out, host)?,
                (Map::Compressed(host), Store::Sparse(s)) => {
                    let rel = pos - part.start;
                    let grain = s.compressed_grain(host, rel)?;
                    let at = (rel % s.grain_bytes()) as usize;
                    out.copy_from_slice(&grain[at..at + out.len()]);
                }
                _ => unreachable!("map_run returns a map of its part's kind"),
            }
            done += n as usize;
        }
        Ok(())
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        check_range(self.size, offset, len)?;
        chain::map_extents(self.parent.as_ref(), offset, len, |pos, left| {
            let (map, n) = self.map_run(pos, left)?;
            let part = self.part(pos);
            let run = match (map, &part.store) {
                (Map::Zero, _) => Run::Zero,
                (Map::Data(_) | Map::Compressed(_), _) => Run::Data,
                (Map::Flat, Store::Flat(f)) => Run::Extents(
                    f.extents(pos - part.start, n)?
                        .into_iter()
                        .map(|e| Extent {
                            offset: e.offset + part.start,
                            ..e
                        })
                        .collect(),
                ),
                (Map::Unallocated, _) => Run::Parent,
                _ => unreachable!("map_run returns a map of its part's kind"),
            };
            Ok((run, n))
        })
    }

    fn format_name(&self) -> &'static str {
        "vmdk"
    }
}
