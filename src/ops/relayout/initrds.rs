//! Finding the initrds a system boots from, inside its root filesystem: the conventional
//! names in `/boot` (`initrd.img-*` from initramfs-tools, `initramfs-*.img` from dracut)
//! plus every `initrd` named by a GRUB configuration or a Boot Loader Specification entry
//! (`/boot/loader/entries/*.conf`). Paths from boot configuration are relative to the
//! boot loader's root, which is the root filesystem when `/boot` is not separate; both
//! `P` and `boot/P` are tried. Symlinks (`/initrd.img -> boot/initrd.img-…`) are followed
//! to their regular file.

use std::collections::BTreeSet;
use subroot_formats::tree::{Entry, Kind};

/// True when a file name in `/boot` is an initrd by convention.
pub fn is_initrd_name(name: &[u8]) -> bool {
    let Ok(n) = std::str::from_utf8(name) else {
        return false;
    };
    (n.starts_with("initrd.img-") && !n.ends_with(".old-dkms") && !n.ends_with(".bak"))
        || (n.starts_with("initramfs-") && n.ends_with(".img"))
}

/// The `initrd` paths a `grub.cfg` names (`initrd`, `initrdefi`, `initrd16`; several
/// files per line are allowed).
pub fn grub_initrds(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut toks = line.split_whitespace();
        if matches!(toks.next(), Some("initrd" | "initrdefi" | "initrd16")) {
            out.extend(toks.map(str::to_string));
        }
    }
    out
}

/// The `initrd` paths of a Boot Loader Specification entry.
pub fn bls_initrds(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut toks = line.split_whitespace();
        if toks.next() == Some("initrd") {
            out.extend(toks.map(str::to_string));
        }
    }
    out
}

/// Resolve a boot-loader path to a tree path of a regular file, using `lookup` (tree
/// path → entry). Tries `P` then `boot/P`; follows up to 8 symlinks.
pub fn resolve(p: &str, lookup: &dyn Fn(&[u8]) -> Option<Entry>) -> Option<Vec<u8>> {
    // GRUB paths may carry a device prefix: `(hd0,msdos1)/boot/x`.
    let p = match p.strip_prefix('(') {
        Some(rest) => rest.split_once(')').map(|(_, path)| path)?,
        None => p,
    };
    let rel = p.trim_start_matches('/');
    if rel.is_empty() {
        return None;
    }
    for cand in [rel.to_string(), format!("boot/{rel}")] {
        if let Some(found) = follow(cand.into_bytes(), lookup) {
            return Some(found);
        }
    }
    None
}

/// Follow symlinks from tree path `path` to a regular file.
pub fn follow(mut path: Vec<u8>, lookup: &dyn Fn(&[u8]) -> Option<Entry>) -> Option<Vec<u8>> {
    for _ in 0..8 {
        let e = lookup(&path)?;
        match e.kind {
            Kind::File => return Some(path),
            Kind::Symlink => {
                let target = e.link_target.clone()?;
                path = if target.starts_with(b"/") {
                    normalise(&target)
                } else {
                    let mut p = e.parent().to_vec();
                    if !p.is_empty() {
                        p.push(b'/');
                    }
                    p.extend_from_slice(&target);
                    normalise(&p)
                };
            }
            _ => return None,
        }
    }
    None
}

/// A path with `.`, `..` and empty components resolved (`..` stops at the root).
fn normalise(p: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join(&b'/')
}

/// De-duplicated, sorted tree paths.
pub fn unique(paths: impl IntoIterator<Item = Vec<u8>>) -> Vec<Vec<u8>> {
    paths
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use subroot_formats::tree::Metadata;

    fn e(path: &str, kind: Kind, target: Option<&str>) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            meta: Metadata::default(),
            size: 0,
            rdev: (0, 0),
            link_target: target.map(|t| t.as_bytes().to_vec()),
            hardlink_id: None,
        }
    }

    #[test]
    fn names() {
        assert!(is_initrd_name(b"initrd.img-6.1.0-28-amd64"));
        assert!(is_initrd_name(b"initramfs-6.5.6-300.fc39.x86_64.img"));
        assert!(!is_initrd_name(b"initramfs-6.5.6.conf"));
        assert!(!is_initrd_name(b"vmlinuz-6.1.0-28-amd64"));
        assert!(!is_initrd_name(b"initrd.img-6.1.0.bak"));
    }

    #[test]
    fn config_lines() {
        let g = "menuentry x {\n\tlinux /boot/vmlinuz ro\n\tinitrd\t/boot/intel-ucode.img /boot/initrd.img-6\n}\n  initrdefi /efi/initrd\n";
        assert_eq!(
            grub_initrds(g),
            vec!["/boot/intel-ucode.img", "/boot/initrd.img-6", "/efi/initrd"]
        );
        assert_eq!(
            bls_initrds("title F\ninitrd /initramfs-6.5.img\noptions ro\n"),
            vec!["/initramfs-6.5.img"]
        );
    }

    #[test]
    fn resolving() {
        let entries = [
            e("initrd.img", Kind::Symlink, Some("boot/initrd.img-6")),
            e("boot/initrd.img-6", Kind::File, None),
            e("boot/initramfs-7.img", Kind::File, None),
            e("boot/loop", Kind::Symlink, Some("../boot/loop")),
            e("boot/grub", Kind::Dir, None),
        ];
        let lookup = |p: &[u8]| entries.iter().find(|x| x.path == p).cloned();
        assert_eq!(
            resolve("/initrd.img", &lookup).as_deref(),
            Some(&b"boot/initrd.img-6"[..])
        );
        // A separate-/boot style path is found under boot/.
        assert_eq!(
            resolve("/initramfs-7.img", &lookup).as_deref(),
            Some(&b"boot/initramfs-7.img"[..])
        );
        assert_eq!(
            resolve("(hd0,gpt2)/boot/initrd.img-6", &lookup).as_deref(),
            Some(&b"boot/initrd.img-6"[..])
        );
        assert_eq!(resolve("/boot/loop", &lookup), None);
        assert_eq!(resolve("/boot/grub", &lookup), None);
        assert_eq!(resolve("/missing", &lookup), None);
    }
}
