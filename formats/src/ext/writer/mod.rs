//! Writing any tree into a new ext2/3/4 filesystem image as an ordinary user, losing
//! nothing: e2fsprogs builds it, and this module makes the result exact.
//!
//! [`build`] runs four steps in a private temporary directory (removed afterwards, also on
//! error):
//! 1. **populate** — the tree is staged into a host directory ([`staging`]) and
//!    `mke2fs -d` builds the filesystem into an image file of exactly the requested size,
//!    with the requested [`Identity`] and a private mke2fs.conf;
//! 2. **reconcile** — the image is read back and every difference from the tree (owners,
//!    modes, ns times, xattrs, flags, device nodes) is fixed by one debugfs script;
//! 3. **index** — `e2fsck -fyD` indexes large directories;
//! 4. **verify** — the image is compared with the tree again (contents byte for byte),
//!    its identity with the requested one, and `e2fsck -fn` must be clean.
//!
//! The caller puts the image into its partition (e.g. with [`crate::block::Splice`]).

mod debugfs;
mod identity;
mod readback;
mod reconcile;
mod staging;
mod verify;

pub use debugfs::quote as debugfs_quote;
pub use identity::{default_features, parse_uuid, uuid_string, Identity};
pub use readback::{ExtContent, ExtWalk};
pub use reconcile::{encode_dev, encode_time, ReconcileStats, USER_FLAGS};
pub use staging::StageStats;

use crate::block::RawFile;
use crate::ext::ExtFs;
use crate::tools::{self, E2fsprogs};
use crate::tree::TreeSource;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// How to build a filesystem.
pub struct BuildOptions<'a> {
    /// The image size in bytes (the partition's size).
    pub size: u64,
    /// The identity to give it (see [`Identity::like`] and [`Identity::fresh`]).
    pub identity: Identity,
    /// The e2fsprogs to use.
    pub tools: &'a E2fsprogs,
    /// Where to make the temporary directory (default: the system's).
    pub temp_dir: Option<&'a Path>,
    /// Called with a short description as each step starts.
    pub progress: Option<&'a dyn Fn(&str)>,
}

/// Totals of a build.
#[derive(Debug, Default, Clone, Copy)]
pub struct BuildReport {
    pub stage: StageStats,
    pub reconcile: ReconcileStats,
}

/// A built filesystem image in a private temporary directory, deleted on drop.
pub struct BuiltFs {
    dir: tempfile::TempDir,
    path: PathBuf,
    /// What was done.
    pub report: BuildReport,
}

impl std::fmt::Debug for BuiltFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltFs").field("path", &self.path).finish()
    }
}

impl BuiltFs {
    /// The image file (exactly `size` bytes).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary directory holding it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Open the image as a block device.
    pub fn open(&self) -> Result<RawFile> {
        RawFile::open(&self.path)
    }
}

/// Build a filesystem of `opts.size` bytes holding the tree under `root` of `tree`.
pub fn build(tree: &dyn TreeSource, root: &[u8], opts: &BuildOptions) -> Result<BuiltFs> {
    if opts.size < 64 * 1024 {
        return Err(Error::InvalidArgument(format!(
            "a {}-byte filesystem is too small (at least 64 KiB)",
            opts.size
        )));
    }
    let note = |s: &str| {
        if let Some(p) = opts.progress {
            p(s)
        }
    };
    let mut b = tempfile::Builder::new();
    b.prefix("subroot-mkfs.");
    let dir = match opts.temp_dir {
        Some(d) => b.tempdir_in(d),
        None => b.tempdir(),
    }
    .map_err(|e| Error::io("cannot create a temporary directory", e))?;
    let work = dir.path().to_path_buf();
    let staging_dir = work.join("staging");
    let image = work.join("fs.img");
    let mut report = BuildReport::default();

    note("staging the tree");
    std::fs::create_dir(&staging_dir)
        .map_err(|e| Error::io(format!("cannot create {}", staging_dir.display()), e))?;
    let intended = staging::stage(tree, root, &staging_dir, &mut report.stage)?;

    note("running mke2fs -d");
    let f = std::fs::File::create(&image)
        .map_err(|e| Error::io(format!("cannot create {}", image.display()), e))?;
    f.set_len(opts.size)
        .map_err(|e| Error::io(format!("cannot size {}", image.display()), e))?;
    drop(f);
    run_mke2fs(opts, &work, Some(&staging_dir), &image)?;
    remove_staging(&staging_dir);

    note("reconciling ownership, modes, times, xattrs and devices");
    report.reconcile = reconcile::reconcile(opts.tools, &image, &intended, &opts.identity, &work)?;

    note("indexing directories (e2fsck -fyD)");
    let mut c = tools::command(&opts.tools.e2fsck);
    c.arg("-fyD").arg(&image);
    tools::run(&mut c, "e2fsck -fyD (indexing directories)", &[0, 1])?;

    note("verifying");
    verify::verify_tree(tree, root, &intended, &image)?;
    drop(intended);
    verify::fsck_clean(opts.tools, &image)?;
    let built = Identity::like(&ExtFs::open(RawFile::open(&image)?)?)?;
    let diffs = opts.identity.differences(&built);
    if !diffs.is_empty() {
        return Err(Error::unsupported(format!(
            "mke2fs did not reproduce the filesystem's identity: {}",
            diffs.join("; ")
        )));
    }
    Ok(BuiltFs {
        dir,
        path: image,
        report,
    })
}

/// Run mke2fs with the identity's arguments and the private configuration.
fn run_mke2fs(opts: &BuildOptions, work: &Path, src: Option<&Path>, image: &Path) -> Result<()> {
    let conf = work.join("mke2fs.conf");
    std::fs::write(&conf, Identity::private_config())
        .map_err(|e| Error::io(format!("cannot write {}", conf.display()), e))?;
    let mut c = tools::command(&opts.tools.mke2fs);
    c.env("MKE2FS_CONFIG", &conf)
        .env_remove("MKE2FS_SYNC")
        .env_remove("MKE2FS_DEVICE_SECTSIZE");
    c.args(opts.identity.mke2fs_args(opts.tools.version)?);
    if let Some(d) = src {
        c.arg("-d").arg(d);
    }
    c.arg(image);
    tools::run(&mut c, "mke2fs", &[0])?;
    Ok(())
}

/// Remove the staging copy (its directories may have been made read-only by nobody but
/// us, so a plain recursive removal suffices; failures only leave litter in the
/// temporary directory, which is removed as a whole later).
fn remove_staging(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}
