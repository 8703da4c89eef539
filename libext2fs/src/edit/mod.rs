//! [`Ext2Fs`]: an ext2/3/4 filesystem opened read-write through libext2fs over a
//! [`BlockDevice`], and every edit subroot makes to one.
//!
//! Paths are bytes relative to the filesystem root (no leading `/`; `""` is the root), as
//! [`Entry::path`]. Symlinks are never followed.
//!
//! **What reaches the device when.** Inodes, directory blocks and file data are written
//! through the device as each edit is made; the allocation bitmaps, group descriptors and
//! superblock counters only at [`Ext2Fs::close`]. Dropping an `Ext2Fs` without closing it
//! frees libext2fs' state without flushing, so the device then holds edits whose
//! allocations are not recorded: callers edit a copy-on-write
//! [`subroot_formats::block::Overlay`] and discard it unless `close` succeeded.

mod append;
mod content;
mod create;
mod grow;
mod htree;
mod meta;
mod remove;

use crate::error::{Error, Result, Shown};
use crate::io::{self, DevSlot};
use crate::sys;
pub use grow::GrowReport;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, ExtentKind};
use subroot_formats::ext::USER_FLAGS;
use subroot_formats::tree::{
    check_relative_path, Content, Entry, Kind, Metadata, Timestamp, TreeSource,
};

type Inode = sys::ext2_inode_large;
const INODE_LEN: c_int = std::mem::size_of::<Inode>() as c_int;

// Feature bits (ext2_fs.h).
/// Directory entries remembered at most (about 10 MiB with typical names).
const MAX_REMEMBERED_NAMES: usize = 100_000;

const COMPAT_EXT_ATTR: u32 = 0x8;
const INCOMPAT_EA_INODE: u32 = 0x400;
const HUGE_FILE_FL: u32 = 0x40000;
const INDEX_FL: u32 = 0x1000;
const INCOMPAT_KNOWN: &[(u32, &str, bool)] = &[
    (0x1, "compression", false),
    (0x2, "filetype", true),
    (
        0x4,
        "needs_recovery (a journal that must be replayed: mount it or run e2fsck)",
        false,
    ),
    (0x8, "journal_dev", false),
    (0x10, "meta_bg", true),
    (0x40, "extent", true),
    (0x80, "64bit", true),
    (0x100, "mmp", false),
    (0x200, "flex_bg", true),
    (0x400, "ea_inode", true),
    (0x1000, "dirdata", false),
    (0x2000, "metadata_csum_seed", true),
    (0x4000, "large_dir", true),
    (0x8000, "inline_data", false),
    (0x10000, "encrypt", false),
    (0x20000, "casefold", false),
];
const RO_COMPAT_KNOWN: &[(u32, &str, bool)] = &[
    (0x1, "sparse_super", true),
    (0x2, "large_file", true),
    (0x4, "btree_dir", false),
    (0x8, "huge_file", true),
    (0x10, "uninit_bg", true),
    (0x20, "dir_nlink", true),
    (0x40, "extra_isize", true),
    (0x80, "snapshot", false),
    (0x100, "quota", false),
    (0x200, "bigalloc", true),
    (0x400, "metadata_csum", true),
    (0x800, "replica", false),
    (0x1000, "read-only", false),
    (0x2000, "project", false),
    (0x4000, "shared_blocks", false),
    (0x8000, "verity", false),
    (
        0x10000,
        "orphan_present (orphan inodes to clean up: mount it or run e2fsck)",
        false,
    ),
];

/// Why a feature set cannot be edited, if it cannot.
fn refusal(sb: &sys::ext2_super_block) -> Option<String> {
    for (mask, table, what) in [
        (sb.s_feature_incompat, INCOMPAT_KNOWN, "incompat"),
        (sb.s_feature_ro_compat, RO_COMPAT_KNOWN, "ro_compat"),
    ] {
        let mut known = 0;
        for &(bit, name, ok) in table {
            known |= bit;
            if mask & bit != 0 && !ok {
                return Some(name.to_string());
            }
        }
        if mask & !known != 0 {
            return Some(format!("unknown {what} features {:#x}", mask & !known));
        }
    }
    if sb.s_last_orphan != 0 {
        return Some(
            "an orphan inode list (inodes to clean up: mount it or run e2fsck)".to_string(),
        );
    }
    if sb.s_state & 2 != 0 {
        return Some("the `errors` state (e2fsck found errors: run e2fsck)".to_string());
    }
    if sb.s_state & 1 == 0 {
        return Some("the `not clean` state (not cleanly unmounted: run e2fsck)".to_string());
    }
    None
}

/// What [`Ext2Fs::stat`] reports about an inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub ino: u32,
    pub kind: Kind,
    pub meta: Metadata,
    pub size: u64,
    pub links: u32,
    /// (major, minor) of a device node.
    pub rdev: (u32, u32),
}

/// What an edit session did, reported by [`Ext2Fs::close`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseStats {
    /// Net blocks taken (negative: freed), from the superblock's free count.
    pub blocks_used: i64,
    /// Net inodes taken (negative: freed).
    pub inodes_used: i64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Directories whose entries changed (paths), for [`crate::check`].
    pub touched_dirs: Vec<Vec<u8>>,
}

/// An ext2/3/4 filesystem open for editing. See the module documentation for what a drop
/// without [`Ext2Fs::close`] leaves on the device.
pub struct Ext2Fs {
    fs: sys::ext2_filsys,
    slot: Arc<DevSlot>,
    what: String,
    free_blocks0: u64,
    free_inodes0: u64,
    touched: BTreeSet<Vec<u8>>,
    /// The names of directories looked up so far (libext2fs' lookup reads the whole
    /// directory each time, htree or not), kept up to date by every edit.
    names: RefCell<HashMap<u32, HashMap<Vec<u8>, u32>>>,
    /// Why the in-memory metadata must not be written (an edit failed half-way).
    broken: Option<String>,
    /// Add names at the end of unindexed directories ([`Ext2Fs::set_append_names`]).
    append_names: bool,
    /// The directory block the last append wrote, as written (its number and bytes).
    appended: RefCell<Option<(u64, Vec<u8>)>>,
}

// SAFETY: an Ext2Fs owns its ext2_filsys exclusively; libext2fs keeps no per-filesystem
// state outside it (the device is behind Send + Sync), so moving it to another thread is
// sound. It is not Sync: all calls go through &mut self or a single owner.
unsafe impl Send for Ext2Fs {}

fn cstr(bytes: &[u8], what: &str) -> Result<CString> {
    CString::new(bytes).map_err(|_| Error::Invalid(format!("{what} contains a NUL byte")))
}

fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

fn file_type(kind: Kind) -> c_int {
    (match kind {
        Kind::File => sys::EXT2_FT_REG_FILE,
        Kind::Dir => sys::EXT2_FT_DIR,
        Kind::CharDevice => sys::EXT2_FT_CHRDEV,
        Kind::BlockDevice => sys::EXT2_FT_BLKDEV,
        Kind::Fifo => sys::EXT2_FT_FIFO,
        Kind::Socket => sys::EXT2_FT_SOCK,
        Kind::Symlink => sys::EXT2_FT_SYMLINK,
    }) as c_int
}

/// A device number as the kernel stores it in `i_block` (old 16-bit or new 32-bit form).
fn encode_rdev((major, minor): (u32, u32)) -> [u32; 2] {
    if major < 256 && minor < 256 {
        [(major << 8) | minor, 0]
    } else {
        [0, (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)]
    }
}

/// The base word and extra word of a timestamp, as the kernel's `ext4_encode_extra_time`.
fn encode_time(t: Timestamp) -> (u32, u32) {
    let epoch = ((t.sec - i64::from(t.sec as i32)) >> 32) as u32 & 3;
    (t.sec as u32, epoch | (t.nsec << 2))
}

/// Collects directory entries (name, inode, file type) in `dir_iterate2`'s callback.
unsafe extern "C" fn collect_dirent(
    _dir: sys::ext2_ino_t,
    _entry: c_int,
    dirent: *mut sys::ext2_dir_entry,
    _offset: c_int,
    _blocksize: c_int,
    _buf: *mut c_char,
    priv_data: *mut c_void,
) -> c_int {
    // SAFETY: priv_data is the Vec passed by `children`, dirent a valid entry in the
    // block libext2fs is iterating over (name_len low byte bytes of name are valid).
    unsafe {
        let out = &mut *(priv_data as *mut Vec<(Vec<u8>, u32)>);
        let d = &*dirent;
        let len = usize::from(d.name_len & 0xff);
        let name = std::slice::from_raw_parts(d.name.as_ptr() as *const u8, len);
        if d.inode != 0 && name != b"." && name != b".." {
            out.push((name.to_vec(), d.inode));
        }
    }
    0
}

/// Points a directory's `..` entry at a new parent (the u32 behind priv_data).
unsafe extern "C" fn set_dotdot(
    _dir: sys::ext2_ino_t,
    _entry: c_int,
    dirent: *mut sys::ext2_dir_entry,
    _offset: c_int,
    _blocksize: c_int,
    _buf: *mut c_char,
    priv_data: *mut c_void,
) -> c_int {
    // SAFETY: as in collect_dirent; priv_data is the `u32` passed by `rename`.
    unsafe {
        let d = &mut *dirent;
        let len = usize::from(d.name_len & 0xff);
        if len == 2 && d.name[0] == b'.' as c_char && d.name[1] == b'.' as c_char {
            d.inode = *(priv_data as *const u32);
            return (sys::DIRENT_CHANGED | sys::DIRENT_ABORT) as c_int;
        }
    }
    0
}

/// Collects xattr names and values in `xattrs_iterate`'s callback.
unsafe extern "C" fn collect_xattr(
    name: *mut c_char,
    value: *mut c_char,
    value_len: sys::size_t,
    data: *mut c_void,
) -> c_int {
    // SAFETY: libext2fs passes a NUL-terminated name and `value_len` bytes of value;
    // data is the Vec passed by `xattrs`.
    unsafe {
        let out = &mut *(data as *mut Vec<(Vec<u8>, Vec<u8>)>);
        let v = if value_len == 0 || value.is_null() {
            Vec::new()
        } else {
            std::slice::from_raw_parts(value as *const u8, value_len as usize).to_vec()
        };
        out.push((CStr::from_ptr(name).to_bytes().to_vec(), v));
    }
    0
}

/// The version of the loaded libext2fs, refused when older than 1.46.
fn check_library() -> Result<()> {
    let mut ver: *const c_char = std::ptr::null();
    let mut date: *const c_char = std::ptr::null();
    // SAFETY: the function stores pointers to static strings in the out-pointers.
    unsafe { sys::ext2fs_get_library_version(&mut ver, &mut date) };
    let found = if ver.is_null() {
        String::from("(unknown)")
    } else {
        // SAFETY: a static NUL-terminated string of the library.
        unsafe { CStr::from_ptr(ver) }
            .to_string_lossy()
            .into_owned()
    };
    let mut parts = found.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (1, 46) {
        return Err(Error::LibraryTooOld { found });
    }
    static INIT: std::sync::Once = std::sync::Once::new();
    // SAFETY: registers libext2fs' message table in com_err's global list; Once keeps it
    // to a single, unraced call.
    INIT.call_once(|| unsafe { sys::initialize_ext2_error_table() });
    Ok(())
}

impl Ext2Fs {
    /// Open the ext filesystem on `dev` for editing; `what` names it in messages. Refuses
    /// with [`Error::Unsupported`], before anything is written, a filesystem using a
    /// feature the editor does not handle (see the crate docs).
    pub fn open(dev: Arc<dyn BlockDevice>, what: &str) -> Result<Ext2Fs> {
        check_library()?;
        let slot = DevSlot::new(dev);
        let name = io::register(slot.clone());
        let mut fs: sys::ext2_filsys = std::ptr::null_mut();
        // SAFETY: `name` is a live C string, the manager a valid static table; on success
        // libext2fs stores a filesystem that we own in `fs`.
        let rc = unsafe {
            sys::ext2fs_open2(
                name.as_ptr(),
                std::ptr::null(),
                // SKIP_MMP: else libext2fs opens the device *file* by name to read the MMP
                // block; we refuse MMP filesystems ourselves instead.
                (sys::EXT2_FLAG_RW | sys::EXT2_FLAG_64BITS | sys::EXT2_FLAG_SKIP_MMP) as c_int,
                0,
                0,
                io::manager(),
                &mut fs,
            )
        };
        io::unregister(&name);
        if rc != 0 {
            if let Some(e) = slot.take_error() {
                return Err(Error::Device(e));
            }
            return Err(match rc as u32 {
                sys::EXT2_ET_BAD_MAGIC => {
                    Error::Corrupt(format!("{what} does not hold an ext2/3/4 filesystem"))
                }
                _ => lib_error(&format!("opening {what}"), rc),
            });
        }
        let mut me = Ext2Fs {
            fs,
            slot,
            what: what.to_string(),
            free_blocks0: 0,
            free_inodes0: 0,
            touched: BTreeSet::new(),
            names: RefCell::default(),
            broken: None,
            append_names: false,
            appended: RefCell::default(),
        };
        if let Some(feature) = refusal(me.sb()) {
            return Err(Error::Unsupported { feature });
        }
        // SAFETY: a live filesystem.
        me.call("reading the bitmaps", unsafe {
            sys::ext2fs_read_bitmaps(me.fs)
        })?;
        (me.free_blocks0, me.free_inodes0) = me.free_counts();
        Ok(me)
    }

    fn sb(&self) -> &sys::ext2_super_block {
        // SAFETY: a live filesystem always has its superblock copy.
        unsafe { &*(*self.fs).super_ }
    }

    fn free_counts(&self) -> (u64, u64) {
        let sb = self.sb();
        (
            u64::from(sb.s_free_blocks_count) | (u64::from(sb.s_free_blocks_hi) << 32),
            u64::from(sb.s_free_inodes_count),
        )
    }

    /// Turn a libext2fs return code into a result, preferring the device's own error.
    fn call(&self, op: &str, rc: sys::errcode_t) -> Result<()> {
        if rc == 0 {
            return Ok(());
        }
        if let Some(e) = self.slot.take_error() {
            return Err(Error::Device(e));
        }
        Err(lib_error(&format!("{op} on {}", self.what), rc))
    }

    /// Flush every change to the device and close. Reports what the session changed.
    pub fn close(mut self) -> Result<CloseStats> {
        if let Some(why) = self.broken.take() {
            return Err(Error::Invalid(format!(
                "{}: {why}; its metadata was not written",
                self.what
            )));
        }
        let (fb, fi) = self.free_counts();
        let stats = CloseStats {
            blocks_used: self.free_blocks0 as i64 - fb as i64,
            inodes_used: self.free_inodes0 as i64 - fi as i64,
            bytes_read: 0,
            bytes_written: 0,
            touched_dirs: std::mem::take(&mut self.touched).into_iter().collect(),
        };
        let fs = std::mem::replace(&mut self.fs, std::ptr::null_mut());
        // SAFETY: we own `fs`; close2 flushes and frees it, even on error.
        let rc = unsafe { sys::ext2fs_close2(fs, 0) };
        self.call("writing the metadata", rc)?;
        Ok(CloseStats {
            bytes_read: self.slot.bytes_read.load(Ordering::Relaxed),
            bytes_written: self.slot.bytes_written.load(Ordering::Relaxed),
            ..stats
        })
    }

    /// Take `secs` (seconds since the epoch) as the current time: the superblock's last
    /// write time at [`Ext2Fs::close`] and the deletion time of freed inodes. Without it,
    /// the system clock. A caller that wants reproducible output (`SOURCE_DATE_EPOCH`)
    /// sets it.
    pub fn set_clock(&mut self, secs: i64) {
        // SAFETY: a live filesystem; `now` is a plain field libext2fs reads instead of
        // time() when it is not zero.
        unsafe { (*self.fs).now = secs as sys::time_t };
    }

    /// The current time as the filesystem sees it: the clock set by
    /// [`Ext2Fs::set_clock`], else the system's.
    fn now(&self) -> i64 {
        // SAFETY: a live filesystem.
        let set = unsafe { (*self.fs).now };
        if set != 0 {
            return set;
        }
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }

    /// Bytes read from the device so far.
    pub fn bytes_read(&self) -> u64 {
        self.slot.bytes_read.load(Ordering::Relaxed)
    }

    // ---- inodes -------------------------------------------------------------------

    fn read_inode(&self, ino: u32) -> Result<Inode> {
        // SAFETY: Inode is plain data; all-zero is valid.
        let mut inode: Inode = unsafe { std::mem::zeroed() };
        // SAFETY: a live filesystem; the buffer is INODE_LEN bytes.
        let rc = unsafe {
            sys::ext2fs_read_inode_full(
                self.fs,
                ino,
                &mut inode as *mut Inode as *mut sys::ext2_inode,
                INODE_LEN,
            )
        };
        self.call(&format!("reading inode {ino}"), rc)?;
        Ok(inode)
    }

    fn write_inode(&self, ino: u32, inode: &mut Inode) -> Result<()> {
        // SAFETY: a live filesystem; the buffer is INODE_LEN bytes.
        let rc = unsafe {
            sys::ext2fs_write_inode_full(
                self.fs,
                ino,
                inode as *mut Inode as *mut sys::ext2_inode,
                INODE_LEN,
            )
        };
        self.call(&format!("writing inode {ino}"), rc)
    }

    /// The physical block of logical block `lblk` of inode `ino` (`inode`: its record);
    /// 0 for a hole.
    fn map_block(&self, ino: u32, inode: &Inode, lblk: u64) -> Result<u64> {
        let mut phys: sys::blk64_t = 0;
        let mut copy = *inode;
        // SAFETY: a live filesystem; `copy` is a full inode of `ino`, `phys` an out-value.
        self.call("mapping a block", unsafe {
            sys::ext2fs_bmap2(
                self.fs,
                ino,
                &mut copy as *mut Inode as *mut sys::ext2_inode,
                std::ptr::null_mut(),
                0,
                lblk,
                std::ptr::null_mut(),
                &mut phys,
            )
        })?;
        Ok(phys)
    }

    /// The inode's on-disk size (bytes of the inode record actually stored).
    fn inode_size(&self) -> usize {
        usize::from(self.sb().s_inode_size).max(128)
    }

    /// Whether `inode` stores the 32-bit field that ends at byte `end` of the record.
    fn has_extra(&self, inode: &Inode, end: usize) -> bool {
        self.inode_size() > 128 && 128 + usize::from(inode.i_extra_isize) >= end
    }

    // ---- lookup -------------------------------------------------------------------

    fn lookup_in(&self, dir: u32, name: &[u8], dir_path: &[u8]) -> Result<Option<u32>> {
        if let Some(names) = self.names.borrow().get(&dir) {
            return Ok(names.get(name).copied());
        }
        let children = match self.scan(dir) {
            Ok(c) => c,
            Err(rc) if rc as u32 == sys::EXT2_ET_NO_DIRECTORY => {
                return Err(Error::NotADirectory(dir_path.to_vec()))
            }
            Err(rc) => return self.call("reading a directory", rc).map(|_| None),
        };
        if children.len() > MAX_REMEMBERED_NAMES {
            // Memory stays bounded: a huge directory is scanned again next time.
            return Ok(children
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, i)| i));
        }
        let names: HashMap<Vec<u8>, u32> = children.into_iter().collect();
        let found = names.get(name).copied();
        let mut cache = self.names.borrow_mut();
        if cache.values().map(HashMap::len).sum::<usize>() + names.len() > MAX_REMEMBERED_NAMES {
            cache.clear();
        }
        cache.insert(dir, names);
        Ok(found)
    }

    /// Add the entry `name` -> `ino` to directory `dir` (growing it when full).
    fn add_name(&self, dir: u32, name: &CStr, ino: u32, kind: Kind) -> Result<()> {
        if !(self.append_names && self.append_name(dir, name.to_bytes(), ino, kind)?) {
            self.with_dir_space(dir, "linking", || {
                // SAFETY: a live filesystem; `name` a C string.
                unsafe { sys::ext2fs_link(self.fs, dir, name.as_ptr(), ino, file_type(kind)) }
            })?;
        }
        if let Some(names) = self.names.borrow_mut().get_mut(&dir) {
            names.insert(name.to_bytes().to_vec(), ino);
        }
        Ok(())
    }

    /// Remove the entry `name` (naming `ino`) from directory `dir`.
    fn remove_name(&self, dir: u32, name: &CStr, ino: u32) -> Result<()> {
        if !self.remove_indexed(dir, name.to_bytes(), ino)? {
            // SAFETY: a live filesystem; `name` a C string.
            self.call("unlinking", unsafe {
                sys::ext2fs_unlink(self.fs, dir, name.as_ptr(), ino, 0)
            })?;
        }
        if let Some(names) = self.names.borrow_mut().get_mut(&dir) {
            names.remove(name.to_bytes());
        }
        Ok(())
    }

    fn check_path(path: &[u8]) -> Result<()> {
        check_relative_path(path)
            .map_err(|why| Error::Invalid(format!("the path {} {why}", Shown(path))))
    }

    /// The inode of `path` (no symlink is followed), or `None` when it does not exist.
    pub fn lookup(&self, path: &[u8]) -> Result<Option<u32>> {
        Self::check_path(path)?;
        let mut ino = sys::EXT2_ROOT_INO;
        if path.is_empty() {
            return Ok(Some(ino));
        }
        let mut end = 0;
        for comp in path.split(|&b| b == b'/') {
            match self.lookup_in(ino, comp, &path[..end.max(1) - 1])? {
                Some(i) => ino = i,
                None => return Ok(None),
            }
            end += comp.len() + 1;
        }
        Ok(Some(ino))
    }

    fn require(&self, path: &[u8]) -> Result<u32> {
        self.lookup(path)?
            .ok_or_else(|| Error::NotFound(path.to_vec()))
    }

    /// The inode of the directory `path`.
    fn require_dir(&self, path: &[u8]) -> Result<u32> {
        let ino = self.require(path)?;
        if kind_of(&self.read_inode(ino)?) != Some(Kind::Dir) {
            return Err(Error::NotADirectory(path.to_vec()));
        }
        Ok(ino)
    }

    /// Everything about `path` (symlinks not followed), xattrs included.
    pub fn stat(&self, path: &[u8]) -> Result<Stat> {
        let ino = self.require(path)?;
        let inode = self.read_inode(ino)?;
        let kind =
            kind_of(&inode).ok_or_else(|| Error::Corrupt(format!("inode {ino} has a bad mode")))?;
        let time = |base: u32, extra: u32, end: usize| Timestamp {
            sec: i64::from(base as i32)
                + if self.has_extra(&inode, end) {
                    i64::from(extra & 3) << 32
                } else {
                    0
                },
            nsec: if self.has_extra(&inode, end) {
                extra >> 2
            } else {
                0
            },
        };
        // SAFETY: osd2 is the Linux variant on every filesystem this editor opens.
        let (uid_hi, gid_hi) = unsafe {
            (
                inode.osd2.linux2.l_i_uid_high,
                inode.osd2.linux2.l_i_gid_high,
            )
        };
        let rdev = match kind {
            Kind::CharDevice | Kind::BlockDevice => {
                let [old, new] = [inode.i_block[0], inode.i_block[1]];
                if old != 0 {
                    ((old >> 8) & 0xff, old & 0xff)
                } else {
                    ((new & 0xfff00) >> 8, (new & 0xff) | ((new >> 12) & 0xfff00))
                }
            }
            _ => (0, 0),
        };
        Ok(Stat {
            ino,
            kind,
            meta: Metadata {
                perm: u32::from(inode.i_mode) & 0o7777,
                uid: u32::from(inode.i_uid) | (u32::from(uid_hi) << 16),
                gid: u32::from(inode.i_gid) | (u32::from(gid_hi) << 16),
                atime: time(inode.i_atime, inode.i_atime_extra, 144),
                mtime: time(inode.i_mtime, inode.i_mtime_extra, 140),
                ctime: time(inode.i_ctime, inode.i_ctime_extra, 136),
                crtime: self
                    .has_extra(&inode, 152)
                    .then(|| time(inode.i_crtime, inode.i_crtime_extra, 152)),
                xattrs: self.xattrs(ino)?,
                flags: Some(inode.i_flags),
            },
            size: u64::from(inode.i_size) | (u64::from(inode.i_size_high) << 32),
            links: u32::from(inode.i_links_count),
            rdev,
        })
    }
}

fn kind_of(inode: &Inode) -> Option<Kind> {
    Kind::from_mode(u32::from(inode.i_mode))
}

fn lib_error(op: &str, rc: sys::errcode_t) -> Error {
    // SAFETY: error_message returns a NUL-terminated string (static, or a static buffer
    // for unknown codes, copied at once).
    let message = unsafe { CStr::from_ptr(sys::error_message(rc)) }
        .to_string_lossy()
        .into_owned();
    // Damaged metadata found by libext2fs is the input's fault, not the operation's.
    const DAMAGE: &[u32] = &[
        sys::EXT2_ET_DIR_CORRUPTED,
        sys::EXT2_ET_DIR_CSUM_INVALID,
        sys::EXT2_ET_INODE_CSUM_INVALID,
        sys::EXT2_ET_EXTENT_CSUM_INVALID,
        sys::EXT2_ET_EXTENT_HEADER_BAD,
        sys::EXT2_ET_EXT_ATTR_CSUM_INVALID,
        sys::EXT2_ET_BAD_EA_HEADER,
        sys::EXT2_ET_EA_BAD_NAME_LEN,
        sys::EXT2_ET_EA_BAD_VALUE_OFFSET,
        sys::EXT2_ET_EA_BAD_VALUE_SIZE,
        sys::EXT2_ET_EA_INODE_CORRUPTED,
        sys::EXT2_ET_BLOCK_BITMAP_CSUM_INVALID,
        sys::EXT2_ET_INODE_BITMAP_CSUM_INVALID,
        sys::EXT2_ET_SB_CSUM_INVALID,
    ];
    if u32::try_from(rc).is_ok_and(|c| DAMAGE.contains(&c)) {
        return Error::Corrupt(format!("{op}: {message}"));
    }
    Error::Lib {
        op: op.to_string(),
        code: rc,
        message,
    }
}

impl Drop for Ext2Fs {
    fn drop(&mut self) {
        if !self.fs.is_null() {
            // SAFETY: we own the filesystem; ext2fs_free releases it without flushing.
            unsafe { sys::ext2fs_free(self.fs) };
        }
    }
}
