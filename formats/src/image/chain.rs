//! What every format with a parent image (qcow2 backing files, VHD, VHDX and VMDK
//! parents) shares: entering a chain (loop and depth checks),
//! resolving a parent locator of a child (confined to the child's directory tree), and
//! reading or mapping the parent's bytes under ranges the child does not hold.

use super::Image;
use crate::block::{push_extent, BlockDevice, Extent, ExtentKind};
use crate::{Error, Result};
use std::path::{Component, Path, PathBuf};

/// Deepest backing chain accepted (a guard against stack exhaustion).
const MAX_CHAIN_DEPTH: usize = 256;

/// Record that `path` is being opened as part of a chain whose images (canonical paths,
/// outermost first) are `seen`: refuse a loop or a chain deeper than any real one.
pub(crate) fn enter(path: &Path, seen: &mut Vec<PathBuf>) -> Result<()> {
    let canonical = std::fs::canonicalize(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    if seen.contains(&canonical) {
        let chain: Vec<String> = seen
            .iter()
            .chain(std::iter::once(&canonical))
            .map(|p| p.display().to_string())
            .collect();
        return Err(Error::corrupt(format!(
            "backing file loop: {}",
            chain.join(" -> ")
        )));
    }
    if seen.len() >= MAX_CHAIN_DEPTH {
        return Err(Error::unsupported(format!(
            "backing chain deeper than {MAX_CHAIN_DEPTH} images at {}",
            path.display()
        )));
    }
    seen.push(canonical);
    Ok(())
}

/// The directory a child image's relative references are resolved in.
pub(crate) fn dir_of(child: &Path) -> &Path {
    child
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Where a parent named `name` inside `child` is, as qemu takes it (qcow2 backing files,
/// VMDK parentFileNameHint): an absolute name as written, a relative one beside the child.
pub(crate) fn resolve_parent(child: &Path, name: &str) -> PathBuf {
    let written = Path::new(name);
    if written.is_absolute() {
        written.to_path_buf()
    } else {
        dir_of(child).join(written)
    }
}

/// Where a parent locator of `child` points, if it is acceptable: a relative path (with
/// `\` or `/` separators, an optional `.\`) joined to the child's directory and never
/// leaving it; an absolute path only when that file exists. `None` otherwise.
pub(crate) fn locate(child: &Path, written: &str) -> Option<PathBuf> {
    let unix = written.replace('\\', "/");
    let unix = unix.strip_prefix("//?/").unwrap_or(&unix);
    let p = Path::new(unix);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    let drive = unix.len() >= 2 && unix.as_bytes()[1] == b':';
    if drive || unix.is_empty() {
        return None;
    }
    let mut depth = 0usize;
    for c in p.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            _ => return None,
        }
    }
    let joined = dir_of(child).join(p);
    joined.is_file().then_some(joined)
}

/// The last component of a Windows or Unix path, for looking beside the child.
pub(crate) fn file_name_of(written: &str) -> Option<&str> {
    written
        .rsplit(['\\', '/'])
        .next()
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
}

/// Fill `buf` with the parent's bytes at `pos` (zeros past its end, or without a parent).
pub(crate) fn read_parent(parent: Option<&Image>, buf: &mut [u8], pos: u64) -> Result<()> {
    let n = match parent {
        Some(p) if pos < p.len() => (p.len() - pos).min(buf.len() as u64) as usize,
        _ => 0,
    };
    if let Some(p) = parent.filter(|_| n > 0) {
        p.read_at(&mut buf[..n], pos)?;
    }
    buf[n..].fill(0);
    Ok(())
}

/// Append the map of `[pos, pos + len)` as the parent has it (zeros past its end).
pub(crate) fn parent_extents(
    parent: Option<&Image>,
    out: &mut Vec<Extent>,
    pos: u64,
    len: u64,
) -> Result<()> {
    let n = match parent {
        Some(p) if pos < p.len() => (p.len() - pos).min(len),
        _ => 0,
    };
    if let Some(p) = parent.filter(|_| n > 0) {
        for e in p.extents(pos, n)? {
            push_extent(out, e);
        }
    }
    push_extent(
        out,
        Extent {
            offset: pos + n,
            len: len - n,
            kind: ExtentKind::Zero,
        },
    );
    Ok(())
}

/// What a container maps one run of its virtual disk to, for its data/zero map.
pub(crate) enum Run {
    Data,
    Zero,
    /// Not held by this image: the parent's map (zeros without a parent).
    Parent,
    /// Mapped by another device (a flat extent file), as that device's extents.
    Extents(Vec<Extent>),
}

/// The data/zero map of `[offset, offset + len)` of a container whose `run(pos, left)` says
/// what the run at `pos` is mapped to and how long it is (at most `left`, at least 1): the
/// walk every container reader (qcow2, VHD, VHDX, VMDK, VDI) shares.
pub(crate) fn map_extents(
    parent: Option<&Image>,
    offset: u64,
    len: u64,
    mut run: impl FnMut(u64, u64) -> Result<(Run, u64)>,
) -> Result<Vec<Extent>> {
    let end = offset + len;
    let mut out = Vec::new();
    let mut pos = offset;
    while pos < end {
        let (what, n) = run(pos, end - pos)?;
        let n = n.min(end - pos);
        if n == 0 {
            return Err(Error::corrupt(format!(
                "the map of the image makes no progress at offset {pos}"
            )));
        }
        let mut push = |kind| {
            push_extent(
                &mut out,
                Extent {
                    offset: pos,
                    len: n,
                    kind,
                },
            )
        };
        match what {
            Run::Data => push(ExtentKind::Data),
            Run::Zero => push(ExtentKind::Zero),
            Run::Parent => parent_extents(parent, &mut out, pos, n)?,
            Run::Extents(list) => {
                for e in list {
                    push_extent(&mut out, e);
                }
            }
        }
        pos += n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_stay_inside_the_child_directory() {
        let dir = tempfile::tempdir().unwrap();
        let child = dir.path().join("c.vhd");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/p.vhd"), b"x").unwrap();
        std::fs::write(dir.path().join("p.vhd"), b"x").unwrap();
        assert_eq!(locate(&child, ".\\p.vhd"), Some(dir.path().join("./p.vhd")));
        assert!(locate(&child, "sub\\p.vhd").is_some());
        assert!(locate(&child, "sub\\..\\p.vhd").is_some());
        assert_eq!(locate(&child, "..\\p.vhd"), None);
        assert_eq!(locate(&child, "C:\\x\\p.vhd"), None);
        assert_eq!(locate(&child, "missing.vhd"), None);
        let abs = dir.path().join("p.vhd");
        assert_eq!(locate(&child, abs.to_str().unwrap()), Some(abs));
        assert_eq!(file_name_of("C:\\a\\b.vhd"), Some("b.vhd"));
        assert_eq!(file_name_of("x/"), None);
    }
}
