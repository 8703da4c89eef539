//! Linux initrd / initramfs images: newc cpio archives, the compressions the kernel
//! unpacks, and the walk over the concatenated segments of a whole initrd.
//!
//! - [`newc`]: streaming reader and writer of `070701`/`070702` archives.
//! - [`hardlinks`]: grouping of hard-linked entries.
//! - [`compress`]: detection, decoders and encoders (gzip, zstd, xz, lzma, lz4 legacy, bzip2).
//! - [`encparams`]: memory-bounded, thread-count-independent compressor settings.
//! - [`segments`]: the segment walker over a [`crate::block::BlockDevice`].
//! - [`zstdframe`]: the end of a zstd segment from its headers, without decoding.
//! - [`tailprobe`]: where the segments behind a gzip member start, without inflating it.
//! - [`rebuild`]: writing a (compressed) segment reproducibly.
//! - [`tree`]: an initrd's entries as a [`crate::tree::TreeSource`].

pub mod compress;
pub mod encparams;
pub mod hardlinks;
pub mod lz4legacy;
pub mod newc;
pub mod peek;
pub mod rebuild;
pub mod segments;
pub mod tailprobe;
pub mod tree;
pub mod xz;
pub mod zstdframe;

pub use compress::{detect, Compression, CompressionSpec, Decoder, Encoder, Members};
pub use hardlinks::{group_hardlinks, HardlinkGroup};
pub use newc::{checksum, CpioHeader, CpioReader, CpioWriter, Format};
pub use peek::PeekReader;
pub use rebuild::{write_segment, SegmentWriter};
pub use segments::{
    can_skip, list_segments, visit_entries, walk_entries, EntryContext, Flow, Segment,
};
pub use tree::CpioTree;
pub use xz::XzCheck;
