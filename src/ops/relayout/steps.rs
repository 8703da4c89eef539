//! The relayout plan built in steps from the image's one survey and the filesystems opened
//! in it. Each step adds one part: what moves into the subroot and what is created
//! ([`root_moves`]), the boot configuration edits ([`boot_configs`]), the initrds that get
//! the hook ([`initrds`]: scanned where they lie, nothing is copied out while planning),
//! the hook installed for later initrd builds ([`install_hook`]), the engine ([`engine`]),
//! the partitions and what happens to each ([`partitions`]); [`build`] assembles the one
//! [`Plan`] value from them, with the [`Layout`]s and ESP edits that carry it out.

use super::bootcfg::{self, ParamEdit};
use super::bootfiles::{self, ConfigFile};
use super::bootpart::Located;
use super::esp::{self, EspEdit};
use super::plan::{
    check_name, check_options, file_device, join, kind_word, named, shown, BootPlan, Created, Dev,
    Edit, InitrdPlan, Installed, Move, PartitionAction, PartitionPlan, Plan, PlanOptions,
    SystemSummary,
};
use super::transform::{Added, Layout, NewContent};
use crate::edit::engine::{self, Engine, EngineChoice};
use crate::json::Named;
use crate::open::survey::{ImageSurvey, Slot};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use subroot_e2fs::writer::uuid_string;
use subroot_formats::ext::ExtTree;
use subroot_formats::initrd::{self, Flavour};
use subroot_formats::manifest::escape;
use subroot_formats::tree::{Entry, Kind, Metadata};

/// The separate `/boot` partition, located in the survey and opened.
pub struct BootInput<'a> {
    pub located: &'a Located,
    pub tree: &'a ExtTree<Dev>,
}

/// What the plan is built from.
pub struct Inputs<'a> {
    pub survey: &'a ImageSurvey,
    /// The root filesystem, opened.
    pub tree: &'a ExtTree<Dev>,
    /// Its partition (`None`: the whole disk).
    pub root_number: Option<u32>,
    /// "IMAGE" or "IMAGE partition N", for messages.
    pub name: String,
    pub boot: Option<BootInput<'a>>,
    pub opts: &'a PlanOptions,
    /// The engine asked for (`None`: auto).
    pub engine: Option<Engine>,
}

/// The plan and what carries it out.
pub struct Planned {
    pub plan: Plan,
    /// The root filesystem's layout.
    pub layout: Layout,
    /// The separate `/boot`'s layout.
    pub boot_layout: Option<Layout>,
    /// Files to edit on FAT ESPs (the plan shows them as `esp_edits`).
    pub esp_edits: Vec<EspEdit>,
}

/// Build the plan of a relayout, step by step.
pub fn build(inp: &Inputs) -> Result<Planned> {
    let o = inp.opts;
    check_options(o)?;
    let sb = inp.tree.fs().superblock();
    let mut root = root_moves(inp.tree, o, &inp.name)?;
    let mut boot_layout = match &inp.boot {
        Some(b) => Some(unchanged_layout(b.tree)?),
        None => None,
    };
    // Where the boot files are: the root filesystem's /boot, or the separate /boot
    // partition (where the boot loader's paths start at its root).
    let (btree, bprefix, bpart): (&ExtTree<Dev>, &[u8], Option<u32>) = match &inp.boot {
        Some(b) => (b.tree, b"", Some(b.located.partition.number)),
        None => (inp.tree, b"boot/", None),
    };
    let found = bootfiles::find(inp.tree, btree, bprefix, &[Vec::new()])?;
    let edits = boot_configs(
        found.configs,
        &mut root.layout,
        boot_layout.as_mut().zip(bpart),
        o,
    );
    let (initrd_plans, flavour) = initrds(&found.initrds, btree, bpart, &root.layout, inp)?;
    let installed = install_hook(&mut root, flavour, &inp.name)?;
    let chosen = engine(inp)?;
    let partitions = partitions(inp.survey, &[inp.root_number, bpart], chosen.engine);
    let esp_edits = esp::edit_esp_files(
        inp.survey,
        &ParamEdit::subroot(&o.subroot),
        &inp.survey.name(),
    )?;
    let plan = Plan {
        image: inp.survey.name(),
        root_partition: inp.root_number,
        filesystem: sb.kind().to_string(),
        uuid: uuid_string(&sb.uuid),
        subroot: o.subroot.clone(),
        shared: root.shared.iter().map(|e| escape(&e.path)).collect(),
        shared_missing: root.shared_missing,
        moves: root.moves,
        skipped: root.skipped,
        kept: root.kept,
        created: root.created,
        edits,
        initrds: initrd_plans,
        flavour: flavour.name().into(),
        installed,
        partitions,
        boot_partition: inp.boot.as_ref().map(|b| BootPlan {
            partition: b.located.partition.number,
            fstab_device: b.located.spec.clone(),
            filesystem: b.located.fs.kind.clone(),
            uuid: uuid_string(&b.tree.fs().superblock().uuid),
        }),
        esp_edits: esp_edits.iter().map(|e| e.edit.clone()).collect(),
        engine: chosen.engine,
        engine_reason: chosen.reason,
        system: system(inp.survey),
    };
    Ok(Planned {
        plan,
        layout: root.layout,
        boot_layout,
        esp_edits,
    })
}

/// The root filesystem's part of the plan: its layout and the plan entries about it.
struct RootPart<'a> {
    tree: &'a ExtTree<Dev>,
    layout: Layout,
    /// The shared directories that exist.
    shared: Vec<Entry>,
    shared_missing: Vec<String>,
    moves: Vec<Move>,
    skipped: Vec<String>,
    kept: Vec<Named>,
    created: Vec<Created>,
}

impl RootPart<'_> {
    /// Create `entry` (with `content` for a file), saying `why`.
    fn add(&mut self, entry: Entry, content: Option<Vec<u8>>, why: &str) {
        self.created.push(Created {
            path: named("path", &entry.path),
            kind: kind_word(entry.kind).into(),
            mode: format!("{:04o}", entry.meta.perm),
            uid: entry.meta.uid,
            gid: entry.meta.gid,
            why: why.into(),
        });
        self.layout.added.push(Added {
            entry,
            content: content.map(NewContent::Bytes),
        });
    }

    /// Metadata of a created entry: root-owned, `perm`, the times of `/`'s last change.
    fn plain(&self, perm: u32) -> Metadata {
        let t = self.layout.root.meta.mtime;
        Metadata {
            perm,
            uid: 0,
            gid: 0,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: self.layout.root.meta.crtime.map(|_| t),
            xattrs: Vec::new(),
            flags: None,
        }
    }
}

/// An entry of `kind` at `path` with `meta` (no content, no link).
fn entry(path: Vec<u8>, kind: Kind, meta: Metadata) -> Entry {
    Entry {
        path,
        kind,
        meta,
        size: 0,
        rdev: (0, 0),
        link_target: None,
        hardlink_id: None,
    }
}

/// Step 1: what moves into the subroot, what stays, the shared directories, and the
/// entries created for them (the subroot, the mount points, `sysroot`). Refuses an image
/// that looks relayouted already.
fn root_moves<'a>(tree: &'a ExtTree<Dev>, o: &PlanOptions, name: &str) -> Result<RootPart<'a>> {
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
                "{name}: /{} {what}: the image looks already relayouted; \
                 choose another --subroot or remove it",
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
                "{name}: shared /{s} is a {}, not a directory",
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
        bail!("{name}: nothing to move into /{}", o.subroot);
    }
    if moved.contains(&b"sysroot"[..]) {
        bail!(
            "{name}: /sysroot exists; it would collide with {}/sysroot where the physical root \
             is mounted",
            o.subroot
        );
    }
    let layout = Layout {
        root: root.clone(),
        subroot: sub.clone(),
        top: top_names,
        moved: moved.clone(),
        added: Vec::new(),
        replaced: BTreeMap::new(),
    };
    let moves = top
        .iter()
        .filter(|e| moved.contains(&e.path))
        .map(|e| Move {
            from: named("from", &e.path),
            to: named("to", &layout.output_path(&e.path)),
            kind: kind_word(e.kind).into(),
        })
        .collect();
    let kept = top
        .iter()
        .filter(|e| !moved.contains(&e.path))
        .map(|e| named("path", &e.path))
        .collect();
    let mut part = RootPart {
        tree,
        layout,
        shared,
        shared_missing,
        moves,
        skipped,
        kept,
        created: Vec::new(),
    };

    // Entries to create.
    if !subroot_exists {
        part.add(
            entry(sub.clone(), Kind::Dir, root.meta.clone()),
            None,
            "the subroot (owner, mode and times of /)",
        );
    }
    for s in part.shared.clone() {
        let mp = join(&sub, &s.path);
        part.add(
            entry(mp.clone(), Kind::Dir, s.meta.clone()),
            None,
            &format!("mount point for the shared {}", shown(&s.path)),
        );
        let meta = part.plain(0o644);
        part.add(
            entry(join(&mp, b"EMPTY"), Kind::File, meta),
            Some(Vec::new()),
            "marks the mount point",
        );
    }
    let meta = part.plain(0o755);
    part.add(
        entry(join(&sub, b"sysroot"), Kind::Dir, meta),
        None,
        "where the hook puts the physical root",
    );
    Ok(part)
}

/// The layout of a separate `/boot`: nothing moves or is added; the boot configuration
/// edits and the initrds replace files in it.
fn unchanged_layout(tree: &ExtTree<Dev>) -> Result<Layout> {
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

/// Step 2: `subroot=DIR` on the kernel command lines of the boot configuration files,
/// replacing them in the root's `layout` or (for files on it) the separate `/boot`'s,
/// with the number of its partition.
fn boot_configs(
    configs: Vec<ConfigFile>,
    layout: &mut Layout,
    mut boot: Option<(&mut Layout, u32)>,
    o: &PlanOptions,
) -> Vec<Edit> {
    let mut edits = Vec::new();
    for c in configs {
        let Some((new, changes)) = bootcfg::edit(c.kind, &c.text, &ParamEdit::subroot(&o.subroot))
        else {
            continue;
        };
        let new = NewContent::Bytes(new.into_bytes());
        let (path, partition) = match (&mut boot, c.on_boot) {
            (Some((bl, n)), true) => {
                bl.replaced.insert(c.path.clone(), new);
                (c.path, Some(*n))
            }
            _ => {
                let out = layout.output_path(&c.path);
                layout.replaced.insert(out.clone(), new);
                (out, None)
            }
        };
        edits.push(Edit {
            path: named("path", &path),
            partition,
            what: c.kind,
            changes,
        });
    }
    edits
}

/// Step 3: the initrds that get the hook, scanned where they lie in `btree` (the root
/// filesystem, or the separate `/boot` of partition `bpart`), and their one flavour.
/// Refuses no initrd, an unknown flavour, mixed flavours, and (unless `--refresh-hook`)
/// a hook already there.
fn initrds(
    paths: &[Vec<u8>],
    btree: &ExtTree<Dev>,
    bpart: Option<u32>,
    layout: &Layout,
    inp: &Inputs,
) -> Result<(Vec<InitrdPlan>, Flavour)> {
    let name = &inp.name;
    if paths.is_empty() {
        refuse!(
            "{name}: no initrd found (looked for /boot/initrd.img-*, /boot/initramfs-*.img and the \
             initrd lines of GRUB and boot loader entries{}); relayout needs an initrd to enter \
             the subroot at boot",
            bpart.map_or(String::new(), |n| format!(", on the /boot partition {n}"))
        );
    }
    let mut plans = Vec::new();
    let mut flavours = BTreeSet::new();
    for p in paths {
        let dev = file_device(btree, p)?;
        let size = dev.len();
        let sc = initrd::scan::scan(&dev)
            .with_context(|| format!("{name}: cannot read the initrd {}", shown(p)))?;
        let flavour = sc.flavour();
        if flavour == Flavour::Other {
            refuse!(
                "{name}: the initrd {} is of an unknown flavour ({}); relayout supports \
                 initramfs-tools and dracut initrds",
                shown(p),
                sc.describe()
            );
        }
        let present = sc.hook_present();
        if present && !inp.opts.refresh_hook {
            refuse!(
                "{name}: the initrd {} already has the subroot hook: the image looks already \
                 relayouted (use --refresh-hook to go on anyway)",
                shown(p)
            );
        }
        flavours.insert(flavour.name());
        let path = match bpart {
            Some(_) => named("path", p),
            None => named("path", &layout.output_path(p)),
        };
        plans.push(InitrdPlan {
            path,
            partition: bpart,
            flavour: flavour.name().into(),
            size,
            hook_present: present,
            input_path: p.clone(),
            scan: Arc::new(sc),
        });
    }
    if flavours.len() > 1 {
        refuse!(
            "{name}: the initrds are of different flavours ({}); not supported",
            flavours.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let flavour = if flavours.contains("dracut") {
        Flavour::Dracut
    } else {
        Flavour::InitramfsTools
    };
    Ok((plans, flavour))
}

/// Step 4: the hook's files installed into the system inside the subroot, for later
/// initrd builds of `flavour` (replacing a file there, or added with missing parents).
fn install_hook(root: &mut RootPart, flavour: Flavour, name: &str) -> Result<Vec<Installed>> {
    let tree = root.tree;
    let lookup = |p: &[u8]| tree.entry(p).ok();
    let existing: Vec<String> = root.shared.iter().map(|e| escape(&e.path)).collect();
    let mut installed = Vec::new();
    for f in initrd::installed_files(flavour, &existing)? {
        let input = f.path.trim_start_matches('/').as_bytes().to_vec();
        let out = root.layout.output_path(&input);
        match lookup(&input) {
            Some(e) if e.kind == Kind::File => {
                root.layout
                    .replaced
                    .insert(out.clone(), NewContent::Bytes(f.content));
                installed.push(Installed {
                    path: shown(&out),
                    action: "replace".into(),
                });
            }
            Some(e) => bail!(
                "{name}: {} is a {}; cannot install the hook there",
                shown(&input),
                kind_word(e.kind)
            ),
            None => {
                // Missing parents first.
                let comps: Vec<&[u8]> = input.split(|&b| b == b'/').collect();
                let mut prefix = Vec::new();
                for c in &comps[..comps.len().saturating_sub(1)] {
                    prefix = join(&prefix, c);
                    let out_dir = root.layout.output_path(&prefix);
                    let planned = root.layout.added.iter().any(|a| a.entry.path == out_dir);
                    if lookup(&prefix).is_none() && !planned {
                        let meta = root.plain(0o755);
                        root.add(
                            entry(out_dir, Kind::Dir, meta),
                            None,
                            "parent of the installed hook",
                        );
                    }
                }
                let mut file = entry(out.clone(), Kind::File, root.plain(f.mode & 0o7777));
                file.size = f.content.len() as u64;
                root.add(
                    file,
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
    Ok(installed)
}

/// Step 5: the engine for the root and a separate `/boot` alike: the one asked for, or
/// the edit engine unless either filesystem refuses it (the reason says which).
fn engine(inp: &Inputs) -> Result<EngineChoice> {
    let chosen = engine::choose(inp.engine, &inp.tree.fs().device().clone(), &inp.name)?;
    match (chosen.engine, &inp.boot) {
        (Engine::Edit, Some(b)) => {
            let c = engine::choose(inp.engine, &b.located.device, "the /boot filesystem")?;
            Ok(EngineChoice {
                engine: c.engine,
                reason: c.reason.map(|r| format!("the /boot filesystem: {r}")),
            })
        }
        _ => Ok(chosen),
    }
}

/// Step 6: every partition of the disk (or the whole disk, `None`) with what happens to
/// it: those in `rewritten` (the root's, a separate `/boot`'s) rewritten by `engine`, the
/// others copied byte for byte.
fn partitions(
    survey: &ImageSurvey,
    rewritten: &[Option<u32>],
    engine: Engine,
) -> Vec<PartitionPlan> {
    survey
        .slots
        .iter()
        .map(|slot| {
            let number = slot.partition.as_ref().map(|p| p.number);
            let (start, size) = slot
                .partition
                .as_ref()
                .map_or((0, survey.disk.len()), |p| (p.start, p.size));
            PartitionPlan {
                number,
                start,
                size,
                filesystem: content_of(slot),
                action: match rewritten.contains(&number) {
                    true => PartitionAction::Rewrite(engine),
                    false => PartitionAction::Copy,
                },
            }
        })
        .collect()
}

/// What a place of the disk holds, as the plan names it: the filesystem sniffing found, or
/// `LVM2_member` for an LVM-typed partition without a PV label recognised.
pub fn content_of(slot: &Slot) -> Option<String> {
    let lvm_type = slot
        .partition
        .as_ref()
        .is_some_and(|p| subroot_formats::table::types::is_lvm(&p.type_code));
    slot.fs
        .as_ref()
        .map(|f| f.kind.clone())
        .or(lvm_type.then(|| "LVM2_member".to_string()))
}

/// Step 7: what `inspect` sees of the system being moved (its OS, hostname, boot
/// loaders), from the same survey; `None` when it cannot tell.
fn system(survey: &ImageSurvey) -> Option<SystemSummary> {
    crate::ops::inspect::gather_in(survey, &survey.name(), crate::ops::inspect::Depth::Boot)
        .ok()
        .map(|r| SystemSummary::of(&r))
}

#[cfg(test)]
mod tests {
    //! The partition table is read once: a disk made by sfdisk, mkfs.fat, mcopy, cpio and
    //! mke2fs (an ESP with a GRUB configuration, a separate ext4 /boot named by the root's
    //! fstab, the demo root), read through a device that counts the reads of the table's
    //! bytes: the MBR's from its disk signature on (offset 440; the boot code before it is
    //! what inspect's boot loader probe reads) and LBA 1 (a GPT header).
    use super::*;
    use crate::open::select::{select_in, Which};
    use std::path::Path;
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use subroot_formats::block::{BlockDevice, RawFile};
    use subroot_formats::image::ImageFormat;

    const BOOT_UUID: &str = "0b007b00-1111-4222-8333-444455556666";

    struct CountingTableReads {
        dev: Dev,
        reads: AtomicUsize,
    }

    impl BlockDevice for CountingTableReads {
        fn len(&self) -> u64 {
            self.dev.len()
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> subroot_formats::Result<()> {
            if offset < 1024 && offset + buf.len() as u64 > 440 {
                self.reads.fetch_add(1, Ordering::Relaxed);
            }
            self.dev.read_at(buf, offset)
        }
    }

    fn disk(dir: &Path) -> std::path::PathBuf {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
        let script = format!(
            r#"cd {d}
            cp -a {data}/demo-root root && rm -rf root/boot && mkdir root/boot
            printf 'LABEL=demo-root / ext4 defaults 0 1\nUUID={BOOT_UUID} /boot ext4 defaults 0 2\n' > root/etc/fstab
            mkdir -p boot/grub
            printf "menuentry 'Demo' {{\n\tlinux /vmlinuz root=LABEL=demo-root ro\n\tinitrd /initrd.img-6\n}}\n" > boot/grub/grub.cfg
            cp boot/grub/grub.cfg grub.cfg
            (cd {data}/demo-initrd && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -n) > boot/initrd.img-6
            truncate -s 64M disk.raw
            printf 'label: dos\nstart=2048, size=16384, type=ef\nstart=18432, size=32768, type=83\nstart=51200, type=83\n' | sfdisk -q disk.raw
            truncate -s 8M esp && mkfs.fat -n ESP esp >/dev/null && mmd -i esp ::/EFI ::/EFI/demo
            mcopy -i esp grub.cfg ::/EFI/demo/grub.cfg
            dd if=esp of=disk.raw bs=1M seek=1 conv=notrunc status=none
            mke2fs -q -F -t ext4 -U {BOOT_UUID} -E offset=$((18432*512)) -d boot disk.raw 16M
            mke2fs -q -F -t ext4 -L demo-root -E offset=$((51200*512)) -d root disk.raw 39M"#,
            d = dir.display()
        );
        let st = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .status()
            .expect("bash");
        assert!(st.success(), "cannot make the test disk");
        dir.join("disk.raw")
    }

    #[test]
    fn the_partition_table_is_read_once() {
        for t in ["sfdisk", "mke2fs", "mkfs.fat", "mcopy", "cpio"] {
            if !subroot_test_support::need(t, "the_partition_table_is_read_once") {
                return;
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let img = disk(dir.path());
        let counted = Arc::new(CountingTableReads {
            dev: Arc::new(RawFile::open(&img).expect("open")),
            reads: AtomicUsize::new(0),
        });
        let survey = ImageSurvey::of(&img, ImageFormat::Raw, counted.clone()).expect("survey");
        let by_survey = counted.reads.load(Ordering::Relaxed);
        assert!(by_survey > 0, "the survey read no table");
        let ctx = crate::Ctx {
            quiet: true,
            verbose: 0,
            mke2fs: None,
        };
        let sel = select_in(&survey, Which::default(), &ctx).expect("select");
        let tree = ExtTree::open(sel.device.clone(), Default::default()).expect("root");
        let root_number = sel.partition.as_ref().map(|p| p.number);
        let located =
            super::super::bootpart::locate(&survey, &tree, b"etc/fstab", root_number, "disk.raw")
                .expect("locate")
                .expect("a separate /boot");
        let boot_tree = ExtTree::open(located.device.clone(), Default::default()).expect("boot");
        let opts =
            PlanOptions::new("r0", &["boot".into(), "var".into()], None, false).expect("options");
        let planned = build(&Inputs {
            survey: &survey,
            tree: &tree,
            root_number,
            name: "disk.raw partition 3".into(),
            boot: Some(BootInput {
                located: &located,
                tree: &boot_tree,
            }),
            opts: &opts,
            engine: Some(Engine::Rebuild),
        })
        .expect("plan");
        // Every part that looks at partitions was planned: the root, the /boot partition,
        // the ESP edit, inspect's summary.
        let plan = &planned.plan;
        assert_eq!(plan.root_partition, Some(3));
        assert_eq!(plan.boot_partition.as_ref().map(|b| b.partition), Some(2));
        assert_eq!(plan.esp_edits.len(), 1, "{:?}", plan.esp_edits);
        assert!(plan.system.is_some());
        let actions: Vec<&str> = plan.partitions.iter().map(|p| p.action.name()).collect();
        assert_eq!(actions, ["copy", "rebuild", "rebuild"]);
        assert_eq!(
            counted.reads.load(Ordering::Relaxed),
            by_survey,
            "the partition table was read again after the survey"
        );
    }
}
