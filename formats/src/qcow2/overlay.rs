//! `--overlay` outputs: a qcow2 image over the input as its backing file, holding only the
//! clusters an edit touched.
//!
//! The edited device is seen through a view that reports the touched clusters (the changed
//! ranges rounded out to whole clusters) as data and everything else as absent, and that
//! view goes through the one qcow2 writer in overlay mode: every cluster reported as data
//! is allocated, filled completely from the edited device (so the unchanged bytes of a
//! touched cluster are copied from the base), an all-zero one as a zero cluster so that it
//! does not fall through to the backing file; the rest stays unallocated and reads from
//! the backing file. The header names the backing file (relative to the overlay's
//! directory when the two share more than the root directory, else absolute) and records
//! its format in the backing-format extension, so qemu never has to probe it.

use super::writer::{write_image, BackingRef, WriteOptions, WriteStats};
use crate::block::{check_range, push_extent, BlockDevice, Changed, Extent, ExtentKind};
use crate::image::ImageFormat;
use crate::{Error, Result};
use std::fs::File;
use std::path::{Component, Path, PathBuf};

/// What an overlay is made of.
#[derive(Clone, Copy)]
pub struct OverlayRequest<'a> {
    /// The edited virtual disk (the input with the edit on top); its length is the
    /// overlay's virtual size.
    pub edited: &'a dyn BlockDevice,
    /// The ranges the edit changed (any order; they are rounded out to whole clusters).
    pub changed: &'a [Changed],
    /// The input image, which becomes the backing file.
    pub backing: &'a Path,
    /// The input's format, recorded in the header.
    pub backing_format: ImageFormat,
    /// Where the overlay will finally live: the backing name is made relative to its
    /// directory (write to a temporary file beside it, then rename).
    pub out_path: &'a Path,
}

/// Write the overlay described by `req` to `out` (an empty file opened read+write) and
/// sync it. The cluster size and compression of the touched clusters come from `opts`;
/// `progress` is called as by [`super::write_qcow2`]. The stats count zero clusters out of
/// `data_bytes`.
pub fn write_overlay(
    req: &OverlayRequest<'_>,
    out: &File,
    opts: &WriteOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<WriteStats> {
    let backing = BackingRef {
        name: backing_name(req.backing, req.out_path)?,
        format: req.backing_format.qemu_name(),
    };
    let view = Touched::new(req.edited, req.changed, opts.cluster_size)?;
    write_image(&view, out, opts, Some(&backing), progress)
}

/// How an overlay at `overlay` should name `backing`: the path from the overlay's
/// directory to it (both resolved through symlinks) when they share more than the root
/// directory, else the absolute path. Fails when either cannot be resolved or the name is
/// not UTF-8.
pub fn backing_name(backing: &Path, overlay: &Path) -> Result<String> {
    let target = std::fs::canonicalize(backing)
        .map_err(|e| Error::io(format!("resolving {}", backing.display()), e))?;
    let dir = match overlay.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(dir)
        .map_err(|e| Error::io(format!("resolving {}", dir.display()), e))?;
    let t: Vec<Component> = target.components().collect();
    let d: Vec<Component> = dir.components().collect();
    let common = t.iter().zip(&d).take_while(|(a, b)| a == b).count();
    let name = if common <= 1 {
        target.clone()
    } else {
        let mut rel = PathBuf::new();
        for _ in common..d.len() {
            rel.push("..");
        }
        for c in &t[common..] {
            rel.push(c);
        }
        rel
    };
    name.to_str().map(str::to_owned).ok_or_else(|| {
        Error::Unsupported(format!(
            "the backing file name {} is not UTF-8",
            name.display()
        ))
    })
}

/// The edited device seen with only the touched clusters as data and the rest as zero
/// (which the overlay writer leaves unallocated, to the backing file).
struct Touched<'a> {
    dev: &'a dyn BlockDevice,
    /// Sorted, disjoint, non-adjacent cluster-aligned runs (clipped to the device).
    runs: Vec<(u64, u64)>,
}

impl<'a> Touched<'a> {
    fn new(dev: &'a dyn BlockDevice, changed: &[Changed], cs: u64) -> Result<Touched<'a>> {
        if !cs.is_power_of_two() {
            return Err(Error::InvalidArgument(format!(
                "qcow2 cluster size must be a power of two, not {cs}"
            )));
        }
        let len = dev.len();
        let mut ranges: Vec<(u64, u64)> = Vec::with_capacity(changed.len());
        for c in changed.iter().filter(|c| c.len > 0) {
            check_range(len, c.offset, c.len)?;
            ranges.push((
                c.offset / cs * cs,
                c.end().div_ceil(cs).saturating_mul(cs).min(len),
            ));
        }
        ranges.sort_unstable();
        let mut runs: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match runs.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => runs.push((a, b)),
            }
        }
        Ok(Touched { dev, runs })
    }
}

impl BlockDevice for Touched<'_> {
    fn len(&self) -> u64 {
        self.dev.len()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.dev.read_at(buf, offset)
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        check_range(self.len(), offset, len)?;
        let end = offset + len;
        let mut out = Vec::new();
        let mut pos = offset;
        let first = self.runs.partition_point(|&(_, b)| b <= offset);
        for &(a, b) in self.runs[first..].iter().take_while(|&&(a, _)| a < end) {
            let (s, t) = (a.max(offset), b.min(end));
            let zero = Extent {
                offset: pos,
                len: s.saturating_sub(pos),
                kind: ExtentKind::Zero,
            };
            push_extent(&mut out, zero);
            let data = Extent {
                offset: s,
                len: t - s,
                kind: ExtentKind::Data,
            };
            push_extent(&mut out, data);
            pos = t;
        }
        let rest = Extent {
            offset: pos,
            len: end - pos,
            kind: ExtentKind::Zero,
        };
        push_extent(&mut out, rest);
        Ok(out)
    }

    fn format_name(&self) -> &'static str {
        self.dev.format_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MemoryDevice;

    #[test]
    fn touched_clusters_are_the_only_data() {
        let dev = MemoryDevice::from_vec(vec![1u8; 10 * 4096 + 100]);
        let changed = [
            Changed {
                offset: 4096 * 9 + 50,
                len: 100,
            },
            Changed { offset: 10, len: 1 },
            Changed {
                offset: 8192,
                len: 4096,
            },
            Changed {
                offset: 4096 * 4 - 1,
                len: 2,
            },
        ];
        let v = Touched::new(&dev, &changed, 8192).unwrap();
        // Rounded out to 8 KiB clusters; touching runs merged.
        assert_eq!(v.runs, [(0, 3 * 8192), (4 * 8192, 5 * 8192)]);
        let e = v.extents(0, dev.len()).unwrap();
        let kinds: Vec<_> = e.iter().map(|x| (x.offset, x.len, x.kind)).collect();
        assert_eq!(
            kinds,
            [
                (0, 3 * 8192, ExtentKind::Data),
                (3 * 8192, 8192, ExtentKind::Zero),
                (4 * 8192, 8192, ExtentKind::Data),
                (5 * 8192, 100, ExtentKind::Zero),
            ]
        );
        let mid = v.extents(100, 8192 * 5).unwrap();
        assert_eq!(mid.iter().map(|x| x.len).sum::<u64>(), 8192 * 5);
        assert_eq!(mid[0].offset, 100);
    }

    #[test]
    fn backing_names_are_relative_to_the_overlay() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("a/base.img");
        std::fs::create_dir_all(base.parent().unwrap()).unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        std::fs::write(&base, b"x").unwrap();
        let name = |o: &str| backing_name(&base, &dir.path().join(o)).unwrap();
        assert_eq!(name("a/ov.qcow2"), "base.img");
        assert_eq!(name("b/c/ov.qcow2"), "../../a/base.img");
        assert_eq!(name("ov.qcow2"), "a/base.img");
        // Only the root in common: absolute.
        let abs = backing_name(&base, Path::new("/ov.qcow2")).unwrap();
        assert_eq!(Path::new(&abs), std::fs::canonicalize(&base).unwrap());
        assert!(backing_name(&dir.path().join("missing"), &base).is_err());
    }
}
