//! Fixtures for the relayout tests (`cli_relayout`, `cli_batch`): installed-system-like
//! disk images made at test time by the reference tools — the committed demo root staged
//! with a stand-in kernel and an initramfs-tools initrd made by GNU `cpio` + `gzip`, put
//! into ext4 by `mke2fs -d` inside an MBR partition made by `sfdisk`, optionally turned
//! into qcow2 by `qemu-img convert`.

use super::s;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The committed demo root filesystem tree.
pub const ROOT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/demo-root");
/// The committed demo initramfs-tools initrd tree.
pub const INITRD_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/demo-initrd");

/// Run a bash script (`-euo pipefail`); panics when it fails.
pub fn sh(script: &str) {
    let st = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .status()
        .expect("bash");
    assert!(st.success(), "script failed: {script}");
}

/// The plan `subroot relayout --dry-run --json` makes for `image` (run in `dir`), and the
/// root partition it names, as `-p` takes it (after a relayout /etc/os-release is in /r0,
/// so the automatic choice no longer finds a Linux root on a disk with an ESP: the tests
/// name the partition).
pub fn relayout_plan(dir: &Path, image: &Path) -> (serde_json::Value, String) {
    let plan: serde_json::Value = serde_json::from_str(&super::ok(
        dir,
        &["-q", "relayout", s(image), "--dry-run", "--json"],
    ))
    .expect("plan JSON");
    let part = plan["root_partition"]
        .as_u64()
        .expect("a root partition")
        .to_string();
    (plan, part)
}

/// Create `p` (and its parents); `p` as a string.
pub fn mk(p: &Path) -> &str {
    std::fs::create_dir_all(p).expect("mkdir");
    s(p)
}

/// A gzip'd newc archive of `dir`, by GNU cpio.
pub fn initrd(dir: &Path, out: &Path) {
    sh(&format!(
        "cd {} && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -n > {}",
        s(dir),
        s(out)
    ));
}

/// A copy of the committed demo root in `dir/stage` with a /boot holding a stand-in
/// kernel and an initramfs-tools initrd made by GNU cpio from `initrd_dir`.
pub fn stage(dir: &Path, initrd_dir: Option<&Path>) -> PathBuf {
    stage_named(dir, "stage", initrd_dir)
}

/// [`stage`] into `dir/name`.
pub fn stage_named(dir: &Path, name: &str, initrd_dir: Option<&Path>) -> PathBuf {
    let st = dir.join(name);
    sh(&format!("cp -a {ROOT_DIR}/. {}/", mk(&st)));
    std::fs::write(st.join("boot/vmlinuz-6.1.0-t"), b"kernel\n").expect("write");
    if let Some(i) = initrd_dir {
        initrd(i, &st.join("boot/initrd.img-6.1.0-t"));
    }
    st
}

/// The UUID [`image`] gives the root filesystem.
pub const ROOT_UUID: &str = "5e1f0b0a-7c3d-4e2a-9b1c-2d3e4f5a6b7c";

/// `dir/in.raw`: a 48 MiB MBR disk with one Linux partition at 1 MiB holding ext4 made
/// from `tree`.
pub fn image(dir: &Path, tree: &Path) -> PathBuf {
    let img = dir.join("in.raw");
    raw_disk(&img, tree);
    img
}

/// [`image`] at `img`.
pub fn raw_disk(img: &Path, tree: &Path) {
    sh(&format!(
        "truncate -s 48M {i} && printf 'label: dos\\nstart=2048, type=83\\n' | sfdisk -q {i} && \
         mke2fs -q -F -t ext4 -L root -U {ROOT_UUID} -E offset=1048576 -d {t} {i} 47M && \
         chmod a+r {i}",
        i = s(img),
        t = s(tree)
    ));
}

/// [`raw_disk`] as a qcow2 at `img` (by `qemu-img convert`).
pub fn qcow2_disk(img: &Path, tree: &Path) {
    let raw = img.with_extension("src-raw");
    raw_disk(&raw, tree);
    sh(&format!(
        "qemu-img convert -q -f raw -O qcow2 {r} {i} && rm -f {r} && chmod a+r {i}",
        r = s(&raw),
        i = s(img)
    ));
}

/// The filesystem of partition 1 (at 1 MiB) of raw `img`, copied out to `out` by `dd`.
pub fn partition1(img: &Path, out: &Path) {
    sh(&format!(
        "dd if={} of={} bs=1M skip=1 status=none",
        s(img),
        s(out)
    ));
}

/// The UUID [`separate_boot_disk`] gives the /boot filesystem.
pub const BOOT_UUID: &str = "0b007b00-1111-4222-8333-444455556666";

/// `dir/sep.raw`: a 96 MiB MBR disk with p1 (1 MiB, 32 MiB) an ext4 /boot holding
/// `grub/grub.cfg` (two `linux` lines), a stand-in kernel and an initramfs-tools initrd by
/// GNU cpio, and p2 (33 MiB to the end) the demo root (ext4) with an empty /boot and an
/// `/etc/fstab` naming p1 by UUID. Returns (the image, the /boot tree).
pub fn separate_boot_disk(dir: &Path) -> (PathBuf, PathBuf) {
    let root = stage_named(dir, "sep-root", None);
    sh(&format!("rm -rf {r}/boot && mkdir {r}/boot", r = s(&root)));
    std::fs::write(
        root.join("etc/fstab"),
        format!(
            "# <file system> <mount point> <type> <options> <dump> <pass>\n\
             UUID={ROOT_UUID} / ext4 errors=remount-ro 0 1\n\
             UUID={BOOT_UUID} /boot ext4 defaults 0 2\n"
        ),
    )
    .expect("fstab");
    let boot = boot_tree(&dir.join("sep-boot"));
    let img = dir.join("sep.raw");
    sh(&format!(
        "truncate -s 96M {i} && \
         printf 'label: dos\\nstart=2048, size=65536, type=83\\nstart=67584, type=83\\n' | sfdisk -q {i} && \
         mke2fs -q -F -t ext4 -L boot -U {BOOT_UUID} -E offset=1048576 -d {b} {i} 32M && \
         mke2fs -q -F -t ext4 -L root -U {ROOT_UUID} -E offset=34603008 -d {r} {i} 63M && \
         chmod a+r {i}",
        i = s(&img),
        b = s(&boot),
        r = s(&root)
    ));
    (img, boot)
}

/// The tree of a separate /boot at `boot`: `grub/grub.cfg` (two `linux` lines), a
/// stand-in kernel and an initramfs-tools initrd by GNU cpio. Returns `boot`.
pub fn boot_tree(boot: &Path) -> PathBuf {
    mk(&boot.join("grub"));
    std::fs::write(boot.join("vmlinuz-6.1.0-t"), b"kernel\n").expect("kernel");
    initrd(Path::new(INITRD_DIR), &boot.join("initrd.img-6.1.0-t"));
    std::fs::write(
        boot.join("grub/grub.cfg"),
        format!(
            "set default=0\nmenuentry 'Demo' {{\n\tsearch --no-floppy --fs-uuid --set=root {BOOT_UUID}\n\
             \tlinux /vmlinuz-6.1.0-t root=UUID={ROOT_UUID} ro quiet\n\tinitrd /initrd.img-6.1.0-t\n}}\n\
             menuentry 'Demo (recovery)' {{\n\tlinux /vmlinuz-6.1.0-t root=UUID={ROOT_UUID} ro single\n\
             \tinitrd /initrd.img-6.1.0-t\n}}\n"
        ),
    )
    .expect("grub.cfg");
    boot.to_path_buf()
}

/// Partition `n` of [`separate_boot_disk`]'s layout (1: /boot, 2: root) of raw `img`,
/// copied out to `out` by `dd`.
pub fn separate_part(img: &Path, n: u32, out: &Path) {
    let (skip, count) = if n == 1 { (1, 32) } else { (33, 63) };
    sh(&format!(
        "dd if={} of={} bs=1M skip={skip} count={count} status=none",
        s(img),
        s(out)
    ));
}
