//! File contents: a fragmented large file (written by debugfs into the holes left by
//! removed files) is replaced by sparse content, through a copy-on-write overlay of a
//! disk image with the filesystem at 1 MiB (a partition `Slice`), on two flavours edited
//! at once from two threads. Judged by e2fsck -fn on the flattened result, by our
//! reader's bytes and hole map, and by the input image staying byte-for-byte unchanged.

mod common;

use common::*;
use std::io::Read;
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, Extent, ExtentKind, Overlay, RawFile, Slice};
use subroot_formats::ext::ExtTree;
use subroot_formats::tree::Content;
use subroot_libext2fs::{check, Ext2Fs};
use subroot_test_support::{noise, s, sh};

/// Content with holes: `data` (zeros in the holes) and its map.
struct Sparse {
    data: Vec<u8>,
    map: Vec<Extent>,
    pos: usize,
}

impl Read for Sparse {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Content for Sparse {
    fn extents(&self) -> subroot_formats::Result<Vec<Extent>> {
        Ok(self.map.clone())
    }
}

fn sparse() -> Sparse {
    let ext = |offset: u64, len: u64, kind| Extent { offset, len, kind };
    let map = vec![
        ext(0, 65536, ExtentKind::Data),
        ext(65536, 1 << 20, ExtentKind::Zero),
        ext(65536 + (1 << 20), 303_104, ExtentKind::Data), // 74 blocks of 4 KiB
        ext(65536 + (1 << 20) + 303_104, 2 << 20, ExtentKind::Zero),
    ];
    let mut data = vec![0u8; map.iter().map(|e| e.len as usize).sum()];
    for e in &map {
        if e.kind == ExtentKind::Data {
            let r = e.offset as usize..e.end() as usize;
            data[r.clone()].copy_from_slice(&noise(r.len(), e.offset));
        }
    }
    Sparse { data, map, pos: 0 }
}

/// Discontinuities in the block list of `/frag`, per debugfs.
fn fragments(img: &std::path::Path) -> usize {
    let out = bash(&format!("debugfs -R 'blocks /frag' {} 2>/dev/null", s(img)));
    let blocks: Vec<u64> = out.split_whitespace().map(|b| b.parse().unwrap()).collect();
    blocks.windows(2).filter(|w| w[1] != w[0] + 1).count()
}

fn replace_fragmented(opts: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (seed, fsimg, disk) = (
        tmp.path().join("seed"),
        tmp.path().join("fs.img"),
        tmp.path().join("disk.img"),
    );
    bash(&format!(
        "mkdir {0}; for i in $(seq 400); do head -c 8192 /dev/urandom > {0}/s$i; done
         head -c 1500000 /dev/urandom > {1}.src",
        s(&seed),
        s(&fsimg)
    ));
    mkfs(&fsimg, opts, "64M", Some(&seed));
    let rms: String = (2..=400)
        .step_by(2)
        .map(|i| format!("rm /s{i}\n"))
        .collect();
    bash(&format!(
        "debugfs -w -f - {0} >/dev/null 2>&1 <<'EOF'\n{rms}write {0}.src /frag\nEOF",
        s(&fsimg)
    ));
    e2fsck_clean(&fsimg);
    assert!(fragments(&fsimg) > 20, "/frag is not fragmented");
    // The disk: 1 MiB, then the filesystem, then 1 MiB.
    bash(&format!(
        "truncate -s 66M {1}; dd if={0} of={1} bs=1M seek=1 conv=notrunc status=none",
        s(&fsimg),
        s(&disk)
    ));
    let before = sh("sha256sum < \"$1\"", &[s(&disk)]);

    let ov = Arc::new(Overlay::new(RawFile::open(&disk).unwrap()));
    let part: Arc<dyn BlockDevice> = Arc::new(Slice::new(ov.clone(), 1 << 20, 64 << 20).unwrap());
    let mut fs = Ext2Fs::open(part.clone(), "disk.img partition").unwrap();
    let mut content = sparse();
    let want = content.data.clone();
    fs.replace_content(b"frag", &mut content).unwrap();
    let stats = fs.close().unwrap();
    check(part.clone(), &stats.touched_dirs).unwrap();
    assert_eq!(
        before,
        sh("sha256sum < \"$1\"", &[s(&disk)]),
        "the input changed"
    );

    // Flatten the edited partition and judge it.
    let out = tmp.path().join("out.img");
    let mut buf = vec![0u8; 64 << 20];
    part.read_at(&mut buf, 0).unwrap();
    std::fs::write(&out, &buf).unwrap();
    e2fsck_clean(&out);
    let t = ExtTree::open(RawFile::open(&out).unwrap(), Default::default()).unwrap();
    let mut f = t.open_file(b"frag").unwrap();
    assert_eq!(
        Content::extents(&f).unwrap(),
        sparse().map,
        "the hole map differs"
    );
    let mut got = Vec::new();
    f.read_to_end(&mut got).unwrap();
    assert!(got == want, "the content differs");
}

#[test]
fn fragmented_file_replaced_by_sparse_content_through_an_overlay_slice() {
    std::thread::scope(|sc| {
        let a = sc.spawn(|| replace_fragmented("-t ext4"));
        let b = sc.spawn(|| replace_fragmented("-t ext2 -b 1024"));
        a.join().unwrap();
        b.join().unwrap();
    });
}
