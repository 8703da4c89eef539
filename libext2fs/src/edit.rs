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

use crate::error::{Error, Result, Shown};
use crate::io::{self, DevSlot};
use crate::sys;
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

/// `EXT2_FLAG_SKIP_MMP` (ext2fs.h): without it libext2fs opens the device *file* by name
/// to read the MMP block; we refuse MMP filesystems ourselves instead.
const FLAG_SKIP_MMP: u32 = 0x100000;

// Feature bits (ext2_fs.h).
const COMPAT_EXT_ATTR: u32 = 0x8;
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
                (sys::EXT2_FLAG_RW | sys::EXT2_FLAG_64BITS | FLAG_SKIP_MMP) as c_int,
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
        let names: HashMap<Vec<u8>, u32> = children.into_iter().collect();
        let found = names.get(name).copied();
        self.names.borrow_mut().insert(dir, names);
        Ok(found)
    }

    /// Add the entry `name` -> `ino` to directory `dir` (growing it when full).
    fn add_name(&self, dir: u32, name: &CStr, ino: u32, kind: Kind) -> Result<()> {
        self.with_dir_space(dir, "linking", || {
            // SAFETY: a live filesystem; `name` a C string.
            unsafe { sys::ext2fs_link(self.fs, dir, name.as_ptr(), ino, file_type(kind)) }
        })?;
        if let Some(names) = self.names.borrow_mut().get_mut(&dir) {
            names.insert(name.to_bytes().to_vec(), ino);
        }
        Ok(())
    }

    /// Remove the entry `name` (naming `ino`) from directory `dir`.
    fn remove_name(&self, dir: u32, name: &CStr, ino: u32) -> Result<()> {
        // SAFETY: a live filesystem; `name` a C string.
        self.call("unlinking", unsafe {
            sys::ext2fs_unlink(self.fs, dir, name.as_ptr(), ino, 0)
        })?;
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

    // ---- xattrs -------------------------------------------------------------------

    fn has_ext_attr(&self) -> bool {
        self.sb().s_feature_compat & COMPAT_EXT_ATTR != 0
    }

    /// Open the xattr handle of `ino`, run `f`, close (which writes the changes).
    fn with_xattrs<T>(
        &self,
        ino: u32,
        f: impl FnOnce(*mut sys::ext2_xattr_handle) -> Result<T>,
    ) -> Result<T> {
        let mut h: *mut sys::ext2_xattr_handle = std::ptr::null_mut();
        // SAFETY: a live filesystem; `h` receives a handle we close below.
        self.call("opening xattrs", unsafe {
            sys::ext2fs_xattrs_open(self.fs, ino, &mut h)
        })?;
        // SAFETY: `h` is the open handle.
        let read = self.call("reading xattrs", unsafe { sys::ext2fs_xattrs_read(h) });
        let out = read.and_then(|()| f(h));
        // SAFETY: closes the handle opened above (exactly once).
        let closed = self.call("writing xattrs", unsafe {
            sys::ext2fs_xattrs_close(&mut h)
        });
        let out = out?;
        closed?;
        Ok(out)
    }

    fn xattrs_of(&self, h: *mut sys::ext2_xattr_handle) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        // SAFETY: `h` is open; the callback gets `out` back as its data pointer.
        let rc = unsafe {
            sys::ext2fs_xattrs_iterate(
                h,
                Some(collect_xattr),
                &mut out as *mut Vec<(Vec<u8>, Vec<u8>)> as *mut c_void,
            )
        };
        self.call("listing xattrs", rc)?;
        Ok(out)
    }

    /// The extended attributes of `ino` (ACLs in the xattr encoding).
    fn xattrs(&self, ino: u32) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if !self.has_ext_attr() {
            return Ok(Vec::new());
        }
        self.with_xattrs(ino, |h| self.xattrs_of(h))
    }

    /// Replace the whole xattr set of `ino` by `want`.
    fn set_xattrs(&self, ino: u32, want: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        if !self.has_ext_attr() {
            if want.is_empty() {
                return Ok(());
            }
            return Err(Error::Unsupported {
                feature: "no ext_attr feature (extended attributes cannot be stored)".into(),
            });
        }
        let want = want
            .iter()
            .map(|(n, v)| Ok((cstr(n, "an xattr name")?, v)))
            .collect::<Result<Vec<_>>>()?;
        self.with_xattrs(ino, |h| {
            for (name, _) in self.xattrs_of(h)? {
                let name = cstr(&name, "an xattr name")?;
                // SAFETY: `h` is open, `name` a C string.
                self.call("removing an xattr", unsafe {
                    sys::ext2fs_xattr_remove(h, name.as_ptr())
                })?;
            }
            for (name, value) in &want {
                // SAFETY: `h` is open; value points at value.len() readable bytes.
                let rc = unsafe {
                    sys::ext2fs_xattr_set(
                        h,
                        name.as_ptr(),
                        value.as_ptr() as *const c_void,
                        value.len() as sys::size_t,
                    )
                };
                self.call(&format!("setting xattr {}", name.to_string_lossy()), rc)?;
            }
            Ok(())
        })
    }

    // ---- metadata -----------------------------------------------------------------

    /// Write owner, permissions, times and user flags of `meta` into inode `ino`.
    fn apply_meta(&self, ino: u32, meta: &Metadata) -> Result<()> {
        let mut inode = self.read_inode(ino)?;
        inode.i_mode = (u32::from(inode.i_mode) & 0o170000 | (meta.perm & 0o7777)) as u16;
        inode.i_uid = meta.uid as u16;
        inode.i_gid = meta.gid as u16;
        // Writing a union field of plain integers is safe (the Linux variant of osd2).
        inode.osd2.linux2.l_i_uid_high = (meta.uid >> 16) as u16;
        inode.osd2.linux2.l_i_gid_high = (meta.gid >> 16) as u16;
        let ex = [
            self.has_extra(&inode, 136),
            self.has_extra(&inode, 140),
            self.has_extra(&inode, 144),
            self.has_extra(&inode, 152),
        ];
        (inode.i_ctime, inode.i_ctime_extra) = encode_time(meta.ctime);
        (inode.i_mtime, inode.i_mtime_extra) = encode_time(meta.mtime);
        (inode.i_atime, inode.i_atime_extra) = encode_time(meta.atime);
        if !ex[0] {
            inode.i_ctime_extra = 0;
        }
        if !ex[1] {
            inode.i_mtime_extra = 0;
        }
        if !ex[2] {
            inode.i_atime_extra = 0;
        }
        if ex[3] {
            (inode.i_crtime, inode.i_crtime_extra) = meta.crtime.map(encode_time).unwrap_or((0, 0));
        }
        if let Some(flags) = meta.flags {
            inode.i_flags = (inode.i_flags & !USER_FLAGS) | (flags & USER_FLAGS);
        }
        self.write_inode(ino, &mut inode)
    }

    /// Set owner, permissions, times, user flags and the whole xattr set of `path`.
    pub fn set_meta(&mut self, path: &[u8], meta: &Metadata) -> Result<()> {
        let ino = self.require(path)?;
        self.set_xattrs(ino, &meta.xattrs)?;
        self.apply_meta(ino, meta)
    }

    // ---- creating -----------------------------------------------------------------

    /// Run a libext2fs call that adds a name to `dir`, growing the directory when it is
    /// full (as debugfs and mke2fs -d do).
    fn with_dir_space(
        &self,
        dir: u32,
        op: &str,
        mut f: impl FnMut() -> sys::errcode_t,
    ) -> Result<()> {
        loop {
            let rc = f();
            if rc as u32 != sys::EXT2_ET_DIR_NO_SPACE {
                return self.call(op, rc);
            }
            // SAFETY: a live filesystem; `dir` is a directory inode.
            self.call("growing a directory", unsafe {
                sys::ext2fs_expand_dir(self.fs, dir)
            })?;
        }
    }

    /// The parent inode and name of a new entry at `path`, which must not exist yet.
    fn new_slot<'p>(&mut self, path: &'p [u8]) -> Result<(u32, &'p [u8], CString)> {
        Self::check_path(path)?;
        if path.is_empty() {
            return Err(Error::Exists(path.to_vec()));
        }
        let (parent, name) = split(path);
        let dir = self.require_dir(parent)?;
        if self.lookup_in(dir, name, parent)?.is_some() {
            return Err(Error::Exists(path.to_vec()));
        }
        if name.len() > 255 {
            return Err(Error::Invalid(format!(
                "the name of {} is longer than 255 bytes",
                Shown(path)
            )));
        }
        self.touched.insert(parent.to_vec());
        Ok((dir, name, cstr(name, "a file name")?))
    }

    /// Allocate an inode for a new non-directory, link it into `dir` and write it.
    fn new_inode(
        &self,
        dir: u32,
        name: &CString,
        kind: Kind,
        init: impl FnOnce(&mut Inode),
    ) -> Result<u32> {
        let mode = kind.mode_bits();
        let mut ino = 0;
        // SAFETY: a live filesystem with its bitmaps read.
        self.call("allocating an inode", unsafe {
            sys::ext2fs_new_inode(self.fs, dir, mode as c_int, std::ptr::null_mut(), &mut ino)
        })?;
        self.add_name(dir, name, ino, kind)?;
        // SAFETY: marks the inode in use in the bitmap and counters.
        unsafe { sys::ext2fs_inode_alloc_stats2(self.fs, ino, 1, 0) };
        // SAFETY: Inode is plain data; all-zero is valid.
        let mut inode: Inode = unsafe { std::mem::zeroed() };
        inode.i_mode = mode as u16;
        inode.i_links_count = 1;
        init(&mut inode);
        // SAFETY: a live filesystem; write_new_inode reads a struct ext2_inode (a prefix of
        // the large one) and fills in the large inode's extra fields itself.
        self.call("writing a new inode", unsafe {
            sys::ext2fs_write_new_inode(
                self.fs,
                ino,
                &mut inode as *mut Inode as *mut sys::ext2_inode,
            )
        })?;
        Ok(ino)
    }

    /// Create `entry` (any kind but a hard link: see [`Ext2Fs::link`]) with its full
    /// metadata; a regular file's data comes from `content` (holes are kept). Returns its
    /// inode number.
    pub fn create(&mut self, entry: &Entry, content: Option<&mut dyn Content>) -> Result<u32> {
        let path = entry.path.as_slice();
        let (dir, _, cname) = self.new_slot(path)?;
        let has_extents = self.sb().s_feature_incompat & 0x40 != 0;
        let ino = match entry.kind {
            Kind::Dir => {
                self.with_dir_space(dir, "making a directory", || {
                    // SAFETY: a live filesystem; `cname` a C string.
                    unsafe { sys::ext2fs_mkdir(self.fs, dir, 0, cname.as_ptr()) }
                })?;
                self.touched.insert(path.to_vec());
                self.names.borrow_mut().remove(&dir);
                self.require(path)?
            }
            Kind::Symlink => {
                let target = entry.link_target.as_deref().ok_or_else(|| {
                    Error::Invalid(format!("symlink {} has no target", Shown(path)))
                })?;
                let ctarget = cstr(target, "a symlink target")?;
                if target.is_empty() || target.len() >= self.block_size() {
                    return Err(Error::Invalid(format!(
                        "symlink {}: a target of {} bytes (1 to {} allowed)",
                        Shown(path),
                        target.len(),
                        self.block_size() - 1
                    )));
                }
                self.with_dir_space(dir, "making a symlink", || {
                    // SAFETY: a live filesystem; C strings.
                    unsafe {
                        sys::ext2fs_symlink(self.fs, dir, 0, cname.as_ptr(), ctarget.as_ptr())
                    }
                })?;
                self.names.borrow_mut().remove(&dir);
                self.require(path)?
            }
            Kind::File => {
                let content = content.ok_or_else(|| {
                    Error::Invalid(format!("file {} comes without content", Shown(path)))
                })?;
                let fs = self.fs;
                let ino = self.new_inode(dir, &cname, Kind::File, |inode| {
                    if has_extents {
                        let mut h: sys::ext2_extent_handle_t = std::ptr::null_mut();
                        // SAFETY: with an inode lacking EXTENTS_FL, extent_open2 only
                        // writes an empty extent header into `inode` (and sets the flag);
                        // the handle is freed at once.
                        unsafe {
                            if sys::ext2fs_extent_open2(
                                fs,
                                0,
                                inode as *mut Inode as *mut sys::ext2_inode,
                                &mut h,
                            ) == 0
                            {
                                sys::ext2fs_extent_free(h);
                            }
                        }
                    }
                })?;
                let len = self.write_content(ino, content, 0)?;
                if len != entry.size {
                    return Err(Error::Invalid(format!(
                        "file {}: the content holds {len} bytes, the entry says {}",
                        Shown(path),
                        entry.size
                    )));
                }
                ino
            }
            Kind::CharDevice | Kind::BlockDevice | Kind::Fifo | Kind::Socket => {
                let rdev = encode_rdev(entry.rdev);
                let dev = matches!(entry.kind, Kind::CharDevice | Kind::BlockDevice);
                self.new_inode(dir, &cname, entry.kind, |inode| {
                    if dev {
                        inode.i_block[0] = rdev[0];
                        inode.i_block[1] = rdev[1];
                    }
                })?
            }
        };
        self.set_xattrs(ino, &entry.meta.xattrs)?;
        self.apply_meta(ino, &entry.meta)?;
        Ok(ino)
    }

    fn block_size(&self) -> usize {
        // SAFETY: a live filesystem.
        unsafe { (*self.fs).blocksize as usize }
    }

    /// Write `content` into file `ino` from byte `start`, leaving its holes unwritten, and
    /// set the size to `start` + the content's length (returned).
    fn write_content(&self, ino: u32, content: &mut dyn Content, start: u64) -> Result<u64> {
        let extents = content.extents()?;
        let len = extents.last().map_or(0, |e| e.end());
        let mut file: sys::ext2_file_t = std::ptr::null_mut();
        // SAFETY: a live filesystem; `file` receives a handle closed below.
        self.call("opening a file", unsafe {
            sys::ext2fs_file_open(self.fs, ino, sys::EXT2_FILE_WRITE as c_int, &mut file)
        })?;
        let wrote = self.fill(file, content, &extents, start, len);
        // SAFETY: closes (and flushes) the handle opened above, once.
        let closed = self.call("writing a file", unsafe { sys::ext2fs_file_close(file) });
        wrote?;
        closed?;
        Ok(len)
    }

    fn fill(
        &self,
        file: sys::ext2_file_t,
        content: &mut dyn Content,
        extents: &[subroot_formats::block::Extent],
        start: u64,
        len: u64,
    ) -> Result<()> {
        let mut buf = vec![0u8; 256 << 10];
        let mut pos = 0u64;
        for e in extents {
            if e.offset > pos {
                content.skip(e.offset - pos)?;
                pos = e.offset;
            }
            if e.kind == ExtentKind::Zero {
                continue;
            }
            // SAFETY: a live file handle.
            self.call("seeking in a file", unsafe {
                sys::ext2fs_file_llseek(
                    file,
                    start + e.offset,
                    sys::EXT2_SEEK_SET as c_int,
                    std::ptr::null_mut(),
                )
            })?;
            let mut left = e.len;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                content
                    .read_exact(&mut buf[..want])
                    .map_err(|err| subroot_formats::Error::io("reading file content", err))?;
                let mut done = 0usize;
                while done < want {
                    let mut n: c_uint = 0;
                    // SAFETY: a live file handle; the buffer holds `want - done` bytes.
                    self.call("writing file data", unsafe {
                        sys::ext2fs_file_write(
                            file,
                            buf[done..].as_ptr() as *const c_void,
                            (want - done) as c_uint,
                            &mut n,
                        )
                    })?;
                    if n == 0 {
                        return Err(Error::Corrupt("libext2fs wrote no bytes".into()));
                    }
                    done += n as usize;
                }
                left -= want as u64;
            }
            pos = e.end();
        }
        // SAFETY: a live file handle.
        self.call("setting a file size", unsafe {
            sys::ext2fs_file_set_size2(file, (start + len) as i64)
        })
    }

    /// Add the name `new` for the existing non-directory `existing` (a hard link).
    pub fn link(&mut self, existing: &[u8], new: &[u8]) -> Result<()> {
        let ino = self.require(existing)?;
        let mut inode = self.read_inode(ino)?;
        let kind =
            kind_of(&inode).ok_or_else(|| Error::Corrupt(format!("inode {ino} has a bad mode")))?;
        if kind == Kind::Dir {
            return Err(Error::IsADirectory(existing.to_vec()));
        }
        if inode.i_links_count >= 65000 {
            return Err(Error::Invalid(format!(
                "{} has too many links",
                Shown(existing)
            )));
        }
        let (dir, _, cname) = self.new_slot(new)?;
        self.add_name(dir, &cname, ino, kind)?;
        inode.i_links_count += 1;
        self.write_inode(ino, &mut inode)
    }

    /// Copy the tree `src` (everything under its root) to `dest`, which must not exist
    /// or be a directory (then the source root's metadata is applied to it). Hard links
    /// of the source (entries sharing a `hardlink_id`) stay hard links. Returns the
    /// number of entries written.
    pub fn add_tree(&mut self, src: &dyn TreeSource, dest: &[u8]) -> Result<u64> {
        Self::check_path(dest)?;
        let mut links: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut count = 0u64;
        let mut failed: Option<Error> = None;
        let walked = src.walk(b"", &mut |e, content| {
            let mut path = dest.to_vec();
            if !e.path.is_empty() {
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(&e.path);
            }
            let done = (|| {
                if e.path.is_empty() && e.kind == Kind::Dir && self.lookup(&path)?.is_some() {
                    return self.set_meta(&path, &e.meta);
                }
                if let Some(first) = e.hardlink_id.and_then(|id| links.get(&id)) {
                    return self.link(&first.clone(), &path);
                }
                let mut entry = e.clone();
                entry.path = path.clone();
                self.create(&entry, content)?;
                if let Some(id) = e.hardlink_id {
                    links.insert(id, path.clone());
                }
                Ok(())
            })();
            count += 1;
            done.map_err(|err| {
                failed = Some(err);
                subroot_formats::Error::InvalidArgument("the ext editor failed".into())
            })
        });
        if let Some(err) = failed {
            return Err(err);
        }
        walked?;
        Ok(count)
    }

    // ---- removing -----------------------------------------------------------------

    /// The entries of directory `ino` other than `.` and `..`.
    fn children(&self, ino: u32) -> Result<Vec<(Vec<u8>, u32)>> {
        self.scan(ino)
            .or_else(|rc| self.call("reading a directory", rc).map(|_| Vec::new()))
    }

    /// As [`Ext2Fs::children`], with libext2fs' error code.
    fn scan(&self, ino: u32) -> std::result::Result<Vec<(Vec<u8>, u32)>, sys::errcode_t> {
        let mut out: Vec<(Vec<u8>, u32)> = Vec::new();
        // SAFETY: a live filesystem; the callback gets `out` back as priv_data.
        let rc = unsafe {
            sys::ext2fs_dir_iterate2(
                self.fs,
                ino,
                0,
                std::ptr::null_mut(),
                Some(collect_dirent),
                &mut out as *mut Vec<(Vec<u8>, u32)> as *mut c_void,
            )
        };
        if rc != 0 {
            return Err(rc);
        }
        Ok(out)
    }

    /// Drop one link of `ino`; free it (xattrs, blocks, inode) when it was the last.
    /// `parent` is the directory a removed directory was in (its link count drops).
    fn drop_link(&self, ino: u32, parent: u32) -> Result<()> {
        let mut inode = self.read_inode(ino)?;
        let is_dir = kind_of(&inode) == Some(Kind::Dir);
        if is_dir {
            let mut p = self.read_inode(parent)?;
            // A count of 1 means "too many to count" (dir_nlink): leave it.
            if p.i_links_count > 2 {
                p.i_links_count -= 1;
                self.write_inode(parent, &mut p)?;
            }
            inode.i_links_count = 0;
        } else {
            inode.i_links_count = inode.i_links_count.saturating_sub(1);
        }
        if inode.i_links_count > 0 {
            return self.write_inode(ino, &mut inode);
        }
        if self.has_ext_attr() {
            self.set_xattrs(ino, &[])?;
            inode = self.read_inode(ino)?;
        }
        // SAFETY: a live filesystem; the inode buffer is a full large inode.
        if unsafe {
            sys::ext2fs_inode_has_valid_blocks2(
                self.fs,
                &mut inode as *mut Inode as *mut sys::ext2_inode,
            )
        } != 0
        {
            // SAFETY: as above; punch frees every block and writes the inode back.
            self.call("freeing blocks", unsafe {
                sys::ext2fs_punch(
                    self.fs,
                    ino,
                    &mut inode as *mut Inode as *mut sys::ext2_inode,
                    std::ptr::null_mut(),
                    0,
                    !0,
                )
            })?;
            inode = self.read_inode(ino)?;
        }
        inode.i_links_count = 0;
        inode.i_dtime = (self.now() as u32).max(1);
        self.write_inode(ino, &mut inode)?;
        // SAFETY: marks the inode free in the bitmap and counters.
        unsafe { sys::ext2fs_inode_alloc_stats2(self.fs, ino, -1, c_int::from(is_dir)) };
        self.names.borrow_mut().remove(&ino);
        Ok(())
    }

    /// Remove the name `path`; the inode goes with its last link. A directory must be
    /// empty ([`Error::NotEmpty`]); see [`Ext2Fs::remove_tree`].
    pub fn unlink(&mut self, path: &[u8]) -> Result<()> {
        self.remove(path, false)
    }

    /// Remove `path` and, for a directory, everything below it (`rm -r`).
    pub fn remove_tree(&mut self, path: &[u8]) -> Result<()> {
        self.remove(path, true)
    }

    fn remove(&mut self, path: &[u8], recursive: bool) -> Result<()> {
        Self::check_path(path)?;
        if path.is_empty() {
            return Err(Error::Invalid(
                "the root directory cannot be removed".into(),
            ));
        }
        let ino = self.require(path)?;
        let (parent, name) = split(path);
        let dir = self.require_dir(parent)?;
        if kind_of(&self.read_inode(ino)?) == Some(Kind::Dir) {
            if recursive {
                self.empty_dir(ino)?;
            } else if !self.children(ino)?.is_empty() {
                return Err(Error::NotEmpty(path.to_vec()));
            }
        }
        let cname = cstr(name, "a file name")?;
        self.remove_name(dir, &cname, ino)?;
        self.touched.insert(parent.to_vec());
        self.drop_link(ino, dir)
    }

    /// Drop every entry below directory `ino` (its own entries stay: it is freed next).
    fn empty_dir(&self, ino: u32) -> Result<()> {
        for (_, child) in self.children(ino)? {
            if kind_of(&self.read_inode(child)?) == Some(Kind::Dir) {
                self.empty_dir(child)?;
            }
            self.drop_link(child, ino)?;
        }
        Ok(())
    }

    // ---- moving -------------------------------------------------------------------

    /// Move `from` to `to` (within or between directories). An existing `to` is replaced
    /// when both are non-directories, or when `to` is an empty directory and `from` one.
    pub fn rename(&mut self, from: &[u8], to: &[u8]) -> Result<()> {
        Self::check_path(from)?;
        Self::check_path(to)?;
        if from.is_empty() || to.is_empty() {
            return Err(Error::Invalid("the root directory cannot be moved".into()));
        }
        if from == to {
            return Ok(());
        }
        let ino = self.require(from)?;
        let inode = self.read_inode(ino)?;
        let kind =
            kind_of(&inode).ok_or_else(|| Error::Corrupt(format!("inode {ino} has a bad mode")))?;
        if kind == Kind::Dir && to.starts_with(from) && to.get(from.len()) == Some(&b'/') {
            return Err(Error::Invalid(format!(
                "cannot move {} into itself ({})",
                Shown(from),
                Shown(to)
            )));
        }
        if let Some(old) = self.lookup(to)? {
            let old_dir = kind_of(&self.read_inode(old)?) == Some(Kind::Dir);
            match (kind == Kind::Dir, old_dir) {
                (false, false) | (true, true) => self.unlink(to)?,
                (false, true) => return Err(Error::IsADirectory(to.to_vec())),
                (true, false) => return Err(Error::NotADirectory(to.to_vec())),
            }
        }
        let (from_parent, from_name) = split(from);
        let from_dir = self.require_dir(from_parent)?;
        let (to_dir, _, to_name) = self.new_slot(to)?;
        self.add_name(to_dir, &to_name, ino, kind)?;
        let cfrom = cstr(from_name, "a file name")?;
        self.remove_name(from_dir, &cfrom, ino)?;
        self.touched.insert(from_parent.to_vec());
        if kind == Kind::Dir && from_dir != to_dir {
            let mut parent = to_dir;
            // SAFETY: a live filesystem; the callback rewrites `..` to `parent` and
            // libext2fs writes the block back with its checksum.
            self.call("updating `..`", unsafe {
                sys::ext2fs_dir_iterate2(
                    self.fs,
                    ino,
                    0,
                    std::ptr::null_mut(),
                    Some(set_dotdot),
                    &mut parent as *mut u32 as *mut c_void,
                )
            })?;
            self.touched.insert(to.to_vec());
            let mut old = self.read_inode(from_dir)?;
            if old.i_links_count > 2 {
                old.i_links_count -= 1;
                self.write_inode(from_dir, &mut old)?;
            }
            let mut new = self.read_inode(to_dir)?;
            if new.i_links_count > 1 && new.i_links_count < 64999 {
                new.i_links_count += 1;
            } else {
                new.i_links_count = 1;
            }
            self.write_inode(to_dir, &mut new)?;
        }
        Ok(())
    }

    // ---- contents -----------------------------------------------------------------

    fn require_file(&self, path: &[u8]) -> Result<u32> {
        let ino = self.require(path)?;
        match kind_of(&self.read_inode(ino)?) {
            Some(Kind::File) => Ok(ino),
            Some(Kind::Dir) => Err(Error::IsADirectory(path.to_vec())),
            _ => Err(Error::Invalid(format!(
                "{} is not a regular file",
                Shown(path)
            ))),
        }
    }

    /// Replace the data of file `path` by `content`, keeping its inode and metadata.
    pub fn replace_content(&mut self, path: &[u8], content: &mut dyn Content) -> Result<()> {
        let ino = self.require_file(path)?;
        let mut inode = self.read_inode(ino)?;
        // SAFETY: a live filesystem; punch frees every block and writes the inode back.
        self.call("freeing blocks", unsafe {
            sys::ext2fs_punch(
                self.fs,
                ino,
                &mut inode as *mut Inode as *mut sys::ext2_inode,
                std::ptr::null_mut(),
                0,
                !0,
            )
        })?;
        let mut inode = self.read_inode(ino)?;
        inode.i_size = 0;
        inode.i_size_high = 0;
        self.write_inode(ino, &mut inode)?;
        self.write_content(ino, content, 0).map(|_| ())
    }

    /// Cut or extend (with a hole) file `path` to `size` bytes.
    pub fn truncate(&mut self, path: &[u8], size: u64) -> Result<()> {
        let ino = self.require_file(path)?;
        let mut file: sys::ext2_file_t = std::ptr::null_mut();
        // SAFETY: a live filesystem; `file` receives a handle closed below.
        self.call("opening a file", unsafe {
            sys::ext2fs_file_open(self.fs, ino, sys::EXT2_FILE_WRITE as c_int, &mut file)
        })?;
        // SAFETY: the open handle.
        let set = self.call("truncating", unsafe {
            sys::ext2fs_file_set_size2(file, size as i64)
        });
        // SAFETY: closes the handle once.
        let closed = self.call("writing a file", unsafe { sys::ext2fs_file_close(file) });
        set?;
        closed
    }

    /// Add `content` at the end of file `path`.
    pub fn append(&mut self, path: &[u8], content: &mut dyn Content) -> Result<()> {
        let ino = self.require_file(path)?;
        let inode = self.read_inode(ino)?;
        let size = u64::from(inode.i_size) | (u64::from(inode.i_size_high) << 32);
        self.write_content(ino, content, size).map(|_| ())
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
