//! Test helpers: a [`Guest`] over a host directory (a temporary one filled by the test, the
//! files taken from the cached Debian image in `testdata/debian12-etc`, or the test
//! machine's own `/`), and lookups in expansions.

use crate::ops::customize::op::{EntryKind, FileOp, Guest};
use std::path::{Path, PathBuf};

/// The installed system under a host directory, read without following a symlink out of it
/// (absolute link targets are read relative to the directory).
pub struct DirGuest {
    root: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl DirGuest {
    /// An empty system in a temporary directory.
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        DirGuest {
            root: tmp.path().to_path_buf(),
            _tmp: Some(tmp),
        }
    }

    /// The system under `root` (read-only use).
    pub fn at(root: &Path) -> Self {
        DirGuest {
            root: root.to_path_buf(),
            _tmp: None,
        }
    }

    /// With a file at `path` (its directories created).
    pub fn file(self, path: &str, content: &[u8]) -> Self {
        let p = self.host(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    /// With a directory at `path`.
    pub fn dir(self, path: &str) -> Self {
        std::fs::create_dir_all(self.host(path)).unwrap();
        self
    }

    /// With a symlink at `path`.
    pub fn symlink(self, target: &str, path: &str) -> Self {
        let p = self.host(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
        self
    }

    fn host(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// `path` with its symlinks resolved inside the root (`None`: dangling or a loop).
    fn resolve(&self, path: &str) -> Option<PathBuf> {
        let mut at = String::new();
        let mut rest: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(String::from)
            .collect();
        let mut hops = 0;
        while let Some(c) = rest.pop() {
            if c == "." {
                continue;
            }
            if c == ".." {
                at.truncate(at.rfind('/').unwrap_or(0));
                continue;
            }
            let next = format!("{at}/{c}");
            match std::fs::read_link(self.host(&next)) {
                Ok(target) => {
                    hops += 1;
                    if hops > 40 {
                        return None;
                    }
                    let t = target.to_str()?.to_string();
                    if t.starts_with('/') {
                        at.clear();
                    }
                    rest.extend(
                        t.split('/')
                            .filter(|c| !c.is_empty())
                            .rev()
                            .map(String::from),
                    );
                }
                Err(_) => at = next,
            }
        }
        Some(self.host(&at))
    }
}

impl Guest for DirGuest {
    fn read(&self, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match self.resolve(path) {
            Some(p) if p.is_file() => Ok(Some(std::fs::read(p)?)),
            _ => Ok(None),
        }
    }

    fn list(&self, dir: &str) -> anyhow::Result<Option<Vec<String>>> {
        match self.resolve(dir) {
            Some(p) if p.is_dir() => {
                let mut names: Vec<String> = std::fs::read_dir(p)?
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                Ok(Some(names))
            }
            _ => Ok(None),
        }
    }

    fn exists(&self, path: &str) -> anyhow::Result<bool> {
        Ok(self.host(path).symlink_metadata().is_ok())
    }

    fn kind(&self, path: &str) -> anyhow::Result<Option<EntryKind>> {
        let (dir, name) = path.rsplit_once('/').unwrap();
        let Some(at) = self.resolve(dir) else {
            return Ok(None);
        };
        Ok(at.join(name).symlink_metadata().ok().map(|m| {
            let t = m.file_type();
            if t.is_symlink() {
                EntryKind::Symlink
            } else if t.is_dir() {
                EntryKind::Dir
            } else if t.is_file() {
                EntryKind::File
            } else {
                EntryKind::Other
            }
        }))
    }
}

/// The real Debian 12 system files of `testdata/debian12-etc` (taken from the cached test
/// image with `subroot cat`), the ones named, in a temporary system.
pub fn sample(paths: &[&str]) -> DirGuest {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/debian12-etc");
    let mut g = DirGuest::new();
    for p in paths {
        let content = std::fs::read(dir.join(p.trim_start_matches('/'))).unwrap();
        g = g.file(p, &content);
    }
    g
}

/// The content the last `Write` of `path` in `ops` leaves (panics if none).
pub fn written(ops: &[FileOp], path: &str) -> Vec<u8> {
    ops.iter()
        .rev()
        .find_map(|op| match op {
            FileOp::Write {
                path: p, content, ..
            } if p == path => Some(content.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no write of {path} in {ops:#?}"))
}
