//! The relayout plan: everything the command will do, computed from the input before
//! anything is written. The same [`Plan`] value is printed for `--dry-run` (as text or
//! JSON) and drives the execution (through the [`Layout`] it comes with), so what the
//! user sees is what happens.

use super::bootcfg::{ConfigKind, LineChange};
use crate::edit::engine::Engine;
use crate::json::Named;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::Read;
use std::sync::Arc;
use subroot_formats::ext::{ExtFileDevice, ExtFs, ExtTree, OpenOptions};
use subroot_formats::initrd;
use subroot_formats::manifest::escape;
use subroot_formats::tree::Kind;

/// The device type the filesystems are read through.
pub use crate::open::survey::Dev;

/// Configuration files larger than this are not edited (they are not boot configuration).
const MAX_CONFIG: u64 = 4 << 20;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub subroot: String,
    pub shared: Vec<String>,
    /// `--move`: an explicit list of top-level names, or `None` for everything.
    pub move_list: Option<Vec<String>>,
    /// `--refresh-hook`: go on although an initrd already has the hook.
    pub refresh_hook: bool,
}

/// One top-level entry moving into the subroot.
#[derive(Debug, Clone, Serialize)]
pub struct Move {
    #[serde(flatten)]
    pub from: Named,
    #[serde(flatten)]
    pub to: Named,
    /// "dir", "symlink", "file", …
    pub kind: String,
}

/// An entry the relayout creates.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    #[serde(flatten)]
    pub path: Named,
    pub kind: String,
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    /// Why it is there.
    pub why: String,
}

/// A boot configuration file edited.
#[derive(Debug, Clone, Serialize)]
pub struct Edit {
    /// Path in the output root filesystem, or in the filesystem of `partition`.
    #[serde(flatten)]
    pub path: Named,
    /// The partition holding the file when it is not the root filesystem (the separate
    /// `/boot`, an ESP); absent for the root filesystem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    pub what: ConfigKind,
    pub changes: Vec<LineChange>,
}

impl Edit {
    /// The edit as plan text: `  VERB    PATH[ on partition N] (WHAT NOTE)`, then each
    /// changed line as `-` old and `+` new (an empty side is not shown).
    pub fn write_text(&self, s: &mut String, verb: &str, note: &str) {
        use std::fmt::Write;
        let on = self
            .partition
            .map_or(String::new(), |n| format!(" on partition {n}"));
        let _ = writeln!(
            s,
            "  {verb:7} {}{on} ({}{note})",
            self.path,
            self.what.describe()
        );
        for c in &self.changes {
            if !c.old.is_empty() {
                let _ = writeln!(s, "            {:>4}- {}", c.line, c.old);
            }
            if !c.new.is_empty() {
                let _ = writeln!(s, "            {:>4}+ {}", c.line, c.new);
            }
        }
    }
}

/// An initrd that gets the hook.
#[derive(Debug, Clone, Serialize)]
pub struct InitrdPlan {
    /// Path in the output root filesystem, or in the separate `/boot` of `partition`.
    #[serde(flatten)]
    pub path: Named,
    /// The separate `/boot` partition holding it; absent for the root filesystem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    pub flavour: String,
    pub size: u64,
    /// The hook is there already (only with --refresh-hook; the initrd is rewritten anyway).
    pub hook_present: bool,
    #[serde(skip)]
    pub input_path: Vec<u8>,
    /// What the scan found, so that adding the hook does not decode the initrd again.
    #[serde(skip)]
    pub scan: Arc<initrd::scan::Scan>,
}

/// A hook file installed into the system inside the subroot.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub path: String,
    /// "add" or "replace".
    pub action: String,
}

/// A partition of the disk and what happens to it.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionPlan {
    pub number: Option<u32>,
    pub start: u64,
    pub size: u64,
    pub filesystem: Option<String>,
    pub action: PartitionAction,
}

/// What happens to a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionAction {
    /// Copied byte for byte.
    Copy,
    /// Rewritten by the plan's engine (the root filesystem, a separate `/boot`).
    Rewrite(Engine),
}

impl PartitionAction {
    /// "copy", or the engine's name ("edit", "rebuild"): the JSON value and the plan
    /// text's verb.
    pub fn name(self) -> &'static str {
        match self {
            PartitionAction::Copy => "copy",
            PartitionAction::Rewrite(e) => e.name(),
        }
    }
}

impl Serialize for PartitionAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A separate `/boot` partition.
#[derive(Debug, Clone, Serialize)]
pub struct BootPlan {
    pub partition: u32,
    /// The device field of the root's `/etc/fstab` line that names it.
    pub fstab_device: String,
    pub filesystem: String,
    pub uuid: String,
}

/// The whole plan (the `--dry-run --json` document).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub image: String,
    pub root_partition: Option<u32>,
    pub filesystem: String,
    pub uuid: String,
    pub subroot: String,
    /// Shared directories that exist (bind-mounted from the physical root at boot).
    pub shared: Vec<String>,
    /// Shared directories asked for that the root filesystem lacks (left out).
    pub shared_missing: Vec<String>,
    pub moves: Vec<Move>,
    /// `--move` names that do not exist (skipped).
    pub skipped: Vec<String>,
    /// Top-level entries that stay where they are.
    #[serde(serialize_with = "crate::json::name_list")]
    pub kept: Vec<Named>,
    pub created: Vec<Created>,
    pub edits: Vec<Edit>,
    pub initrds: Vec<InitrdPlan>,
    pub flavour: String,
    pub installed: Vec<Installed>,
    pub partitions: Vec<PartitionPlan>,
    /// The separate `/boot` partition (rebuilt with its own identity), if fstab names one.
    pub boot_partition: Option<BootPlan>,
    /// Edits of boot configuration on FAT ESPs (carried out through the FAT writer).
    pub esp_edits: Vec<Edit>,
    /// The engine that rewrites the root filesystem (and a separate `/boot`): "edit" (a
    /// copy edited in place) or "rebuild" (mke2fs -d); see `engine.rs`. After a run, the
    /// one actually used ("rebuild" when an edit fell back to it).
    pub engine: Engine,
    /// Why the rebuild engine was taken (`None` for edit).
    pub engine_reason: Option<String>,
    /// What `inspect` sees of the installed system (`None` when it could not tell).
    pub system: Option<SystemSummary>,
}

/// The installed system as `subroot inspect` reports it, in brief: what is being moved.
#[derive(Debug, Clone, Serialize)]
pub struct SystemSummary {
    /// os-release's PRETTY_NAME (else NAME VERSION_ID).
    pub os: Option<String>,
    pub os_id: Option<String>,
    pub version_id: Option<String>,
    pub hostname: Option<String>,
    /// The boot loaders found ("grub-bios", "grub-efi", "systemd-boot", ...).
    pub boot_loaders: Vec<String>,
}

impl SystemSummary {
    /// The summary of an inspect report.
    pub fn of(r: &crate::ops::inspect::report::Report) -> SystemSummary {
        let os = r.os.as_ref();
        SystemSummary {
            os: os.and_then(|o| {
                o.pretty_name.clone().or_else(|| {
                    o.name.as_ref().map(|n| {
                        format!("{n} {}", o.version_id.as_deref().unwrap_or(""))
                            .trim()
                            .to_string()
                    })
                })
            }),
            os_id: os.and_then(|o| o.id.clone()),
            version_id: os.and_then(|o| o.version_id.clone()),
            hostname: r.hostname.clone(),
            boot_loaders: r.boot_loaders.iter().map(|l| l.kind.to_string()).collect(),
        }
    }
}

pub fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Dir => "dir",
        Kind::Symlink => "symlink",
        Kind::CharDevice => "char-device",
        Kind::BlockDevice => "block-device",
        Kind::Fifo => "fifo",
        Kind::Socket => "socket",
    }
}

/// `p` (relative to a filesystem's root) as an absolute path for messages.
pub(super) fn shown(p: &[u8]) -> String {
    format!("/{}", escape(p))
}

/// `p` (relative to a filesystem's root) as the absolute path a plan shows under `key`.
pub(super) fn named(key: &'static str, p: &[u8]) -> Named {
    Named::new(key, [b"/", p].concat())
}

/// `a/b` (`b` alone when `a` is empty).
pub(super) fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut p = a.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(b);
    p
}

/// Check a single-component name given on the command line.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        bail!("{what} {name:?} must be one directory name (no `/`, not `.` or `..`)");
    }
    Ok(())
}

/// Check the options that do not depend on the image (`--subroot`, `--shared`, `--move`
/// names), so a batch can refuse them before touching any image.
pub fn check_options(o: &PlanOptions) -> Result<()> {
    check_name("--subroot", &o.subroot)?;
    initrd::hooks::validate_shared(&o.shared).context("bad --shared")?;
    if o.shared.iter().any(|s| s == &o.subroot) {
        bail!("--subroot {:?} cannot also be shared", o.subroot);
    }
    for m in o.move_list.iter().flatten() {
        check_name("--move entry", m)?;
    }
    Ok(())
}

/// Read a small regular file of the tree as UTF-8 text.
pub fn read_text(tree: &ExtTree<Dev>, path: &[u8], size: u64) -> Result<String> {
    if size > MAX_CONFIG {
        bail!(
            "{} is {size} bytes, too large for a boot configuration file (limit {MAX_CONFIG})",
            shown(path)
        );
    }
    let mut r = tree
        .open_file(path)
        .with_context(|| format!("cannot open {}", shown(path)))?;
    let mut buf = Vec::with_capacity(size as usize);
    r.read_to_end(&mut buf)
        .with_context(|| format!("cannot read {}", shown(path)))?;
    String::from_utf8(buf)
        .map_err(|e| anyhow::anyhow!("{} is not UTF-8 text ({e}); not editing it", shown(path)))
}

/// A regular file of the tree as a device, read in place (an initrd: scanned by the plan,
/// appended to by the execution without copying it out).
pub fn file_device(tree: &ExtTree<Dev>, path: &[u8]) -> Result<Dev> {
    let fs = ExtFs::open_with(tree.fs().device().clone(), OpenOptions { force: true })
        .context("cannot re-open the filesystem")?;
    let mut abs = b"/".to_vec();
    abs.extend_from_slice(path);
    let dev = ExtFileDevice::open_path(Arc::new(fs), &abs)
        .with_context(|| format!("cannot open {}", shown(path)))?;
    Ok(Arc::new(dev))
}

impl Plan {
    /// The plan as text, one fact per line.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let part = match self.root_partition {
            Some(n) => format!("partition {n}"),
            None => "the whole disk".into(),
        };
        let _ = writeln!(
            s,
            "relayout of {} ({part}, {} UUID {}) into /{}",
            self.image, self.filesystem, self.uuid, self.subroot
        );
        if let Some(sys) = &self.system {
            let _ = writeln!(
                s,
                "  system  {}{}{}",
                sys.os.as_deref().unwrap_or("an unnamed Linux system"),
                sys.hostname
                    .as_deref()
                    .map_or(String::new(), |h| format!(", hostname {h}")),
                match sys.boot_loaders.is_empty() {
                    true => String::new(),
                    false => format!("; boot loaders: {}", sys.boot_loaders.join(", ")),
                }
            );
        }
        for m in &self.moves {
            let _ = writeln!(s, "  move    {} -> {} ({})", m.from, m.to, m.kind);
        }
        for k in &self.kept {
            let _ = writeln!(s, "  keep    {k}");
        }
        for k in &self.skipped {
            let _ = writeln!(s, "  skip    /{k} (listed in --move, does not exist)");
        }
        for k in &self.shared_missing {
            let _ = writeln!(s, "  skip    shared /{k} (does not exist)");
        }
        for c in &self.created {
            let _ = writeln!(
                s,
                "  create  {} ({} {} {}:{}; {})",
                c.path, c.kind, c.mode, c.uid, c.gid, c.why
            );
        }
        if let Some(b) = &self.boot_partition {
            let _ = writeln!(
                s,
                "  /boot   partition {} ({} UUID {}, fstab: {}): edited, identity kept",
                b.partition, b.filesystem, b.uuid, b.fstab_device
            );
        }
        let on = |p: Option<u32>| p.map_or(String::new(), |n| format!(" on partition {n}"));
        for e in &self.edits {
            e.write_text(&mut s, "edit", "");
        }
        for e in &self.esp_edits {
            e.write_text(&mut s, "esp", "; through the FAT writer");
        }
        for i in &self.initrds {
            let again = if i.hook_present {
                ", hook already present: replaced"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  initrd  {}{} ({}, {} bytes): add the subroot hook{again}",
                i.path,
                on(i.partition),
                i.flavour,
                i.size
            );
        }
        for i in &self.installed {
            let _ = writeln!(
                s,
                "  install {} ({}; {} hook)",
                i.path, i.action, self.flavour
            );
        }
        match &self.engine_reason {
            None => {
                let _ = writeln!(
                    s,
                    "  engine  {}: the filesystem is copied and edited in place (no file data moves)",
                    self.engine.name()
                );
            }
            Some(why) => {
                let _ = writeln!(
                    s,
                    "  engine  {}: mke2fs -d builds it anew ({why})",
                    self.engine.name()
                );
            }
        }
        for p in &self.partitions {
            let n = p
                .number
                .map_or("disk".to_string(), |n| format!("partition {n}"));
            let fs = p.filesystem.as_deref().unwrap_or("-");
            let _ = writeln!(
                s,
                "  {:7} {n} ({fs}, {} bytes at {})",
                p.action.name(),
                p.size,
                p.start
            );
        }
        s
    }
}
