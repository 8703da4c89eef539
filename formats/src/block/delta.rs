//! What an edit changed and how an in-place update writes it: the types shared by the
//! change tracking, the in-place planners (raw, qcow2) and the undo-log applier.

/// A byte range of the virtual disk that the edit changed.
pub struct Changed {
    pub offset: u64,
    pub len: u64,
}

/// One write into the image FILE (host offsets).
pub enum PlannedWrite {
    /// Metadata bytes (qcow2 L1/L2/refcount entries, header): small, in memory.
    Bytes { offset: u64, data: Vec<u8> },
    /// `len` bytes read from the edited virtual disk at `guest` go to file offset `offset`.
    Guest { offset: u64, guest: u64, len: u64 },
}

/// Everything an in-place update writes, in order: all `Guest` writes come before any
/// `Bytes` write (so reading the old image while applying never sees new metadata),
/// and the file's final length (>= old length; new clusters are appended).
pub struct WritePlan {
    pub writes: Vec<PlannedWrite>,
    pub new_len: u64,
}
