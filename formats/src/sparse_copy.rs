//! Copying a [`BlockDevice`] into a new image file, sparsely: the sparse raw writer and the
//! data walk it shares with the qcow2 writer.
//!
//! The walk asks the source for its data/zero map one window (1 GiB) at a time, so the
//! extent list stays small whatever the size, and reads only the ranges reported as data,
//! in chunks of a few MiB aligned to the caller's block size. Reading runs on its own
//! thread a few chunks ahead of the consumer (a bounded queue of recycled buffers), so
//! reading the source overlaps with zero detection, compression and writing the output.

use crate::block::{BlockDevice, ExtentKind};
use crate::{Error, Result};
use rustix::fs::Advice;
use std::fs::File;
use std::num::NonZeroU64;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

/// The part of the source whose extent map is fetched at once.
pub(crate) const WINDOW: u64 = 1 << 30;
/// The default chunk read from the source at once (a multiple of every qcow2 cluster size).
pub(crate) const CHUNK: u64 = 2 << 20;
/// Chunks waiting between the reading thread and the consumer; with the one being read and
/// the one being consumed, at most `QUEUE + 2` chunk buffers exist.
const QUEUE: usize = 2;
/// The granularity at which [`write_raw`] leaves zero runs as holes.
const RAW_BLOCK: u64 = 4096;
/// Output written and not yet handed to the kernel for writeback, at most about this much.
const WRITEBACK_STEP: u64 = 8 << 20;

/// What a conversion wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteStats {
    /// The virtual size of the new image (qcow2 rounds it up to a multiple of 512).
    pub virtual_size: u64,
    /// Guest bytes written as data (zero runs left out).
    pub data_bytes: u64,
    /// The length of the output file.
    pub file_size: u64,
}

/// True when every byte of `buf` is zero. Works on 64-byte blocks (an OR-fold the compiler
/// turns into a few vector instructions) and stops at the first block holding data, so
/// data costs almost nothing to classify and zeros are scanned at memory speed.
pub(crate) fn all_zero(buf: &[u8]) -> bool {
    let mut blocks = buf.chunks_exact(64);
    for b in &mut blocks {
        if b.iter().fold(0u8, |acc, &x| acc | x) != 0 {
            return false;
        }
    }
    blocks.remainder().iter().all(|&x| x == 0)
}

/// What the reading thread hands to the consumer.
enum Msg {
    /// `len` bytes of `buf` hold the source at `pos`; `done` is the progress after them.
    Chunk {
        pos: u64,
        buf: Vec<u8>,
        len: usize,
        done: u64,
    },
    /// Progress only (a window without data ended).
    Progress(u64),
}

/// A chunk of the source handed to the consumer; its buffer goes back to the reading
/// thread for reuse when it is dropped (wherever that happens).
pub(crate) struct Chunk {
    buf: Vec<u8>,
    len: usize,
    back: Sender<Vec<u8>>,
}

impl Chunk {
    /// The bytes of the chunk.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&self.buf)
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        // The reader may have finished; a lost buffer is fine then.
        let _ = self.back.send(std::mem::take(&mut self.buf));
    }
}

/// Visit the data of `src` as chunks aligned to `align` (a power of two dividing
/// [`WINDOW`] and `chunk`), skipping the ranges the device reports as zero. Chunks are at
/// most `chunk` bytes and are read on a separate thread, ahead of `f`.
///
/// `f(offset, bytes)` gets the chunks in increasing order; a chunk's length is a multiple
/// of `align`, zero-padded beyond the end of the device. `progress` is called (on the
/// calling thread) with the number of bytes of the device done, monotonically, ending at
/// `src.len()`.
pub(crate) fn for_each_data_chunk(
    src: &dyn BlockDevice,
    align: u64,
    chunk: u64,
    progress: &(dyn Fn(u64) + Sync),
    mut f: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    for_each_owned_chunk(src, align, chunk, progress, |pos, c| f(pos, c.bytes()))
}

/// Run `work` on each data chunk of `src` (as [`for_each_owned_chunk`] gives them) on
/// `threads` worker threads, while this thread hands the results to `store` in guest order
/// (so the output does not depend on the number of threads). At most `threads + 2` chunks
/// are in flight; the first error of `work` or `store` ends the walk. What the compressing
/// writers (qcow2, streamOptimized VMDK) share.
pub(crate) fn map_chunks_in_order<T: Send + 'static>(
    src: &dyn BlockDevice,
    align: u64,
    chunk: u64,
    progress: &(dyn Fn(u64) + Sync),
    threads: usize,
    work: impl Fn(u64, &[u8]) -> Result<T> + Send + Sync + 'static,
    mut store: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| {
            Error::io(
                format!("starting {threads} compression threads"),
                std::io::Error::other(e.to_string()),
            )
        })?;
    let work = std::sync::Arc::new(work);
    let (done_tx, done_rx) = channel::<(u64, Result<T>)>();
    let mut order = Reorder::new(done_rx, threads + 2);
    for_each_owned_chunk(src, align, chunk, progress, |pos, c| {
        let seq = order.next_seq();
        let done_tx = done_tx.clone();
        let work = work.clone();
        pool.spawn(move || {
            let r = work(pos, c.bytes());
            drop(c);
            let _ = done_tx.send((seq, r));
        });
        order.store_ready(&mut store, false)
    })?;
    order.store_ready(&mut store, true)
}

/// Results of jobs, stored in the order the jobs were started.
struct Reorder<T> {
    rx: Receiver<(u64, Result<T>)>,
    /// Results that arrived ahead of their turn.
    ready: std::collections::BTreeMap<u64, Result<T>>,
    /// Jobs started, and results stored.
    started: u64,
    stored: u64,
    /// Jobs started and not yet stored, at most.
    limit: u64,
}

impl<T> Reorder<T> {
    fn new(rx: Receiver<(u64, Result<T>)>, limit: usize) -> Self {
        Reorder {
            rx,
            ready: std::collections::BTreeMap::new(),
            started: 0,
            stored: 0,
            limit: limit as u64,
        }
    }

    /// The sequence number of a new job.
    fn next_seq(&mut self) -> u64 {
        self.started += 1;
        self.started - 1
    }

    /// Store the results that are next in order; wait for more while over the limit of
    /// jobs in flight (or, with `all`, until every job is stored).
    fn store_ready(&mut self, store: &mut impl FnMut(T) -> Result<()>, all: bool) -> Result<()> {
        loop {
            while let Ok((seq, r)) = self.rx.try_recv() {
                self.ready.insert(seq, r);
            }
            while let Some(r) = self.ready.remove(&self.stored) {
                store(r?)?;
                self.stored += 1;
            }
            let pending = self.started - self.stored;
            if pending == 0 || (!all && pending <= self.limit) {
                return Ok(());
            }
            // Every job sends exactly one result (a panicking job aborts the process).
            let (seq, r) = self.rx.recv().map_err(|_| {
                Error::io(
                    "waiting for compressed data",
                    std::io::Error::other("a compression job ended without a result"),
                )
            })?;
            self.ready.insert(seq, r);
        }
    }
}

/// [`for_each_data_chunk`], handing over each chunk: `f` may keep it (say, give it to
/// another thread) and the reading thread gets its buffer back when it is dropped. At
/// most `QUEUE + 2` chunks exist at once, so a consumer keeping them all makes the reader
/// wait.
pub(crate) fn for_each_owned_chunk(
    src: &dyn BlockDevice,
    align: u64,
    chunk: u64,
    progress: &(dyn Fn(u64) + Sync),
    mut f: impl FnMut(u64, Chunk) -> Result<()>,
) -> Result<()> {
    if !align.is_power_of_two() || WINDOW % align != 0 || chunk % align != 0 || chunk == 0 {
        return Err(Error::InvalidArgument(format!(
            "chunk {chunk} and window {WINDOW} must be multiples of the block size {align}, \
             a power of two"
        )));
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Msg>(QUEUE);
        let (back_tx, back_rx) = channel::<Vec<u8>>();
        let reader = std::thread::Builder::new()
            .name("subroot-read".into())
            .spawn_scoped(s, {
                let stop = &stop;
                move || read_chunks(src, align, chunk, tx, &back_rx, stop)
            })
            .map_err(|e| Error::io("starting the reading thread", e))?;
        // Consume until the reader stops (done or failed) or `f` fails; dropping `rx` and
        // the senders of `back_tx` then makes a reader blocked on either end give up.
        let consumed: Result<()> = (|| {
            while let Ok(msg) = rx.recv() {
                match msg {
                    Msg::Chunk {
                        pos,
                        buf,
                        len,
                        done,
                    } => {
                        let c = Chunk {
                            buf,
                            len,
                            back: back_tx.clone(),
                        };
                        f(pos, c)?;
                        progress(done);
                    }
                    Msg::Progress(done) => progress(done),
                }
            }
            Ok(())
        })();
        drop(rx);
        drop(back_tx);
        stop.store(true, Ordering::Relaxed);
        let read = match reader.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        consumed?;
        read?;
        progress(src.len());
        Ok(())
    })
}

/// The reading side of [`for_each_data_chunk`]: walk the data map and send the chunks.
/// Returns `Ok` early when the consumer has gone away (it reports its own error).
fn read_chunks(
    src: &dyn BlockDevice,
    align: u64,
    chunk: u64,
    tx: SyncSender<Msg>,
    back: &Receiver<Vec<u8>>,
    stop: &AtomicBool,
) -> Result<()> {
    let len = src.len();
    let mut allocated = 0usize;
    let mut win = 0;
    while win < len {
        let wend = (win + WINDOW).min(len);
        let extents: Vec<_> = src
            .extents(win, wend - win)?
            .into_iter()
            .filter(|e| e.kind == ExtentKind::Data && e.len > 0)
            .collect();
        // Aligned runs that hold some data, merged when they touch.
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for e in &extents {
            if e.offset < win || e.end() > wend {
                return Err(Error::corrupt(format!(
                    "the {} device reported extent {}..{} outside the requested range {win}..{wend}",
                    src.format_name(),
                    e.offset,
                    e.end()
                )));
            }
            let a = e.offset / align * align;
            let b = e.end().div_ceil(align) * align;
            match runs.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => runs.push((a, b)),
            }
        }
        let mut first = 0; // first extent that may overlap the current chunk
        for (a, b) in runs {
            let mut pos = a;
            while pos < b {
                let n = chunk.min(b - pos);
                let end = pos + n;
                // A recycled buffer, a new one while under the limit, or wait for one.
                let mut buf = match back.try_recv() {
                    Ok(buf) => buf,
                    Err(_) if allocated < QUEUE + 2 => {
                        allocated += 1;
                        vec![0u8; chunk as usize]
                    }
                    // Wait for a chunk to be dropped; give up once the consumer has finished
                    // (even if it still holds chunks somewhere).
                    Err(_) => loop {
                        match back.recv_timeout(Duration::from_millis(50)) {
                            Ok(buf) => break buf,
                            Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => {}
                            Err(_) => return Ok(()),
                        }
                    },
                };
                let out = &mut buf[..n as usize];
                while first < extents.len() && extents[first].end() <= pos {
                    first += 1;
                }
                // Read the data extents, zero the gaps between them (never the whole buffer).
                let mut filled = pos;
                for e in extents[first..].iter().take_while(|e| e.offset < end) {
                    let s = e.offset.max(filled);
                    let t = e.end().min(end);
                    if s < t {
                        out[(filled - pos) as usize..(s - pos) as usize].fill(0);
                        src.read_at(&mut out[(s - pos) as usize..(t - pos) as usize], s)?;
                        filled = t;
                    }
                }
                out[(filled - pos) as usize..].fill(0);
                let msg = Msg::Chunk {
                    pos,
                    buf,
                    len: n as usize,
                    done: end.min(len),
                };
                if tx.send(msg).is_err() {
                    return Ok(());
                }
                pos = end;
            }
        }
        if tx.send(Msg::Progress(wend)).is_err() {
            return Ok(());
        }
        win = wend;
    }
    Ok(())
}

/// Write `buf` at offset `at` of `out` in runs, leaving its all-zero 4 KiB blocks
/// unwritten (holes, in a file whose length already covers them); returns the bytes written.
pub(crate) fn write_skipping_zeros(out: &File, buf: &[u8], at: u64) -> Result<u64> {
    let block = RAW_BLOCK as usize;
    let zero = |i: usize| all_zero(&buf[i..(i + block).min(buf.len())]);
    let mut written = 0;
    let mut i = 0;
    while i < buf.len() {
        if zero(i) {
            i += block;
            continue;
        }
        let mut j = i + block;
        while j < buf.len() && !zero(j) {
            j += block;
        }
        let bytes = &buf[i..j.min(buf.len())];
        let start = at + i as u64;
        out.write_all_at(bytes, start).map_err(|e| {
            Error::io(
                format!(
                    "writing {} bytes at offset {start} of the output",
                    bytes.len()
                ),
                e,
            )
        })?;
        written += bytes.len() as u64;
        i = j;
    }
    Ok(written)
}

/// Hands written output to the kernel for writeback as the copy goes, so the final sync
/// finds little left to do and writeback overlaps with the copy instead of following it.
///
/// The hints are given on a thread of their own (starting writeback costs the caller the
/// block allocation and I/O submission), which ends when the `Writeback` is dropped.
#[derive(Debug)]
pub(crate) struct Writeback {
    /// Everything below this offset has been handed over.
    started: u64,
    /// Ranges to hand over, to the hinting thread.
    tx: Option<Sender<(u64, NonZeroU64)>>,
    thread: Option<JoinHandle<()>>,
}

impl Writeback {
    /// Start the hinting thread for `out`. Without it (the file cannot be duplicated or
    /// no thread can be started), [`Writeback::advance`] does nothing.
    pub(crate) fn new(out: &File) -> Writeback {
        let mut wb = Writeback {
            started: 0,
            tx: None,
            thread: None,
        };
        let Ok(file) = out.try_clone() else {
            return wb;
        };
        let (tx, rx) = channel::<(u64, NonZeroU64)>();
        let spawned = std::thread::Builder::new()
            .name("subroot-writeback".into())
            .spawn(move || {
                for (off, len) in rx {
                    // POSIX_FADV_DONTNEED starts writeback of the dirty pages in the range
                    // (and drops the clean ones). Only a hint: errors change nothing.
                    let _ = rustix::fs::fadvise(&file, off, Some(len), Advice::DontNeed);
                }
            });
        if let Ok(t) = spawned {
            wb.tx = Some(tx);
            wb.thread = Some(t);
        }
        wb
    }

    /// Note that the output will not be written below `upto` any more (or only rarely):
    /// start writeback of what lies more than [`WRITEBACK_STEP`] behind it.
    pub(crate) fn advance(&mut self, upto: u64) {
        let Some(target) = upto.checked_sub(WRITEBACK_STEP) else {
            return;
        };
        if target < self.started.saturating_add(WRITEBACK_STEP) {
            return;
        }
        if let (Some(tx), Some(n)) = (&self.tx, NonZeroU64::new(target - self.started)) {
            let _ = tx.send((self.started, n));
        }
        self.started = target;
    }

    /// Wait for the hints given so far (before the final sync); later ones do nothing.
    pub(crate) fn finish(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Write `src` as a sparse raw image into `out` (an empty file opened read+write): set its
/// length, then write only non-zero data. Zero runs (4 KiB granularity), including those
/// inside data extents, are left as holes. Ends with `sync_all`.
///
/// Calls `progress(bytes_of_the_device_done)` now and then, monotonically, ending at
/// `src.len()`.
pub fn write_raw(
    src: &dyn BlockDevice,
    out: &File,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<WriteStats> {
    raw_copy(src, out, progress, true)
}

/// [`write_raw`] for scratch files: the same sparse copy, without handing the output to
/// writeback as it goes and without the final sync (a scratch copy that is read back at
/// once and then deleted gains nothing from either, and the sync costs a full write to
/// the disk).
pub fn copy_raw(
    src: &dyn BlockDevice,
    out: &File,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<WriteStats> {
    raw_copy(src, out, progress, false)
}

pub(crate) fn raw_copy(
    src: &dyn BlockDevice,
    out: &File,
    progress: &(dyn Fn(u64) + Sync),
    durable: bool,
) -> Result<WriteStats> {
    let len = src.len();
    out.set_len(len)
        .map_err(|e| Error::io(format!("setting the output size to {len} bytes"), e))?;
    let mut data_bytes = 0u64;
    let mut writeback = durable.then(|| Writeback::new(out));
    for_each_data_chunk(src, RAW_BLOCK, CHUNK, progress, |pos, buf| {
        let real = buf.len().min((len - pos) as usize);
        data_bytes += write_skipping_zeros(out, &buf[..real], pos)?;
        if let Some(w) = &mut writeback {
            w.advance(pos + buf.len() as u64);
        }
        Ok(())
    })?;
    if let Some(mut w) = writeback {
        w.finish();
        out.sync_all()
            .map_err(|e| Error::io("syncing the output", e))?;
    }
    Ok(WriteStats {
        virtual_size: len,
        data_bytes,
        file_size: len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MemoryDevice;

    #[test]
    fn zero_detection_matches_a_byte_loop() {
        for len in [0usize, 1, 63, 64, 65, 127, 4096, 4097, 10000] {
            assert!(all_zero(&vec![0u8; len]));
            for at in [0, len / 3, len / 2, len.saturating_sub(1)] {
                if at < len {
                    let mut b = vec![0u8; len];
                    b[at] = 0x80;
                    assert!(!all_zero(&b), "len {len} at {at}");
                }
            }
        }
    }

    /// The threaded walk delivers every data byte once, in order, with zero-filled gaps,
    /// and stops cleanly when the consumer fails.
    #[test]
    fn walk_delivers_data_in_order_and_stops_on_error() {
        let size: u64 = 9 << 20;
        let dev = MemoryDevice::new(size as usize);
        let mut expect = vec![0u8; size as usize];
        for (i, off) in [4096u64, 3 << 20, (5 << 20) + 100, size - 1]
            .iter()
            .enumerate()
        {
            let data = vec![i as u8 + 1; 5000.min((size - off) as usize)];
            dev.write_at(&data, *off).unwrap();
            expect[*off as usize..*off as usize + data.len()].copy_from_slice(&data);
        }
        let mut got = vec![0u8; size as usize];
        let mut last = 0;
        let mut seen = std::sync::Mutex::new(0u64);
        for_each_data_chunk(
            &dev,
            4096,
            1 << 20,
            &|d| {
                let mut s = seen.lock().unwrap();
                assert!(d >= *s);
                *s = d;
            },
            |pos, buf| {
                assert!(pos >= last && pos % 4096 == 0 && buf.len() % 4096 == 0);
                last = pos + buf.len() as u64;
                let n = buf.len().min((size - pos) as usize);
                got[pos as usize..pos as usize + n].copy_from_slice(&buf[..n]);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(*seen.get_mut().unwrap(), size);
        assert!(got == expect);

        let mut calls = 0;
        let r = for_each_data_chunk(&dev, 4096, 4096, &|_| {}, |_, _| {
            calls += 1;
            Err(Error::InvalidArgument("stop".into()))
        });
        assert!(matches!(r, Err(Error::InvalidArgument(m)) if m == "stop"));
        assert_eq!(calls, 1);
    }
}
