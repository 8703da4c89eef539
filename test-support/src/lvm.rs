//! lvm2's own tools driven offline for tests (no device-mapper, no udev): loop devices at
//! partition offsets of a disk image, and the lvm commands confined to them.

use crate::tools::{run_stdout, s};
use std::path::Path;
use std::process::Command;

/// Run an lvm2 command (`args[0]`: pvcreate, vgcreate, lvcreate, lvs ...) that sees only
/// `devs`, with no udev and no devices file; its stdout. Panics with stderr on failure.
pub fn lvm(devs: &[String], args: &[&str]) -> String {
    let cfg = "devices { use_devicesfile = 0 obtain_device_list_from_udev = 0 } \
               activation { udev_sync = 0 udev_rules = 0 }";
    let out = Command::new(args[0])
        .arg(format!("--devices={}", devs.join(",")))
        .arg(format!("--config={cfg}"))
        .args(&args[1..])
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .expect("run lvm");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Each partition of disk image `img` as (start, size) in bytes, as subroot reads its table.
pub fn partition_ranges(img: &Path) -> Vec<(u64, u64)> {
    let dev = subroot_formats::block::RawFile::open(img).expect("open the image");
    subroot_formats::table::read_table(&dev)
        .expect("read the partition table")
        .expect("a partition table")
        .partitions
        .iter()
        .map(|p| (p.start, p.size))
        .collect()
}

/// Whether test `test` can make LVM2 volumes here (root, for loop devices, and lvm2's
/// tools, losetup and `more` installed); skips it loudly otherwise.
pub fn can_make(test: &str, more: &[&str]) -> bool {
    if !crate::rich::is_root() {
        crate::skip(test, "needs root for loop devices");
        return false;
    }
    ["pvcreate", "vgcreate", "lvcreate", "lvs", "losetup"]
        .iter()
        .chain(more)
        .all(|tool| crate::need(tool, test))
}

/// `lvcreate` as the tests run it: offline (no device-mapper), the volume left inactive
/// and unwritten; append the size, name, group and PVs.
pub const LVCREATE: [&str; 7] = ["lvcreate", "-q", "--driverloaded", "n", "-an", "-Zn", "-y"];

/// Where the extents of physical volume `dev` (one of `devs`) start, in bytes from its
/// start (`pvs -o pe_start`).
pub fn pe_start(devs: &[String], dev: &str) -> u64 {
    lvm(
        devs,
        &[
            "pvs",
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            "pe_start",
            dev,
        ],
    )
    .trim()
    .parse()
    .expect("pe_start")
}

/// Loop devices attached to ranges of an image file, detached when dropped.
pub struct Loops(pub Vec<String>);

impl Loops {
    /// One loop device per (offset, size) of `img` (root only).
    pub fn attach(img: &Path, ranges: &[(u64, u64)]) -> Loops {
        let mut loops = Loops(Vec::new());
        for (start, size) in ranges {
            let l = run_stdout(
                "losetup",
                &[
                    "-f",
                    "--show",
                    "-o",
                    &start.to_string(),
                    "--sizelimit",
                    &size.to_string(),
                    s(img),
                ],
            );
            loops.0.push(l.trim().to_string());
        }
        loops
    }
}

impl Drop for Loops {
    fn drop(&mut self) {
        for l in &self.0 {
            let _ = Command::new("losetup").args(["-d", l]).status();
        }
    }
}

/// Make volume group `vg` with lvm2's own tools on the physical volume at `pv` (offset,
/// size) of disk image `img` (root only: a loop device while the tools run), 1 MiB
/// extents, with linear volumes `lvs` (name, MiB) left unwritten; the byte offset in `img`
/// of each volume's first extent, in the order given (lvm2 places each in one segment).
pub fn make_group(img: &Path, pv: (u64, u64), vg: &str, lvs: &[(&str, u64)]) -> Vec<u64> {
    let loops = Loops::attach(img, &[pv]);
    let devs = loops.0.clone();
    lvm(&devs, &["pvcreate", "-q", &devs[0]]);
    lvm(&devs, &["vgcreate", "-q", "-s", "1M", vg, &devs[0]]);
    for (name, mib) in lvs {
        let size = format!("{mib}M");
        lvm(
            &devs,
            &[&LVCREATE[..], &["-L", &size, "-n", name, vg]].concat(),
        );
    }
    let pe_start = pe_start(&devs, &devs[0]);
    lvs.iter()
        .map(|(name, _)| {
            let ranges = lvm(
                &devs,
                &[
                    "lvs",
                    "--noheadings",
                    "-o",
                    "seg_pe_ranges",
                    &format!("{vg}/{name}"),
                ],
            );
            // "/dev/loop0:8-39": the first extent.
            let first: u64 = ranges
                .trim()
                .rsplit_once(':')
                .and_then(|(_, r)| r.split('-').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("extents of {vg}/{name}: {ranges:?}"));
            pv.0 + pe_start + first * (1 << 20)
        })
        .collect()
}

/// Write the file `fs` (a filesystem image) into `img` at byte `offset`.
pub fn place(img: &Path, offset: u64, fs: &Path) {
    use std::os::unix::fs::FileExt;
    let bytes = std::fs::read(fs).expect("read the filesystem image");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(img)
        .expect("open the image");
    f.write_all_at(&bytes, offset).expect("write");
}

/// Flip one byte of the committed metadata text of the PV that starts at `pv_start` in
/// `img` (its first metadata area, at 4096 as lvm2 places it): a damaged copy whose
/// checksum no longer holds.
pub fn damage_metadata_text(img: &Path, pv_start: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(img)
        .expect("open the image");
    let mut h = [0u8; 64];
    f.read_exact_at(&mut h, pv_start + 4096).expect("read");
    let text = pv_start + 4096 + u64::from_le_bytes(h[40..48].try_into().expect("8 bytes"));
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, text + 10).expect("read");
    f.write_all_at(&[b[0] ^ 0x20], text + 10).expect("write");
}
