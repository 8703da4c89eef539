//! The compression algorithms a qcow2 image can use for compressed clusters.

/// The `compression_type` header field of a qcow2 v3 image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    /// Raw deflate with a 4 KiB window (type 0, the default).
    Zlib,
    /// One zstd frame per cluster (type 1; needs incompatible feature bit 3).
    Zstd,
}

impl CompressionType {
    /// The name qemu uses for this type ("zlib", "zstd").
    pub fn name(&self) -> &'static str {
        match self {
            CompressionType::Zlib => "zlib",
            CompressionType::Zstd => "zstd",
        }
    }
}
