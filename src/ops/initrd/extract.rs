//! `subroot initrd extract`: every entry of the initrd into a host directory, through the
//! safe host-directory writer.

use super::open_input;
use crate::cli::ExtractArgs;
use crate::Ctx;
use anyhow::{bail, Result};

pub fn run(args: &ExtractArgs, ctx: &Ctx) -> Result<()> {
    let input = open_input(&args.input, ctx)?;
    bail!(
        "{}: extraction into {} is not supported yet (pending the host-directory writer)",
        input.name,
        args.directory.display()
    )
}
