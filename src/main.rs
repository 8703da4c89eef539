//! The `subroot` command line: parse, run one operation, map errors to exit codes.
#![forbid(unsafe_code)]

mod cli;
mod clock;
mod e2fsprogs;
mod edit;
mod error_line;
mod exit;
mod json;
mod open;
mod ops;
mod output;
mod progress;
mod size;
mod stdout;

use clap::{CommandFactory, FromArgMatches};
use cli::{Cli, Command};
use std::io::Write;
use std::process::ExitCode;

/// What every operation needs to know about how to talk to the user.
pub struct Ctx {
    pub quiet: bool,
    pub verbose: u8,
    /// `--mke2fs`, for every command that builds an ext filesystem.
    pub mke2fs: Option<std::path::PathBuf>,
}

impl Ctx {
    /// A status line on stderr, unless `--quiet`.
    pub fn note(&self, msg: std::fmt::Arguments) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }

    /// Print a detail on stderr with -v.
    pub fn detail(&self, msg: std::fmt::Arguments) {
        if self.verbose > 0 && !self.quiet {
            eprintln!("{msg}");
        }
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches_from(cli::normalize_args(std::env::args_os()));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    output::install_signal_cleanup();
    quiet_caught_panics();
    open::set_options(subroot_formats::image::ImageOptions {
        allow_outside: cli.global.allow_outside,
    });
    let ctx = Ctx {
        quiet: cli.global.quiet,
        verbose: cli.global.verbose,
        mke2fs: cli.global.mke2fs.clone(),
    };
    let result = match &cli.command {
        Command::Info(a) => ops::info::run(a),
        Command::Inspect(a) => ops::inspect::run(a),
        Command::Convert(a) => ops::convert::run(a, &ctx),
        Command::Create(a) => ops::create::run(a, &ctx),
        Command::Mkfs(a) => ops::mkfs::run(a, &ctx),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "subroot", &mut script);
            let mut out = stdout::out();
            out.write_all(&script)
                .and_then(|()| out.flush())
                .map_err(Into::into)
        }
        Command::Man => {
            let mut out = stdout::out();
            cli::man::render(&mut out)
                .and_then(|()| out.flush())
                .map_err(Into::into)
        }
        Command::Ls(a) => ops::ls::run(a, &ctx),
        Command::Cat(a) => ops::cat::run(a, &ctx),
        Command::Export(a) => ops::export::run(a, &ctx),
        Command::Manifest(a) => ops::manifest::run(a, &ctx),
        Command::Extract(a) => ops::extract::run(a, &ctx),
        Command::Relayout(a) => ops::relayout::run(a, &ctx),
        Command::Batch(a) => ops::batch::run(a, &ctx),
        Command::Initrd(a) => ops::initrd::run(a, &ctx),
        Command::CopyIn(a) => ops::copy_in::run(a, &ctx),
        Command::Rm(a) => ops::rm::run(a, &ctx),
        Command::Customize(a) => matches
            .subcommand_matches("customize")
            .ok_or_else(|| anyhow::anyhow!("internal: no customize arguments"))
            .and_then(cli::customize::operations)
            .and_then(|ops| ops::customize::run(a, ops, &ctx)),
        Command::Roots(a) => ops::roots::run(a, &ctx),
        Command::Resize(a) => ops::resize::run(a, &ctx),
        Command::Recover(a) => ops::recover::run(a, &ctx),
    };
    output::remove_scratch_root();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if stdout::is_closed(&e) => ExitCode::from(stdout::CLOSED_STATUS),
        Err(e) => {
            eprintln!("subroot: error: {}", error_line::error_line(&e));
            if ctx.verbose > 0 {
                eprintln!("{e:?}");
            }
            ExitCode::from(exit::code(&e))
        }
    }
}

/// Panics the FAT layer catches (the `fatfs` crate panics on some corrupt volumes) become
/// clear errors; their default "panicked at" report would only confuse. Every other panic
/// is reported as before.
fn quiet_caught_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !subroot_formats::fat::panic_is_caught() {
            default(info);
        }
    }));
}
