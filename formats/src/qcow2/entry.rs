//! The bits of L1 and L2 table entries, shared by the reader, the writer and the in-place
//! planner: flags, the host-offset mask and the layout of compressed-cluster descriptors.

/// L1/L2 entry flag: the cluster's refcount is exactly one (it may be written in place).
pub(crate) const COPIED: u64 = 1 << 63;
/// L2 entry flag: the cluster is compressed.
pub(crate) const COMPRESSED: u64 = 1 << 62;
/// L2 entry bit 0 (version 3, standard entries): the cluster reads as zeros.
pub(crate) const ZERO: u64 = 1;
/// Bits 9..=55 of L1 and standard L2 entries: a host offset.
pub(crate) const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// Compressed clusters are counted in 512-byte sectors.
pub(crate) const SECTOR: u64 = 512;

/// The bit where the sector count of a compressed-cluster descriptor starts.
pub(crate) fn csize_shift(cluster_bits: u32) -> u32 {
    62 - (cluster_bits - 8)
}

/// Where a compressed cluster's bytes lie in the file: (host offset, length in bytes).
/// The length runs to the end of the last 512-byte sector the descriptor counts, as qemu
/// counts it for refcounts.
pub(crate) fn compressed_extent(entry: u64, cluster_bits: u32) -> (u64, u64) {
    let x = csize_shift(cluster_bits);
    let coff = entry & ((1u64 << x) - 1);
    let sectors = ((entry >> x) & ((1u64 << (62 - x)) - 1)) + 1;
    (coff, sectors * SECTOR - (coff & (SECTOR - 1)))
}
