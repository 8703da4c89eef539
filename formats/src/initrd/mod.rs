//! Initrd flavours and the subroot boot hook: detecting whether an initrd was made by
//! initramfs-tools or dracut, adding the hook that boots into `subroot=DIR` of the root
//! filesystem, and the files that keep the hook in the converted system.
//!
//! - [`scan`]: one pass over every entry of every segment, collecting what the others need.
//! - [`hooks`]: the hook scripts (data files under `hooks/`), their paths and the ORDER file.
//! - [`add`]: adding the hook, reproducibly and idempotently (what to add, and whether).
//! - [`append`]: the default engine, appending one small segment with the hook.
//! - [`recompress`]: the other engine, re-encoding the main segment with the hook inside.
//!
//! What the hook does at boot is described in the scripts themselves
//! (`hooks/initramfs-tools-local-bottom.sh`, `hooks/dracut-pre-pivot.sh`).

pub mod add;
mod append;
pub mod hooks;
mod recompress;
pub mod scan;

pub use add::{
    add_subroot, add_subroot_tail, append_codec, appended_segment_codec, hook_present, AddOutcome,
    AddSubrootOptions, Method,
};
pub use hooks::{installed_files, InstalledFile, DEFAULT_SHARED};

use crate::block::BlockDevice;
use crate::Result;
use std::fmt;

/// Which initrd generator made an initrd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// Debian/Ubuntu `initramfs-tools` (`mkinitramfs`).
    InitramfsTools,
    /// dracut (Fedora, RHEL, SUSE, Arch optionally), shell or systemd flavour.
    Dracut,
    /// Anything else (mkinitcpio, booster, a hand-made archive).
    Other,
}

impl Flavour {
    /// A short name: "initramfs-tools", "dracut", "other".
    pub fn name(self) -> &'static str {
        match self {
            Flavour::InitramfsTools => "initramfs-tools",
            Flavour::Dracut => "dracut",
            Flavour::Other => "other",
        }
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The flavour of the initrd in `dev`, from the entry names of all its segments:
/// initramfs-tools has `conf/initramfs.conf` with `scripts/functions` or
/// `scripts/local-bottom`; dracut has a `dracut-lib.sh` and a `lib/dracut/` or
/// `usr/lib/dracut/` directory. Neither is [`Flavour::Other`], and so is both unless `init`
/// is initramfs-tools' own script ([`scan::is_initramfs_tools_init`]), which runs only
/// initramfs-tools' scripts.
pub fn detect_flavour<D: BlockDevice>(dev: &D) -> Result<Flavour> {
    Ok(scan::scan(dev)?.flavour())
}
