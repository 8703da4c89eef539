//! `/etc/fstab` read the way `mount` reads it (`getmntent`): whitespace-separated fields,
//! `#` comment lines, and the octal escapes `\040` (space), `\011` (tab), `\012` (newline)
//! and `\134` (backslash) decoded in every field. The one parser relayout, inspect and
//! customize share, and the LVM2 volume names a device field can hold.

/// One mount line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabEntry {
    /// `UUID=...`, `LABEL=...`, `/dev/...` (decoded).
    pub device: String,
    /// Where it is mounted, decoded (`/mnt/my disk` for `/mnt/my\040disk`).
    pub mountpoint: String,
    pub fs_type: String,
    pub options: String,
}

/// The mount lines of `text` (lines with fewer than two fields are skipped, as `mount`
/// does).
pub fn parse(text: &str) -> Vec<FstabEntry> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            if line.starts_with('#') {
                return None;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 2 {
                return None;
            }
            let field = |i: usize| f.get(i).map_or(String::new(), |s| unescape(s));
            Some(FstabEntry {
                device: field(0),
                mountpoint: field(1),
                fs_type: field(2),
                options: field(3),
            })
        })
        .collect()
}

/// Decode `\NNN` octal escapes (three octal digits); anything else is kept as written.
pub fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The LVM2 logical volume (`VG/LV`) an fstab device field names by its device-mapper
/// path: `/dev/mapper/VG-LV` (a `-` inside either name doubled, as device-mapper writes
/// it) or `/dev/VG/LV`. `None` for any other form.
pub fn lvm_volume(device: &str) -> Option<String> {
    if let Some(dm) = device.strip_prefix("/dev/mapper/") {
        // The separator is the one `-` that is not part of a `--`.
        let b = dm.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'-' {
                if b.get(i + 1) == Some(&b'-') {
                    i += 2;
                    continue;
                }
                let (vg, lv) = (&dm[..i], &dm[i + 1..]);
                if vg.is_empty() || lv.is_empty() {
                    return None;
                }
                return Some(format!(
                    "{}/{}",
                    vg.replace("--", "-"),
                    lv.replace("--", "-")
                ));
            }
            i += 1;
        }
        return None;
    }
    let rest = device.strip_prefix("/dev/")?;
    let (vg, lv) = rest.split_once('/')?;
    // /dev/disk/by-uuid/..., /dev/md/..., /dev/mapper handled above: not volume groups.
    if vg.is_empty() || lv.is_empty() || lv.contains('/') || ["disk", "md", "mapper"].contains(&vg)
    {
        return None;
    }
    Some(format!("{vg}/{lv}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_fields_as_mount_does() {
        let t = "# comment\n\nUUID=ab / ext4 errors=remount-ro 0 1\n  LABEL=my\\040data /mnt/my\\040data\\134x ext4 defaults\n/dev/sdb1\n#UUID=x /boot ext4\n";
        let e = parse(t);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].mountpoint, "/");
        assert_eq!(e[0].options, "errors=remount-ro");
        assert_eq!(e[1].device, "LABEL=my data");
        assert_eq!(e[1].mountpoint, "/mnt/my data\\x");
        assert_eq!(unescape("a\\011b\\012c"), "a\tb\nc");
        // Not an escape: kept.
        assert_eq!(unescape("a\\09b\\"), "a\\09b\\");
        assert_eq!(unescape("\\777"), "\\777");
    }

    #[test]
    fn names_lvm_volumes_as_device_mapper_does() {
        assert_eq!(
            lvm_volume("/dev/mapper/rl-root").as_deref(),
            Some("rl/root")
        );
        assert_eq!(
            lvm_volume("/dev/mapper/my--vg-lv--home").as_deref(),
            Some("my-vg/lv-home")
        );
        assert_eq!(lvm_volume("/dev/rhel/swap").as_deref(), Some("rhel/swap"));
        assert_eq!(lvm_volume("/dev/mapper/luks"), None);
        assert_eq!(lvm_volume("/dev/mapper/-x"), None);
        assert_eq!(lvm_volume("/dev/disk/by-uuid/ab"), None);
        assert_eq!(lvm_volume("/dev/sda1"), None);
        assert_eq!(lvm_volume("UUID=ab"), None);
    }
}
