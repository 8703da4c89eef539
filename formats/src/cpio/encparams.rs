//! Memory-bounded compressor settings: the encoders of [`super::compress`] stay within
//! [`ENCODER_MEMORY_BUDGET`] at every level, and their output never depends on the number of
//! worker threads.
//!
//! - zstd: the level's own parameters with the match tables capped (hash log ≤ 21 and
//!   chain log ≤ 20: 8 + 4 MiB) and the window capped at 4 MiB (log 22; the kernel's streaming zstd
//!   decompressor accepts windows up to 2^27 and allocates by the frame's window size);
//!   multithreaded with a fixed 4 MiB job size (so the frame is the same for 1 or N
//!   workers), with as many workers as the budget allows, at most the CPU count and 8.
//! - xz / lzma: the preset with its dictionary capped at 4 MiB (the kernel's decoders take
//!   any dictionary; the encoder needs about 12× the dictionary).
//! - gzip, bzip2 and lz4 need well under the budget at every level.

/// Memory the compressor of one segment may use, all worker threads included.
pub const ENCODER_MEMORY_BUDGET: u64 = 64 << 20;

/// zstd's default (windowLog, chainLog, hashLog) for inputs over 256 KiB, levels 1..=19
/// (`lib/compress/clevels.h`, as `zstd --show-default-cparams` prints them).
const ZSTD_DEFAULTS: [(u32, u32, u32); 19] = [
    (19, 13, 14),
    (20, 15, 16),
    (21, 16, 17),
    (21, 18, 18),
    (21, 18, 19),
    (21, 18, 19),
    (21, 19, 20),
    (21, 19, 20),
    (22, 20, 21),
    (22, 21, 22),
    (22, 21, 22),
    (22, 22, 23),
    (22, 22, 22),
    (22, 22, 23),
    (22, 23, 23),
    (22, 22, 22),
    (23, 23, 22),
    (23, 23, 22),
    (23, 24, 22),
];

/// Largest zstd window log used (4 MiB).
pub const ZSTD_MAX_WINDOW_LOG: u32 = 22;
/// Largest zstd hash table log used (2^21 four-byte cells: 8 MiB).
pub const ZSTD_MAX_HASH_LOG: u32 = 21;
/// Largest zstd chain (or binary tree) table log used (4 MiB).
pub const ZSTD_MAX_CHAIN_LOG: u32 = 20;
/// zstd multithreading job size: fixed, so the output does not depend on the worker count.
pub const ZSTD_JOB_SIZE: u32 = 4 << 20;
/// Most zstd workers used.
pub const ZSTD_MAX_WORKERS: usize = 8;
/// Largest xz / lzma dictionary used.
pub const XZ_MAX_DICT: u32 = 4 << 20;

/// zstd compression parameters for one level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZstdParams {
    pub window_log: u32,
    pub chain_log: u32,
    pub hash_log: u32,
    /// Bytes of input per multithreading job.
    pub job_size: u32,
    /// Worker threads (≥ 1; the output is the same for any number).
    pub workers: u32,
}

/// The zstd parameters for `level` (1..=19) with at most `cpus` workers (`None`: the
/// machine's parallelism).
pub fn zstd_params(level: u32, cpus: Option<usize>) -> ZstdParams {
    let i = level.clamp(1, 19) as usize - 1;
    let (w, c, h) = ZSTD_DEFAULTS[i];
    let (window_log, chain_log, hash_log) = (
        w.min(ZSTD_MAX_WINDOW_LOG),
        c.min(ZSTD_MAX_CHAIN_LOG),
        h.min(ZSTD_MAX_HASH_LOG),
    );
    let job = u64::from(ZSTD_JOB_SIZE);
    // Each worker: its match tables, the input of its job and the compressed output (less
    // than half the input in practice), plus block state. Shared: the input ring (a job per
    // worker plus three of slack, held in the per-worker term and `fixed`), our buffers.
    let per_worker = (4u64 << hash_log) + (4u64 << chain_log) + job + job / 2 + (1 << 20);
    let fixed = 3 * job + (4 << 20);
    let fit = (ENCODER_MEMORY_BUDGET.saturating_sub(fixed) / per_worker).max(1) as usize;
    let cpus = cpus.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let workers = fit.min(cpus).clamp(1, ZSTD_MAX_WORKERS) as u32;
    ZstdParams {
        window_log,
        chain_log,
        hash_log,
        job_size: ZSTD_JOB_SIZE,
        workers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_params_stay_within_the_budget_and_the_kernel_window() {
        for level in 1..=19 {
            let p = zstd_params(level, Some(64));
            assert!(p.window_log <= 27, "kernel window limit at level {level}");
            assert!(p.workers >= 1);
            let tables = (4u64 << p.hash_log) + (4u64 << p.chain_log);
            let job = u64::from(p.job_size);
            let est =
                u64::from(p.workers) * (tables + job + job / 2 + (1 << 20)) + 3 * job + (4 << 20);
            assert!(
                est <= ENCODER_MEMORY_BUDGET || p.workers == 1,
                "level {level}: {p:?} needs about {est} bytes"
            );
        }
        assert_eq!(zstd_params(19, Some(1)).workers, 1);
        assert!(zstd_params(3, Some(4)).workers == 4);
        assert!(zstd_params(15, Some(64)).workers >= 2);
    }
}
