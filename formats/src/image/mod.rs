//! An image file of any supported container format (raw, qcow2, VHD, VHDX, VMDK, VDI), opened by
//! probing its magic or by an explicit format, as one [`BlockDevice`]. Other container
//! formats are recognised ([`probe`]) and refused by name.

pub(crate) mod chain;
mod probe;
pub(crate) mod table;

pub use probe::{probe, ForeignFormat, Probed};

use crate::block::{BlockDevice, Extent, RawFile};
use crate::qcow2::Qcow2Image;
use crate::vdi::VdiImage;
use crate::vhd::VhdImage;
use crate::vhdx::VhdxImage;
use crate::vmdk::{VmdkImage, VmdkOptions};
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
    /// VMware VMDK (sparse, streamOptimized or a descriptor naming extents).
    Vmdk,
    /// VirtualBox VDI (fixed or dynamic).
    Vdi,
}

impl ImageFormat {
    /// Every format read.
    pub const ALL: [ImageFormat; 6] = [
        ImageFormat::Raw,
        ImageFormat::Qcow2,
        ImageFormat::Vhd,
        ImageFormat::Vhdx,
        ImageFormat::Vmdk,
        ImageFormat::Vdi,
    ];

    /// The name of the format ("raw", "qcow2", "vhd", "vhdx", "vmdk", "vdi"); qemu calls VHD
    /// "vpc".
    pub fn name(&self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
            ImageFormat::Vhd => "vhd",
            ImageFormat::Vhdx => "vhdx",
            ImageFormat::Vmdk => "vmdk",
            ImageFormat::Vdi => "vdi",
        }
    }

    /// The name qemu gives the format (what a qcow2 backing-format extension holds).
    pub fn qemu_name(&self) -> &'static str {
        match self {
            ImageFormat::Vhd => "vpc",
            other => other.name(),
        }
    }

    /// The format a probe found, when it is one read here.
    pub fn from_probed(p: Probed) -> Option<ImageFormat> {
        match p {
            Probed::Raw => Some(ImageFormat::Raw),
            Probed::Qcow2 => Some(ImageFormat::Qcow2),
            Probed::Vhd => Some(ImageFormat::Vhd),
            Probed::Vhdx => Some(ImageFormat::Vhdx),
            Probed::Foreign(ForeignFormat::Vmdk) => Some(ImageFormat::Vmdk),
            Probed::Foreign(ForeignFormat::Vdi) => Some(ImageFormat::Vdi),
            Probed::Foreign(_) => None,
        }
    }
}

impl FromStr for ImageFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ImageFormat::ALL
            .into_iter()
            .find(|f| f.name() == s || f.qemu_name() == s)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown image format {s:?} (expected raw, qcow2, vhd (vpc), vhdx, vmdk or vdi)"
                ))
            })
    }
}

/// An open image: a raw file, or a qcow2, VHD, VHDX, VMDK or VDI image with its backing chain.
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
    /// A VMDK image.
    Vmdk(Box<VmdkImage>),
    /// A VDI image.
    Vdi(Box<VdiImage>),
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

/// Choices when opening an image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageOptions {
    /// Read extent files a VMDK descriptor names by an absolute path or through `..`
    /// (refused by default: a descriptor from elsewhere could make a command read any file
    /// the user can).
    pub allow_outside: bool,
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

    /// [`Image::open_as`] with `opts` for the image itself (its backing files and parents
    /// are opened with the defaults).
    pub fn open_with(
        path: impl AsRef<Path>,
        format: Option<ImageFormat>,
        opts: ImageOptions,
    ) -> Result<Image> {
        let path = path.as_ref();
        let format = match format {
            Some(f) => Some(f),
            None => ImageFormat::from_probed(detect_format(path)?),
        };
        match format {
            Some(ImageFormat::Vmdk) if opts.allow_outside => {
                Ok(Image::Vmdk(Box::new(VmdkImage::open_chain(
                    path,
                    VmdkOptions {
                        allow_outside: true,
                    },
                    &mut Vec::new(),
                )?)))
            }
            _ => Self::open_chain(path, format, &mut Vec::new()),
        }
    }

    /// Open `path` as part of a backing chain whose images (canonical paths) are `seen`.
    pub(crate) fn open_chain(
        path: &Path,
        format: Option<ImageFormat>,
        seen: &mut Vec<PathBuf>,
    ) -> Result<Image> {
        let format = match format {
            Some(f) => f,
            None => {
                let probed = detect_format(path)?;
                match (ImageFormat::from_probed(probed), probed) {
                    (Some(f), _) => f,
                    (None, Probed::Foreign(format)) => {
                        return Err(Error::UnsupportedContainer {
                            path: path.to_path_buf(),
                            format,
                        })
                    }
                    (None, _) => ImageFormat::Raw,
                }
            }
        };
        Ok(match format {
            ImageFormat::Raw => Image::Raw(RawFile::open(path)?),
            ImageFormat::Qcow2 => Image::Qcow2(Box::new(Qcow2Image::open_chain(path, seen)?)),
            ImageFormat::Vhd => Image::Vhd(Box::new(VhdImage::open_chain(path, seen)?)),
            ImageFormat::Vhdx => Image::Vhdx(Box::new(VhdxImage::open_chain(path, seen)?)),
            ImageFormat::Vmdk => Image::Vmdk(Box::new(VmdkImage::open_chain(
                path,
                VmdkOptions::default(),
                seen,
            )?)),
            ImageFormat::Vdi => Image::Vdi(Box::new(VdiImage::open(path)?)),
        })
    }

    /// The container format.
    pub fn format(&self) -> ImageFormat {
        match self {
            Image::Raw(_) => ImageFormat::Raw,
            Image::Qcow2(_) => ImageFormat::Qcow2,
            Image::Vhd(_) => ImageFormat::Vhd,
            Image::Vhdx(_) => ImageFormat::Vhdx,
            Image::Vmdk(_) => ImageFormat::Vmdk,
            Image::Vdi(_) => ImageFormat::Vdi,
        }
    }

    /// The path the image was opened from.
    pub fn path(&self) -> &Path {
        match self {
            Image::Raw(r) => r.path(),
            Image::Qcow2(q) => q.path(),
            Image::Vhd(v) => v.path(),
            Image::Vhdx(v) => v.path(),
            Image::Vmdk(v) => v.path(),
            Image::Vdi(v) => v.path(),
        }
    }

    /// The image this one reads unallocated ranges from (qcow2 backing file, VHD, VHDX or
    /// VMDK parent), if any.
    pub fn backing(&self) -> Option<&Image> {
        match self {
            Image::Raw(_) | Image::Vdi(_) => None,
            Image::Qcow2(q) => q.backing(),
            Image::Vhd(v) => v.parent(),
            Image::Vhdx(v) => v.parent(),
            Image::Vmdk(v) => v.parent(),
        }
    }

    /// Bytes the image file(s) occupy on the host filesystem.
    pub fn file_allocated_bytes(&self) -> Result<u64> {
        match self {
            Image::Raw(r) => r.allocated_bytes(),
            Image::Qcow2(q) => q.file_allocated_bytes(),
            Image::Vhd(v) => v.file_allocated_bytes(),
            Image::Vhdx(v) => v.file_allocated_bytes(),
            Image::Vmdk(v) => v.files_allocated_bytes(),
            Image::Vdi(v) => v.file_allocated_bytes(),
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
            Image::Vmdk(v) => v.as_ref(),
            Image::Vdi(v) => v.as_ref(),
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
        for f in ImageFormat::ALL {
            assert_eq!(f.name().parse::<ImageFormat>().unwrap(), f);
        }
        assert_eq!("vpc".parse::<ImageFormat>().unwrap(), ImageFormat::Vhd);
        assert!("qed".parse::<ImageFormat>().is_err());
    }
}
