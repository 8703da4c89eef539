//! [`Identity`]: everything about an ext filesystem that is not its files and that
//! something outside it depends on (fstab's `UUID=`, `root=UUID=`, GRUB's search, the
//! kernel's feature checks), and how to make `mke2fs` reproduce it exactly.
//!
//! mke2fs runs with a private `mke2fs.conf` (via `MKE2FS_CONFIG`) and `-O none,<list>`, so
//! the host's configured defaults (`orphan_file`, `metadata_csum_seed`, `inode_size`, …)
//! never leak in. Fields mke2fs has no option for are set afterwards with debugfs
//! `set_super_value` commands ([`Identity::ssv_commands`]).

use crate::{Error, Result};
use std::ffi::OsString;
use subroot_formats::block::BlockDevice;
use subroot_formats::ext::ExtFs;

/// Features that describe state, not format: never requested from mke2fs.
const STATE_FEATURES: &[&str] = &["needs_recovery", "orphan_present"];

/// The feature sets of a fresh filesystem of each kind (Debian's mke2fs.conf of
/// e2fsprogs 1.47.0, fixed here so the result does not depend on the host).
pub fn default_features(kind: &str) -> Option<&'static [&'static str]> {
    const EXT2: &[&str] = &[
        "ext_attr",
        "resize_inode",
        "dir_index",
        "filetype",
        "sparse_super",
        "large_file",
    ];
    const EXT3: &[&str] = &[
        "has_journal",
        "ext_attr",
        "resize_inode",
        "dir_index",
        "filetype",
        "sparse_super",
        "large_file",
    ];
    const EXT4: &[&str] = &[
        "has_journal",
        "ext_attr",
        "resize_inode",
        "dir_index",
        "filetype",
        "extent",
        "64bit",
        "flex_bg",
        "sparse_super",
        "large_file",
        "huge_file",
        "dir_nlink",
        "extra_isize",
        "metadata_csum",
    ];
    match kind {
        "ext2" => Some(EXT2),
        "ext3" => Some(EXT3),
        "ext4" => Some(EXT4),
        _ => None,
    }
}

/// The identity of a filesystem to build. `None` fields are left to mke2fs (with the
/// private configuration's fixed defaults: 4 KiB blocks, 256-byte inodes, one inode per
/// 16 KiB).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The exact feature set, by dumpe2fs name.
    pub features: Vec<String>,
    pub uuid: Option<[u8; 16]>,
    pub label: Option<Vec<u8>>,
    pub block_size: Option<u32>,
    pub inode_size: Option<u16>,
    pub inodes_count: Option<u32>,
    /// The filesystem's size in blocks. A filesystem may be smaller than its partition;
    /// rebuilding it to fill the partition would change its group count (and so its
    /// inode count), which is not "like" the original.
    pub blocks_count: Option<u64>,
    pub blocks_per_group: Option<u32>,
    /// bigalloc cluster size in bytes.
    pub cluster_size: Option<u32>,
    /// `s_log_groups_per_flex` (flex_bg only).
    pub log_groups_per_flex: Option<u8>,
    /// Journal size in filesystem blocks (has_journal only).
    pub journal_blocks: Option<u64>,
    /// The directory hash seed as the 16 on-disk bytes.
    pub hash_seed: Option<[u8; 16]>,
    pub def_hash_version: Option<u8>,
    pub reserved_blocks: Option<u64>,
    pub def_resuid: Option<u16>,
    pub def_resgid: Option<u16>,
    pub default_mount_opts: Option<u32>,
    pub errors: Option<u16>,
    pub rev_level: Option<u32>,
    pub creator_os: Option<u32>,
    pub max_mount_count: Option<i16>,
    pub check_interval: Option<u32>,
    /// `s_flags` (directory hash signedness, test-fs flag).
    pub s_flags: Option<u32>,
    pub desc_size: Option<u16>,
    pub min_extra_isize: Option<u16>,
    pub want_extra_isize: Option<u16>,
    /// `s_checksum_seed` (metadata_csum_seed only).
    pub checksum_seed: Option<u32>,
}

fn le32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .unwrap_or(0)
}

impl Identity {
    /// A fresh identity for `kind` (`ext2`, `ext3`, `ext4`): default features, new UUID.
    pub fn fresh(kind: &str) -> Result<Self> {
        let features = default_features(kind).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unknown filesystem type `{kind}` (expected ext2, ext3 or ext4)"
            ))
        })?;
        Ok(Identity {
            features: features.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }

    /// The size in bytes the filesystem must have, when the identity fixes it.
    pub fn fs_bytes(&self) -> Option<u64> {
        self.blocks_count?.checked_mul(u64::from(self.block_size?))
    }

    /// The identity of an existing filesystem, for rebuilding it "like" the original.
    pub fn like<D: BlockDevice>(fs: &ExtFs<D>) -> Result<Self> {
        let sb = fs.superblock();
        let mut raw = vec![0u8; 1024];
        fs.device().read_at(&mut raw, 1024)?;
        let mut features = Vec::new();
        for name in sb.features.names() {
            if STATE_FEATURES.contains(&name.as_str()) {
                continue;
            }
            if name.starts_with("unknown(") || name == "journal_dev" {
                return Err(Error::unsupported(format!(
                    "ext: cannot rebuild a filesystem with feature {name}"
                )));
            }
            features.push(name);
        }
        let has = |f: &str| features.iter().any(|x| x == f);
        let journal_blocks = if has("has_journal") {
            if sb.journal_inum == 0 {
                return Err(Error::unsupported(
                    "ext: the filesystem has an external journal device; rebuilding it is not supported"
                        .to_string(),
                ));
            }
            let j = fs.inode(sb.journal_inum)?;
            Some(j.size / u64::from(sb.block_size))
        } else {
            None
        };
        let mut hash_seed = [0u8; 16];
        for (i, w) in sb.hash_seed.iter().enumerate() {
            hash_seed[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        let dynamic = sb.rev_level >= 1;
        Ok(Identity {
            uuid: Some(sb.uuid),
            label: Some(sb.volume_name.clone()),
            block_size: Some(sb.block_size),
            inode_size: Some(sb.inode_size),
            inodes_count: Some(sb.inodes_count),
            blocks_count: Some(sb.blocks_count),
            blocks_per_group: Some(sb.blocks_per_group),
            cluster_size: has("bigalloc").then_some(sb.cluster_size),
            log_groups_per_flex: has("flex_bg").then_some(sb.log_groups_per_flex),
            journal_blocks,
            hash_seed: (hash_seed != [0; 16]).then_some(hash_seed),
            def_hash_version: Some(sb.def_hash_version),
            reserved_blocks: Some(sb.reserved_blocks_count),
            def_resuid: Some(sb.def_resuid),
            def_resgid: Some(sb.def_resgid),
            default_mount_opts: Some(sb.default_mount_opts),
            errors: Some(sb.errors),
            rev_level: Some(sb.rev_level),
            creator_os: Some(sb.creator_os),
            max_mount_count: Some(sb.max_mount_count),
            check_interval: Some(le32(&raw, 0x44)),
            s_flags: Some(sb.flags),
            desc_size: has("64bit").then_some(sb.desc_size),
            min_extra_isize: (dynamic && sb.inode_size > 128).then_some(sb.min_extra_isize),
            want_extra_isize: (dynamic && sb.inode_size > 128).then_some(sb.want_extra_isize),
            checksum_seed: has("metadata_csum_seed").then_some(sb.checksum_seed),
            features,
        })
    }

    /// True when the feature is in the set.
    pub fn has(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    /// The private mke2fs.conf: fixed defaults and every fs type defined empty, so
    /// nothing from the host's configuration is used.
    pub fn private_config() -> String {
        let mut s = String::from(
            "[defaults]\n\tbase_features = sparse_super\n\tblocksize = 4096\n\
             \tinode_size = 256\n\tinode_ratio = 16384\n\thash_alg = half_md4\n\
             \treserved_ratio = 5.0\n\tdefault_mntopts = acl,user_xattr\n\
             \tenable_periodic_fsck = 0\n\tlazy_itable_init = false\n\n[fs_types]\n",
        );
        for t in [
            "ext2",
            "ext3",
            "ext4",
            "small",
            "floppy",
            "default",
            "big",
            "huge",
            "news",
            "largefile",
            "largefile4",
            "hurd",
        ] {
            s.push_str(&format!("\t{t} = {{\n\t\tfeatures = ^has_journal\n\t}}\n"));
        }
        s
    }

    /// The mke2fs arguments (without `-d` and the device), for `version` of e2fsprogs.
    pub fn mke2fs_args(&self, version: (u32, u32, u32)) -> Result<Vec<OsString>> {
        let mut a: Vec<OsString> = vec!["-F".into(), "-q".into()];
        let mut features = String::from("none");
        for f in &self.features {
            features.push(',');
            features.push_str(f);
        }
        a.push("-O".into());
        a.push(features.into());
        if let Some(r) = self.rev_level {
            a.push("-r".into());
            a.push(r.min(1).to_string().into());
        }
        if let Some(b) = self.block_size {
            a.push("-b".into());
            a.push(b.to_string().into());
        }
        if let Some(c) = self.cluster_size {
            a.push("-C".into());
            a.push(c.to_string().into());
        }
        if let Some(i) = self.inode_size.filter(|_| self.rev_level != Some(0)) {
            a.push("-I".into());
            a.push(i.to_string().into());
        }
        if let Some(n) = self.inodes_count {
            a.push("-N".into());
            a.push(n.to_string().into());
        }
        if let Some(g) = self.blocks_per_group {
            if self.cluster_size.is_none() {
                a.push("-g".into());
                a.push(g.to_string().into());
            }
        }
        if let Some(l) = self.log_groups_per_flex.filter(|_| self.has("flex_bg")) {
            a.push("-G".into());
            a.push((1u64 << l.min(31)).to_string().into());
        }
        if let Some(u) = self.uuid {
            a.push("-U".into());
            a.push(uuid_string(&u).into());
        }
        if let Some(l) = &self.label {
            a.push("-L".into());
            a.push(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(l).to_os_string());
        }
        if let Some(jb) = self.journal_blocks.filter(|_| self.has("has_journal")) {
            let bs = u64::from(self.block_size.unwrap_or(4096));
            let bytes = jb.saturating_mul(bs);
            let mib = bytes.div_ceil(1 << 20).max(1);
            a.push("-J".into());
            a.push(format!("size={mib}").into());
        }
        a.push("-m".into());
        a.push("0".into());
        let mut ext = vec!["lazy_itable_init=0".to_string()];
        if version >= (1, 47, 0) {
            ext.push("no_copy_xattrs".to_string());
        }
        if let Some(h) = self.hash_seed {
            ext.push(format!("hash_seed={}", uuid_string(&h)));
        }
        if let Some(d) = self.desc_size {
            ext.push(format!("desc_size={d}"));
        }
        a.push("-E".into());
        a.push(ext.join(",").into());
        Ok(a)
    }

    /// debugfs commands that set what mke2fs has no option for (run in the reconcile
    /// script, before any file is touched).
    pub fn ssv_commands(&self) -> Vec<String> {
        let mut c = Vec::new();
        let mut set = |field: &str, v: Option<String>| {
            if let Some(v) = v {
                c.push(format!("ssv {field} {v}"));
            }
        };
        set(
            "r_blocks_count",
            self.reserved_blocks.map(|v| v.to_string()),
        );
        set("def_resuid", self.def_resuid.map(|v| v.to_string()));
        set("def_resgid", self.def_resgid.map(|v| v.to_string()));
        set("def_hash_version", self.def_hash_version.map(hash_name));
        set(
            "default_mount_opts",
            self.default_mount_opts.map(|v| v.to_string()),
        );
        set("errors", self.errors.map(|v| v.to_string()));
        set("creator_os", self.creator_os.map(|v| v.to_string()));
        set("max_mnt_count", self.max_mount_count.map(|v| v.to_string()));
        set("checkinterval", self.check_interval.map(|v| v.to_string()));
        set("flags", self.s_flags.map(|v| v.to_string()));
        set(
            "min_extra_isize",
            self.min_extra_isize.map(|v| v.to_string()),
        );
        set(
            "want_extra_isize",
            self.want_extra_isize.map(|v| v.to_string()),
        );
        c
    }

    /// Differences between this (intended) identity and a built filesystem's, as
    /// `field: wanted X, got Y` lines (empty when identical). `None` fields are not checked.
    pub fn differences(&self, built: &Identity) -> Vec<String> {
        let mut d = Vec::new();
        let mut want = self.features.clone();
        let mut got = built.features.clone();
        want.sort();
        got.sort();
        if want != got {
            d.push(format!("features: wanted {want:?}, got {got:?}"));
        }
        macro_rules! cmp {
            ($f:ident) => {
                if let Some(w) = &self.$f {
                    if Some(w) != built.$f.as_ref() {
                        d.push(format!(
                            "{}: wanted {:?}, got {:?}",
                            stringify!($f),
                            w,
                            built.$f
                        ));
                    }
                }
            };
        }
        cmp!(uuid);
        cmp!(label);
        cmp!(block_size);
        cmp!(inode_size);
        cmp!(inodes_count);
        cmp!(blocks_count);
        cmp!(blocks_per_group);
        cmp!(cluster_size);
        cmp!(log_groups_per_flex);
        cmp!(journal_blocks);
        cmp!(hash_seed);
        cmp!(def_hash_version);
        cmp!(reserved_blocks);
        cmp!(def_resuid);
        cmp!(def_resgid);
        cmp!(default_mount_opts);
        cmp!(errors);
        cmp!(rev_level);
        cmp!(creator_os);
        cmp!(max_mount_count);
        cmp!(check_interval);
        cmp!(s_flags);
        cmp!(desc_size);
        cmp!(min_extra_isize);
        cmp!(want_extra_isize);
        cmp!(checksum_seed);
        d
    }
}

/// debugfs's name of a directory hash algorithm number.
fn hash_name(v: u8) -> String {
    match v {
        0 => "legacy".to_string(),
        1 => "half_md4".to_string(),
        2 => "tea".to_string(),
        3 => "legacy_unsigned".to_string(),
        4 => "half_md4_unsigned".to_string(),
        5 => "tea_unsigned".to_string(),
        6 => "siphash".to_string(),
        n => n.to_string(),
    }
}

/// 16 bytes as a UUID string (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`).
pub fn uuid_string(b: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*b).hyphenated().to_string()
}

/// Parse a UUID string (with or without dashes).
pub fn parse_uuid(s: &str) -> Result<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|&c| c != b'-').collect();
    let bad = || Error::InvalidArgument(format!("`{s}` is not a UUID"));
    if hex.len() != 32 {
        return Err(bad());
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let t = std::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(t, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_round_trip() {
        let u = parse_uuid("0b3c3f6e-1111-2222-3333-444455556666").unwrap();
        assert_eq!(uuid_string(&u), "0b3c3f6e-1111-2222-3333-444455556666");
        assert!(parse_uuid("zz").is_err());
    }

    #[test]
    fn arguments_name_exact_features() {
        let mut id = Identity::fresh("ext3").unwrap();
        id.uuid = Some([1; 16]);
        id.journal_blocks = Some(1024);
        id.block_size = Some(1024);
        let a: Vec<String> = id
            .mke2fs_args((1, 47, 0))
            .unwrap()
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let o = a.iter().position(|x| x == "-O").unwrap();
        assert!(a[o + 1].starts_with("none,has_journal,"));
        assert!(a.contains(&"size=1".to_string()));
        assert!(a.contains(&"01010101-0101-0101-0101-010101010101".to_string()));
        assert!(Identity::fresh("xfs").is_err());
        assert!(!Identity::private_config().contains("orphan_file"));
    }
}
