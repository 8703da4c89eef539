//! Host directories: a rich tree made with the system tools (chown, setcap, setfacl, mknod,
//! touch, a bound unix socket) is read with `HostDir`, extracted with `extract`, read back
//! and compared entry by entry; `getfacl`, `getcap`, `find -printf`, `cmp` and `stat`
//! judge the result. An unprivileged extraction runs in a child process as uid 65534
//! (`setpriv`). Hostile in-memory trees must fail without writing outside the destination.

mod common;

use common::{need, run, run_stdout, s};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use subroot_formats::block::ExtentKind;
use subroot_formats::hostdir::{extract, ExtractOptions, ExtractSummary, HostDir};
use subroot_formats::tree::{
    BytesContent, Content, Entry, Kind, Metadata, Timestamp, TreeSource, Visitor,
};
use subroot_formats::Error;

const MIB: u64 = 1 << 20;
const CHILD_ENV: &str = "SUBROOT_HOSTDIR_CHILD";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        .unwrap_or(false)
}

fn p(dir: &Path, rel: &str) -> String {
    s(&dir.join(rel)).to_string()
}

/// Build the rich tree under `dir` (which exists). `suid_mode` is the mode of the suid file
/// (0o4750 normally; 0o4755 for the tree an unprivileged child must be able to read).
fn build_tree(dir: &Path, suid_mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let set_mode = |rel: &str, mode: u32| {
        std::fs::set_permissions(dir.join(rel), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    std::fs::create_dir(dir.join("d")).unwrap();
    std::fs::create_dir(dir.join("sgid")).unwrap();
    std::fs::create_dir(dir.join("sticky")).unwrap();
    std::fs::create_dir(dir.join("acldir")).unwrap();
    std::fs::create_dir_all(dir.join("deep/a/b/c")).unwrap();
    std::fs::write(dir.join("deep/a/b/c/leaf"), b"leaf\n").unwrap();
    std::fs::write(dir.join("suid"), b"#!/bin/sh\necho suid\n").unwrap();
    run("chown", &["1234:5678", &p(dir, "suid")]);
    set_mode("suid", suid_mode);
    set_mode("sgid", 0o2755);
    set_mode("sticky", 0o1777);
    std::fs::write(dir.join("sticky/owned"), b"owned by 1234\n").unwrap();
    run("chown", &["-h", "1234:5678", &p(dir, "sticky/owned")]);
    // A 3,000-byte user xattr.
    std::fs::write(dir.join("big_xattr"), b"x").unwrap();
    let value: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    rustix::fs::setxattr(
        dir.join("big_xattr").as_path(),
        "user.big",
        &value,
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    // File capabilities (after chown, which would clear them).
    std::fs::write(dir.join("cap"), b"\x7fELF pretend\n").unwrap();
    set_mode("cap", 0o755);
    run("setcap", &["cap_net_raw+ep", &p(dir, "cap")]);
    // ACLs: an access ACL on a file, access + default on a directory.
    std::fs::write(dir.join("acl"), b"acl\n").unwrap();
    set_mode("acl", 0o644);
    run("setfacl", &["-m", "u:1234:rwx,g:5678:r-x", &p(dir, "acl")]);
    run("setfacl", &["-m", "u:1234:rwx", &p(dir, "acldir")]);
    run(
        "setfacl",
        &["-d", "-m", "u:1234:r-x,g:5678:rwx", &p(dir, "acldir")],
    );
    std::fs::write(dir.join("d/old"), b"older than 1970\n").unwrap();
    // A hard-link triple across directories.
    std::fs::write(dir.join("h1"), b"three names, one inode\n").unwrap();
    std::fs::hard_link(dir.join("h1"), dir.join("d/h2")).unwrap();
    std::fs::hard_link(dir.join("h1"), dir.join("d/h3")).unwrap();
    // Devices, a fifo, a socket.
    run("mknod", &["-m", "0620", &p(dir, "d/null"), "c", "1", "3"]);
    run("mknod", &["-m", "0660", &p(dir, "d/loop"), "b", "7", "200"]);
    run("chown", &["0:6", &p(dir, "d/loop")]);
    run("mkfifo", &["-m", "0640", &p(dir, "fifo")]);
    drop(std::os::unix::net::UnixListener::bind(dir.join("sock")).unwrap());
    // Symlinks: relative, absolute, dangling; one owned by someone else.
    std::os::unix::fs::symlink("d/h2", dir.join("rel")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("abs")).unwrap();
    std::os::unix::fs::symlink("nowhere/at/all", dir.join("dangling")).unwrap();
    run("chown", &["-h", "1234:5678", &p(dir, "dangling")]);
    // A 100 MiB sparse file with a little data.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(dir.join("sparse")).unwrap();
        f.set_len(100 * MIB).unwrap();
        f.write_all_at(b"hello in the middle", 50 * MIB + 123)
            .unwrap();
        f.write_all_at(b"end", 100 * MIB - 3).unwrap();
    }
    // A name that is not UTF-8.
    std::fs::write(dir.join(OsStr::from_bytes(b"caf\xe9")), b"latin-1 name\n").unwrap();
    // Timestamps with nanoseconds on everything (children before their directories), then
    // one before 1970.
    run(
        "find",
        &[
            s(dir),
            "-depth",
            "-exec",
            "touch",
            "-h",
            "-d",
            "2001-02-03 04:05:06.123456789",
            "{}",
            "+",
        ],
    );
    run(
        "touch",
        &["-h", "-m", "-d", "1960-05-06 07:08:09.5", &p(dir, "d/old")],
    );
    run(
        "touch",
        &[
            "-h",
            "-a",
            "-d",
            "1999-12-31 23:59:59.999999999",
            &p(dir, "abs"),
        ],
    );
}

/// Everything compared about an entry (ctime and crtime cannot be restored).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snap {
    kind: Kind,
    perm: u32,
    owner: (u32, u32),
    atime: Timestamp,
    mtime: Timestamp,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    size: u64,
    rdev: (u32, u32),
    link_target: Option<Vec<u8>>,
    /// The first path of the entry's hard-link group.
    link_group: Option<Vec<u8>>,
}

/// Path -> what is compared.
type Snapshot = BTreeMap<Vec<u8>, Snap>;
/// (offset, length, is data) of a file.
type ExtentMap = Vec<(u64, u64, bool)>;

/// `path` relative to `root`.
fn under(path: &[u8], root: &[u8]) -> Vec<u8> {
    let rest = path.strip_prefix(root).unwrap();
    rest.strip_prefix(b"/").unwrap_or(rest).to_vec()
}

/// Read a tree into path -> snapshot; file contents are read through and their length
/// checked; returns also the data/zero map of `sparse` if present.
fn snapshot(src: &dyn TreeSource, root: &[u8]) -> (Snapshot, ExtentMap) {
    let mut out = BTreeMap::new();
    let mut groups: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut sparse_map = Vec::new();
    let mut order = Vec::new();
    src.walk(root, &mut |e: &Entry, c: Option<&mut dyn Content>| {
        order.push(e.path.clone());
        if let Some(c) = c {
            if e.path.ends_with(b"sparse") {
                sparse_map = c
                    .extents()?
                    .iter()
                    .map(|x| (x.offset, x.len, x.kind == ExtentKind::Data))
                    .collect();
            }
            let n = std::io::copy(c, &mut std::io::sink()).unwrap();
            assert_eq!(n, e.size, "{:?}", e.path);
        }
        let mut xattrs = e.meta.xattrs.clone();
        xattrs.sort();
        let link_group = e
            .hardlink_id
            .map(|id| groups.entry(id).or_insert_with(|| e.path.clone()).clone());
        let rel = under(&e.path, root);
        out.insert(
            rel,
            Snap {
                kind: e.kind,
                perm: e.meta.perm,
                owner: (e.meta.uid, e.meta.gid),
                atime: e.meta.atime,
                mtime: e.meta.mtime,
                xattrs,
                size: e.size,
                rdev: e.rdev,
                link_target: e.link_target.clone(),
                link_group: link_group.map(|g| under(&g, root)),
            },
        );
        Ok(())
    })
    .unwrap();
    // The walk order is the stable one: depth-first, siblings sorted by name bytes.
    let mut sorted = order.clone();
    sorted.sort_by(|a, b| a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/')));
    assert_eq!(order, sorted, "walk order");
    (out, sparse_map)
}

/// `find -printf` of everything the kernel reports, for the reference comparison. Atimes
/// only for non-directories and non-symlinks: reading those moves their atime.
fn find_listing(dir: &Path) -> String {
    let all = Command::new("find")
        .current_dir(dir)
        .args([".", "-printf", "%p|%M|%U|%G|%T@|%l|%n\n"])
        .output()
        .unwrap();
    let non_dirs = Command::new("find")
        .current_dir(dir)
        .args([
            ".",
            "!",
            "-type",
            "d",
            "!",
            "-type",
            "l",
            "-printf",
            "%p|%A@|%s\n",
        ])
        .output()
        .unwrap();
    let mut lines: Vec<String> = String::from_utf8_lossy(&all.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&non_dirs.stdout).lines())
        .map(str::to_string)
        .collect();
    lines.sort();
    lines.join("\n")
}

fn tool_in(dir: &Path, tool: &str, args: &[&str]) -> String {
    let out = Command::new(common::which(tool).unwrap())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn rich_tree_round_trips_as_root() {
    for tool in [
        "setcap", "getcap", "setfacl", "getfacl", "mknod", "find", "cmp",
    ] {
        if !need(tool, "rich_tree_round_trips_as_root") {
            return;
        }
    }
    if !is_root() {
        eprintln!("SKIPPED rich_tree_round_trips_as_root: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&dst).unwrap();
    build_tree(&src, 0o4750);
    run("touch", &["-h", "-d", "2002-03-04 05:06:07.7", s(&src)]);

    let host = HostDir::open(&src).unwrap();
    let (before, sparse_map) = snapshot(&host, b"");
    // The reader sees what was built.
    let caf = before.get(&b"caf\xe9"[..]).expect("non-UTF-8 name");
    assert_eq!(caf.kind, Kind::File);
    assert_eq!(before[&b"suid"[..]].perm, 0o4750);
    assert_eq!(before[&b"suid"[..]].owner, (1234, 5678));
    assert_eq!(before[&b"sgid"[..]].perm, 0o2755);
    assert_eq!(before[&b"sticky"[..]].perm, 0o1777);
    assert_eq!(before[&b"d/null"[..]].rdev, (1, 3));
    assert_eq!(before[&b"d/loop"[..]].kind, Kind::BlockDevice);
    assert_eq!(before[&b"d/loop"[..]].rdev, (7, 200));
    assert_eq!(before[&b"sock"[..]].kind, Kind::Socket);
    assert_eq!(before[&b"fifo"[..]].kind, Kind::Fifo);
    assert_eq!(
        before[&b"abs"[..]].link_target.as_deref(),
        Some(&b"/etc/passwd"[..])
    );
    assert_eq!(before[&b"abs"[..]].size, 11);
    assert_eq!(
        before[&b"abs"[..]].atime,
        Timestamp {
            sec: 946684799,
            nsec: 999999999
        }
    );
    assert_eq!(
        before[&b"h1"[..]].mtime,
        Timestamp {
            sec: 981173106,
            nsec: 123456789
        }
    );
    assert!(before[&b"d/old"[..]].mtime.sec < 0, "pre-1970 mtime");
    assert_eq!(before[&b"d/old"[..]].mtime.nsec, 500_000_000);
    let g = Some(b"d/h2".to_vec());
    assert_eq!(before[&b"d/h2"[..]].link_group, g);
    assert_eq!(before[&b"d/h3"[..]].link_group, g);
    assert_eq!(before[&b"h1"[..]].link_group, g);
    assert!(before[&b"d"[..]].link_group.is_none());
    let xnames = |k: &[u8]| -> Vec<String> {
        before[k]
            .xattrs
            .iter()
            .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
            .collect()
    };
    assert_eq!(xnames(b"cap"), ["security.capability"]);
    assert_eq!(xnames(b"acl"), ["system.posix_acl_access"]);
    assert_eq!(
        xnames(b"acldir"),
        ["system.posix_acl_access", "system.posix_acl_default"]
    );
    assert_eq!(before[&b"big_xattr"[..]].xattrs[0].1.len(), 3000);
    let data: u64 = sparse_map.iter().filter(|x| x.2).map(|x| x.1).sum();
    let total: u64 = sparse_map.iter().map(|x| x.1).sum();
    assert_eq!(total, 100 * MIB);
    assert!(data < MIB, "sparse file data extents: {sparse_map:?}");

    // Reading a symlink's target moves its atime (the kernel does, under relatime once):
    // the baseline is a second reading, which the extraction's own reading matches.
    let (before, _) = snapshot(&host, b"");
    let sum = extract(&host, b"", &dst, &ExtractOptions::default()).unwrap();
    assert!(sum.is_clean(), "{sum:?}");
    assert_eq!(sum.one_line(), None);
    assert_eq!(sum.entries, before.len() as u64);
    assert!(sum.bytes < MIB && sum.bytes > 50, "{sum:?}");

    let (after, _) = snapshot(&HostDir::open(&dst).unwrap(), b"");
    assert_eq!(after.len(), before.len());
    for (path, b) in &before {
        assert_eq!(after.get(path), Some(b), "{}", path.escape_ascii());
    }

    // The reference tools agree.
    assert_eq!(find_listing(&src), find_listing(&dst));
    let acl_src = tool_in(&src, "getfacl", &["-R", "-n", "-P", "."]);
    let acl_dst = tool_in(&dst, "getfacl", &["-R", "-n", "-P", "."]);
    assert!(acl_src.contains("user:1234:rwx"), "{acl_src}");
    assert!(acl_src.contains("default:group:5678:rwx"), "{acl_src}");
    assert_eq!(acl_src, acl_dst);
    let cap_dst = tool_in(&dst, "getcap", &["-r", "."]);
    assert!(cap_dst.contains("cap_net_raw=ep"), "{cap_dst}");
    assert_eq!(tool_in(&src, "getcap", &["-r", "."]), cap_dst);
    for f in [
        "suid",
        "h1",
        "d/h3",
        "d/old",
        "sparse",
        "big_xattr",
        "deep/a/b/c/leaf",
    ] {
        run("cmp", &[&p(&src, f), &p(&dst, f)]);
    }
    let cafe = OsStr::from_bytes(b"caf\xe9");
    assert_eq!(std::fs::read(dst.join(cafe)).unwrap(), b"latin-1 name\n");
    let meta = std::fs::metadata(dst.join("sparse")).unwrap();
    assert_eq!(meta.len(), 100 * MIB);
    assert!(
        meta.blocks() * 512 < MIB,
        "sparse file not sparse: {} blocks",
        meta.blocks()
    );
    assert_eq!(std::fs::metadata(dst.join("d/h2")).unwrap().nlink(), 3);
    assert_eq!(
        std::fs::metadata(dst.join("h1")).unwrap().ino(),
        std::fs::metadata(dst.join("d/h3")).unwrap().ino()
    );
    assert_eq!(
        run_stdout("stat", &["-c", "%F %t:%T", &p(&dst, "d/loop")]).trim(),
        "block special file 7:c8"
    );

    // Extracting a subtree: paths relative to it; a second run without overwrite fails.
    let sub = tmp.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let sum = extract(&host, b"d", &sub, &ExtractOptions::default()).unwrap();
    assert!(sum.is_clean(), "{sum:?}");
    let (d_src, _) = snapshot(&host, b"d");
    let (d_dst, _) = snapshot(&HostDir::open(&sub).unwrap(), b"");
    assert_eq!(
        d_src.keys().collect::<Vec<_>>(),
        d_dst.keys().collect::<Vec<_>>()
    );
    assert_eq!(std::fs::metadata(sub.join("h2")).unwrap().nlink(), 2);
    assert!(matches!(
        extract(&host, b"d", &sub, &ExtractOptions::default()),
        Err(Error::InvalidArgument(_))
    ));
    let again = ExtractOptions {
        overwrite: true,
        ..Default::default()
    };
    assert!(extract(&host, b"d", &sub, &again).unwrap().is_clean());

    // A single file as the root lands as dest/<name>.
    let one = tmp.path().join("one");
    std::fs::create_dir(&one).unwrap();
    extract(&host, b"deep/a/b/c/leaf", &one, &ExtractOptions::default()).unwrap();
    assert_eq!(std::fs::read(one.join("leaf")).unwrap(), b"leaf\n");

    // The reader refuses a symlinked root and walks through none.
    assert!(matches!(
        HostDir::open(&src.join("rel")),
        Err(Error::InvalidArgument(_))
    ));
    std::os::unix::fs::symlink("d", src.join("dlink")).unwrap();
    assert!(host.walk(b"dlink/h2", &mut |_, _| Ok(())).is_err());
}

/// The child half of `unprivileged_extraction`: runs as uid 65534 under `setpriv`.
#[test]
#[ignore]
fn unprivileged_child() {
    let Ok(arg) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (src, dst) = arg.split_once('\n').unwrap();
    let opts = ExtractOptions::default();
    assert!(!opts.owners && !opts.devices && opts.xattrs && opts.times);
    let sum = extract(
        &HostDir::open(Path::new(src)).unwrap(),
        b"",
        Path::new(dst),
        &opts,
    )
    .unwrap();
    println!(
        "SUMMARY {} {} {} {} {} {}",
        sum.entries,
        sum.skipped_owners,
        sum.skipped_devices,
        sum.skipped_xattrs,
        sum.skipped_other,
        sum.bytes
    );
    println!("LINE {}", sum.one_line().unwrap_or_default());
}

#[test]
fn unprivileged_extraction() {
    for tool in ["setpriv", "setcap", "setfacl", "getfacl", "mknod", "cmp"] {
        if !need(tool, "unprivileged_extraction") {
            return;
        }
    }
    if !is_root() {
        eprintln!("SKIPPED unprivileged_extraction: needs root to build the tree");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    run("chmod", &["0755", s(tmp.path())]);
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&dst).unwrap();
    build_tree(&src, 0o4755);
    run("chmod", &["0755", s(&src)]);
    run("chown", &["65534:65534", s(&dst)]);
    // Read the source first, as root: the child cannot use O_NOATIME on files it does not
    // own, so its reading moves the source's atimes (after it has recorded them).
    snapshot(&HostDir::open(&src).unwrap(), b"");
    // A second reading is the baseline: reading symlinks moved their atimes once.
    let (before, _) = snapshot(&HostDir::open(&src).unwrap(), b"");
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(common::which("setpriv").unwrap())
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(&exe)
        .args(["--exact", "unprivileged_child", "--ignored", "--nocapture"])
        .env(CHILD_ENV, format!("{}\n{}", s(&src), s(&dst)))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nums: Vec<u64> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SUMMARY "))
        .expect("child summary")
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("LINE "))
        .unwrap();

    let (after, _) = snapshot(&HostDir::open(&dst).unwrap(), b"");
    // Expected: every entry except the two devices; owners skipped for each created inode
    // (hard links share one) not owned by 65534; devices 2; xattrs: security.capability.
    let devices = before
        .values()
        .filter(|e| matches!(e.kind, Kind::CharDevice | Kind::BlockDevice))
        .count() as u64;
    let later_links = before
        .iter()
        .filter(|(p, e)| e.link_group.as_ref().is_some_and(|g| g != *p))
        .count() as u64;
    let entries = before.len() as u64;
    assert_eq!(devices, 2);
    assert_eq!(nums[0], entries - devices, "entries: {stdout}");
    assert_eq!(nums[1], entries - devices - later_links, "owners: {stdout}");
    assert_eq!(nums[2], 2, "devices: {stdout}");
    assert_eq!(nums[3], 1, "xattrs: {stdout}");
    assert_eq!(nums[4], 0, "other: {stdout}");
    assert!(
        line.starts_with("not done as non-root:") && line.contains("2 device nodes"),
        "{line}"
    );
    // Everything else is there, owned by 65534, with modes, times, ACLs and user xattrs.
    assert_eq!(after.len() as u64, entries - devices);
    for (path, b) in &before {
        if matches!(b.kind, Kind::CharDevice | Kind::BlockDevice) {
            assert!(!after.contains_key(path));
            continue;
        }
        let a = after
            .get(path)
            .unwrap_or_else(|| panic!("{} missing", path.escape_ascii()));
        let mut want = b.clone();
        want.owner = (65534, 65534);
        want.xattrs.retain(|(n, _)| !n.starts_with(b"security."));
        assert_eq!(a, &want, "{}", path.escape_ascii());
    }
    assert_eq!(
        tool_in(
            &src,
            "getfacl",
            &["-R", "-P", "--omit-header", "-n", "acl", "acldir"]
        )
        .replace("1234", "X"),
        tool_in(
            &dst,
            "getfacl",
            &["-R", "-P", "--omit-header", "-n", "acl", "acldir"]
        )
        .replace("1234", "X")
    );
    run("cmp", &[&p(&src, "sparse"), &p(&dst, "sparse")]);
    assert!(std::fs::metadata(dst.join("sparse")).unwrap().blocks() * 512 < MIB);
}

/// An in-memory tree, as hostile as a test wants.
struct Mem(Vec<(Entry, Vec<u8>)>);

impl TreeSource for Mem {
    fn walk(&self, _root: &[u8], visit: &mut Visitor<'_>) -> subroot_formats::Result<()> {
        for (e, data) in &self.0 {
            if e.kind == Kind::File {
                visit(e, Some(&mut BytesContent::new(data.clone())))?;
            } else {
                visit(e, None)?;
            }
        }
        Ok(())
    }
}

fn ent(path: &[u8], kind: Kind) -> Entry {
    Entry {
        path: path.to_vec(),
        kind,
        meta: Metadata {
            perm: if kind == Kind::Dir { 0o755 } else { 0o644 },
            ..Default::default()
        },
        size: 0,
        rdev: (0, 0),
        link_target: None,
        hardlink_id: None,
    }
}

fn file(path: &[u8], data: &[u8]) -> (Entry, Vec<u8>) {
    let mut e = ent(path, Kind::File);
    e.size = data.len() as u64;
    (e, data.to_vec())
}

fn link(path: &[u8], target: &[u8]) -> (Entry, Vec<u8>) {
    let mut e = ent(path, Kind::Symlink);
    e.size = target.len() as u64;
    e.link_target = Some(target.to_vec());
    (e, Vec::new())
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Extract `tree` into a fresh `dest` beside an `outside` directory holding `keep`;
/// returns the result and checks nothing changed outside `dest`.
fn hostile(
    tree: Vec<(Entry, Vec<u8>)>,
    opts: &ExtractOptions,
) -> (Result<ExtractSummary, Error>, PathBuf, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&dest).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("keep"), b"keep").unwrap();
    let tree = tree
        .into_iter()
        .map(|(mut e, d)| {
            // `@OUT@` in a link target stands for the outside directory.
            if let Some(t) = &e.link_target {
                if t == b"@OUT@" {
                    e.link_target = Some(outside.as_os_str().as_bytes().to_vec());
                    e.size = outside.as_os_str().len() as u64;
                }
            }
            (e, d)
        })
        .collect();
    let r = extract(&Mem(tree), b"", &dest, opts);
    assert_eq!(listing(tmp.path()), ["dest", "outside"]);
    assert_eq!(listing(&outside), ["keep"]);
    assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"keep");
    (r, dest, tmp)
}

fn corrupt(r: &Result<ExtractSummary, Error>, names: &str) {
    match r {
        Err(Error::Corrupt(m)) => assert!(m.contains(names), "{m}"),
        other => panic!("expected a Corrupt error naming {names}, got {other:?}"),
    }
}

#[test]
fn hostile_trees_write_nothing_outside() {
    let opts = ExtractOptions::default();
    let root = || (ent(b"", Kind::Dir), Vec::new());

    let (r, _, _t) = hostile(vec![root(), file(b"../outside/keep", b"evil")], &opts);
    corrupt(&r, "../outside/keep");
    let (r, _, _t) = hostile(vec![root(), file(b"../../etc/passwd", b"evil")], &opts);
    corrupt(&r, "../../etc/passwd");
    let (r, _, _t) = hostile(vec![root(), file(b"/abs", b"evil")], &opts);
    corrupt(&r, "/abs");
    let (r, _, _t) = hostile(vec![root(), file(b"a//b", b"evil")], &opts);
    corrupt(&r, "a//b");

    // A symlink to outside, then a file through it.
    let (r, dest, _t) = hostile(
        vec![root(), link(b"a", b"@OUT@"), file(b"a/x", b"evil")],
        &opts,
    );
    corrupt(&r, "a/x");
    assert_eq!(listing(&dest), ["a"]);
    // ... and a directory through it.
    let (r, _, _t) = hostile(
        vec![
            root(),
            link(b"a", b"@OUT@"),
            (ent(b"a/sub", Kind::Dir), vec![]),
        ],
        &opts,
    );
    corrupt(&r, "a/sub");
    // A symlink to `..`, then a file through it.
    let (r, dest, _t) = hostile(
        vec![root(), link(b"a", b".."), file(b"a/y", b"evil")],
        &opts,
    );
    corrupt(&r, "a/y");
    assert_eq!(listing(&dest), ["a"]);
    // A file used as a directory.
    let (r, _, _t) = hostile(vec![root(), file(b"f", b"x"), file(b"f/y", b"evil")], &opts);
    corrupt(&r, "f/y");

    // A symlink then a file of the same name: no overwrite is an error; overwrite replaces
    // the link itself, never writing through it.
    let tree = || vec![root(), link(b"l", b"@OUT@/keep"), file(b"l", b"new")];
    let fix = |t: Vec<(Entry, Vec<u8>)>| -> Vec<(Entry, Vec<u8>)> { t };
    let (r, _, _t) = hostile(fix(tree()), &opts);
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    let ow = ExtractOptions {
        overwrite: true,
        ..ExtractOptions::default()
    };
    let (r, dest, _t) = hostile(tree(), &ow);
    r.unwrap();
    assert_eq!(std::fs::read(dest.join("l")).unwrap(), b"new");
    assert!(!std::fs::symlink_metadata(dest.join("l"))
        .unwrap()
        .file_type()
        .is_symlink());

    // A hard link whose group started as a symlink (to outside): a kind mismatch, refused.
    let mut l1 = link(b"s", b"@OUT@/keep");
    l1.0.hardlink_id = Some(7);
    let mut f2 = file(b"t", b"evil");
    f2.0.hardlink_id = Some(7);
    let (r, _, _t) = hostile(vec![root(), l1, f2], &opts);
    corrupt(&r, "t");

    // The GNU cpio convention: the data comes with the last link.
    let mut a = file(b"a", b"");
    a.0.hardlink_id = Some(9);
    let mut b = file(b"d/b", b"payload");
    b.0.hardlink_id = Some(9);
    let (r, dest, _t) = hostile(vec![root(), a, b], &opts);
    r.unwrap();
    assert_eq!(std::fs::read(dest.join("a")).unwrap(), b"payload");
    assert_eq!(std::fs::metadata(dest.join("d/b")).unwrap().nlink(), 2);

    // Content shorter than the size claimed.
    let mut short = file(b"short", b"abc");
    short.0.size = 10;
    let (r, _, _t) = hostile(vec![root(), short], &opts);
    corrupt(&r, "short");

    // A symlink target with a NUL byte, and none at all.
    let (r, _, _t) = hostile(vec![root(), link(b"n", b"a\0b")], &opts);
    corrupt(&r, "n");
    let mut nolink = ent(b"m", Kind::Symlink);
    nolink.link_target = None;
    let (r, _, _t) = hostile(vec![root(), (nolink, vec![])], &opts);
    corrupt(&r, "m");
}

#[test]
fn summary_line_and_missing_parents() {
    let sum = ExtractSummary {
        skipped_owners: 12,
        skipped_devices: 3,
        skipped_xattrs: 1,
        ..Default::default()
    };
    assert!(!sum.is_clean());
    let line = sum.one_line().unwrap();
    assert!(
        line.contains("12 ownerships, 3 device nodes, 1 xattr"),
        "{line}"
    );
    assert!(ExtractSummary::default().is_clean());

    // Entries whose parents were never listed get them created; modes/times still apply.
    let tmp = tempfile::tempdir().unwrap();
    let mut f = file(b"x/y/z", b"data");
    f.0.meta.perm = 0o600;
    f.0.meta.mtime = Timestamp { sec: -1, nsec: 5 };
    f.0.meta.atime = Timestamp {
        sec: 4_000_000_000,
        nsec: 7,
    };
    let mut d = ent(b"ro", Kind::Dir);
    d.meta.perm = 0o555;
    let sum = extract(
        &Mem(vec![f, (d, vec![]), file(b"ro/inside", b"i")]),
        b"",
        tmp.path(),
        &ExtractOptions {
            owners: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(sum.entries, 3);
    let m = std::fs::metadata(tmp.path().join("x/y/z")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o600);
    assert_eq!((m.mtime(), m.mtime_nsec()), (-1, 5));
    assert_eq!((m.atime(), m.atime_nsec()), (4_000_000_000, 7));
    assert_eq!(
        std::fs::metadata(tmp.path().join("ro")).unwrap().mode() & 0o7777,
        0o555
    );
    assert_eq!(std::fs::read(tmp.path().join("ro/inside")).unwrap(), b"i");
}
