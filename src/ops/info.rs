//! `subroot info`: the container, partition table, partitions and filesystems of an image,
//! as a table for people or as JSON (schema in docs/json.md; stable).

use crate::cli::InfoArgs;
use crate::json::Named;
use crate::size::human;
use anyhow::{Context, Result};
use serde::Serialize;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, Slice};
use subroot_formats::image::Image;
use subroot_formats::sniff::{sniff, FsInfo};
use subroot_formats::table::{read_layout, DiskLayout, PartKind, PartitionTable};

/// The whole `info --json` document.
#[derive(Debug, Serialize)]
pub struct ImageInfo {
    /// The image as given (`path`, or `path_bytes` when not UTF-8).
    #[serde(flatten)]
    pub path: Named,
    pub format: &'static str,
    pub virtual_size: u64,
    /// Bytes the image file occupies on the host (like `qemu-img info`'s actual-size).
    pub actual_size: u64,
    pub qcow2: Option<Qcow2Info>,
    /// The backing files, nearest first (empty without a backing file).
    pub backing_chain: Vec<ChainLink>,
    pub table: Option<TableInfo>,
    pub partitions: Vec<PartInfo>,
    /// A filesystem on the whole disk (no partition table).
    pub filesystem: Option<FsJson>,
    /// Sector 0 holds boot code and the MBR signature 0x55AA but no partition, and a
    /// filesystem starts at sector 0 (a boot loader installed into the filesystem): read as
    /// the filesystem, not as an empty table.
    pub boot_code: bool,
    /// LVM2 volume groups whose physical volumes are on the partitions (or the whole disk).
    pub volume_groups: Vec<VgInfo>,
    /// Why LVM2 metadata found on the disk could not be read (the rest of the report
    /// stands).
    pub lvm_error: Option<String>,
}

/// An LVM2 volume group (its newest valid metadata).
#[derive(Debug, Serialize)]
pub struct VgInfo {
    pub name: String,
    pub uuid: String,
    pub seqno: i64,
    pub extent_size: u64,
    pub physical_volumes: Vec<PvInfo>,
    pub logical_volumes: Vec<LvJson>,
}

#[derive(Debug, Serialize)]
pub struct PvInfo {
    pub name: String,
    pub uuid: String,
    /// The partition holding it ("partition 2", "whole disk"), or `None` when it is not in
    /// this image.
    pub found_on: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LvJson {
    /// `VG/LV`, as `-p` takes it.
    pub name: String,
    pub size: u64,
    /// "striped" (one stripe: linear), or the segment type subroot does not read.
    pub layout: String,
    pub stripes: usize,
    pub filesystem: Option<FsJson>,
}

#[derive(Debug, Serialize)]
pub struct Qcow2Info {
    pub version: u32,
    /// `"1.1"` for version 3, `"0.10"` for version 2 (as `qemu-img info` says).
    pub compat: &'static str,
    pub cluster_size: u64,
    pub compression_type: &'static str,
    pub extended_l2: bool,
    pub refcount_bits: u32,
    pub lazy_refcounts: bool,
    pub snapshots: u32,
    pub backing_file: Option<String>,
    pub backing_format: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ChainLink {
    #[serde(flatten)]
    pub path: Named,
    pub format: &'static str,
    pub virtual_size: u64,
}

#[derive(Debug, Serialize)]
pub struct TableInfo {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub disk_id: String,
    pub sector_size: u64,
    pub first_lba: Option<u64>,
    pub last_lba: Option<u64>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PartInfo {
    pub number: u32,
    pub start: u64,
    pub size: u64,
    pub kind: &'static str,
    #[serde(rename = "type")]
    pub type_code: String,
    pub type_name: String,
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub bootable: bool,
    pub attributes: u64,
    pub filesystem: Option<FsJson>,
}

#[derive(Debug, Serialize)]
pub struct FsJson {
    #[serde(rename = "type")]
    pub kind: String,
    pub fat_bits: Option<u8>,
    pub label: Option<String>,
    pub uuid: Option<String>,
    pub version: Option<String>,
    /// btrfs: its subvolumes and snapshots, the top level (id 5) first (absent on other
    /// filesystems).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subvolumes: Option<Vec<SubvolJson>>,
    /// btrfs: why its subvolumes could not be listed (absent when they were).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subvolumes_error: Option<String>,
}

/// A btrfs subvolume or snapshot.
#[derive(Debug, Serialize)]
pub struct SubvolJson {
    /// What `--subvol` takes (5 is the top level).
    pub id: u64,
    /// From the top level, with a leading `/` (`path_bytes` when not UTF-8).
    #[serde(flatten)]
    pub path: Named,
    /// The subvolume holding it (0 for the top level).
    pub parent: u64,
    /// The default subvolume (what the kernel mounts, and subroot reads, unless told).
    pub default: bool,
    pub readonly: bool,
}

impl From<FsInfo> for FsJson {
    fn from(f: FsInfo) -> Self {
        FsJson {
            kind: f.kind,
            fat_bits: f.fat_bits,
            label: f.label,
            uuid: f.uuid,
            version: f.version,
            subvolumes: None,
            subvolumes_error: None,
        }
    }
}

impl FsJson {
    /// What sniffing found on `dev`, with a btrfs's subvolumes.
    fn read(f: FsInfo, dev: &dyn BlockDevice) -> Self {
        let btrfs = f.kind == "btrfs";
        let mut j = FsJson::from(f);
        if btrfs {
            match subvolumes(dev) {
                Ok(v) => j.subvolumes = Some(v),
                Err(e) => j.subvolumes_error = Some(e.to_string()),
            }
        }
        j
    }
}

/// The subvolumes of the btrfs on `dev`.
fn subvolumes(dev: &dyn BlockDevice) -> subroot_formats::Result<Vec<SubvolJson>> {
    let fs = subroot_formats::btrfs::BtrfsFs::open(dev)?;
    let default = fs.default_subvolume()?;
    Ok(fs
        .subvolumes()?
        .into_iter()
        .map(|v| SubvolJson {
            id: v.id,
            path: Named::new("path", [&b"/"[..], &v.path].concat()),
            parent: v.parent,
            default: v.id == default,
            readonly: v.readonly,
        })
        .collect())
}

pub fn run(args: &InfoArgs) -> Result<()> {
    let img = crate::open::open_image(&args.image, args.format)?;
    let info = gather(img).with_context(|| format!("cannot read {}", args.image.display()))?;
    let mut o = crate::stdout::out();
    if args.json {
        writeln!(o, "{}", serde_json::to_string_pretty(&info)?)?;
    } else {
        print_human(&mut o, &info)?;
    }
    o.flush()?;
    Ok(())
}

/// Collect everything `info` reports about an open image.
pub fn gather(img: Image) -> Result<ImageInfo> {
    let path = Named::new("path", img.path().as_os_str().as_bytes());
    let actual_size = img.file_allocated_bytes()?;
    let qcow2 = match &img {
        Image::Qcow2(q) => {
            let h = q.header();
            Some(Qcow2Info {
                version: h.version,
                compat: if h.version >= 3 { "1.1" } else { "0.10" },
                cluster_size: h.cluster_size(),
                compression_type: h.compression_type.name(),
                extended_l2: h.extended_l2,
                refcount_bits: 1 << h.refcount_order,
                lazy_refcounts: h.lazy_refcounts(),
                snapshots: h.nb_snapshots,
                backing_file: h.backing_file.clone(),
                backing_format: h.backing_format.clone(),
            })
        }
        Image::Raw(_) | Image::Vhd(_) | Image::Vhdx(_) | Image::Vmdk(_) | Image::Vdi(_) => None,
    };
    let backing_chain = img
        .chain()
        .into_iter()
        .skip(1)
        .map(|b| ChainLink {
            path: Named::new("path", b.path().as_os_str().as_bytes()),
            format: b.format().name(),
            virtual_size: b.len(),
        })
        .collect();
    let format = img.format().name();
    let virtual_size = img.len();
    let dev: Arc<dyn BlockDevice> = Arc::new(img);
    let (table, boot_code) = match read_layout(&*dev)? {
        DiskLayout::Table(t) => (Some(t), false),
        DiskLayout::Whole { boot_code } => (None, boot_code),
    };
    let mut partitions = Vec::new();
    let mut filesystem = None;
    match &table {
        Some(t) => {
            for p in &t.partitions {
                let fs = if p.kind == PartKind::Extended {
                    None
                } else {
                    let slice = Slice::new(dev.clone(), p.start, p.size)
                        .with_context(|| format!("partition {}", p.number))?;
                    sniff(&slice)
                        .with_context(|| format!("partition {}", p.number))?
                        .map(|f| FsJson::read(f, &slice))
                };
                partitions.push(PartInfo {
                    number: p.number,
                    start: p.start,
                    size: p.size,
                    kind: match p.kind {
                        PartKind::Primary => "primary",
                        PartKind::Extended => "extended",
                        PartKind::Logical => "logical",
                    },
                    type_code: p.type_code.clone(),
                    type_name: p.type_name.clone(),
                    name: p.name.clone(),
                    uuid: p.uuid.clone(),
                    bootable: p.bootable,
                    attributes: p.attributes,
                    filesystem: fs,
                });
            }
        }
        None => filesystem = sniff(&*dev)?.map(|f| FsJson::read(f, &*dev)),
    }
    let pv_present = partitions
        .iter()
        .filter_map(|p| p.filesystem.as_ref())
        .chain(filesystem.as_ref())
        .any(|f| f.kind == "LVM2_member");
    let (volume_groups, lvm_error) = if pv_present {
        match volume_groups(&dev, table.as_ref()) {
            Ok(v) => (v, None),
            Err(e) => (Vec::new(), Some(format!("{e:#}"))),
        }
    } else {
        (Vec::new(), None)
    };
    Ok(ImageInfo {
        path,
        format,
        virtual_size,
        actual_size,
        qcow2,
        backing_chain,
        table: table.map(table_info),
        partitions,
        filesystem,
        boot_code,
        volume_groups,
        lvm_error,
    })
}

/// The LVM2 groups of `dev`, each volume with what it holds.
fn volume_groups(
    dev: &Arc<dyn BlockDevice>,
    table: Option<&PartitionTable>,
) -> Result<Vec<VgInfo>> {
    let mut out = Vec::new();
    for g in crate::open::volumes::groups(dev, table, "the disk")? {
        let mut lvs = Vec::new();
        for lv in &g.lvs {
            let (layout, stripes) = match &lv.layout {
                subroot_formats::lvm::LvLayout::Striped { max_stripes } => {
                    ("striped".to_string(), *max_stripes)
                }
                subroot_formats::lvm::LvLayout::Other(k) => (k.clone(), 0),
            };
            let filesystem = match g.open(&lv.name) {
                Ok(v) => sniff(&v)?.map(|f| FsJson::read(f, &v)),
                Err(_) => None,
            };
            lvs.push(LvJson {
                name: format!("{}/{}", g.name, lv.name),
                size: lv.size,
                layout,
                stripes,
                filesystem,
            });
        }
        out.push(VgInfo {
            name: g.name.clone(),
            uuid: g.id.clone(),
            seqno: g.seqno,
            extent_size: g.extent_size,
            physical_volumes: g
                .pvs
                .iter()
                .map(|p| PvInfo {
                    name: p.name.clone(),
                    uuid: p.id.clone(),
                    found_on: p.device.as_ref().map(|(n, _)| n.clone()),
                })
                .collect(),
            logical_volumes: lvs,
        });
    }
    Ok(out)
}

fn table_info(t: PartitionTable) -> TableInfo {
    TableInfo {
        kind: t.kind.name(),
        disk_id: t.disk_id,
        sector_size: t.sector_size,
        first_lba: t.first_lba,
        last_lba: t.last_lba,
        warnings: t.warnings,
    }
}

fn fs_summary(fs: &Option<FsJson>) -> String {
    let Some(fs) = fs else { return "-".into() };
    let mut s = fs.kind.clone();
    if let Some(bits) = fs.fat_bits {
        s.push_str(&format!(" (FAT{bits})"));
    }
    if let Some(l) = fs.label.as_deref().filter(|l| !l.is_empty()) {
        s.push_str(&format!(" label={l}"));
    }
    if let Some(u) = &fs.uuid {
        s.push_str(&format!(" uuid={u}"));
    }
    s
}

fn print_human(o: &mut impl Write, i: &ImageInfo) -> std::io::Result<()> {
    writeln!(o, "image:         {}", i.path)?;
    match &i.qcow2 {
        Some(q) => {
            let mut extra = format!("v{}, {} clusters", q.version, human(q.cluster_size));
            if q.compression_type != "zlib" || q.version >= 3 {
                extra.push_str(&format!(", {} compression", q.compression_type));
            }
            if q.extended_l2 {
                extra.push_str(", extended L2");
            }
            writeln!(o, "format:        qcow2 ({extra})")?;
        }
        None => writeln!(o, "format:        {}", i.format)?,
    }
    writeln!(
        o,
        "virtual size:  {} ({} bytes)",
        human(i.virtual_size),
        i.virtual_size
    )?;
    writeln!(o, "disk size:     {}", human(i.actual_size))?;
    for b in &i.backing_chain {
        writeln!(
            o,
            "backing file:  {} ({}, {})",
            b.path,
            b.format,
            human(b.virtual_size)
        )?;
    }
    match &i.table {
        Some(t) => {
            writeln!(o, "table:         {} (disk id {})", t.kind, t.disk_id)?;
            for w in &t.warnings {
                writeln!(o, "warning:       {w}")?;
            }
            let rows: Vec<[String; 6]> = i
                .partitions
                .iter()
                .map(|p| {
                    [
                        p.number.to_string(),
                        p.start.to_string(),
                        human(p.size),
                        format!("{} ({})", p.type_name, p.type_code),
                        p.name.clone().unwrap_or_default(),
                        fs_summary(&p.filesystem),
                    ]
                })
                .collect();
            print_table(
                o,
                &["#", "START", "SIZE", "TYPE", "NAME", "FILESYSTEM"],
                &rows,
            )?;
        }
        None => {
            if i.boot_code {
                writeln!(
                    o,
                    "table:         none (sector 0 holds boot code, not a partition table)"
                )?;
            } else {
                writeln!(o, "table:         none")?;
            }
            writeln!(o, "filesystem:    {}", fs_summary(&i.filesystem))?;
        }
    }
    let on_parts = i
        .partitions
        .iter()
        .map(|p| (format!("partition {}: ", p.number), &p.filesystem));
    for (place, fs) in std::iter::once((String::new(), &i.filesystem)).chain(on_parts) {
        print_subvolumes(o, &place, fs)?;
    }
    if let Some(e) = &i.lvm_error {
        writeln!(o, "warning:       LVM2: {e}")?;
    }
    for g in &i.volume_groups {
        let missing = g
            .physical_volumes
            .iter()
            .filter(|p| p.found_on.is_none())
            .count();
        writeln!(
            o,
            "volume group:  {} ({} PV{}{}, extent {})",
            g.name,
            g.physical_volumes.len(),
            if g.physical_volumes.len() == 1 {
                ""
            } else {
                "s"
            },
            if missing > 0 {
                format!(", {missing} not in this image")
            } else {
                String::new()
            },
            human(g.extent_size)
        )?;
        let rows: Vec<[String; 4]> = g
            .logical_volumes
            .iter()
            .map(|l| {
                [
                    l.name.clone(),
                    human(l.size),
                    match (l.layout.as_str(), l.stripes) {
                        ("striped", 1) => "linear".to_string(),
                        ("striped", n) => format!("striped ({n})"),
                        (k, _) => format!("{k} (not read)"),
                    },
                    fs_summary(&l.filesystem),
                ]
            })
            .collect();
        print_table(o, &["VOLUME", "SIZE", "LAYOUT", "FILESYSTEM"], &rows)?;
    }
    Ok(())
}

/// One line per subvolume of a btrfs (`place`: "partition N: " or empty).
fn print_subvolumes(o: &mut impl Write, place: &str, fs: &Option<FsJson>) -> std::io::Result<()> {
    let Some(fs) = fs else { return Ok(()) };
    if let Some(e) = &fs.subvolumes_error {
        writeln!(o, "warning:       {place}btrfs subvolumes not listed: {e}")?;
    }
    for v in fs.subvolumes.iter().flatten() {
        let mut marks = Vec::new();
        if v.default {
            marks.push("default");
        }
        if v.readonly {
            marks.push("read-only");
        }
        let marks = if marks.is_empty() {
            String::new()
        } else {
            format!(" ({})", marks.join(", "))
        };
        writeln!(o, "subvolume:     {place}{} {}{marks}", v.id, v.path)?;
    }
    Ok(())
}

/// Print rows under a header with columns padded to their widest cell.
fn print_table<const N: usize>(
    o: &mut impl Write,
    header: &[&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(o, "{}", s.join("  ").trim_end())
    };
    line(header.to_vec())?;
    for r in rows {
        line(r.iter().map(String::as_str).collect())?;
    }
    Ok(())
}
