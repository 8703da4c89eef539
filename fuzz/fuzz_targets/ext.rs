//! Fuzz the ext2/3/4 reader: open (superblock, group descriptors), then walk the whole
//! tree from the root through read_dir, inode, xattrs, read_link, open_file + extents +
//! read, and lookup. Total work is bounded (inodes visited, bytes read).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use subroot_formats::block::MemoryDevice;
use subroot_formats::ext::{ExtFs, InodeKind};

const MAX_INODES: usize = 4096;
const READ_BUDGET: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(fs) = ExtFs::open(MemoryDevice::from_vec(data.to_vec())) else {
        return;
    };
    let _ = fs.superblock();
    let _ = fs.group_desc(0);
    let _ = fs.lookup(b"/etc/passwd");
    let _ = fs.lookup(b"/a/../b/./c");
    let mut seen = HashSet::new();
    let mut queue = vec![2u32];
    let mut budget = READ_BUDGET;
    let mut buf = vec![0u8; 64 << 10];
    while let Some(ino) = queue.pop() {
        if seen.len() >= MAX_INODES || !seen.insert(ino) {
            continue;
        }
        let Ok(inode) = fs.inode(ino) else {
            continue;
        };
        let _ = fs.xattrs(ino);
        match inode.kind() {
            InodeKind::Dir => {
                if let Ok(entries) = fs.read_dir(ino) {
                    for e in entries.into_iter().take(MAX_INODES) {
                        if e.name != b"." && e.name != b".." {
                            queue.push(e.ino);
                        }
                    }
                }
            }
            InodeKind::Symlink => {
                let _ = fs.read_link(ino);
            }
            InodeKind::File => {
                let Ok(f) = fs.open_file(ino) else {
                    continue;
                };
                let _ = f.extents();
                let mut off = 0u64;
                while off < f.size() && budget > 0 {
                    let n = (buf.len() as u64).min(budget) as usize;
                    match f.read_at(&mut buf[..n], off) {
                        Ok(0) | Err(_) => break,
                        Ok(got) => {
                            off += got as u64;
                            budget = budget.saturating_sub(got as u64);
                        }
                    }
                }
            }
            _ => {}
        }
    }
});
