//! Partition type codes: the short aliases accepted on the command line, and the
//! human-readable names util-linux (`sfdisk -l`) prints for MBR type bytes and GPT type GUIDs.

use crate::{Error, Result};
use uuid::Uuid;

/// GPT type GUID of the EFI System Partition.
pub const GPT_ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// GPT type GUID of a generic Linux filesystem.
pub const GPT_LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

/// LVM physical volumes: the MBR type byte and the GPT type GUID.
const MBR_LVM: u8 = 0x8e;
const GPT_LVM: &str = "E6D6D379-F507-44C2-A23C-238F2A3DF928";

/// Aliases: (alias, MBR type byte or `None` when it has no MBR equivalent, GPT type GUID).
const ALIASES: &[(&str, Option<u8>, &str)] = &[
    ("linux", Some(0x83), GPT_LINUX),
    ("esp", Some(0xef), GPT_ESP),
    ("uefi", Some(0xef), GPT_ESP),
    ("swap", Some(0x82), "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"),
    ("bios", None, "21686148-6449-6E6F-744E-656564454649"),
    ("lvm", Some(MBR_LVM), GPT_LVM),
    ("raid", Some(0xfd), "A19D880F-05FC-4D3B-A006-743F0F84911E"),
    ("home", Some(0x83), "933AC7E1-2EB4-4F13-B844-0E14E2AEF915"),
    ("fat32", Some(0x0c), "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"),
];

/// True when a partition's type code (`0x82`, or the GPT type GUID, as `subroot info`
/// prints them) is the type `alias` names (`"swap"`, `"bios"`, `"esp"`, `"lvm"`, …).
pub fn is_type(type_code: &str, alias: &str) -> bool {
    let byte = type_code
        .strip_prefix("0x")
        .and_then(|h| u8::from_str_radix(h, 16).ok());
    ALIASES
        .iter()
        .filter(|(a, _, _)| *a == alias)
        .any(|(_, mbr, gpt)| type_code.eq_ignore_ascii_case(gpt) || (mbr.is_some() && byte == *mbr))
}

/// True when a partition's type code marks it as an LVM physical volume.
pub fn is_lvm(type_code: &str) -> bool {
    is_type(type_code, "lvm")
}

/// The alias names, for error messages.
pub fn alias_names() -> Vec<&'static str> {
    ALIASES.iter().map(|a| a.0).collect()
}

/// Resolve a type alias, an MBR hex code ("0x83", "83") or a GPT type GUID to an MBR type byte.
pub fn mbr_type(alias: &str) -> Result<u8> {
    let a = alias.trim().to_ascii_lowercase();
    if let Some((_, code, _)) = ALIASES.iter().find(|x| x.0 == a) {
        return code.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "partition type `{alias}` exists only for GPT tables, not MBR"
            ))
        });
    }
    let hex = a.strip_prefix("0x").unwrap_or(&a);
    if !hex.is_empty() && hex.len() <= 2 {
        if let Ok(v) = u8::from_str_radix(hex, 16) {
            if v == 0 {
                return Err(Error::InvalidArgument(
                    "MBR partition type 0x00 means an empty slot".into(),
                ));
            }
            return Ok(v);
        }
    }
    Err(Error::InvalidArgument(format!(
        "unknown MBR partition type `{alias}`: expected one of {} or a hex byte like 0x83",
        alias_names().join(", ")
    )))
}

/// Resolve a type alias or a GPT type GUID to a GPT type GUID (MBR codes are mapped where a
/// well-known equivalent exists).
pub fn gpt_type(alias: &str) -> Result<Uuid> {
    let a = alias.trim().to_ascii_lowercase();
    if let Some((_, _, guid)) = ALIASES.iter().find(|x| x.0 == a) {
        return Uuid::parse_str(guid).map_err(|e| Error::InvalidArgument(e.to_string()));
    }
    if let Ok(u) = Uuid::parse_str(&a) {
        if u.is_nil() {
            return Err(Error::InvalidArgument(
                "the nil GUID marks an unused GPT entry".into(),
            ));
        }
        return Ok(u);
    }
    // An MBR code that maps onto an alias ("83" -> linux) is accepted for convenience.
    let hex = a.strip_prefix("0x").unwrap_or(&a);
    if let Ok(v) = u8::from_str_radix(hex, 16) {
        if let Some((_, _, guid)) = ALIASES.iter().find(|x| x.1 == Some(v)) {
            return Uuid::parse_str(guid).map_err(|e| Error::InvalidArgument(e.to_string()));
        }
    }
    Err(Error::InvalidArgument(format!(
        "unknown GPT partition type `{alias}`: expected one of {} or a type GUID",
        alias_names().join(", ")
    )))
}

/// True when `alias` is a syntactically valid type for at least one table kind.
pub fn is_valid_alias(alias: &str) -> bool {
    mbr_type(alias).is_ok() || gpt_type(alias).is_ok()
}

/// `sfdisk -l` name of an MBR type byte (util-linux `libfdisk/src/pt-mbr-partnames.h`).
pub fn mbr_type_name(code: u8) -> &'static str {
    match code {
        0x00 => "Empty",
        0x01 => "FAT12",
        0x02 => "XENIX root",
        0x03 => "XENIX usr",
        0x04 => "FAT16 <32M",
        0x05 => "Extended",
        0x06 => "FAT16",
        0x07 => "HPFS/NTFS/exFAT",
        0x08 => "AIX",
        0x09 => "AIX bootable",
        0x0a => "OS/2 Boot Manager",
        0x0b => "W95 FAT32",
        0x0c => "W95 FAT32 (LBA)",
        0x0e => "W95 FAT16 (LBA)",
        0x0f => "W95 Ext'd (LBA)",
        0x10 => "OPUS",
        0x11 => "Hidden FAT12",
        0x12 => "Compaq diagnostics",
        0x14 => "Hidden FAT16 <32M",
        0x16 => "Hidden FAT16",
        0x17 => "Hidden HPFS/NTFS",
        0x1b => "Hidden W95 FAT32",
        0x1c => "Hidden W95 FAT32 (LBA)",
        0x1e => "Hidden W95 FAT16 (LBA)",
        0x27 => "Hidden NTFS WinRE",
        0x42 => "SFS",
        0x63 => "GNU HURD or SysV",
        0x80 => "Old Minix",
        0x81 => "Minix / old Linux",
        0x82 => "Linux swap / Solaris",
        0x83 => "Linux",
        0x85 => "Linux extended",
        0x86 | 0x87 => "NTFS volume set",
        0x88 => "Linux plaintext",
        MBR_LVM => "Linux LVM",
        0xa5 => "FreeBSD",
        0xa6 => "OpenBSD",
        0xa8 => "Darwin UFS",
        0xa9 => "NetBSD",
        0xab => "Darwin boot",
        0xaf => "HFS / HFS+",
        0xbe => "Solaris boot",
        0xbf => "Solaris",
        0xda => "Non-FS data",
        0xde => "Dell Utility",
        0xea => "Linux extended boot",
        0xeb => "BeOS fs",
        0xee => "GPT",
        0xef => "EFI (FAT-12/16/32)",
        0xfb => "VMware VMFS",
        0xfc => "VMware VMKCORE",
        0xfd => "Linux raid autodetect",
        _ => "unknown",
    }
}

/// `sfdisk -l` name of a GPT type GUID (util-linux `libfdisk/src/pt-gpt-partnames.h`);
/// `guid` is uppercase.
pub fn gpt_type_name(guid: &str) -> &'static str {
    match guid {
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" => "EFI System",
        "024DEE41-33E7-11D3-9D69-0008C781F39F" => "MBR partition scheme",
        "21686148-6449-6E6F-744E-656564454649" => "BIOS boot",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4" => "Linux filesystem",
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" => "Linux swap",
        GPT_LVM => "Linux LVM",
        "A19D880F-05FC-4D3B-A006-743F0F84911E" => "Linux RAID",
        "933AC7E1-2EB4-4F13-B844-0E14E2AEF915" => "Linux home",
        "3B8F8425-20E0-4F3B-907F-1A25A76F98E8" => "Linux server data",
        "44479540-F297-41B2-9AF7-D131D5F0458A" => "Linux root (x86)",
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" => "Linux root (x86-64)",
        "69DAD710-2CE4-4E3C-B16C-21A1D49ABED3" => "Linux root (ARM)",
        "B921B045-1DF0-41C3-AF44-4C6F280D3FAE" => "Linux root (ARM-64)",
        "BC13C2FF-59E6-4262-A352-B275FD6F7172" => "Linux extended boot",
        "8DA63339-0007-60C0-C436-083AC8230908" => "Linux reserved",
        "CA7D7CCB-63ED-4C53-861C-1742536059CC" => "Linux LUKS",
        "7FFEC5C9-2D00-49B7-8941-3EA10A5586B7" => "Linux dm-crypt",
        "4D21B016-B534-45C2-A9FB-5C16E091FD2D" => "Linux variable data",
        "7EC6F557-3BC5-4ACA-B293-16EF5DF639D1" => "Linux temporary data",
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" => "Microsoft basic data",
        "E3C9E316-0B5C-4DB8-817D-F92DF00215AE" => "Microsoft reserved",
        "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC" => "Windows recovery environment",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_codes_by_alias() {
        assert!(is_type("0x82", "swap"));
        assert!(is_type("0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", "swap"));
        assert!(!is_type("0x83", "swap"));
        assert!(is_type("21686148-6449-6E6F-744E-656564454649", "bios"));
        assert!(!is_type("0x00", "bios"), "bios has no MBR type");
        assert!(is_lvm("0x8e") && is_lvm("E6D6D379-F507-44C2-A23C-238F2A3DF928"));
        assert!(!is_lvm("0x83"));
    }

    #[test]
    fn aliases_resolve() {
        assert_eq!(mbr_type("linux").unwrap(), 0x83);
        assert_eq!(mbr_type("0x0C").unwrap(), 0x0c);
        assert_eq!(mbr_type("82").unwrap(), 0x82);
        assert!(mbr_type("bios").is_err());
        assert!(mbr_type("0x100").is_err());
        assert!(mbr_type("0").is_err());
        assert_eq!(gpt_type("ESP").unwrap().to_string().to_uppercase(), GPT_ESP);
        assert_eq!(
            gpt_type("0fc63daf-8483-4772-8e79-3d69d8477de4").unwrap(),
            gpt_type("linux").unwrap()
        );
        assert!(gpt_type("nope").is_err());
        assert!(is_valid_alias("bios") && !is_valid_alias("floppy"));
    }
}
