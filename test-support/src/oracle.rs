//! Judging a container reader by qemu: the bytes it reads against `qemu-img convert -O
//! raw`, its extent map against the data it reads and against `qemu-img map`.

use crate::tools::{run, run_stdout, s};
use std::fs;
use std::path::Path;
use subroot_formats::block::{BlockDevice, Extent, ExtentKind};

const MIB: u64 = 1 << 20;

/// Compare the whole virtual disk `q` (our reader of `img`, qemu format `fmt`) with qemu's
/// raw conversion, chunk by chunk and in unaligned reads, then check the extent map
/// against the data and `qemu-img map`. Returns the extents.
pub fn same_as_qemu(q: &dyn BlockDevice, img: &Path, fmt: &str) -> Vec<Extent> {
    let ext = same_bytes_as_qemu(q, img, fmt);
    check_against_qemu_map(img, fmt, &ext);
    ext
}

/// [`same_as_qemu`] without `qemu-img map`, for formats whose map qemu does not report
/// (VHDX: every block is "data"). The extents are still checked against the data.
pub fn same_bytes_as_qemu(q: &dyn BlockDevice, img: &Path, fmt: &str) -> Vec<Extent> {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("oracle.raw");
    run(
        "qemu-img",
        &["convert", "-f", fmt, "-O", "raw", s(img), s(&raw)],
    );
    let oracle = fs::File::open(&raw).unwrap();
    let size = oracle.metadata().unwrap().len();
    assert_eq!(q.len(), size, "virtual size of {}", img.display());
    let mut ours = vec![0u8; MIB as usize];
    let mut theirs = vec![0u8; MIB as usize];
    let mut pos = 0;
    while pos < size {
        let n = (size - pos).min(MIB) as usize;
        q.read_at(&mut ours[..n], pos).unwrap();
        std::os::unix::fs::FileExt::read_exact_at(&oracle, &mut theirs[..n], pos).unwrap();
        if ours[..n] != theirs[..n] {
            let i = (0..n).find(|&i| ours[i] != theirs[i]).unwrap();
            panic!(
                "{}: byte {} differs: ours {:#04x}, qemu {:#04x}",
                img.display(),
                pos + i as u64,
                ours[i],
                theirs[i]
            );
        }
        pos += n as u64;
    }
    // Unaligned reads straddling clusters must agree too.
    for &(off, len) in &[(1u64, 5000usize), (65535, 70000), (size / 2 - 777, 3000)] {
        if off + len as u64 <= size {
            let mut a = vec![0u8; len];
            let mut b = vec![0u8; len];
            q.read_at(&mut a, off).unwrap();
            std::os::unix::fs::FileExt::read_exact_at(&oracle, &mut b, off).unwrap();
            assert!(a == b, "{}: unaligned read at {off}", img.display());
        }
    }
    let ext = q.extents(0, size).unwrap();
    check_extents(q, &ext, size);
    ext
}

/// Extents cover the range in order, are merged, and every Zero extent reads as zeros.
pub fn check_extents(dev: &dyn BlockDevice, ext: &[Extent], size: u64) {
    let mut pos = 0;
    for (i, e) in ext.iter().enumerate() {
        assert_eq!(e.offset, pos, "extents must be contiguous: {ext:?}");
        assert!(e.len > 0);
        if i > 0 {
            assert_ne!(ext[i - 1].kind, e.kind, "neighbours must be merged");
        }
        if e.kind == ExtentKind::Zero {
            let mut buf = vec![0u8; MIB as usize];
            let mut p = e.offset;
            while p < e.end() {
                let n = (e.end() - p).min(MIB) as usize;
                dev.read_at(&mut buf[..n], p).unwrap();
                assert!(
                    buf[..n].iter().all(|&b| b == 0),
                    "zero extent at {p} has data"
                );
                p += n as u64;
            }
        }
        pos = e.end();
    }
    assert_eq!(pos, size);
}

/// `(start, length, zero, data)` of each `qemu-img map --output=json` entry.
pub fn qemu_map(img: &Path, fmt: &str) -> Vec<(u64, u64, bool, bool)> {
    let out = run_stdout("qemu-img", &["map", "-f", fmt, "--output=json", s(img)]);
    let field = |obj: &str, name: &str| -> String {
        let key = format!("\"{name}\":");
        let at = obj.find(&key).unwrap_or_else(|| panic!("{name} in {obj}")) + key.len();
        obj[at..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect()
    };
    out.split('{')
        .skip(1)
        .map(|obj| {
            (
                field(obj, "start").parse().unwrap(),
                field(obj, "length").parse().unwrap(),
                field(obj, "zero") == "true",
                field(obj, "data") == "true",
            )
        })
        .collect()
}

/// Our Zero extents lie inside qemu's zero ranges, and qemu's non-zero data lies inside
/// our Data extents.
pub fn check_against_qemu_map(img: &Path, fmt: &str, ext: &[Extent]) {
    let map = qemu_map(img, fmt);
    assert!(
        !map.is_empty(),
        "qemu-img map of {} parsed to nothing",
        img.display()
    );
    assert_eq!(
        map.iter().map(|m| m.1).sum::<u64>(),
        ext.iter().map(|e| e.len).sum::<u64>()
    );
    for (start, len, zero, data) in map {
        let end = start + len;
        for e in ext {
            let (a, b) = (e.offset.max(start), e.end().min(end));
            if a >= b {
                continue;
            }
            if e.kind == ExtentKind::Zero {
                assert!(
                    zero,
                    "{}: we say {a}..{b} is zero, qemu-img map says data",
                    img.display()
                );
            }
            if data && !zero {
                assert_eq!(
                    e.kind,
                    ExtentKind::Data,
                    "{}: qemu has data at {a}..{b}",
                    img.display()
                );
            }
        }
    }
}

/// qemu's raw reading of `img` (qemu format `fmt`), whole, in memory (small images).
pub fn qemu_raw(img: &Path, fmt: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("oracle.raw");
    run(
        "qemu-img",
        &["convert", "-f", fmt, "-O", "raw", s(img), s(&out)],
    );
    fs::read(&out).unwrap()
}

/// Every byte of `dev`, in memory (small images).
pub fn read_all(dev: &dyn BlockDevice) -> Vec<u8> {
    let mut v = vec![0u8; dev.len() as usize];
    dev.read_at(&mut v, 0).unwrap();
    v
}

/// Read all of `dev` in 1 MiB pieces, then map it: the first error, if any (how a damaged
/// image is driven through a reader).
pub fn walk(dev: &dyn BlockDevice) -> subroot_formats::Result<()> {
    let len = dev.len();
    let mut buf = vec![0u8; MIB as usize];
    let mut pos = 0;
    while pos < len {
        let n = (len - pos).min(MIB);
        dev.read_at(&mut buf[..n as usize], pos)?;
        pos += n;
    }
    dev.extents(0, len)?;
    Ok(())
}

/// Run each `qemu-io` command (`write -P 0x41 1M 4k`, ...) on `img` of qemu format `fmt`.
pub fn qemu_io(img: &Path, fmt: &str, cmds: &[impl AsRef<str>]) {
    let mut args = vec!["-f", fmt];
    for c in cmds {
        args.extend(["-c", c.as_ref()]);
    }
    args.push(s(img));
    run("qemu-io", &args);
}

/// Damage copies of each of `sources` at random places (mostly in the first `front` bytes,
/// where the metadata is) and open, read and map each through [`subroot_formats::image::Image`]:
/// errors are fine, panics and hangs are not.
pub fn random_damage_never_panics(sources: &[&Path], front: usize, rounds: usize) {
    use subroot_formats::image::Image;
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for src in sources {
        let orig = fs::read(src).unwrap();
        let target = dir.path().join(src.file_name().unwrap());
        for _ in 0..rounds {
            let mut data = orig.clone();
            for _ in 0..1 + rand() % 3 {
                let span = if rand() % 4 == 0 {
                    data.len()
                } else {
                    data.len().min(front)
                };
                let at = (rand() as usize % span.max(1)) & !3;
                if at + 4 <= data.len() {
                    let v = rand() as u32;
                    let v = if rand() % 2 == 0 { v } else { v & 0xff };
                    data[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
            if rand() % 8 == 0 {
                data.truncate(rand() as usize % data.len().max(1));
            }
            fs::write(&target, &data).unwrap();
            if let Ok(i) = Image::open(&target) {
                let n = i.len().min(8 * MIB);
                let mut buf = vec![0u8; n as usize];
                let _ = i.read_at(&mut buf, 0);
                let _ = i.extents(0, i.len());
            }
        }
    }
}

/// The error opening a damaged image gives, or else reading all of it (at most its first
/// 64 MiB) and mapping it; a damaged image that reads without error fails the test.
pub fn open_err(img: &Path) -> String {
    use subroot_formats::image::Image;
    let i = match Image::open(img) {
        Err(e) => return e.to_string(),
        Ok(i) => i,
    };
    let n = i.len().min(64 * MIB);
    let mut buf = vec![0u8; MIB as usize];
    let mut pos = 0;
    while pos < n {
        let len = (n - pos).min(MIB) as usize;
        if let Err(e) = i.read_at(&mut buf[..len], pos) {
            return e.to_string();
        }
        pos += len as u64;
    }
    match i.extents(0, i.len()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{} (damaged) read without error", img.display()),
    }
}
