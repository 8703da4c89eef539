//! FAT volumes made by `mkfs.vfat` that are unusual but valid: a label of `NO NAME`
//! (blkid's "no label"), and a FAT32 layout with fewer than 65525 clusters, which
//! `mkfs.fat -F 32` makes on small devices (sector count in the 16-bit field) and fsck.fat
//! accepts (read; writing it is refused); and damaged ones: a file's cluster chain patched (after `mcopy`) to loop, to
//! point past the volume, to run into a free cluster, or to end early, each confirmed as
//! damage by `fsck.fat -n`. The CLI runs unprivileged.

mod common;

use common::*;
use subroot_test_support::noise;

/// `NO NAME` is what mkfs.fat writes for "no label": `info` reports none, as blkid does.
#[test]
fn a_no_name_label_is_no_label() {
    let test = "a_no_name_label_is_no_label";
    if !need("mkfs.vfat", test) || !need("blkid", test) {
        return;
    }
    let w = workdir();
    let img = w.path().join("nn.img");
    run("mkfs.vfat", &["-n", "NO NAME", "-C", s(&img), "8192"]);
    run("chmod", &["a+r", s(&img)]);
    let blkid = run_stdout("blkid", &[s(&img)]);
    assert!(!blkid.contains("LABEL="), "blkid sees no label: {blkid}");
    let info: serde_json::Value =
        serde_json::from_str(&ok(w.path(), &["info", "--json", "nn.img"])).unwrap();
    assert_eq!(
        info["filesystem"]["label"],
        serde_json::Value::Null,
        "{info}"
    );
}

/// A FAT32 layout with fewer than 65525 clusters is read as the FAT32 it is (Linux and
/// fsck.fat decide FAT32 by the zero 16-bit FAT size): empty as `mkfs.fat -F 32` makes it
/// on a small device, and filled by `mcopy` (on a volume of 68000 clusters, whose
/// declared size is then cut to 60000 sectors: mtools cannot write the small layout).
/// Writing it is refused by name (the FAT library subroot writes with would take it for
/// FAT16); fsck.fat -n judges the volume.
#[test]
fn a_small_fat32_is_read() {
    let test = "a_small_fat32_is_read";
    for t in ["mkfs.vfat", "fsck.fat", "mcopy", "mdir", "tar"] {
        if !need(t, test) {
            return;
        }
    }
    let w = workdir();
    let img = w.path().join("s32.img");
    run("mkfs.vfat", &["-F", "32", "-C", s(&img), "30000"]);
    run("chmod", &["a+r", s(&img)]);
    let b = std::fs::read(&img).unwrap();
    assert_ne!(
        u16::from_le_bytes([b[19], b[20]]),
        0,
        "the 16-bit count is set"
    );
    run("fsck.fat", &["-n", s(&img)]);
    assert_eq!(ok(w.path(), &["ls", "s32.img"]), "");

    // A filled one.
    let tree = w.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    let big = noise(300_000, 7);
    std::fs::write(tree.join("sub/big.bin"), &big).unwrap();
    std::fs::write(tree.join("A long name.txt"), b"hi\n").unwrap();
    let full = w.path().join("full.img");
    run(
        "mkfs.fat",
        &["-F", "32", "-s", "1", "-S", "512", "-C", s(&full), "34000"],
    );
    let sub = tree.join("sub");
    let long = tree.join("A long name.txt");
    run("mcopy", &["-s", "-i", s(&full), s(&sub), s(&long), "::"]);
    let mdir = run_stdout("mdir", &["-/", "-b", "-i", s(&full), "::"]);
    let mut want: Vec<String> = mdir
        .lines()
        .map(|l| l.trim_start_matches("::").trim_end_matches('/').to_string())
        .collect();
    want.sort();
    let mut b = std::fs::read(&full).unwrap();
    let backup = 512 * usize::from(u16::from_le_bytes([b[50], b[51]]));
    for at in [0, backup] {
        b[at + 19..at + 21].copy_from_slice(&60000u16.to_le_bytes());
        b[at + 32..at + 36].fill(0);
    }
    b.truncate(60000 * 512);
    let small = w.path().join("small.img");
    std::fs::write(&small, &b).unwrap();
    // fsck.fat corrects the free-cluster count of the FSInfo sector, then finds it clean.
    let _ = std::process::Command::new("fsck.fat")
        .args(["-a", s(&small)])
        .output();
    let fsck = std::process::Command::new("fsck.fat")
        .args(["-n", s(&small)])
        .output()
        .expect("fsck.fat");
    let said =
        String::from_utf8_lossy(&fsck.stdout).into_owned() + &String::from_utf8_lossy(&fsck.stderr);
    assert!(fsck.status.success(), "fsck.fat -n: {said}");
    assert!(
        said.contains("less than the required minimum of 65525"),
        "{said}"
    );
    run("chmod", &["a+r", s(&small)]);

    let mut got: Vec<String> = ok(w.path(), &["ls", "-R", "small.img"])
        .lines()
        .filter(|l| *l != "/")
        .map(str::to_string)
        .collect();
    got.sort();
    assert_eq!(got, want);
    let cat = ok_bytes(w.path(), &["cat", "small.img", "/sub/big.bin"]);
    assert!(cat == big, "the file reads back");
    let info = ok(w.path(), &["info", "small.img"]);
    assert!(info.contains("FAT32"), "{info}");
    ok(w.path(), &["export", "small.img", "-o", "small.tar"]);
    let listed = run_stdout("tar", &["-tf", s(&w.path().join("small.tar"))]);
    assert!(listed.contains("sub/big.bin"), "{listed}");

    // Writing is refused by name, and the input is left as it was.
    let new = w.path().join("new.txt");
    std::fs::write(&new, b"new").unwrap();
    run("chmod", &["a+r", s(&new)]);
    let before = std::fs::read(&small).unwrap();
    fails(
        w.path(),
        &[
            "-q",
            "copy-in",
            "small.img",
            "new.txt",
            "/",
            "-o",
            "out.img",
        ],
        3,
        &["FAT32 volume with only", "is read but not written"],
    );
    assert!(
        std::fs::read(&small).unwrap() == before,
        "the input is unchanged"
    );
    assert!(!w.path().join("out.img").exists());
}

/// A FAT16 volume's layout, from its boot sector: (FAT offsets, root directory offset and
/// bytes, bytes per cluster).
fn fat16_layout(b: &[u8]) -> (Vec<usize>, usize, usize, usize) {
    let le16 = |o: usize| usize::from(u16::from_le_bytes([b[o], b[o + 1]]));
    let bps = le16(11);
    let spc = usize::from(b[13]);
    let reserved = le16(14);
    let nfats = usize::from(b[16]);
    let spf = le16(22);
    let fats = (0..nfats).map(|i| (reserved + i * spf) * bps).collect();
    let root = (reserved + nfats * spf) * bps;
    (fats, root, le16(17) * 32, bps * spc)
}

/// A damaged cluster chain is an error naming the file and what was found, from every
/// command that reads the file's data; never a short or repeated copy with exit 0.
#[test]
fn a_damaged_cluster_chain_is_reported() {
    let test = "a_damaged_cluster_chain_is_reported";
    if !need("mkfs.vfat", test) || !need("mcopy", test) || !need("fsck.fat", test) {
        return;
    }
    let w = workdir();
    let data = noise(100_000, 13);
    let src = w.path().join("big.bin");
    std::fs::write(&src, &data).unwrap();
    let clean = w.path().join("clean.img");
    run("mkfs.vfat", &["-F", "16", "-C", s(&clean), "20480"]);
    run("mcopy", &["-i", s(&clean), s(&src), "::BIG.BIN"]);
    run("chmod", &["a+r", s(&clean)]);
    let out = ok_bytes(w.path(), &["cat", "clean.img", "/BIG.BIN"]);
    assert!(out == data, "the undamaged file reads back");

    let img = std::fs::read(&clean).unwrap();
    let (fats, root, root_bytes, cluster) = fat16_layout(&img);
    let entry = (root..root + root_bytes)
        .step_by(32)
        .find(|&o| &img[o..o + 11] == b"BIG     BIN")
        .expect("the directory entry of BIG.BIN");
    let first = u16::from_le_bytes([img[entry + 26], img[entry + 27]]);
    let needed = data.len().div_ceil(cluster);
    assert!(needed > 3, "the file spans several clusters");
    // The chain as mcopy wrote it, then one link changed in every FAT copy.
    let mut chain = vec![first];
    let next = |c: u16| {
        u16::from_le_bytes([
            img[fats[0] + 2 * usize::from(c)],
            img[fats[0] + 2 * usize::from(c) + 1],
        ])
    };
    while chain.len() < needed {
        chain.push(next(*chain.last().unwrap()));
    }
    let cases: [(&str, u16, u16, &str); 4] = [
        ("loop", chain[2], chain[1], "loops"),
        ("past", chain[1], 0xFFF0, "past the end of the volume"),
        ("free", chain[1], 0x0000, "a free cluster"),
        ("short", chain[1], 0xFFFF, "ends after 2 clusters"),
    ];
    for (name, at, value, phrase) in cases {
        let file = format!("{name}.img");
        let mut b = img.clone();
        for f in &fats {
            let o = f + 2 * usize::from(at);
            b[o..o + 2].copy_from_slice(&value.to_le_bytes());
        }
        let path = w.path().join(&file);
        std::fs::write(&path, &b).unwrap();
        run("chmod", &["a+r", s(&path)]);
        // The oracle agrees there is damage.
        let fsck = std::process::Command::new("fsck.fat")
            .args(["-n", s(&path)])
            .output()
            .expect("fsck.fat");
        let said = String::from_utf8_lossy(&fsck.stdout);
        assert!(
            said.contains("BIG.BIN"),
            "fsck.fat -n sees no damage in {file}: {said}"
        );
        let dest = format!("{name}-out");
        for args in [
            vec!["cat", file.as_str(), "/BIG.BIN"],
            vec!["export", file.as_str(), "-o", "out.tar"],
            vec!["extract", "--directory", dest.as_str(), file.as_str(), "/"],
            vec!["manifest", file.as_str()],
        ] {
            fails(w.path(), &args, 3, &["BIG.BIN", phrase]);
        }
        assert!(!w.path().join("out.tar").exists(), "no partial export");
    }
}
