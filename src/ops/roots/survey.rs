//! What `roots` reads from an image: its roots, the boot entries with the root each
//! selects, and the default — gathered by `inspect` (the same root detection, boot loader
//! search and command lines), so both commands always agree.

use crate::cli::InputFormatArg;
use crate::ops::inspect::{gather_to, subroot_param, Depth};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;

/// The roots of a relayouted image.
#[derive(Debug, Serialize)]
pub struct Survey {
    pub image: String,
    /// The partition holding the root filesystem (`null`: the whole disk).
    pub partition: Option<u32>,
    /// The root booted by default: `subroot=` of the first boot entry (the one a boot
    /// loader starts without a choice), else of /etc/kernel/cmdline or /etc/default/grub
    /// in the root; `null` when nothing in the image names one.
    pub default: Option<String>,
    pub roots: Vec<RootInfo>,
    pub entries: Vec<EntryInfo>,
    /// What is odd: entries selecting a root that is not there, no default.
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RootInfo {
    pub name: String,
    /// PRETTY_NAME of its os-release.
    pub pretty_name: Option<String>,
    pub default: bool,
    /// How many boot entries select it.
    pub entries: usize,
}

#[derive(Debug, Serialize)]
pub struct EntryInfo {
    /// The boot loader ("grub-bios", "grub-efi", "systemd-boot", "grub-config", "bls").
    pub loader: &'static str,
    /// The configuration file the entry is in.
    pub config: Option<String>,
    pub title: Option<String>,
    pub kernel: String,
    /// `subroot=` of its command line; `null`: it boots the physical root.
    pub root: Option<String>,
}

/// Survey the roots of `image`; an image that is not relayouted is an error saying so.
pub fn survey(image: &Path, format: Option<InputFormatArg>) -> Result<Survey> {
    let img = crate::open::open_image(image, format)?;
    let name = image.display().to_string();
    let rep = gather_to(img, &name, Depth::Boot)
        .with_context(|| format!("cannot read the roots of {name}"))?;
    let Some(root) = &rep.root else {
        bail!("{name}: no filesystem holds a Linux root (a filesystem subroot reads with /etc/os-release, or roots such as r0/ holding one)");
    };
    let Some(relayout) = rep.relayout else {
        let place = root.place();
        bail!("{name} is not relayouted: its root filesystem ({place}) has /etc/os-release at its top, not in roots such as r0/ (make r0 with `subroot relayout`)");
    };
    let mut entries = Vec::new();
    // One entry once, even when two loaders show the same grub.cfg (BIOS and EFI GRUB).
    let mut seen = std::collections::HashSet::new();
    for l in &rep.boot_loaders {
        for e in &l.entries {
            if !seen.insert((l.config.clone(), e.title.clone(), e.cmdline.clone())) {
                continue;
            }
            entries.push(EntryInfo {
                loader: l.kind,
                config: l.config.clone(),
                title: e.title.clone(),
                kernel: e.kernel.clone(),
                root: subroot_param(&e.cmdline),
            });
        }
    }
    let mut notes = Vec::new();
    let names: Vec<&str> = relayout.roots.iter().map(|r| r.name.as_str()).collect();
    for e in &entries {
        if let Some(r) = e.root.as_deref().filter(|r| !names.contains(r)) {
            notes.push(format!(
                "boot entry {:?} ({}) selects subroot={r}, which is not a root of the image: it does not boot",
                e.title.as_deref().unwrap_or("-"),
                e.config.as_deref().unwrap_or(e.loader)
            ));
        }
    }
    if relayout.default.is_none() {
        notes.push("no boot configuration in the image names subroot=: the default root is chosen outside the image".into());
    }
    let roots = relayout
        .roots
        .into_iter()
        .map(|r| RootInfo {
            default: relayout.default.as_deref() == Some(r.name.as_str()),
            entries: entries
                .iter()
                .filter(|e| e.root.as_deref() == Some(r.name.as_str()))
                .count(),
            name: r.name,
            pretty_name: r.pretty_name,
        })
        .collect();
    Ok(Survey {
        image: name,
        partition: root.partition,
        default: relayout.default,
        roots,
        entries,
        notes,
    })
}

impl Survey {
    /// True when `name` is one of the roots.
    pub fn has(&self, name: &str) -> bool {
        self.roots.iter().any(|r| r.name == name)
    }

    /// "r0, r1" for messages.
    pub fn names(&self) -> String {
        self.roots
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
