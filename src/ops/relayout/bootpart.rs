//! A separate `/boot` partition: which `/etc/fstab` line mounts `/boot`, and which
//! partition of the disk that line names (`UUID=`, `LABEL=`, `PARTUUID=`, `PARTLABEL=`,
//! their `/dev/disk/by-*` forms, or a device name such as `/dev/sda1`, `/dev/vda1`,
//! `/dev/nvme0n1p1`, `/dev/mmcblk0p1`), among the partitions of the image's one survey.

use super::plan::{read_text, Dev};
use crate::open::survey::ImageSurvey;
use anyhow::Result;
use subroot_formats::ext::ExtTree;
use subroot_formats::sniff::FsInfo;
use subroot_formats::table::{Partition, PartitionTable, TableKind};
use subroot_formats::tree::Kind;

/// The separate `/boot` partition found.
pub struct Located {
    pub partition: Partition,
    pub fs: FsInfo,
    pub device: Dev,
    /// The fstab device field that named it.
    pub spec: String,
}

/// The partition the root's `fstab` (`etc/fstab`, or `rN/etc/fstab` after a relayout)
/// mounts on `/boot`, when it is another partition of the disk `survey` found; refuses
/// (exit 3) a `/boot` that is named but not found, or not ext2/3/4.
pub fn locate(
    survey: &ImageSurvey,
    root: &ExtTree<Dev>,
    fstab: &[u8],
    root_number: Option<u32>,
    name: &str,
) -> Result<Option<Located>> {
    let Some(entry) = root.entry(fstab).ok().filter(|e| e.kind == Kind::File) else {
        return Ok(None);
    };
    let text = read_text(root, fstab, entry.size)?;
    let Some(dev) = fstab_boot(&text) else {
        return Ok(None);
    };
    let Some(spec) = parse_spec(&dev) else {
        refuse!(
            "{name}: /etc/fstab mounts /boot from {dev}, which names no partition subroot can \
             find on this disk (UUID=, LABEL=, PARTUUID=, PARTLABEL= or /dev/sdXN-style names)"
        );
    };
    let Some(table) = &survey.table else {
        refuse!(
            "{name}: /etc/fstab mounts a separate /boot ({dev}) but the image has no partition \
             table, so no /boot partition"
        );
    };
    for slot in &survey.slots {
        let Some(p) = &slot.partition else { continue };
        if !matches(&spec, table, p, slot.fs.as_ref()) {
            continue;
        }
        if Some(p.number) == root_number {
            return Ok(None); // /boot on the root filesystem itself
        }
        let Some(fs) = slot.fs.clone().filter(|f| f.kind.starts_with("ext")) else {
            refuse!(
                "{name}: the /boot partition {} ({dev}) is not ext2/3/4; relayout supports a \
                 separate /boot on ext2/3/4",
                p.number
            );
        };
        return Ok(Some(Located {
            partition: p.clone(),
            fs,
            device: slot.device.clone(),
            spec: dev,
        }));
    }
    refuse!("{name}: /etc/fstab mounts /boot from {dev}, but no partition of the image is that")
}

/// The device field of the `/etc/fstab` line that mounts `/boot` (comments, blank lines
/// and other mount points ignored), if any.
pub fn fstab_boot(fstab: &str) -> Option<String> {
    crate::open::fstab::parse(fstab)
        .into_iter()
        .find(|e| e.mountpoint.trim_end_matches('/') == "/boot")
        .map(|e| e.device)
}

/// How an fstab device field names a filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    Uuid(String),
    Label(String),
    PartUuid(String),
    PartLabel(String),
    /// A partition number taken from a device name.
    Number(u32),
}

/// Parse an fstab device field; `None` for forms that name no partition of this disk
/// (e.g. `/dev/mapper/…`, network filesystems).
pub fn parse_spec(dev: &str) -> Option<Spec> {
    let unquote = |s: &str| s.trim_matches('"').to_string();
    for (prefix, make) in [
        ("UUID=", Spec::Uuid as fn(String) -> Spec),
        ("LABEL=", Spec::Label),
        ("PARTUUID=", Spec::PartUuid),
        ("PARTLABEL=", Spec::PartLabel),
        ("/dev/disk/by-uuid/", Spec::Uuid),
        ("/dev/disk/by-label/", Spec::Label),
        ("/dev/disk/by-partuuid/", Spec::PartUuid),
        ("/dev/disk/by-partlabel/", Spec::PartLabel),
    ] {
        if let Some(v) = dev.strip_prefix(prefix) {
            return Some(make(unquote(v)));
        }
    }
    let name = dev.strip_prefix("/dev/")?;
    // nvme0n1p1, mmcblk0p1, loop0p1: the number after the last `p` following a digit.
    if name.starts_with("nvme") || name.starts_with("mmcblk") || name.starts_with("loop") {
        let (_, n) = name.rsplit_once('p')?;
        return n.parse().ok().map(Spec::Number);
    }
    // sda1, vda1, hda1, xvda1: letters then the number.
    let letters = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let digits = &name[letters.len()..];
    if ["sd", "vd", "hd", "xvd"]
        .iter()
        .any(|p| letters.starts_with(p))
        && !digits.is_empty()
    {
        return digits.parse().ok().map(Spec::Number);
    }
    None
}

/// Whether partition `p` (holding `fs`, if recognised) of `table` is what `spec` names.
pub fn matches(spec: &Spec, table: &PartitionTable, p: &Partition, fs: Option<&FsInfo>) -> bool {
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    match spec {
        Spec::Uuid(_) | Spec::Label(_) => matches_fs(spec, fs),
        Spec::PartUuid(u) => match table.kind {
            // MBR: the disk identifier and the partition number, "1234abcd-01".
            TableKind::Mbr => {
                let id = table.disk_id.trim_start_matches("0x");
                eq(&format!("{id}-{:02x}", p.number), u)
            }
            _ => p.uuid.as_deref().is_some_and(|x| eq(x, u)),
        },
        Spec::PartLabel(l) => p.name.as_deref() == Some(l.as_str()),
        Spec::Number(n) => p.number == *n,
    }
}

/// Whether `spec` names filesystem `fs` by its own identity (`UUID=`, `LABEL=`; the other
/// forms name partitions).
pub fn matches_fs(spec: &Spec, fs: Option<&FsInfo>) -> bool {
    match spec {
        Spec::Uuid(u) => fs
            .and_then(|f| f.uuid.as_deref())
            .is_some_and(|x| x.eq_ignore_ascii_case(u)),
        Spec::Label(l) => fs.and_then(|f| f.label.as_deref()) == Some(l.as_str()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_boot_line_and_parses_device_names() {
        let fstab = "# /boot was on /dev/sda1\nUUID=abc / ext4 defaults 0 1\n\
                     UUID=1234-ABCD  /boot/  ext4 defaults 0 2\n/dev/sda3 /boot/efi vfat x 0 0\n";
        assert_eq!(fstab_boot(fstab).as_deref(), Some("UUID=1234-ABCD"));
        assert_eq!(fstab_boot("UUID=a / ext4 d 0 1\n"), None);
        assert_eq!(parse_spec("UUID=\"x-y\""), Some(Spec::Uuid("x-y".into())));
        assert_eq!(parse_spec("LABEL=boot"), Some(Spec::Label("boot".into())));
        assert_eq!(
            parse_spec("/dev/disk/by-partuuid/1234abcd-01"),
            Some(Spec::PartUuid("1234abcd-01".into()))
        );
        assert_eq!(parse_spec("/dev/sda1"), Some(Spec::Number(1)));
        assert_eq!(parse_spec("/dev/vdb12"), Some(Spec::Number(12)));
        assert_eq!(parse_spec("/dev/nvme0n1p2"), Some(Spec::Number(2)));
        assert_eq!(parse_spec("/dev/mmcblk0p3"), Some(Spec::Number(3)));
        assert_eq!(parse_spec("/dev/mapper/vg-boot"), None);
        assert_eq!(parse_spec("/dev/sda"), None);
        assert_eq!(parse_spec("server:/boot"), None);
    }
}
