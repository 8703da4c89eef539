//! An image file of any supported container format (raw, qcow2, VHD, VHDX), opened by
//! probing its magic or by an explicit format, as one [`BlockDevice`]. Other container
//! formats are recognised ([`probe`]) and refused by name.

pub(crate) mod chain;
mod probe;
pub(crate) mod table;

pub use probe::{probe, ForeignFormat, Probed};

use crate::block::{BlockDevice, Extent, RawFile};
use crate::qcow2::Qcow2Image;
use crate::vhd::VhdImage;
use crate::vhdx::VhdxImage;
use crate::{Error, Result};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A container format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// The bytes of the file are the bytes of the disk.
    Raw,
    /// QEMU copy-on-write version 2 or 3.
    Qcow2,
    /// Microsoft VHD (qemu "vpc"): fixed, dynamic or differencing.
    Vhd,
    /// Microsoft VHDX: fixed, dynamic or differencing.
    Vhdx,
}

impl ImageFormat {
    /// The name of the format ("raw", "qcow2", "vhd", "vhdx"); qemu calls VHD "vpc".
    pub fn name(&self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
            ImageFormat::Vhd => "vhd",
            ImageFormat::Vhdx => "vhdx",
        }
    }

    /// The name qemu gives the format (what a qcow2 backing-format extension holds).
    pub fn qemu_name(&self) -> &'static str {
        match self {
            ImageFormat::Vhd => "vpc",
            other => other.name(),
        }
    }
}

impl FromStr for ImageFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "raw" => Ok(ImageFormat::Raw),
            "qcow2" => Ok(ImageFormat::Qcow2),
            "vhd" | "vpc" => Ok(ImageFormat::Vhd),
            "vhdx" => Ok(ImageFormat::Vhdx),
            other => Err(Error::InvalidArgument(format!(
                "unknown image format {other:?} (expected raw, qcow2, vhd (vpc) or vhdx)"
            ))),
        }
    }
}

/// An open image: a raw file, or a qcow2, VHD or VHDX image with its backing chain.
#[derive(Debug)]
pub enum Image {
    /// A raw file.
    Raw(RawFile),
    /// A qcow2 image.
    Qcow2(Box<Qcow2Image>),
    /// A VHD image.
    Vhd(Box<VhdImage>),
    /// A VHDX image.
    Vhdx(Box<VhdxImage>),
}

/// What the file at `path` is, from its first and last bytes (see [`probe`]).
pub fn detect_format(path: &Path) -> Result<Probed> {
    let reading = |e| Error::io(format!("reading {}", path.display()), e);
    let f = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let len = crate::block::file_len(&f).map_err(reading)?;
    let mut head = vec![0u8; len.min(probe::HEAD_LEN as u64) as usize];
    f.read_exact_at(&mut head, 0).map_err(reading)?;
    let tail_len = len.min(probe::TAIL_LEN as u64) as usize;
    let mut tail = vec![0u8; tail_len];
    f.read_exact_at(&mut tail, len - tail_len as u64)
        .map_err(reading)?;
    Ok(probe::probe(&head, &tail))
}

impl Image {
    /// Open an image read-only, probing its format.
    pub fn open(path: impl AsRef<Path>) -> Result<Image> {
        Self::open_as(path, None)
    }

    /// Open an image read-only as `format` (probed when `None`).
    pub fn open_as(path: impl AsRef<Path>, format: Option<ImageFormat>) -> Result<Image> {
        Self::open_chain(path.as_ref(), format, &mut Vec::new())
    }

    /// Open `path` as part of a backing chain whose images (canonical paths) are `seen`.
    pub(crate) fn open_chain(
        path: &Path,
        format: Option<ImageFormat>,
        seen: &mut Vec<PathBuf>,
    ) -> Result<Image> {
        let format = match format {
            Some(f) => f,
            None => match detect_format(path)? {
                Probed::Raw => ImageFormat::Raw,
                Probed::Qcow2 => ImageFormat::Qcow2,
                Probed::Vhd => ImageFormat::Vhd,
                Probed::Vhdx => ImageFormat::Vhdx,
                Probed::Foreign(format) => {
                    return Err(Error::UnsupportedContainer {
                        path: path.to_path_buf(),
                        format,
                    })
                }
            },
        };
        Ok(match format {
            ImageFormat::Raw => Image::Raw(RawFile::open(path)?),
            ImageFormat::Qcow2 => Image::Qcow2(Box::new(Qcow2Image::open_chain(path, seen)?)),
            ImageFormat::Vhd => Image::Vhd(Box::new(VhdImage::open_chain(path, seen)?)),
            ImageFormat::Vhdx => Image::Vhdx(Box::new(VhdxImage::open_chain(path, seen)?)),
        })
    }

    /// The container format.
    pub fn format(&self) -> ImageFormat {
        match self {
            Image::Raw(_) => ImageFormat::Raw,
            Image::Qcow2(_) => ImageFormat::Qcow2,
            Image::Vhd(_) => ImageFormat::Vhd,
            Image::Vhdx(_) => ImageFormat::Vhdx,
        }
    }

    /// The path the image was opened from.
    pub fn path(&self) -> &Path {
        match self {
            Image::Raw(r) => r.path(),
            Image::Qcow2(q) => q.path(),
            Image::Vhd(v) => v.path(),
            Image::Vhdx(v) => v.path(),
        }
    }

    /// The image this one reads unallocated ranges from (qcow2 backing file, VHD or VHDX
    /// parent), if any.
    pub fn backing(&self) -> Option<&Image> {
        match self {
            Image::Raw(_) => None,
            Image::Qcow2(q) => q.backing(),
            Image::Vhd(v) => v.parent(),
            Image::Vhdx(v) => v.parent(),
        }
    }

    /// Bytes the image file itself occupies on the host filesystem.
    pub fn file_allocated_bytes(&self) -> Result<u64> {
        match self {
            Image::Raw(r) => r.allocated_bytes(),
            Image::Qcow2(q) => q.file_allocated_bytes(),
            Image::Vhd(v) => v.file_allocated_bytes(),
            Image::Vhdx(v) => v.file_allocated_bytes(),
        }
    }

    /// This image, then its backing image, then that one's backing, and so on.
    pub fn chain(&self) -> Vec<&Image> {
        let mut out = vec![self];
        let mut cur = self;
        while let Some(b) = cur.backing() {
            out.push(b);
            cur = b;
        }
        out
    }

    fn dev(&self) -> &dyn BlockDevice {
        match self {
            Image::Raw(r) => r,
            Image::Qcow2(q) => q.as_ref(),
            Image::Vhd(v) => v.as_ref(),
            Image::Vhdx(v) => v.as_ref(),
        }
    }
}

impl BlockDevice for Image {
    fn len(&self) -> u64 {
        self.dev().len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.dev().read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.dev().write_at(buf, offset)
    }
    fn flush(&self) -> Result<()> {
        self.dev().flush()
    }
    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        self.dev().extents(offset, len)
    }
    fn format_name(&self) -> &'static str {
        self.dev().format_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in [
            ImageFormat::Raw,
            ImageFormat::Qcow2,
            ImageFormat::Vhd,
            ImageFormat::Vhdx,
        ] {
            assert_eq!(f.name().parse::<ImageFormat>().unwrap(), f);
        }
        assert_eq!("vpc".parse::<ImageFormat>().unwrap(), ImageFormat::Vhd);
        assert!("vmdk".parse::<ImageFormat>().is_err());
    }
}
