//! The long `--help` text of each command (`long_about`): what it does in detail, its
//! output formats and JSON fields. This is the command reference; `subroot man` carries it
//! and docs/json.md collects the JSON parts. The short `-h` keeps the one-line about, and
//! both keep the EXAMPLES (`after_help`, next to each command's definition).
//!
//! clap wraps these paragraphs to the terminal; indented lines (lists, field tables) are
//! kept to 80 columns so they stay as written.

/// Said by every command that reads a filesystem inside an image.
macro_rules! reading {
    () => {
        "\n\nFILESYSTEMS: ext2/3/4 (extents and block maps, inline data, htree directories, \
xattrs in the inode, in a block and in EA inodes, ns timestamps, checksums verified where \
metadata_csum is set) and FAT12/16/32 (long names; a FAT32 of fewer than 65525 clusters, as \
mkfs.fat -F 32 makes on small devices, is read as Linux reads it), XFS v4/v5 (all \
directory and attribute formats, ACLs as system.posix_acl_*, bigtime, CRCs verified on v5; \
files on a realtime device refused) and btrfs (one device, \
single and DUP chunks; crc32c, xxhash64 and sha256 checksums verified; inline, regular and \
prealloc extents, holes, zlib, lzo and zstd compression, xattrs and ACLs, hard links; the \
default subvolume, or the one --subvol names by id or by path from the top level as \
`subroot info` lists them; nested subvolumes appear as directories holding their files, as \
when the top is mounted; RAID profiles and filesystems over several devices are named and \
refused), also inside LVM2 logical volumes (-p VG/LV), inside a raw, qcow2, \
VHD, VHDX, VMDK or VDI image or as a bare filesystem image, read by subroot itself without root. The filesystem is that of \
partition -p N, else the partition holding a Linux root (/etc/os-release or \
/usr/lib/os-release, also under r0/ after a relayout; on btrfs, in the default subvolume), else the only filesystem; the choice \
is said on stderr. An ext3/4 filesystem whose journal needs recovery, or an XFS whose log \
was not cleanly unmounted, is refused (its files may be stale) unless --salvage, which reads \
what is on disk.\n\n\
PATHS inside the image are absolute or relative to its root. Symlinks on the way are \
resolved as the installed system would: an absolute target starts at the filesystem's root, \
`..` stops there, and more than 40 links is a loop.\n\n\
DAMAGE: damaged metadata is an error (exit status 3) naming the inode and what is wrong, \
never a plausible answer: extent entries out of order, overlapping, empty, past their \
index's range or breaking bigalloc's cluster rules; a directory block that is a hole or \
in an unwritten extent (--salvage reads around those and says what it skipped); a file's \
extent tree that cannot be read (--salvage gives the file the blocks the rest of its tree \
maps, zeros for the others, and names it in a warning). An xattr \
under a name index with no setxattr name (fs-verity's 11, encryption's 9, unknown ones) \
is left out with a warning naming the file; reading goes on. An unusable primary \
superblock with a good backup in group 1: the backup is read, with a warning. Warnings \
are printed even with -q."
    };
}

/// Said by every command that writes a filesystem into an image.
macro_rules! writing {
    () => {
        "\n\nOUTPUT, one of three: -o OUT writes a complete new image: the input with only that \
partition's bytes replaced (boot code, the gaps, other partitions and the partition table \
carried over byte for byte, holes kept, the container format the input's unless -O says \
otherwise), under a temporary name, re-read and checked, then renamed, so it appears \
complete or not at all. --overlay OUT writes only the clusters that changed, as a qcow2 whose \
backing file is the input (relative to OUT's directory when possible, its format recorded): \
QEMU boots it, qemu-img commit folds it into the input. --in-place changes the input itself, \
raw or qcow2 (VHD, VHDX, VMDK and VDI images are refused: use -o or --overlay), writing only the blocks that change (new qcow2 clusters are appended): the old \
bytes of everything to be overwritten, and the old length, first go to IMAGE.subroot-undo, \
which is made durable before the first write into the image and removed after the final \
sync; if the run is interrupted (a crash, SIGKILL, a full disk) the next subroot command on \
the image, or subroot recover IMAGE, rolls the edit back, so the image is the old one or the \
new one, never a mix. --in-place takes an exclusive lock on the image and refuses one that \
another program (a running QEMU) holds, and a qcow2 with internal snapshots. Whatever the \
destination, the written bytes are read back and compared with the edit. A filesystem being \
rebuilt lives in a scratch directory under $TMPDIR (a sparse file as large as the \
filesystem), removed on exit and on SIGINT/SIGTERM."
    };
}

/// The e2fsprogs subroot runs, said by every command that can rebuild an ext filesystem.
macro_rules! e2fsprogs {
    () => {
        "\n\nE2FSPROGS: ext filesystems are built with mke2fs -d, fixed up with debugfs and \
checked with e2fsck (e2fsprogs >= 1.45), found on PATH, /sbin or /usr/sbin, or given with \
--mke2fs PATH or SUBROOT_MKE2FS (its sibling debugfs, e2fsck and dumpe2fs are then \
preferred). SOURCE_DATE_EPOCH, when set, is handed to them as E2FSPROGS_FAKE_TIME and \
E2FSCK_TIME, which makes outputs reproducible."
    };
}

pub const INFO: &str = "Show an image's container, partition table, partitions and \
filesystems.\n\n\
The container (format, version, cluster size, virtual size, bytes allocated on the host, \
compression type, backing chain), the partition table and disk id, and per partition its \
number, start and size in bytes, type, name, flags and the filesystem found in it (type, \
label, UUID). Without a partition table, the filesystem on the whole disk. Filesystems are \
recognised by content: ext2/3/4, FAT12/16/32, swap, LUKS, LVM, btrfs, xfs, squashfs, erofs, \
iso9660. A btrfs's subvolumes and snapshots are listed, one `subvolume:` line each: the id \
and path from the top level that --subvol takes, the default one marked.\n\n\
JSON OUTPUT (--json): one object; fields are only ever added; sizes and offsets in bytes.
  path, format   the image as given (path_bytes, base64, when it is not
                 UTF-8); \"raw\" | \"qcow2\" | \"vhd\" | \"vhdx\" | \"vmdk\" |
                 \"vdi\"
  virtual_size   the disk's size as the guest sees it
  actual_size    bytes the file occupies on the host (qemu-img's)
  qcow2          null unless qcow2, else {version, compat (\"1.1\" for v3,
                 \"0.10\" for v2), cluster_size, compression_type
                 (\"zlib\" | \"zstd\"), extended_l2, refcount_bits,
                 lazy_refcounts, snapshots, backing_file and
                 backing_format (as in the header, or null)}
  backing_chain  [{path, format, virtual_size}], nearest first (qcow2
                 backing files, VHD/VHDX/VMDK parents)
  table          null without a partition table, else {type (\"mbr\" |
                 \"gpt\"), disk_id (GPT GUID, or MBR \"0x1234abcd\" as
                 sfdisk -J), sector_size, first_lba and last_lba (GPT
                 usable range; null for MBR), warnings (e.g. a damaged
                 primary GPT header, backup used)}
  partitions     [{number (MBR logicals from 5), start, size, kind
                 (\"primary\" | \"extended\" | \"logical\"), type (GPT
                 type GUID or MBR \"0x83\"), type_name, name (GPT, else
                 null), uuid (GPT, else null), bootable, attributes
                 (GPT bits), filesystem}]
  filesystem     the filesystem on the whole disk (no table), else null
A filesystem is null or {type, fat_bits (12/16/32 for vfat, else null), label, uuid, \
version}, and on btrfs subvolumes: [{id, path (from the top level, leading /), parent, \
default, readonly}] (or subvolumes_error, a string, when they could not be listed); type names follow blkid: ext2 ext3 ext4 vfat swap crypto_LUKS LVM2_member btrfs \
xfs squashfs erofs iso9660.";

pub const INSPECT: &str = "Tell what an installed system in an image is, read in place \
without a VM (what virt-inspector tells).\n\n\
Read-only. The root is the filesystem (on a partition, or on an LVM2 logical volume of a \
physical volume on one, as RHEL-family installs have) holding /etc/os-release or \
/usr/lib/os-release (or the same under r0/ after a relayout), in any filesystem the \
reading commands read. Paths inside the system resolve as it would see them mounted: \
through its /etc/fstab onto the right partition or volume (a separate /boot, the ESP at \
/boot/efi, /home, /var; UUID=, LABEL=, PARTUUID=, PARTLABEL=, /dev/sdXN-style names, and \
/dev/mapper/VG-LV or /dev/VG/LV for a volume) and, on a relayouted image, into r0/ except \
for the shared directories left at the top. Reported: the container and partition table; \
each partition and each logical volume (linear or striped; thin and RAID volumes are \
named in notes), its filesystem and its roles (root, esp, swap, bios-boot, lvm2-pv, the \
fstab mount points); the OS \
from os-release; hostname; machine id; the kernels in /boot with their initrds (flavour \
initramfs-tools or dracut, compression per segment, subroot hook present), examined in \
place; the boot loaders (GRUB's boot code in the MBR with its core in the MBR gap or a BIOS \
boot partition, GRUB or systemd-boot on an ESP, a grub.cfg or BLS entries in /boot) with \
their entries and kernel command lines; /etc/fstab with the partition or volume each \
line names; the \
users of /etc/passwd (never the password field); the package manager and installed \
packages (dpkg's status database is read; an rpm database is named with its format, \
sqlite, bdb or ndb, and not read); and, on a relayouted image, the roots and the default \
one (subroot= on the kernel command line).\n\n\
Missing pieces (no os-release, no fstab, a FAT or LUKS partition, an unrecognised one) are \
said under notes, not errors. A corrupt partition table or a recognised filesystem that \
does not open (a damaged ext superblock) is an error, exit status 3.\n\n\
JSON OUTPUT (--json): one object; fields are only ever added; sizes in bytes.
  image, format    the image as given; \"raw\" | \"qcow2\" | \"vhd\" | \"vhdx\" |
                   \"vmdk\" | \"vdi\"
  virtual_size     the disk's size
  table            null, or {type (\"mbr\" | \"gpt\"), disk_id}
  partitions       [{number (null: the whole disk), start, size, type,
                   type_name, name, uuid, filesystem (as in info), roles
                   (\"root\", \"esp\", \"swap\", \"bios-boot\", \"lvm2-pv\",
                   \"/boot\", ...)}]
  volumes          [{name (\"VG/LV\", as -p takes it), size, filesystem,
                   roles}]: LVM2 logical volumes
  root             null, or {partition, volume (\"VG/LV\"), subroot (\"r0\"
                   when relayouted)}
  os               null, or {file, id, version_id, name, pretty_name,
                   fields (every KEY of os-release)}
  hostname         /etc/hostname's first line, or null
  machine_id       /etc/machine-id, or null (empty until the first boot)
  fstab            [{device, mountpoint, type, options, partition, volume
                   (both null: not found on this disk)}]
  kernels          [{version, path, partition, volume, size, initrd (null, or
                   {path, size, flavour, compression [per segment],
                   segments, hook_present, error})}]
  boot_loaders     [{kind (\"grub-bios\" | \"grub-efi\" | \"systemd-boot\" |
                   \"grub-config\" | \"bls\"), location, partition, config,
                   entries [{title, kernel, initrds, cmdline}]}]
  users            [{name, uid, gid, home, shell}]
  packages         {manager (\"dpkg\" | \"rpm\" | null), database, format
                   (\"dpkg-status\" | \"sqlite\" | \"bdb\" | \"ndb\"), read,
                   count, installed [{name, version, architecture}]}
  relayout         null, or {roots [{name, pretty_name}], default}
  notes            what is missing or was not read";

pub const CONVERT: &str =
    "Copy an image to a new raw, qcow2, fixed VHD, dynamic VHDX or VMDK file, \
flattening backing chains and keeping it sparse.\n\n\
Like qemu-img convert: reads any raw, qcow2, VHD, VHDX, VMDK or VDI image (qcow2 v2/v3, \
zlib/zstd compressed clusters, extended L2, backing chains; VHD fixed, dynamic and \
differencing; VHDX fixed, dynamic and differencing; VMDK monolithicSparse, streamOptimized, \
monolithicFlat, twoGbMaxExtentSparse/Flat and ESXi -flat.vmdk descriptors, with parents; VDI \
fixed and dynamic; chains are flattened). VHD and VHDX parents are looked for beside the \
child, never outside its directory unless an absolute locator names a file that exists; a \
VMDK descriptor's extent files must lie in its own directory. The input format is detected \
from its magic (-f forces one). Writes raw, qcow2 v3, a fixed VHD (-O vhd: the disk padded \
to a whole MiB, as Azure requires, then a footer; qemu names it vpc; when that grows the \
disk, a GPT's backup header is no longer at its end: sgdisk -e moves it), a dynamic VHDX \
(-O vhdx, what Hyper-V takes: 1 MiB blocks, as Microsoft recommends for Linux guests, \
all-zero blocks left out; the size rounded up to whole 512-byte sectors) or a \
streamOptimized VMDK (-O vmdk: deflate-compressed 64 KiB grains, what vSphere and OVA \
imports take). Zero regions stay holes (raw, VHD) or unallocated clusters or blocks \
(qcow2, VMDK, VHDX); \
-c compresses clusters on all cores. A VHDX left with a log to replay (not closed cleanly) \
is read with the log replayed in memory; the file is not written. \
The output is written under a temporary name beside OUTPUT, synced, re-opened and \
checked, then renamed; an existing OUTPUT is refused without --force.";

pub const CREATE: &str = "Create a new empty image, optionally with a partition table and \
filesystems.\n\n\
qemu-img create plus sfdisk in one command. Partitions (--part SPEC, see PARTITION SPECS \
below) are aligned to 1 MiB; an MBR with more than four partitions gets an extended \
partition holding logical ones, as fdisk does. A partition with fs= gets a new filesystem \
(a fresh identity, a random FAT volume id), empty or filled from= a tree exactly as mkfs \
--from does. The image is built on a copy-on-write overlay and streamed out, so a 2 TiB \
disk costs a few sectors; it is written under a temporary name and renamed (--force to \
replace an existing file).";

pub const LS: &str = concat!(
    "List a directory of a filesystem inside an image.\n\n\
Names are sorted by bytes; names that are not UTF-8 are escaped (\\xNN). -l adds the mode \
(with s/S/t/T), uid, gid, size or major, minor, mtime (UTC) and symlink target; -R walks \
the subtree (full paths, depth-first). A symlink named as PATH is shown itself unless -L.",
    reading!(),
    "\n\nJSON OUTPUT (--json): one object per entry per line:
  path    the entry's absolute path in the filesystem
  name    its last component
  kind    file | dir | symlink | char | block | fifo | socket
  mode    permission bits as 4 octal digits (\"4755\")
  uid, gid, size
  mtime   \"SECONDS.NANOSECONDS\"
  link    the symlink target, or null
  rdev    [major, minor] for devices, or null
A path, name or link that is not UTF-8 has no such key; path_bytes, name_bytes or \
link_bytes holds its bytes in base64 instead."
);

pub const CAT: &str = concat!(
    "Copy a file out of a filesystem inside an image to stdout.\n\n\
The file's bytes, unchanged (holes read as zeros). PATH must name a regular file; symlinks \
are followed inside the filesystem, so /etc/os-release works on merged-/usr systems.",
    reading!()
);

pub const EXPORT: &str = concat!(
    "Write a filesystem (or a subtree) inside an image as a POSIX pax tar archive.\n\n\
The archive keeps ns times, owners by number, xattrs (SCHILY.xattr.*), ACLs (SCHILY.acl.*), \
capabilities, hard links, devices, fifos, long and non-UTF-8 names and sparse files (GNU \
sparse 1.0, holes never expanded). It is reproducible: the same filesystem gives the same \
bytes. Sockets cannot be in a tar: they are listed on stderr. -o FILE is written under a \
temporary name and renamed into place; an existing FILE is replaced only with --force, and \
only a regular file ever is (never /dev/null or a device); -o - streams to stdout. --force \
is about the output only: reading a damaged filesystem is --salvage.",
    reading!()
);

pub const MANIFEST: &str = concat!(
    "Print one canonical line per entry of a filesystem inside an image, with all its \
metadata and the SHA-256 of file contents.\n\n\
This is the fidelity oracle: diff the manifests of two images to prove that a rewrite lost \
nothing. Entries come in walk order (depth-first, siblings sorted by name bytes).",
    reading!(),
    "\n\nOUTPUT: 15 tab-separated fields per entry:
  path kind perm uid:gid size mtime atime ctime crtime rdev link
  hardlink flags xattrs sha256
Paths are relative (the root is `.`); times SECONDS.NANOSECONDS; rdev MAJOR,MINOR; hardlink \
the path of the first member of a hard-link group (on every member, so inode numbers never \
appear, and every member carries the group's content hash); flags 8 hex digits, the \
user-settable ext inode flags as chattr sets them (storage flags such as extents or htree \
indexing differ between equivalent filesystems and are left out); xattrs sorted NAME=HEX \
pairs joined by `,`. A field that does not apply, or that an option turned off, is `-`.\n\n\
JSON OUTPUT (--json): one object per entry per line with the same names as keys (`owner` \
for uid:gid); every value is a string, null where the text form has `-`."
);

pub const EXTRACT: &str = concat!(
    "Copy a filesystem (or a subtree) inside an image into a host directory, safely.\n\n\
DIR is created if missing. Every operation is relative to an open directory: no symlink is \
ever followed, nothing is written outside DIR and no existing file is replaced. As \
non-root, ownership, device nodes and privileged xattrs (trusted.*, security.*) are \
skipped and summed up in one line on stderr (even with -q); -v names the first ones. As \
root everything is restored.",
    reading!()
);

pub const MKFS: &str = concat!(
    "Rebuild one partition's ext or FAT filesystem from a directory, a tar archive or \
another image, as an ordinary user, losing nothing.\n\n\
TREE is a host directory, a tar archive or IMAGE[:N] (another image's partition N, or its \
chosen filesystem). A tar archive is recognised by content (a regular file whose first \
block, decompressed if it starts with a gzip, zstd, xz, lzma, lz4-legacy or bzip2 magic, is \
a tar header with a valid checksum). pax, GNU, ustar and v7 archives are read with owners, \
modes, ns times, xattrs (SCHILY.xattr.*, LIBARCHIVE.xattr.*), ACLs, devices, hard links, \
long and non-UTF-8 names and sparse files, as `tar --xattrs --xattrs-include='*' --acls \
--numeric-owner -xpf` would extract them into an empty directory: the last occurrence of a \
path wins, atime and ctime default to the mtime, and directories the archive only implies \
are made 0755, owned by 0:0, with time 0. Absolute names and `..` are refused before \
anything is written. The archive is read twice (headers, then data), streaming: memory grows \
with the number of members, not their size.\n\n\
IDENTITY: by default the filesystem keeps its identity: UUID, label, size (a filesystem \
smaller than its partition stays that size), block size, inode size and count, blocks per \
group, flex_bg size, bigalloc cluster size, the exact feature set (the host's mke2fs.conf \
never leaks in), directory hash seed and algorithm, s_flags, reserved blocks and their \
owner, default mount options, error behaviour, revision, creator OS, max mount count, check \
interval, extra-isize settings and journal size. --new-identity makes a fresh ext4 (or \
--type) filesystem instead; --uuid and --label set those two either way.\n\n\
EXT: mke2fs -d builds the filesystem into a scratch file of the partition's size, fed either \
as a tar stream on its stdin (e2fsprogs >= 1.47.1 built with libarchive: no copy on disk, \
owners and devices come through without root) or from a staging copy of the tree (older \
e2fsprogs). SUBROOT_POPULATE=tar|staging forces one; -v says which was taken. The result is \
then read back and every difference from the tree (owners, modes, ns times, xattrs, inode \
flags, devices, sockets, hard links) fixed by one debugfs script; e2fsck -fyD indexes large \
directories; finally the result is compared with the tree entry by entry (contents by \
length and XXH3-128 hash taken while populating), its identity with the requested one, and \
e2fsck -fn must be clean, or nothing is written. Memory stays bounded whatever the tree's \
size. A tree without lost+found gets mke2fs's.\n\n\
VFAT: --type vfat (or no --type on a partition that already holds FAT) builds a FAT \
filesystem in a scratch file and splices it in. An existing FAT keeps its volume id, label, \
FAT width and cluster size unless --new-identity; --label (1-11 ASCII characters) and \
--uuid XXXX-XXXX override them. A fresh FAT gets a random volume id, and is FAT32 on an EFI \
System Partition. FAT holds only directories and files: symlinks, devices, fifos, sockets \
and extra hard links are refused, naming the path; the read-only attribute comes from the \
owner-write bit; owners, other mode bits and xattrs are dropped. FAT stores local time \
without a zone: subroot writes and reads it as UTC (mtime to 2 s, creation time to 10 ms, \
access date), as mtools with TZ=UTC and Linux's vfat with tz=UTC do. Changing an ext \
partition to vfat or back needs --new-identity.",
    writing!(),
    e2fsprogs!()
);

pub const COPY_IN: &str = concat!(
    "Copy host files and directories into a directory of a partition's filesystem, like \
virt-copy-in.\n\n\
Each LOCAL (with everything in it) goes into the directory DEST, which must exist. Existing \
files are replaced and existing directories merged; a directory is never replaced by a \
file. Every copied entry keeps its owner, mode, times (ns), xattrs and flags, hard links \
among the copied files stay hard links, holes stay holes; the directories that receive \
entries keep their own metadata. On ext the filesystem is edited in process (--engine \
edit, through e2fsprogs' libext2fs): only the metadata needed is read and only the changed \
blocks are written, so the cost does not grow with the filesystem; --engine rebuild (and \
auto, for a filesystem the editor refuses, saying why) rebuilds it as mkfs does from its \
own tree with the host trees grafted in, keeping its identity. On FAT the partition is \
copied into a scratch file beside the output, edited there and spliced back. Refusals (a \
missing or non-directory DEST, a missing LOCAL, something FAT cannot hold) happen before \
anything is written.",
    writing!(),
    e2fsprogs!()
);

/// The reference of `customize`'s system operations (src/ops/customize/system), a
/// paragraph of its long help.
macro_rules! customize_system {
    () => {
        "\
SYSTEM OPERATIONS are turned into file changes in their place in the order, looking at the \
image with every earlier operation of the run applied (a user added by --append-line \
/etc/passwd:... can be given --password and --ssh-inject next):
  --hostname NAME        /etc/hostname; the 127.0.1.1 line of /etc/hosts replaced or \
added (NAME and its first label); a missing /etc/hosts is created with the localhost lines.
  --timezone TZ          /etc/localtime a relative link to ../usr/share/zoneinfo/TZ (an \
error if the image has no such zone file); /etc/timezone rewritten if present.
  --root-password SRC, --password USER:SRC
                         SRC is password:PW, file:FILE (its first line) or disabled (*). \
Hashed as the image hashes: pam_unix's option in /etc/pam.d/common-password (or \
system-auth), else ENCRYPT_METHOD of /etc/login.defs, else the kind of its shadow hashes, \
else sha512-crypt; yescrypt ($y$), sha512-crypt ($6$) or sha256-crypt ($5$), with a random \
salt from the OS. Only the user's line of /etc/shadow changes (and its last-change day, to \
the run's day, as passwd does); the file keeps its owner and mode. An unknown user is an \
error.
  --ssh-inject USER[:file:F|:string:KEY]
                         the key(s) added once to HOME/.ssh/authorized_keys (HOME from \
/etc/passwd; without a key, your ~/.ssh/id_{ed25519,ecdsa,rsa}.pub); .ssh 0700 and \
authorized_keys 0600, owned by the user.
  --firstboot SCRIPT, --firstboot-command CMD
                         run once at the next boot, in the order given: scripts go to \
/usr/lib/subroot-firstboot/scripts/NNNN-NAME, run by subroot-firstboot.service (enabled in \
multi-user.target, after network.target and before ssh), which moves each to done/ before \
running it, logs to the journal and the console, and removes its own wants link at the \
end.
  --sysprep[=OPS]        remove what makes the image one machine; OPS is a comma-separated \
list of (default: all):
     machine-id             empty /etc/machine-id, remove /var/lib/dbus/machine-id
     ssh-hostkeys           remove /etc/ssh/ssh_host_*; ssh-keygen -A at first boot
     logfiles               truncate /var/log's files; remove rotated ones and the journal
     random-seed            fresh random bytes in the saved random seeds
     dhcp-client-state      remove DHCP leases (dhclient, dhcpcd, NetworkManager)
     bash-history           remove shell and REPL histories of root and every user
     package-manager-cache  remove apt's downloaded packages and caches (dnf, yum too)
     tmp-files              remove everything in /tmp and /var/tmp
     passwd-backups         remove /etc/passwd- shadow- group- gshadow- subuid- subgid-
     udev-persistent-net    remove /etc/udev/rules.d/70-persistent-net.rules\n\n"
    };
}

pub const CUSTOMIZE: &str = concat!(
    "Change the installed system in an image without booting it, like virt-customize: \
write, upload, edit, link, chmod and chown files, set the hostname, passwords and SSH keys, \
add a first-boot script, sysprep.\n\n\
Operations run in the order given (--commands-from-file lines at the file's position), in \
one pass, against the system as it would see itself mounted: each path resolves through its \
/etc/fstab onto the right filesystem (a separate /boot, the ESP at /boot/efi, /home, /var), \
through its symbolic links as the booted system would follow them (an absolute link stays \
inside the image), and into r0/ on a relayouted image (--root rN picks another root). \
ext2/3/4 filesystems are edited in process, FAT ones through subroot's FAT writer; nothing \
else is written. A new file or directory is root:root, 0644 or 0755 (--upload keeps the \
host file's permission bits); its times are now (SOURCE_DATE_EPOCH when set). A file whose \
content changes keeps its inode, owner, mode and xattrs; if it has other hard links the \
name gets a new inode with the same metadata and the other names keep the old content, as \
after sed -i. --write, --edit, --append-line, --chmod, --chown, --touch, --truncate and \
--upload follow a symlink at the end of the path; --delete, --link and --hardlink do not. \
--tar-in keeps the archive's owners, modes, times and xattrs, and existing directories keep \
their own metadata (tar --no-overwrite-dir); --copy-in gives existing directories the host \
tree's metadata, as copy-in does.\n\n\
Everything that can be checked is checked before anything is written: a path that climbs \
above / with .., a missing parent directory (use --mkdir first), a bad regular expression, \
a user or group the image's /etc/passwd or /etc/group does not have, a path on a \
filesystem subroot does not write (xfs, btrfs...) and what FAT cannot hold (symlinks, hard \
links, owners, modes). Operations that need code running inside the guest (--install, \
--uninstall, --update, --run, --run-command) are refused: do them at the next boot with \
--firstboot or --firstboot-command.\n\n\
--edit FILE:s/REGEX/REPLACEMENT/[g] applies the substitution to each line (without its \
newline); REGEX is the Rust regex crate's syntax (Perl-like, no look-around or \
backreferences), REPLACEMENT takes $1, ${name} and $$ (write ${1}x, not $1x); any character \
after s is the delimiter, \\ escapes it. --append-line adds LINE unless a line of FILE \
already is LINE, a missing final newline first, and creates FILE when missing.\n\n",
    customize_system!(),
    "COMMANDS FILE (--commands-from-file): one operation a line, the option name without --, a \
space, the value (`write /etc/motd:hello world`, `sysprep`); blank lines and lines starting \
with # are skipped.\n\n\
JSON OUTPUT (--json; without --dry-run, printed once the image is written): {image, root_partition, subroot, \
operations: [{operation, note, changes: [{partition, filesystem, path, action, detail}]}]}; \
path is the path inside that filesystem; action is one of mkdir, create, replace-content, \
truncate, symlink, hardlink, set-metadata, remove, merge-tree (see docs/json.md).",
    writing!()
);

pub const RM: &str = concat!(
    "Remove files and directories from a partition's filesystem (guestfish rm, rmdir, \
rm-rf).\n\n\
A missing PATH, a non-empty directory without -r, and / are refused before any work. On \
ext the paths are removed in process (their blocks and inodes freed; --engine as for \
copy-in: rebuild, or auto for a filesystem the editor refuses, rebuilds without them, \
identity kept); FAT partitions are edited in a scratch copy. Names on FAT match ignoring \
case, as FAT does.",
    writing!(),
    e2fsprogs!()
);

pub const RESIZE: &str = concat!(
    "Grow a disk image, its last partition and that partition's filesystem in one rootless \
step (qemu-img resize + growpart + resize2fs, without booting the guest or a loop device), \
or shrink an ext filesystem to its contents and the partition and disk after it.\n\n\
--size SIZE (or +SIZE) is the disk's new size: a raw image gets that length (sparse), a \
qcow2 that virtual size. The partition (-p N; default: the last partition, and it must be \
the last one on the disk) takes the new space, or --part-size of it. A GPT's backup header \
and entry array move to the new end of the disk and both headers get new CRCs; an MBR \
entry grows, but cannot end beyond 2 TiB: the partition ends there and the plan says so. \
A filesystem on a disk without partition table grows with the disk. The filesystem grows \
to fill the partition: ext2/3/4 (new block groups and descriptors as resize2fs makes them; \
its UUID, label, features and every file unchanged) and swap (re-made for the new size with \
its UUID and label, as mkswap -U -L would). Refused before anything is written: a partition \
that is not the last, a logical or LVM partition, FAT, any other filesystem, a size smaller \
than the disk.\n\n\
--shrink-to-fit [--margin SIZE] shrinks an ext filesystem to the smallest size resize2fs \
can reach plus the margin, the partition to that (1 MiB aligned), and the disk to just past \
the partition (and a GPT's backup); written with -o only.\n\n\
ENGINES (--engine): edit grows the filesystem in process where it lies (e2fsprogs' \
libext2fs, the grow path of resize2fs): new block groups, their descriptors in reserved \
GDT blocks or meta_bg, flex_bg tables, checksums; only that metadata is written, so the \
cost does not grow with the data held (with --overlay or --in-place: well under a second). \
It refuses, before writing, a layout that would need blocks moved (no room for more group \
descriptors) and the features the editor refuses. rebuild runs e2fsprogs' resize2fs \
(after e2fsck -fn finds the filesystem clean) on a sparse work copy of the filesystem \
under $TMPDIR, then puts it back. auto (the default) edits, and rebuilds when the editor \
refuses, saying why. --shrink-to-fit always rebuilds. Swap needs no engine.\n\n\
--dry-run prints the plan: the old and new sizes of the disk, the partition and the \
filesystem, and the engine.\n\n\
JSON OUTPUT (--json): the plan, one object; sizes in bytes: image (path; image_bytes when \
not UTF-8), format (raw|qcow2), table (mbr|gpt|null), container {old, new}, partition \
{number, start, old, new} or null, filesystem {type, block_size, old, new}, engine \
(edit|rebuild|null for swap), engine_reason (why not edit, or null), notes (strings), direction (grow|shrink).",
    writing!(),
    e2fsprogs!()
);

pub const RECOVER: &str = "Roll back an in-place edit of an image that was interrupted.\n\n\
An --in-place edit (copy-in, rm, mkfs, relayout) first saves the old bytes of everything it \
will overwrite, and the image's old length, in IMAGE.subroot-undo beside the image, makes \
that file durable, then changes the image, syncs it and removes the log. When a run is \
interrupted, the log is still there: recover writes the old bytes back, restores the old \
length, syncs and removes the log, leaving the image exactly as it was before the edit. A \
log that was itself not completed (the edit was interrupted before it touched the image) is \
just removed. Every other subroot command does the same before it opens the image, and says \
so on stderr; recover does only that. Running it again after an interruption is safe. A log \
that belongs to another file (the image was copied or replaced) is refused and left alone.";

pub const RELAYOUT: &str = concat!(
    "Move an installed Linux system into a subroot (r0/) of its root filesystem and make it \
boot from there: the \"multiple roots\" procedure as one rootless command.\n\n\
In the root filesystem (-p N, else the partition holding a Linux root) every top-level \
entry except the shared directories (--shared) and lost+found moves into r0/ (symlinks such \
as bin -> usr/bin move as they are; --move restricts the moves to a list). Every entry \
keeps its metadata exactly (owner, mode, ns times, xattrs, flags, hard links, devices, \
holes); only paths change. Added: r0/<shared> mount points (with the owner, mode, times and \
xattrs of the shared directory), each holding an empty EMPTY; r0/sysroot, where the hook \
puts the physical root; and the hook for later initrd builds (initramfs-tools \
/etc/initramfs-tools/scripts/local-bottom/subroot, or the dracut module). Every initrd \
(/boot/initrd.img-*, /boot/initramfs-*.img and the initrd lines of grub.cfg and BLS entries) \
gets the hook (as `initrd add-subroot`: segments and compression kept). subroot=r0 is set \
on every kernel command line (linux/linuxefi/linux16 lines of grub.cfg, BLS options, \
GRUB_CMDLINE_LINUX in r0/etc/default/grub, r0/etc/kernel/cmdline), replacing an existing \
subroot= rather than adding another. The filesystem keeps its identity (UUID, label, \
features, sizes, hash seed), so root=UUID=, fstab and GRUB keep working; every other byte of \
the disk is copied unchanged. An edited file that has other hard links gets an inode of its \
own (as after sed -i).\n\n\
ENGINES: `edit` changes the filesystem in process through e2fsprogs' libext2fs, over a \
copy-on-write view of the input: each moved entry is renamed into r0 (no file data is \
copied; a moved directory's `..` and the link counts follow), added files are written into \
free blocks, and a rewritten initrd only gets its new segment appended where it lies; it \
reads only the metadata it needs, so its cost does not grow with the filesystem. \
`rebuild` builds the filesystem anew with mke2fs -d from the planned tree (every file \
copied; the result is compact, as after mkfs). `auto` edits unless the filesystem uses \
something the editor does not handle (quota, inline_data, encryption, casefold, verity, an \
orphan list or a journal that needs recovery, errors recorded by the kernel) and then \
rebuilds; the plan says which engine runs and why. --engine edit where it cannot apply is \
refused (exit status 3). After an edit, subroot's own reader re-reads what was touched: \
every changed directory parses and resolves, checksums verify, and the free counts of \
every group agree with its bitmaps. A rebuilt filesystem is compared with the planned tree \
and checked with e2fsck -fn.\n\n\
SEPARATE /BOOT: when the root's /etc/fstab mounts /boot from another ext2/3/4 partition of \
the disk (by UUID=, LABEL=, PARTUUID=, PARTLABEL=, their /dev/disk/by-* forms, or a device \
name such as /dev/vda1), that partition's boot configuration and initrds are edited the \
same way, with its own identity; the root's /boot stays the (empty) mount point. At boot \
the hook binds no shared directory that the subroot's own /etc/fstab mounts, so the system \
mounts the /boot partition itself.\n\n\
ESP: boot configuration on FAT EFI system partitions (EFI/*/grub.cfg, grub/grub.cfg, \
grub2/grub.cfg, boot/grub/grub.cfg, loader/entries/*.conf, case-insensitively) is edited \
through the FAT writer in a scratch copy, overwriting only those files (each keeps its \
times and attributes; volume id, label and layout stay). ESPs that need no edit are copied \
byte for byte.\n\n\
PLAN: computed first and printed on stderr (on stdout with --dry-run, which writes \
nothing). Refused, exit status 3, naming what was found: an image already relayouted (/r0 \
exists with content; an initrd already has the hook, unless --refresh-hook), no initrd, an initrd \
that is neither initramfs-tools nor dracut, initrds of both flavours, a root on LUKS, LVM, \
btrfs, XFS or another non-ext filesystem, a separate /boot that cannot be found or is not \
ext2/3/4. Afterwards, commands that choose the filesystem themselves (ls, cat, manifest...) \
recognise the relayouted root by /r0/etc/os-release, so `subroot ls OUT /r0` needs no -p.\n\n\
UNDO (--undo): the inverse of a relayout, on an image whose --subroot (r0) is its only \
root. subroot= comes off every kernel command line relayout edits (the same files, on the \
root filesystem, a separate /boot and the ESPs; a set followed by a removal gives each line \
back byte for byte), and the boot entries `roots default --entry` added are dropped; the \
hook installed for later initrd builds goes, with the directories relayout made for it; \
each initrd ending with the segment relayout appended is cut back to its original bytes \
(one that carries the hook inside its main archive, rebuilt in the relayouted system, is \
left, with a warning); the mount-point stubs (r0/boot, r0/var, r0/home holding only an \
empty EMPTY) and r0/sysroot are removed, every other entry of r0/ is renamed back to the \
top (inode, data and metadata untouched) and r0 is removed. Everything is edited in process \
by the ext editor, which leaves every directory's times alone, so relayout followed by \
--undo gives back the input's tree: `subroot manifest` is equal line for line, directory \
times included. Refused (exit status 3): an image where --subroot is not a root, one with \
other roots (remove them first), an entry of r0/ whose name is taken at the top by \
something that is not such a stub. --dry-run (--json) shows what would be done: image, \
subroot, moves[{from, to, kind}], removed[paths], edits[as below], initrds[{path, \
partition, size, new_size}], warnings[].\n\n\
OUTPUT: -o OUT (a complete new image in the input's container format unless -O says \
otherwise; --force replaces an existing OUT), --overlay OUT (a qcow2 holding only the \
changed clusters, backed by the input) or --in-place (the input itself, only the changed \
blocks, crash safe under an undo log; see mkfs --help, OUTPUT, and subroot recover). With \
SOURCE_DATE_EPOCH set the output is byte-for-byte reproducible (it dates the entries the \
hook adds to initrds and is handed to e2fsprogs).\n\n\
JSON OUTPUT (--json): the plan as one object (with --dry-run, as planned; after a run, \
with the engine and partition actions actually used):
  image, root_partition (number or null), filesystem, uuid, subroot
  shared          the shared directory names
  shared_missing  those the image does not have
  moves           [{from, to, kind}]
  skipped         --move names that do not exist
  kept            paths that stay where they are
  created         [{path, kind, mode (octal text), uid, gid, why}]
  edits           [{path, partition, what, changes: [{line (1-based),
                  old (empty for an added line), new}]}]; what:
                  grub-cfg | bls-entry | default-grub | kernel-cmdline;
                  partition only for a file on a separate /boot (path
                  is then relative to that filesystem)
  initrds         [{path, partition (as for edits), flavour, size,
                  hook_present}]
  flavour         initramfs-tools | dracut
  installed       [{path, action: add | replace}]: the hook for later
                  initrd builds
  partitions      [{number, start, size, filesystem, action: edit |
                  rebuild | copy}]
  boot_partition  null, or {partition, fstab_device, filesystem, uuid}
  esp_edits       as edits, with the ESP's partition
  engine          edit | rebuild (rebuild if any filesystem was)
  engine_reason   null, or why the rebuild runs (after a run, also why
                  an edit fell back to it)
A from, to or path that is not UTF-8 has no such key; from_bytes, to_bytes or path_bytes \
holds its bytes in base64 instead; an element of kept is then {path_bytes}.",
    e2fsprogs!()
);

/// The batch machinery, said once for both operations.
macro_rules! batch {
    () => {
        "\n\nLIST: images as arguments, or --from-list FILE: one path per line, surrounding blanks \
trimmed, blank lines and lines starting with # ignored. An empty list is an error, as are two \
inputs that would get the same output name (checked over the whole list) and an output that \
would replace its input.\n\n\
JOBS: -j N images at a time (default: the number of cores), in-process on worker threads. \
Existing outputs are replaced (unless --resume finds them done).\n\n\
SIDECARS: after each output is renamed into place, OUTPUT.subroot.json is written (also \
atomically); a failed image gets a sidecar with \"result\": \"failed\" and no output.\n\n\
RESUME: --resume skips an image whose output exists with the size its sidecar records and \
whose sidecar says ok for the same subroot version, operation, options and input \
fingerprint (path, size, mtime, device and inode of the input and of its backing chain); \
everything else is redone. A run stopped any way (Ctrl-C, kill -9, machine loss) continues \
where it stopped. Temporary files (.NAME.subroot-tmp-PID) of this run's outputs whose \
process is gone are removed at start-up; others are left to the shards writing them.\n\n\
SHARDS: --shard I/N (0-based) handles the images whose file name (the last path component, \
as bytes) hashes to I modulo N with 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime \
0x100000001b3): the same on every machine, platform and release.\n\n\
FAILURES: every image is attempted, so one bad image never stops a fleet; with --fail-fast \
no new image is started after the first failure (running ones finish). The summary on stderr \
lists every failure with its message. Exit status 0 only when every image succeeded or was \
skipped as done, otherwise 1 (bad arguments: 2). With stderr on a terminal a line per \
running job and an overall bar are shown; -v prints a line per finished image, -q only the \
failures.\n\n\
JSON OUTPUT (--json): one object per finished image per line, in finishing order:
  input          the path as given
  output         where the output is (or would have been)
  status         ok | failed | skipped (--resume: already done)
  seconds        the job's wall time
  bytes_read     guest data read from the input and its backing chain
  bytes_written  written to the output (0 when skipped)
  error          the message when failed, else null
The sidecar OUTPUT.subroot.json (fields are only ever added): subroot_version, \
operation, options, input {path, size, mtime_ns, dev, ino, backing_chain [same fields]}, \
output {path, size (null when failed)}, result (ok | failed), error, seconds, bytes_read, \
bytes_written. A path that is not UTF-8 (input, output, path) has no such key; \
input_bytes, output_bytes or path_bytes holds its bytes in base64 instead."
    };
}

pub const BATCH: &str = concat!(
    "Run one operation (convert or relayout) on many images, in parallel, resumable and \
shardable over machines.\n\n\
The operation is a nested subcommand with its own options; the batch options are shared. \
Each image goes into --out-dir as <input file stem>.raw, .qcow2, .vhd, .vhdx or .vmdk.",
    batch!()
);

pub const BATCH_CONVERT: &str = concat!(
    "Convert each image to <stem>.raw, .qcow2, .vhd, .vhdx or .vmdk in --out-dir, as `subroot \
convert`.\n\n\
Each image goes through the same streaming writer as convert (bounded memory, temporary \
file, check, rename). A qcow2 job with -c uses cores/-j compression threads. The sidecar's \
options are {output_format, compress, cluster_size} ({output_format} for raw).",
    batch!()
);

pub const BATCH_RELAYOUT: &str = concat!(
    "Relayout each image, as `subroot relayout`, into <stem>.raw, .qcow2, .vhd, .vhdx or .vmdk \
in --out-dir.\n\n\
The relayout options are checked once, before any image is touched, and are part of the \
sidecar's options ({format: {output_format, compress, cluster_size}, partition, subroot, \
shared, move, source_date_epoch}), so --resume redoes an image whose relayout options \
changed. An image relayout refuses fails alone with relayout's message. Each job's work \
directory is DIR/.OUTPUT.work.subroot-tmp-PID, removed when the job ends and, after a \
kill, by the next run. bytes_read is 0 (relayout reads its input in several passes). With \
SOURCE_DATE_EPOCH set outputs are byte-for-byte reproducible, so a resumed run gives the \
same bytes as an uninterrupted one.",
    batch!()
);

/// How initrds are read, said for every initrd command.
macro_rules! initrd {
    () => {
        "\n\nINITRDS are concatenated segments: plain newc cpio archives (early microcode) and \
compressed streams (gzip, zstd, xz, lzma, lz4 legacy, bzip2) holding archives, with zero \
padding between, read as the kernel reads them, streamed with bounded memory. A command \
that reads an initrd takes FILE, or --image IMG [-p N] PATH to read the file at absolute \
PATH inside the image's ext2/3/4 filesystem in place (symlinks such as /initrd.img are \
followed)."
    };
}

/// The compressors' memory bound, said by the commands that compress.
macro_rules! compressors {
    () => {
        "\n\nCOMPRESSION memory is bounded whatever the level (about 62 MiB at zstd 19, 60 MiB \
at xz 6): zstd caps the hash table at 2^21 cells, the chain table at 2^20 and the window at \
4 MiB, and runs in fixed 4 MiB jobs with as many workers as a 64 MiB budget allows (the \
output is the same for any worker count); xz and lzma cap the dictionary at 4 MiB."
    };
}

pub const INITRD: &str = concat!(
    "Examine, list, extract and create initrds, and add the subroot boot hook to them.",
    initrd!()
);

pub const INITRD_EXAMINE: &str = concat!(
    "Show an initrd's segments, its flavour and whether the subroot hook is present.\n\n\
Per segment: offset, length, compression, archives, entries, uncompressed size, role \
(early: before the main archive; main: the last segment with an init; subroot-hook: the \
segment add-subroot appended; extra) and, for xz, the integrity check (a warning on stderr when it is CRC64 or SHA-256, which the kernel \
cannot verify). The flavour is initramfs-tools, dracut or other.",
    initrd!(),
    "\n\nJSON OUTPUT (--json): one object:
  path, size             the initrd and its length in bytes
  flavour                initramfs-tools | dracut | other
  hook_present           whether the subroot hook is in it
  segments               [{index, offset, length, compression, archives,
                         entries, uncompressed_size, xz_check, role}]
  warnings               [text]
compression: none | gzip | zstd | xz | lzma | lz4 | bzip2; xz_check: none | crc32 | \
crc64 | sha256, or null for other compressions; role: early | main | subroot-hook | \
extra. Each gzip member, zstd frame and xz stream is a segment of its own, as the kernel \
unpacks them."
);

pub const INITRD_LS: &str = concat!(
    "List the entries of an initrd as the kernel unpacks them.\n\n\
Each path once (./x, x and x/ are one path), listed where it last occurs: the kernel \
unpacks segments in order and a later entry replaces an earlier one of the same path. \
--segments lists every entry of every segment in order instead, names as stored (like \
cpio -t of each segment). -l is cpio -tvn's format with times in UTC.",
    initrd!(),
    "\n\nJSON OUTPUT (--json): an array of one object per entry:
  segment, archive       where the entry is (0-based)
  name                   as stored
  type                   file | dir | symlink | char | block | fifo |
                         socket | unknown
  mode                   the full st_mode, as a number
  nlink, uid, gid, size, mtime (seconds), ino, rdev_major, rdev_minor
  link_target            the symlink target, or null
  replaces               (merged listing only) the segments of the earlier
                         entries of the same path this one replaces
A name or link_target that is not UTF-8 has no such key; name_bytes or link_target_bytes \
holds its bytes in base64 instead."
);

pub const INITRD_EXTRACT: &str = concat!(
    "Extract every entry of an initrd into a host directory.\n\n\
DIR is created; a path given twice takes the last (the kernel's semantics). Absolute and \
`..` names are refused before anything is written, and nothing is ever written outside DIR \
(no symlink is followed). As root, owners and device nodes are restored; otherwise one line \
says what was not.",
    initrd!()
);

pub const INITRD_CREATE: &str = concat!(
    "Create an initrd from host directories and existing initrds or cpio archives, \
reproducibly.\n\n\
Each SOURCE becomes one segment, in order: a host directory becomes a newc archive \
(sorted, the root as `.`, hard links with the data on the first link, SOURCE_DATE_EPOCH \
clamps mtimes) compressed with --compress (default zstd, level 19); an initrd or cpio file \
is checked and copied byte for byte. Plain segments are 4-byte aligned. The same inputs \
give the same bytes. The output is written atomically (--force replaces an existing file).",
    compressors!()
);

pub const INITRD_ADD_SUBROOT: &str = concat!(
    "Add the subroot boot hook to an initrd.\n\n\
The hook boots subroot=DIR from the kernel command line: initramfs-tools gets \
scripts/local-bottom/subroot and its ORDER line, dracut a pre-pivot hook (in \
/var/lib/dracut/hooks when the initrd's dracut-lib.sh names that directory, as dracut 057 \
and later do; else in /lib/dracut/hooks or /usr/lib/dracut/hooks). It bind-mounts \
the --shared directories of the physical root into the subroot, except those the \
subroot's own /etc/fstab mounts.\n\n\
APPEND (the default): the input's bytes are copied unchanged and followed by one small \
segment holding the script, the directories it needs that the initrd lacks and, for \
initramfs-tools, scripts/local-bottom/ORDER as the initrd has it (or as mkinitramfs would \
write it) with the hook's line added; the kernel unpacks segments in order and a later \
entry replaces an earlier one, so these copies win. The segment is compressed like the \
last one (gzip, zstd, xz; or none, 4-byte aligned), so lsinitramfs, unmkinitramfs and \
lsinitrd, which decompress everything after the early archives as one stream, list what \
they listed before (they stop at the main archive's trailer and do not show the hook; a \
plain segment behind a compressed one would break them). lzma, bzip2 and lz4-legacy \
initrds are recompressed instead: the kernel does not report where such a stream ends. The \
main segment's compression and level stay byte for byte.\n\n\
COST: with -o, a copy of the input; with --in-place, the segment alone (a few KiB); plus, \
either way, decoding what the hook depends on. mkinitramfs and dracut \
write the main archive from a byte-sorted file list (find | LC_ALL=C sort | cpio), and \
everything the hook depends on (init, conf/, scripts/, {usr/,}lib/dracut*) sorts before \
the bulk (usr/lib/modules, usr/lib/firmware). So decoding stops once the main segment's \
names, in strictly increasing order from its first one, pass those paths, and the rest of \
the segment is skipped unread: for zstd its end is read from the block headers; for gzip \
the segments behind it (an appended hook) are found by reading the last MiB of the file. \
An xz or plain main segment is still decoded to its end, as is a dracut initrd whose hooks \
live in /var/lib/dracut/hooks, which sorts after the bulk. A name out of order before \
that point means the whole segment is decoded. --full-scan decodes everything, for a \
hand-made archive that is sorted at first and repeats a hook path later out of order, or \
one with more than a MiB of segments behind a gzip main segment.\n\n\
IDEMPOTENT: when the same hook is there already it prints `already present`, writes an \
identical copy and exits 0. A hook with other content (other --shared, an older subroot) \
is refused (exit status 3) unless --refresh-hook, which replaces only the segment subroot \
appended, never stacking another. --recompress (implied by --compress) puts the hook inside \
the main segment and re-encodes it (its own compression unless --compress), folding an \
appended segment in.\n\n\
IN PLACE (--in-place; FILE a host file): the segment is written into FILE after its last \
byte, or over the segment subroot appended earlier (--refresh-hook; the file is cut or \
grown to fit), so the cost does not depend on the initrd's size; the result is byte for \
byte what -o writes. Crash safe: the bytes it overwrites or cuts off are first saved in \
FILE.subroot-undo, made durable with its directory, and FILE is locked while it changes; a \
run that is interrupted leaves the log, and the next initrd command on FILE (or `subroot \
recover FILE`) puts the old file back first, so FILE is always the old initrd or the new \
one. Refused (exit status 3, nothing written): an initrd ending in an lzma, bzip2 or lz4-legacy stream, which must \
be re-encoded (-o OUT). An initrd inside an image gets its segment in place from \
`subroot relayout --in-place`.\n\n\
Reproducible: SOURCE_DATE_EPOCH (else 0) is the added entries' mtime. OUT is written \
atomically (--force replaces an existing file).",
    initrd!(),
    compressors!()
);

/// What `roots`, `roots list` and the JSON say about listing.
macro_rules! roots_listing {
    () => {
        "A ROOT is a top-level directory of the root filesystem (the partition holding a \
Linux root) other than lost+found that holds etc/os-release or usr/lib/os-release: a \
system the initrd hook can enter when the kernel command line says subroot=NAME. \
`subroot relayout` makes r0; `roots add` makes more. The other top-level directories \
(boot, var, home, ... and the mount-point stubs) are shared by every root.\n\n\
For every boot entry found (GRUB's grub.cfg, on the ESP or in /boot; BLS/systemd-boot \
entries), the root its kernel command line selects (subroot=NAME; none: the physical \
root). The DEFAULT root is subroot= of the first boot entry (what the boot loader starts \
without a choice), else of /etc/kernel/cmdline or /etc/default/grub. An entry that \
selects a root which is not there is a note. An image that is not relayouted is an \
error.\n\n\
JSON OUTPUT (--json): one object.
  image          the image as given
  partition      the partition holding the root filesystem (null: the whole
                 disk)
  default        the default root's name, or null when nothing in the image
                 names one
  roots[]        name, pretty_name (its os-release), default (bool),
                 entries (how many boot entries select it)
  entries[]      loader (grub-bios, grub-efi, systemd-boot, grub-config, bls),
                 config (the file), title, kernel, root (subroot= of its
                 command line; null: the physical root)
  notes[]        what is odd (an entry naming a missing root, no default)"
    };
}

pub const ROOTS: &str = concat!(
    "List, add and remove the roots of a relayouted image and choose the one that boots. \
`subroot roots IMAGE` lists them (as `roots list IMAGE`); `roots add` and `roots remove` \
change them, `roots default` makes one boot (or adds a boot entry per root; see their \
--help).\n\n",
    roots_listing!()
);

pub const ROOTS_LIST: &str = concat!(
    "List the roots of a relayouted image, the boot entries with the root each selects, \
and the default root.\n\n",
    roots_listing!()
);

pub const ROOTS_ADD: &str = concat!(
    "Add a root NAME to a relayouted image as a clone of the root --from, in process \
(through e2fsprogs' libext2fs over a copy-on-write overlay; the input is never written \
unless --in-place).\n\n\
In NAME every directory, symlink, device node, fifo and socket of the source is made anew \
with the same owner, mode, nanosecond times, xattrs and flags. Every regular file is a \
HARD LINK to the source's file: the same inode, so no file data is copied and the cost is \
metadata only (an --overlay holds a few MiB whatever the data size). Hard links inside \
the source stay hard links.\n\n\
LINKED FILES ARE SHARED BETWEEN ROOTS: a file written in place (opened for writing, \
appended to, truncated) changes in every root that links it. Replacing it by writing a \
new file and renaming it over the old name, as dpkg, rpm, apt, sed -i and subroot's own \
copy-in do, changes only the root it happens in: the other roots keep the old inode. So \
regular files under the directories of --copied (default etc,root,tmp,usr/local) are \
COPIED, each into a new inode of its own: /etc (configuration that administrators and \
tools edit in place: >>, editors that rewrite the file, passwd tools), /root (root's \
shell history and dotfiles, appended in place), /tmp and /usr/local (scratch and locally \
installed files, written in place). --copied '' links everything; --copy copies every \
file (nothing shared; costs the data).\n\n\
NAME must be new: one word of ASCII letters, digits, `.`, `_`, `+`, `-` (it goes on the \
kernel command line as subroot=NAME), not starting with `-` or `.`, not an existing \
top-level name. --from must be one of the roots `subroot roots IMAGE` lists. Both are \
checked before anything is written. The boot configuration is not changed: the new root \
boots once a boot entry says subroot=NAME (`subroot roots default`). A filesystem the \
in-process editor refuses (see copy-in) is refused with the reason (exit status 3).",
    writing!()
);

pub const ROOTS_REMOVE: &str = concat!(
    "Remove the root NAME of a relayouted image: its whole tree, in process (through \
e2fsprogs' libext2fs over a copy-on-write overlay).\n\n\
A file NAME shares with other roots (a hard link made by `roots add`) only loses a link: \
the other roots keep it, with its data and its link count one lower. The default root \
and the last root are refused, and so is a NAME that is not a root, before anything is \
written; a boot entry that selects NAME is warned about (it will not boot).",
    writing!()
);

pub const ROOTS_DEFAULT: &str = "Make ROOT the root that boots: every boot configuration file \
relayout edits says subroot=ROOT afterwards — grub.cfg (linux/linuxefi/linux16 lines) and \
Boot Loader Specification entries (options) on the boot filesystem (the shared /boot, or a \
separate /boot partition named by ROOT's /etc/fstab), GRUB and BLS files on FAT ESPs \
(EFI/*/grub.cfg, grub/grub.cfg, grub2/grub.cfg, boot/grub/grub.cfg, loader/entries/*.conf), \
and GRUB_CMDLINE_LINUX in /etc/default/grub and /etc/kernel/cmdline inside EVERY root, so \
that a later update-grub or kernel-install in any root keeps the choice. An existing \
subroot= is replaced in place; nothing else on a line changes; each file keeps its inode, \
owner, mode and times. Running it again changes nothing.\n\n\
ROOT must be a root (a top-level directory holding an operating system); anything else is \
an error naming the roots there are. The files are edited in process by the ext editor \
(no file data moves; a filesystem the editor cannot take is refused, exit status 3) and \
through the FAT writer on ESPs.\n\n\
--entry: instead of switching the default, add a boot entry per root so one can be picked \
at the boot menu: the first menuentry of each grub.cfg is copied to the end of the file as \
'TITLE (subroot rN)' with the menu entry id subroot-rN and subroot=rN on its linux line, and \
each BLS entry X.conf gets a copy X.subroot-rN.conf titled likewise. Entries already there \
are kept. update-grub regenerates grub.cfg from /etc/default/grub and /etc/grub.d, so it \
drops the GRUB copies (the BLS copies stay).\n\n\
OUTPUT: -o OUT (a new image), --overlay OUT (a qcow2 of the changed clusters backed by the \
input) or --in-place (crash safe under an undo log); --dry-run prints the changes and \
writes nothing.\n\n\
JSON OUTPUT (--json): image, root, roots, entry (true with --entry), edits[] and created[] \
(each: path, partition when not the root filesystem, what, changes[] of line, old, new).";

pub const ROOTS_FLATTEN: &str = "Move ROOT back to the top of the root filesystem and remove \
everything relayout added: the same as `subroot relayout --undo --subroot ROOT` (see \
relayout --help, UNDO). ROOT must be the only root: remove the others first (roots \
remove). Relayout followed by flatten gives back the input's tree, manifest equal line for \
line; initrds come back byte for byte.\n\n\
JSON OUTPUT (--json): image, subroot, moves[{from, to, kind}], removed[paths], edits[{path, \
partition, what, changes[{line, old, new}]}], initrds[{path, partition, size, new_size}], \
warnings[].";
