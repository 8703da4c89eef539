//! Which container format a file is, from its magic: the formats read here (raw, qcow2,
//! VHD, VHDX, VMDK, VDI) and every other one `qemu-img` knows, so that those are refused by
//! name instead of being read as raw disks.
//!
//! The signatures follow qemu's `block/*.c` probe functions (qemu reads the first 2048
//! bytes); two that qemu does not probe by content are added: a fixed VHD, which is the disk
//! followed by a 512-byte "conectix" footer, and a DMG (UDIF) with its "koly" trailer in the
//! last 512 bytes. A LUKS volume is left to filesystem sniffing (it is reported there as
//! `crypto_LUKS`).

use crate::qcow2::MAGIC as QCOW_MAGIC;

/// Bytes at the start of the file that the probes look at (qemu's `BLOCK_PROBE_BUF_SIZE`).
pub const HEAD_LEN: usize = 2048;
/// Bytes at the end of the file that the probes look at (a VHD footer, a DMG trailer).
pub const TAIL_LEN: usize = 512;

/// A container format other than raw, qcow2, VHD and VHDX. VMDK and VDI are read (see
/// [`super::ImageFormat::from_probed`]); the others are refused by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignFormat {
    /// QEMU copy-on-write version 1 (qemu "qcow").
    Qcow1,
    /// VMware: sparse extent ("KDMV", also streamOptimized), a "COWD" VMware 3 extent, or a
    /// text descriptor (monolithicFlat, split, ...).
    Vmdk,
    /// VirtualBox VDI.
    Vdi,
    /// QEMU enhanced disk.
    Qed,
    /// Parallels.
    Parallels,
    /// Bochs growing redolog.
    Bochs,
    /// Apple disk image (UDIF).
    Dmg,
    /// Compressed loopback (cloop).
    Cloop,
}

impl ForeignFormat {
    /// Every foreign format.
    pub const ALL: [ForeignFormat; 8] = [
        ForeignFormat::Qcow1,
        ForeignFormat::Vmdk,
        ForeignFormat::Vdi,
        ForeignFormat::Qed,
        ForeignFormat::Parallels,
        ForeignFormat::Bochs,
        ForeignFormat::Dmg,
        ForeignFormat::Cloop,
    ];

    /// qemu's name of the format (`qemu-img info`'s "file format").
    pub fn name(&self) -> &'static str {
        match self {
            ForeignFormat::Qcow1 => "qcow",
            ForeignFormat::Vmdk => "vmdk",
            ForeignFormat::Vdi => "vdi",
            ForeignFormat::Qed => "qed",
            ForeignFormat::Parallels => "parallels",
            ForeignFormat::Bochs => "bochs",
            ForeignFormat::Dmg => "dmg",
            ForeignFormat::Cloop => "cloop",
        }
    }

    /// The name people know it by ("VHD", "VMDK", ...).
    pub fn long_name(&self) -> &'static str {
        match self {
            ForeignFormat::Qcow1 => "qcow (version 1)",
            ForeignFormat::Vmdk => "VMDK",
            ForeignFormat::Vdi => "VDI",
            ForeignFormat::Qed => "QED",
            ForeignFormat::Parallels => "Parallels",
            ForeignFormat::Bochs => "Bochs",
            ForeignFormat::Dmg => "DMG",
            ForeignFormat::Cloop => "cloop",
        }
    }
}

/// What a file's signature says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probed {
    /// qcow2 (version 2 or 3).
    Qcow2,
    /// VHD: a "conectix" footer copy at the start (dynamic) or footer at the end (fixed).
    Vhd,
    /// VHDX: the "vhdxfile" identifier.
    Vhdx,
    /// A format this crate does not read.
    Foreign(ForeignFormat),
    /// No known signature: the bytes are the disk.
    Raw,
}

/// Identify a file from its first bytes `head` (up to [`HEAD_LEN`]) and its last bytes
/// `tail` (up to [`TAIL_LEN`], may overlap `head` in a small file).
pub fn probe(head: &[u8], tail: &[u8]) -> Probed {
    use ForeignFormat as F;
    let at = |off: usize, magic: &[u8]| head.get(off..off + magic.len()) == Some(magic);
    let le32 = |off: usize| {
        head.get(off..off + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let be32 = |off: usize| {
        head.get(off..off + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    if at(0, &QCOW_MAGIC) {
        // block/qcow.c takes version 1, block/qcow2.c versions 2 and 3.
        return if be32(4) == Some(1) {
            Probed::Foreign(F::Qcow1)
        } else {
            Probed::Qcow2
        };
    }
    if at(0, &crate::vhd::FOOTER_MAGIC) {
        return Probed::Vhd;
    }
    if at(0, &crate::vhdx::MAGIC) {
        return Probed::Vhdx;
    }
    let found = if at(0, b"KDMV") || at(0, b"COWD") || vmdk_descriptor(head) {
        Some(F::Vmdk)
    } else if le32(0x40) == Some(0xbeda_107f) {
        Some(F::Vdi)
    } else if at(0, b"QED\0") {
        Some(F::Qed)
    } else if (at(0, b"WithoutFreeSpace") || at(0, b"WithouFreSpacExt")) && le32(16) == Some(2) {
        Some(F::Parallels)
    } else if bochs(head) {
        Some(F::Bochs)
    } else if at(0, CLOOP_V2) {
        Some(F::Cloop)
    } else if tail.len() >= 512 && tail[tail.len() - 512..].starts_with(&crate::vhd::FOOTER_MAGIC) {
        return Probed::Vhd;
    } else if tail.len() >= 512 && tail[tail.len() - 512..].starts_with(b"koly") {
        Some(F::Dmg)
    } else {
        None
    };
    found.map_or(Probed::Raw, Probed::Foreign)
}

/// The shell-script header of a cloop 2.0 image (block/cloop.c).
const CLOOP_V2: &[u8] =
    b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n";

/// A Bochs growing redolog: NUL-terminated magic, type and subtype strings in fixed fields
/// and version 1 or 2 (block/bochs.c `bochs_probe`).
fn bochs(head: &[u8]) -> bool {
    let field = |off: usize, len: usize, want: &[u8]| {
        head.get(off..off + len).is_some_and(|f| {
            let end = f.iter().position(|&c| c == 0).unwrap_or(len);
            &f[..end] == want
        })
    };
    let version = head
        .get(64..68)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    field(0, 32, b"Bochs Virtual HD Image")
        && field(32, 16, b"Redolog")
        && field(48, 16, b"Growing")
        && matches!(version, Some(0x0001_0000 | 0x0002_0000))
}

/// A VMDK text descriptor, as block/vmdk.c `vmdk_probe` decides: comment lines and blank
/// (space-only) lines, then `version=1`, `2` or `3` on a line of its own.
fn vmdk_descriptor(head: &[u8]) -> bool {
    let mut p = 0;
    while p < head.len() {
        match head[p] {
            b'#' => {
                while p < head.len() && head[p] != b'\n' {
                    p += 1;
                }
                p += 1;
            }
            b' ' => {
                while p < head.len() && head[p] == b' ' {
                    p += 1;
                }
                if p < head.len() && head[p] == b'\r' {
                    p += 1;
                }
                if p == head.len() || head[p] != b'\n' {
                    return false;
                }
                p += 1;
            }
            _ => {
                let rest = &head[p..];
                return [b'1', b'2', b'3'].iter().any(|&v| {
                    let line = [b'v', b'e', b'r', b's', b'i', b'o', b'n', b'=', v];
                    rest.starts_with(&line)
                        && (rest[line.len()..].starts_with(b"\n")
                            || rest[line.len()..].starts_with(b"\r\n"))
                });
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(off: usize, bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; HEAD_LEN];
        v[off..off + bytes.len()].copy_from_slice(bytes);
        v
    }

    #[test]
    fn magics() {
        use ForeignFormat as F;
        let cases: [(Vec<u8>, Probed); 9] = [
            (with(0, b"KDMV"), Probed::Foreign(F::Vmdk)),
            (with(0, b"COWD"), Probed::Foreign(F::Vmdk)),
            (
                with(0, b"# Disk DescriptorFile\nversion=1\nCID=1\n"),
                Probed::Foreign(F::Vmdk),
            ),
            (
                with(0, b"# Disk DescriptorFile\r\n  \r\nversion=3\r\n"),
                Probed::Foreign(F::Vmdk),
            ),
            (with(0, b"QFI\xfb\0\0\0\x01"), Probed::Foreign(F::Qcow1)),
            (with(0, b"QFI\xfb\0\0\0\x03"), Probed::Qcow2),
            (
                with(0, b"WithoutFreeSpace\x02\0\0\0"),
                Probed::Foreign(F::Parallels),
            ),
            (with(0, CLOOP_V2), Probed::Foreign(F::Cloop)),
            (with(0, b"# a shell script\necho hi\n"), Probed::Raw),
        ];
        for (head, want) in cases {
            assert_eq!(probe(&head, &[]), want);
        }
        let mut bochs = with(0, b"Bochs Virtual HD Image");
        bochs[32..39].copy_from_slice(b"Redolog");
        bochs[48..55].copy_from_slice(b"Growing");
        bochs[64..68].copy_from_slice(&0x0002_0000u32.to_le_bytes());
        assert_eq!(probe(&bochs, &[]), Probed::Foreign(F::Bochs));
        bochs[64] = 7;
        assert_eq!(probe(&bochs, &[]), Probed::Raw);
        let zero = vec![0u8; HEAD_LEN];
        let mut tail = vec![0u8; TAIL_LEN];
        tail[..4].copy_from_slice(b"koly");
        assert_eq!(probe(&zero, &tail), Probed::Foreign(F::Dmg));
        assert_eq!(probe(&zero, &zero[..TAIL_LEN]), Probed::Raw);
        assert_eq!(probe(&[], &[]), Probed::Raw);
        assert_eq!(probe(b"KD", b"KD"), Probed::Raw);
        assert_eq!(probe(b"version=1", b""), Probed::Raw);
        assert_eq!(probe(b"#", b""), Probed::Raw);
    }
}
