//! `subroot convert`: copy an image into a new raw, qcow2 or fixed VHD file, flattening backing
//! chains and keeping it sparse (the `qemu-img convert` of this project).

use crate::cli::ConvertArgs;
use crate::edit::write_image::{write_image, OutputSpec};
use crate::size::human;
use crate::Ctx;
use anyhow::Result;

pub fn run(args: &ConvertArgs, ctx: &Ctx) -> Result<()> {
    let qcow2 = (&args.qcow2).into();
    let spec = OutputSpec {
        path: &args.output,
        format: args.output_format.into(),
        qcow2: &qcow2,
        force: args.force,
        quiet: ctx.quiet,
    };
    spec.validate()?;
    let img = crate::open::open_image(&args.input, args.format)?;
    let stats = write_image(&img, &spec, "converting")?;
    ctx.note(format_args!(
        "wrote {} ({}, {} virtual, {} of data, {} file)",
        args.output.display(),
        spec.format_name(),
        human(stats.virtual_size),
        human(stats.data_bytes),
        human(stats.file_size)
    ));
    Ok(())
}
