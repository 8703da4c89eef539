//! The `inspect --json` document (every field described in docs/json.md) and its text
//! form for people.

use super::system::{Package, User};
use crate::ops::info::FsJson;
use crate::ops::relayout::bootcfg::BootEntry;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Serialize)]
pub struct Report {
    pub image: String,
    pub format: &'static str,
    pub virtual_size: u64,
    pub table: Option<Table>,
    pub partitions: Vec<Part>,
    /// LVM2 logical volumes of the physical volumes on the partitions.
    pub volumes: Vec<Volume>,
    pub root: Option<Root>,
    pub os: Option<Os>,
    pub hostname: Option<String>,
    pub machine_id: Option<String>,
    pub fstab: Vec<FstabLine>,
    pub kernels: Vec<Kernel>,
    pub boot_loaders: Vec<Loader>,
    pub users: Vec<User>,
    pub packages: Packages,
    pub relayout: Option<Relayout>,
    /// What could not be found or read (missing files, unreadable filesystems).
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Table {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub disk_id: String,
}

#[derive(Debug, Serialize)]
pub struct Part {
    /// `null` for a filesystem on the whole disk.
    pub number: Option<u32>,
    pub start: u64,
    pub size: u64,
    #[serde(rename = "type")]
    pub type_code: String,
    pub type_name: String,
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub filesystem: Option<FsJson>,
    /// "root", "esp", "swap", "bios-boot", "lvm2-pv", or a mount point from fstab
    /// ("/boot", "/home").
    pub roles: Vec<String>,
}

/// An LVM2 logical volume (linear or striped) and what is on it.
#[derive(Debug, Serialize)]
pub struct Volume {
    /// `VG/LV`, as `-p` takes it.
    pub name: String,
    pub size: u64,
    pub filesystem: Option<FsJson>,
    /// As for partitions: "root", "swap", or a mount point from fstab.
    pub roles: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Root {
    /// The partition holding the root filesystem (`null`: a volume, or the whole disk).
    pub partition: Option<u32>,
    /// The LVM2 logical volume holding it (`VG/LV`), else `null`.
    pub volume: Option<String>,
    /// The subroot the system lives in (`"r0"` on a relayouted image), else `null`.
    pub subroot: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Os {
    /// The os-release file read (`/etc/os-release` or `/usr/lib/os-release`).
    pub file: String,
    pub id: Option<String>,
    pub version_id: Option<String>,
    pub name: Option<String>,
    pub pretty_name: Option<String>,
    /// Every field of the file.
    pub fields: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct FstabLine {
    pub device: String,
    pub mountpoint: String,
    #[serde(rename = "type")]
    pub fs_type: String,
    pub options: String,
    /// The partition the device field names (`null`: not on this disk, or not found).
    pub partition: Option<u32>,
    /// The LVM2 logical volume (`VG/LV`) it names (`/dev/mapper/VG-LV`, `/dev/VG/LV`,
    /// or the `UUID=`/`LABEL=` of the filesystem on it), else `null`.
    pub volume: Option<String>,
    /// Which of inspect's filesystems it names.
    #[serde(skip)]
    pub(crate) slot: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct Kernel {
    pub version: String,
    /// Path as the system sees it (`/boot/vmlinuz-…`).
    pub path: String,
    /// Where the file is: a partition, or an LVM2 volume (`VG/LV`).
    pub partition: Option<u32>,
    pub volume: Option<String>,
    pub size: u64,
    pub initrd: Option<Initrd>,
}

#[derive(Debug, Serialize)]
pub struct Initrd {
    pub path: String,
    pub size: u64,
    /// "initramfs-tools", "dracut" or "other"; `null` when it could not be read.
    pub flavour: Option<&'static str>,
    /// The compression of each segment, in order ("none" for a plain cpio).
    pub compression: Vec<&'static str>,
    pub segments: usize,
    pub hook_present: Option<bool>,
    /// Why it could not be read.
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Loader {
    /// "grub-bios", "grub-efi", "systemd-boot", "grub-config" (a grub.cfg without a
    /// GRUB binary found), "bls" (Boot Loader Specification entries).
    pub kind: &'static str,
    /// Where: "mbr", "mbr-gap", "bios-boot partition N", a path.
    pub location: String,
    pub partition: Option<u32>,
    /// The configuration read for the entries.
    pub config: Option<String>,
    pub entries: Vec<BootEntry>,
}

#[derive(Debug, Serialize)]
pub struct Packages {
    /// "dpkg", "rpm", or `null`.
    pub manager: Option<&'static str>,
    /// The database file: dpkg's status file, or the rpm database.
    pub database: Option<String>,
    /// "dpkg-status", "sqlite", "bdb" or "ndb".
    pub format: Option<&'static str>,
    /// False for rpm databases (not read).
    pub read: bool,
    pub count: Option<usize>,
    pub installed: Vec<Package>,
}

#[derive(Debug, Serialize)]
pub struct Relayout {
    pub roots: Vec<SubRoot>,
    /// The `subroot=` of the first kernel command line that has one.
    pub default: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SubRoot {
    pub name: String,
    pub pretty_name: Option<String>,
}

impl Root {
    /// "partition 2", "volume vg/root" or "the whole disk".
    pub fn place(&self) -> String {
        super::slots::place(self.partition, self.volume.as_deref())
    }
}

fn or_dash(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("-")
}

impl Report {
    /// The text form: one aligned line per fact, tables for the lists.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let mut kv = |k: &str, v: &str| {
            let _ = writeln!(o, "{:<13}{v}", format!("{k}:"));
        };
        kv("image", &format!("{} ({})", self.image, self.format));
        match &self.table {
            Some(t) => kv("table", &format!("{} (disk id {})", t.kind, t.disk_id)),
            None => kv("table", "none (filesystem on the whole disk)"),
        }
        match &self.os {
            Some(os) => kv(
                "os",
                &format!(
                    "{} (id={} version_id={})",
                    or_dash(&os.pretty_name),
                    or_dash(&os.id),
                    or_dash(&os.version_id)
                ),
            ),
            None => kv("os", "-"),
        }
        kv("hostname", or_dash(&self.hostname));
        kv("machine-id", or_dash(&self.machine_id));
        if let Some(r) = &self.relayout {
            let roots: Vec<String> = r
                .roots
                .iter()
                .map(|s| format!("{} ({})", s.name, or_dash(&s.pretty_name)))
                .collect();
            kv(
                "relayouted",
                &format!(
                    "roots {}; default {}",
                    roots.join(", "),
                    or_dash(&r.default)
                ),
            );
        }
        let pk = &self.packages;
        kv(
            "packages",
            &match (pk.manager, pk.count) {
                (Some(m), Some(n)) => format!("{m}: {n} installed"),
                (Some(m), None) => format!(
                    "{m}: {} database {} (not read)",
                    pk.format.unwrap_or("?"),
                    or_dash(&pk.database)
                ),
                _ => "-".into(),
            },
        );
        let _ = writeln!(o, "\npartitions:");
        let rows: Vec<Vec<String>> = self
            .partitions
            .iter()
            .map(|p| {
                vec![
                    p.number.map_or("-".into(), |n| n.to_string()),
                    crate::size::human(p.size),
                    p.type_name.clone(),
                    p.roles.join(","),
                    fs_text(p.filesystem.as_ref()),
                ]
            })
            .collect();
        table(&mut o, &["#", "SIZE", "TYPE", "ROLE", "FILESYSTEM"], &rows);
        if !self.volumes.is_empty() {
            let _ = writeln!(o, "\nLVM2 volumes:");
            let rows: Vec<Vec<String>> = self
                .volumes
                .iter()
                .map(|v| {
                    vec![
                        v.name.clone(),
                        crate::size::human(v.size),
                        v.roles.join(","),
                        fs_text(v.filesystem.as_ref()),
                    ]
                })
                .collect();
            table(&mut o, &["VOLUME", "SIZE", "ROLE", "FILESYSTEM"], &rows);
        }
        if !self.fstab.is_empty() {
            let _ = writeln!(o, "\nfstab:");
            let rows: Vec<Vec<String>> = self
                .fstab
                .iter()
                .map(|f| {
                    vec![
                        f.mountpoint.clone(),
                        f.device.clone(),
                        f.fs_type.clone(),
                        match (f.partition, &f.volume) {
                            (None, None) => "-".into(),
                            (p, v) => super::slots::place(p, v.as_deref()),
                        },
                    ]
                })
                .collect();
            table(&mut o, &["MOUNT", "DEVICE", "TYPE", "ON"], &rows);
        }
        if !self.kernels.is_empty() {
            let _ = writeln!(o, "\nkernels:");
            let rows: Vec<Vec<String>> = self
                .kernels
                .iter()
                .map(|k| {
                    let (ir, what) = match &k.initrd {
                        None => ("-".to_string(), String::new()),
                        Some(i) => (
                            i.path.clone(),
                            match (&i.error, i.flavour) {
                                (Some(e), _) => format!("unreadable: {e}"),
                                (None, f) => format!(
                                    "{} {} hook={}",
                                    f.unwrap_or("?"),
                                    i.compression.join("+"),
                                    if i.hook_present == Some(true) {
                                        "yes"
                                    } else {
                                        "no"
                                    }
                                ),
                            },
                        ),
                    };
                    vec![k.version.clone(), ir, what]
                })
                .collect();
            table(&mut o, &["VERSION", "INITRD", "INITRD CONTENT"], &rows);
        }
        if !self.boot_loaders.is_empty() {
            let _ = writeln!(o, "\nboot loaders:");
            for l in &self.boot_loaders {
                let _ = writeln!(
                    o,
                    "  {} at {}{}",
                    l.kind,
                    l.location,
                    l.config
                        .as_ref()
                        .map_or(String::new(), |c| format!(", config {c}"))
                );
                for e in &l.entries {
                    let _ = writeln!(
                        o,
                        "    {}: {} {}",
                        e.title.as_deref().unwrap_or("(untitled)"),
                        e.kernel,
                        e.cmdline
                    );
                }
            }
        }
        if !self.users.is_empty() {
            let _ = writeln!(o, "\nusers:");
            let rows: Vec<Vec<String>> = self
                .users
                .iter()
                .map(|u| {
                    vec![
                        u.name.clone(),
                        u.uid.to_string(),
                        u.gid.to_string(),
                        u.home.clone(),
                        u.shell.clone(),
                    ]
                })
                .collect();
            table(&mut o, &["NAME", "UID", "GID", "HOME", "SHELL"], &rows);
        }
        if !self.notes.is_empty() {
            let _ = writeln!(o, "\nnotes:");
            for n in &self.notes {
                let _ = writeln!(o, "  {n}");
            }
        }
        o
    }
}

/// "ext4 uuid=... label=...", or "-".
fn fs_text(f: Option<&FsJson>) -> String {
    f.map_or("-".to_string(), |f| {
        let mut s = f.kind.clone();
        if let Some(u) = &f.uuid {
            let _ = write!(s, " uuid={u}");
        }
        if let Some(l) = f.label.as_deref().filter(|l| !l.is_empty()) {
            let _ = write!(s, " label={l}");
        }
        s
    })
}

/// An indented table with columns as wide as their widest cell.
fn table(o: &mut String, head: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut line = |cells: Vec<&str>| {
        let mut s = String::from(" ");
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                let _ = write!(s, " {c}");
            } else {
                let _ = write!(s, " {c:<width$}", width = w[i]);
            }
        }
        let _ = writeln!(o, "{}", s.trim_end());
    };
    line(head.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}
