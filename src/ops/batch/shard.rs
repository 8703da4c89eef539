//! Which images a batch run handles: the list itself (arguments or `--from-list FILE`)
//! and `--shard I/N`, the stable split of one list over N machines.
//!
//! An image belongs to shard `fnv1a64(file name) % N`, where the file name is the input's
//! last path component as raw bytes (so machines mounting the same storage at different
//! paths agree) and FNV-1a 64 is the standard function (offset basis
//! `0xcbf29ce484222325`, prime `0x100000001b3`). It depends on nothing but those bytes:
//! the same on every platform and in every release.

use anyhow::{bail, Context, Result};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `--shard I/N`: this run handles shard `index` (0-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u64,
    /// How many shards the list is split into (at least 1).
    pub count: u64,
}

/// Parse `I/N` (clap value parser): two decimal numbers, `N >= 1`, `I < N`.
pub fn parse_shard(s: &str) -> std::result::Result<Shard, String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("expected I/N (e.g. 0/4), found {s:?}"))?;
    let index: u64 = i
        .trim()
        .parse()
        .map_err(|_| format!("shard index {i:?} is not a number (expected I/N, e.g. 0/4)"))?;
    let count: u64 = n
        .trim()
        .parse()
        .map_err(|_| format!("shard count {n:?} is not a number (expected I/N, e.g. 0/4)"))?;
    if count == 0 {
        return Err("the shard count N must be at least 1".into());
    }
    if index >= count {
        return Err(format!(
            "shard index {index} is out of range: shards are numbered 0 to {} for N = {count}",
            count - 1
        ));
    }
    Ok(Shard { index, count })
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Shard {
    /// Whether `input` belongs to this shard (by its file name; a path without one, such
    /// as `/`, hashes as the empty name).
    pub fn contains(&self, input: &Path) -> bool {
        let name = input.file_name().map(|n| n.as_bytes()).unwrap_or(b"");
        fnv1a64(name) % self.count == self.index
    }
}

/// Read `--from-list FILE`: one path per line; blank lines and lines starting with `#`
/// (after leading blanks) are ignored; surrounding blanks are trimmed. Relative paths are
/// taken as they are (relative to the working directory, like arguments).
pub fn read_list(file: &Path) -> Result<Vec<PathBuf>> {
    let bytes =
        std::fs::read(file).with_context(|| format!("cannot read the list {}", file.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "the list {} is not UTF-8 text (invalid byte at offset {})",
            file.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(PathBuf::from)
        .collect())
}

/// The images of this run: the arguments or the list, refusing an empty one.
pub fn images(args: &[PathBuf], list: Option<&Path>) -> Result<Vec<PathBuf>> {
    let all = match list {
        Some(f) => {
            let v = read_list(f)?;
            if v.is_empty() {
                bail!(
                    "the list {} names no images (only blank lines and # comments)",
                    f.display()
                );
            }
            v
        }
        None => args.to_vec(),
    };
    if all.is_empty() {
        bail!("no images given (name them as arguments or with --from-list FILE)");
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_reference_vectors() {
        // From the FNV reference test suite (Noll).
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn shard_parsing() {
        assert_eq!(parse_shard("1/3"), Ok(Shard { index: 1, count: 3 }));
        assert_eq!(parse_shard("0/1"), Ok(Shard { index: 0, count: 1 }));
        for bad in ["3/3", "x", "1/0", "-1/3", "1/x", "", "1/3/4"] {
            assert!(parse_shard(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn shards_partition_by_file_name() {
        let names: Vec<PathBuf> = (0..50).map(|i| format!("/a/img{i}.qcow2").into()).collect();
        for n in 1..5 {
            for p in &names {
                let owners = (0..n)
                    .filter(|&i| Shard { index: i, count: n }.contains(p))
                    .count();
                assert_eq!(owners, 1);
            }
        }
        let s = Shard { index: 1, count: 3 };
        assert_eq!(
            s.contains(Path::new("/mnt/x/disk.raw")),
            s.contains(Path::new("other/disk.raw"))
        );
    }
}
