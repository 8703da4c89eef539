//! Decompression of qcow2 compressed clusters (raw deflate or zstd).
//!
//! The stored length of a compressed cluster is only known to the sector, so trailing
//! bytes after the end of the stream are tolerated; the output must fill the whole cluster.

use super::CompressionType;
use crate::{Error, Result};

/// Decompress `input` into `out`, which must be filled completely.
pub(crate) fn decompress(kind: CompressionType, input: &[u8], out: &mut [u8]) -> Result<()> {
    let produced = match kind {
        CompressionType::Zlib => inflate(input, out)?,
        CompressionType::Zstd => unzstd(input, out)?,
    };
    if produced != out.len() {
        return Err(Error::corrupt(format!(
            "{} compressed cluster decompressed to {produced} bytes, expected {}",
            kind.name(),
            out.len()
        )));
    }
    Ok(())
}

fn inflate(input: &[u8], out: &mut [u8]) -> Result<usize> {
    use flate2::{Decompress, FlushDecompress, Status};
    let mut d = Decompress::new(false);
    match d.decompress(input, out, FlushDecompress::Finish) {
        Ok(Status::StreamEnd | Status::BufError | Status::Ok) => Ok(d.total_out() as usize),
        Err(e) => Err(Error::corrupt(format!(
            "zlib compressed cluster is invalid: {e}"
        ))),
    }
}

fn unzstd(input: &[u8], out: &mut [u8]) -> Result<usize> {
    use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
    let mut dec = Decoder::new().map_err(|e| Error::io("creating a zstd decoder", e))?;
    let mut inb = InBuffer::around(input);
    let mut outb = OutBuffer::around(out);
    // The input may end with padding up to the sector end; stop once the cluster is full.
    while outb.pos() < outb.capacity() && inb.pos() < input.len() {
        let (ip, op) = (inb.pos(), outb.pos());
        dec.run(&mut inb, &mut outb)
            .map_err(|e| Error::corrupt(format!("zstd compressed cluster is invalid: {e}")))?;
        if inb.pos() == ip && outb.pos() == op {
            break;
        }
    }
    Ok(outb.pos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut out = vec![0u8; 4096];
        assert!(decompress(CompressionType::Zlib, &[0xff; 100], &mut out).is_err());
        assert!(decompress(CompressionType::Zstd, &[0xff; 100], &mut out).is_err());
        assert!(decompress(CompressionType::Zstd, &[], &mut out).is_err());
    }

    #[test]
    fn zstd_with_trailing_padding() {
        let data = vec![7u8; 4096];
        let mut c = zstd::bulk::compress(&data, 3).unwrap();
        c.extend_from_slice(&[0u8; 300]);
        let mut out = vec![0u8; 4096];
        decompress(CompressionType::Zstd, &c, &mut out).unwrap();
        assert_eq!(out, data);
    }
}
