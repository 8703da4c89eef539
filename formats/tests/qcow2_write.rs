//! The qcow2 writer and the sparse raw writer, judged by qemu-img: sources are raw files
//! built with qemu-img/qemu-io at test time; every output must pass `qemu-img check`
//! (no errors, no leaks, no corruptions) and `qemu-img compare` with its source.

mod common;

use common::{need, new_output, run, run_stdout, s};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use subroot_formats::block::{BlockDevice, RawFile};
use subroot_formats::qcow2::{write_qcow2, CompressionType, WriteOptions, WriteStats};
use subroot_formats::sparse_copy::write_raw;
use subroot_formats::Error;

const MIB: u64 = 1 << 20;

/// Deterministic pseudo-random (incompressible) bytes.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A raw source of `size` bytes: qemu-io pattern writes at scattered (also unaligned)
/// offsets, an explicitly written run of zeros (data extent, zero content), some
/// incompressible bytes, data in the last partial cluster, long holes elsewhere.
fn patterned_source(dir: &Path, size: u64) -> PathBuf {
    let path = dir.join("src.raw");
    run(
        "qemu-img",
        &["create", "-q", "-f", "raw", s(&path), &size.to_string()],
    );
    let writes = [
        (0u64, 4096u64, 0x11u8),
        (65536 + 100, 1000, 0x22),
        (MIB - 512, 131072, 0x33),
        (10 * MIB, 3 * MIB, 0x44),
        (10 * MIB + 3 * MIB + 7, 1, 0x45),
        (33 * MIB + 4096 * 3 + 17, 70000, 0x66),
        (size - 1024, 1024, 0x55),
    ];
    for (off, len, pat) in writes {
        let cmd = format!("write -P {pat:#x} {off} {len}");
        run("qemu-io", &["-f", "raw", "-c", &cmd, s(&path)]);
    }
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&vec![0u8; 2 * MIB as usize], 20 * MIB)
        .unwrap();
    f.write_all_at(&noise(300_000, 42), 40 * MIB + 512).unwrap();
    path
}

/// Guest bytes in clusters of `cs` that hold a non-zero byte, read straight from the file.
fn nonzero_cluster_bytes(path: &Path, cs: u64) -> u64 {
    let data = std::fs::read(path).unwrap();
    let size = (data.len() as u64).next_multiple_of(512);
    data.chunks(cs as usize)
        .enumerate()
        .filter(|(_, c)| c.iter().any(|&b| b != 0))
        .map(|(i, _)| cs.min(size - i as u64 * cs))
        .sum()
}

/// Convert `src` to qcow2 at `out` with `opts`, checking the progress reports.
fn convert(src: &Path, out: &Path, opts: &WriteOptions) -> WriteStats {
    let dev = RawFile::open(src).unwrap();
    let file = new_output(out);
    let last = AtomicU64::new(0);
    let progress = |done: u64| {
        let prev = last.swap(done, Ordering::SeqCst);
        assert!(done >= prev, "progress went back from {prev} to {done}");
    };
    let stats = write_qcow2(&dev, &file, opts, &progress).unwrap();
    assert_eq!(last.load(Ordering::SeqCst), dev.len());
    assert_eq!(stats.file_size, std::fs::metadata(out).unwrap().len());
    stats
}

fn json(tool: &str, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&run_stdout(tool, args)).unwrap()
}

/// `qemu-img check` must exit 0 and report no errors, leaks or corruptions. Returns its
/// report.
fn assert_clean(out: &Path) -> serde_json::Value {
    let v = json(
        "qemu-img",
        &["check", "--output=json", "-f", "qcow2", s(out)],
    );
    assert_eq!(v["check-errors"], 0, "{v}");
    for key in ["leaks", "corruptions", "leaks-fixed", "corruptions-fixed"] {
        assert!(
            v.get(key).is_none_or(|n| n == 0),
            "qemu-img check reports {key}: {v}"
        );
    }
    v
}

fn assert_same(src: &Path, out: &Path) {
    run(
        "qemu-img",
        &["compare", "-f", "raw", "-F", "qcow2", s(src), s(out)],
    );
}

fn info(out: &Path) -> serde_json::Value {
    json(
        "qemu-img",
        &["info", "--output=json", "-f", "qcow2", s(out)],
    )
}

fn check_conversion(opts: WriteOptions, test: &str) -> (u64, WriteStats) {
    let dir = tempfile::tempdir().unwrap();
    let size = 64 * MIB + 3 * 1024;
    let src = patterned_source(dir.path(), size);
    let out = dir.path().join("out.qcow2");
    let stats = convert(&src, &out, &opts);
    let report = assert_clean(&out);
    assert_same(&src, &out);
    let compressed = report
        .get("compressed-clusters")
        .and_then(|n| n.as_u64())
        .unwrap_or(0);
    assert_eq!(
        compressed > 0,
        opts.compression.is_some(),
        "{test}: compressed clusters in {report}"
    );
    let i = info(&out);
    assert_eq!(i["virtual-size"], size, "{test}: {i}");
    assert_eq!(i["cluster-size"], opts.cluster_size, "{test}: {i}");
    let kind = opts.compression.unwrap_or(CompressionType::Zlib).name();
    assert_eq!(
        i["format-specific"]["data"]["compression-type"], kind,
        "{i}"
    );
    assert_eq!(stats.virtual_size, size);
    assert_eq!(
        stats.data_bytes,
        nonzero_cluster_bytes(&src, opts.cluster_size),
        "{test}: data bytes"
    );
    // The explicit zero run is left unallocated (qemu-img map reports no data there).
    let map = json(
        "qemu-img",
        &["map", "--output=json", "-f", "qcow2", s(&out)],
    );
    for e in map.as_array().unwrap() {
        let (start, len) = (e["start"].as_u64().unwrap(), e["length"].as_u64().unwrap());
        if e["data"] == true {
            assert!(
                start + len <= 20 * MIB || start >= 22 * MIB,
                "{test}: zeros at 20 MiB stored as data: {e}"
            );
        }
    }
    (std::fs::metadata(&out).unwrap().len(), stats)
}

#[test]
fn qcow2_default_options() {
    if !need("qemu-img", "qcow2_default_options") || !need("qemu-io", "qcow2_default_options") {
        return;
    }
    let (size, stats) = check_conversion(WriteOptions::default(), "default");
    // Data is about 7 MiB; metadata is a few clusters.
    assert!(size < stats.data_bytes + MIB, "file {size} for {stats:?}");
}

#[test]
fn qcow2_cluster_sizes() {
    if !need("qemu-img", "qcow2_cluster_sizes") || !need("qemu-io", "qcow2_cluster_sizes") {
        return;
    }
    for cs in [512, 4096, 2 * MIB] {
        let opts = WriteOptions {
            cluster_size: cs,
            ..WriteOptions::default()
        };
        check_conversion(opts, &format!("cluster size {cs}"));
    }
}

#[test]
fn qcow2_compressed() {
    if !need("qemu-img", "qcow2_compressed") || !need("qemu-io", "qcow2_compressed") {
        return;
    }
    let (plain, _) = check_conversion(WriteOptions::default(), "plain");
    for (kind, cs, threads) in [
        (CompressionType::Zlib, 65536, 0),
        (CompressionType::Zstd, 65536, 2),
        (CompressionType::Zlib, 512, 1),
        (CompressionType::Zstd, 4096, 0),
        (CompressionType::Zlib, 2 * MIB, 0),
    ] {
        let opts = WriteOptions {
            cluster_size: cs,
            compression: Some(kind),
            threads,
        };
        let (size, _) = check_conversion(opts, &format!("{kind:?} {cs}"));
        if cs == 65536 {
            // Pattern data compresses well; the 300 KB of noise stays as it is.
            assert!(
                size < plain / 4 + 600_000,
                "{kind:?}: {size} vs plain {plain}"
            );
        }
    }
}

#[test]
fn qcow2_zstd_sets_incompatible_bit() {
    if !need("qemu-img", "qcow2_zstd_sets_incompatible_bit")
        || !need("qemu-io", "qcow2_zstd_sets_incompatible_bit")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = patterned_source(dir.path(), 48 * MIB);
    for kind in [CompressionType::Zlib, CompressionType::Zstd] {
        let out = dir.path().join(format!("{}.qcow2", kind.name()));
        let opts = WriteOptions {
            compression: Some(kind),
            ..WriteOptions::default()
        };
        convert(&src, &out, &opts);
        assert_clean(&out);
        assert_same(&src, &out);
        let mut header = [0u8; 112];
        File::open(&out)
            .unwrap()
            .read_exact_at(&mut header, 0)
            .unwrap();
        let incompat = u64::from_be_bytes(header[72..80].try_into().unwrap());
        assert_eq!(incompat & 8 != 0, kind == CompressionType::Zstd);
        // qemu-io reads a compressed cluster back with the right contents.
        run(
            "qemu-io",
            &["-f", "qcow2", "-c", "read -P 0x44 10M 3M", s(&out)],
        );
    }
}

#[test]
fn qcow2_large_sparse_source_is_fast_and_small() {
    if !need("qemu-img", "qcow2_large_sparse_source_is_fast_and_small") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.raw");
    run("qemu-img", &["create", "-q", "-f", "raw", s(&src), "1G"]);
    let f = OpenOptions::new().write(true).open(&src).unwrap();
    for (i, off) in [0, 300 * MIB + 12345, 700 * MIB, 1024 * MIB - 2 * MIB]
        .into_iter()
        .enumerate()
    {
        f.write_all_at(&noise(MIB as usize, i as u64 + 1), off)
            .unwrap();
    }
    drop(f);
    let out = dir.path().join("big.qcow2");
    let t = Instant::now();
    let stats = convert(&src, &out, &WriteOptions::default());
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
    assert!(stats.file_size < 6 * MIB, "{stats:?}");
    assert!(stats.data_bytes <= 5 * MIB, "{stats:?}");
    assert_clean(&out);
    assert_same(&src, &out);
}

/// A 2 TiB sparse source with 4 KiB clusters: the 8 MiB L1 spans several refcount blocks'
/// ranges, L1 parts are written as the walk passes them, and the walk stays cheap.
#[test]
fn qcow2_huge_sparse_virtual_size() {
    if !need("qemu-img", "qcow2_huge_sparse_virtual_size") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("huge.raw");
    run("qemu-img", &["create", "-q", "-f", "raw", s(&src), "2T"]);
    let f = OpenOptions::new().write(true).open(&src).unwrap();
    let tib = 1u64 << 40;
    for (i, off) in [0, 5 * MIB + 3, tib + 77 * MIB, 2 * tib - 4096]
        .into_iter()
        .enumerate()
    {
        f.write_all_at(&noise(4096, i as u64 + 9), off).unwrap();
    }
    drop(f);
    let out = dir.path().join("huge.qcow2");
    let opts = WriteOptions {
        cluster_size: 4096,
        ..WriteOptions::default()
    };
    let stats = convert(&src, &out, &opts);
    assert_eq!(stats.virtual_size, 2 * tib);
    assert_eq!(stats.data_bytes, 5 * 4096); // the write at 5 MiB + 3 straddles two clusters
    let allocated = std::fs::metadata(&out).unwrap().blocks() * 512;
    assert!(allocated < 2 * MIB, "allocated {allocated}");
    assert_clean(&out);
    assert_same(&src, &out);
    assert_eq!(info(&out)["virtual-size"], 2 * tib);
}

#[test]
fn qcow2_tiny_and_empty_sources() {
    if !need("qemu-img", "qcow2_tiny_and_empty_sources") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // (source size, expected virtual size: qemu rounds up to 512)
    for (len, vsize) in [(0u64, 0u64), (1000, 1024), (512, 512), (70000, 70144)] {
        let src = dir.path().join(format!("s{len}.raw"));
        std::fs::write(&src, vec![0xabu8; len as usize]).unwrap();
        let out = dir.path().join(format!("s{len}.qcow2"));
        let stats = convert(&src, &out, &WriteOptions::default());
        assert_eq!(stats.virtual_size, vsize);
        assert_clean(&out);
        assert_eq!(info(&out)["virtual-size"], vsize);
        if len > 0 {
            let cmd = format!("read -P 0xab 0 {len}");
            run("qemu-io", &["-f", "qcow2", "-c", &cmd, s(&out)]);
            let cmd = format!("read -P 0 {len} {}", vsize - len);
            run("qemu-io", &["-f", "qcow2", "-c", &cmd, s(&out)]);
        }
    }
}

#[test]
fn qcow2_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("s.raw");
    std::fs::write(&src, [1u8; 4096]).unwrap();
    let dev = RawFile::open(&src).unwrap();
    for cs in [3000, 256, 4 * MIB, 0] {
        let out = new_output(&dir.path().join(format!("o{cs}.qcow2")));
        let opts = WriteOptions {
            cluster_size: cs,
            ..WriteOptions::default()
        };
        let r = write_qcow2(&dev, &out, &opts, &|_| {});
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{cs}: {r:?}");
    }
}

#[test]
fn raw_output_is_sparse_and_equal() {
    if !need("qemu-img", "raw_output_is_sparse_and_equal")
        || !need("qemu-io", "raw_output_is_sparse_and_equal")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let size = 64 * MIB + 3 * 1024;
    let src = patterned_source(dir.path(), size);
    let out = dir.path().join("out.raw");
    let dev = RawFile::open(&src).unwrap();
    let file = new_output(&out);
    let last = AtomicU64::new(0);
    let stats = write_raw(&dev, &file, &|d| {
        assert!(d >= last.swap(d, Ordering::SeqCst));
    })
    .unwrap();
    assert_eq!(last.load(Ordering::SeqCst), size);
    assert_eq!(stats.virtual_size, size);
    assert_eq!(std::fs::metadata(&out).unwrap().len(), size);
    run(
        "qemu-img",
        &["compare", "-f", "raw", "-F", "raw", s(&src), s(&out)],
    );
    // About 7 MiB of non-zero data; the 2 MiB zero run and the holes are not allocated.
    let allocated = std::fs::metadata(&out).unwrap().blocks() * 512;
    assert!(allocated < 8 * MIB, "allocated {allocated} of {size}");
    assert!(stats.data_bytes < 8 * MIB, "{stats:?}");
    let src_allocated = std::fs::metadata(&src).unwrap().blocks() * 512;
    assert!(
        allocated < src_allocated,
        "{allocated} vs source {src_allocated}"
    );
}

/// Parallel compression writes its results in guest order: the image does not depend on
/// the number of threads.
#[test]
fn qcow2_compression_is_deterministic_across_threads() {
    if !need(
        "qemu-img",
        "qcow2_compression_is_deterministic_across_threads",
    ) || !need(
        "qemu-io",
        "qcow2_compression_is_deterministic_across_threads",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = patterned_source(dir.path(), 48 * MIB);
    let mut images = Vec::new();
    for threads in [1, 2, 3] {
        let out = dir.path().join(format!("t{threads}.qcow2"));
        let opts = WriteOptions {
            cluster_size: 4096,
            compression: Some(CompressionType::Zlib),
            threads,
        };
        convert(&src, &out, &opts);
        assert_clean(&out);
        images.push(std::fs::read(&out).unwrap());
    }
    assert!(images.windows(2).all(|w| w[0] == w[1]));
}
