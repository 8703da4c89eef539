//! Writing any tree into a new ext2/3/4 filesystem image as an ordinary user, losing
//! nothing: e2fsprogs builds it, and this module makes the result exact.
//!
//! [`build`] runs four steps in a private temporary directory (removed afterwards, also on
//! error):
//! 1. **populate** — `mke2fs -d` builds the filesystem into an image file of exactly the
//!    requested size, with the requested [`Identity`] and a private mke2fs.conf, from
//!    either a pax archive of the tree streamed into its stdin ([`tarfeed`], when the
//!    mke2fs reads tar: [`E2fsprogs::tar_input`]) or a staging copy of the tree in a host
//!    directory ([`staging`]); [`Populate`] chooses;
//! 2. **reconcile** — the image is read back and every difference from the tree (owners,
//!    modes, ns times, xattrs, flags, device nodes) is fixed by one debugfs script;
//! 3. **index** — `e2fsck -fyD` indexes large directories;
//! 4. **verify** — the image is compared with the tree again (contents by length and
//!    128-bit XXH3 hash of the bytes the populate step read), its identity with the
//!    requested one, and `e2fsck -fn` must be clean.
//!
//! Memory stays bounded whatever the tree's size: the populate step's walk records each
//! entry in a spool file in the work directory (`spool.rs`, sorted on disk when the source
//! is not already in the image's walk order), and reconcile and verify are each one
//! merge-join pass of the image's walk against it. What grows is the depth of the tree
//! and the number of hard-linked inodes (their groups are kept in maps).
//!
//! The caller puts the image into its partition (e.g. with [`subroot_formats::block::Splice`]).
//!
//! Edits of an existing filesystem where it lies are the in-process editor's
//! (`subroot-libext2fs`); this crate builds filesystems anew.

mod debugfs;
mod identity;
mod reconcile;
mod record;
mod spool;
mod staging;
mod sum;
mod tarfeed;
mod verify;
mod view;

pub use debugfs::quote as debugfs_quote;
pub use identity::{default_features, parse_uuid, uuid_string, Identity};
pub use reconcile::{encode_dev, encode_time, ReconcileStats, USER_FLAGS};
pub use staging::StageStats;
pub use verify::fsck_clean;

use crate::tools::{self, E2fsprogs};
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use subroot_formats::block::RawFile;
use subroot_formats::tree::TreeSource;
use view::{Shape, View};

/// How the filesystem is populated before reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Populate {
    /// The tar path when the mke2fs reads tar ([`E2fsprogs::tar_input`]), else staging.
    #[default]
    Auto,
    /// A staging copy in a host directory (`mke2fs -d DIR`).
    Staging,
    /// A pax archive on mke2fs's stdin (`mke2fs -d -`); an error when it cannot read one.
    Tar,
}

impl std::str::FromStr for Populate {
    type Err = Error;

    /// `auto` (or empty), `staging` or `tar`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "" | "auto" => Ok(Populate::Auto),
            "staging" => Ok(Populate::Staging),
            "tar" => Ok(Populate::Tar),
            other => Err(Error::InvalidArgument(format!(
                "the populate path must be `staging`, `tar` or `auto`, not {other:?}"
            ))),
        }
    }
}

impl Populate {
    /// The path [`build`] takes with `tools` (resolving [`Populate::Auto`]).
    pub fn resolve(self, tools: &E2fsprogs) -> Result<Populate> {
        let chosen = match self {
            Populate::Auto if tools.tar_input => Populate::Tar,
            Populate::Auto => Populate::Staging,
            p => p,
        };
        if chosen == Populate::Tar && !tools.tar_input {
            return Err(Error::NoTarInput {
                mke2fs: tools.mke2fs.clone(),
                version: tools.version_string(),
            });
        }
        Ok(chosen)
    }
}

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
    /// How to populate the filesystem.
    pub populate: Populate,
}

/// Totals of a build.
#[derive(Debug, Default, Clone, Copy)]
pub struct BuildReport {
    /// The populate path taken ([`Populate::Staging`] or [`Populate::Tar`]).
    pub populate: Populate,
    /// What the populate step wrote.
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
        Ok(RawFile::open(&self.path)?)
    }
}

/// Build a filesystem holding the tree under `root` of `tree`: `opts.size` bytes (the
/// partition), or — when the identity fixes the size (`Identity::like` a filesystem
/// smaller than its partition) — that size, which must fit in `opts.size`. The image
/// may thus be shorter than the partition; the bytes after it are not the
/// filesystem's.
pub fn build(tree: &dyn TreeSource, root: &[u8], opts: &BuildOptions) -> Result<BuiltFs> {
    let size = match opts.identity.fs_bytes() {
        Some(fs) if fs > opts.size => {
            return Err(Error::InvalidArgument(format!(
                "the filesystem is {fs} bytes, larger than its {}-byte partition",
                opts.size
            )))
        }
        Some(fs) => fs,
        None => opts.size,
    };
    if size < 64 * 1024 {
        return Err(Error::InvalidArgument(format!(
            "a {size}-byte filesystem is too small (at least 64 KiB)"
        )));
    }
    let note = |s: &str| {
        if let Some(p) = opts.progress {
            p(s)
        }
    };
    let (dir, work, image) = work_dir(opts.temp_dir, "subroot-mkfs.")?;
    let mut report = BuildReport {
        populate: opts.populate.resolve(opts.tools)?,
        ..Default::default()
    };
    let f = std::fs::File::create(&image)
        .map_err(|e| Error::io(format!("cannot create {}", image.display()), e))?;
    f.set_len(size)
        .map_err(|e| Error::io(format!("cannot size {}", image.display()), e))?;
    drop(f);

    let intended = if report.populate == Populate::Tar {
        note("running mke2fs -d - (the tree as a tar archive on its stdin)");
        let view = View::new(tree, root, Shape::Tar, &work)?;
        let mut c = mke2fs_command(opts, &work, "-".as_ref(), &image)?;
        c.env("LC_ALL", tools::TAR_LOCALE);
        tarfeed::populate(&view, &mut c, &mut report.stage)?;
        view.into_intended()?
    } else {
        note("staging the tree");
        let staging_dir = work.join("staging");
        std::fs::create_dir(&staging_dir)
            .map_err(|e| Error::io(format!("cannot create {}", staging_dir.display()), e))?;
        let view = View::new(tree, root, Shape::Staging, &work)?;
        staging::stage(&view, &staging_dir, &mut report.stage)?;
        let intended = view.into_intended()?;
        note("running mke2fs -d");
        let mut c = mke2fs_command(opts, &work, staging_dir.as_os_str(), &image)?;
        tools::run(&mut c, "mke2fs", &[0])?;
        remove_staging(&staging_dir);
        intended
    };

    note("reconciling ownership, modes, times, xattrs and devices");
    report.reconcile = reconcile::reconcile(opts.tools, &image, &intended, &opts.identity, &work)?;

    note("indexing directories (e2fsck -fyD)");
    let mut c = opts.tools.command(&opts.tools.e2fsck);
    c.arg("-fyD").arg(&image);
    tools::run(&mut c, "e2fsck -fyD (indexing directories)", &[0, 1])?;

    note("verifying");
    let diffs = verify::final_checks(intended, opts.tools, &image, &opts.identity)?;
    if !diffs.is_empty() {
        return Err(Error::VerifyFailed(format!(
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

/// A private temporary directory named `prefix…` (in `temp_dir`, else the system's),
/// its path, and the path of the image file to make in it.
fn work_dir(
    temp_dir: Option<&Path>,
    prefix: &str,
) -> Result<(tempfile::TempDir, PathBuf, PathBuf)> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    let dir = match temp_dir {
        Some(d) => b.tempdir_in(d),
        None => b.tempdir(),
    }
    .map_err(|e| Error::io("cannot create a temporary directory", e))?;
    let work = dir.path().to_path_buf();
    let image = work.join("fs.img");
    Ok((dir, work, image))
}

/// The mke2fs command with the identity's arguments and the private configuration,
/// populating from `src` (a directory, or `-` for a tar archive on stdin).
fn mke2fs_command(
    opts: &BuildOptions,
    work: &Path,
    src: &std::ffi::OsStr,
    image: &Path,
) -> Result<std::process::Command> {
    let conf = work.join("mke2fs.conf");
    std::fs::write(&conf, Identity::private_config())
        .map_err(|e| Error::io(format!("cannot write {}", conf.display()), e))?;
    let mut c = opts.tools.command(&opts.tools.mke2fs);
    c.env("MKE2FS_CONFIG", &conf)
        .env_remove("MKE2FS_SYNC")
        .env_remove("MKE2FS_DEVICE_SECTSIZE");
    c.args(opts.identity.mke2fs_args(opts.tools.version)?);
    c.arg("-d").arg(src).arg(image);
    Ok(c)
}

/// Remove the staging copy (its directories may have been made read-only by nobody but
/// us, so a plain recursive removal suffices; failures only leave litter in the
/// temporary directory, which is removed as a whole later).
fn remove_staging(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(tar_input: bool) -> E2fsprogs {
        E2fsprogs {
            mke2fs: PathBuf::from("/nonexistent/mke2fs"),
            debugfs: PathBuf::from("/nonexistent/debugfs"),
            e2fsck: PathBuf::from("/nonexistent/e2fsck"),
            resize2fs: None,
            dumpe2fs: PathBuf::from("/nonexistent/dumpe2fs"),
            version: (1, 47, 0),
            tar_input,
            stdbuf: None,
            clock: None,
        }
    }

    #[test]
    fn explicit_populate_paths() {
        assert_eq!(
            Populate::Staging.resolve(&tools(true)).unwrap(),
            Populate::Staging
        );
        assert_eq!(Populate::Tar.resolve(&tools(true)).unwrap(), Populate::Tar);
        let e = Populate::Tar
            .resolve(&tools(false))
            .unwrap_err()
            .to_string();
        assert!(e.contains("1.47.1") && e.contains("1.47.0"), "{e}");
        assert_eq!(
            Populate::Auto.resolve(&tools(false)).unwrap(),
            Populate::Staging
        );
        assert_eq!(Populate::Auto.resolve(&tools(true)).unwrap(), Populate::Tar);
    }

    #[test]
    fn populate_names() {
        assert_eq!("".parse::<Populate>().unwrap(), Populate::Auto);
        assert_eq!("tar".parse::<Populate>().unwrap(), Populate::Tar);
        assert_eq!("staging".parse::<Populate>().unwrap(), Populate::Staging);
        assert!(matches!(
            "fast".parse::<Populate>(),
            Err(Error::InvalidArgument(_))
        ));
    }
}
