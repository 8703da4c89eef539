//! The subroot boot hooks as data: the shell scripts (kept under `hooks/` and included at
//! build time), the shared-directory list baked into them, and where each file goes — in
//! a built initrd and in the installed system (so later `update-initramfs` / `dracut`
//! runs keep the hook).

use super::Flavour;
use crate::{Error, Result};

const IT_LOCAL_BOTTOM: &str = include_str!("hooks/initramfs-tools-local-bottom.sh");
const DRACUT_PRE_PIVOT: &str = include_str!("hooks/dracut-pre-pivot.sh");
const DRACUT_MODULE_SETUP: &str = include_str!("hooks/dracut-module-setup.sh");
const DRACUT_CONF: &str = include_str!("hooks/dracut.conf");

/// The placeholder the templates carry for the shared-directory list.
const SHARED_PLACEHOLDER: &str = "@SUBROOT_SHARED@";

/// The shared directories used when none are given.
pub const DEFAULT_SHARED: [&str; 3] = ["boot", "var", "home"];

/// Path of the initramfs-tools script inside the initrd (no leading `/`).
pub const IT_SCRIPT_PATH: &str = "scripts/local-bottom/subroot";
/// Path of the initramfs-tools run order of the local-bottom scripts inside the initrd.
pub const IT_ORDER_PATH: &str = "scripts/local-bottom/ORDER";
/// The two lines the ORDER file gets for the script, as `cache_run_scripts` writes them.
pub const IT_ORDER_LINES: &str =
    "/scripts/local-bottom/subroot \"$@\"\n[ -e /conf/param.conf ] && . /conf/param.conf\n";
/// File name of the dracut hook inside `<hookdir>/pre-pivot/`: what dracut's
/// `inst_hook pre-pivot 50 "$moddir/subroot-pre-pivot.sh"` produces.
pub const DRACUT_HOOK_NAME: &str = "50-subroot-pre-pivot.sh";
/// The hook directories dracut has used, in order of preference: `/var/lib/dracut/hooks`
/// (dracut 057 and later), `/lib/dracut/hooks` (older), and `/usr/lib/dracut/hooks` (the
/// older one seen through a merged-/usr `lib -> usr/lib` symlink).
pub const DRACUT_HOOK_DIRS: [&str; 3] = [
    "var/lib/dracut/hooks",
    "lib/dracut/hooks",
    "usr/lib/dracut/hooks",
];

/// Mode of the scripts (regular file, 0755).
pub const SCRIPT_MODE: u32 = 0o100755;
/// Mode of configuration files (regular file, 0644).
pub const CONF_MODE: u32 = 0o100644;

/// A file to install into the converted system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledFile {
    /// Absolute path in the target system.
    pub path: String,
    /// Full `st_mode` (type and permission bits).
    pub mode: u32,
    pub content: Vec<u8>,
}

/// Check the shared-directory names: single path components of safe characters (letters,
/// digits, `.`, `_`, `+`, `-`), not `.`/`..`, not `sysroot` (where the physical root goes),
/// no duplicates.
pub fn validate_shared(shared: &[String]) -> Result<()> {
    for (i, name) in shared.iter().enumerate() {
        let ok_chars = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'));
        if !ok_chars || name == "." || name == ".." || name.starts_with('-') {
            return Err(Error::InvalidArgument(format!(
                "shared directory {name:?}: expected a single path component of letters, \
                 digits, '.', '_', '+' or '-' (not '.' or '..', not starting with '-')"
            )));
        }
        if name == "sysroot" {
            return Err(Error::InvalidArgument(
                "shared directory \"sysroot\": that is where the physical root is mounted".into(),
            ));
        }
        if shared[..i].contains(name) {
            return Err(Error::InvalidArgument(format!(
                "shared directory {name:?} is listed twice"
            )));
        }
    }
    Ok(())
}

fn render(template: &str, shared: &[String]) -> Result<Vec<u8>> {
    validate_shared(shared)?;
    let list = shared.join(" ");
    if template.matches(SHARED_PLACEHOLDER).count() != 1 {
        return Err(Error::corrupt(format!(
            "hook template has {} {SHARED_PLACEHOLDER} placeholders, expected 1",
            template.matches(SHARED_PLACEHOLDER).count()
        )));
    }
    Ok(template.replace(SHARED_PLACEHOLDER, &list).into_bytes())
}

/// The initramfs-tools `local-bottom` script with `shared` baked in.
pub fn initramfs_tools_script(shared: &[String]) -> Result<Vec<u8>> {
    render(IT_LOCAL_BOTTOM, shared)
}

/// The dracut `pre-pivot` hook with `shared` baked in.
pub fn dracut_hook(shared: &[String]) -> Result<Vec<u8>> {
    render(DRACUT_PRE_PIVOT, shared)
}

/// The script that goes into an initrd of `flavour`, with `shared` baked in.
pub fn initrd_script(flavour: Flavour, shared: &[String]) -> Result<Vec<u8>> {
    match flavour {
        Flavour::InitramfsTools => initramfs_tools_script(shared),
        Flavour::Dracut => dracut_hook(shared),
        Flavour::Other => Err(Error::unsupported(
            "no subroot hook for an initrd that is neither initramfs-tools nor dracut",
        )),
    }
}

/// The files that make the converted system's own initrd generator include the hook:
/// for initramfs-tools `/etc/initramfs-tools/scripts/local-bottom/subroot`; for dracut the
/// module `/usr/lib/dracut/modules.d/90subroot/{module-setup.sh,subroot-pre-pivot.sh}`
/// and `/etc/dracut.conf.d/90-subroot.conf` adding it.
pub fn installed_files(flavour: Flavour, shared: &[String]) -> Result<Vec<InstalledFile>> {
    Ok(match flavour {
        Flavour::InitramfsTools => vec![InstalledFile {
            path: "/etc/initramfs-tools/scripts/local-bottom/subroot".into(),
            mode: SCRIPT_MODE,
            content: initramfs_tools_script(shared)?,
        }],
        Flavour::Dracut => vec![
            InstalledFile {
                path: "/usr/lib/dracut/modules.d/90subroot/module-setup.sh".into(),
                mode: SCRIPT_MODE,
                content: DRACUT_MODULE_SETUP.as_bytes().to_vec(),
            },
            InstalledFile {
                path: "/usr/lib/dracut/modules.d/90subroot/subroot-pre-pivot.sh".into(),
                mode: SCRIPT_MODE,
                content: dracut_hook(shared)?,
            },
            InstalledFile {
                path: "/etc/dracut.conf.d/90-subroot.conf".into(),
                mode: CONF_MODE,
                content: DRACUT_CONF.as_bytes().to_vec(),
            },
        ],
        Flavour::Other => {
            return Err(Error::unsupported(
                "no subroot hook to install for a system whose initrd is neither initramfs-tools nor dracut",
            ))
        }
    })
}

/// `order` with the subroot script appended, unless it already runs it (then `None`).
pub fn order_with_subroot(order: &[u8]) -> Option<Vec<u8>> {
    if order_has_subroot(order) {
        return None;
    }
    let mut out = order.to_vec();
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(IT_ORDER_LINES.as_bytes());
    Some(out)
}

/// True when an ORDER file runs the subroot script.
pub fn order_has_subroot(order: &[u8]) -> bool {
    let first = IT_ORDER_LINES.lines().next().unwrap_or_default();
    order
        .split(|&b| b == b'\n')
        .any(|l| l.trim_ascii() == first.as_bytes())
}

/// A new ORDER file for a local-bottom directory without one, running `scripts` (names
/// in that directory, in the given order) and then the subroot script.
pub fn new_order(scripts: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for s in scripts {
        out.push_str(&format!(
            "/scripts/local-bottom/{s} \"$@\"\n[ -e /conf/param.conf ] && . /conf/param.conf\n"
        ));
    }
    out.push_str(IT_ORDER_LINES);
    out.into_bytes()
}
