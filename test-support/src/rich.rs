//! A rich source tree built with the reference tools as root (owners, setuid, file
//! capabilities, ACLs, a large xattr, hard links, devices, a fifo, a socket, a 100 MiB
//! sparse file, long and non-UTF-8 names, a 20,000-entry directory) and ext2/3/4 images
//! made from it with `mke2fs -d`, then given nanosecond, pre-1970 and post-2038
//! timestamps with `debugfs -w`. Shared by the formats and CLI tests.

use std::path::Path;
use std::process::Command;

/// Which ext flavour to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// ext2, 1 KiB blocks, 128-byte inodes (no nanoseconds, no crtime, no large xattr).
    Ext2,
    /// ext3, 4 KiB blocks.
    Ext3,
    /// ext4, 4 KiB blocks.
    Ext4,
}

/// Entries in the big directory.
pub const MANY: usize = 20_000;

/// True when this process is root.
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// The tools [`build_tree`] and [`make_fs`] run.
pub const TOOLS: [&str; 7] = [
    "mke2fs", "debugfs", "e2fsck", "setfacl", "setcap", "setfattr", "python3",
];

fn bash(script: &str) {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .env("PATH", "/usr/sbin:/sbin:/usr/bin:/bin")
        .output()
        .expect("running bash");
    assert!(
        out.status.success(),
        "script failed:\n{script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Build the source tree in `dir` (which must not exist yet). `big_xattr`: add a
/// 3,000-byte user xattr (needs a block size above 3 KiB).
pub fn build_tree(dir: &Path, big_xattr: bool) {
    let d = dir.to_str().expect("utf-8 path");
    let big = if big_xattr {
        "printf big > d/big; setfattr -n user.big -v 0x$(python3 -c 'print(\"ab\"*3000)') d/big"
    } else {
        ""
    };
    bash(&format!(
        r#"
mkdir -p {d}; cd {d}
mkdir d dacl many
printf 'setuid data\n' > d/suid; chown 1234:5678 d d/suid; chmod 4750 d/suid
printf 'capable' > d/cap; setcap cap_net_raw+ep d/cap
printf 'acl' > d/acl; setfacl -m u:42:rwx,g:43:r d/acl; setfacl -d -m u:42:rx dacl
setfattr -n user.note -v hello d/suid
{big}
printf 'hard' > h1; ln h1 h2; ln h1 h3
mknod cdev c 1 3; mknod bdev b 8 1; mknod bigdev c 259 70000
mkfifo fifo
python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.bind("sock")'
truncate -s 100M sparse; printf 'middle' | dd of=sparse bs=1 seek=52428800 conv=notrunc status=none
printf 'end' | dd of=sparse bs=1 seek=104857597 conv=notrunc status=none
truncate -s 1M allhole
ln -s d/suid short; ln -s "$(python3 -c 'print("t"*300)')" long
python3 - <<'PY'
import os
open(b"bad\xff\xfename", "w").write("not utf-8")
open("caf\u00e9 \u2603", "w").write("unicode")
os.mkdir("l" * 200)
open(os.path.join("l" * 200, "m" * 200), "w").write("deep name")
for i in range({MANY}):
    open("many/f%05d" % i, "w").close()
with open("many/f00042", "w") as f:
    f.write("forty-two")
PY
chmod 1777 dacl
"#
    ));
}

/// Make an ext filesystem image `img` from `tree`, make the big directory an htree, and
/// set nanosecond, pre-1970 and (ext3/4) post-2038 times with debugfs.
pub fn make_fs(tree: &Path, img: &Path, flavour: Flavour) {
    let (t, opts) = match flavour {
        Flavour::Ext2 => ("ext2", "-b 1024 -I 128"),
        Flavour::Ext3 => ("ext3", "-b 4096 -I 256"),
        Flavour::Ext4 => ("ext4", "-b 4096 -I 256"),
    };
    let (tr, im) = (tree.to_str().expect("utf-8"), img.to_str().expect("utf-8"));
    let mut times =
        String::from("set_inode_field /fifo mtime @-2000000000\nset_inode_field /fifo atime @-1\n");
    if flavour != Flavour::Ext2 {
        times.push_str(
            "set_inode_field /d/suid mtime @1700000000\n\
             set_inode_field /d/suid mtime_extra 0xee6b27fc\n\
             set_inode_field /h1 mtime 0x80000000\n\
             set_inode_field /h1 mtime_extra 0x5\n\
             set_inode_field /d/cap ctime_extra 0x4\n\
             set_inode_field /d/cap crtime @-100\n\
             set_inode_field /d/cap crtime_extra 0x10\n",
        );
    }
    bash(&format!(
        r#"
mke2fs -q -F -t {t} {opts} -N 25000 -d {tr} {im} 400M
e2fsck -fyD {im} >/dev/null 2>&1 || [ $? -le 2 ]
debugfs -w -f - {im} >/dev/null 2>&1 <<'DEBUGFS'
{times}
DEBUGFS
e2fsck -fn {im} >/dev/null
"#
    ));
}
