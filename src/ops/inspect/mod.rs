//! `subroot inspect`: what an image holds, read in place without a VM — partitions and
//! their roles, the OS, hostname, machine id, kernels and initrds, boot loaders and their
//! kernel command lines, fstab, users, installed packages, and whether the image is
//! relayouted. Read-only; what is missing is said in `notes`, never an error; a corrupt
//! filesystem or table is an error (exit status 3).
//!
//! - [`view`]: paths as the installed system sees them mounted.
//! - [`system`]: the parsers of os-release, passwd, dpkg status.
//! - [`boot`]: kernels, initrds, boot loaders.
//! - [`slots`]: the partitions and LVM2 volumes, opened; what fstab names.
//! - [`report`]: the document and its text form.

pub mod boot;
pub mod report;
mod slots;
pub mod system;
pub mod view;

pub(crate) use slots::{fstab_lines, open_slots, Slot};

use crate::cli::InspectArgs;
use crate::open::fstree::FsTree;
use crate::open::select::{is_esp, is_root_dir, RootKind};
use crate::open::survey::ImageSurvey;
use crate::ops::info::FsJson;
use anyhow::{Context, Result};
use report::{Os, Packages, Part, Relayout, Report, Root, SubRoot, Table, Volume};
use std::sync::Arc;
use subroot_formats::block::BlockDevice;
use subroot_formats::table::types::is_type;
use subroot_formats::tree::Kind;
use view::{Mounted, View};

type Dev = Arc<dyn BlockDevice>;

pub fn run(args: &InspectArgs) -> Result<()> {
    let img = crate::open::open_image(&args.image, args.format)?;
    let name = args.image.display().to_string();
    let report = gather(img, &name).with_context(|| format!("cannot inspect {name}"))?;
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&report)?)
    } else {
        report.text()
    };
    crate::stdout::print(&text).context("cannot write to stdout")
}

/// How much [`gather_to`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Everything `inspect` reports.
    Full,
    /// Without the kernels and their initrds (decompressing those is most of the time):
    /// what `roots` needs (roots, boot loaders and their entries).
    Boot,
}

/// Inspect an open image.
pub fn gather(img: subroot_formats::image::Image, name: &str) -> Result<Report> {
    gather_to(img, name, Depth::Full)
}

/// Inspect an open image to `depth`.
pub fn gather_to(img: subroot_formats::image::Image, name: &str, depth: Depth) -> Result<Report> {
    let format = img.format();
    gather_in(
        &ImageSurvey::of(std::path::Path::new(name), format, Arc::new(img))?,
        name,
        depth,
    )
}

/// Inspect an image surveyed already (its table is not read again) to `depth`.
pub fn gather_in(survey: &ImageSurvey, name: &str, depth: Depth) -> Result<Report> {
    let format = survey.format.name();
    let virtual_size = survey.disk.len();
    let disk: Dev = survey.disk.clone();
    let mut notes = Vec::new();
    let table = survey.table.clone();
    let mut slots = open_slots(survey, &mut notes)?;
    let volumes = slots::open_volumes(&disk, table.as_ref(), &slots, &mut notes)?;
    slots.extend(volumes);
    let roots: Vec<usize> = (0..slots.len())
        .filter(|&i| slots[i].root.is_some())
        .collect();
    if roots.len() > 1 {
        notes.push(format!(
            "several filesystems hold a Linux root ({}); the first is reported",
            roots
                .iter()
                .map(|&i| slots[i].place())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let root_idx = roots.first().copied();
    if root_idx.is_none() {
        notes.push("no filesystem holds a Linux root (a filesystem subroot reads with /etc/os-release or /usr/lib/os-release, or the same under r0/)".into());
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
            if s.is_pv() {
                r.push("lvm2-pv".into());
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
        volumes: Vec::new(),
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
        let subroots = subroots_of(root, &top);
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
            let Some(i) = l.slot else {
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
            partition: slots[ri].part.as_ref().map(|p| p.number),
            volume: slots[ri].volume.clone(),
            subroot: (!subroot.is_empty()).then(|| String::from_utf8_lossy(&subroot).into_owned()),
        });
        system_facts(&view, &mut rep, &mut notes);
        if depth == Depth::Full {
            rep.kernels = boot::kernels(&view, &mut notes);
        }
        if depth == Depth::Full && rep.kernels.is_empty() {
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
        if let Some(name) = &s.volume {
            rep.volumes.push(Volume {
                name: name.clone(),
                size: s.device.len(),
                filesystem: s.fs.clone().map(FsJson::from),
                roles,
            });
            continue;
        }
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
            let place = s.place();
            for w in m.tree.take_warnings() {
                eprintln!("subroot: warning: {name} {place}: {w}");
                notes.push(format!("{place}: {w}"));
            }
        }
    }
    rep.notes = notes;
    Ok(rep)
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

/// The subroots of a physical root whose top level is `top`: directories holding an
/// os-release (`r0`, ...).
pub(crate) fn subroots_of(root: &Mounted, top: &[subroot_formats::tree::Entry]) -> Vec<Vec<u8>> {
    top.iter()
        .filter(|e| e.kind == Kind::Dir && is_root_dir(&e.path, &|p| root.tree.entry(p).is_ok()))
        .map(|e| e.path.clone())
        .collect()
}

/// The value of the first `subroot=` word of a command line or configuration file
/// (quotes around a `GRUB_CMDLINE_LINUX` value are not part of it).
pub fn subroot_param(text: &str) -> Option<String> {
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
