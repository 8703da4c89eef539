//! Tests of the help text every command shows: rendered from the clap definitions, walking
//! the whole command tree, so a new command is checked without being listed here. The top
//! level `subroot --help` is also compared with tests/snapshots/help.txt
//! (`SUBROOT_BLESS=1 cargo test --bin subroot help` rewrites it).

use super::man::visible_subcommands;
use super::Cli;
use clap::{CommandFactory, Parser};
use std::collections::HashSet;
use std::path::PathBuf;

/// The width the texts are rendered at (clap's own default without a terminal).
const WIDTH: usize = 100;

fn root() -> clap::Command {
    let mut cmd = Cli::command().term_width(WIDTH);
    cmd.build();
    cmd
}

/// Every user-visible command with its full name (`subroot batch convert`).
fn commands(root: &clap::Command) -> Vec<(String, clap::Command)> {
    visible_subcommands(root)
        .into_iter()
        .map(|c| {
            let name = c.get_bin_name().unwrap_or(c.get_name()).to_owned();
            (name, c.clone().term_width(WIDTH))
        })
        .collect()
}

/// Short (`-h`) and long (`--help`) help of a command.
fn helps(cmd: &clap::Command) -> [String; 2] {
    [
        cmd.clone().render_help().to_string(),
        cmd.clone().render_long_help().to_string(),
    ]
}

#[test]
fn command_tree_is_walked() {
    let names: Vec<_> = commands(&root()).into_iter().map(|(n, _)| n).collect();
    for expected in [
        "subroot copy-in",
        "subroot batch relayout",
        "subroot initrd add-subroot",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
}

#[test]
fn no_help_points_at_the_readme() {
    let root = root();
    let mut all = vec![("subroot".to_owned(), root.clone())];
    all.extend(commands(&root));
    for (name, cmd) in all {
        for text in helps(&cmd) {
            assert!(
                !text.contains("README"),
                "{name} --help mentions README (an installed binary has none):\n{text}"
            );
        }
    }
}

#[test]
fn every_command_has_its_own_about() {
    let mut seen = HashSet::new();
    for (name, cmd) in commands(&root()) {
        let about = cmd
            .get_about()
            .unwrap_or_else(|| panic!("{name} has no about"))
            .to_string();
        // A variant without a doc comment takes the doc of the struct it flattens
        // ("Where a rewritten image goes ...", "Options shared by ...").
        assert!(
            !about.starts_with("Where") && !about.starts_with("Options"),
            "{name}: the about is a flattened struct's doc: {about}"
        );
        assert!(
            seen.insert(about.clone()),
            "{name}: the about is another command's too: {about}"
        );
    }
}

#[test]
fn usage_lines_name_each_value_once() {
    for (name, cmd) in commands(&root()) {
        let usage = cmd.clone().render_usage().to_string();
        let mut names = HashSet::new();
        for token in usage.split('<').skip(1) {
            let value = token.split('>').next().unwrap_or_default();
            assert!(
                names.insert(value.to_owned()),
                "{name}: <{value}> twice in `{usage}`"
            );
            assert!(
                !value.contains(' ') && !value.contains("..."),
                "{name}: <{value}> is not one value name in `{usage}`"
            );
        }
    }
}

#[test]
fn every_command_has_examples() {
    for (name, cmd) in commands(&root()) {
        for text in helps(&cmd) {
            assert!(
                text.contains("\nEXAMPLES:\n"),
                "{name} has no EXAMPLES:\n{text}"
            );
        }
    }
}

#[test]
fn json_commands_describe_their_json() {
    let mut checked = 0;
    for (name, cmd) in commands(&root()) {
        if !cmd.get_arguments().any(|a| a.get_long() == Some("json")) {
            continue;
        }
        let long = cmd.clone().render_long_help().to_string();
        assert!(
            long.contains("JSON OUTPUT"),
            "{name} has --json but its --help has no JSON OUTPUT section:\n{long}"
        );
        checked += 1;
    }
    // info, ls, manifest, relayout, batch convert/relayout, initrd examine/ls.
    assert!(checked >= 8, "only {checked} commands with --json found");
}

#[test]
fn copy_in_takes_locals_then_dest() {
    let cli = Cli::try_parse_from([
        "subroot",
        "copy-in",
        "d.raw",
        "-p",
        "1",
        "a",
        "b/",
        "/EFI/BOOT",
        "-o",
        "o.raw",
    ])
    .unwrap();
    let super::Command::CopyIn(args) = cli.command else {
        panic!("parsed as {:?}", cli.command);
    };
    assert_eq!(args.locals, [PathBuf::from("a"), PathBuf::from("b/")]);
    assert_eq!(args.dest, "/EFI/BOOT");
    assert_eq!(args.part.partition, Some(crate::cli::PartSpec::Number(1)));
    // One LOCAL and DEST are both required.
    assert!(Cli::try_parse_from(["subroot", "copy-in", "d.raw", "a", "--in-place"]).is_err());
}

/// Compare `text` with the file at `relative` (from the repository root), or rewrite the
/// file when SUBROOT_BLESS=1.
fn matches_snapshot(relative: &str, what: &str, text: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative);
    if std::env::var_os("SUBROOT_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{relative}: {e} (SUBROOT_BLESS=1 cargo test --bin subroot help writes it)")
    });
    assert!(
        text == expected,
        "{what} differs from {relative} (if the change is intended, rewrite it with \
         SUBROOT_BLESS=1 cargo test --bin subroot help):\n--- expected\n{expected}\n--- got\n{text}"
    );
}

#[test]
fn top_level_help_matches_snapshot() {
    let text = root().render_long_help().to_string();
    matches_snapshot("tests/snapshots/help.txt", "`subroot --help`", &text);
}

#[test]
fn command_reference_is_current() {
    let root = root();
    let mut text = String::from(
        "# Command reference\n\n\
<!-- Generated from the clap definitions (src/cli/) by\n     \
SUBROOT_BLESS=1 cargo test --bin subroot help -- do not edit. -->\n\n\
Each section is what `subroot COMMAND --help` prints; `subroot man` carries the same text.\n\n",
    );
    let mut all = vec![("subroot".to_owned(), root.clone())];
    all.extend(commands(&root));
    for (name, cmd) in all {
        let help = cmd.clone().render_long_help().to_string();
        text += &format!("## {name}\n\n```text\n{}\n```\n\n", help.trim_end());
    }
    let text = format!("{}\n", text.trim_end());
    matches_snapshot("docs/commands.md", "the command reference", &text);
}

#[test]
fn man_page_carries_every_command() {
    let mut page = Vec::new();
    super::man::render(&mut page).unwrap();
    let page = String::from_utf8(page).unwrap();
    for (name, _) in commands(&root()) {
        assert!(
            page.contains(&format!(".SS \"{}\"", name.replace('-', "\\-"))),
            "{name} missing from the man page"
        );
    }
    assert!(
        page.contains("JSON OUTPUT"),
        "the man page lacks the JSON fields"
    );
    assert!(
        page.is_ascii(),
        "roff output must escape non-ASCII characters"
    );
}
