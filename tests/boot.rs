//! The proof: a real Debian image, relayouted by `subroot relayout` as an unprivileged
//! user, boots into `r0` under QEMU. Opt-in (`SUBROOT_BOOT_TESTS=1`), on under `CI=true`;
//! elsewhere each test says loudly that it was skipped.
//!
//! The image comes from `scripts/debian-image.sh FLAVOUR` (built as root with mmdebstrap,
//! cached): `initramfs-tools` (MBR, one ext4 root), `dracut` (GPT, ESP, ext4 root) and
//! `bootpart` (MBR, ext4 `/boot` partition named by the root's fstab, ext4 root). The
//! kernel and initrd are read out of the OUTPUT image with `subroot ls` / `subroot cat`
//! (from the root's `/boot`, which is shared and stays at the top, or from the top of the
//! separate `/boot` partition), after checking there that the initrd now holds the hook
//! (`subroot initrd ls`) and that a `grub.cfg`, if any, boots `subroot=r0`. The guest boots
//! with `root=UUID=… ro subroot=r0` through `scripts/boot.sh`, and the judge is the
//! guest's own report on the serial console (`subroot-marker.service`): the mountinfo line
//! of `/` has root `/r0`; those of `/var`, `/home` have roots `/var`, `/home`; the topmost
//! one of `/boot` has root `/boot` (shared from the root) or `/` (the separate partition
//! mounted by fstab); all three are writable; the normal target was reached
//! (`SUBROOT-MARKER-END`); and `update-initramfs` / `dracut` in the guest kept the hook
//! (`HOOK-KEPT`).
//!
//! The hook is appended to the initrd as a segment of its own (`initrd examine` shows the
//! role `subroot-hook` behind the untouched main segment). Two more variants rewrite the
//! initramfs-tools image's initrd before the relayout (GNU tools build it, `subroot
//! copy-in` puts it in place): the main archive recompressed with gzip, and an
//! uncompressed early-microcode segment put in front of it. Two more write the result
//! other ways: as a qcow2 overlay backed by the input (`--overlay`), and into a copy of
//! the input itself (`--in-place`); QEMU boots those too.

mod common;

use common::relayout::relayout_plan;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT_UUID: &str = "5e1f0b0a-7c3d-4e2a-9b1c-2d3e4f5a6b7c";

fn enabled(test: &str) -> bool {
    let on = std::env::var("SUBROOT_BOOT_TESTS").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true");
    if !on {
        eprintln!("SKIPPED {test}: boot tests are opt-in (SUBROOT_BOOT_TESTS=1; on under CI=true)");
    }
    on
}

/// The bytes of `path` inside partition `part` of `image`, read with `subroot cat`.
fn cat(dir: &Path, image: &Path, part: &str, path: &str) -> Vec<u8> {
    let out = subroot_in(dir, &["-q", "cat", "-p", part, s(image), path]);
    assert!(
        out.status.success(),
        "subroot cat -p {part} {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Where an image keeps its kernel, initrds and boot configuration.
#[derive(Clone, Copy, Debug)]
enum Boot {
    /// In the root filesystem's `/boot` (shared into the subroot, stays at the top).
    OnRoot,
    /// At the top of partition N, which the root's `/etc/fstab` mounts on `/boot`.
    Partition(u32),
}

/// The files the boot loader reads: a partition and the directory in it.
struct BootFiles {
    part: String,
    /// `/boot`, or `` for the top of a separate `/boot` partition.
    dir: &'static str,
}

impl BootFiles {
    fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }
    fn listing_dir(&self) -> &'static str {
        if self.dir.is_empty() {
            "/"
        } else {
            self.dir
        }
    }
}

/// A mountinfo line as the guest printed it.
#[derive(Clone, Debug)]
struct Mount {
    root: String,
    point: String,
    /// Per-mount options.
    opts: String,
    /// The mount source (after the ` - FSTYPE` separator), e.g. `/dev/vda1`.
    source: String,
}

fn mountinfo(log: &str) -> Vec<Mount> {
    log.lines()
        .filter_map(|l| {
            let rest = &l[l.find("MOUNTINFO ")? + "MOUNTINFO ".len()..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some(Mount {
                root: f.get(3)?.to_string(),
                point: f.get(4)?.to_string(),
                opts: f.get(5)?.to_string(),
                source: f.get(sep + 2)?.to_string(),
            })
        })
        .collect()
}

/// How the image's initrd is changed before the relayout.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Initrd {
    /// As the image's generator made it.
    AsBuilt,
    /// Its main archive recompressed with `gzip -6`.
    Gzip,
    /// An uncompressed early segment (a microcode-like blob) put in front.
    EarlySegment,
}

/// `image` with its initrd rewritten as `how` says (GNU cpio and gzip build it; `subroot
/// copy-in` puts it in place, keeping the name), or `image` itself for [`Initrd::AsBuilt`].
fn with_initrd(dir: &Path, image: &Path, how: Initrd) -> PathBuf {
    if how == Initrd::AsBuilt {
        return image.to_path_buf();
    }
    let listing = ok(dir, &["-q", "ls", s(image), "/boot"]);
    let name = listing
        .lines()
        .find(|l| l.starts_with("initrd.img-"))
        .unwrap_or_else(|| panic!("no initrd in /boot: {listing}"));
    let host = dir.join("new-initrd");
    std::fs::create_dir_all(&host).expect("mkdir");
    let file = host.join(name);
    std::fs::write(&file, cat(dir, image, "1", &format!("/boot/{name}"))).expect("write");
    let doc: serde_json::Value =
        serde_json::from_str(&ok(dir, &["initrd", "examine", "--json", s(&file)])).expect("json");
    assert_eq!(doc["segments"].as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(doc["segments"][0]["compression"], "zstd", "{doc}");
    let f = s(&file);
    let script = match how {
        Initrd::Gzip => format!("zstd -dc {f} | gzip -6 -n > {f}.new && mv {f}.new {f}"),
        _ => format!(
            "set -e; e={d}/early; mkdir -p $e/kernel/x86/microcode
             head -c 4096 /dev/urandom > $e/kernel/x86/microcode/GenuineIntel.bin
             (cd $e && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) > {f}.new
             cat {f} >> {f}.new && mv {f}.new {f}",
            d = s(dir)
        ),
    };
    let st = Command::new("bash")
        .args(["-c", &script])
        .status()
        .expect("bash");
    assert!(st.success(), "{script}");
    let out = dir.join("with-initrd.qcow2");
    ok(
        dir,
        &[
            "-q",
            "copy-in",
            "-p",
            "1",
            s(image),
            f,
            "/boot",
            "-o",
            s(&out),
            "-O",
            "qcow2",
        ],
    );
    out
}

/// Where the relayout writes its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// A new qcow2 image (`-o OUT -O qcow2`).
    NewQcow2,
    /// A qcow2 overlay backed by the input (`--overlay OUT`).
    Overlay,
    /// A copy of the raw input, changed in place (`--in-place`).
    InPlace,
}

fn boot_variant(flavour: &str, boot: Boot, test: &str) {
    boot_variant_with(flavour, boot, Initrd::AsBuilt, Output::NewQcow2, test)
}

fn boot_variant_with(flavour: &str, boot: Boot, how: Initrd, output: Output, test: &str) {
    if !enabled(test) {
        return;
    }
    for t in [
        "qemu-system-x86_64",
        "qemu-img",
        "mke2fs",
        "debugfs",
        "e2fsck",
    ] {
        if !need(t, test) {
            return;
        }
    }
    let Some(image) = debian_image(flavour) else {
        return;
    };
    let d = workdir();
    let image = with_initrd(d.path(), &image, how);
    let out = match output {
        Output::NewQcow2 => d.path().join("r0.qcow2"),
        Output::Overlay => d.path().join("r0-overlay.qcow2"),
        Output::InPlace => {
            let copy = d.path().join("in-place.raw");
            run("cp", &["--sparse=always", s(&image), s(&copy)]);
            run("chmod", &["a+rw", s(&copy)]);
            copy
        }
    };
    let (plan, part) = relayout_plan(d.path(), &image);
    // The plan found the boot files where the image has them.
    let files = match boot {
        Boot::OnRoot => {
            assert!(
                plan["boot_partition"].is_null(),
                "a separate /boot in the plan: {}",
                plan["boot_partition"]
            );
            BootFiles {
                part: part.clone(),
                dir: "/boot",
            }
        }
        Boot::Partition(n) => {
            let bp = &plan["boot_partition"];
            assert_eq!(bp["partition"].as_u64(), Some(u64::from(n)), "plan: {bp}");
            assert_eq!(bp["filesystem"].as_str(), Some("ext4"), "plan: {bp}");
            BootFiles {
                part: n.to_string(),
                dir: "",
            }
        }
    };
    // As uid 65534 when the suite is root: the whole relayout is rootless.
    match output {
        Output::NewQcow2 => ok(
            d.path(),
            &["-q", "relayout", s(&image), "-o", s(&out), "-O", "qcow2"],
        ),
        Output::Overlay => ok(
            d.path(),
            &["-q", "relayout", s(&image), "--overlay", s(&out)],
        ),
        Output::InPlace => ok(d.path(), &["-q", "relayout", s(&out), "--in-place"]),
    };
    let listing = ok(
        d.path(),
        &["-q", "ls", "-p", &files.part, s(&out), files.listing_dir()],
    );
    let kernel = listing
        .lines()
        .find(|l| l.starts_with("vmlinuz-"))
        .unwrap_or_else(|| panic!("no kernel in the boot files: {listing}"))
        .to_string();
    let initrd = listing
        .lines()
        .find(|l| l.starts_with("initrd.img-") || l.starts_with("initramfs-"))
        .unwrap_or_else(|| panic!("no initrd in the boot files: {listing}"))
        .to_string();
    // The initrd there now carries the hook (initramfs-tools' local-bottom script, or
    // dracut's pre-pivot hook).
    let entries = ok(
        d.path(),
        &[
            "-q",
            "initrd",
            "ls",
            "--image",
            s(&out),
            "-p",
            &files.part,
            &files.path(&initrd),
        ],
    );
    assert!(
        entries.lines().any(|l| l == "scripts/local-bottom/subroot"
            || (l.contains("/pre-pivot/") && l.contains("subroot"))),
        "{initrd} in the output lacks the subroot hook"
    );
    // ... in a segment appended behind the untouched ones.
    let doc: serde_json::Value = serde_json::from_str(&ok(
        d.path(),
        &[
            "-q",
            "initrd",
            "examine",
            "--json",
            "--image",
            s(&out),
            "-p",
            &files.part,
            &files.path(&initrd),
        ],
    ))
    .expect("examine JSON");
    let roles: Vec<&str> = doc["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|g| g["role"].as_str().unwrap_or_default())
        .collect();
    let want: &[&str] = match how {
        Initrd::EarlySegment => &["early", "main", "subroot-hook"],
        _ => &["main", "subroot-hook"],
    };
    assert_eq!(roles, want, "{doc}");
    if how == Initrd::Gzip {
        assert_eq!(doc["segments"][1]["compression"], "gzip", "{doc}");
    }
    // A GRUB configuration among the boot files, if any, boots subroot=r0.
    if listing.lines().any(|l| l == "grub") {
        let dir = files.path("grub");
        let inside = ok(d.path(), &["-q", "ls", "-p", &files.part, s(&out), &dir]);
        if inside.lines().any(|l| l == "grub.cfg") {
            let cfg = cat(d.path(), &out, &files.part, &files.path("grub/grub.cfg"));
            assert!(
                String::from_utf8_lossy(&cfg).contains("subroot=r0"),
                "{dir}/grub.cfg was not edited"
            );
        }
    }
    let kpath = d.path().join("vmlinuz");
    let ipath = d.path().join("initrd");
    std::fs::write(
        &kpath,
        cat(d.path(), &out, &files.part, &files.path(&kernel)),
    )
    .expect("write");
    std::fs::write(
        &ipath,
        cat(d.path(), &out, &files.part, &files.path(&initrd)),
    )
    .expect("write");
    // qemu-img accepts the output as a sound qcow2 (an overlay names the input as its
    // backing file); the in-place output is the raw input file itself.
    let info = run_stdout("qemu-img", &["info", s(&out)]);
    match output {
        Output::InPlace => assert!(info.contains("file format: raw"), "{info}"),
        _ => {
            assert!(run("qemu-img", &["check", s(&out)]).status.success());
            assert!(info.contains("file format: qcow2"), "{info}");
        }
    }
    if output == Output::Overlay {
        assert!(info.contains("backing file:"), "{info}");
        let size = std::fs::metadata(&out).expect("stat").len();
        assert!(
            size < (64 << 20),
            "the overlay holds only the changes: {size} bytes"
        );
    }
    // The r0 layout is there before booting.
    let r0 = ok(d.path(), &["-q", "ls", "-p", &part, s(&out), "/r0"]);
    for n in ["etc", "usr", "boot", "var", "home", "sysroot"] {
        assert!(r0.lines().any(|l| l == n), "/r0 lacks {n}: {r0}");
    }
    // Keep the serial log for inspection (target/boot-FLAVOUR[-VARIANT].log).
    let keep = match (how, output) {
        (Initrd::AsBuilt, Output::NewQcow2) => format!("boot-{flavour}"),
        (Initrd::AsBuilt, o) => format!("boot-{flavour}-{o:?}"),
        (other, _) => format!("boot-{flavour}-{other:?}"),
    };
    let text = run_guest(
        d.path(),
        &out,
        &kpath,
        &ipath,
        // The serial getty would hang up ttyS0 under the marker (agetty's vhangup),
        // cutting its report short: mask it for this boot.
        &format!("root=UUID={ROOT_UUID} ro subroot=r0 systemd.mask=serial-getty@ttyS0.service"),
        &keep,
    );
    let tail = last_lines(&text);
    let mi = mountinfo(&text);
    // The topmost mount on `mp` (mountinfo lists mounts in the order they were made).
    let at = |mp: &str| topmost(&mi, mp);
    let top = at("/");
    assert_eq!(top.root, "/r0", "/ is not the r0 subtree: {top:?}");
    for dir in ["/boot", "/var", "/home"] {
        let m = at(dir);
        match boot {
            // The separate partition's own top, mounted by fstab over the (empty) shared
            // mount point.
            Boot::Partition(n) if dir == "/boot" => {
                assert_eq!(m.root, "/", "/boot is not the top of a partition: {m:?}");
                assert_eq!(m.source, format!("/dev/vda{n}"), "/boot: {m:?}");
            }
            _ => {
                assert_eq!(m.root, dir, "{dir} is not the physical {dir}: {m:?}");
                assert_eq!(m.source, top.source, "{dir} not from the root: {m:?}");
            }
        }
        assert!(m.opts.split(',').any(|o| o == "rw"), "{dir} mounted {m:?}");
        assert!(
            text.lines()
                .any(|l| l.trim_end().ends_with(&format!("WRITABLE {dir}"))),
            "{dir} not writable in the guest"
        );
    }
    assert!(
        !text.contains("READONLY"),
        "something stayed read-only:\n{tail}"
    );
    assert!(
        text.contains("HOOK-KEPT"),
        "the in-guest initrd rebuild lost the hook:\n{tail}"
    );
    assert!(!text.contains("HOOK-LOST"), "HOOK-LOST:\n{tail}");
}

/// The last 60 lines of a serial log.
fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Boot `image` under QEMU with `kernel`, `initrd` and `cmdline` (`scripts/boot.sh`); the
/// serial log is kept as `target/NAME.log`, the judged lines are shown, and the guest must
/// reach the marker's end. Returns the log.
fn run_guest(
    dir: &Path,
    image: &Path,
    kernel: &Path,
    initrd: &Path,
    cmdline: &str,
    name: &str,
) -> String {
    let log = dir.join("serial.log");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/boot.sh");
    let st = Command::new("bash")
        .args([
            script,
            s(image),
            s(kernel),
            s(initrd),
            cmdline,
            s(&log),
            "900",
        ])
        .status()
        .expect("boot.sh");
    let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    let keep = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/{name}.log"));
    let _ = std::fs::write(&keep, &text);
    for l in text.lines().filter(|l| {
        l.contains("SUBROOT-MARKER")
            || l.contains("WRITABLE")
            || l.contains("READONLY")
            || l.contains("HOOK-")
            || l.contains("Kernel command line")
            || (l.contains("MOUNTINFO") && l.contains(" ext4 "))
    }) {
        eprintln!("guest: {}", l.trim_end());
    }
    assert!(
        text.contains("SUBROOT-MARKER-END"),
        "the guest did not reach the marker's end (boot.sh {st}); last lines:\n{}",
        last_lines(&text)
    );
    std::fs::remove_file(&log).ok();
    text
}

/// The topmost mount on `mp` (mountinfo lists mounts in the order they were made).
fn topmost(mi: &[Mount], mp: &str) -> Mount {
    mi.iter()
        .rev()
        .find(|m| m.point == mp)
        .unwrap_or_else(|| panic!("no mountinfo line for {mp}: {mi:?}"))
        .clone()
}

#[test]
fn relayouted_initramfs_tools_image_boots_into_r0() {
    boot_variant(
        "initramfs-tools",
        Boot::OnRoot,
        "relayouted_initramfs_tools_image_boots_into_r0",
    );
}

#[test]
fn relayouted_dracut_image_boots_into_r0() {
    boot_variant(
        "dracut",
        Boot::OnRoot,
        "relayouted_dracut_image_boots_into_r0",
    );
}

#[test]
fn relayouted_separate_boot_image_boots_into_r0() {
    boot_variant(
        "bootpart",
        Boot::Partition(1),
        "relayouted_separate_boot_image_boots_into_r0",
    );
}

#[test]
fn relayouted_gzip_initramfs_tools_image_boots_into_r0() {
    boot_variant_with(
        "initramfs-tools",
        Boot::OnRoot,
        Initrd::Gzip,
        Output::NewQcow2,
        "relayouted_gzip_initramfs_tools_image_boots_into_r0",
    );
}

#[test]
fn relayouted_image_with_early_initrd_segment_boots_into_r0() {
    boot_variant_with(
        "initramfs-tools",
        Boot::OnRoot,
        Initrd::EarlySegment,
        Output::NewQcow2,
        "relayouted_image_with_early_initrd_segment_boots_into_r0",
    );
}

#[test]
fn relayout_overlay_of_initramfs_tools_image_boots_into_r0() {
    boot_variant_with(
        "initramfs-tools",
        Boot::OnRoot,
        Initrd::AsBuilt,
        Output::Overlay,
        "relayout_overlay_of_initramfs_tools_image_boots_into_r0",
    );
}

#[test]
fn relayout_in_place_of_dracut_image_boots_into_r0() {
    boot_variant_with(
        "dracut",
        Boot::OnRoot,
        Initrd::AsBuilt,
        Output::InPlace,
        "relayout_in_place_of_dracut_image_boots_into_r0",
    );
}

/// The cached `flavour` image with a GRUB configuration added to its `/boot` (by `subroot
/// copy-in`, as a qcow2 overlay in `dir`): one entry for the kernel and initrd there, as
/// grub-mkconfig writes it (abridged). The images boot without a boot loader, so the
/// tests below boot what this file says, as GRUB would. Returns (the overlay, the root
/// partition).
fn with_grub_cfg(dir: &Path, flavour: &str) -> Option<(PathBuf, String)> {
    let image = debian_image(flavour)?;
    let (_, part) = relayout_plan(dir, &image);
    let listing = ok(dir, &["-q", "ls", "-p", &part, s(&image), "/boot"]);
    let find = |prefix: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}* in /boot: {listing}"))
            .to_string()
    };
    let (kernel, initrd) = (find("vmlinuz-"), find("initrd.img-"));
    let host = dir.join("grub-files/grub");
    std::fs::create_dir_all(&host).expect("mkdir");
    std::fs::write(
        host.join("grub.cfg"),
        format!(
            "set default=0\nmenuentry 'Debian GNU/Linux' --class debian $menuentry_id_option 'gnulinux-simple' {{\n\
             \tlinux\t/boot/{kernel} root=UUID={ROOT_UUID} ro systemd.mask=serial-getty@ttyS0.service\n\
             \tinitrd\t/boot/{initrd}\n}}\n"
        ),
    )
    .expect("grub.cfg");
    run("chmod", &["-R", "a+rX", s(&dir.join("grub-files"))]);
    let base = dir.join("base.qcow2");
    ok(
        dir,
        &[
            "-q",
            "copy-in",
            s(&image),
            "-p",
            &part,
            s(&host),
            "/boot",
            "--overlay",
            s(&base),
        ],
    );
    Some((base, part))
}

/// For boot test `test` (when enabled and QEMU is there): a work directory, the cached
/// initramfs-tools image with a `grub.cfg` ([`with_grub_cfg`]) relayouted into a qcow2
/// overlay there, and its root partition.
fn relayouted_with_grub(test: &str) -> Option<(tempfile::TempDir, PathBuf, String)> {
    if !enabled(test) || !need("qemu-system-x86_64", test) || !need("qemu-img", test) {
        return None;
    }
    let d = workdir();
    let (base, part) = with_grub_cfg(d.path(), "initramfs-tools")?;
    let rel = d.path().join("rel.qcow2");
    ok(
        d.path(),
        &["-q", "relayout", s(&base), "--overlay", s(&rel)],
    );
    Some((d, rel, part))
}

/// What GRUB boots from the `grub.cfg` in `/boot/grub` of partition `part` of `image`:
/// the entry whose id is `id` (the first entry for `None`) — its kernel and initrd
/// (read out of the image into `dir`) and its command line.
fn grub_entry(
    dir: &Path,
    image: &Path,
    part: &str,
    id: Option<&str>,
) -> (PathBuf, PathBuf, String) {
    let cfg = String::from_utf8(cat(dir, image, part, "/boot/grub/grub.cfg")).expect("UTF-8");
    let lines: Vec<&str> = cfg.lines().collect();
    let start = lines
        .iter()
        .position(|l| {
            l.trim_start().starts_with("menuentry")
                && id.is_none_or(|id| l.contains(&format!("'{id}'")))
        })
        .unwrap_or_else(|| panic!("no menuentry {id:?} in grub.cfg:\n{cfg}"));
    let word = |cmd: &str| {
        lines[start..]
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(cmd).map(str::trim))
            .unwrap_or_else(|| panic!("no {cmd} line in entry {id:?}:\n{cfg}"))
    };
    let linux = word("linux");
    let (kernel, args) = linux
        .split_once(char::is_whitespace)
        .expect("kernel and args");
    let initrd = word("initrd");
    let k = dir.join("vmlinuz");
    let i = dir.join("initrd");
    std::fs::write(&k, cat(dir, image, part, kernel)).expect("write");
    std::fs::write(&i, cat(dir, image, part, initrd)).expect("write");
    (k, i, args.trim().to_string())
}

/// The kernel's own record of its command line in a serial log.
fn kernel_cmdline(log: &str) -> String {
    log.lines()
        .find_map(|l| {
            l.split_once("Kernel command line: ")
                .map(|(_, c)| c.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no kernel command line in the log:\n{}", last_lines(log)))
}

#[test]
fn undone_relayout_boots_like_the_original() {
    let Some((d, rel, part)) = relayouted_with_grub("undone_relayout_boots_like_the_original")
    else {
        return;
    };
    let back = d.path().join("back.qcow2");
    ok(
        d.path(),
        &[
            "-q",
            "relayout",
            "--undo",
            s(&rel),
            "-p",
            &part,
            "--overlay",
            s(&back),
        ],
    );
    // The boot loader's entry has lost subroot= again.
    let (k, i, cmdline) = grub_entry(d.path(), &back, &part, None);
    assert!(!cmdline.contains("subroot"), "{cmdline}");
    let text = run_guest(d.path(), &back, &k, &i, &cmdline, "boot-undone");
    assert!(
        !kernel_cmdline(&text).contains("subroot="),
        "{}",
        kernel_cmdline(&text)
    );
    let mi = mountinfo(&text);
    let top = topmost(&mi, "/");
    assert_eq!(top.root, "/", "/ is not the physical root: {top:?}");
    for dir in ["/var", "/home", "/boot"] {
        assert!(
            mi.iter().all(|m| m.point != dir || m.source != top.source),
            "{dir} is bind-mounted from the root: {mi:?}"
        );
    }
    // The hook is gone from the system's initrd generator: a rebuild in the guest has none.
    assert!(text.contains("HOOK-LOST"), "{}", last_lines(&text));
    assert!(!text.contains("HOOK-KEPT"), "{}", last_lines(&text));
}

#[test]
fn boot_entry_per_root_boots_the_chosen_root() {
    let Some((d, rel, part)) = relayouted_with_grub("boot_entry_per_root_boots_the_chosen_root")
    else {
        return;
    };
    let ent = d.path().join("entries.qcow2");
    ok(
        d.path(),
        &[
            "-q",
            "roots",
            "default",
            s(&rel),
            "--entry",
            "-p",
            &part,
            "--overlay",
            s(&ent),
        ],
    );
    let (k, i, cmdline) = grub_entry(d.path(), &ent, &part, Some("subroot-r0"));
    assert!(cmdline.ends_with(" subroot=r0"), "{cmdline}");
    let text = run_guest(d.path(), &ent, &k, &i, &cmdline, "boot-entry-r0");
    assert!(kernel_cmdline(&text).contains("subroot=r0"));
    let top = topmost(&mountinfo(&text), "/");
    assert_eq!(top.root, "/r0", "/ is not the r0 subtree: {top:?}");
}

/// The hostname systemd set, from its console message.
fn hostname(log: &str) -> String {
    log.lines()
        .find_map(|l| {
            let rest = l.split_once("Hostname set to <")?.1;
            rest.split_once('>').map(|(h, _)| h.to_string())
        })
        .unwrap_or_else(|| panic!("no hostname in the log:\n{}", last_lines(log)))
}

#[test]
fn second_root_boots_when_default_and_first_again_after() {
    let Some((d, rel, part)) =
        relayouted_with_grub("second_root_boots_when_default_and_first_again_after")
    else {
        return;
    };
    // r1: a clone of r0, then changed: /etc/hostname replaced, a file added.
    let two = d.path().join("two.qcow2");
    ok(
        d.path(),
        &[
            "-q",
            "roots",
            "add",
            s(&rel),
            "r1",
            "--from",
            "r0",
            "--overlay",
            s(&two),
        ],
    );
    let files = d.path().join("r1-files");
    std::fs::create_dir_all(&files).expect("mkdir");
    std::fs::write(files.join("hostname"), "subroot-r1\n").expect("w");
    std::fs::write(files.join("subroot-r1-only"), "made in r1\n").expect("w");
    run("chmod", &["-R", "a+rX", s(&files)]);
    let changed = d.path().join("changed.qcow2");
    ok(
        d.path(),
        &[
            "-q",
            "copy-in",
            s(&two),
            "-p",
            &part,
            s(&files.join("hostname")),
            s(&files.join("subroot-r1-only")),
            "/r1/etc",
            "--overlay",
            s(&changed),
        ],
    );
    let r0_etc = ok(d.path(), &["-q", "ls", "-p", &part, s(&changed), "/r0/etc"]);
    assert!(
        !r0_etc.lines().any(|l| l == "subroot-r1-only"),
        "r0 changed too"
    );
    // r1 the default: the boot loader's first entry boots it.
    let r1 = d.path().join("r1.qcow2");
    ok(
        d.path(),
        &[
            "-q",
            "roots",
            "default",
            s(&changed),
            "r1",
            "-p",
            &part,
            "--overlay",
            s(&r1),
        ],
    );
    let (k, i, cmdline) = grub_entry(d.path(), &r1, &part, None);
    assert!(cmdline.contains("subroot=r1"), "{cmdline}");
    let text = run_guest(d.path(), &r1, &k, &i, &cmdline, "boot-root-r1");
    let top = topmost(&mountinfo(&text), "/");
    assert_eq!(top.root, "/r1", "/ is not the r1 subtree: {top:?}");
    assert_eq!(hostname(&text), "subroot-r1");
    // And back to r0: r1's change is not there.
    let back = d.path().join("back.qcow2");
    ok(
        d.path(),
        &[
            "-q",
            "roots",
            "default",
            s(&r1),
            "r0",
            "-p",
            &part,
            "--overlay",
            s(&back),
        ],
    );
    let (k, i, cmdline) = grub_entry(d.path(), &back, &part, None);
    assert!(cmdline.contains("subroot=r0"), "{cmdline}");
    let text = run_guest(d.path(), &back, &k, &i, &cmdline, "boot-root-r0-again");
    let top = topmost(&mountinfo(&text), "/");
    assert_eq!(top.root, "/r0", "/ is not the r0 subtree: {top:?}");
    assert_ne!(hostname(&text), "subroot-r1");
}

/// Boots `image` (not relayouted) once with `scripts/boot.sh`, its writes kept in `image`;
/// returns the serial log (also kept as target/boot-customize-N.log).
fn boot_plain(dir: &Path, image: &Path, kernel: &Path, initrd: &Path, n: u32) -> String {
    let log = dir.join(format!("serial-{n}.log"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/boot.sh");
    let st = Command::new("bash")
        .args([
            script,
            s(image),
            s(kernel),
            s(initrd),
            &format!("root=UUID={ROOT_UUID} ro systemd.mask=serial-getty@ttyS0.service"),
            s(&log),
            "900",
            "rw",
        ])
        .status()
        .expect("boot.sh");
    let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    let keep = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/boot-customize-{n}.log"));
    let _ = std::fs::write(keep, &text);
    for l in text
        .lines()
        .filter(|l| l.contains("CUSTOMIZE-") || l.contains("FIRSTBOOT"))
    {
        eprintln!("guest {n}: {}", l.trim_end());
    }
    assert!(
        text.contains("CUSTOMIZE-MARKER-END"),
        "boot {n} did not reach the marker's end (boot.sh {st}); last lines:\n{}",
        text.lines().rev().take(40).collect::<Vec<_>>().join("\n")
    );
    text
}

/// The value of the guest's report line `KEY value` (the last one).
fn reported<'a>(log: &'a str, key: &str) -> &'a str {
    log.lines()
        .rev()
        .find_map(|l| Some(l[l.find(&format!("{key} "))? + key.len() + 1..].trim_end()))
        .unwrap_or_else(|| panic!("no {key} line in the log"))
}

/// `subroot customize` (as uid 65534, `--overlay`) of the Debian image, booted twice, the
/// second boot on the first one's writes. The guest reports on the serial console (its
/// marker replaced by `--upload`): the hostname set; the injected key there, `.ssh` 0700
/// and `authorized_keys` 0600 owned by root; root's password verified by the guest's own
/// crypt(3) against its shadow hash; the time zone. The first-boot script ran on the first
/// boot only (its output in the serial log once, the unit disabled after). The image was
/// also sysprepped, over a machine id written first: the first boot made a fresh one, and
/// the second keeps it.
#[test]
fn customized_image_boots_with_its_settings_and_runs_firstboot_once() {
    let test = "customized_image_boots_with_its_settings_and_runs_firstboot_once";
    if !enabled(test) {
        return;
    }
    for t in ["qemu-system-x86_64", "qemu-img", "perl"] {
        if !need(t, test) {
            return;
        }
    }
    let Some(image) = debian_image("initramfs-tools") else {
        return;
    };
    let d = workdir();
    let key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMJ1bXBlcnN0aWNrZXJzdWJyb290dGVzdGtleQ boot@test";
    let pw = "b00t-t3st pw";
    let old_id = "0123456789abcdef0123456789abcdef";
    let marker = d.path().join("marker");
    std::fs::write(
        &marker,
        format!(
            r#"#!/bin/sh
# Report the customized settings on the serial console, then power off.
exec >/dev/ttyS0 2>&1
echo "CUSTOMIZE-MARKER-BEGIN"
echo "CUSTOMIZE-HOSTNAME $(cat /proc/sys/kernel/hostname)"
echo "CUSTOMIZE-MACHINE-ID $(cat /etc/machine-id)"
echo "CUSTOMIZE-SSH $(stat -c '%u:%g:%a' /root/.ssh /root/.ssh/authorized_keys | tr '\n' ' ')"
grep -qxF '{key}' /root/.ssh/authorized_keys && echo "CUSTOMIZE-KEY present"
h=$(awk -F: '$1 == "root" {{ print $2 }}' /etc/shadow)
perl -e 'exit(crypt($ARGV[0], $ARGV[1]) eq $ARGV[1] ? 0 : 1)' '{pw}' "$h" && echo "CUSTOMIZE-PASSWORD verifies"
echo "CUSTOMIZE-TZ $(date +%Z)"
[ -e /etc/systemd/system/multi-user.target.wants/subroot-firstboot.service ] && echo "CUSTOMIZE-FIRSTBOOT enabled" || echo "CUSTOMIZE-FIRSTBOOT disabled"
echo "CUSTOMIZE-MARKER-END"
systemctl --no-block poweroff
"#
        ),
    )
    .unwrap();
    run("chmod", &["a+r", s(&marker)]);
    let out = d.path().join("custom.qcow2");
    ok(
        d.path(),
        &[
            "-q",
            "customize",
            s(&image),
            "--hostname",
            "booted-vm",
            "--timezone",
            "Asia/Tokyo",
            "--root-password",
            &format!("password:{pw}"),
            "--ssh-inject",
            &format!("root:string:{key}"),
            "--upload",
            &format!("{}:/usr/local/sbin/subroot-marker", s(&marker)),
            "--firstboot-command",
            "echo \"FIRSTBOOT-RAN $(cat /etc/machine-id)\"",
            "--write",
            &format!("/etc/machine-id:{old_id}\n"),
            "--sysprep",
            "--overlay",
            s(&out),
        ],
    );
    // The output is the customizer's; QEMU writes into it (as the suite's user).
    let listing = ok(d.path(), &["-q", "ls", s(&out), "/boot"]);
    let pick = |prefix: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}* in /boot: {listing}"))
            .to_string()
    };
    let kernel = d.path().join("vmlinuz");
    let initrd = d.path().join("initrd");
    std::fs::write(
        &kernel,
        cat(d.path(), &out, "1", &format!("/boot/{}", pick("vmlinuz-"))),
    )
    .unwrap();
    std::fs::write(
        &initrd,
        cat(
            d.path(),
            &out,
            "1",
            &format!("/boot/{}", pick("initrd.img-")),
        ),
    )
    .unwrap();

    let first = boot_plain(d.path(), &out, &kernel, &initrd, 1);
    assert_eq!(reported(&first, "CUSTOMIZE-HOSTNAME"), "booted-vm");
    assert_eq!(reported(&first, "CUSTOMIZE-SSH"), "0:0:700 0:0:600");
    assert_eq!(reported(&first, "CUSTOMIZE-KEY"), "present");
    assert_eq!(reported(&first, "CUSTOMIZE-PASSWORD"), "verifies");
    assert_eq!(reported(&first, "CUSTOMIZE-TZ"), "JST");
    let id = reported(&first, "CUSTOMIZE-MACHINE-ID").to_string();
    assert!(
        id.len() == 32 && id != old_id,
        "machine id after sysprep: {id:?}"
    );
    let ran: Vec<&str> = first
        .lines()
        .filter(|l| l.contains("FIRSTBOOT-RAN "))
        .collect();
    assert_eq!(
        ran.len(),
        1,
        "the first-boot script ran {} times: {ran:?}",
        ran.len()
    );
    assert!(first.contains("subroot-firstboot: running 0001-command"));
    assert_eq!(reported(&first, "CUSTOMIZE-FIRSTBOOT"), "disabled");

    let second = boot_plain(d.path(), &out, &kernel, &initrd, 2);
    assert!(
        !second.contains("FIRSTBOOT-RAN") && !second.contains("subroot-firstboot: running"),
        "the first-boot script ran again"
    );
    assert_eq!(
        reported(&second, "CUSTOMIZE-MACHINE-ID"),
        id,
        "the machine id changed again"
    );
    assert_eq!(reported(&second, "CUSTOMIZE-HOSTNAME"), "booted-vm");
}

/// `subroot resize`: the initramfs-tools image (2 GiB, MBR, one ext4 root) grown to 6 GiB
/// (in-process grow, -o qcow2) boots, and the guest sees the new disk and root sizes; the
/// grown image shrunk to fit boots from a disk smaller than the original. The
/// image's marker is replaced (`copy-in --in-place`) by one that reports `df` of `/` and
/// the disk's size from sysfs on the serial console, then powers off.
#[test]
fn grown_image_boots_and_sees_its_new_size() {
    let test = "grown_image_boots_and_sees_its_new_size";
    if !enabled(test) {
        return;
    }
    for t in ["qemu-system-x86_64", "qemu-img"] {
        if !need(t, test) {
            return;
        }
    }
    let Some(image) = debian_image("initramfs-tools") else {
        return;
    };
    let d = workdir();
    let out = d.path().join("grown.qcow2");
    ok(
        d.path(),
        &[
            "-q",
            "resize",
            s(&image),
            "--size",
            "6G",
            "-o",
            s(&out),
            "-O",
            "qcow2",
        ],
    );
    let marker = d.path().join("marker");
    std::fs::create_dir(&marker).expect("mkdir");
    std::fs::write(
        marker.join("subroot-marker"),
        "#!/bin/sh\nexec >/dev/ttyS0 2>&1\necho SUBROOT-MARKER-BEGIN\n\
echo \"ROOT-SIZE $(df -B1 --output=size / | tail -n 1 | tr -d ' ')\"\n\
echo \"DISK-SIZE $(( $(cat /sys/block/vda/size) * 512 ))\"\n\
echo SUBROOT-MARKER-END\nsystemctl --no-block poweroff\n",
    )
    .expect("write");
    run("chmod", &["-R", "a+rX", s(&marker)]);
    run("chmod", &["0755", s(&marker.join("subroot-marker"))]);
    ok(
        d.path(),
        &[
            "-q",
            "copy-in",
            s(&out),
            "-p",
            "1",
            s(&marker.join("subroot-marker")),
            "/usr/local/sbin",
            "--in-place",
        ],
    );
    let listing = ok(d.path(), &["-q", "ls", "-p", "1", s(&out), "/boot"]);
    let pick = |prefix: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}* in /boot: {listing}"))
            .to_string()
    };
    let kpath = d.path().join("vmlinuz");
    let ipath = d.path().join("initrd");
    let kernel = format!("/boot/{}", pick("vmlinuz-"));
    let initrd = format!("/boot/{}", pick("initrd.img-"));
    std::fs::write(&kpath, cat(d.path(), &out, "1", &kernel)).expect("write");
    std::fs::write(&ipath, cat(d.path(), &out, "1", &initrd)).expect("write");
    let cmdline = format!("root=UUID={ROOT_UUID} ro systemd.mask=serial-getty@ttyS0.service");
    let text = run_guest(d.path(), &out, &kpath, &ipath, &cmdline, "boot-resize");
    let value = |text: &str, key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim_end().strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in the guest's report"))
    };
    let (disk, root) = (value(&text, "DISK-SIZE"), value(&text, "ROOT-SIZE"));
    eprintln!("guest: disk {disk} bytes, / {root} bytes");
    assert_eq!(disk, 6 << 30);
    assert!(root > 5 << 30, "the guest's / is {root} bytes");

    // Shrunk to fit (64 MiB to spare), it boots too, from a disk smaller than the original.
    let small = d.path().join("small.qcow2");
    ok(
        d.path(),
        &[
            "-q",
            "resize",
            s(&out),
            "--shrink-to-fit",
            "--margin",
            "64M",
            "-o",
            s(&small),
        ],
    );
    let text = run_guest(
        d.path(),
        &small,
        &kpath,
        &ipath,
        &cmdline,
        "boot-resize-shrunk",
    );
    let (disk, root) = (value(&text, "DISK-SIZE"), value(&text, "ROOT-SIZE"));
    eprintln!("guest (shrunk): disk {disk} bytes, / {root} bytes");
    assert!(disk < 2 << 30, "the shrunk disk is {disk} bytes");
    assert!(root < disk, "{root}");
}
