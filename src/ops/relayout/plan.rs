//! The relayout plan: everything the command will do, computed from the input before
//! anything is written. The same [`Plan`] value is printed for `--dry-run` (as text or
//! JSON) and drives the execution (through the [`Layout`] it comes with), so what the
//! user sees is what happens.

use super::bootcfg::{self, ConfigKind, LineChange};
use super::engine::{Engine, EngineChoice};
use super::initrds;
use super::transform::{Added, Layout, NewContent};
use crate::json::Named;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, RawFile};
use subroot_formats::ext::ExtTree;
use subroot_formats::initrd::{self, Flavour};
use subroot_formats::manifest::escape;
use subroot_formats::tree::{Entry, Kind, Metadata};

/// The device type the root filesystem is read through.
pub type Dev = Arc<dyn BlockDevice>;

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
    #[serde(skip)]
    pub copy: PathBuf,
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
    /// "edit" or "rebuild" (the root filesystem, a separate `/boot`: by the plan's
    /// engine), or "copy" (byte for byte).
    pub action: String,
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
}

impl Plan {
    /// Take `choice` as the engine of every rewritten partition.
    pub fn set_engine(&mut self, choice: &EngineChoice) {
        self.engine = choice.engine;
        self.engine_reason = choice.reason.clone();
        for p in self.partitions.iter_mut().filter(|p| p.action != COPY) {
            p.action = choice.engine.name().into();
        }
    }
}

/// The action of a partition copied byte for byte.
pub const COPY: &str = "copy";

fn kind_word(k: Kind) -> &'static str {
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

fn shown(p: &[u8]) -> String {
    format!("/{}", escape(p))
}

/// `p` (relative to a filesystem's root) as the absolute path a plan shows under `key`.
fn named(key: &'static str, p: &[u8]) -> Named {
    Named::new(key, [b"/", p].concat())
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut p = a.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(b);
    p
}

/// Check a single-component name given on the command line.
fn check_name(what: &str, name: &str) -> Result<()> {
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

/// The separate `/boot` filesystem, as [`PlanInput`] gets it.
pub struct BootInput<'a> {
    pub tree: &'a ExtTree<Dev>,
    pub plan: BootPlan,
}

/// Inputs of [`compute`].
pub struct PlanInput<'a> {
    /// The separate `/boot` partition named by the root's `/etc/fstab`, opened.
    pub boot: Option<BootInput<'a>>,
    pub tree: &'a ExtTree<Dev>,
    /// "IMAGE" or "IMAGE partition N", for messages.
    pub name: String,
    pub image: String,
    pub root_partition: Option<u32>,
    pub filesystem: String,
    pub uuid: String,
    pub partitions: Vec<PartitionPlan>,
    pub opts: &'a PlanOptions,
    /// A private directory for initrd copies.
    pub work: &'a Path,
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

/// Copy a file of the tree to a host file; its length.
fn copy_out(tree: &ExtTree<Dev>, path: &[u8], to: &Path) -> Result<u64> {
    let mut r = tree
        .open_file(path)
        .with_context(|| format!("cannot open {}", shown(path)))?;
    let mut f =
        std::fs::File::create(to).with_context(|| format!("cannot create {}", to.display()))?;
    std::io::copy(&mut r, &mut f).with_context(|| format!("cannot copy {} out", shown(path)))
}

/// The layout of a separate `/boot`: nothing moves or is added, edited files and
/// initrds are replaced.
fn boot_layout(tree: &ExtTree<Dev>) -> Result<Layout> {
    Ok(Layout {
        root: tree
            .entry(b"")
            .context("cannot read the /boot partition's root directory")?,
        subroot: Vec::new(),
        top: tree
            .children(b"")
            .context("cannot list the /boot partition")?
            .into_iter()
            .map(|e| e.path)
            .collect(),
        moved: BTreeSet::new(),
        added: Vec::new(),
        replaced: BTreeMap::new(),
    })
}

/// Compute the plan and the layouts that carry it out (the root filesystem's, and the
/// separate `/boot`'s when there is one).
pub fn compute(inp: &PlanInput) -> Result<(Plan, Layout, Option<Layout>)> {
    let o = inp.opts;
    let tree = inp.tree;
    check_options(o)?;
    let lookup = |p: &[u8]| tree.entry(p).ok();
    let root = tree.entry(b"").context("cannot read the root directory")?;
    let top = tree
        .children(b"")
        .context("cannot list the root directory")?;
    let top_names: Vec<Vec<u8>> = top.iter().map(|e| e.path.clone()).collect();
    let sub = o.subroot.as_bytes().to_vec();

    // Already relayouted?
    let mut subroot_exists = false;
    if let Some(e) = top.iter().find(|e| e.path == sub) {
        let has_content = e.kind != Kind::Dir || !tree.children(&sub)?.is_empty();
        if has_content {
            let what = if e.kind == Kind::Dir {
                "exists and is not empty"
            } else {
                "exists (and is not a directory)"
            };
            refuse!(
                "{}: /{} {what}: the image looks already relayouted; \
                 choose another --subroot or remove it",
                inp.name,
                o.subroot
            );
        }
        subroot_exists = true;
    }

    // Shared directories.
    let mut shared = Vec::new();
    let mut shared_missing = Vec::new();
    for s in &o.shared {
        match top.iter().find(|e| e.path == s.as_bytes()) {
            Some(e) if e.kind == Kind::Dir => shared.push(e.clone()),
            Some(e) => bail!(
                "{}: shared /{s} is a {}, not a directory",
                inp.name,
                kind_word(e.kind)
            ),
            None => shared_missing.push(s.clone()),
        }
    }
    let shared_names: BTreeSet<Vec<u8>> = o.shared.iter().map(|s| s.as_bytes().to_vec()).collect();

    // What moves.
    let mut moved = BTreeSet::new();
    let mut skipped = Vec::new();
    match &o.move_list {
        Some(list) => {
            for m in list {
                check_name("--move entry", m)?;
                let b = m.as_bytes().to_vec();
                if shared_names.contains(&b) {
                    bail!("--move lists {m:?}, which is shared (--shared); it stays at the top");
                }
                if b == sub || m == "lost+found" {
                    bail!("--move cannot list {m:?}");
                }
                if top_names.contains(&b) {
                    moved.insert(b);
                } else {
                    skipped.push(m.clone());
                }
            }
        }
        None => {
            for n in &top_names {
                if !shared_names.contains(n) && n != &sub && n != b"lost+found" {
                    moved.insert(n.clone());
                }
            }
        }
    }
    if moved.is_empty() {
        bail!("{}: nothing to move into /{}", inp.name, o.subroot);
    }
    if moved.contains(&b"sysroot"[..]) {
        bail!("{}: /sysroot exists; it would collide with {}/sysroot where the physical root is mounted", inp.name, o.subroot);
    }
    let mut layout = Layout {
        root: root.clone(),
        subroot: sub.clone(),
        top: top_names.clone(),
        moved: moved.clone(),
        added: Vec::new(),
        replaced: BTreeMap::new(),
    };
    let moves: Vec<Move> = top
        .iter()
        .filter(|e| moved.contains(&e.path))
        .map(|e| Move {
            from: named("from", &e.path),
            to: named("to", &layout.output_path(&e.path)),
            kind: kind_word(e.kind).into(),
        })
        .collect();
    let kept: Vec<Named> = top
        .iter()
        .filter(|e| !moved.contains(&e.path))
        .map(|e| named("path", &e.path))
        .collect();

    // Entries to create.
    let mut created = Vec::new();
    let mut add = |layout: &mut Layout, entry: Entry, content: Option<Vec<u8>>, why: &str| {
        created.push(Created {
            path: named("path", &entry.path),
            kind: kind_word(entry.kind).into(),
            mode: format!("{:04o}", entry.meta.perm),
            uid: entry.meta.uid,
            gid: entry.meta.gid,
            why: why.into(),
        });
        layout.added.push(Added {
            entry,
            content: content.map(NewContent::Bytes),
        });
    };
    let dir_like = |path: Vec<u8>, meta: Metadata| Entry {
        path,
        kind: Kind::Dir,
        meta,
        size: 0,
        rdev: (0, 0),
        link_target: None,
        hardlink_id: None,
    };
    let plain = |perm: u32| Metadata {
        perm,
        uid: 0,
        gid: 0,
        atime: root.meta.mtime,
        mtime: root.meta.mtime,
        ctime: root.meta.mtime,
        crtime: root.meta.crtime.map(|_| root.meta.mtime),
        xattrs: Vec::new(),
        flags: None,
    };
    if !subroot_exists {
        add(
            &mut layout,
            dir_like(sub.clone(), root.meta.clone()),
            None,
            "the subroot (owner, mode and times of /)",
        );
    }
    for s in &shared {
        let mp = join(&sub, &s.path);
        add(
            &mut layout,
            dir_like(mp.clone(), s.meta.clone()),
            None,
            &format!("mount point for the shared {}", shown(&s.path)),
        );
        let empty = Entry {
            path: join(&mp, b"EMPTY"),
            kind: Kind::File,
            meta: plain(0o644),
            size: 0,
            rdev: (0, 0),
            link_target: None,
            hardlink_id: None,
        };
        add(
            &mut layout,
            empty,
            Some(Vec::new()),
            "marks the mount point",
        );
    }
    add(
        &mut layout,
        dir_like(join(&sub, b"sysroot"), plain(0o755)),
        None,
        "where the hook puts the physical root",
    );

    // Where the boot files are: the root filesystem's /boot, or the separate /boot
    // partition (where the boot loader's paths start at its root).
    let mut boot_out = match &inp.boot {
        Some(b) => Some(boot_layout(b.tree)?),
        None => None,
    };
    let (btree, bprefix, bpart): (&ExtTree<Dev>, &[u8], Option<u32>) = match &inp.boot {
        Some(b) => (b.tree, b"", Some(b.plan.partition)),
        None => (tree, b"boot/", None),
    };
    let blookup = |p: &[u8]| btree.entry(p).ok();
    let bpath = |p: &[u8]| [bprefix, p].concat();

    // Boot configuration: (path, kind, on the boot filesystem).
    let key = "subroot";
    let mut edits = Vec::new();
    let mut initrd_paths: Vec<Vec<u8>> = Vec::new();
    let mut configs: Vec<(Vec<u8>, ConfigKind, bool)> = Vec::new();
    for p in [&b"grub/grub.cfg"[..], b"grub2/grub.cfg"] {
        configs.push((bpath(p), ConfigKind::GrubCfg, true));
    }
    if let Ok(list) = btree.children(&bpath(b"loader/entries")) {
        for e in list {
            if e.name().ends_with(b".conf") {
                configs.push((e.path.clone(), ConfigKind::BlsEntry, true));
            }
        }
    }
    configs.push((b"etc/default/grub".to_vec(), ConfigKind::DefaultGrub, false));
    configs.push((
        b"etc/kernel/cmdline".to_vec(),
        ConfigKind::KernelCmdline,
        false,
    ));
    for (path, kind, on_boot) in configs {
        let ftree = if on_boot { btree } else { tree };
        let Some(e) = ftree.entry(&path).ok() else {
            continue;
        };
        if e.kind != Kind::File {
            continue;
        }
        let text = read_text(ftree, &path, e.size)?;
        match kind {
            ConfigKind::GrubCfg => initrd_paths.extend(
                initrds::grub_initrds(&text)
                    .iter()
                    .filter_map(|p| initrds::resolve(p, &blookup)),
            ),
            ConfigKind::BlsEntry => initrd_paths.extend(
                initrds::bls_initrds(&text)
                    .iter()
                    .filter_map(|p| initrds::resolve(p, &blookup)),
            ),
            _ => {}
        }
        if let Some((new, changes)) = bootcfg::edit(kind, &text, key, &o.subroot) {
            let new = NewContent::Bytes(new.into_bytes());
            match (&mut boot_out, on_boot) {
                (Some(bl), true) => {
                    edits.push(Edit {
                        path: named("path", &path),
                        partition: bpart,
                        what: kind,
                        changes,
                    });
                    bl.replaced.insert(path, new);
                }
                _ => {
                    let out = layout.output_path(&path);
                    edits.push(Edit {
                        path: named("path", &out),
                        partition: None,
                        what: kind,
                        changes,
                    });
                    layout.replaced.insert(out, new);
                }
            }
        }
    }

    // Initrds.
    let bdir = bprefix.strip_suffix(b"/").unwrap_or(bprefix);
    if let Ok(list) = btree.children(bdir) {
        for e in list {
            if e.kind == Kind::File && initrds::is_initrd_name(e.name()) {
                initrd_paths.push(e.path.clone());
            }
        }
    }
    let initrd_paths = initrds::unique(initrd_paths);
    if initrd_paths.is_empty() {
        refuse!(
            "{}: no initrd found (looked for /boot/initrd.img-*, /boot/initramfs-*.img and the \
             initrd lines of GRUB and boot loader entries{}); relayout needs an initrd to enter \
             the subroot at boot",
            inp.name,
            bpart.map_or(String::new(), |n| format!(", on the /boot partition {n}"))
        );
    }
    let mut initrd_plans = Vec::new();
    let mut flavours = BTreeSet::new();
    let existing: Vec<String> = shared.iter().map(|e| escape(&e.path)).collect();
    for (i, p) in initrd_paths.iter().enumerate() {
        let copy = inp.work.join(format!("initrd-{i}"));
        let size = copy_out(btree, p, &copy)?;
        let dev = RawFile::open(&copy)?;
        let sc = initrd::scan::scan(&dev)
            .with_context(|| format!("{}: cannot read the initrd {}", inp.name, shown(p)))?;
        let flavour = sc.flavour();
        if flavour == Flavour::Other {
            refuse!(
                "{}: the initrd {} is of an unknown flavour ({}); relayout supports \
                 initramfs-tools and dracut initrds",
                inp.name,
                shown(p),
                sc.describe()
            );
        }
        let present = sc.hook_present();
        if present && !o.refresh_hook {
            refuse!(
                "{}: the initrd {} already has the subroot hook: the image looks already \
                 relayouted (use --refresh-hook to go on anyway)",
                inp.name,
                shown(p)
            );
        }
        flavours.insert(flavour.name());
        let path = match bpart {
            Some(_) => named("path", p),
            None => named("path", &layout.output_path(p)),
        };
        initrd_plans.push(InitrdPlan {
            path,
            partition: bpart,
            flavour: flavour.name().into(),
            size,
            hook_present: present,
            input_path: p.clone(),
            copy,
        });
    }
    if flavours.len() > 1 {
        refuse!(
            "{}: the initrds are of different flavours ({}); not supported",
            inp.name,
            flavours.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let flavour = if flavours.contains("dracut") {
        Flavour::Dracut
    } else {
        Flavour::InitramfsTools
    };

    // The hook installed into the system, for later initrd builds.
    let mut installed = Vec::new();
    for f in initrd::installed_files(flavour, &existing)? {
        let input = f.path.trim_start_matches('/').as_bytes().to_vec();
        let out = layout.output_path(&input);
        match lookup(&input) {
            Some(e) if e.kind == Kind::File => {
                layout
                    .replaced
                    .insert(out.clone(), NewContent::Bytes(f.content));
                installed.push(Installed {
                    path: shown(&out),
                    action: "replace".into(),
                });
            }
            Some(e) => bail!(
                "{}: {} is a {}; cannot install the hook there",
                inp.name,
                shown(&input),
                kind_word(e.kind)
            ),
            None => {
                // Missing parents first.
                let comps: Vec<&[u8]> = input.split(|&b| b == b'/').collect();
                let mut prefix = Vec::new();
                for c in &comps[..comps.len().saturating_sub(1)] {
                    prefix = join(&prefix, c);
                    let out_dir = layout.output_path(&prefix);
                    let planned = layout.added.iter().any(|a| a.entry.path == out_dir);
                    if lookup(&prefix).is_none() && !planned {
                        add(
                            &mut layout,
                            dir_like(out_dir, plain(0o755)),
                            None,
                            "parent of the installed hook",
                        );
                    }
                }
                let entry = Entry {
                    path: out.clone(),
                    kind: Kind::File,
                    meta: plain(f.mode & 0o7777),
                    size: f.content.len() as u64,
                    rdev: (0, 0),
                    link_target: None,
                    hardlink_id: None,
                };
                add(
                    &mut layout,
                    entry,
                    Some(f.content),
                    "the subroot hook for later initrd builds",
                );
                installed.push(Installed {
                    path: shown(&out),
                    action: "add".into(),
                });
            }
        }
    }

    Ok((
        Plan {
            image: inp.image.clone(),
            root_partition: inp.root_partition,
            filesystem: inp.filesystem.clone(),
            uuid: inp.uuid.clone(),
            subroot: o.subroot.clone(),
            shared: existing,
            shared_missing,
            moves,
            skipped,
            kept,
            created,
            edits,
            initrds: initrd_plans,
            flavour: flavour.name().into(),
            installed,
            partitions: inp.partitions.clone(),
            boot_partition: inp.boot.as_ref().map(|b| b.plan.clone()),
            esp_edits: Vec::new(),
            engine: Engine::Rebuild,
            engine_reason: None,
        },
        layout,
        boot_out,
    ))
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
            let _ = writeln!(
                s,
                "  edit    {}{} ({})",
                e.path,
                on(e.partition),
                e.what.describe()
            );
            for c in &e.changes {
                if !c.old.is_empty() {
                    let _ = writeln!(s, "            {:>4}- {}", c.line, c.old);
                }
                let _ = writeln!(s, "            {:>4}+ {}", c.line, c.new);
            }
        }
        for e in &self.esp_edits {
            let _ = writeln!(
                s,
                "  esp     {}{} ({}; through the FAT writer)",
                e.path,
                on(e.partition),
                e.what.describe()
            );
            for c in &e.changes {
                if !c.old.is_empty() {
                    let _ = writeln!(s, "            {:>4}- {}", c.line, c.old);
                }
                let _ = writeln!(s, "            {:>4}+ {}", c.line, c.new);
            }
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
                p.action, p.size, p.start
            );
        }
        s
    }
}
