//! LVM2 read (issue 20): a volume group made by lvm2's own tools (`pvcreate`, `vgcreate`,
//! `lvcreate --driverloaded n`, offline: no device-mapper) on two partitions of a disk
//! image, reached through loop devices at the partitions' offsets (root only). The bytes
//! each logical volume holds are placed where lvm2 itself reports its extents
//! (`lvs --segments`, `pvs -o pe_start`); subroot's reader must return them. Damaged
//! labels and metadata give clear errors; a volume whose PV is missing is refused.
mod common;

use common::lvm::{
    can_make, damage_metadata_text, lvm, partition_ranges, pe_start, Loops, LVCREATE,
};
use common::{noise, run, s};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, RawFile, Slice};
use subroot_formats::lvm::{scan, Candidate, LvLayout};
use subroot_formats::table::read_table;

const MIB: u64 = 1 << 20;

fn candidates(img: &Path) -> Vec<Candidate> {
    let disk: Arc<dyn BlockDevice> = Arc::new(RawFile::open(img).unwrap());
    let table = read_table(&*disk).unwrap().unwrap();
    table
        .partitions
        .iter()
        .map(|p| Candidate {
            name: format!("partition {}", p.number),
            device: Arc::new(Slice::new(disk.clone(), p.start, p.size).unwrap()),
        })
        .collect()
}

#[test]
fn linear_and_striped_volumes_read_as_lvm2_lays_them_out() {
    let t = "linear_and_striped_volumes_read_as_lvm2_lays_them_out";
    if !can_make(t, &["sfdisk"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.raw");
    run("truncate", &["-s", "96M", s(&img)]);
    let script = "label: gpt\nsize=40MiB, type=lvm\nsize=40MiB, type=lvm\n";
    let out = Command::new("sfdisk")
        .args(["-q", s(&img)])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(script.as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(out.success());
    let parts = partition_ranges(&img);
    let loops = Loops::attach(&img, &parts);
    let devs = loops.0.clone();
    let (a, b) = (devs[0].as_str(), devs[1].as_str());
    lvm(&devs, &["pvcreate", "-q", a, b]);
    lvm(&devs, &["vgcreate", "-q", "-s", "1M", "vgtest", a, b]);
    let mk = LVCREATE;
    lvm(
        &devs,
        &[&mk[..], &["-L", "8M", "-n", "lin", "vgtest", b]].concat(),
    );
    lvm(
        &devs,
        &[
            &mk[..],
            &["-i", "2", "-I", "64k", "-L", "16M", "-n", "str", "vgtest"],
        ]
        .concat(),
    );
    // A linear volume in two segments: extended onto the other PV.
    lvm(
        &devs,
        &[&mk[..], &["-L", "4M", "-n", "two", "vgtest", a]].concat(),
    );
    lvm(
        &devs,
        &[
            "lvextend",
            "-q",
            "--driverloaded",
            "n",
            "-L",
            "+4M",
            "vgtest/two",
            b,
        ],
    );
    let pe_start: Vec<u64> = devs.iter().map(|d| pe_start(&devs, d)).collect();
    let segs = lvm(
        &devs,
        &[
            "lvs",
            "--noheadings",
            "--segments",
            "--units",
            "b",
            "--nosuffix",
            "--separator",
            ";",
            "-o",
            "lv_name,seg_start,seg_size,stripes,stripe_size,seg_pe_ranges",
            "vgtest",
        ],
    );
    drop(loops);

    // Place each volume's bytes where lvm2 says its extents are.
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    let mut expect: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    for line in segs.lines().filter(|l| !l.trim().is_empty()) {
        let c: Vec<&str> = line.trim().split(';').collect();
        let (name, start, size, stripes, ssize) = (
            c[0].to_string(),
            c[1].parse::<u64>().unwrap(),
            c[2].parse::<u64>().unwrap(),
            c[3].parse::<u64>().unwrap(),
            c[4].parse::<u64>().unwrap(),
        );
        // "/dev/loop3:0-7 /dev/loop4:0-7": one range per stripe.
        let ranges: Vec<(usize, u64)> = c[5]
            .split_whitespace()
            .map(|r| {
                let (dev, pes) = r.rsplit_once(':').unwrap();
                let first: u64 = pes.split('-').next().unwrap().parse().unwrap();
                (devs.iter().position(|d| d == dev).unwrap(), first)
            })
            .collect();
        assert_eq!(ranges.len() as u64, stripes, "{line}");
        let data = noise(size as usize, start ^ name.len() as u64);
        let chunk = if stripes > 1 { ssize } else { size };
        for (k, piece) in data.chunks(chunk as usize).enumerate() {
            let k = k as u64;
            let (pv, first) = ranges[(k % stripes) as usize];
            let at = parts[pv].0 + pe_start[pv] + first * MIB + (k / stripes) * chunk;
            f.write_all_at(piece, at).unwrap();
        }
        let v = expect.entry(name).or_default();
        assert_eq!(v.len() as u64, start, "segments in order");
        v.extend_from_slice(&data);
    }
    drop(f);

    let vgs = scan(&candidates(&img)).unwrap();
    assert_eq!(vgs.len(), 1);
    let vg = &vgs[0];
    assert_eq!(vg.name, "vgtest");
    assert_eq!(vg.extent_size, MIB);
    let names: Vec<&str> = vg.lvs.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["lin", "str", "two"]);
    for (name, want) in &expect {
        let lv = vg.open(name).unwrap();
        assert_eq!(lv.len(), want.len() as u64, "{name}");
        let mut got = vec![0u8; want.len()];
        lv.read_at(&mut got, 0).unwrap();
        assert!(
            got == *want,
            "{name}: bytes differ from where lvm2 put them"
        );
        // An unaligned read across a stripe chunk or segment boundary.
        let mut piece = vec![0u8; 200_000];
        lv.read_at(&mut piece, 3 * MIB + 12_345).unwrap();
        assert!(
            piece[..] == want[3 * MIB as usize + 12_345..][..200_000],
            "{name}"
        );
        let ext = lv.extents(0, lv.len()).unwrap();
        assert_eq!(ext.iter().map(|e| e.len).sum::<u64>(), lv.len(), "{name}");
    }
    assert!(matches!(
        vg.lvs.iter().find(|l| l.name == "str").unwrap().layout,
        LvLayout::Striped { max_stripes: 2 }
    ));

    // Without the second partition: the volumes on it are refused by name.
    let first_only: Vec<Candidate> = candidates(&img).into_iter().take(1).collect();
    let vgs = scan(&first_only).unwrap();
    let e = vgs[0]
        .open("str")
        .err()
        .expect("str needs both PVs")
        .to_string();
    assert!(e.contains("not in this image"), "{e}");
    assert!(vgs[0].open("nosuch").is_err());

    // Damaged metadata text on one PV: the other copy is used; on both: a clear error.
    damage_metadata_text(&img, parts[0].0);
    assert_eq!(scan(&candidates(&img)).unwrap()[0].lvs.len(), 3);
    damage_metadata_text(&img, parts[1].0);
    let e = scan(&candidates(&img))
        .err()
        .expect("no good copy")
        .to_string();
    assert!(e.contains("checksum") && e.contains("partition"), "{e}");
    // A damaged label is named.
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.write_all_at(b"X", parts[0].0 + 512 + 100).unwrap();
    let e = scan(&candidates(&img))
        .err()
        .expect("bad label")
        .to_string();
    assert!(e.contains("partition 1") && e.contains("label"), "{e}");
}
