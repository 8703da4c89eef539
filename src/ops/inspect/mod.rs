//! `subroot inspect`: what an image holds, read in place without a VM — partitions and
//! their roles, the OS, hostname, machine id, kernels and initrds, boot loaders and their
//! kernel command lines, fstab, users, installed packages, and whether the image is
//! relayouted. Read-only; what is missing is said in `notes`, never an error; a corrupt
//! filesystem or table is an error (exit status 3).
//!
//! - [`view`]: paths as the installed system sees them mounted.
//! - [`system`]: the parsers of os-release, passwd, dpkg status.
//! - [`boot`]: kernels, initrds, boot loaders.
//! - [`report`]: the document and its text form.

pub mod boot;
pub mod report;
pub mod system;
pub mod view;

use crate::cli::InspectArgs;
use crate::ops::fstree::FsTree;
use crate::ops::info::FsJson;
use crate::ops::relayout::bootpart::{matches, parse_spec};
use crate::ops::select::{is_esp, linux_root, RootKind};
use anyhow::{Context, Result};
use report::{FstabLine, Os, Packages, Part, Relayout, Report, Root, SubRoot, Table};
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, Slice};
use subroot_formats::ext::{ExtTree, OpenOptions};
use subroot_formats::fat::FatTree;
use subroot_formats::sniff::{sniff, FsInfo};
use subroot_formats::table::types::is_type;
use subroot_formats::table::{read_layout, DiskLayout, PartKind, Partition, PartitionTable};
use subroot_formats::tree::Kind;
use view::{Mounted, View};

type Dev = Arc<dyn BlockDevice>;

pub fn run(args: &InspectArgs) -> Result<()> {
    let img = super::open_image(&args.image, args.format)?;
    let name = args.image.display().to_string();
    let report = gather(img, &name).with_context(|| format!("cannot inspect {name}"))?;
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&report)?)
    } else {
        report.text()
    };
    crate::stdout::print(&text).context("cannot write to stdout")
}

/// One partition (or the whole disk) with what is on it.
struct Slot {
    part: Option<Partition>,
    device: Dev,
    fs: Option<FsInfo>,
    mounted: Option<Mounted>,
    root: Option<RootKind>,
}

/// Inspect an open image.
pub fn gather(img: subroot_formats::image::Image, name: &str) -> Result<Report> {
    let format = img.format().name();
    let virtual_size = img.len();
    let disk: Dev = Arc::new(img);
    let mut notes = Vec::new();
    let table = match read_layout(&*disk).context("cannot read the partition table")? {
        DiskLayout::Table(t) => Some(t),
        DiskLayout::Whole { .. } => None,
    };
    let mut slots = Vec::new();
    match &table {
        Some(t) => {
            for p in t.partitions.iter().filter(|p| p.kind != PartKind::Extended) {
                let device: Dev = Arc::new(
                    Slice::new(disk.clone(), p.start, p.size)
                        .with_context(|| format!("partition {}", p.number))?,
                );
                slots.push(open_slot(Some(p.clone()), device, &mut notes)?);
            }
        }
        None => slots.push(open_slot(None, disk.clone(), &mut notes)?),
    }
    let number = |s: &Slot| s.part.as_ref().map(|p| p.number);
    let roots: Vec<usize> = (0..slots.len())
        .filter(|&i| slots[i].root.is_some())
        .collect();
    if roots.len() > 1 {
        notes.push(format!(
            "several partitions hold a Linux root ({}); the first is reported",
            roots
                .iter()
                .map(|&i| number(&slots[i]).map_or("-".into(), |n| n.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let root_idx = roots.first().copied();
    if root_idx.is_none() {
        notes.push("no filesystem holds a Linux root (an ext2/3/4 filesystem with /etc/os-release or /usr/lib/os-release, or the same under r0/)".into());
    }
    let mut roles: Vec<Vec<String>> = slots
        .iter()
        .map(|s| {
            let mut r = Vec::new();
            if s.part.as_ref().is_some_and(is_esp) {
                r.push("esp".to_string());
            }
            let is = |alias| {
                s.part
                    .as_ref()
                    .is_some_and(|p| is_type(&p.type_code, alias))
            };
            if s.fs.as_ref().is_some_and(|f| f.kind == "swap") || is("swap") {
                r.push("swap".into());
            }
            if is("bios") {
                r.push("bios-boot".into());
            }
            r
        })
        .collect();

    let mut rep = Report {
        image: name.to_string(),
        format,
        virtual_size,
        table: table.as_ref().map(|t| Table {
            kind: t.kind.name(),
            disk_id: t.disk_id.clone(),
        }),
        partitions: Vec::new(),
        root: None,
        os: None,
        hostname: None,
        machine_id: None,
        fstab: Vec::new(),
        kernels: Vec::new(),
        boot_loaders: Vec::new(),
        users: Vec::new(),
        packages: Packages {
            manager: None,
            database: None,
            format: None,
            read: false,
            count: None,
            installed: Vec::new(),
        },
        relayout: None,
        notes: Vec::new(),
    };
    let mut esps: Vec<usize> = (0..slots.len())
        .filter(|&i| roles[i].iter().any(|r| r == "esp"))
        .collect();
    if let Some(ri) = root_idx {
        roles[ri].insert(0, "root".into());
        let root = slots[ri]
            .mounted
            .as_ref()
            .context("internal: the root is not open")?;
        // The physical root's top level: subroots and shared directories.
        let top = root.tree.children(b"").unwrap_or_default();
        let mut subroots = Vec::new();
        for e in top.iter().filter(|e| e.kind == Kind::Dir) {
            let n = e.name();
            let sub_os = ["etc/os-release", "usr/lib/os-release"]
                .iter()
                .find_map(|f| {
                    let mut p = e.path.clone();
                    p.push(b'/');
                    p.extend_from_slice(f.as_bytes());
                    root.tree.entry(&p).ok()
                });
            if sub_os.is_some() && n != b"lost+found" {
                subroots.push(e.path.clone());
            }
        }
        let relayouted = slots[ri].root == Some(RootKind::Relayouted);
        let subroot = if relayouted {
            subroots.first().cloned().unwrap_or_default()
        } else {
            Vec::new()
        };
        let shared: Vec<Vec<u8>> = top
            .iter()
            .map(|e| e.path.clone())
            .filter(|p| !subroots.contains(p))
            .collect();
        // fstab, read from the root alone.
        let bare = View {
            root,
            subroot: subroot.clone(),
            shared: shared.clone(),
            mounts: Vec::new(),
        };
        let fstab_text = bare.text("etc/fstab");
        if fstab_text.is_none() {
            notes.push("no /etc/fstab".into());
        }
        rep.fstab = fstab_lines(
            fstab_text.as_deref().unwrap_or_default(),
            table.as_ref(),
            &slots,
        );
        // Roles and mounts from fstab.
        let mut mounts = Vec::new();
        for l in &rep.fstab {
            let Some(i) = slots
                .iter()
                .position(|s| number(s) == l.partition && l.partition.is_some())
            else {
                continue;
            };
            let role = if l.fs_type == "swap" {
                "swap".to_string()
            } else {
                l.mountpoint.clone()
            };
            if !(roles[i].contains(&role) || i == ri && role == "/") {
                roles[i].push(role);
            }
            let at = l.mountpoint.trim_matches('/').as_bytes().to_vec();
            if i != ri && !at.is_empty() && l.fs_type != "swap" {
                if let Some(m) = &slots[i].mounted {
                    mounts.push((at, m));
                    if l.mountpoint.starts_with("/boot")
                        && matches!(m.tree, FsTree::Fat(_))
                        && !esps.contains(&i)
                    {
                        esps.push(i);
                    }
                }
            }
        }
        mounts.sort_by_key(|(at, _)| std::cmp::Reverse(at.len()));
        let view = View {
            root,
            subroot: subroot.clone(),
            shared,
            mounts,
        };
        rep.root = Some(Root {
            partition: number(&slots[ri]),
            subroot: (!subroot.is_empty()).then(|| String::from_utf8_lossy(&subroot).into_owned()),
        });
        system_facts(&view, &mut rep, &mut notes);
        rep.kernels = boot::kernels(&view, &mut notes);
        if rep.kernels.is_empty() {
            notes.push("no kernel in /boot".into());
        }
        let esp_refs: Vec<&Mounted> = esps
            .iter()
            .filter_map(|&i| slots[i].mounted.as_ref())
            .collect();
        rep.boot_loaders = boot::loaders(&*disk, table.as_ref(), &esp_refs, Some(&view));
        if relayouted {
            rep.relayout = Some(relayout_info(
                &view,
                &subroots,
                &rep.boot_loaders,
                &mut notes,
            ));
        }
    } else {
        let esp_refs: Vec<&Mounted> = esps
            .iter()
            .filter_map(|&i| slots[i].mounted.as_ref())
            .collect();
        rep.boot_loaders = boot::loaders(&*disk, table.as_ref(), &esp_refs, None);
    }
    for (s, roles) in slots.iter().zip(roles) {
        let p = s.part.as_ref();
        rep.partitions.push(Part {
            number: p.map(|p| p.number),
            start: p.map_or(0, |p| p.start),
            size: p.map_or(s.device.len(), |p| p.size),
            type_code: p.map_or(String::new(), |p| p.type_code.clone()),
            type_name: p.map_or(String::new(), |p| p.type_name.clone()),
            name: p.and_then(|p| p.name.clone()),
            uuid: p.and_then(|p| p.uuid.clone()),
            filesystem: s.fs.clone().map(FsJson::from),
            roles,
        });
    }
    if rep.boot_loaders.is_empty() {
        notes.push("no boot loader found (no GRUB boot code in the MBR, no GRUB or systemd-boot on an ESP, no grub.cfg or BLS entries in /boot): the kernel is booted from outside the image".into());
    }
    // What the readers had to say (a backup superblock read, damage skipped): never silent.
    for s in &slots {
        if let Some(m) = &s.mounted {
            let place = number(s).map_or("the whole disk".into(), |n| format!("partition {n}"));
            for w in m.tree.take_warnings() {
                eprintln!("subroot: warning: {name} {place}: {w}");
                notes.push(format!("{place}: {w}"));
            }
        }
    }
    rep.notes = notes;
    Ok(rep)
}

/// The lines of `/etc/fstab`, each with the partition its device field names.
fn fstab_lines(text: &str, table: Option<&PartitionTable>, slots: &[Slot]) -> Vec<FstabLine> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 2 || f[0].starts_with('#') {
            continue;
        }
        let partition = parse_spec(f[0]).and_then(|spec| {
            let t = table?;
            slots.iter().find_map(|s| {
                let p = s.part.as_ref()?;
                matches(&spec, t, p, s.fs.as_ref()).then_some(p.number)
            })
        });
        out.push(FstabLine {
            device: f[0].to_string(),
            mountpoint: f[1].to_string(),
            fs_type: f.get(2).unwrap_or(&"").to_string(),
            options: f.get(3).unwrap_or(&"").to_string(),
            partition,
        });
    }
    out
}

/// The roots of a relayouted image (`subroots`: top-level directories holding an
/// os-release) and the default one: `subroot=` on the first boot entry's command line, else
/// in `/etc/kernel/cmdline` or `/etc/default/grub`.
fn relayout_info(
    view: &View,
    subroots: &[Vec<u8>],
    loaders: &[report::Loader],
    notes: &mut Vec<String>,
) -> Relayout {
    let default = loaders
        .iter()
        .flat_map(|l| &l.entries)
        .find_map(|e| subroot_param(&e.cmdline))
        .or_else(|| {
            ["etc/kernel/cmdline", "etc/default/grub"]
                .iter()
                .find_map(|f| subroot_param(&view.text(f)?))
        });
    if default.is_none() {
        notes.push("relayouted, but no boot configuration in the image (grub.cfg, BLS entries, /etc/kernel/cmdline, /etc/default/grub) names subroot=: the default root is set outside the image".into());
    }
    Relayout {
        roots: subroots
            .iter()
            .map(|s| {
                let v = View {
                    root: view.root,
                    subroot: s.clone(),
                    shared: Vec::new(),
                    mounts: Vec::new(),
                };
                SubRoot {
                    name: String::from_utf8_lossy(s).into_owned(),
                    pretty_name: os_release(&v).and_then(|o| o.pretty_name),
                }
            })
            .collect(),
        default,
    }
}

/// Sniff one partition and open what subroot reads (ext2/3/4, FAT). Unknown or
/// unsupported content is a note; a recognised filesystem that does not open is an error.
fn open_slot(part: Option<Partition>, device: Dev, notes: &mut Vec<String>) -> Result<Slot> {
    let place = match &part {
        Some(p) => format!("partition {}", p.number),
        None => "the whole disk".into(),
    };
    let fs = sniff(&*device).with_context(|| format!("cannot read {place}"))?;
    let kind = fs.as_ref().map(|f| f.kind.as_str());
    let partition = part.as_ref().map(|p| p.number);
    let tree = match kind {
        Some(k) if k.starts_with("ext") => Some(FsTree::Ext(
            ExtTree::open(device.clone(), OpenOptions { force: true })
                .with_context(|| format!("cannot open the {k} filesystem of {place}"))?,
        )),
        Some("vfat") => Some(FsTree::Fat(
            FatTree::open(device.clone())
                .with_context(|| format!("cannot open the FAT filesystem of {place}"))?,
        )),
        Some("swap") => None,
        Some(k) => {
            notes.push(format!("{place}: {k}, which subroot does not read"));
            None
        }
        None => {
            if part.is_some() {
                notes.push(format!("{place}: no filesystem subroot recognises"));
            }
            None
        }
    };
    let root = match &tree {
        Some(FsTree::Ext(_)) => linux_root(&device),
        _ => None,
    };
    Ok(Slot {
        part,
        mounted: tree.map(|tree| Mounted {
            partition,
            tree,
            device: device.clone(),
        }),
        device,
        fs,
        root,
    })
}

/// The value of the first `subroot=` word of a command line or configuration file
/// (quotes around a `GRUB_CMDLINE_LINUX` value are not part of it).
fn subroot_param(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .find_map(|w| w.strip_prefix("subroot="))
        .map(str::to_string)
}

/// The os-release of a view (`/etc/os-release`, else `/usr/lib/os-release`).
fn os_release(view: &View) -> Option<Os> {
    let (file, text) = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|f| Some((f.to_string(), view.text(f)?)))?;
    let fields = system::os_release(&text);
    let get = |k: &str| fields.get(k).cloned();
    Some(Os {
        file,
        id: get("ID"),
        version_id: get("VERSION_ID"),
        name: get("NAME"),
        pretty_name: get("PRETTY_NAME"),
        fields: fields.clone(),
    })
}

/// os-release, hostname, machine id, users, packages.
fn system_facts(view: &View, rep: &mut Report, notes: &mut Vec<String>) {
    rep.os = os_release(view);
    if rep.os.is_none() {
        notes.push("no /etc/os-release or /usr/lib/os-release".into());
    }
    let first_line = |p: &str| {
        view.text(p)
            .map(|t| t.lines().next().unwrap_or_default().trim().to_string())
    };
    rep.hostname = first_line("etc/hostname").filter(|h| !h.is_empty());
    if rep.hostname.is_none() {
        notes.push("no hostname (/etc/hostname missing or empty)".into());
    }
    rep.machine_id = first_line("etc/machine-id").filter(|m| !m.is_empty());
    if rep.machine_id.is_none() {
        notes.push("no machine id (/etc/machine-id missing or empty: set at first boot)".into());
    }
    match view.text("etc/passwd") {
        Some(t) => rep.users = system::passwd(&t),
        None => notes.push("no /etc/passwd".into()),
    }
    let pk = &mut rep.packages;
    if let Some(t) = view.text("var/lib/dpkg/status") {
        pk.manager = Some("dpkg");
        pk.database = Some("/var/lib/dpkg/status".into());
        pk.format = Some("dpkg-status");
        pk.read = true;
        pk.installed = system::dpkg_status(&t);
        pk.count = Some(pk.installed.len());
    } else if let Some((path, kind)) = system::RPM_DATABASES
        .iter()
        .find(|(p, _)| view.entry(p).is_some_and(|f| f.entry.kind == Kind::File))
    {
        pk.manager = Some("rpm");
        pk.database = Some(format!("/{path}"));
        pk.format = Some(kind);
        notes.push(format!(
            "the rpm database /{path} ({kind}) is not read: installed packages are not listed"
        ));
    } else {
        notes.push("no package database (dpkg or rpm)".into());
    }
}
