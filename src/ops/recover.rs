//! `subroot recover IMAGE`: roll back an in-place edit that was interrupted (a crash, a
//! kill, a full disk) using its undo log, `IMAGE.subroot-undo`. Every other command does the
//! same before it opens an image ([`crate::open::open_image`]); this one does only that, and
//! says what it found.

use crate::cli::RecoverArgs;
use crate::Ctx;
use anyhow::{Context, Result};
use std::path::Path;
use subroot_formats::inplace::{recover, RecoverOutcome};

pub fn run(args: &RecoverArgs, ctx: &Ctx) -> Result<()> {
    let outcome = roll_back(&args.image)?;
    if outcome == RecoverOutcome::NothingToDo {
        ctx.note(format_args!(
            "{}: no interrupted edit to roll back",
            args.image.display()
        ));
    }
    Ok(())
}

/// Roll back an interrupted in-place edit of `image` if its undo log is there, saying so.
pub fn roll_back(image: &Path) -> Result<RecoverOutcome> {
    let outcome = recover(image).with_context(|| {
        format!(
            "{} has an interrupted in-place edit that cannot be rolled back",
            image.display()
        )
    })?;
    match &outcome {
        RecoverOutcome::NothingToDo => {}
        RecoverOutcome::RolledBack { bytes } => eprintln!(
            "subroot: {}: rolled back an interrupted in-place edit ({bytes} bytes restored)",
            image.display()
        ),
        RecoverOutcome::DiscardedIncompleteLog => eprintln!(
            "subroot: {}: removed the undo log of an edit interrupted before it changed the image",
            image.display()
        ),
    }
    Ok(outcome)
}
