//! `subroot ls`: list a directory (or the whole tree with -R) of a filesystem inside an
//! image: names, or `ls -l`-style lines, or JSON Lines.

use crate::cli::read::LsArgs;
use crate::json::put_bytes;
use crate::open::fstree::{open, resolve_path, shown};
use crate::Ctx;
use anyhow::{Context, Result};
use std::io::Write;
use subroot_formats::calendar::civil_from_days;
use subroot_formats::manifest::{escape, kind_name, time};
use subroot_formats::resolve::Last;
use subroot_formats::tree::{Entry, Kind};

/// Run `subroot ls`.
pub fn run(args: &LsArgs, ctx: &Ctx) -> Result<()> {
    let fs = open(&args.read, ctx)?;
    let last = if args.dereference {
        Last::Follow
    } else {
        Last::NoFollow
    };
    let top = resolve_path(&fs, args.path.as_deref(), last)?;
    let path = top.path.clone();
    let mut out = crate::stdout::out();
    let ctx_msg = || format!("cannot list {} in {}", shown(&path), fs.name);
    if args.recursive {
        let mut werr = None;
        let walked = fs.tree.source().walk(&path, &mut |e, _| {
            if let Err(err) = print(&mut out, e, args, true) {
                werr = Some(err);
                return Err(subroot_formats::Error::InvalidArgument(
                    "writing to stdout failed".into(),
                ));
            }
            Ok(())
        });
        if let Some(e) = werr {
            return Err(e).context("cannot write to stdout");
        }
        walked.with_context(ctx_msg)?;
    } else if top.kind == Kind::Dir {
        for e in fs.tree.children(&path).with_context(ctx_msg)? {
            print(&mut out, &e, args, false).context("cannot write to stdout")?;
        }
    } else {
        print(&mut out, &top, args, true).context("cannot write to stdout")?;
    }
    out.flush().context("cannot write to stdout")?;
    fs.print_warnings();
    Ok(())
}

fn print(out: &mut dyn Write, e: &Entry, args: &LsArgs, full: bool) -> std::io::Result<()> {
    let name = if full {
        shown(&e.path)
    } else {
        escape(e.name())
    };
    if args.json {
        return writeln!(out, "{}", json_entry(e));
    }
    if !args.long {
        return writeln!(out, "{name}");
    }
    let size = match e.kind {
        Kind::CharDevice | Kind::BlockDevice => format!("{}, {}", e.rdev.0, e.rdev.1),
        _ => e.size.to_string(),
    };
    let mut line = format!(
        "{} {:>5} {:>5} {:>10} {} {name}",
        mode_string(e),
        e.meta.uid,
        e.meta.gid,
        size,
        date(e.meta.mtime.sec)
    );
    if let Some(t) = &e.link_target {
        line.push_str(" -> ");
        line.push_str(&escape(t));
    }
    writeln!(out, "{line}")
}

/// The `ls --json` object of `e`: `path`, `name` and `link` follow the lossless name rule
/// of [`crate::json`] (`path_bytes`, `name_bytes`, `link_bytes` when not UTF-8).
fn json_entry(e: &Entry) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    let mut path = b"/".to_vec();
    path.extend_from_slice(&e.path);
    put_bytes(&mut o, "path", &path);
    put_bytes(&mut o, "name", e.name());
    let rest = serde_json::json!({
        "kind": kind_name(e.kind),
        "mode": format!("{:04o}", e.meta.perm & 0o7777),
        "uid": e.meta.uid,
        "gid": e.meta.gid,
        "size": e.size,
        "mtime": time(e.meta.mtime),
        "rdev": matches!(e.kind, Kind::CharDevice | Kind::BlockDevice).then_some([e.rdev.0, e.rdev.1]),
    });
    if let serde_json::Value::Object(m) = rest {
        o.extend(m);
    }
    match &e.link_target {
        Some(t) => put_bytes(&mut o, "link", t),
        None => {
            o.insert("link".into(), serde_json::Value::Null);
        }
    }
    serde_json::Value::Object(o)
}

/// `drwxr-xr-x`, with s/S and t/T for setuid, setgid and sticky.
pub fn mode_string(e: &Entry) -> String {
    let p = e.meta.perm;
    let mut s = String::with_capacity(10);
    s.push(e.kind.letter());
    let bit = |mask: u32, c: char| if p & mask != 0 { c } else { '-' };
    let special = |x: bool, special: bool, lower: char, upper: char| match (x, special) {
        (true, true) => lower,
        (false, true) => upper,
        (true, false) => 'x',
        (false, false) => '-',
    };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(p & 0o100 != 0, p & 0o4000 != 0, 's', 'S'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(p & 0o010 != 0, p & 0o2000 != 0, 's', 'S'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(p & 0o001 != 0, p & 0o1000 != 0, 't', 'T'));
    s
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of seconds since the epoch.
pub fn date(sec: i64) -> String {
    let days = sec.div_euclid(86400);
    let rem = sec.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01 00:00:00");
        assert_eq!(date(-1), "1969-12-31 23:59:59");
        assert_eq!(date(951782400), "2000-02-29 00:00:00");
        assert_eq!(date(4102444800), "2100-01-01 00:00:00");
    }
}
