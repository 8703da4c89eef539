//! A libext2fs `io_manager` over subroot's [`BlockDevice`]: libext2fs reads and writes
//! the filesystem through it, so no file is opened by the C library.
//!
//! libext2fs opens a device by name. [`register`] files the device under a fresh name
//! (`subroot-dev:<n>`) in a process-wide table; the manager's `open` takes it out again, so
//! each name is used once and many filesystems can be open at once, from any threads.
//! A device error is kept in the shared [`DevSlot`] (libext2fs only sees an `errcode_t`),
//! so the editor can hand the original error back to its caller.

use crate::sys;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_ulong, c_ulonglong, c_void, CStr, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use subroot_formats::block::BlockDevice;

/// The device of one open filesystem, shared by the editor and its io channel.
pub(crate) struct DevSlot {
    pub dev: Arc<dyn BlockDevice>,
    /// The first device error since it was last taken.
    pub error: Mutex<Option<subroot_formats::Error>>,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
}

impl DevSlot {
    pub fn new(dev: Arc<dyn BlockDevice>) -> Arc<Self> {
        Arc::new(DevSlot {
            dev,
            error: Mutex::new(None),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
        })
    }

    /// The device error libext2fs last saw, if any (taken, so it is reported once).
    pub fn take_error(&self) -> Option<subroot_formats::Error> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn keep_error(&self, e: subroot_formats::Error) {
        let mut slot = self.error.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
    }
}

const PREFIX: &str = "subroot-dev:";

fn registry() -> &'static Mutex<HashMap<u64, Arc<DevSlot>>> {
    static REG: std::sync::OnceLock<Mutex<HashMap<u64, Arc<DevSlot>>>> = std::sync::OnceLock::new();
    REG.get_or_init(Default::default)
}

/// File `slot` under a fresh name for the manager's `open`.
pub(crate) fn register(slot: Arc<DevSlot>) -> CString {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, slot);
    CString::new(format!("{PREFIX}{id}")).expect("no NUL in the name")
}

/// Drop a registration that `open` did not take (libext2fs failed before opening).
pub(crate) fn unregister(name: &CStr) {
    if let Some(id) = parse_name(name) {
        registry()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

fn parse_name(name: &CStr) -> Option<u64> {
    name.to_str().ok()?.strip_prefix(PREFIX)?.parse().ok()
}

/// What the channel's `private_data` points to.
struct Channel {
    slot: Arc<DevSlot>,
}

/// The manager table. libext2fs never writes through its `io_manager` pointer.
struct Manager(sys::struct_io_manager);
// SAFETY: the table is immutable and holds only a pointer to a static C string and
// function pointers; sharing it between threads is sound.
unsafe impl Sync for Manager {}

static MANAGER: Manager = Manager(sys::struct_io_manager {
    magic: sys::EXT2_ET_MAGIC_IO_MANAGER as sys::errcode_t,
    name: c"subroot BlockDevice".as_ptr(),
    open: Some(open),
    close: Some(close),
    set_blksize: Some(set_blksize),
    read_blk: Some(read_blk),
    write_blk: Some(write_blk),
    flush: Some(flush),
    write_byte: Some(write_byte),
    set_option: None,
    get_stats: None,
    read_blk64: Some(read_blk64),
    write_blk64: Some(write_blk64),
    discard: Some(discard),
    cache_readahead: None,
    zeroout: None,
    reserved: [0; 14],
});

/// The manager to pass to `ext2fs_open2`.
pub(crate) fn manager() -> sys::io_manager {
    &MANAGER.0 as *const sys::struct_io_manager as sys::io_manager
}

const EIO: sys::errcode_t = 5;

/// The device behind a channel.
///
/// # Safety
/// `channel` must be a channel made by [`open`] and not yet closed.
unsafe fn channel_slot<'a>(channel: sys::io_channel) -> &'a DevSlot {
    // SAFETY: per the contract, private_data is the Box<Channel> made in `open`, alive
    // until `close` frees it.
    unsafe { &(*((*channel).private_data as *const Channel)).slot }
}

/// Bytes and device offset of a libext2fs transfer: a negative count is a byte count.
///
/// # Safety
/// As for [`channel_slot`].
unsafe fn span(channel: sys::io_channel, block: u64, count: c_int) -> Option<(usize, u64)> {
    // SAFETY: the channel is live (contract).
    let bs = unsafe { (*channel).block_size } as u64;
    let len = if count < 0 {
        u64::from(count.unsigned_abs())
    } else {
        count as u64 * bs
    };
    Some((usize::try_from(len).ok()?, block.checked_mul(bs)?))
}

unsafe extern "C" fn open(
    name: *const c_char,
    _flags: c_int,
    channel: *mut sys::io_channel,
) -> sys::errcode_t {
    if name.is_null() || channel.is_null() {
        return sys::EXT2_ET_BAD_DEVICE_NAME as sys::errcode_t;
    }
    // SAFETY: libext2fs passes the NUL-terminated name it was given.
    let cname = unsafe { CStr::from_ptr(name) };
    let Some(id) = parse_name(cname) else {
        return sys::EXT2_ET_BAD_DEVICE_NAME as sys::errcode_t;
    };
    let Some(slot) = registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id)
    else {
        return sys::EXT2_ET_BAD_DEVICE_NAME as sys::errcode_t;
    };
    // SAFETY: struct_io_channel is plain data (integers, raw pointers, Option<fn>), for
    // which all-zero bytes are a valid value (null pointers, None).
    let mut io: Box<sys::struct_io_channel> = Box::new(unsafe { std::mem::zeroed() });
    io.magic = sys::EXT2_ET_MAGIC_IO_CHANNEL as sys::errcode_t;
    io.manager = manager();
    io.name = cname.to_owned().into_raw();
    io.block_size = 1024;
    io.refcount = 1;
    io.private_data = Box::into_raw(Box::new(Channel { slot })) as *mut c_void;
    // SAFETY: `channel` is libext2fs' out-pointer (checked non-null above).
    unsafe { *channel = Box::into_raw(io) };
    0
}

unsafe extern "C" fn close(channel: sys::io_channel) -> sys::errcode_t {
    // SAFETY: libext2fs closes only channels this manager opened, once per reference.
    unsafe {
        (*channel).refcount -= 1;
        if (*channel).refcount > 0 {
            return 0;
        }
        let io = Box::from_raw(channel);
        drop(Box::from_raw(io.private_data as *mut Channel));
        drop(CString::from_raw(io.name));
    }
    0
}

unsafe extern "C" fn set_blksize(channel: sys::io_channel, blksize: c_int) -> sys::errcode_t {
    if blksize <= 0 {
        return sys::EXT2_ET_INVALID_ARGUMENT as sys::errcode_t;
    }
    // SAFETY: a live channel of this manager.
    unsafe { (*channel).block_size = blksize };
    0
}

unsafe extern "C" fn read_blk64(
    channel: sys::io_channel,
    block: c_ulonglong,
    count: c_int,
    data: *mut c_void,
) -> sys::errcode_t {
    // SAFETY: a live channel of this manager.
    let (slot, span) = unsafe { (channel_slot(channel), span(channel, block, count)) };
    let Some((len, offset)) = span else {
        return sys::EXT2_ET_INVALID_ARGUMENT as sys::errcode_t;
    };
    // SAFETY: libext2fs passes a buffer of at least the requested size.
    let buf = unsafe { std::slice::from_raw_parts_mut(data as *mut u8, len) };
    match slot.dev.read_at(buf, offset) {
        Ok(()) => {
            slot.bytes_read.fetch_add(len as u64, Ordering::Relaxed);
            0
        }
        Err(e) => {
            slot.keep_error(e);
            sys::EXT2_ET_SHORT_READ as sys::errcode_t
        }
    }
}

unsafe extern "C" fn write_blk64(
    channel: sys::io_channel,
    block: c_ulonglong,
    count: c_int,
    data: *const c_void,
) -> sys::errcode_t {
    // SAFETY: a live channel of this manager.
    let (slot, span) = unsafe { (channel_slot(channel), span(channel, block, count)) };
    let Some((len, offset)) = span else {
        return sys::EXT2_ET_INVALID_ARGUMENT as sys::errcode_t;
    };
    // SAFETY: libext2fs passes a buffer of at least the requested size.
    let buf = unsafe { std::slice::from_raw_parts(data as *const u8, len) };
    write(slot, buf, offset)
}

/// Write `buf` at byte `offset` of the slot's device, counted; a libext2fs error code.
pub(crate) fn write(slot: &DevSlot, buf: &[u8], offset: u64) -> sys::errcode_t {
    match slot.dev.write_at(buf, offset) {
        Ok(()) => {
            slot.bytes_written
                .fetch_add(buf.len() as u64, Ordering::Relaxed);
            0
        }
        Err(e) => {
            slot.keep_error(e);
            sys::EXT2_ET_SHORT_WRITE as sys::errcode_t
        }
    }
}

unsafe extern "C" fn read_blk(
    channel: sys::io_channel,
    block: c_ulong,
    count: c_int,
    data: *mut c_void,
) -> sys::errcode_t {
    // SAFETY: forwarded with the same contract.
    unsafe { read_blk64(channel, block as c_ulonglong, count, data) }
}

unsafe extern "C" fn write_blk(
    channel: sys::io_channel,
    block: c_ulong,
    count: c_int,
    data: *const c_void,
) -> sys::errcode_t {
    // SAFETY: forwarded with the same contract.
    unsafe { write_blk64(channel, block as c_ulonglong, count, data) }
}

unsafe extern "C" fn write_byte(
    channel: sys::io_channel,
    offset: c_ulong,
    count: c_int,
    data: *const c_void,
) -> sys::errcode_t {
    let Ok(len) = usize::try_from(count) else {
        return sys::EXT2_ET_INVALID_ARGUMENT as sys::errcode_t;
    };
    // SAFETY: a live channel; libext2fs passes `count` readable bytes.
    let (slot, buf) = unsafe {
        (
            channel_slot(channel),
            std::slice::from_raw_parts(data as *const u8, len),
        )
    };
    #[allow(clippy::useless_conversion)] // c_ulong is u32 on 32-bit targets
    write(slot, buf, u64::from(offset))
}

unsafe extern "C" fn flush(channel: sys::io_channel) -> sys::errcode_t {
    // SAFETY: a live channel of this manager.
    let slot = unsafe { channel_slot(channel) };
    match slot.dev.flush() {
        Ok(()) => 0,
        Err(e) => {
            slot.keep_error(e);
            EIO
        }
    }
}

/// Discarding is an optimisation a device may ignore; ours does.
unsafe extern "C" fn discard(
    _channel: sys::io_channel,
    _block: c_ulonglong,
    _count: c_ulonglong,
) -> sys::errcode_t {
    0
}
