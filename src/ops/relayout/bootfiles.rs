//! Where an installed system's boot configuration and initrds are: the one list every
//! command that edits kernel command lines or initrds works from (relayout, `roots
//! default`, `relayout --undo`).
//!
//! On the boot filesystem (the root filesystem's `/boot`, or a separate `/boot`
//! partition, where the boot loader's paths start at its root): `grub/grub.cfg`,
//! `grub2/grub.cfg`, `loader/entries/*.conf`, the initrds named by convention
//! (`initrd.img-*`, `initramfs-*.img`) and every `initrd` those configuration files name.
//! In each system directory of the root filesystem (`/` before a relayout, each root
//! `rN/` after): `etc/default/grub` and `etc/kernel/cmdline`. FAT ESPs are [`super::esp`]'s.

use super::bootcfg::ConfigKind;
use super::initrds;
use super::plan::{read_text, Dev};
use anyhow::Result;
use subroot_formats::ext::ExtTree;
use subroot_formats::tree::Kind;

/// A boot configuration file found, with its text.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// Path in its filesystem.
    pub path: Vec<u8>,
    pub kind: ConfigKind,
    /// On the boot filesystem (else on the root filesystem).
    pub on_boot: bool,
    pub text: String,
}

/// The boot files of a system.
#[derive(Debug, Clone, Default)]
pub struct BootFiles {
    pub configs: Vec<ConfigFile>,
    /// Initrds on the boot filesystem (paths in it), sorted, de-duplicated.
    pub initrds: Vec<Vec<u8>>,
}

/// `dir/rel` (`rel` alone for the top).
pub fn under(dir: &[u8], rel: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        rel.to_vec()
    } else {
        [dir, b"/", rel].concat()
    }
}

/// The boot files of the system whose root filesystem is `tree` and whose boot files are
/// in `btree` under `bprefix` (`b"boot/"`, or `b""` for a separate `/boot`), with the
/// system directories `systems` of `tree` (`b""` for the top).
pub fn find(
    tree: &ExtTree<Dev>,
    btree: &ExtTree<Dev>,
    bprefix: &[u8],
    systems: &[Vec<u8>],
) -> Result<BootFiles> {
    let bpath = |p: &[u8]| [bprefix, p].concat();
    let mut wanted: Vec<(Vec<u8>, ConfigKind, bool)> = Vec::new();
    for p in [&b"grub/grub.cfg"[..], b"grub2/grub.cfg"] {
        wanted.push((bpath(p), ConfigKind::GrubCfg, true));
    }
    if let Ok(list) = btree.children(&bpath(b"loader/entries")) {
        for e in list {
            if e.name().ends_with(b".conf") {
                wanted.push((e.path.clone(), ConfigKind::BlsEntry, true));
            }
        }
    }
    for s in systems {
        wanted.push((
            under(s, b"etc/default/grub"),
            ConfigKind::DefaultGrub,
            false,
        ));
        wanted.push((
            under(s, b"etc/kernel/cmdline"),
            ConfigKind::KernelCmdline,
            false,
        ));
    }
    let blookup = |p: &[u8]| btree.entry(p).ok();
    let mut out = BootFiles::default();
    let mut initrd_paths = Vec::new();
    for (path, kind, on_boot) in wanted {
        let ftree = if on_boot { btree } else { tree };
        let Some(e) = ftree.entry(&path).ok().filter(|e| e.kind == Kind::File) else {
            continue;
        };
        let text = read_text(ftree, &path, e.size)?;
        let named = match kind {
            ConfigKind::GrubCfg => initrds::grub_initrds(&text),
            ConfigKind::BlsEntry => initrds::bls_initrds(&text),
            _ => Vec::new(),
        };
        initrd_paths.extend(named.iter().filter_map(|p| initrds::resolve(p, &blookup)));
        out.configs.push(ConfigFile {
            path,
            kind,
            on_boot,
            text,
        });
    }
    let bdir = bprefix.strip_suffix(b"/").unwrap_or(bprefix);
    if let Ok(list) = btree.children(bdir) {
        for e in list {
            if e.kind == Kind::File && initrds::is_initrd_name(e.name()) {
                initrd_paths.push(e.path.clone());
            }
        }
    }
    out.initrds = initrds::unique(initrd_paths);
    Ok(out)
}
