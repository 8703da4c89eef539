//! `subroot roots`: the roots of a relayouted image — top-level directories of its root
//! filesystem each holding an OS ([`crate::open::select::is_root_dir`]), one of which
//! `subroot=NAME` on the kernel command line enters at boot. Listing them with the boot
//! entries that select each ([`survey`], [`list`]), adding one as a hard-link clone of
//! another ([`add`]), removing one ([`remove`]), making one boot ([`default`]: every boot
//! configuration says `subroot=NAME`, or [`entries`]: a boot entry per root). [`image`]
//! is an image opened for such a change and the one way every one of them is written.

pub mod add;
pub mod default;
pub mod entries;
pub mod image;
pub mod list;
pub mod remove;
pub mod survey;

use crate::cli::roots::{RootsArgs, RootsCommand};
use crate::cli::InputFormatArg;
use crate::open::select::Which;
use crate::Ctx;
use anyhow::{bail, Result};
use std::path::Path;

pub fn run(args: &RootsArgs, ctx: &Ctx) -> Result<()> {
    match &args.command {
        None => list::run(&args.list),
        Some(RootsCommand::List(a)) => list::run(a),
        Some(RootsCommand::Add(a)) => add::run(a, ctx),
        Some(RootsCommand::Remove(a)) => remove::run(a, ctx),
        Some(RootsCommand::Default(a)) => default::run(&a.request(), ctx),
        Some(RootsCommand::Flatten(a)) => crate::ops::relayout::undo::undo(&a.request(), ctx),
    }
}

/// The root filesystem of `image`, in the partition [`survey::survey`] found it in, opened
/// for a change written by [`image::write`].
fn root_image(
    image: &Path,
    format: Option<InputFormatArg>,
    roots: &survey::Survey,
    ctx: &Ctx,
) -> Result<image::RootsImage> {
    let which = Which {
        partition: Some(crate::cli::PartSpec::Number(roots.partition.unwrap_or(0))),
        format,
    };
    image::RootsImage::open(image, which, ctx)
}

/// Check a root name given on the command line: it becomes a top-level directory and goes
/// on the kernel command line as `subroot=NAME` (read by the initrd hook's shell), so it is
/// one plain word: 1 to 255 bytes of ASCII letters, digits, `.`, `_`, `+` and `-`, not
/// starting with `-` or `.` (so never `.`, `..` or a hidden name).
pub fn check_name(name: &str, what: &str) -> Result<()> {
    if name.is_empty() {
        bail!("{what}: a root name cannot be empty");
    }
    if name.contains('/') {
        bail!("{what} `{name}`: a root name is one top-level directory; it cannot contain `/`");
    }
    if name.len() > 255 {
        bail!(
            "{what}: a root name is at most 255 bytes (`{name}` has {})",
            name.len()
        );
    }
    if name.starts_with('-') || name.starts_with('.') {
        bail!("{what} `{name}`: a root name cannot start with `-` or `.` (`.`, `..` and hidden names are refused)");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-')))
    {
        bail!(
            "{what} `{name}`: {c:?} cannot be in a root name (it goes on the kernel command line as subroot={name}): use ASCII letters, digits, `.`, `_`, `+`, `-`"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn root_names_are_one_plain_word() {
        for good in ["r1", "r0", "deploy-2.1", "a_b+c", "R9"] {
            check_name(good, "NAME").unwrap();
        }
        for bad in [
            "", "a/b", "/r1", "..", ".", ".hidden", "-r", "a b", "x\"y", "é", "a\nb",
        ] {
            assert!(check_name(bad, "NAME").is_err(), "{bad:?} accepted");
        }
        assert!(check_name(&"r".repeat(256), "NAME").is_err());
    }
}
