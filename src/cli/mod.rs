//! The clap definitions of every command, with the help texts and examples: the top
//! level and the shared value types here, each command family's arguments in its own file.
//!
//! Completions and the man page are generated from these definitions
//! (`subroot completions SHELL`, `subroot man`), so they never drift from the parser.

mod batch;
pub mod customize;
mod disk;
pub(crate) mod help;
#[cfg(test)]
mod help_check;
mod initrd;
pub mod man;
pub mod output;
pub mod read;
pub mod relayout;
pub mod resize;
pub mod roots;
mod select;
mod write;

pub use batch::{BatchArgs, BatchCommand, BatchCommonArgs, BatchConvertArgs, BatchRelayoutArgs};
pub use disk::{ConvertArgs, CreateArgs, InfoArgs, InspectArgs, Qcow2OutArgs};
pub use initrd::*;
pub use select::{PartSpec, PartitionArgs};
pub use write::{CopyInArgs, EditOutArgs, ExtTypeArg, MkfsArgs, RmArgs};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The top-level directories that stay shared between the subroot and the physical root
/// unless `--shared` says otherwise (`relayout`, `batch relayout`, `initrd add-subroot`):
/// [`subroot_formats::initrd::DEFAULT_SHARED`] spelled as clap's default (a test checks
/// they agree).
pub const DEFAULT_SHARED: &str = "boot,var,home";

/// Edit Linux disk images entirely in userspace: no root, loop mounts, nbd, FUSE or KVM.
#[derive(Debug, Parser)]
#[command(
    name = "subroot",
    version,
    about,
    long_about = "subroot reads and writes disk images (raw, qcow2), their partition tables (MBR, GPT) \
and filesystems as an ordinary user, and converts installed Linux images so that they boot \
from a sub-directory of their root filesystem (subroot=r0).",
    after_help = crate::exit::HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more about what is being done (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The mke2fs every command that builds an ext filesystem runs (also SUBROOT_MKE2FS;
    /// default: mke2fs on PATH, /sbin, /usr/sbin); its sibling debugfs, e2fsck and dumpe2fs
    /// are preferred.
    #[arg(long, global = true, value_name = "PATH")]
    pub mke2fs: Option<std::path::PathBuf>,
    /// Read extent files that a VMDK descriptor names by an absolute path or through `..`
    /// (refused by default: a descriptor from elsewhere could otherwise make subroot read
    /// any file you can). Applies to the image named on the command line.
    #[arg(long, global = true)]
    pub allow_outside: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show an image's container, partition table, partitions and filesystems.
    #[command(
        long_about = help::INFO,
        after_help = "EXAMPLES:\n  subroot info debian.qcow2\n  subroot info --json disk.raw | jq '.partitions[].filesystem'"
    )]
    Info(InfoArgs),
    /// Tell what an installed system in an image is: OS, kernels, boot loaders, fstab, users, packages.
    #[command(
        long_about = help::INSPECT,
        after_help = "EXAMPLES:\n  subroot inspect debian.qcow2\n  \
subroot inspect --json disk.raw | jq -r '.os.pretty_name, .kernels[].version'\n  \
subroot inspect --json disk.raw | jq -r '.packages.installed[] | \"\\(.name) \\(.version)\"'\n  \
subroot inspect --json rocky.qcow2 | jq -r '.fstab[] | \"\\(.mountpoint) \\(.volume // .partition)\"'\n  \
for i in *.qcow2; do subroot inspect --json \"$i\" | jq -c '{image, os: .os.id, root: .root}'; done"
    )]
    Inspect(InspectArgs),
    /// Copy an image to a new raw, qcow2, VHD, VHDX or VMDK file, flattening backing chains, keeping it sparse.
    #[command(
        long_about = help::CONVERT,
        after_help = "EXAMPLES:\n  subroot convert debian.qcow2 debian.raw\n  \
subroot convert disk.raw disk.qcow2 -O qcow2 -c zstd\n  \
subroot convert overlay.qcow2 flat.qcow2 -O qcow2 --cluster-size 2M\n  \
subroot convert hyperv.vhdx azure.vhd -O vhd\n  \
subroot convert debian.qcow2 hyperv.vhdx -O vhdx\n  \
subroot convert box.vdi vsphere.vmdk -O vmdk"
    )]
    Convert(ConvertArgs),
    /// Create a new empty image, optionally with a partition table and filesystems.
    #[command(long_about = help::CREATE, after_help = "EXAMPLES:\n  subroot create disk.raw --size 2G\n  \
subroot create disk.qcow2 -O qcow2 --size 8G --table gpt \\\n      --part size=200M,type=esp,name=EFI --part size=rest,type=linux,name=root\n  \
subroot create disk.raw --size 1G --table mbr --part size=100M,type=linux,bootable --part size=rest,type=swap\n  \
subroot create gnomeos.raw --size 2G --table mbr --part size=rest,type=linux,fs=ext2,from=rootfs/\n  \
subroot create uefi.raw --size 1G --table gpt --part size=100M,type=esp,fs=vfat,from=esp/ --part size=rest,type=linux,fs=ext4\n\n\
PARTITION SPECS (comma-separated key=value):\n  \
size=SIZE|rest    K/M/G/T suffix (powers of 1024) or bytes; `rest` takes\n                    \
what is left\n  \
type=ALIAS|CODE   linux, esp, swap, bios, lvm, raid, home, fat32; an MBR\n                    \
code (0x83) or a GPT type GUID\n  \
name=NAME         the GPT partition name\n  \
bootable          MBR active flag / GPT legacy BIOS bootable attribute\n  \
fs=TYPE           make a filesystem: ext2, ext3, ext4, vfat, fat12, fat16,\n                    \
fat32 (vfat: the width from the size; an ESP is FAT32)\n  \
from=TREE         fill it from a directory, a tar archive (plain or\n                    \
compressed) or IMAGE[:N], as mkfs --from (needs fs=)")]
    Create(CreateArgs),
    /// Rebuild a partition's ext or FAT filesystem from a directory, a tar archive or another image, keeping its identity.
    #[command(
        long_about = help::MKFS,
        after_help = "EXAMPLES:\n  subroot mkfs disk.qcow2 -p 1 --from rootfs/ -o new.qcow2\n  \
subroot mkfs disk.raw -p 2 --from other.raw:1 --in-place\n  \
subroot mkfs disk.raw -p 1 --from rootfs.tar.zst -o out.raw\n  \
subroot mkfs disk.raw -p 1 --from dir/ --new-identity --type ext2 --label root -o out.raw\n  \
subroot mkfs disk.raw -p 1 --type vfat --from esp-tree/ -o out.raw   (keeps the FAT volume id and label)"
    )]
    Mkfs(MkfsArgs),
    /// Print shell completions for SHELL to stdout.
    #[command(
        after_help = "EXAMPLES:\n  subroot completions bash > /etc/bash_completion.d/subroot\n  subroot completions zsh > ~/.zfunc/_subroot"
    )]
    Completions {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    #[command(after_help = "EXAMPLES:\n  subroot man > subroot.1 && man -l subroot.1")]
    Man,
    /// List a directory of a filesystem inside an image (ext2/3/4, FAT, XFS).
    #[command(long_about = help::LS, after_help = "EXAMPLES:\n  subroot ls debian.qcow2 /etc\n  \
subroot ls disk.raw -p 1 -l /EFI/BOOT\n  subroot ls debian.qcow2 -R --json /usr/bin | jq -r .path")]
    Ls(read::LsArgs),
    /// Copy a file out of a filesystem inside an image to stdout.
    #[command(
        long_about = help::CAT,
        after_help = "EXAMPLES:\n  subroot cat debian.qcow2 /etc/os-release\n  \
subroot cat disk.raw -p 1 /EFI/BOOT/grub.cfg > grub.cfg"
    )]
    Cat(read::CatArgs),
    /// Write a filesystem (or a subtree) inside an image as a pax tar archive.
    #[command(
        long_about = help::EXPORT,
        after_help = "EXAMPLES:\n  subroot export debian.qcow2 -o rootfs.tar\n  \
subroot export debian.qcow2 /etc -o - | tar -tvf -\n  \
subroot export disk.raw -p 2 -o root.tar   # then, as root: tar --xattrs --xattrs-include='*' --acls --numeric-owner -xpf root.tar -C /mnt"
    )]
    Export(read::ExportArgs),
    /// Print one canonical line per entry of a filesystem inside an image (all metadata + SHA-256).
    #[command(
        long_about = help::MANIFEST,
        after_help = "EXAMPLES:\n  subroot manifest debian.qcow2 > before.txt\n  \
subroot manifest --no-atime --no-ctime a.qcow2 > a.txt; subroot manifest --no-atime --no-ctime b.raw > b.txt; diff a.txt b.txt\n  \
subroot manifest --json disk.raw -p 2 /etc | jq -r 'select(.kind==\"file\") | .path'"
    )]
    Manifest(read::ManifestArgs),
    /// Copy a filesystem (or a subtree) inside an image into a host directory, safely.
    #[command(
        long_about = help::EXTRACT,
        after_help = "EXAMPLES:\n  subroot extract debian.qcow2 /etc -C etc-copy\n  \
subroot extract disk.raw -p 1 -C esp/\n  \
subroot extract debian.qcow2 -C /srv/rootfs   # run as root, it also restores owners, devices, all xattrs"
    )]
    Extract(read::ExtractArgs),
    /// Move an installed Linux system into a subroot (r0/) of its root filesystem and make it boot from there.
    #[command(
        long_about = help::RELAYOUT,
        after_help = "EXAMPLES:\n  subroot relayout debian.qcow2 -o debian-r0.qcow2 -O qcow2\n  \
subroot relayout debian.raw --dry-run\n  \
subroot relayout debian.raw --dry-run --json | jq '.edits[].path'\n  \
subroot relayout debian.raw --dry-run --json | jq '{engine, engine_reason}'\n  \
subroot relayout debian.raw -o r0.raw --engine rebuild    # compact the filesystem too\n  \
subroot relayout --undo debian-r0.raw -o debian-again.raw  # back to one system at the top\n  \
subroot relayout debian.raw -o r0.raw --move 'bin dev etc lib lib32 lib64 media mnt opt proc root run sbin selinux srv sys tmp usr'\n  \
subroot ls debian-r0.qcow2 /r0"
    )]
    Relayout(relayout::RelayoutArgs),
    /// Run one operation (convert or relayout) on many images, in parallel, resumable and shardable.
    #[command(
        long_about = help::BATCH,
        after_help = "EXAMPLES:\n  subroot batch convert -O qcow2 -c zstd --out-dir out/ images/*.raw\n  \
subroot batch convert --out-dir out/ --from-list all.txt --shard 0/4 --resume --json"
    )]
    Batch(BatchArgs),
    /// Examine, list, extract, create initrds and add the subroot boot hook to them.
    #[command(
        long_about = help::INITRD,
        after_help = "EXAMPLES:\n  subroot initrd examine /boot/initrd.img\n  subroot initrd add-subroot /boot/initrd.img -o initrd-subroot.img"
    )]
    Initrd(InitrdArgs),
    /// Copy host files and directories into a directory of a partition's filesystem.
    #[command(
        name = "copy-in",
        long_about = help::COPY_IN,
        after_help = "EXAMPLES:\n  subroot copy-in disk.raw -p 1 grubx64.efi shimx64.efi /EFI/BOOT -o new.raw\n  \
subroot copy-in debian.qcow2 -p 2 ./etc-overrides/ /etc --in-place\n  \
subroot copy-in disk.raw -p 1 boot/ / -o out.qcow2 -O qcow2"
    )]
    CopyIn(CopyInArgs),
    /// Change the installed system in an image: files, hostname, passwords, SSH keys, first-boot scripts, sysprep.
    #[command(
        long_about = help::CUSTOMIZE,
        after_help = "EXAMPLES:\n  subroot customize debian.qcow2 --overlay new.qcow2 \\\n      --write /etc/motd:'Hello' --append-line /etc/hosts:'10.0.0.1 gw' \\\n      --edit '/etc/ssh/sshd_config:s/^#?Port .*/Port 2222/'\n  \
subroot customize disk.raw --in-place --mkdir /opt/app --upload app.conf:/opt/app/ \\\n      --chown app:app:/opt/app/app.conf --chmod 0640:/opt/app/app.conf\n  \
subroot customize disk.raw -o out.raw --tar-in overlay.tar.zst:/ --delete /var/cache/apt/archives\n  \
subroot customize disk.raw --upload grubx64.efi:/boot/efi/EFI/debian/ -o out.raw   (lands on the ESP)\n  \
subroot customize disk.raw --dry-run --json --commands-from-file changes.txt | jq '.operations[].changes[]'\n  \
subroot customize debian.qcow2 --overlay vm1.qcow2 --hostname vm1 --timezone Europe/Paris \\\n      --root-password file:pw.txt --ssh-inject root:file:id_ed25519.pub \\\n      --firstboot-command 'apt-get update' --sysprep"
    )]
    Customize(Box<customize::CustomizeArgs>),
    /// Remove files and directories from a partition's filesystem.
    #[command(
        long_about = help::RM,
        after_help = "EXAMPLES:\n  subroot rm disk.raw -p 1 /EFI/BOOT/old.efi -o new.raw\n  \
subroot rm debian.qcow2 -p 2 -r /var/cache/apt /usr/share/doc --in-place"
    )]
    Rm(RmArgs),
    /// List, add and remove the roots of a relayouted image (r0/, r1/, ...: each a system subroot= can boot) and choose the one that boots.
    #[command(
        long_about = help::ROOTS,
        after_help = "EXAMPLES:\n  subroot roots debian-r0.qcow2\n  \
subroot roots --json debian-r0.qcow2 | jq -r '.default'\n  \
subroot roots add debian-r0.qcow2 r1 --from r0 --overlay r1.qcow2\n  \
subroot roots remove two-roots.raw r1 --in-place\n  \
subroot roots default two-roots.qcow2 r1 --overlay boot-r1.qcow2"
    )]
    Roots(roots::RootsArgs),
    /// Grow a disk image, its last partition and that partition's filesystem (or shrink them to fit).
    #[command(
        long_about = help::RESIZE,
        after_help = "EXAMPLES:\n  subroot resize debian.qcow2 --size 20G --in-place\n  \
subroot resize debian.raw --size +8G -o big.raw\n  \
subroot resize debian.qcow2 --size 20G --overlay big.qcow2      # only the changed clusters\n  \
subroot resize debian.raw --size 20G --dry-run --json | jq .filesystem\n  \
subroot resize disk.raw --size 20G -p 2 --part-size 10G -o out.raw\n  \
subroot resize debian.raw --shrink-to-fit --margin 256M -o small.raw"
    )]
    Resize(resize::ResizeArgs),
    /// Roll back an interrupted in-place edit of an image (its undo log IMAGE.subroot-undo).
    #[command(
        long_about = help::RECOVER,
        after_help = "EXAMPLES:\n  subroot recover debian.qcow2"
    )]
    Recover(RecoverArgs),
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The image whose in-place edit was interrupted.
    pub image: std::path::PathBuf,
}

/// Make `-c`/`--compress` take a value only when the next word is one (`zlib`, `zstd`):
/// `subroot convert -c in.qcow2 out.qcow2 -O qcow2` must not read `in.qcow2` as a
/// compression type. A bare flag gets an explicit `zlib`; clap then parses as usual.
pub fn normalize_args(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let args: Vec<_> = args.into_iter().collect();
    // `initrd` has its own `--compress C[:LEVEL]` (always with a value): leave it alone.
    let command = args
        .iter()
        .skip(1)
        .find(|a| !a.to_string_lossy().starts_with('-'));
    if command.is_some_and(|c| c == "initrd") {
        return args;
    }
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut it = args.into_iter().peekable();
    while let Some(a) = it.next() {
        let is_flag = a == "-c" || a == "--compress";
        if a == "--" {
            out.push(a);
            out.extend(it);
            break;
        }
        out.push(a);
        if is_flag && !it.peek().is_some_and(|n| n == "zlib" || n == "zstd") {
            out.push("zlib".into());
        }
    }
    out
}

/// A format written by `-O`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageFormatArg {
    Raw,
    Qcow2,
    /// A fixed VHD (what Azure takes): the disk padded to a whole MiB, then a footer.
    Vhd,
    /// A dynamic VHDX (Hyper-V): 1 MiB blocks, all-zero blocks left out.
    Vhdx,
    /// VMDK streamOptimized (compressed grains; what vSphere and OVA imports take).
    Vmdk,
}

/// An input container format (`-f`): every format subroot reads (detected by magic when
/// not given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormatArg {
    Raw,
    Qcow2,
    /// Microsoft VHD (qemu's "vpc").
    #[value(alias = "vpc")]
    Vhd,
    Vhdx,
    Vmdk,
    Vdi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressArg {
    Zlib,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableArg {
    Mbr,
    Gpt,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_default_shared_list_is_the_library_s() {
        let cli: Vec<&str> = DEFAULT_SHARED.split(',').collect();
        assert_eq!(cli, subroot_formats::initrd::DEFAULT_SHARED);
    }

    #[test]
    fn initrd_compress_keeps_its_value() {
        let args = [
            "subroot",
            "initrd",
            "create",
            "-o",
            "x",
            "--compress",
            "gzip:9",
            "d",
        ];
        let cli = Cli::try_parse_from(normalize_args(args.iter().map(Into::into))).unwrap();
        match cli.command {
            Command::Initrd(InitrdArgs {
                command: InitrdCommand::Create(c),
            }) => assert_eq!(c.compress, "gzip:9"),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn compress_flag_defaults_to_zlib() {
        let cli =
            Cli::try_parse_from(["subroot", "convert", "a", "b", "-O", "qcow2", "-c"]).unwrap();
        match cli.command {
            Command::Convert(c) => assert_eq!(c.qcow2.compress, Some(CompressArg::Zlib)),
            other => panic!("parsed as {other:?}"),
        }
    }
}
