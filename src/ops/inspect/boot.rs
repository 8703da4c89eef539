//! What boots the system: the kernels in `/boot` with their initrds (examined in place:
//! flavour, segments, compression, subroot hook), and the boot loaders — GRUB's BIOS boot
//! code in the MBR with its core in the MBR gap or a BIOS boot partition, GRUB or
//! systemd-boot on an ESP — with the entries and kernel command lines of their
//! configuration.

use super::report::{Initrd, Kernel, Loader};
use super::view::{Mounted, View};
use crate::open::fstree::FsTree;
use crate::ops::relayout::bootcfg::{bls_entry, grub_entries};
use crate::ops::relayout::initrds::is_initrd_name;
use std::sync::Arc;
use subroot_formats::block::BlockDevice;
use subroot_formats::initrd::scan::scan;
use subroot_formats::table::types::is_type;
use subroot_formats::table::{PartitionTable, TableKind};
use subroot_formats::tree::Kind;

/// The kernels in `/boot` (`vmlinuz-VERSION`, `vmlinux-VERSION`), each with the initrd of
/// the same version (`initrd.img-VERSION`, `initramfs-VERSION.img`); initrds with no
/// kernel are said in `notes`.
pub fn kernels(view: &View, notes: &mut Vec<String>) -> Vec<Kernel> {
    let files: Vec<_> = view
        .children("boot")
        .into_iter()
        .filter(|f| f.entry.kind == Kind::File)
        .collect();
    let name = |f: &super::view::Found| String::from_utf8_lossy(f.entry.name()).into_owned();
    let mut out = Vec::new();
    let mut used = Vec::new();
    // The initrds to examine: (kernel index, the report so far, the file as a device).
    let mut todo = Vec::new();
    for k in &files {
        let n = name(k);
        let Some(version) = n
            .strip_prefix("vmlinuz-")
            .or_else(|| n.strip_prefix("vmlinux-"))
        else {
            continue;
        };
        let initrd = files.iter().find(|f| {
            let m = name(f);
            m == format!("initrd.img-{version}") || m == format!("initramfs-{version}.img")
        });
        if let Some(i) = initrd {
            used.push(i.entry.path.clone());
            let report = Initrd {
                path: format!("/boot/{}", name(i)),
                size: i.entry.size,
                flavour: None,
                compression: Vec::new(),
                segments: 0,
                hook_present: None,
                error: None,
            };
            todo.push((out.len(), report, i.device()));
        }
        out.push(Kernel {
            version: version.to_string(),
            path: format!("/boot/{n}"),
            partition: k.fs.partition,
            volume: k.fs.volume.clone(),
            size: k.entry.size,
            initrd: None,
        });
    }
    // Examined on every core (decompressing is what takes the time), a bounded number at once.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    while !todo.is_empty() {
        let batch: Vec<_> = todo.drain(..cores.min(todo.len())).collect();
        let done: Vec<(usize, Initrd)> = std::thread::scope(|sc| {
            let handles: Vec<_> = batch
                .into_iter()
                .map(|(k, report, dev)| sc.spawn(move || (k, examine(report, dev))))
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        for (k, i) in done {
            out[k].initrd = Some(i);
        }
    }
    for f in &files {
        if is_initrd_name(f.entry.name()) && !used.contains(&f.entry.path) {
            notes.push(format!(
                "/boot/{}: an initrd with no kernel of its version",
                name(f)
            ));
        }
    }
    out
}

/// An initrd, examined (`dev`: `None` when it could not be opened).
fn examine(mut i: Initrd, dev: Option<Arc<dyn BlockDevice>>) -> Initrd {
    let Some(dev) = dev else {
        i.error = Some("cannot open it".into());
        return i;
    };
    match scan(&dev) {
        Ok(sc) => {
            i.flavour = Some(sc.flavour().name());
            i.compression = sc.segments.iter().map(|s| s.compression.name()).collect();
            i.segments = sc.segments.len();
            i.hook_present = Some(sc.hook_present());
        }
        Err(e) => i.error = Some(e.to_string()),
    }
    i
}

/// The boot loaders found: on the disk (BIOS), on each ESP, and the configuration the
/// system keeps in `/boot` (grub.cfg, BLS entries).
pub fn loaders(
    disk: &dyn BlockDevice,
    table: Option<&PartitionTable>,
    esps: &[&Mounted],
    view: Option<&View>,
) -> Vec<Loader> {
    let mut out = Vec::new();
    let grub_cfg = view.and_then(|v| {
        let f = v
            .entry("boot/grub/grub.cfg")
            .or(v.entry("boot/grub2/grub.cfg"))?;
        let text = f.text()?;
        Some((f.fs.partition, f.shown(), grub_entries(&text)))
    });
    if let Some(t) = table {
        // The boot code only (the table after it was read by the caller).
        let mut boot_code = [0u8; 440];
        if disk.read_at(&mut boot_code, 0).is_ok() && contains(&boot_code, b"GRUB") {
            let core = match t.kind {
                TableKind::Gpt => t
                    .partitions
                    .iter()
                    .find(|p| is_type(&p.type_code, "bios"))
                    .map(|p| format!("bios-boot partition {}", p.number)),
                _ => {
                    let mut s1 = [0u8; 512];
                    let gap = t.partitions.iter().map(|p| p.start).min().unwrap_or(0);
                    (gap >= 2 * 512
                        && disk.read_at(&mut s1, 512).is_ok()
                        && s1.iter().any(|&b| b != 0))
                    .then(|| "mbr-gap".to_string())
                }
            };
            let (partition, config, entries) = match &grub_cfg {
                Some((p, c, e)) => (*p, Some(c.clone()), e.clone()),
                None => (None, None, Vec::new()),
            };
            out.push(Loader {
                kind: "grub-bios",
                location: match core {
                    Some(c) => format!("mbr, core in the {c}"),
                    None => "mbr (no core found)".into(),
                },
                partition,
                config,
                entries,
            });
        }
    }
    let mut efi_grub = false;
    for esp in esps {
        let FsTree::Fat(tree) = &esp.tree else {
            continue;
        };
        let ls = |p: &[u8]| tree.children(p).unwrap_or_default();
        let mut bls = Vec::new();
        for dir in ls(b"").into_iter().filter(|e| e.kind == Kind::Dir) {
            if dir.name().eq_ignore_ascii_case(b"loader") {
                for d in ls(&dir.path) {
                    if d.name().eq_ignore_ascii_case(b"entries") {
                        bls.extend(ls(&d.path).into_iter().filter(|e| {
                            e.kind == Kind::File
                                && e.name().to_ascii_lowercase().ends_with(b".conf")
                        }));
                    }
                }
            }
        }
        let efi = ls(b"")
            .into_iter()
            .find(|e| e.kind == Kind::Dir && e.name().eq_ignore_ascii_case(b"EFI"));
        for vendor in efi.map(|e| ls(&e.path)).unwrap_or_default() {
            if vendor.kind != Kind::Dir {
                continue;
            }
            let files = ls(&vendor.path);
            let find = |pred: &dyn Fn(&str) -> bool| {
                files.iter().find(|f| {
                    f.kind == Kind::File
                        && pred(&String::from_utf8_lossy(f.name()).to_ascii_lowercase())
                })
            };
            let shown = |p: &[u8]| crate::open::fstree::shown(p);
            if let Some(b) = find(&|n| n.starts_with("grub") && n.ends_with(".efi")) {
                efi_grub = true;
                let cfg = find(&|n| n == "grub.cfg");
                let text = cfg.and_then(|c| {
                    let mut buf = Vec::new();
                    tree.copy_file(&c.path, &mut buf).ok()?;
                    Some(String::from_utf8_lossy(&buf).into_owned())
                });
                let mut entries = text.as_deref().map(grub_entries).unwrap_or_default();
                let mut config = cfg.map(|c| shown(&c.path));
                // A stub that only loads the system's grub.cfg: show that one's entries.
                if entries.is_empty() {
                    if let Some((_, c, e)) = &grub_cfg {
                        config = Some(c.clone());
                        entries = e.clone();
                    }
                }
                out.push(Loader {
                    kind: "grub-efi",
                    location: shown(&b.path),
                    partition: esp.partition,
                    config,
                    entries,
                });
            }
            if let Some(b) = find(&|n| n.starts_with("systemd-boot") && n.ends_with(".efi")) {
                out.push(Loader {
                    kind: "systemd-boot",
                    location: shown(&b.path),
                    partition: esp.partition,
                    config: (!bls.is_empty()).then(|| "/loader/entries".into()),
                    entries: bls
                        .iter()
                        .filter_map(|e| {
                            let mut buf = Vec::new();
                            tree.copy_file(&e.path, &mut buf).ok()?;
                            bls_entry(&String::from_utf8_lossy(&buf))
                        })
                        .collect(),
                });
            }
        }
    }
    if let (Some(v), false) = (view, out.iter().any(|l| l.kind == "grub-bios") || efi_grub) {
        if let Some((partition, config, entries)) = grub_cfg {
            out.push(Loader {
                kind: "grub-config",
                location: config.clone(),
                partition,
                config: Some(config),
                entries,
            });
        }
        let entries: Vec<_> = v
            .children("boot/loader/entries")
            .into_iter()
            .filter(|f| f.entry.name().ends_with(b".conf"))
            .filter_map(|f| bls_entry(&f.text()?))
            .collect();
        if !entries.is_empty() {
            out.push(Loader {
                kind: "bls",
                location: "/boot/loader/entries".into(),
                partition: v.entry("boot/loader/entries").and_then(|f| f.fs.partition),
                config: Some("/boot/loader/entries".into()),
                entries,
            });
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
