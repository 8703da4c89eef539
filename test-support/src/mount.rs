//! The kernel as a judge (root only): loop-mount an image read-only and list what it
//! shows, for comparison with the tree that was meant to be in it.

use std::path::Path;
use std::process::Command;

/// Unmounts on drop, so a failing assertion never leaves a mount behind.
pub struct Mounted<'a>(pub &'a Path);

impl Drop for Mounted<'_> {
    /// A process spawned by another test thread may hold the mount busy for a moment
    /// (a fork copies every open descriptor until its exec): the unmount is retried, and
    /// made lazy as a last resort so that no mount outlives the test.
    fn drop(&mut self) {
        for attempt in 0..5u64 {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(100 * attempt));
            }
            let quiet = Command::new("umount")
                .arg(self.0)
                .stderr(std::process::Stdio::null())
                .status();
            if quiet.is_ok_and(|s| s.success()) {
                return;
            }
        }
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

/// `find` listing of `dir`: path, kind, mode, owner, size, ns mtime, link target.
pub fn listing(dir: &Path) -> String {
    let out = Command::new("find")
        .args([".", "-path", "./lost+found", "-prune", "-o", "-printf"])
        .arg("%p %y %m %U:%G %s %T@ %l\\n")
        .current_dir(dir)
        .output()
        .expect("find");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = text
        .lines()
        // Directory sizes are the filesystem's business, not the tree's.
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort_unstable();
    lines
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            if f.get(1) == Some(&"d") {
                format!("{} d {} {} - {}", f[0], f[2], f[3], f[5])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every xattr of every entry under `dir`, as `getfattr` dumps them (one block per file,
/// sorted: the dump follows directory order, which differs between filesystems).
pub fn xattrs(dir: &Path) -> Vec<String> {
    let out = Command::new("getfattr")
        .args(["-R", "-P", "-d", "-m", "-", "-e", "hex", "."])
        .current_dir(dir)
        .output()
        .expect("getfattr");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut blocks: Vec<String> = text
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(str::to_string)
        .collect();
    blocks.sort();
    blocks
}

/// A small tree with every fidelity feature the kernel can show (suid, owners, a hard
/// link, a symlink, sticky and private directories, a fifo, a device, a sparse file,
/// xattrs, ns and pre-1970 times) in the existing directory `root` (as root).
pub fn small_tree(root: &Path) {
    let sh = |script: &str| {
        let st = Command::new("sh")
            .args(["-ec", script, "sh", root.to_str().expect("utf-8")])
            .status()
            .expect("sh");
        assert!(st.success(), "{script}");
    };
    sh(r#"d="$1"
mkdir -p "$d/etc" "$d/usr/bin" "$d/var/tmp" "$d/home/u"
echo 'ID=debian' > "$d/etc/os-release"
head -c 300000 /dev/urandom > "$d/usr/bin/prog"
chown 1234:5678 "$d/usr/bin/prog"; chmod 4750 "$d/usr/bin/prog"
ln "$d/usr/bin/prog" "$d/usr/bin/prog2"
ln -s ../usr/bin/prog "$d/etc/link"
chmod 1777 "$d/var/tmp"; chown 1000:1000 "$d/home/u"; chmod 0700 "$d/home/u"
mkfifo "$d/var/fifo"; mknod -m 640 "$d/var/null" c 1 3
truncate -s 8M "$d/var/sparse"; printf x | dd of="$d/var/sparse" bs=1 seek=4M conv=notrunc 2>/dev/null
setfattr -n user.note -v hello "$d/etc/os-release"
setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 "$d/usr/bin/prog"
touch -h -d '2030-01-02 03:04:05.123456789' "$d/etc/os-release" "$d/etc/link"
touch -d '1969-07-20 20:17:40.5' "$d/home/u"
"#);
}

/// Whether the running kernel can mount `fstype` (after asking modprobe for it). A kernel
/// built without a filesystem (as some CI kernels are without vfat) cannot judge it; the
/// caller then says so and relies on that filesystem's own reference tools.
pub fn kernel_has(fstype: &str) -> bool {
    let _ = Command::new("modprobe")
        .args(["-q", fstype])
        .stderr(std::process::Stdio::null())
        .status();
    std::fs::read_to_string("/proc/filesystems").is_ok_and(|t| {
        t.lines()
            .any(|l| l.split_whitespace().last() == Some(fstype))
    })
}

/// Loop-mount `img` (at byte `offset`) read-only on `mnt`; `None` (a recorded skip, a
/// failure under `CI=true`) when the mount fails, as where no loop devices exist.
pub fn mount_ro<'a>(img: &Path, offset: u64, mnt: &'a Path, test: &str) -> Option<Mounted<'a>> {
    mount_ro_with(img, &format!("loop,ro,offset={offset}"), mnt, test)
}

/// [`mount_ro`] with the mount options `opts` (which must include `loop,ro`), as a
/// btrfs subvolume is chosen (`subvol=`, `subvolid=`).
pub fn mount_ro_with<'a>(img: &Path, opts: &str, mnt: &'a Path, test: &str) -> Option<Mounted<'a>> {
    // Tests mounting at once can race for the same free loop device (mount's search for
    // one is not atomic with attaching it): a failed attempt is retried a few times.
    let mut why = String::new();
    for attempt in 0..5 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(200 * attempt));
        }
        let out = Command::new("mount")
            .arg("-o")
            .arg(opts)
            .arg(img)
            .arg(mnt)
            .output()
            .expect("mount");
        if out.status.success() {
            return Some(Mounted(mnt));
        }
        why = String::from_utf8_lossy(&out.stderr).trim().to_string();
    }
    crate::skip(
        test,
        &format!("loop mount failed (no loop devices here?): {why}"),
    );
    None
}

/// What `diff -r` finds between the trees `a` and `b` (lost+found left out), without its
/// notes that it cannot compare two fifos or two devices (their kinds, modes and owners
/// are in [`listing`]): every line is a real difference.
pub fn diff_tree(a: &Path, b: &Path) -> Vec<String> {
    let diff = Command::new("diff")
        .args(["-r", "--no-dereference", "-x", "lost+found"])
        .arg(a)
        .arg(b)
        .output()
        .expect("diff");
    String::from_utf8_lossy(&diff.stdout)
        .lines()
        .filter(|l| {
            let parts: Vec<&str> = l.split(" is a ").collect();
            let same_special =
                parts.len() == 3 && parts[1].split(" while file").next() == Some(parts[2]);
            !same_special
        })
        .map(str::to_string)
        .collect()
}
