//! What an edit changed and how those changes land in an image file: the types shared by
//! the output modes of an image edit (`--overlay`, `--in-place`).
//!
//! An edit runs on a copy-on-write [`super::Overlay`] over the input; the overlay reports
//! the guest ranges it changed as [`Changed`] runs. An in-place update turns them into a
//! [`WritePlan`]: file writes in order, guest data first and metadata last, plus the final
//! file length. A raw image maps guest offsets to file offsets one to one ([`raw_plan`]);
//! a qcow2 image needs cluster allocation and table updates (its own planner).

/// A byte range of the virtual disk that the edit changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    pub offset: u64,
    pub len: u64,
}

impl Changed {
    /// One past the last byte of the range.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// One write into the image FILE (host offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedWrite {
    /// Metadata bytes (qcow2 L1/L2/refcount entries, header): small, in memory.
    Bytes { offset: u64, data: Vec<u8> },
    /// `len` bytes read from the edited virtual disk at `guest` go to file offset `offset`.
    Guest { offset: u64, guest: u64, len: u64 },
}

impl PlannedWrite {
    /// The file offset written.
    pub fn offset(&self) -> u64 {
        match self {
            PlannedWrite::Bytes { offset, .. } | PlannedWrite::Guest { offset, .. } => *offset,
        }
    }

    /// The number of bytes written.
    pub fn len(&self) -> u64 {
        match self {
            PlannedWrite::Bytes { data, .. } => data.len() as u64,
            PlannedWrite::Guest { len, .. } => *len,
        }
    }

    /// True when the write writes nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything an in-place update writes, in order: all `Guest` writes come before any
/// `Bytes` write (so reading the old image while applying never sees new metadata),
/// and the file's final length (new clusters are appended; a shorter length cuts the
/// file, the cut bytes kept in the undo log like the overwritten ones).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WritePlan {
    pub writes: Vec<PlannedWrite>,
    pub new_len: u64,
}

/// The plan for a raw image of `len` bytes: each changed range is written where it is (the
/// file offset is the guest offset) and the length stays.
pub fn raw_plan(changed: &[Changed], len: u64) -> WritePlan {
    WritePlan {
        writes: changed
            .iter()
            .filter(|c| c.len > 0)
            .map(|c| PlannedWrite::Guest {
                offset: c.offset,
                guest: c.offset,
                len: c.len,
            })
            .collect(),
        new_len: len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_plan_is_the_identity() {
        let changed = [
            Changed {
                offset: 0,
                len: 4096,
            },
            Changed {
                offset: 8192,
                len: 0,
            },
            Changed {
                offset: 1 << 20,
                len: 8192,
            },
        ];
        let plan = raw_plan(&changed, 2 << 20);
        assert_eq!(plan.new_len, 2 << 20);
        assert_eq!(
            plan.writes,
            vec![
                PlannedWrite::Guest {
                    offset: 0,
                    guest: 0,
                    len: 4096
                },
                PlannedWrite::Guest {
                    offset: 1 << 20,
                    guest: 1 << 20,
                    len: 8192
                },
            ]
        );
    }
}
