//! `subroot initrd create`: an initrd made of segments, one per SOURCE in order: an
//! existing initrd or cpio archive is validated and copied byte for byte; a host directory
//! becomes a newc archive in sorted order, compressed with `--compress`.

use super::parse_compression;
use crate::cli::CreateInitrdArgs;
use crate::clock::source_date_epoch;
use crate::output::AtomicOutput;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::io::Read;
use std::io::{BufWriter, Write};
use subroot_formats::block::{BlockDevice, RawFile};
use subroot_formats::cpio::{
    list_segments, Compression, CompressionSpec, CpioHeader, Format, SegmentWriter,
};
use subroot_formats::hostdir::HostDir;
use subroot_formats::tree::{Kind, TreeSource};
use subroot_formats::Error;

pub fn run(args: &CreateInitrdArgs, ctx: &Ctx) -> Result<()> {
    let spec = parse_compression(&args.compress)?;
    let epoch = source_date_epoch()?;
    let out = AtomicOutput::create(&args.output, args.force)?;
    let dest = args.output.display().to_string();
    let mut segments = 0usize;
    {
        let mut w = Counting {
            inner: BufWriter::with_capacity(1 << 20, out.file()),
            count: 0,
        };
        for src in &args.sources {
            let name = src.display().to_string();
            let meta = std::fs::metadata(src).with_context(|| format!("cannot read {name}"))?;
            if meta.is_dir() {
                segments += add_directory(&mut w, src, spec, epoch)
                    .with_context(|| format!("cannot archive the directory {name}"))?;
            } else {
                segments +=
                    copy_initrd(&mut w, src, spec).with_context(|| format!("cannot add {name}"))?;
            }
        }
        w.inner
            .flush()
            .with_context(|| format!("cannot write {dest}"))?;
    }
    out.commit()?;
    ctx.note(format_args!("wrote {dest} ({segments} segment(s))"));
    Ok(())
}

/// A writer counting the bytes written (for alignment).
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Zero padding up to a 4-byte boundary (the kernel skips zeros between segments; a plain
/// archive must start aligned).
fn align4<W: Write>(w: &mut Counting<W>) -> Result<()> {
    let pad = (4 - w.count % 4) % 4;
    w.write_all(&[0u8; 4][..pad as usize])?;
    Ok(())
}

/// Copy an initrd or cpio file whole, after checking that it parses; returns its segments.
fn copy_initrd<W: Write>(
    w: &mut Counting<W>,
    src: &std::path::Path,
    _spec: CompressionSpec,
) -> Result<usize> {
    let dev = RawFile::open(src)?;
    let segs = list_segments(&dev)?;
    if segs.is_empty() {
        bail!("it holds no cpio archive");
    }
    align4(w)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    let len = dev.len();
    while pos < len {
        let n = (len - pos).min(buf.len() as u64) as usize;
        let chunk = buf.get_mut(..n).context("buffer")?;
        dev.read_at(chunk, pos)?;
        w.write_all(chunk)?;
        pos += n as u64;
    }
    Ok(segs.len())
}

/// Archive a host directory as one segment: entries in the reader's sorted order (the
/// root as `.`), hard links with the data on the first link (what the kernel expects),
/// inode numbers assigned in order, mtimes clamped to `epoch`.
fn add_directory<W: Write>(
    w: &mut Counting<W>,
    src: &std::path::Path,
    spec: CompressionSpec,
    epoch: Option<u64>,
) -> Result<usize> {
    let dir = HostDir::open(src)?;
    // Pass 1: how many links of each hard-link id the tree holds.
    let mut links: HashMap<u64, u32> = HashMap::new();
    dir.walk(b"", &mut |e, _| {
        if let Some(id) = e.hardlink_id {
            *links.entry(id).or_default() += 1;
        }
        Ok(())
    })?;
    if spec.compression == Compression::None {
        align4(w)?;
    }
    let mut seg = SegmentWriter::new(&mut *w, spec.compression, spec.level, Format::Newc)?;
    let mut inos: HashMap<u64, u32> = HashMap::new();
    let mut next_ino = 0u32;
    dir.walk(b"", &mut |e, content| {
        let name: Vec<u8> = if e.path.is_empty() {
            b".".to_vec()
        } else {
            e.path.clone()
        };
        let show = || String::from_utf8_lossy(&name).into_owned();
        let mtime = e.meta.mtime.sec.max(0) as u64;
        let mtime = epoch.map_or(mtime, |ep| mtime.min(ep));
        let mtime = u32::try_from(mtime).map_err(|_| {
            Error::InvalidArgument(format!(
                "{}: mtime {mtime} does not fit the 32-bit cpio field",
                show()
            ))
        })?;
        let nlink_group = e
            .hardlink_id
            .and_then(|id| links.get(&id).copied().filter(|&n| n > 1).map(|n| (id, n)));
        let (ino, first_link) = match nlink_group {
            Some((id, _)) => match inos.get(&id) {
                Some(&i) => (i, false),
                None => {
                    next_ino += 1;
                    inos.insert(id, next_ino);
                    (next_ino, true)
                }
            },
            None => {
                next_ino += 1;
                (next_ino, true)
            }
        };
        let mut h = CpioHeader::new(name.clone(), e.mode(), 0);
        h.ino = ino;
        h.uid = e.meta.uid;
        h.gid = e.meta.gid;
        h.mtime = mtime;
        h.nlink = match (e.kind, nlink_group) {
            (Kind::Dir, _) => 2,
            (_, Some((_, n))) => n,
            _ => 1,
        };
        h.rdev_major = e.rdev.0;
        h.rdev_minor = e.rdev.1;
        match e.kind {
            Kind::Symlink => {
                let t = e.link_target.clone().unwrap_or_default();
                seg.add_bytes(&h, &t)
            }
            Kind::File if first_link => {
                h.filesize = u32::try_from(e.size).map_err(|_| {
                    Error::Unsupported(format!(
                        "{}: {} bytes is more than a cpio entry holds (4 GiB)",
                        show(),
                        e.size
                    ))
                })?;
                match content {
                    Some(c) => seg.add(&h, &mut c.take(e.size)),
                    None => Err(Error::corrupt(format!("{}: no content", show()))),
                }
            }
            _ => seg.add_bytes(&h, &[]),
        }
    })?;
    seg.finish()?;
    Ok(1)
}
