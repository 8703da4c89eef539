//! `subroot roots remove IMAGE NAME`: remove a root's tree in process over a copy-on-write
//! overlay ([`super::image::write`]). The default root and the last root are refused
//! before anything is written. A file the root shared with other roots (a hard link made
//! by `roots add`) only loses a link: its inode, data and the other roots' names stay.

use super::image::{write, Changes, FsOp};
use super::survey::survey;
use super::{check_name, root_image};
use crate::cli::roots::RemoveArgs;
use crate::Ctx;
use anyhow::{bail, Result};

pub fn run(args: &RemoveArgs, ctx: &Ctx) -> Result<()> {
    check_name(&args.name, "NAME")?;
    let dest = args.out.destination(&args.image)?;
    let roots = survey(&args.image, args.format)?;
    let name = args.name.as_str();
    if !roots.has(name) {
        bail!(
            "NAME {name}: {} has no such root (its roots: {})",
            roots.image,
            roots.names()
        );
    }
    if roots.default.as_deref() == Some(name) {
        bail!(
            "NAME {name}: it is the default root of {} (the first boot entry boots it); make another root the default first (subroot roots default)",
            roots.image
        );
    }
    if roots.roots.len() == 1 {
        bail!(
            "NAME {name}: it is the last root of {}; nothing would boot",
            roots.image
        );
    }
    for e in roots
        .entries
        .iter()
        .filter(|e| e.root.as_deref() == Some(name))
    {
        eprintln!(
            "subroot: warning: boot entry {:?} ({}) selects subroot={name}: it will not boot once {name} is removed",
            e.title.as_deref().unwrap_or(&e.kernel),
            e.config.as_deref().unwrap_or(e.loader)
        );
    }
    let img = root_image(&args.image, args.format, &roots, ctx)?;
    ctx.note(format_args!("removing root {name} from {}", img.name));
    let changes = Changes {
        root: vec![FsOp::RemoveTree(name.as_bytes().to_vec())],
        ..Changes::default()
    };
    write(&img, &changes, &dest, args.out.verify, ctx)
}
