//! What every format with parent images (qcow2 backing files, VMDK parents) shares:
//! loop and depth checks along the chain, and resolving a parent's name beside its child.

use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Deepest backing chain accepted (a guard against stack exhaustion).
const MAX_CHAIN_DEPTH: usize = 256;

/// Record that `path` is being opened as part of a chain whose images (canonical paths,
/// outermost first) are `seen`; a loop or an over-deep chain is an error.
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

/// The directory holding `path` ("." for a bare file name).
pub(crate) fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Where a parent named `name` inside `child` is: relative names are beside the child.
pub(crate) fn resolve_parent(child: &Path, name: &str) -> PathBuf {
    let written = Path::new(name);
    if written.is_absolute() {
        written.to_path_buf()
    } else {
        dir_of(child).join(written)
    }
}
