//! Atomic output files: everything is written to a temporary file beside the target and
//! renamed into place only when complete and checked, so an interrupted run never leaves
//! a half-written file under the final name and never touches the input.
//!
//! Temporary names are `.NAME.subroot-tmp-PID` (obviously temporary, one per process).
//! Scratch directories ([`ScratchDir`]) are removed the same ways, except after SIGKILL.
//! They are removed when the writer is dropped, by the SIGINT/SIGTERM handler, and — if a
//! run was killed with SIGKILL — by the next run writing the same target, once no live
//! process owns them.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files of this process, removed by the signal handler.
static LIVE_TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Scratch directories of this process, removed by the signal handler.
static LIVE_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Install the SIGINT/SIGTERM/SIGHUP handler: remove our temporary files and scratch
/// directories (a filesystem being built or edited can be gigabytes), exit 130.
pub fn install_signal_cleanup() {
    let _ = ctrlc::set_handler(|| {
        let temps = LIVE_TEMPS.lock().unwrap_or_else(|e| e.into_inner());
        for t in temps.iter() {
            let _ = std::fs::remove_file(t);
        }
        let dirs = LIVE_DIRS.lock().unwrap_or_else(|e| e.into_inner());
        for d in dirs.iter() {
            let _ = std::fs::remove_dir_all(d);
        }
        eprintln!("subroot: interrupted; temporary output removed");
        std::process::exit(130);
    });
}

/// The process's scratch root (`$TMPDIR/subroot.XXXXXX`), made on first use: where
/// commands that build filesystems keep them until they are written out. Removed by
/// [`remove_scratch_root`] (at the end of `main`) and by the signal handler.
static SCRATCH_ROOT: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The scratch root, made now if needed.
pub fn scratch_root() -> Result<PathBuf> {
    let mut root = SCRATCH_ROOT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = root.as_ref() {
        return Ok(p.clone());
    }
    let d = ScratchDir::new("subroot.")?;
    let p = d.path.clone();
    std::mem::forget(d); // kept registered until remove_scratch_root
    *root = Some(p.clone());
    Ok(p)
}

/// Remove the scratch root, if one was made.
pub fn remove_scratch_root() {
    let taken = SCRATCH_ROOT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(p) = taken {
        drop(ScratchDir { path: p });
    }
}

/// A private scratch directory (initrd copies, a filesystem being built or edited):
/// removed when dropped, also on error, and by the signal handler.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// A new directory `PREFIX…` under `$TMPDIR`.
    pub fn new(prefix: &str) -> Result<Self> {
        let t = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .context("cannot create a temporary directory (set TMPDIR to a directory with room)")?;
        Ok(Self::register(t.keep()))
    }

    /// The directory `at`, created afresh (a leftover of a killed run is removed first).
    pub fn at(at: &Path) -> Result<Self> {
        if std::fs::symlink_metadata(at).is_ok() {
            std::fs::remove_dir_all(at)
                .with_context(|| format!("cannot remove the leftover {}", at.display()))?;
        }
        std::fs::create_dir(at)
            .with_context(|| format!("cannot create the work directory {}", at.display()))?;
        Ok(Self::register(at.to_path_buf()))
    }

    fn register(path: PathBuf) -> Self {
        LIVE_DIRS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path.clone());
        ScratchDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        LIVE_DIRS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|d| d != &self.path);
    }
}

/// An output file being written under a temporary name.
#[derive(Debug)]
pub struct AtomicOutput {
    dest: PathBuf,
    tmp: PathBuf,
    file: File,
    committed: bool,
}

const TMP_MARK: &str = ".subroot-tmp-";

impl AtomicOutput {
    /// Start writing `dest`. Fails if it exists, unless `force`.
    pub fn create(dest: &Path, force: bool) -> Result<Self> {
        // Only regular files are replaced: renaming a temporary file over /dev/null, a
        // device or a fifo would replace the node itself (as root, a system-wide harm).
        if let Ok(m) = dest.metadata() {
            if !m.file_type().is_file() {
                bail!(
                    "{} is not a regular file (subroot writes outputs to a temporary file and \
                     renames it into place; to stream, use `-o -` where the command allows it)",
                    dest.display()
                );
            }
        }
        if !force && dest.symlink_metadata().is_ok() {
            bail!(
                "{} already exists (use --force to replace it)",
                dest.display()
            );
        }
        let name = dest
            .file_name()
            .with_context(|| format!("{} does not name a file", dest.display()))?
            .to_string_lossy()
            .into_owned();
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        remove_stale_temps(&dir, &name);
        let tmp = dir.join(format!(".{name}{TMP_MARK}{}", std::process::id()));
        LIVE_TEMPS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tmp.clone());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .with_context(|| format!("cannot create the temporary file {}", tmp.display()))?;
        Ok(AtomicOutput {
            dest: dest.to_path_buf(),
            tmp,
            file,
            committed: false,
        })
    }

    /// The file being written.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The temporary path (for re-opening the output to check it before the rename).
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// Flush to disk and rename over the destination.
    pub fn commit(mut self) -> Result<()> {
        self.file
            .sync_all()
            .with_context(|| format!("cannot sync {}", self.tmp.display()))?;
        std::fs::rename(&self.tmp, &self.dest).with_context(|| {
            format!(
                "cannot rename {} to {}",
                self.tmp.display(),
                self.dest.display()
            )
        })?;
        if let Some(dir) = self.dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.committed = true;
        unregister(&self.tmp);
        Ok(())
    }
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
            unregister(&self.tmp);
        }
    }
}

fn unregister(tmp: &Path) {
    LIVE_TEMPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|t| t != tmp);
}

/// Remove `.NAME.subroot-tmp-PID` files in `dir` whose process no longer exists.
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}{TMP_MARK}");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let fname = e.file_name();
        let Some(pid) = fname.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn dropped_output_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out.img");
        {
            let o = AtomicOutput::create(&dest, false).unwrap();
            o.file().write_all(b"half").unwrap();
            assert!(o.temp_path().exists());
        }
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn commit_renames_and_refuses_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out.img");
        let o = AtomicOutput::create(&dest, false).unwrap();
        o.file().write_all(b"whole").unwrap();
        o.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"whole");
        assert!(AtomicOutput::create(&dest, false).is_err());
        assert!(AtomicOutput::create(&dest, true).is_ok());
    }

    #[test]
    fn stale_temps_of_dead_processes_are_removed() {
        let d = tempfile::tempdir().unwrap();
        // PID 0 is never a live process we could confuse with a real writer.
        let stale = d.path().join(".out.img.subroot-tmp-999999999");
        std::fs::write(&stale, b"x").unwrap();
        let _o = AtomicOutput::create(&d.path().join("out.img"), false).unwrap();
        assert!(!stale.exists());
    }
}
