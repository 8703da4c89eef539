//! Filesystems the editor must not write are refused at open, by feature name, with
//! nothing written (the device is a copy-on-write overlay whose dirty bytes are counted).

mod common;

use common::*;
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, Overlay, RawFile};
use subroot_libext2fs::{Error, Ext2Fs};
use subroot_test_support::s;

/// Open `img` over an overlay; the error, and the bytes written before it.
fn refusal(img: &std::path::Path) -> (Error, u64) {
    let ov = Arc::new(Overlay::new(RawFile::open(img).unwrap()));
    let dev: Arc<dyn BlockDevice> = ov.clone();
    let err = Ext2Fs::open(dev, s(img))
        .err()
        .expect("the open must be refused");
    (err, ov.dirty_bytes())
}

#[test]
fn features_it_cannot_write_are_refused_before_any_write() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("fs.img");
    // (mke2fs options, debugfs -w command to run after, the feature named in the error)
    let cases: &[(&str, &str, &str)] = &[
        ("-t ext4 -O inline_data", "", "inline_data"),
        ("-t ext4 -O quota", "", "quota"),
        ("-t ext4 -O project,quota -I 256", "", "quota"),
        ("-t ext4 -O casefold", "", "casefold"),
        ("-t ext4 -O encrypt", "", "encrypt"),
        ("-t ext4 -O verity", "", "verity"),
        ("-t ext4 -O mmp", "", "mmp"),
        ("-t ext4", "feature needs_recovery", "needs_recovery"),
        (
            "-t ext4 -O orphan_file",
            "feature orphan_present",
            "orphan_present",
        ),
        ("-t ext4", "ssv last_orphan 11", "orphan inode list"),
        ("-t ext2", "ssv state 0", "not clean"),
        ("-t ext4", "ssv state 3", "errors"),
    ];
    for (opts, fix, feature) in cases {
        mkfs(&img, opts, "32M", None);
        if !fix.is_empty() {
            bash(&format!("debugfs -w -R '{fix}' {} 2>/dev/null", s(&img)));
        }
        let (err, dirty) = refusal(&img);
        match &err {
            Error::Unsupported { feature: f } => {
                assert!(f.contains(feature), "{opts} {fix}: {err}")
            }
            e => panic!("{opts} {fix}: expected Unsupported({feature}), got {e:?}"),
        }
        assert_eq!(dirty, 0, "{opts} {fix}: bytes were written");
        assert!(err.to_string().contains(feature), "{err}");
    }
}

#[test]
fn not_an_ext_filesystem_is_corrupt_and_a_read_only_device_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("zero.img");
    bash(&format!("truncate -s 8M {}", s(&img)));
    let (err, dirty) = refusal(&img);
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    assert_eq!(dirty, 0);

    // A read-only device: the device's own error comes back when the edit is flushed.
    let img = tmp.path().join("fs.img");
    mkfs(&img, "-t ext4", "32M", None);
    let dev: Arc<dyn BlockDevice> = Arc::new(RawFile::open(&img).unwrap());
    let mut fs = Ext2Fs::open(dev, s(&img)).unwrap();
    let e = new_entry("d", subroot_formats::tree::Kind::Dir, Default::default());
    let err = fs.create(&e, None).expect_err("a read-only device fails");
    assert!(
        matches!(err, Error::Device(subroot_formats::Error::ReadOnly)),
        "{err:?}"
    );
}
