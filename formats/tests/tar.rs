//! The pax tar writer over ext trees, judged by GNU tar: its verbose listing must match our
//! manifest entry by entry, and (as root) the tree GNU tar extracts must have the source's
//! metadata: owners, modes, nanosecond times, xattrs incl. capabilities and ACLs, hard
//! links, devices, fifos, symlinks, long and non-UTF-8 names, and sparse files staying
//! sparse.

mod common;
mod rich;

use rich::Flavour;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use subroot_formats::block::RawFile;
use subroot_formats::ext::{ExtTree, OpenOptions};
use subroot_formats::manifest::{manifest, ManifestOptions, Record};
use subroot_formats::tar::write_tree;
use subroot_formats::tree::{
    BytesContent, Content, Entry, Kind, Metadata, Timestamp, TreeSource, Visitor,
};

/// A host directory as a tree (test-only judge: std + rustix, no code from the crate).
struct Host(PathBuf);

impl Host {
    fn entry(&self, rel: &[u8]) -> Entry {
        let p = if rel.is_empty() {
            self.0.clone()
        } else {
            self.0.join(OsStr::from_bytes(rel))
        };
        let m = std::fs::symlink_metadata(&p).expect("lstat");
        let kind = Kind::from_mode(m.mode()).expect("kind");
        let mut names = vec![0u8; 65536];
        let n = rustix::fs::llistxattr(&p, &mut names[..]).unwrap_or(0);
        let mut xattrs = Vec::new();
        for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
            let mut v = vec![0u8; 65536];
            let k =
                rustix::fs::lgetxattr(&p, OsStr::from_bytes(name), &mut v[..]).expect("getxattr");
            v.truncate(k);
            xattrs.push((name.to_vec(), v));
        }
        let link_target = (kind == Kind::Symlink).then(|| {
            std::fs::read_link(&p)
                .expect("readlink")
                .as_os_str()
                .as_bytes()
                .to_vec()
        });
        Entry {
            path: rel.to_vec(),
            kind,
            meta: Metadata {
                perm: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                atime: Timestamp {
                    sec: m.atime(),
                    nsec: m.atime_nsec() as u32,
                },
                mtime: Timestamp {
                    sec: m.mtime(),
                    nsec: m.mtime_nsec() as u32,
                },
                ctime: Timestamp {
                    sec: m.ctime(),
                    nsec: m.ctime_nsec() as u32,
                },
                crtime: None,
                xattrs,
                flags: None,
            },
            size: match kind {
                Kind::File => m.size(),
                Kind::Symlink => link_target.as_ref().map_or(0, |t| t.len() as u64),
                _ => 0,
            },
            rdev: match kind {
                Kind::CharDevice | Kind::BlockDevice => {
                    (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev()))
                }
                _ => (0, 0),
            },
            link_target,
            hardlink_id: (kind != Kind::Dir && m.nlink() > 1).then_some(m.ino()),
        }
    }

    fn walk_rec(&self, rel: &mut Vec<u8>, visit: &mut Visitor<'_>) -> subroot_formats::Result<()> {
        let e = self.entry(rel);
        if e.kind == Kind::File {
            let data = std::fs::read(self.0.join(OsStr::from_bytes(rel))).expect("read");
            let mut c = BytesContent::new(data);
            visit(&e, Some(&mut c as &mut dyn Content))?;
        } else {
            visit(&e, None)?;
        }
        if e.kind == Kind::Dir {
            let dir = if rel.is_empty() {
                self.0.clone()
            } else {
                self.0.join(OsStr::from_bytes(rel))
            };
            let mut names: Vec<Vec<u8>> = std::fs::read_dir(dir)
                .expect("read_dir")
                .map(|d| d.expect("dirent").file_name().as_bytes().to_vec())
                .collect();
            names.sort();
            let base = rel.len();
            for n in names {
                rel.truncate(base);
                if !rel.is_empty() {
                    rel.push(b'/');
                }
                rel.extend_from_slice(&n);
                self.walk_rec(rel, visit)?;
            }
            rel.truncate(base);
        }
        Ok(())
    }
}

impl TreeSource for Host {
    fn walk(&self, root: &[u8], visit: &mut Visitor<'_>) -> subroot_formats::Result<()> {
        self.walk_rec(&mut root.to_vec(), visit)
    }
}

fn records(src: &dyn TreeSource, opts: ManifestOptions) -> Vec<Record> {
    let mut v = Vec::new();
    manifest(src, b"", opts, &mut |r| {
        v.push(r.clone());
        Ok(())
    })
    .expect("manifest");
    v
}

/// GNU tar's quoting of a name in listings under LC_ALL=C (escape style).
fn tar_quote(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\{c:03o}")),
        }
    }
    s
}

fn build(flavour: Flavour, dir: &Path) -> (ExtTree<RawFile>, PathBuf) {
    let tree = dir.join("tree");
    rich::build_tree(&tree, flavour != Flavour::Ext2);
    let img = dir.join("fs.img");
    rich::make_fs(&tree, &img, flavour);
    let t = ExtTree::open(RawFile::open(&img).expect("open"), OpenOptions::default()).expect("ext");
    (t, img)
}

fn roundtrip(flavour: Flavour, test: &str) {
    if !rich::is_root() {
        eprintln!("SKIPPED {test}: needs root to build the rich tree and to extract as GNU tar");
        return;
    }
    for t in rich::TOOLS.iter().chain(&["tar"]) {
        if !common::need(t, test) {
            return;
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (tree, _img) = build(flavour, dir.path());
    let tarf = dir.path().join("x.tar");
    let f = std::fs::File::create(&tarf).expect("create");
    let (_, summary) =
        write_tree(&tree, b"", std::io::BufWriter::new(f), &mut |_| {}).expect("tar");
    assert_eq!(summary.skipped_sockets, vec![b"sock".to_vec()]);
    // The archive stays small: the 100 MiB sparse file's holes are not stored.
    assert!(
        summary.data_bytes < 1 << 20,
        "{} bytes of file data stored: a sparse file was expanded",
        summary.data_bytes
    );
    assert_eq!(std::fs::metadata(&tarf).expect("stat").len(), summary.bytes);

    // 1. GNU tar's verbose listing against our manifest.
    let full = records(&tree, ManifestOptions::default());
    let out = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-tvvf"])
        .arg(&tarf)
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .output()
        .expect("tar -t");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = listing.lines().peekable();
    let mut first_of: HashMap<String, String> = HashMap::new();
    let mut checked = 0;
    let raw_paths = raw_paths(&tree);
    for (r, raw) in full.iter().zip(&raw_paths) {
        let f = &r.fields;
        if f[1] == "socket" {
            continue;
        }
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("listing ends before {}", f[0]));
        let mut it = line.split_whitespace();
        let mode = it.next().expect("mode");
        let owner = it.next().expect("owner");
        let size = it.next().expect("size");
        // Member names start with "./"; the root is "./" itself.
        let name_and_link = line.split_once(" ./").map(|x| x.1).expect("name");
        let kind_letter = match f[1].as_str() {
            "file" => '-',
            "dir" => 'd',
            "symlink" => 'l',
            "char" => 'c',
            "block" => 'b',
            "fifo" => 'p',
            other => panic!("{other}"),
        };
        let mut name = tar_quote(raw);
        if f[1] == "dir" && !raw.is_empty() {
            name.push('/');
        }
        let is_link = f[11] != "-" && f[11] != f[0];
        if is_link {
            assert!(
                mode.starts_with('h'),
                "{line}: expected a hard link to {}",
                f[11]
            );
            let target = first_of.get(&f[11]).expect("first member listed");
            assert_eq!(
                name_and_link,
                format!("{name} link to ./{target}"),
                "{line}"
            );
        } else {
            assert!(mode.starts_with(kind_letter), "{line} vs {}", r.line());
            let want = match f[1].as_str() {
                "symlink" => {
                    let t = tree_link(&tree, raw);
                    format!("{name} -> {}", tar_quote(&t))
                }
                _ => name.clone(),
            };
            assert_eq!(name_and_link, want, "{line}");
            let want_size = match f[1].as_str() {
                "file" => f[4].clone(),
                "char" | "block" => f[9].clone(),
                _ => "0".into(),
            };
            assert_eq!(size, want_size, "{line}");
        }
        if f[11] == f[0] {
            first_of.insert(f[0].clone(), tar_quote(raw));
        }
        assert_eq!(owner, f[3].replace(':', "/"), "{line}");
        let perm = u32::from_str_radix(&f[2], 8).expect("perm");
        assert_eq!(perm_of(mode), perm, "{line}");
        // xattr lines ("  x: SIZE NAME") for the entry.
        let mut want_x: Vec<String> = if f[13] == "-" {
            Vec::new()
        } else {
            f[13]
                .split(',')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("k=v");
                    format!("x: {} {k}", v.len() / 2)
                })
                .collect()
        };
        let mut got_x = Vec::new();
        while let Some(l) = lines.peek() {
            let t = l.trim_start();
            if t.starts_with("x: ") {
                got_x.push(t.to_string());
            } else if !t.starts_with("a: ") {
                break;
            }
            lines.next();
        }
        if !is_link {
            want_x.sort();
            got_x.sort();
            assert_eq!(got_x, want_x, "xattrs of {}", f[0]);
        }
        checked += 1;
    }
    assert!(lines.next().is_none(), "extra lines in the listing");
    assert!(checked > rich::MANY);

    // 2. GNU tar extraction (root) against the source.
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let st = Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "--numeric-owner",
            "--sparse",
            "-xpf",
        ])
        .arg(&tarf)
        .arg("-C")
        .arg(&out_dir)
        .output()
        .expect("tar -x");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let opts = ManifestOptions {
        atime: false,
        ctime: false,
        crtime: false,
        flags: false,
        hash: true,
    };
    let want: Vec<String> = records(&tree, opts)
        .iter()
        .filter(|r| r.fields[1] != "socket")
        .map(Record::line)
        .collect();
    let got: Vec<String> = records(&Host(out_dir.clone()), opts)
        .iter()
        .map(Record::line)
        .collect();
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(g, w, "extracted entry differs");
    }
    assert_eq!(got.len(), want.len());
    let sparse = std::fs::metadata(out_dir.join("sparse")).expect("stat");
    assert_eq!(sparse.len(), 100 << 20);
    assert!(
        sparse.blocks() * 512 < 1 << 20,
        "the extracted sparse file is not sparse: {} blocks",
        sparse.blocks()
    );
}

fn raw_paths(t: &ExtTree<RawFile>) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    t.walk(b"", &mut |e, _| {
        v.push(e.path.clone());
        Ok(())
    })
    .expect("walk");
    v
}

fn tree_link(t: &ExtTree<RawFile>, path: &[u8]) -> Vec<u8> {
    t.entry(path).expect("entry").link_target.expect("target")
}

fn perm_of(mode: &str) -> u32 {
    let b: Vec<char> = mode.chars().collect();
    let mut p = 0;
    let bits = [
        (1, 'r', 0o400),
        (2, 'w', 0o200),
        (4, 'r', 0o040),
        (5, 'w', 0o020),
        (7, 'r', 0o004),
        (8, 'w', 0o002),
    ];
    for (i, c, v) in bits {
        if b[i] == c {
            p |= v;
        }
    }
    for (i, x, special) in [(3, 0o100, 0o4000), (6, 0o010, 0o2000), (9, 0o001, 0o1000)] {
        match b[i] {
            'x' => p |= x,
            's' | 't' => p |= x | special,
            'S' | 'T' => p |= special,
            _ => {}
        }
    }
    p
}

#[test]
fn ext4_export_lists_and_extracts_with_gnu_tar() {
    roundtrip(Flavour::Ext4, "ext4_export_lists_and_extracts_with_gnu_tar");
}

#[test]
fn ext2_export_lists_and_extracts_with_gnu_tar() {
    roundtrip(Flavour::Ext2, "ext2_export_lists_and_extracts_with_gnu_tar");
}
