//! Filesystem and content sniffing: which filesystem (or container such as LUKS or an LVM
//! physical volume) a device holds, with its label, UUID and version, named and formatted
//! the way `blkid` prints them.
//!
//! Only a few small reads at fixed offsets; a device too small for a format's superblock is
//! simply not that format. Offsets are from each format's on-disk specification (cited at
//! each probe) and cross-checked against `blkid -p` in the tests.

use crate::block::BlockDevice;
use crate::Result;

/// What [`sniff`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsInfo {
    /// blkid's TYPE: "ext2", "ext3", "ext4", "jbd", "vfat", "swap", "crypto_LUKS",
    /// "LVM2_member", "btrfs", "xfs", "squashfs", "erofs", "iso9660".
    pub kind: String,
    /// FAT width (12, 16 or 32) for vfat.
    pub fat_bits: Option<u8>,
    /// blkid's LABEL.
    pub label: Option<String>,
    /// blkid's UUID.
    pub uuid: Option<String>,
    /// blkid's VERSION, where it reports one.
    pub version: Option<String>,
}

impl FsInfo {
    fn new(kind: &str) -> Self {
        FsInfo {
            kind: kind.to_string(),
            fat_bits: None,
            label: None,
            uuid: None,
            version: None,
        }
    }
}

/// One format's detector.
type Probe = fn(&dyn BlockDevice) -> Result<Option<FsInfo>>;

/// Identify the content of `dev`. `Ok(None)` when nothing known is found.
pub fn sniff(dev: &dyn BlockDevice) -> Result<Option<FsInfo>> {
    let probes: [Probe; 10] = [
        luks, lvm2, xfs, squashfs, btrfs, ext, erofs, swap, iso9660, vfat,
    ];
    for probe in probes {
        if let Some(info) = probe(dev)? {
            return Ok(Some(info));
        }
    }
    Ok(None)
}

/// `len` bytes at `off`, or `None` when the device is too small.
fn read(dev: &dyn BlockDevice, off: u64, len: usize) -> Result<Option<Vec<u8>>> {
    if off.checked_add(len as u64).is_none_or(|e| e > dev.len()) {
        return Ok(None);
    }
    let mut buf = vec![0u8; len];
    dev.read_at(&mut buf, off)?;
    Ok(Some(buf))
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// A label field: up to the first NUL, trailing spaces dropped; `None` when empty.
fn label(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(&b[..end])
        .trim_end_matches(' ')
        .to_string();
    (!s.is_empty()).then_some(s)
}

/// A binary UUID as blkid prints it (lowercase, hyphenated); `None` when all zero.
fn uuid(b: &[u8]) -> Option<String> {
    let a: [u8; 16] = b.get(..16)?.try_into().ok()?;
    (a != [0; 16]).then(|| uuid::Uuid::from_bytes(a).hyphenated().to_string())
}

/// ext2/3/4 (and an external journal, "jbd"): superblock at 1024, magic 0xEF53 at +56,
/// compat/incompat/ro_compat at +92/+96/+100, UUID at +104, label at +120
/// (Linux `fs/ext4/ext4.h`). Classified like libblkid: features outside the ext2/ext3 sets
/// make it ext4.
fn ext(dev: &dyn BlockDevice) -> Result<Option<FsInfo>> {
    let Some(sb) = read(dev, 1024, 1024)? else {
        return Ok(None);
    };
    if le16(&sb, 56) != 0xef53 {
        return Ok(None);
    }
    let (compat, incompat, ro) = (le32(&sb, 92), le32(&sb, 96), le32(&sb, 100));
    const HAS_JOURNAL: u32 = 0x4;
    const JOURNAL_DEV: u32 = 0x8;
    const RO_SUPP: u32 = 0x1 | 0x2 | 0x4; // sparse_super, large_file, btree_dir
    const EXT2_INCOMPAT: u32 = 0x2 | 0x10; // filetype, meta_bg
    const EXT3_INCOMPAT: u32 = EXT2_INCOMPAT | 0x4; // + recover
    let journal = compat & HAS_JOURNAL != 0;
    let kind = if incompat & JOURNAL_DEV != 0 {
        "jbd"
    } else if !journal && ro & !RO_SUPP == 0 && incompat & !EXT2_INCOMPAT == 0 {
        "ext2"
    } else if journal && ro & !RO_SUPP == 0 && incompat & !EXT3_INCOMPAT == 0 {
        "ext3"
    } else {
        "ext4"
    };
    let mut info = FsInfo::new(kind);
    info.uuid = uuid(&sb[104..120]);
    info.label = label(&sb[120..136]);
    info.version = Some(format!("{}.{}", le32(&sb, 76), le16(&sb, 62)));
    Ok(Some(info))
}

/// True when a 512-byte sector is a FAT boot sector (jump, BPB sanity, 0x55AA, "FAT" type
/// string); used by the partition-table reader, like libblkid, to tell a FAT volume from an MBR.
pub fn is_vfat_boot_sector(s: &[u8]) -> bool {
    fat_geometry(s).is_some()
}

/// FAT geometry from the BPB (Microsoft "FAT32 File System Specification", BPB offsets):
/// (bits, bytes per sector, first root-dir byte, root-dir bytes to scan).
fn fat_geometry(s: &[u8]) -> Option<(u8, u64, u64, u64)> {
    if s.len() < 512
        || s[510..512] != [0x55, 0xaa]
        || !(s[0] == 0xeb && s[2] == 0x90 || s[0] == 0xe9)
    {
        return None;
    }
    if &s[0x36..0x39] != b"FAT" && &s[0x52..0x57] != b"FAT32" && &s[0x52..0x57] != b"MSWIN" {
        return None;
    }
    let bps = u64::from(le16(s, 11));
    let spc = u64::from(s[13]);
    let reserved = u64::from(le16(s, 14));
    let fats = u64::from(s[16]);
    let root_entries = u64::from(le16(s, 17));
    let media = s[21];
    if !bps.is_power_of_two()
        || !(512..=4096).contains(&bps)
        || !spc.is_power_of_two()
        || reserved == 0
        || fats == 0
        || !(media >= 0xf8 || media == 0xf0)
    {
        return None;
    }
    let total = match le16(s, 19) {
        0 => u64::from(le32(s, 32)),
        n => u64::from(n),
    };
    let fat16 = u64::from(le16(s, 22));
    let fat_size = if fat16 != 0 {
        fat16
    } else {
        u64::from(le32(s, 36))
    };
    let root_sectors = (root_entries * 32).div_ceil(bps);
    let meta = reserved + fats * fat_size + root_sectors;
    let clusters = total.checked_sub(meta)? / spc;
    if fat16 != 0 {
        let bits = if clusters < 4085 { 12 } else { 16 };
        Some((
            bits,
            bps,
            (reserved + fats * fat_size) * bps,
            root_entries * 32,
        ))
    } else {
        let root_cluster = u64::from(le32(s, 44));
        let first = meta + root_cluster.checked_sub(2)? * spc;
        Some((32, bps, first.checked_mul(bps)?, spc * bps))
    }
}

/// vfat: boot-sector label/serial at 0x2B/0x27 (FAT12/16) or 0x47/0x43 (FAT32); like
/// blkid, the volume-label entry in the root directory takes precedence.
fn vfat(dev: &dyn BlockDevice) -> Result<Option<FsInfo>> {
    let Some(s) = read(dev, 0, 512)? else {
        return Ok(None);
    };
    let Some((bits, _bps, root_off, root_len)) = fat_geometry(&s) else {
        return Ok(None);
    };
    let (lab_off, ser_off) = if bits == 32 {
        (0x47, 0x43)
    } else {
        (0x2b, 0x27)
    };
    let mut info = FsInfo::new("vfat");
    info.fat_bits = Some(bits);
    info.version = Some(format!("FAT{bits}"));
    let ser = &s[ser_off..ser_off + 4];
    info.uuid = Some(format!(
        "{:02X}{:02X}-{:02X}{:02X}",
        ser[3], ser[2], ser[1], ser[0]
    ));
    let boot_label = label(&s[lab_off..lab_off + 11]).filter(|l| l != "NO NAME");
    let mut root_label = None;
    if let Some(dir) = read(dev, root_off, root_len.min(8192) as usize)? {
        for e in dir.chunks_exact(32) {
            if e[0] == 0 {
                break;
            }
            if e[0] == 0xe5 || e[11] == 0x0f || e[11] & 0x18 != 0x08 {
                continue;
            }
            let mut name = e[..11].to_vec();
            if name[0] == 0x05 {
                name[0] = 0xe5;
            }
            root_label = label(&name).filter(|l| l != "NO NAME");
            break;
        }
    }
    info.label = root_label.or(boot_label);
    Ok(Some(info))
}

/// Linux swap: "SWAPSPACE2" in the last 10 bytes of the first page; version, UUID and label
/// in the header at 1024 (+0, +12, +28) (util-linux `include/swapheader.h`).
fn swap(dev: &dyn BlockDevice) -> Result<Option<FsInfo>> {
    for page in [4096u64, 8192, 16384, 65536] {
        let Some(sig) = read(dev, page - 10, 10)? else {
            continue;
        };
        if &sig == b"SWAP-SPACE" {
            let mut info = FsInfo::new("swap");
            info.version = Some("0".into());
            return Ok(Some(info));
        }
        if &sig == b"SWAPSPACE2" {
            let Some(h) = read(dev, 1024, 44)? else {
                continue;
            };
            let mut info = FsInfo::new("swap");
            info.version = Some(le32(&h, 0).to_string());
            info.uuid = uuid(&h[12..28]);
            info.label = label(&h[28..44]);
            return Ok(Some(info));
        }
    }
    Ok(None)
}

/// LUKS1/LUKS2: magic "LUKS\xba\xbe", big-endian version at 6, UUID string at 168,
/// LUKS2 label at 24 (cryptsetup "LUKS2 On-Disk Format Specification").
fn luks(dev: &dyn BlockDevice) -> Result<Option<FsInfo>> {
    let Some(h) = read(dev, 0, 208)? else {
        return Ok(None);
    };
    if &h[..6] != b"LUKS\xba\xbe" {
        return Ok(None);
    }
    let version = u16::from_be_bytes([h[6], h[7]]);
    let mut info = FsInfo::new("crypto_LUKS");
    info.version = Some(version.to_string());
    info.uuid = label(&h[168..208]);
    if version == 2 {
        info.label = label(&h[24..72]);
    }
    Ok(Some(info))
}

/// LVM2 PV: "LABELONE" in one of the first four sectors, type "LVM2 001" at +24, the PV
/// header at +offset (from +20) starting with the 32-character PV UUID (LVM2 `label.h`).
fn lvm2(dev: &dyn BlockDevice) -> Result<Option<FsInfo>> {
    let Some(b) = read(dev, 0, 2048)? else {
        return Ok(None);
    };
    for sec in b.chunks_exact(512) {
        if &sec[..8] != b"LABELONE" || &sec[24..32] != b"LVM2 001" {
            continue;
        }
        let off = le32(sec, 20) as usize;
        let Some(raw) = sec.get(off..off + 32) else {
            continue;
        };
        let mut info = FsInfo::new("LVM2_member");
        info.version = Some("LVM2 001".into());
        let s = String::from_utf8_lossy(raw);
        // blkid groups the 32 characters 6-4-4-4-4-4-6.
        let mut out = String::new();
        let mut pos = 0;
        for (i, n) in [6, 4, 4, 4, 4, 4, 6].into_iter().enumerate() {
            if i > 0 {
                out.push('-');
            }
            out.push_str(s.get(pos..pos + n).unwrap_or(""));
            pos += n;
        }
        info.uuid = Some(out);
        return Ok(Some(info));
    }
    Ok(None)
}

/// btrfs: superblock at 64 KiB, fsid at +32, magic "_BHRfS_M" at +64, label at +299
/// (btrfs on-disk format, `struct btrfs_super_block`).
fn btrfs(dev: &dyn BlockDevice) -> Result<Option<FsInfo>> {
    let Some(sb) = read(dev, 65536, 555)? else {
        return Ok(None);
    };
    if &sb[64..72] != b"_BHRfS_M" {
        return Ok(None);
    }
    let mut info = FsInfo::new("btrfs");
    info.uuid = uuid(&sb[32..48]);
    info.label = label(&sb[299..555]);
    Ok(Some(info))
}

/// XFS: magic "XFSB" at 0, UUID at 32, 12-byte label at 108 (`struct xfs_dsb`).
fn xfs(dev: &dyn BlockDevice) -> Result<Option<FsInfo>> {
    let Some(sb) = read(dev, 0, 120)? else {
        return Ok(None);
    };
    if &sb[..4] != b"XFSB" {
        return Ok(None);
    }
    let mut info = FsInfo::new("xfs");
    info.uuid = uuid(&sb[32..48]);
    info.label = label(&sb[108..120]);
    Ok(Some(info))
}

/// squashfs 4: magic "hsqs" at 0, major/minor version at 28/30.
fn squashfs(dev: &dyn BlockDevice) -> Result<Option<FsInfo>> {
    let Some(sb) = read(dev, 0, 32)? else {
        return Ok(None);
    };
    if &sb[..4] != b"hsqs" {
        return Ok(None);
    }
    let mut info = FsInfo::new("squashfs");
    info.version = Some(format!("{}.{}", le16(&sb, 28), le16(&sb, 30)));
    Ok(Some(info))
}

/// EROFS: superblock at 1024, magic 0xE0F5E1E2 at +0, UUID at +48, volume name at +64
/// (`struct erofs_super_block`).
fn erofs(dev: &dyn BlockDevice) -> Result<Option<FsInfo>> {
    let Some(sb) = read(dev, 1024, 80)? else {
        return Ok(None);
    };
    if le32(&sb, 0) != 0xe0f5_e1e2 {
        return Ok(None);
    }
    let mut info = FsInfo::new("erofs");
    info.uuid = uuid(&sb[48..64]);
    info.label = label(&sb[64..80]);
    Ok(Some(info))
}

/// ISO 9660: primary volume descriptor at 32 KiB ("\x01CD001"), volume identifier at +40;
/// blkid's UUID is the modification (else creation) date at +830 (+813) as
/// YYYY-MM-DD-HH-MM-SS-CC (ECMA-119 8.4).
fn iso9660(dev: &dyn BlockDevice) -> Result<Option<FsInfo>> {
    let Some(pvd) = read(dev, 32768, 881)? else {
        return Ok(None);
    };
    if &pvd[..6] != b"\x01CD001" {
        return Ok(None);
    }
    let mut info = FsInfo::new("iso9660");
    info.label = label(&pvd[40..72]);
    let date = |d: &[u8]| -> Option<String> {
        let d = &d[..16];
        if !d.iter().all(u8::is_ascii_digit) || d.iter().all(|&c| c == b'0') {
            return None;
        }
        let s = std::str::from_utf8(d).ok()?;
        Some(format!(
            "{}-{}-{}-{}-{}-{}-{}",
            &s[0..4],
            &s[4..6],
            &s[6..8],
            &s[8..10],
            &s[10..12],
            &s[12..14],
            &s[14..16]
        ))
    };
    info.uuid = date(&pvd[830..847]).or_else(|| date(&pvd[813..830]));
    Ok(Some(info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MemoryDevice;

    #[test]
    fn tiny_and_empty_devices_are_unknown() {
        for n in [0usize, 1, 511, 1100, 4096, 70000] {
            assert_eq!(sniff(&MemoryDevice::new(n)).unwrap(), None, "{n}");
        }
    }

    #[test]
    fn garbage_fat_bpb_does_not_panic() {
        let mut s = vec![0xffu8; 4096];
        s[0] = 0xeb;
        s[2] = 0x90;
        s[0x36..0x39].copy_from_slice(b"FAT");
        s[510] = 0x55;
        s[511] = 0xaa;
        s[11..13].copy_from_slice(&512u16.to_le_bytes());
        s[13] = 128;
        s[21] = 0xf8;
        let _ = sniff(&MemoryDevice::from_vec(s)).unwrap();
    }
}
