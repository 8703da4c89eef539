//! [`FatTree`]: a FAT12/16/32 filesystem (through the `fatfs` crate) read as a [`TreeSource`].
//!
//! Mapping onto the tree model, as Linux's `vfat` driver presents a volume mounted with
//! `uid=0,gid=0,fmask=0133,dmask=0022,tz=UTC`:
//!
//! * names: the long (VFAT) name as UTF-8, else the 8.3 name (lower-cased where the entry's
//!   NT case bits say so); siblings sorted by name bytes;
//! * permissions: directories 0755, files 0644; with the read-only attribute 0555 / 0444;
//!   owner 0:0;
//! * times: FAT stores local time without a zone; it is read as UTC. `mtime` is the write
//!   time (2-second resolution), `crtime` the creation time (10 ms), `atime` the access date
//!   at 00:00, `ctime` equals `mtime` (FAT has none; Linux does the same). The root
//!   directory has no entry and gets the epoch;
//! * `flags` holds the attribute byte (0x01 read-only, 0x02 hidden, 0x04 system,
//!   0x10 directory, 0x20 archive); there are no xattrs, links or devices.
//!
//! `fatfs` issues many tiny reads (32-byte directory entries, 2–4-byte FAT entries); on an
//! unbuffered device each is a system call. [`BufferedDevice`] puts a small direct-mapped
//! cache of 4 KiB blocks in front, and passes large reads straight through.

use super::guard;
use super::raw::{self, Geometry};
use crate::block::{BlockDevice, Extent};
pub use crate::calendar::days_from_civil;
use crate::tree::{
    join, sort_by_name, Content, Entry, Kind, Metadata, Timestamp, TreeSource, Visitor,
};
use crate::{Error, Result};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Cached block size.
const CBLOCK: u64 = 4096;
/// Cache slots (1 MiB).
const SLOTS: usize = 256;
/// Directory nesting followed before giving up (a cluster loop could nest forever).
const MAX_DEPTH: usize = 512;
/// Entries per directory before giving up (FAT allows 65536 32-byte slots).
const MAX_ENTRIES: usize = 65536;
/// Bytes `fatfs` may read while listing one directory: its 2 MiB of slots at most, plus
/// the FAT lookups between its clusters, with room to spare. A directory whose cluster
/// chain loops through free slots would otherwise be read forever without one entry
/// coming out (the per-entry limit above never triggers).
const DIR_READ_BUDGET: u64 = 8 << 20;
/// "No budget" (reading files: their length bounds them).
const UNLIMITED: u64 = u64::MAX;

/// `Read + Write + Seek` over a [`BlockDevice`] with a block cache; writes are refused.
pub struct BufferedDevice<D: BlockDevice> {
    dev: D,
    pos: u64,
    slots: Vec<Option<(u64, Vec<u8>)>>,
    /// Bytes reads may still return ([`UNLIMITED`] unless a directory is being listed).
    budget: Arc<AtomicU64>,
    /// The total sector count shown in the boot sector instead of the real one (see
    /// [`small_fat32_total`]).
    boot_total: Option<u32>,
}

impl<D: BlockDevice> BufferedDevice<D> {
    /// A cursor at offset 0 with an empty cache.
    pub fn new(dev: D) -> Self {
        BufferedDevice {
            dev,
            pos: 0,
            slots: vec![None; SLOTS],
            budget: Arc::new(AtomicU64::new(UNLIMITED)),
            boot_total: None,
        }
    }

    /// Charge `n` bytes to the read budget.
    fn charge(&self, n: usize) -> io::Result<()> {
        let left = self.budget.load(Ordering::Relaxed);
        if left == UNLIMITED {
            return Ok(());
        }
        match left.checked_sub(n as u64) {
            Some(rest) => {
                self.budget.store(rest, Ordering::Relaxed);
                Ok(())
            }
            None => Err(io::Error::other(format!(
                "a directory reads more than {DIR_READ_BUDGET} bytes (its cluster chain loops?)"
            ))),
        }
    }

    fn block(&mut self, blk: u64) -> io::Result<&[u8]> {
        let slot = (blk % SLOTS as u64) as usize;
        let hit = matches!(&self.slots[slot], Some((b, _)) if *b == blk);
        if !hit {
            let start = blk * CBLOCK;
            let len = CBLOCK.min(self.dev.len().saturating_sub(start)) as usize;
            let mut buf = vec![0u8; len];
            self.dev.read_at(&mut buf, start).map_err(io_err)?;
            if let (0, Some(total), true) = (blk, self.boot_total, buf.len() >= 36) {
                buf[19..21].fill(0);
                buf[32..36].copy_from_slice(&total.to_le_bytes());
            }
            self.slots[slot] = Some((blk, buf));
        }
        Ok(self.slots[slot]
            .as_ref()
            .map_or(&[][..], |(_, d)| d.as_slice()))
    }
}

pub(crate) fn io_err(e: Error) -> io::Error {
    io::Error::other(e)
}

impl<D: BlockDevice> Read for BufferedDevice<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.dev.len();
        if self.pos >= len || buf.is_empty() {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(len - self.pos) as usize;
        self.charge(n)?;
        if n as u64 >= CBLOCK && self.pos >= CBLOCK {
            self.dev.read_at(&mut buf[..n], self.pos).map_err(io_err)?;
            self.pos += n as u64;
            return Ok(n);
        }
        let pos = self.pos;
        let off = (pos % CBLOCK) as usize;
        let b = self.block(pos / CBLOCK)?;
        let m = n.min(b.len().saturating_sub(off));
        if m == 0 {
            return Ok(0);
        }
        buf[..m].copy_from_slice(&b[off..off + m]);
        self.pos += m as u64;
        Ok(m)
    }
}

impl<D: BlockDevice> Write for BufferedDevice<D> {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the FAT reader is read-only",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<D: BlockDevice> Seek for BufferedDevice<D> {
    fn seek(&mut self, from: SeekFrom) -> io::Result<u64> {
        self.pos = crate::block::seek_target(self.pos, self.dev.len(), from)?;
        Ok(self.pos)
    }
}

type Fs<D> = fatfs::FileSystem<BufferedDevice<Arc<D>>>;
type FatDir<'a, D> = fatfs::Dir<'a, BufferedDevice<Arc<D>>>;
type FatEntry<'a, D> = fatfs::DirEntry<'a, BufferedDevice<Arc<D>>>;

/// A FAT filesystem read as a tree.
pub struct FatTree<D: BlockDevice> {
    fs: Fs<D>,
    /// The device, for what `fatfs` does not check: the cluster chain of each file read.
    dev: Arc<D>,
    /// The volume's layout (as [`raw::geometry`] reads it), when it could be read.
    geo: Option<Geometry>,
    len: u64,
    /// The device's read budget (see [`DIR_READ_BUDGET`]).
    budget: Arc<AtomicU64>,
}

impl<D: BlockDevice> std::fmt::Debug for FatTree<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FatTree").field("len", &self.len).finish()
    }
}

/// For a FAT32 volume of fewer than 65525 clusters (`mkfs.fat -F 32` makes these on
/// devices under about 32 MiB; Linux and fsck.fat read them, as FAT32 because the 16-bit
/// FAT size is zero), the total sector count to show `fatfs` instead of the real one, so
/// that it counts 65525 clusters and reads the volume as the FAT32 it is. Nothing else of
/// the layout changes: clusters are where they are, FAT entries 32 bits wide. The clusters
/// beyond the real end are never reached through a checked file chain
/// ([`Geometry::check_file_chain`]); a directory chain pointing there reads past the
/// device and fails.
fn small_fat32_total(geo: &Geometry) -> Option<u32> {
    if !geo.is_small_fat32() {
        return None;
    }
    let data_sector = geo.data_offset / u64::from(geo.bytes_per_sector);
    let spc = u64::from(geo.cluster_bytes / geo.bytes_per_sector);
    u32::try_from(data_sector + u64::from(raw::FAT32_MIN_CLUSTERS) * spc).ok()
}

pub(crate) fn fat_err(what: &str, e: io::Error) -> Error {
    Error::corrupt(format!("fat: {what}: {e}"))
}

impl<D: BlockDevice> FatTree<D> {
    /// Open the FAT filesystem on `dev`.
    pub fn open(dev: D) -> Result<Self> {
        let len = dev.len();
        let dev = Arc::new(dev);
        let geo = raw::geometry(&*dev).ok();
        let mut buffered = BufferedDevice::new(dev.clone());
        buffered.boot_total = geo.as_ref().and_then(small_fat32_total);
        let budget = buffered.budget.clone();
        let fs = guard("opening the filesystem", || {
            fatfs::FileSystem::new(
                buffered,
                fatfs::FsOptions::new().update_accessed_date(false),
            )
            .map_err(|e| fat_err("cannot open the filesystem", e))
        })?;
        Ok(FatTree {
            fs,
            dev,
            geo,
            len,
            budget,
        })
    }

    /// 12, 16 or 32.
    pub fn fat_bits(&self) -> u8 {
        match self.fs.fat_type() {
            fatfs::FatType::Fat12 => 12,
            fatfs::FatType::Fat16 => 16,
            fatfs::FatType::Fat32 => 32,
        }
    }

    /// Bytes in allocated clusters (falls back to the volume size).
    pub fn used_bytes(&self) -> u64 {
        if let Some(geo) = self.geo.as_ref().filter(|g| g.is_small_fat32()) {
            // fatfs would count clusters past the end of this FAT (see small_fat32_total).
            return geo
                .used_clusters(&*self.dev)
                .map_or(self.len, |n| n * u64::from(geo.cluster_bytes));
        }
        match self.fs.stats() {
            Ok(s) => {
                u64::from(s.total_clusters().saturating_sub(s.free_clusters()))
                    * u64::from(s.cluster_size())
            }
            Err(_) => self.len,
        }
    }

    /// The sorted (name, entry) pairs of `dir`.
    fn list<'a>(
        &'a self,
        dir: &FatDir<'a, D>,
        path: &[u8],
    ) -> Result<Vec<(Vec<u8>, FatEntry<'a, D>)>> {
        self.budget.store(DIR_READ_BUDGET, Ordering::Relaxed);
        let r = self.list_budgeted(dir, path);
        self.budget.store(UNLIMITED, Ordering::Relaxed);
        r
    }

    /// [`Self::list`] with the read budget armed.
    fn list_budgeted<'a>(
        &'a self,
        dir: &FatDir<'a, D>,
        path: &[u8],
    ) -> Result<Vec<(Vec<u8>, FatEntry<'a, D>)>> {
        let mut v = Vec::new();
        for e in dir.iter() {
            let e = e.map_err(|e| {
                fat_err(
                    &format!("reading directory {:?}", String::from_utf8_lossy(path)),
                    e,
                )
            })?;
            let name = e.file_name().into_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
                return Err(Error::corrupt(format!(
                    "fat: directory {:?} has an entry named {:?}",
                    String::from_utf8_lossy(path),
                    String::from_utf8_lossy(&name)
                )));
            }
            v.push((name, e));
            if v.len() > MAX_ENTRIES {
                return Err(Error::corrupt(format!(
                    "fat: directory {:?} has more than {MAX_ENTRIES} entries (a cluster loop?)",
                    String::from_utf8_lossy(path)
                )));
            }
        }
        sort_by_name(&mut v, "fat", path)?;
        Ok(v)
    }

    /// Find `path` (relative): `None` for the root, else the directory entry and its first
    /// cluster. Names match exactly, else ignoring case (as FAT does).
    fn find<'a>(&'a self, path: &[u8]) -> Result<Option<Found<'a, D>>> {
        let mut dir = self.fs.root_dir();
        let mut found: Option<Found<'a, D>> = None;
        for comp in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            let dir_cluster = found.as_ref().map_or(Some(0), |f| f.first);
            if let Some(Found { entry: f, .. }) = &found {
                if !f.is_dir() {
                    return Err(Error::InvalidArgument(format!(
                        "fat: {:?} is not a directory",
                        String::from_utf8_lossy(path)
                    )));
                }
                dir = f.to_dir();
            }
            let list = self.list(&dir, path)?;
            let hit = list
                .iter()
                .position(|(n, _)| n == comp)
                .or_else(|| {
                    let want = String::from_utf8_lossy(comp).to_lowercase();
                    list.iter()
                        .position(|(n, _)| String::from_utf8_lossy(n).to_lowercase() == want)
                })
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "fat: no entry {:?} in the directory of {:?}",
                        String::from_utf8_lossy(comp),
                        String::from_utf8_lossy(path)
                    ))
                })?;
            let entry = list.into_iter().nth(hit).map(|(_, e)| e);
            found = match entry {
                Some(entry) => {
                    let first = self.first_clusters(dir_cluster)?.first_of(&entry);
                    Some(Found { entry, first })
                }
                None => None,
            };
        }
        Ok(found)
    }

    /// The first clusters of the entries of the directory at `dir` (`0` = the root; `None`:
    /// not known, nothing is looked up).
    fn first_clusters(&self, dir: Option<u32>) -> Result<FirstClusters> {
        let (Some(geo), Some(dir)) = (&self.geo, dir) else {
            return Ok(FirstClusters(None));
        };
        let map = raw::short_entries(&*self.dev, geo, dir)?;
        Ok(FirstClusters(Some(
            map.into_iter()
                .map(|(name, e)| (name, raw::first_cluster(&e, geo.fat_bits)))
                .collect(),
        )))
    }

    /// The content of the file `e` at `path`, once its cluster chain (from `first`) has
    /// been checked to hold its size: `fatfs` would silently return fewer bytes, or the
    /// same clusters again, or whatever lies where a damaged chain points.
    fn content<'a>(
        &self,
        e: &FatEntry<'a, D>,
        first: Option<u32>,
        path: &[u8],
    ) -> Result<FatContent<'a, D>> {
        if let (Some(geo), Some(first)) = (&self.geo, first) {
            geo.check_file_chain(&*self.dev, first, e.len())
                .map_err(|err| {
                    Error::corrupt(format!("fat: {}: {err}", String::from_utf8_lossy(path)))
                })?;
        }
        Ok(FatContent {
            file: e.to_file(),
            len: e.len(),
        })
    }

    /// The entry at `path` (relative; empty = the root).
    pub fn entry(&self, path: &[u8]) -> Result<Entry> {
        guard("looking up a path", || {
            Ok(match self.find(path)? {
                None => root_entry(path),
                Some(f) => make_entry(path.to_vec(), &f.entry),
            })
        })
    }

    /// The entries of directory `path`, sorted by name.
    pub fn children(&self, path: &[u8]) -> Result<Vec<Entry>> {
        guard("listing a directory", || {
            let dir = self.dir_at(path)?;
            Ok(self
                .list(&dir, path)?
                .iter()
                .map(|(n, e)| make_entry(join(path, n), e))
                .collect())
        })
    }

    fn dir_at<'a>(&'a self, path: &[u8]) -> Result<FatDir<'a, D>> {
        match self.find(path)? {
            None => Ok(self.fs.root_dir()),
            Some(f) if f.entry.is_dir() => Ok(f.entry.to_dir()),
            Some(_) => Err(Error::InvalidArgument(format!(
                "fat: {:?} is not a directory",
                String::from_utf8_lossy(path)
            ))),
        }
    }

    /// Copy the regular file at `path` to `out`; returns the bytes copied.
    pub fn copy_file(&self, path: &[u8], out: &mut dyn Write) -> Result<u64> {
        guard("copying a file", || self.copy_file_inner(path, out))
    }

    fn copy_file_inner(&self, path: &[u8], out: &mut dyn Write) -> Result<u64> {
        match self.find(path)? {
            Some(f) if f.entry.is_file() => {
                let mut c = self.content(&f.entry, f.first, path)?;
                io::copy(&mut c, out).map_err(|e| {
                    Error::io(format!("copying {:?}", String::from_utf8_lossy(path)), e)
                })
            }
            _ => Err(Error::InvalidArgument(format!(
                "{:?} is not a regular file (it is a directory)",
                String::from_utf8_lossy(path)
            ))),
        }
    }

    fn walk_dir(
        &self,
        dir: &FatDir<'_, D>,
        dir_cluster: Option<u32>,
        path: &mut Vec<u8>,
        depth: usize,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::corrupt(format!(
                "fat: directories nested deeper than {MAX_DEPTH} levels at {:?} (a cluster loop?)",
                String::from_utf8_lossy(path)
            )));
        }
        let list = self.list(dir, path)?;
        let firsts = self.first_clusters(dir_cluster)?;
        let base = path.len();
        for (name, e) in list {
            let first = firsts.first_of(&e);
            path.truncate(base);
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&name);
            let entry = make_entry(path.clone(), &e);
            if e.is_dir() {
                visit(&entry, None)?;
                self.walk_dir(&e.to_dir(), first, path, depth + 1, visit)?;
            } else {
                let mut c = self.content(&e, first, path)?;
                visit(&entry, Some(&mut c))?;
            }
        }
        path.truncate(base);
        Ok(())
    }
}

impl<D: BlockDevice> TreeSource for FatTree<D> {
    fn walk(&self, root: &[u8], visit: &mut Visitor<'_>) -> Result<()> {
        guard("walking the tree", || self.walk_inner(root, visit))
    }
}

impl<D: BlockDevice> FatTree<D> {
    fn walk_inner(&self, root: &[u8], visit: &mut Visitor<'_>) -> Result<()> {
        match self.find(root)? {
            None => {
                visit(&root_entry(root), None)?;
                self.walk_dir(&self.fs.root_dir(), Some(0), &mut root.to_vec(), 0, visit)
            }
            Some(f) if f.entry.is_dir() => {
                visit(&make_entry(root.to_vec(), &f.entry), None)?;
                self.walk_dir(&f.entry.to_dir(), f.first, &mut root.to_vec(), 0, visit)
            }
            Some(f) => {
                let mut c = self.content(&f.entry, f.first, root)?;
                visit(&make_entry(root.to_vec(), &f.entry), Some(&mut c))
            }
        }
    }
}

/// A directory entry found by path, with its first cluster (when the layout is known).
struct Found<'a, D: BlockDevice> {
    entry: FatEntry<'a, D>,
    first: Option<u32>,
}

/// The first clusters of one directory's entries by raw short name (`None`: not known).
struct FirstClusters(Option<std::collections::HashMap<[u8; 11], u32>>);

impl FirstClusters {
    /// The first cluster of `e`, when known.
    fn first_of<D: BlockDevice>(&self, e: &FatEntry<'_, D>) -> Option<u32> {
        let map = self.0.as_ref()?;
        let name = raw::raw_short_name(e.short_file_name_as_bytes()).ok()?;
        map.get(&name).copied()
    }
}

/// A file's content: reads stop at the directory entry's size.
struct FatContent<'a, D: BlockDevice> {
    file: fatfs::File<'a, BufferedDevice<Arc<D>>>,
    len: u64,
}

impl<D: BlockDevice> Read for FatContent<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl<D: BlockDevice> Content for FatContent<'_, D> {
    fn extents(&self) -> Result<Vec<Extent>> {
        Ok(crate::tree::all_data(self.len))
    }
}

fn root_entry(path: &[u8]) -> Entry {
    Entry {
        path: path.to_vec(),
        kind: Kind::Dir,
        meta: Metadata {
            perm: 0o755,
            flags: Some(0x10),
            ..Default::default()
        },
        size: 0,
        rdev: (0, 0),
        link_target: None,
        hardlink_id: None,
    }
}

fn make_entry<D: BlockDevice>(path: Vec<u8>, e: &FatEntry<'_, D>) -> Entry {
    let attrs = e.attributes();
    let ro = attrs.contains(fatfs::FileAttributes::READ_ONLY);
    let dir = e.is_dir();
    let perm = match (dir, ro) {
        (true, false) => 0o755,
        (true, true) => 0o555,
        (false, false) => 0o644,
        (false, true) => 0o444,
    };
    let m = e.modified();
    let mtime = datetime(m.date, m.time);
    let c = e.created();
    let a = e.accessed();
    Entry {
        path,
        kind: if dir { Kind::Dir } else { Kind::File },
        meta: Metadata {
            perm,
            uid: 0,
            gid: 0,
            atime: datetime(
                a,
                fatfs::Time {
                    hour: 0,
                    min: 0,
                    sec: 0,
                    millis: 0,
                },
            ),
            mtime,
            ctime: mtime,
            crtime: Some(datetime(c.date, c.time)),
            xattrs: Vec::new(),
            flags: Some(u32::from(attrs.bits())),
        },
        size: if dir { 0 } else { e.len() },
        rdev: (0, 0),
        link_target: None,
        hardlink_id: None,
    }
}

/// A FAT date and time (read as UTC) as seconds since the epoch. Month and day 0 (never
/// set) count as 1.
pub(crate) fn datetime(d: fatfs::Date, t: fatfs::Time) -> Timestamp {
    let days = days_from_civil(
        i64::from(d.year),
        i64::from(d.month.clamp(1, 12)),
        i64::from(d.day.max(1)),
    );
    let secs = i64::from(t.hour) * 3600 + i64::from(t.min) * 60 + i64::from(t.sec);
    Timestamp {
        sec: days * 86400 + secs,
        nsec: u32::from(t.millis) * 1_000_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1980, 1, 1), 3652);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }
}
