//! `subroot initrd ls`: the entries as the kernel unpacks them (each path once, at its
//! last occurrence: a later entry replaces an earlier one of the same path) or, with
//! `--segments`, every entry of every segment in archive order; as names (like `cpio -t`),
//! a long listing (like `cpio -tvn`, times in UTC) or JSON (schema in README.md).

use super::open_input;
use crate::cli::LsArgs;
use crate::Ctx;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{Read, Write};
use subroot_formats::block::BlockDevice;
use subroot_formats::calendar::civil_from_days;
use subroot_formats::cpio::newc::{S_IFLNK, S_IFMT};
use subroot_formats::cpio::tree::entry_path;
use subroot_formats::cpio::visit_entries;
use subroot_formats::tree::Kind;
use subroot_formats::Error;

/// Longest symlink target read for the listing.
const MAX_TARGET: u64 = 64 << 10;

/// One entry of `ls --json`.
#[derive(Debug, Serialize)]
pub struct EntryJson {
    pub segment: usize,
    pub archive: u32,
    /// The name as stored (lossy UTF-8).
    pub name: String,
    /// `file`, `dir`, `symlink`, `char`, `block`, `fifo`, `socket`, or `unknown`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The full `st_mode`.
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
    pub mtime: u32,
    pub ino: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    pub link_target: Option<String>,
    /// In the merged listing: the segments of the earlier entries of the same path this one
    /// replaces (empty when none); absent with `--segments`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Vec<usize>>,
}

/// Which entries (by index in archive order) the merged view shows, and the segments of
/// the earlier entries each of them replaces.
struct Merged {
    keep: Vec<bool>,
    replaces: HashMap<usize, Vec<usize>>,
}

/// First pass of the merged listing: the last occurrence of each path, as the kernel
/// resolves names (`./x`, `x` and `x/` are one path; a name that is no safe relative
/// path is its own key).
fn merged<D: BlockDevice>(dev: &D) -> subroot_formats::Result<Merged> {
    // path -> (index of its last occurrence, segments of the earlier ones)
    let mut last: HashMap<Vec<u8>, (usize, Vec<usize>)> = HashMap::new();
    let mut segment_of: Vec<usize> = Vec::new();
    visit_entries(dev, |c, h, _| {
        let key = entry_path(&h.name).unwrap_or_else(|_| h.name.clone());
        let index = segment_of.len();
        segment_of.push(c.segment);
        let slot = last.entry(key).or_insert((index, Vec::new()));
        if slot.0 != index {
            let earlier = segment_of.get(slot.0).copied().unwrap_or_default();
            slot.1.push(earlier);
            slot.0 = index;
        }
        Ok(())
    })?;
    let mut keep = vec![false; segment_of.len()];
    let mut replaces = HashMap::new();
    for (index, earlier) in last.into_values() {
        if let Some(k) = keep.get_mut(index) {
            *k = true;
        }
        if !earlier.is_empty() {
            replaces.insert(index, earlier);
        }
    }
    Ok(Merged { keep, replaces })
}

pub fn run(args: &LsArgs, ctx: &Ctx) -> Result<()> {
    let input = open_input(&args.input, ctx)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut first = true;
    let werr = |e: std::io::Error| Error::io("writing the listing", e);
    let merged = if args.segments {
        None
    } else {
        Some(merged(&input.dev).with_context(|| format!("cannot read the initrd {}", input.name))?)
    };
    if args.json {
        out.write_all(b"[").map_err(werr)?;
    }
    let mut index = 0usize;
    visit_entries(&input.dev, |c, h, data| {
        let i = index;
        index += 1;
        if merged
            .as_ref()
            .is_some_and(|m| !m.keep.get(i).copied().unwrap_or(false))
        {
            return Ok(());
        }
        let target = if h.mode & S_IFMT == S_IFLNK {
            let mut t = Vec::new();
            data.take(MAX_TARGET)
                .read_to_end(&mut t)
                .map_err(|e| Error::corrupt(format!("reading the target of a symlink: {e}")))?;
            Some(t)
        } else {
            None
        };
        if args.json {
            let e = EntryJson {
                segment: c.segment,
                archive: c.archive,
                name: String::from_utf8_lossy(&h.name).into_owned(),
                kind: kind_name(h.mode),
                mode: h.mode,
                nlink: h.nlink,
                uid: h.uid,
                gid: h.gid,
                size: h.filesize,
                mtime: h.mtime,
                ino: h.ino,
                rdev_major: h.rdev_major,
                rdev_minor: h.rdev_minor,
                link_target: target.map(|t| String::from_utf8_lossy(&t).into_owned()),
                replaces: merged
                    .as_ref()
                    .map(|m| m.replaces.get(&i).cloned().unwrap_or_default()),
            };
            let sep: &[u8] = if first { b"\n  " } else { b",\n  " };
            first = false;
            out.write_all(sep).map_err(werr)?;
            serde_json::to_writer(&mut out, &e)
                .map_err(|e| Error::io("writing the listing", e.into()))?;
            return Ok(());
        }
        if args.long {
            let size = match Kind::from_mode(h.mode) {
                Some(Kind::CharDevice | Kind::BlockDevice) => {
                    format!("{:>3}, {:>3}", h.rdev_major, h.rdev_minor)
                }
                _ => format!("{:>8}", h.filesize),
            };
            write!(
                out,
                "{} {:>3} {:<8} {:<8} {size} {} ",
                mode_string(h.mode),
                h.nlink,
                h.uid,
                h.gid,
                date(i64::from(h.mtime), now)
            )
            .map_err(werr)?;
        }
        out.write_all(&h.name).map_err(werr)?;
        if let (true, Some(t)) = (args.long, &target) {
            out.write_all(b" -> ").map_err(werr)?;
            out.write_all(t).map_err(werr)?;
        }
        out.write_all(b"\n").map_err(werr)?;
        Ok(())
    })
    .with_context(|| format!("cannot read the initrd {}", input.name))?;
    if args.json {
        out.write_all(if first { b"]\n" } else { b"\n]\n" })
            .map_err(werr)?;
    }
    out.flush().map_err(werr)?;
    Ok(())
}

fn kind_name(mode: u32) -> &'static str {
    match Kind::from_mode(mode) {
        Some(Kind::File) => "file",
        Some(Kind::Dir) => "dir",
        Some(Kind::Symlink) => "symlink",
        Some(Kind::CharDevice) => "char",
        Some(Kind::BlockDevice) => "block",
        Some(Kind::Fifo) => "fifo",
        Some(Kind::Socket) => "socket",
        None => "unknown",
    }
}

/// `-rwxr-xr-x`, with s/S/t/T for the special bits, `?` for an unknown type.
fn mode_string(mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(Kind::from_mode(mode).map_or('?', Kind::letter));
    let bit = |m: u32, c: char| if mode & m != 0 { c } else { '-' };
    let special = |x: u32, sp: u32, lower: char, upper: char| match (mode & x != 0, mode & sp != 0)
    {
        (true, true) => lower,
        (false, true) => upper,
        (true, false) => 'x',
        (false, false) => '-',
    };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(0o100, 0o4000, 's', 'S'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(0o010, 0o2000, 's', 'S'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(0o001, 0o1000, 't', 'T'));
    s
}

/// GNU cpio's date column: `Mon dd HH:MM` within six months of `now`, else `Mon dd  YYYY`.
fn date(t: i64, now: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    let mon = MONTHS.get((m - 1) as usize).copied().unwrap_or("???");
    let age = now - t;
    if !(0..=6 * 30 * 24 * 3600).contains(&age) {
        format!("{mon} {d:>2}  {y}")
    } else {
        format!("{mon} {d:>2} {:02}:{:02}", secs / 3600, secs % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_modes() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_722), (2023, 12, 31));
        assert_eq!(date(0, 1_000_000_000), "Jan  1  1970");
        assert_eq!(date(1_000_000_000 - 60, 1_000_000_000), "Sep  9 01:45");
        assert_eq!(mode_string(0o104755), "-rwsr-xr-x");
        assert_eq!(mode_string(0o041777), "drwxrwxrwt");
        assert_eq!(mode_string(0o020600), "crw-------");
    }
}
