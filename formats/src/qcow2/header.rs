//! The qcow2 header (versions 2 and 3) and its extensions: parsing and validation.
//!
//! Every field read from disk is checked before use: offsets against the file size and the
//! cluster size, the header extensions against the first cluster, the feature bits against
//! what this crate understands. Features that change how data must be read and that are
//! not implemented (encryption, external data files) are refused with [`Error::Unsupported`].

use crate::{Error, Result};

/// Incompatible feature bit 0: the refcounts may be stale (unclean shutdown).
pub const INCOMPAT_DIRTY: u64 = 1 << 0;
/// Incompatible feature bit 1: the image was marked corrupt by qemu.
pub const INCOMPAT_CORRUPT: u64 = 1 << 1;
/// Incompatible feature bit 2: guest data lives in an external data file.
pub const INCOMPAT_EXTERNAL_DATA: u64 = 1 << 2;
/// Incompatible feature bit 3: the compression type field is meaningful.
pub const INCOMPAT_COMPRESSION: u64 = 1 << 3;
/// Incompatible feature bit 4: L2 entries are 128 bits with a subcluster bitmap.
pub const INCOMPAT_EXTENDED_L2: u64 = 1 << 4;
/// Every incompatible bit this crate knows about.
const INCOMPAT_KNOWN: u64 = INCOMPAT_DIRTY
    | INCOMPAT_CORRUPT
    | INCOMPAT_EXTERNAL_DATA
    | INCOMPAT_COMPRESSION
    | INCOMPAT_EXTENDED_L2;
/// Autoclear feature bit 0: the persistent dirty bitmaps are consistent with the data.
pub const AUTOCLEAR_BITMAPS: u64 = 1 << 0;
/// Byte offset of the autoclear feature field in a version 3 header.
pub(crate) const AUTOCLEAR_OFFSET: u64 = 88;
/// Compatible feature bit 0: lazy refcounts.
pub const COMPAT_LAZY_REFCOUNTS: u64 = 1 << 0;

const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_FEATURE_NAMES: u32 = 0x6803_f857;
const EXT_EXTERNAL_DATA: u32 = 0x4441_5441;

/// Size of a version 2 header; version 3 headers are at least [`V3_MIN_HEADER`] bytes.
const V2_HEADER: usize = 72;
const V3_MIN_HEADER: u32 = 104;
/// Longest backing file name qemu accepts.
const MAX_BACKING_NAME: u32 = 1023;

/// How compressed clusters are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    /// Raw deflate (no zlib header), the default.
    Zlib,
    /// Zstandard.
    Zstd,
}

impl CompressionType {
    /// The name qemu uses ("zlib" or "zstd").
    pub fn name(&self) -> &'static str {
        match self {
            CompressionType::Zlib => "zlib",
            CompressionType::Zstd => "zstd",
        }
    }
}

/// One entry of the feature-name table extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureName {
    /// 0 incompatible, 1 compatible, 2 autoclear.
    pub kind: u8,
    /// Bit number within its feature field.
    pub bit: u8,
    /// Human-readable name.
    pub name: String,
}

/// A parsed and validated qcow2 header.
#[derive(Debug, Clone)]
pub struct Header {
    /// Format version, 2 or 3.
    pub version: u32,
    /// log2 of the cluster size (9..=21).
    pub cluster_bits: u32,
    /// Virtual disk size in bytes.
    pub size: u64,
    /// Encryption method (always 0 here: encrypted images are refused).
    pub crypt_method: u32,
    /// Number of entries in the active L1 table.
    pub l1_size: u32,
    /// File offset of the active L1 table.
    pub l1_table_offset: u64,
    /// File offset of the refcount table.
    pub refcount_table_offset: u64,
    /// Size of the refcount table in clusters.
    pub refcount_table_clusters: u32,
    /// Number of internal snapshots (ignored when reading).
    pub nb_snapshots: u32,
    /// File offset of the snapshot table.
    pub snapshots_offset: u64,
    /// Incompatible feature bits.
    pub incompatible_features: u64,
    /// Compatible feature bits.
    pub compatible_features: u64,
    /// Autoclear feature bits.
    pub autoclear_features: u64,
    /// Refcount width is `1 << refcount_order` bits.
    pub refcount_order: u32,
    /// Length of the fixed header (72 for version 2).
    pub header_length: u32,
    /// How compressed clusters are compressed.
    pub compression_type: CompressionType,
    /// True when L2 entries carry a 32-subcluster bitmap.
    pub extended_l2: bool,
    /// The backing file name, exactly as stored.
    pub backing_file: Option<String>,
    /// The backing file format from the backing-format extension.
    pub backing_format: Option<String>,
    /// The external data file name from its extension (such images are refused).
    pub external_data_file: Option<String>,
    /// The feature-name table, if the image has one.
    pub feature_names: Vec<FeatureName>,
}

fn be32(buf: &[u8], off: usize) -> Result<u32> {
    buf.get(off..off + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| truncated(buf.len(), off + 4))
}

fn be64(buf: &[u8], off: usize) -> Result<u64> {
    buf.get(off..off + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| truncated(buf.len(), off + 8))
}

fn truncated(have: usize, need: usize) -> Error {
    Error::corrupt(format!(
        "truncated qcow2 header: need at least {need} bytes, found {have}"
    ))
}

/// The start of a qcow2 file that [`Header::parse`] needs: its first cluster (or the whole
/// file when shorter), read through `read(buf, offset)` from a file of `file_len` bytes.
pub(crate) fn read_head(
    file_len: u64,
    mut read: impl FnMut(&mut [u8], u64) -> Result<()>,
) -> Result<Vec<u8>> {
    let mut head = vec![0u8; file_len.min(64 << 10) as usize];
    read(&mut head, 0)?;
    if let Some(bits) = head.get(20..24).and_then(|b| b.try_into().ok()) {
        let bits = u32::from_be_bytes(bits);
        if (17..=21).contains(&bits) && file_len > head.len() as u64 {
            head = vec![0u8; file_len.min(1 << bits) as usize];
            read(&mut head, 0)?;
        }
    }
    Ok(head)
}

impl Header {
    /// The cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// True when the lazy-refcounts compatible feature is set.
    pub fn lazy_refcounts(&self) -> bool {
        self.compatible_features & COMPAT_LAZY_REFCOUNTS != 0
    }

    /// Number of L1 entries the virtual size needs.
    pub fn l1_entries_needed(&self) -> u64 {
        let l2_entries = self.cluster_size() / if self.extended_l2 { 16 } else { 8 };
        let per_l1 = u128::from(self.cluster_size()) * u128::from(l2_entries);
        u128::from(self.size).div_ceil(per_l1) as u64
    }

    /// The name of a feature bit from the feature-name table, if present.
    pub fn feature_name(&self, kind: u8, bit: u8) -> Option<&str> {
        self.feature_names
            .iter()
            .find(|f| f.kind == kind && f.bit == bit)
            .map(|f| f.name.as_str())
    }

    /// Parse and validate a header. `buf` holds the start of the file: the whole first
    /// cluster, or the whole file when it is shorter; `file_len` is the file size.
    pub fn parse(buf: &[u8], file_len: u64) -> Result<Header> {
        if buf.len() < 4 {
            return Err(truncated(buf.len(), V2_HEADER));
        }
        if buf[..4] != super::MAGIC {
            return Err(Error::corrupt(format!(
                "not a qcow2 image: bad magic {:02x?}, expected {:02x?} (\"QFI\\xfb\")",
                &buf[..4],
                super::MAGIC
            )));
        }
        if buf.len() < V2_HEADER {
            return Err(truncated(buf.len(), V2_HEADER));
        }
        let version = be32(buf, 4)?;
        if version != 2 && version != 3 {
            return Err(Error::unsupported(format!(
                "qcow2 version {version} is not supported (expected 2 or 3)"
            )));
        }
        let backing_file_offset = be64(buf, 8)?;
        let backing_file_size = be32(buf, 16)?;
        let cluster_bits = be32(buf, 20)?;
        if !(9..=21).contains(&cluster_bits) {
            return Err(Error::unsupported(format!(
                "qcow2 cluster_bits {cluster_bits} is outside 9..=21 (cluster sizes 512 B to 2 MiB)"
            )));
        }
        let cluster_size = 1u64 << cluster_bits;
        let mut h = Header {
            version,
            cluster_bits,
            size: be64(buf, 24)?,
            crypt_method: be32(buf, 32)?,
            l1_size: be32(buf, 36)?,
            l1_table_offset: be64(buf, 40)?,
            refcount_table_offset: be64(buf, 48)?,
            refcount_table_clusters: be32(buf, 56)?,
            nb_snapshots: be32(buf, 60)?,
            snapshots_offset: be64(buf, 64)?,
            incompatible_features: 0,
            compatible_features: 0,
            autoclear_features: 0,
            refcount_order: 4,
            header_length: V2_HEADER as u32,
            compression_type: CompressionType::Zlib,
            extended_l2: false,
            backing_file: None,
            backing_format: None,
            external_data_file: None,
            feature_names: Vec::new(),
        };
        let mut compression_byte = 0u8;
        if version == 3 {
            if buf.len() < V3_MIN_HEADER as usize {
                return Err(truncated(buf.len(), V3_MIN_HEADER as usize));
            }
            h.incompatible_features = be64(buf, 72)?;
            h.compatible_features = be64(buf, 80)?;
            h.autoclear_features = be64(buf, 88)?;
            h.refcount_order = be32(buf, 96)?;
            h.header_length = be32(buf, 100)?;
            if h.header_length < V3_MIN_HEADER || u64::from(h.header_length) > cluster_size {
                return Err(Error::corrupt(format!(
                    "qcow2 header_length {} is outside {V3_MIN_HEADER}..={cluster_size}",
                    h.header_length
                )));
            }
            if h.header_length > V3_MIN_HEADER {
                compression_byte = *buf
                    .get(104)
                    .ok_or_else(|| truncated(buf.len(), h.header_length as usize))?;
            }
            if buf.len() < h.header_length as usize {
                return Err(truncated(buf.len(), h.header_length as usize));
            }
        }
        if h.refcount_order > 6 {
            return Err(Error::corrupt(format!(
                "qcow2 refcount_order {} is larger than 6 (64-bit refcounts)",
                h.refcount_order
            )));
        }

        // Header extensions: after the fixed header, up to the backing file name (or the
        // end of the first cluster).
        let ext_end = if backing_file_offset != 0 {
            backing_file_offset.min(cluster_size)
        } else {
            cluster_size
        };
        h.parse_extensions(buf, h.header_length as u64, ext_end)?;

        if backing_file_offset != 0 {
            if backing_file_size > MAX_BACKING_NAME {
                return Err(Error::corrupt(format!(
                    "qcow2 backing file name length {backing_file_size} exceeds {MAX_BACKING_NAME}"
                )));
            }
            let end = backing_file_offset.saturating_add(u64::from(backing_file_size));
            if end > cluster_size || end > buf.len() as u64 {
                return Err(Error::corrupt(format!(
                    "qcow2 backing file name ({backing_file_size} bytes at offset {backing_file_offset}) \
                     lies outside the first cluster ({} bytes available)",
                    (buf.len() as u64).min(cluster_size)
                )));
            }
            let raw = &buf[backing_file_offset as usize..end as usize];
            let name = String::from_utf8(raw.to_vec()).map_err(|_| {
                Error::unsupported(format!(
                    "qcow2 backing file name {:?} is not UTF-8",
                    String::from_utf8_lossy(raw)
                ))
            })?;
            if !name.is_empty() {
                h.backing_file = Some(name);
            }
        }

        h.check_features(compression_byte)?;
        h.check_tables(file_len)?;
        Ok(h)
    }

    fn parse_extensions(&mut self, buf: &[u8], start: u64, end: u64) -> Result<()> {
        let end = end.min(buf.len() as u64);
        let mut off = start;
        while off + 8 <= end {
            let o = off as usize;
            let kind = be32(buf, o)?;
            let len = u64::from(be32(buf, o + 4)?);
            if kind == EXT_END {
                return Ok(());
            }
            let data_start = off + 8;
            let data_end = data_start + len;
            if data_end > end {
                return Err(Error::corrupt(format!(
                    "qcow2 header extension 0x{kind:08x} at offset {off} ({len} bytes) extends \
                     past the header area ending at {end}"
                )));
            }
            let data = &buf[data_start as usize..data_end as usize];
            match kind {
                EXT_BACKING_FORMAT => self.backing_format = Some(ext_string(data, kind)?),
                EXT_EXTERNAL_DATA => self.external_data_file = Some(ext_string(data, kind)?),
                EXT_FEATURE_NAMES => {
                    self.feature_names = data
                        .chunks_exact(48)
                        .map(|e| FeatureName {
                            kind: e[0],
                            bit: e[1],
                            name: String::from_utf8_lossy(&e[2..])
                                .trim_end_matches('\0')
                                .to_string(),
                        })
                        .collect();
                }
                _ => {}
            }
            off = data_start + len.div_ceil(8) * 8;
        }
        Ok(())
    }

    fn check_features(&mut self, compression_byte: u8) -> Result<()> {
        if self.crypt_method != 0 {
            let what = match self.crypt_method {
                1 => "AES",
                2 => "LUKS",
                _ => "unknown",
            };
            return Err(Error::unsupported(format!(
                "encrypted qcow2 images are not supported (crypt_method {}: {what})",
                self.crypt_method
            )));
        }
        let incompat = self.incompatible_features;
        let unknown = incompat & !INCOMPAT_KNOWN;
        if unknown != 0 {
            let names: Vec<String> = (0..64u8)
                .filter(|b| unknown & (1u64 << b) != 0)
                .map(|b| match self.feature_name(0, b) {
                    Some(n) => format!("bit {b} ({n:?})"),
                    None => format!("bit {b}"),
                })
                .collect();
            return Err(Error::unsupported(format!(
                "qcow2 image uses unknown incompatible features: {}",
                names.join(", ")
            )));
        }
        if incompat & INCOMPAT_CORRUPT != 0 {
            return Err(Error::corrupt(
                "the qcow2 image is marked corrupt by qemu; repair it with \
                 `qemu-img check -r all <image>` before using it",
            ));
        }
        if incompat & INCOMPAT_DIRTY != 0 {
            return Err(Error::unsupported(
                "the qcow2 image is marked dirty (its refcounts may be stale after an unclean \
                 shutdown); repair it with `qemu-img check -r all <image>` first",
            ));
        }
        if incompat & INCOMPAT_EXTERNAL_DATA != 0 || self.external_data_file.is_some() {
            return Err(Error::unsupported(format!(
                "qcow2 images with an external data file are not supported (data file {:?})",
                self.external_data_file.as_deref().unwrap_or("<unnamed>")
            )));
        }
        self.extended_l2 = incompat & INCOMPAT_EXTENDED_L2 != 0;
        if incompat & INCOMPAT_COMPRESSION != 0 {
            if self.header_length <= V3_MIN_HEADER {
                return Err(Error::corrupt(format!(
                    "qcow2 compression-type feature is set but header_length {} has no \
                     compression type field",
                    self.header_length
                )));
            }
            self.compression_type = match compression_byte {
                0 => CompressionType::Zlib,
                1 => CompressionType::Zstd,
                t => {
                    return Err(Error::unsupported(format!(
                        "qcow2 compression type {t} is not supported (expected 0 zlib or 1 zstd)"
                    )))
                }
            };
        } else if compression_byte != 0 {
            return Err(Error::corrupt(format!(
                "qcow2 compression type {compression_byte} is set without the \
                 compression-type incompatible feature bit"
            )));
        }
        Ok(())
    }

    fn check_tables(&self, file_len: u64) -> Result<()> {
        let cs = self.cluster_size();
        let l1_bytes = u64::from(self.l1_size) * 8;
        if self.l1_size > 0 {
            if self.l1_table_offset % cs != 0 {
                return Err(Error::corrupt(format!(
                    "qcow2 L1 table offset {} is not aligned to the cluster size {cs}",
                    self.l1_table_offset
                )));
            }
            if self
                .l1_table_offset
                .checked_add(l1_bytes)
                .is_none_or(|e| e > file_len)
            {
                return Err(Error::corrupt(format!(
                    "qcow2 L1 table ({} entries at offset {}) extends beyond the end of the \
                     file ({file_len} bytes)",
                    self.l1_size, self.l1_table_offset
                )));
            }
        }
        let needed = self.l1_entries_needed();
        if needed > u64::from(self.l1_size) {
            return Err(Error::corrupt(format!(
                "qcow2 virtual size {} needs {needed} L1 entries but the L1 table has only {}",
                self.size, self.l1_size
            )));
        }
        if self.refcount_table_offset % cs != 0 || self.refcount_table_offset >= file_len {
            return Err(Error::corrupt(format!(
                "qcow2 refcount table offset {} is not a cluster-aligned offset inside the \
                 file ({file_len} bytes, cluster size {cs})",
                self.refcount_table_offset
            )));
        }
        Ok(())
    }
}

fn ext_string(data: &[u8], kind: u32) -> Result<String> {
    let s = data.split(|&b| b == 0).next().unwrap_or(&[]);
    String::from_utf8(s.to_vec()).map_err(|_| {
        Error::corrupt(format!(
            "qcow2 header extension 0x{kind:08x} holds a name that is not UTF-8"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal_v3() -> Vec<u8> {
        let mut b = vec![0u8; 65536 * 3];
        b[..4].copy_from_slice(&super::super::MAGIC);
        b[4..8].copy_from_slice(&3u32.to_be_bytes());
        b[20..24].copy_from_slice(&16u32.to_be_bytes());
        b[24..32].copy_from_slice(&(1u64 << 20).to_be_bytes());
        b[36..40].copy_from_slice(&1u32.to_be_bytes());
        b[40..48].copy_from_slice(&65536u64.to_be_bytes());
        b[48..56].copy_from_slice(&131072u64.to_be_bytes());
        b[56..60].copy_from_slice(&1u32.to_be_bytes());
        b[96..100].copy_from_slice(&4u32.to_be_bytes());
        b[100..104].copy_from_slice(&112u32.to_be_bytes());
        b
    }

    #[test]
    fn parses_minimal() {
        let b = minimal_v3();
        let h = Header::parse(&b[..65536], b.len() as u64).unwrap();
        assert_eq!(h.cluster_size(), 65536);
        assert_eq!(h.size, 1 << 20);
        assert_eq!(h.compression_type, CompressionType::Zlib);
    }

    #[test]
    fn extension_overflow_is_caught() {
        let mut b = minimal_v3();
        b[112..116].copy_from_slice(&0xe279_2acau32.to_be_bytes());
        b[116..120].copy_from_slice(&u32::MAX.to_be_bytes());
        let e = Header::parse(&b[..65536], b.len() as u64).unwrap_err();
        assert!(e.to_string().contains("extends past"), "{e}");
    }

    #[test]
    fn unknown_feature_named_from_table() {
        let mut b = minimal_v3();
        b[72..80].copy_from_slice(&(1u64 << 7).to_be_bytes());
        b[112..116].copy_from_slice(&0x6803_f857u32.to_be_bytes());
        b[116..120].copy_from_slice(&48u32.to_be_bytes());
        b[120] = 0;
        b[121] = 7;
        b[122..129].copy_from_slice(b"frobbed");
        let e = Header::parse(&b[..65536], b.len() as u64).unwrap_err();
        assert!(e.to_string().contains("bit 7 (\"frobbed\")"), "{e}");
    }

    #[test]
    fn short_buffers_never_panic() {
        let b = minimal_v3();
        for n in 0..200 {
            let _ = Header::parse(&b[..n], n as u64);
        }
    }
}
