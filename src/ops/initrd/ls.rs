//! `subroot initrd ls`: the entries as the kernel unpacks them (each path once, at its
//! last occurrence: a later entry replaces an earlier one of the same path) or, with
//! `--segments`, every entry of every segment in archive order; as names (like `cpio -t`),
//! a long listing (like `cpio -tvn`, times in UTC) or JSON (schema in docs/json.md).

use super::open_input;
use crate::cli::LsArgs;
use crate::json::{MaybeNamed, Named};
use crate::Ctx;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{Read, Write};
use subroot_formats::calendar::civil_from_days;
use subroot_formats::cpio::newc::{S_IFLNK, S_IFMT};
use subroot_formats::cpio::tree::entry_path;
use subroot_formats::cpio::{visit_entries, CpioHeader, EntryContext};
use subroot_formats::tree::Kind;
use subroot_formats::Error;

/// Longest symlink target read for the listing.
const MAX_TARGET: u64 = 64 << 10;

/// One entry of `ls --json`.
#[derive(Debug, Serialize)]
pub struct EntryJson {
    pub segment: usize,
    pub archive: u32,
    /// The name as stored (`name`, or `name_bytes` when it is not UTF-8).
    #[serde(flatten)]
    pub name: Named,
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
    /// `link_target` (null for an entry that is no symlink), or `link_target_bytes`.
    #[serde(flatten)]
    pub link_target: MaybeNamed,
    /// In the merged listing: the segments of the earlier entries of the same path this one
    /// replaces (empty when none); absent with `--segments`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Vec<usize>>,
}

/// One listed entry, rendered: a JSON object, or a text line (with its newline).
enum Row {
    Json(Box<EntryJson>),
    Text(Vec<u8>),
}

/// Where rows go: stdout, as lines or as the elements of a JSON array.
struct Sink<W: Write> {
    out: W,
    json: bool,
    first: bool,
}

fn werr(e: std::io::Error) -> Error {
    Error::io("writing the listing", e)
}

impl<W: Write> Sink<W> {
    fn new(mut out: W, json: bool) -> subroot_formats::Result<Self> {
        if json {
            out.write_all(b"[").map_err(werr)?;
        }
        Ok(Sink {
            out,
            json,
            first: true,
        })
    }

    fn row(&mut self, row: &Row) -> subroot_formats::Result<()> {
        match row {
            Row::Json(e) => {
                let sep: &[u8] = if self.first { b"\n  " } else { b",\n  " };
                self.out.write_all(sep).map_err(werr)?;
                serde_json::to_writer(&mut self.out, e).map_err(|e| werr(e.into()))?;
            }
            Row::Text(line) => self.out.write_all(line).map_err(werr)?,
        }
        self.first = false;
        Ok(())
    }

    fn finish(mut self) -> subroot_formats::Result<()> {
        if self.json {
            let end: &[u8] = if self.first { b"]\n" } else { b"\n]\n" };
            self.out.write_all(end).map_err(werr)?;
        }
        self.out.flush().map_err(werr)
    }
}

/// The row of one entry.
fn render(
    args: &LsArgs,
    now: i64,
    c: &EntryContext,
    h: &CpioHeader,
    data: &mut dyn Read,
) -> subroot_formats::Result<Row> {
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
        return Ok(Row::Json(Box::new(EntryJson {
            segment: c.segment,
            archive: c.archive,
            name: Named::new("name", h.name.clone()),
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
            link_target: MaybeNamed::new("link_target", target),
            replaces: None,
        })));
    }
    let mut line = Vec::new();
    if args.long {
        let size = match Kind::from_mode(h.mode) {
            Some(Kind::CharDevice | Kind::BlockDevice) => {
                format!("{:>3}, {:>3}", h.rdev_major, h.rdev_minor)
            }
            _ => format!("{:>8}", h.filesize),
        };
        write!(
            line,
            "{} {:>3} {:<8} {:<8} {size} {} ",
            mode_string(h.mode),
            h.nlink,
            h.uid,
            h.gid,
            date(i64::from(h.mtime), now)
        )
        .map_err(werr)?;
    }
    line.extend_from_slice(&h.name);
    if let (true, Some(t)) = (args.long, &target) {
        line.extend_from_slice(b" -> ");
        line.extend_from_slice(t);
    }
    line.push(b'\n');
    Ok(Row::Text(line))
}

/// The merged view of `rows` (path as the kernel resolves it, segment, row), in archive
/// order: each path's last occurrence, with (in JSON) the segments of the earlier
/// occurrences it replaces. A name that is no safe relative path is its own key.
fn merge(rows: Vec<(Vec<u8>, usize, Row)>) -> Vec<Row> {
    // path -> (index of its last occurrence, segments of the earlier ones)
    let mut last: HashMap<&[u8], (usize, Vec<usize>)> = HashMap::new();
    for (index, (key, _, _)) in rows.iter().enumerate() {
        let slot = last.entry(key.as_slice()).or_insert((index, Vec::new()));
        if slot.0 != index {
            let earlier = rows.get(slot.0).map_or(0, |r| r.1);
            slot.1.push(earlier);
            slot.0 = index;
        }
    }
    let mut winners: Vec<Option<Vec<usize>>> = vec![None; rows.len()];
    for (index, earlier) in last.into_values() {
        if let Some(w) = winners.get_mut(index) {
            *w = Some(earlier);
        }
    }
    rows.into_iter()
        .zip(winners)
        .filter_map(|((_, _, row), w)| {
            let earlier = w?;
            Some(match row {
                Row::Json(mut e) => {
                    e.replaces = Some(earlier);
                    Row::Json(e)
                }
                text => text,
            })
        })
        .collect()
}

pub fn run(args: &LsArgs, ctx: &Ctx) -> Result<()> {
    let input = open_input(&args.input, ctx)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut sink = Sink::new(crate::stdout::out(), args.json)?;
    let what = || format!("cannot read the initrd {}", input.name);
    if args.segments {
        visit_entries(&input.dev, |c, h, data| {
            sink.row(&render(args, now, c, h, data)?)
        })
        .with_context(what)?;
    } else {
        // One pass, keeping the rows (memory grows with the entry count, not file sizes).
        let mut rows = Vec::new();
        visit_entries(&input.dev, |c, h, data| {
            let key = entry_path(&h.name).unwrap_or_else(|_| h.name.clone());
            rows.push((key, c.segment, render(args, now, c, h, data)?));
            Ok(())
        })
        .with_context(what)?;
        for row in merge(rows) {
            sink.row(&row)?;
        }
    }
    sink.finish()?;
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
