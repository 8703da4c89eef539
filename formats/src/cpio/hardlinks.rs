//! Hard-link grouping for cpio entries.
//!
//! In newc archives the links of one file share `(dev_major, dev_minor, ino)` and have
//! `nlink > 1`. Writers disagree on which link carries the data: GNU cpio writes it on the
//! LAST link (earlier ones have `filesize` 0), others on the first. The reader exposes entries
//! raw; this helper says which entries belong together and which one holds the bytes.

use super::newc::{CpioHeader, S_IFDIR, S_IFMT};
use std::collections::BTreeMap;

/// The entries of one multiply-linked file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardlinkGroup {
    pub dev_major: u32,
    pub dev_minor: u32,
    pub ino: u32,
    /// Indices into the slice given to [`group_hardlinks`], in archive order.
    pub members: Vec<usize>,
    /// The member carrying the data: the last one with a non-zero `filesize` (GNU cpio's
    /// convention, and also right when only the first has data). `None` when all are empty.
    pub data_holder: Option<usize>,
    /// True when more than one member has data (each then carries its own copy).
    pub several_with_data: bool,
}

/// Group the non-directory entries with `nlink > 1` by `(dev_major, dev_minor, ino)`.
/// Groups of a single entry (the other links are outside the archive) are included too,
/// so the caller sees every entry that claims links. Groups come in order of first member.
pub fn group_hardlinks(headers: &[CpioHeader]) -> Vec<HardlinkGroup> {
    let mut map: BTreeMap<(u32, u32, u32), usize> = BTreeMap::new();
    let mut groups: Vec<HardlinkGroup> = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        if h.nlink <= 1 || h.mode & S_IFMT == S_IFDIR || h.is_trailer() {
            continue;
        }
        let key = (h.dev_major, h.dev_minor, h.ino);
        let g = *map.entry(key).or_insert_with(|| {
            groups.push(HardlinkGroup {
                dev_major: h.dev_major,
                dev_minor: h.dev_minor,
                ino: h.ino,
                members: Vec::new(),
                data_holder: None,
                several_with_data: false,
            });
            groups.len() - 1
        });
        let group = &mut groups[g];
        group.members.push(i);
        if h.filesize > 0 {
            group.several_with_data |= group.data_holder.is_some();
            group.data_holder = Some(i);
        }
    }
    groups
}
