//! [`FatVolume`]: a FAT filesystem opened for writing — copy a tree in
//! ([`FatVolume::put_tree`]), remove paths ([`FatVolume::remove`]).
//!
//! Mapping from the tree model (the reverse of [`super::FatTree`]'s):
//! * names must be valid UTF-8 and valid long names; FAT compares names ignoring case, so
//!   two entries differing only in case are refused;
//! * directories and regular files only: symlinks, devices, fifos, sockets and second and
//!   later names of a hard-linked file are refused, naming the path;
//! * the read-only attribute is set when the owner-write bit (0200) is clear; files get
//!   the archive attribute; owners, other permission bits and xattrs are dropped;
//! * times are written as UTC (see [`super::time`]): mtime (2 s), crtime or else mtime as
//!   creation time (10 ms), atime's date as access date.
//!
//! `fatfs` 0.3 cannot set attributes or directory times, so they are patched into the
//! 32-byte entries afterwards ([`super::raw`]) through the same write-through cache.

use super::format::label_string;
use super::io::{FatIo, Shared};
use super::raw::{self, Geometry};
use super::read::fat_err;
use super::time::{encode_date, encode_time, to_fat};
use super::{guard, FatType};
use crate::block::BlockDevice;
use crate::tree::{relative, Entry, Kind, Timestamp, TreeSource};
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::sync::Arc;

type Fs<D> = fatfs::FileSystem<FatIo<D>>;

/// The time `fatfs` stamps on entries it creates or changes (as UTC; see [`super::time`]).
#[derive(Debug)]
struct UtcNow;

static NOW: UtcNow = UtcNow;

impl fatfs::TimeProvider for UtcNow {
    fn get_current_date(&self) -> fatfs::Date {
        self.get_current_date_time().date
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        to_fat(crate::tree::Timestamp {
            sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nsec: d.subsec_nanos(),
        })
    }
}
type Dir<'a, D> = fatfs::Dir<'a, FatIo<D>>;

/// Totals of a [`FatVolume::put_tree`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PutStats {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// Existing files that were overwritten.
    pub replaced: u64,
}

/// A FAT filesystem open for reading and writing.
pub struct FatVolume<D: BlockDevice> {
    shared: Arc<Shared<D>>,
    fs: Option<Fs<D>>,
    geo: Geometry,
    broken: bool,
}

impl<D: BlockDevice> std::fmt::Debug for FatVolume<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FatVolume").field("geo", &self.geo).finish()
    }
}

fn show(p: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(p))
}

fn utf8(p: &[u8]) -> Result<&str> {
    std::str::from_utf8(p).map_err(|_| {
        Error::unsupported(format!(
            "fat: {:?}: FAT names are Unicode; this one is not valid UTF-8",
            show(p)
        ))
    })
}

/// Split a path into its non-empty components, refusing `.` and `..`.
fn components(p: &[u8]) -> Result<Vec<&[u8]>> {
    let v: Vec<&[u8]> = p.split(|&b| b == b'/').filter(|c| !c.is_empty()).collect();
    if v.iter().any(|c| *c == b"." || *c == b"..") {
        return Err(Error::InvalidArgument(format!(
            "fat: {:?} has a `.` or `..` component",
            show(p)
        )));
    }
    Ok(v)
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut p = a.to_vec();
    if !p.is_empty() && !b.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(b);
    p
}

impl<D: BlockDevice> FatVolume<D> {
    /// Open the FAT filesystem on `dev` (which must be writable for edits).
    pub fn open(dev: D) -> Result<Self> {
        let shared = Arc::new(Shared::new(dev));
        let geo = raw::geometry(&*shared)?;
        if geo.is_small_fat32() {
            return Err(Error::unsupported(format!(
                "fat: a FAT32 volume with only {} clusters (fewer than {}; `mkfs.fat -F 32` \
                 makes these on small devices) is read but not written: the FAT library subroot \
                 writes with would take it for FAT16",
                geo.clusters,
                raw::FAT32_MIN_CLUSTERS
            )));
        }
        // fatfs's own view must agree with ours (it also validates the BPB).
        let fs = guard("opening the filesystem", || {
            fatfs::FileSystem::new(
                FatIo::new(shared.clone()),
                fatfs::FsOptions::new()
                    .update_accessed_date(false)
                    .time_provider(&NOW),
            )
            .map_err(|e| fat_err("cannot open the filesystem", e))
        })?;
        if u8_of(fs.fat_type()) != geo.fat_bits {
            return Err(Error::corrupt(format!(
                "fat: the volume's FAT type is ambiguous (FAT{} by cluster count, fatfs says FAT{})",
                geo.fat_bits,
                u8_of(fs.fat_type())
            )));
        }
        if geo.fat_bits == 32 {
            geo.chain_len(
                &*shared,
                geo.root_cluster,
                65536 * 32 / u64::from(geo.cluster_bytes) + 1,
            )
            .map_err(|e| Error::corrupt(format!("fat: the root directory: {e}")))?;
        }
        Ok(FatVolume {
            shared,
            fs: Some(fs),
            geo,
            broken: false,
        })
    }

    /// The FAT width.
    pub fn fat_type(&self) -> FatType {
        FatType::from_bits(self.geo.fat_bits).unwrap_or(FatType::Fat32)
    }

    /// The volume id (serial number).
    pub fn volume_id(&self) -> u32 {
        self.geo.volume_id
    }

    /// The label: the root directory's label entry, else the boot sector's; `None` when
    /// blank or `NO NAME`.
    pub fn label(&self) -> Result<Option<String>> {
        let l = match raw::root_label(&*self.shared, &self.geo)? {
            Some((_, l)) => l,
            None => self.geo.bpb_label,
        };
        Ok(label_string(&l))
    }

    /// Bytes per cluster.
    pub fn cluster_size(&self) -> u32 {
        self.geo.cluster_bytes
    }

    fn fs(&self) -> Result<&Fs<D>> {
        if self.broken {
            return Err(Error::corrupt(
                "fat: an earlier operation found the filesystem corrupt; refusing to go on",
            ));
        }
        self.fs
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("fat: the volume is closed".into()))
    }

    /// What `path` is: `None` when missing, `Some(true)` for a directory (the root is
    /// one), `Some(false)` for a file. Names match ignoring case, as FAT does.
    pub fn kind(&mut self, path: &[u8]) -> Result<Option<bool>> {
        let r = guard("looking up a path", || {
            let fs = self.fs()?;
            let comps = components(path)?;
            let mut dir = fs.root_dir();
            for (i, c) in comps.iter().enumerate() {
                let Some(e) = find(&dir, c, path)? else {
                    return Ok(None);
                };
                if i + 1 == comps.len() {
                    return Ok(Some(e.is_dir()));
                }
                if !e.is_dir() {
                    return Ok(None);
                }
                dir = e.to_dir();
            }
            Ok(Some(true))
        });
        self.note(r)
    }

    fn note<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(Error::Corrupt(_)) = &r {
            self.broken = true;
        }
        r
    }

    /// Copy the tree under `root` of `tree` to `dest` (created with its parents as
    /// needed): directories are merged, files created or overwritten, metadata set as the
    /// module comment says. The tree's `root` entry itself becomes `dest` (its metadata is
    /// applied unless `dest` is the volume's root).
    pub fn put_tree(
        &mut self,
        tree: &dyn TreeSource,
        root: &[u8],
        dest: &[u8],
    ) -> Result<PutStats> {
        let r = guard("writing files", || self.put_tree_inner(tree, root, dest));
        let r = self.note(r);
        if r.is_err() {
            // Make what was written consistent on disk anyway (FSInfo, dirty flag).
            let _ = self.remount();
        }
        r
    }

    fn put_tree_inner(
        &mut self,
        tree: &dyn TreeSource,
        root: &[u8],
        dest: &[u8],
    ) -> Result<PutStats> {
        let dest_comps: Vec<Vec<u8>> = components(dest)?.iter().map(|c| c.to_vec()).collect();
        let dest = dest_comps.join(&b'/');
        let mut stats = PutStats::default();
        // (path in the volume, metadata) of directories, patched once all is written
        // (adding entries must not disturb them).
        let mut seen: HashSet<String> = HashSet::new();
        let mut links: HashMap<u64, Vec<u8>> = HashMap::new();
        // Attributes and times to set, by parent directory, once everything is written
        // (one raw pass over each directory then, instead of a lookup per entry).
        let mut patches: BTreeMap<Vec<u8>, Vec<Patch>> = BTreeMap::new();
        {
            let fs = self.fs()?;
            let geo = &self.geo;
            let shared = &*self.shared;
            let mut cache = DirCache {
                dirs: HashMap::new(),
                names: HashMap::new(),
            };
            tree.walk(root, &mut |e: &Entry, content| {
                let rel = relative(&e.path, root);
                let target = join(&dest, rel);
                if rel.is_empty() {
                    // The root entry lands at `dest`: create its parents (mkdir -p).
                    let mut done = Vec::new();
                    let n = dest_comps.len().saturating_sub(1);
                    for c in &dest_comps[..n] {
                        let parent = done.clone();
                        done = join(&done, c);
                        cache.ensure_dir(geo, shared, fs, &parent, c, &done, &mut stats)?;
                    }
                }
                let key = String::from_utf8_lossy(&target).to_lowercase();
                if !seen.insert(key) {
                    return Err(Error::unsupported(format!(
                        "fat: {} and another entry differ only in case; FAT cannot hold both",
                        show(&target)
                    )));
                }
                let (parent, name) = split_last(&target);
                let patch = Patch {
                    name: String::from_utf8_lossy(name).to_lowercase(),
                    path: target.clone(),
                    mtime: e.meta.mtime,
                    crtime: e.meta.crtime.unwrap_or(e.meta.mtime),
                    atime: e.meta.atime,
                    read_only: e.meta.perm & 0o200 == 0,
                    dir: e.kind == Kind::Dir,
                };
                match e.kind {
                    Kind::Dir => {
                        if !target.is_empty() {
                            cache.ensure_dir(geo, shared, fs, parent, name, &target, &mut stats)?;
                            patches.entry(parent.to_vec()).or_default().push(patch);
                        }
                        Ok(())
                    }
                    Kind::File => {
                        if let Some(id) = e.hardlink_id {
                            if let Some(first) = links.get(&id) {
                                return Err(Error::unsupported(format!(
                                    "fat: {} is a hard link to {}; FAT has no hard links",
                                    show(&target),
                                    show(first)
                                )));
                            }
                            links.insert(id, target.clone());
                        }
                        if target.is_empty() {
                            return Err(Error::InvalidArgument(
                                "fat: a file cannot replace the root directory".into(),
                            ));
                        }
                        let name_s = utf8(name).map_err(|_| {
                            Error::unsupported(format!("fat: {}: not valid UTF-8", show(&target)))
                        })?;
                        let pdir = cache.dir(geo, shared, fs, parent)?;
                        match cache.names(parent, &pdir)?.get(&patch.name) {
                            Some(true) => {
                                return Err(Error::InvalidArgument(format!(
                                    "fat: cannot overwrite directory {} with a file",
                                    show(&target)
                                )))
                            }
                            Some(false) => {
                                check_chain(geo, shared, fs, parent, name, &target)?;
                                stats.replaced += 1;
                            }
                            None => {}
                        }
                        let mut f = pdir.create_file(name_s).map_err(|err| {
                            fat_err(&format!("cannot create {}", show(&target)), err)
                        })?;
                        cache
                            .names(parent, &pdir)?
                            .insert(patch.name.clone(), false);
                        f.truncate().map_err(|err| {
                            fat_err(&format!("cannot truncate {}", show(&target)), err)
                        })?;
                        let n = match content {
                            Some(c) => io::copy(c, &mut f).map_err(|err| {
                                Error::io(format!("writing {}", show(&target)), err)
                            })?,
                            None => 0,
                        };
                        if n != e.size {
                            return Err(Error::corrupt(format!(
                                "fat: {}: the source gave {n} bytes, its size is {}",
                                show(&target),
                                e.size
                            )));
                        }
                        use std::io::Write;
                        f.flush().map_err(|err| {
                            fat_err(&format!("cannot write {}", show(&target)), err)
                        })?;
                        drop(f);
                        stats.files += 1;
                        stats.bytes += n;
                        patches.entry(parent.to_vec()).or_default().push(patch);
                        Ok(())
                    }
                    k => Err(Error::unsupported(format!(
                        "fat: {} is a {}; FAT holds only files and directories",
                        show(&target),
                        match k {
                            Kind::Symlink => "symlink",
                            Kind::CharDevice => "character device",
                            Kind::BlockDevice => "block device",
                            Kind::Fifo => "fifo",
                            _ => "socket",
                        }
                    ))),
                }
            })?;
            for (parent, list) in &patches {
                apply_patches(geo, shared, fs, parent, list)?;
            }
        }
        self.remount()?;
        Ok(stats)
    }

    /// Remove `path` (a file, or a directory: empty, or anything with `recursive`).
    /// A missing path, a non-empty directory without `recursive` and the root are errors.
    pub fn remove(&mut self, path: &[u8], recursive: bool) -> Result<()> {
        let r = guard("removing", || self.remove_inner(path, recursive));
        let r = self.note(r);
        let _ = self.remount();
        r
    }

    fn remove_inner(&mut self, path: &[u8], recursive: bool) -> Result<()> {
        let comps = components(path)?;
        let Some((last, parents)) = comps.split_last() else {
            return Err(Error::InvalidArgument(
                "fat: refusing to remove the root directory".into(),
            ));
        };
        let fs = self.fs()?;
        let geo = &self.geo;
        let shared = &*self.shared;
        let parent = parents.join(&b'/');
        let full = join(&parent, last);
        let pdir = open_dir(geo, shared, fs, &parent)?;
        let Some(e) = find(&pdir, last, &full)? else {
            return Err(Error::InvalidArgument(format!(
                "fat: {} does not exist",
                show(&full)
            )));
        };
        check_chain(geo, shared, fs, &parent, last, &full)?;
        let name = e.file_name();
        if e.is_dir() {
            let d = e.to_dir();
            let kids = list(&d, &full)?;
            if !kids.is_empty() {
                if !recursive {
                    return Err(Error::InvalidArgument(format!(
                        "fat: directory {} is not empty (remove it recursively)",
                        show(&full)
                    )));
                }
                remove_tree(geo, shared, fs, &full, 0)?;
            }
        }
        pdir.remove(&name)
            .map_err(|err| fat_err(&format!("cannot remove {}", show(&full)), err))
    }

    /// Unmount (writing FSInfo and clearing the dirty flag) and mount again.
    fn remount(&mut self) -> Result<()> {
        if let Some(fs) = self.fs.take() {
            guard("unmounting", || {
                fs.unmount().map_err(|e| fat_err("cannot unmount", e))
            })?;
        }
        self.shared.flush()?;
        if self.broken {
            return Ok(());
        }
        let shared = self.shared.clone();
        self.fs = Some(guard("opening the filesystem", || {
            fatfs::FileSystem::new(
                FatIo::new(shared),
                fatfs::FsOptions::new()
                    .update_accessed_date(false)
                    .time_provider(&NOW),
            )
            .map_err(|e| fat_err("cannot open the filesystem", e))
        })?);
        Ok(())
    }

    /// Write everything out (FSInfo, dirty flag, the device's caches).
    pub fn flush(&mut self) -> Result<()> {
        self.remount()
    }

    /// Close the volume and return the device.
    pub fn into_inner(mut self) -> Result<D> {
        if let Some(fs) = self.fs.take() {
            guard("unmounting", || {
                fs.unmount().map_err(|e| fat_err("cannot unmount", e))
            })?;
        }
        self.shared.flush()?;
        let shared = self.shared.clone();
        drop(self);
        match Arc::try_unwrap(shared) {
            Ok(s) => Ok(s.dev),
            Err(_) => Err(Error::InvalidArgument(
                "fat: the device is still shared".into(),
            )),
        }
    }
}

fn u8_of(t: fatfs::FatType) -> u8 {
    match t {
        fatfs::FatType::Fat12 => 12,
        fatfs::FatType::Fat16 => 16,
        fatfs::FatType::Fat32 => 32,
    }
}

fn split_last(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (&[][..], p),
    }
}

type DirEntry<'a, D> = fatfs::DirEntry<'a, FatIo<D>>;

/// The live entries of `dir` except `.` and `..` (bounded, as the reader's).
fn list<'a, D: BlockDevice>(dir: &Dir<'a, D>, path: &[u8]) -> Result<Vec<DirEntry<'a, D>>> {
    let mut v = Vec::new();
    for e in dir.iter() {
        let e = e.map_err(|err| fat_err(&format!("reading directory {}", show(path)), err))?;
        let n = e.short_file_name_as_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        v.push(e);
        if v.len() > 65536 {
            return Err(Error::corrupt(format!(
                "fat: directory {} has more than 65536 entries",
                show(path)
            )));
        }
    }
    Ok(v)
}

/// The entry named `name` in `dir`: exact long name first, else ignoring case.
fn find<'a, D: BlockDevice>(
    dir: &Dir<'a, D>,
    name: &[u8],
    path: &[u8],
) -> Result<Option<DirEntry<'a, D>>> {
    let want = String::from_utf8_lossy(name);
    let kids = list(dir, path)?;
    if let Some(i) = kids.iter().position(|e| e.file_name() == want) {
        return Ok(kids.into_iter().nth(i));
    }
    let low = want.to_lowercase();
    Ok(kids.into_iter().find(|e| {
        e.file_name().to_lowercase() == low
            || String::from_utf8_lossy(e.short_file_name_as_bytes()).to_lowercase() == low
    }))
}

/// The directory at `path` (which must exist and be one), its chain checked first.
fn open_dir<'a, D: BlockDevice>(
    geo: &Geometry,
    shared: &Shared<D>,
    fs: &'a Fs<D>,
    path: &[u8],
) -> Result<Dir<'a, D>> {
    if !path.is_empty() {
        let sp = short_path(geo, shared, fs, path)?;
        let (_, e) = raw::find_entry(shared, geo, &sp)?;
        if e[11] & 0x10 == 0 {
            return Err(Error::InvalidArgument(format!(
                "fat: {} is not a directory",
                show(path)
            )));
        }
        check_dir_chain(geo, shared, &e, path)?;
    }
    let mut dir = fs.root_dir();
    let mut done = Vec::new();
    for c in components(path)? {
        done = join(&done, c);
        let e = find(&dir, c, &done)?.ok_or_else(|| {
            Error::InvalidArgument(format!("fat: {} does not exist", show(&done)))
        })?;
        if !e.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "fat: {} is not a directory",
                show(&done)
            )));
        }
        dir = e.to_dir();
    }
    Ok(dir)
}

/// `name` in `dir` (the directory at `parent`) as a directory, created if missing.
#[allow(clippy::too_many_arguments)]
fn ensure_dir<D: BlockDevice>(
    geo: &Geometry,
    shared: &Shared<D>,
    fs: &Fs<D>,
    dir: &Dir<'_, D>,
    parent: &[u8],
    name: &[u8],
    path: &[u8],
    stats: &mut PutStats,
) -> Result<()> {
    if let Some(e) = find(dir, name, path)? {
        if !e.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "fat: {} exists and is not a directory",
                show(path)
            )));
        }
        return Ok(());
    }
    let s = utf8(name)
        .map_err(|_| Error::unsupported(format!("fat: {}: not valid UTF-8", show(path))))?;
    dir.create_dir(s)
        .map_err(|err| fat_err(&format!("cannot create directory {}", show(path)), err))?;
    let (_, me) = raw::find_entry(shared, geo, &short_path(geo, shared, fs, path)?)?;
    let parent_cluster = if parent.is_empty() {
        0
    } else {
        let (_, p) = raw::find_entry(shared, geo, &short_path(geo, shared, fs, parent)?)?;
        raw::first_cluster(&p, geo.fat_bits)
    };
    raw::init_dir(shared, geo, &me, parent_cluster)?;
    stats.dirs += 1;
    Ok(())
}

/// The raw short-name path of `path` (each component looked up through `fatfs`; the
/// chain of every directory on the way is checked on disk before `fatfs` reads it).
fn short_path<D: BlockDevice>(
    geo: &Geometry,
    shared: &Shared<D>,
    fs: &Fs<D>,
    path: &[u8],
) -> Result<Vec<[u8; 11]>> {
    let mut dir = fs.root_dir();
    let mut out = Vec::new();
    let mut done = Vec::new();
    let comps = components(path)?;
    for (i, c) in comps.iter().enumerate() {
        done = join(&done, c);
        let e = find(&dir, c, &done)?.ok_or_else(|| {
            Error::InvalidArgument(format!("fat: {} does not exist", show(&done)))
        })?;
        out.push(raw::raw_short_name(e.short_file_name_as_bytes())?);
        if i + 1 < comps.len() {
            if !e.is_dir() {
                return Err(Error::InvalidArgument(format!(
                    "fat: {} is not a directory",
                    show(&done)
                )));
            }
            let (_, raw_e) = raw::find_entry(shared, geo, &out)?;
            check_dir_chain(geo, shared, &raw_e, &done)?;
            dir = e.to_dir();
        }
    }
    Ok(out)
}

/// Check a directory's cluster chain (bounded by FAT's 65536 entries).
fn check_dir_chain<D: BlockDevice>(
    geo: &Geometry,
    shared: &Shared<D>,
    e: &[u8; 32],
    path: &[u8],
) -> Result<()> {
    let first = raw::first_cluster(e, geo.fat_bits);
    if first != 0 {
        geo.chain_len(shared, first, 65536 * 32 / u64::from(geo.cluster_bytes) + 1)
            .map_err(|err| Error::corrupt(format!("fat: {}: {err}", show(path))))?;
    }
    Ok(())
}

/// Check the cluster chain of `parent/name` on disk before `fatfs` follows or frees it.
fn check_chain<D: BlockDevice>(
    geo: &Geometry,
    shared: &Shared<D>,
    fs: &Fs<D>,
    parent: &[u8],
    name: &[u8],
    full: &[u8],
) -> Result<()> {
    let _ = (parent, name);
    let sp = short_path(geo, shared, fs, full)?;
    let (_, e) = raw::find_entry(shared, geo, &sp)?;
    let first = raw::first_cluster(&e, geo.fat_bits);
    if first == 0 {
        return Ok(());
    }
    let size = u64::from(u32::from_le_bytes([e[28], e[29], e[30], e[31]]));
    let is_dir = e[11] & 0x10 != 0;
    let limit = if is_dir {
        65536 * 32 / u64::from(geo.cluster_bytes) + 1
    } else {
        size.div_ceil(u64::from(geo.cluster_bytes)).max(1)
    };
    geo.chain_len(shared, first, limit)
        .map_err(|err| Error::corrupt(format!("fat: {}: {err}", show(full))))?;
    Ok(())
}

/// Empty the directory at `path`, depth first.
fn remove_tree<D: BlockDevice>(
    geo: &Geometry,
    shared: &Shared<D>,
    fs: &Fs<D>,
    path: &[u8],
    depth: usize,
) -> Result<()> {
    if depth > 512 {
        return Err(Error::corrupt(format!(
            "fat: directories nested deeper than 512 levels at {} (a loop?)",
            show(path)
        )));
    }
    let d = open_dir(geo, shared, fs, path)?;
    for e in list(&d, path)? {
        let name = e.file_name();
        let child = join(path, name.as_bytes());
        check_chain(geo, shared, fs, path, name.as_bytes(), &child)?;
        if e.is_dir() {
            remove_tree(geo, shared, fs, &child, depth + 1)?;
        }
        d.remove(&name)
            .map_err(|err| fat_err(&format!("cannot remove {}", show(&child)), err))?;
    }
    Ok(())
}

/// Attributes and times for one entry, applied after all writes.
struct Patch {
    /// The name, lower-cased (FAT compares names ignoring case).
    name: String,
    path: Vec<u8>,
    mtime: Timestamp,
    crtime: Timestamp,
    atime: Timestamp,
    read_only: bool,
    dir: bool,
}

/// Directories opened during one `put_tree` (chains checked once), and the lower-cased
/// names (long and short) in each, so a file costs no directory listing.
struct DirCache<'a, D: BlockDevice> {
    dirs: HashMap<Vec<u8>, Dir<'a, D>>,
    names: HashMap<Vec<u8>, HashMap<String, bool>>,
}

impl<'a, D: BlockDevice> DirCache<'a, D> {
    fn dir(
        &mut self,
        geo: &Geometry,
        shared: &Shared<D>,
        fs: &'a Fs<D>,
        path: &[u8],
    ) -> Result<Dir<'a, D>> {
        if let Some(d) = self.dirs.get(path) {
            return Ok(d.clone());
        }
        let d = open_dir(geo, shared, fs, path)?;
        self.dirs.insert(path.to_vec(), d.clone());
        Ok(d)
    }

    fn names(&mut self, path: &[u8], dir: &Dir<'a, D>) -> Result<&mut HashMap<String, bool>> {
        if !self.names.contains_key(path) {
            let mut m = HashMap::new();
            for e in list(dir, path)? {
                m.insert(e.file_name().to_lowercase(), e.is_dir());
                m.insert(
                    String::from_utf8_lossy(e.short_file_name_as_bytes()).to_lowercase(),
                    e.is_dir(),
                );
            }
            self.names.insert(path.to_vec(), m);
        }
        self.names
            .get_mut(path)
            .ok_or_else(|| Error::InvalidArgument("fat: directory cache".into()))
    }

    /// `name` in the directory `parent` as a directory, created if missing.
    #[allow(clippy::too_many_arguments)]
    fn ensure_dir(
        &mut self,
        geo: &Geometry,
        shared: &Shared<D>,
        fs: &'a Fs<D>,
        parent: &[u8],
        name: &[u8],
        path: &[u8],
        stats: &mut PutStats,
    ) -> Result<()> {
        let pdir = self.dir(geo, shared, fs, parent)?;
        let key = String::from_utf8_lossy(name).to_lowercase();
        match self.names(parent, &pdir)?.get(&key) {
            Some(true) => return Ok(()),
            Some(false) => {
                return Err(Error::InvalidArgument(format!(
                    "fat: {} exists and is not a directory",
                    show(path)
                )))
            }
            None => {}
        }
        ensure_dir(geo, shared, fs, &pdir, parent, name, path, stats)?;
        self.names(parent, &pdir)?.insert(key, true);
        Ok(())
    }
}

/// Set attributes and times of the entries `list` of directory `parent`, found in one
/// raw pass over the directory.
fn apply_patches<D: BlockDevice>(
    geo: &Geometry,
    shared: &Shared<D>,
    fs: &Fs<D>,
    parent: &[u8],
    list: &[Patch],
) -> Result<()> {
    let first = if parent.is_empty() {
        0
    } else {
        let (_, e) = raw::find_entry(shared, geo, &short_path(geo, shared, fs, parent)?)?;
        raw::first_cluster(&e, geo.fat_bits)
    };
    let offsets: HashMap<String, u64> = raw::dir_names(shared, geo, first)?
        .into_iter()
        .map(|(n, o)| (n.to_lowercase(), o))
        .collect();
    for p in list {
        let off = *offsets.get(&p.name).ok_or_else(|| {
            Error::corrupt(format!(
                "fat: {} was written but its entry is not found on disk",
                show(&p.path)
            ))
        })?;
        let mut e = [0u8; 32];
        shared.read_at(&mut e, off)?;
        let mut attr = if p.dir { 0x10 } else { 0x20 };
        if p.read_only {
            attr |= 0x01;
        }
        // Keep hidden and system bits already there.
        e[11] = attr | (e[11] & 0x06);
        let m = to_fat(p.mtime);
        let c = to_fat(p.crtime);
        let a = to_fat(p.atime);
        let (ct, ctenth) = encode_time(c.time);
        e[13] = ctenth;
        e[14..16].copy_from_slice(&ct.to_le_bytes());
        e[16..18].copy_from_slice(&encode_date(c.date).to_le_bytes());
        e[18..20].copy_from_slice(&encode_date(a.date).to_le_bytes());
        let (mt, _) = encode_time(m.time);
        e[22..24].copy_from_slice(&mt.to_le_bytes());
        e[24..26].copy_from_slice(&encode_date(m.date).to_le_bytes());
        shared.write_at(&e, off)?;
    }
    Ok(())
}
