//! subroot never needs privileges: it never runs sudo, mount, losetup or qemu-nbd, starts
//! no program but e2fsprogs (mke2fs, debugfs, e2fsck, dumpe2fs: the ext writer's engine;
//! debugfs through coreutils' stdbuf),
//! and never opens /dev/fuse, /dev/kvm, /dev/nbd*, /dev/loop* or /dev/mapper. Checked two
//! ways:
//!
//! - statically, by scanning the Rust sources of the binary (`src/`) and the libraries
//!   (`formats/src/`, `e2fs/src/`), comments and unit-test modules excluded, for process
//!   spawning outside `e2fs/src/tools.rs` (the one module that starts programs) and for the
//!   privileged names in string literals (the initrd hook shell scripts, which the
//!   *guest* runs at boot, are data embedded with `include_str!`, not code subroot runs);
//! - statically too: the libraries (`formats/src/`, `e2fs/src/`) read no environment
//!   variable; the binary reads them at its edge and passes the values in;
//! - dynamically, by running `info`, `convert` and `create` (as uid 65534 when the suite
//!   is root) under `strace -f -e trace=execve,openat,open,mount` and reading the trace.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Spawning or privileged-interface code that must not appear outside comments.
/// Making a program to start; allowed only in [`SPAWNING_MODULE`], which hands out
/// `Command`s for e2fsprogs (others may run those, e.g. feeding mke2fs a tar on stdin, and
/// may name the type). Thread spawns are fine. The traced tests below back this up at
/// run time.
const SPAWNING_CODE: &[&str] = &["Command::new", "execv", "posix_spawn"];

/// The one module that chooses programs to start (e2fsprogs only).
const SPAWNING_MODULE: &str = "e2fs/src/tools.rs";

const FORBIDDEN_CODE: &[&str] = &["rustix::mount", "MountFlags", "libc::", "nix::", "unsafe "];

/// The one module that takes a lock on an image (an open-file-description write lock, so
/// that a running QEMU, which holds such locks on the images it has open, is detected
/// before an in-place edit): it may name exactly these items of `nix` and `libc`, which
/// are safe calls and plain constants. Nothing else of those crates, anywhere.
const LOCKING_MODULE: (&str, &[&str]) = (
    "formats/src/inplace/fsutil.rs",
    &[
        "nix::errno::Errno",
        "nix::fcntl::",
        "libc::flock",
        "libc::F_WRLCK",
        "libc::SEEK_SET",
        "libc::c_short",
    ],
);

/// Names that must not appear in any string literal.
/// Program and device names no string of subroot's may hold. (Plain "mount" is not here:
/// messages speak of mount points and fstab; running mount is caught as spawning.)
const FORBIDDEN_NAMES: &[&str] = &[
    "sudo",
    "losetup",
    "kpartx",
    "qemu-nbd",
    "fusermount",
    "guestmount",
    "/dev/fuse",
    "/dev/kvm",
    "/dev/nbd",
    "/dev/loop",
    "/dev/mapper",
];

/// Where a forbidden name is text about a guest's configuration, not a device subroot
/// touches: an installed system's /etc/fstab names its LVM2 volumes `/dev/mapper/VG-LV`,
/// which the fstab parser reads and inspect's help describes. (The traced commands show
/// that no device is opened.)
const NAMES_AS_GUEST_TEXT: &[(&str, &str)] = &[
    ("src/open/fstab.rs", "/dev/mapper"),
    ("src/cli/help.rs", "/dev/mapper"),
];

/// Device paths the traced commands must never open.
const FORBIDDEN_OPENS: &[&str] = &[
    "/dev/fuse",
    "/dev/kvm",
    "/dev/nbd",
    "/dev/loop",
    "/dev/mapper",
];

/// Split Rust source into code (comments and literals blanked) and string literals.
fn lex(src: &str) -> (String, Vec<String>) {
    let b: Vec<char> = src.chars().collect();
    let mut code = String::new();
    let mut strings = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '\'' && next.is_some() && b.get(i + 2) == Some(&'\'') {
            // A one-character literal such as '"'.
            code.push_str("' '");
            i += 3;
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !prev_ident(&b, i) {
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                code.push(c);
                i += 1;
                continue;
            }
            j += 1;
            let start = j;
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let rest: String = b[j..].iter().collect();
            let end = rest
                .find(&close)
                .map_or(b.len(), |e| start + rest[..e].chars().count());
            strings.push(b[start..end.min(b.len())].iter().collect());
            code.push_str("\"\"");
            i = end + 1 + hashes;
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                if let Some(&ch) = b.get(i) {
                    s.push(ch);
                }
                i += 1;
            }
            i += 1;
            strings.push(s);
            code.push_str("\"\"");
        } else {
            code.push(c);
            i += 1;
        }
    }
    (code, strings)
}

fn prev_ident(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

/// True when `word` occurs in `text` not as part of a longer identifier-like word
/// ("mount" matches "mount /x" but not "amount" or "mountpoint"-style compounds).
fn has_word(text: &str, word: &str) -> bool {
    let lower = text.to_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(word) {
        let start = from + pos;
        let end = start + word.len();
        let before = lower[..start].chars().next_back();
        let after = lower[end..].chars().next();
        let alnum = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric());
        if word.starts_with('/') || (!alnum(before) && !alnum(after)) {
            return true;
        }
        from = end;
    }
    false
}

/// True when `pat` occurs in `code` and, if it starts with a letter, not as the tail of a
/// longer identifier (`rustix::` is not `nix::`).
fn has_code(code: &str, pat: &str) -> bool {
    code.match_indices(pat).any(|(i, _)| {
        // clap's `Command` describes a command line; it starts nothing.
        if code[..i].ends_with("clap::") {
            return false;
        }
        !pat.starts_with(|c: char| c.is_alphabetic())
            || !code[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// The source without its unit-test module: everything from the first `#[cfg(test)]`
/// line on (by this project's convention, unit tests close a file; they may run
/// reference tools, which is not subroot running them).
fn without_unit_tests(src: &str) -> &str {
    match src.find("\n#[cfg(test)]") {
        Some(i) => &src[..i],
        None => src,
    }
}

/// Problems found in one source text.
fn scan(name: &str, src: &str) -> Vec<String> {
    let (mut code, strings) = lex(without_unit_tests(src));
    if name.ends_with(LOCKING_MODULE.0) {
        for allowed in LOCKING_MODULE.1 {
            code = code.replace(allowed, "");
        }
    }
    let mut bad = Vec::new();
    if !name.ends_with(SPAWNING_MODULE) {
        for f in SPAWNING_CODE {
            if has_code(&code, f) {
                bad.push(format!("{name}: code starts a program with {f:?}"));
            }
        }
    }
    for f in FORBIDDEN_CODE {
        if has_code(&code, f) {
            bad.push(format!("{name}: code uses {f:?}"));
        }
    }
    for s in &strings {
        for w in FORBIDDEN_NAMES {
            let guest_text = NAMES_AS_GUEST_TEXT
                .iter()
                .any(|(file, word)| name.ends_with(file) && word == w);
            if has_word(s, w) && !guest_text {
                bad.push(format!("{name}: string literal {s:?} names {w:?}"));
            }
        }
    }
    bad
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn scanner_catches_spawning_and_device_names() {
    // The scan must be able to fail: each of these is caught ...
    for bad in [
        "fn f() { std::process::Command::new(\"ls\").status(); }",
        "fn f() { let _ = std::fs::File::open(\"/dev/nbd0\"); }",
        "fn f() { run(r#\"sudo losetup -f\"#); }",
        "use nix::unistd::execv;",
        "use rustix::mount::mount;",
        "const M: &str = \"/dev/loop0\";",
    ] {
        assert!(!scan("sample", bad).is_empty(), "missed: {bad}");
        // The locking module's allowance covers its lock calls only.
        assert!(
            !scan(LOCKING_MODULE.0, bad).is_empty(),
            "missed in the lock module: {bad}"
        );
    }
    // ... and comments, char literals and innocent words are not.
    for good in [
        "// we never mount or call sudo\nfn f() {}",
        "/* Command::new( */ fn f() { let c = '\"'; let s = \"an amount\"; }",
        "/// no losetup, no qemu-nbd\nfn g() -> &'static str { \"mountpoint-free\" }",
        "use rustix::fs::fallocate;",
        "fn f() { std::thread::spawn(|| ()); let m = \"the mount point\"; }",
        "fn f() { let c = clap::Command::new(\"customize\"); }",
        "fn f() {}\n#[cfg(test)]\nmod t { fn g() { Command::new(\"cpio\"); } }",
    ] {
        assert!(
            scan("sample", good).is_empty(),
            "false alarm: {good}: {:?}",
            scan("sample", good)
        );
    }
}

#[test]
fn sources_never_spawn_or_name_privileged_interfaces() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("formats/src"), &mut files);
    rust_files(&root.join("e2fs/src"), &mut files);
    assert!(files.len() > 20, "only {} sources found", files.len());
    let mut bad = Vec::new();
    for f in &files {
        let src = std::fs::read_to_string(f).expect("read");
        bad.extend(scan(&f.display().to_string(), &src));
    }
    assert!(
        bad.is_empty(),
        "privileged or spawning code:\n{}",
        bad.join("\n")
    );
}

/// Code that reads the process environment.
const ENV_READS: &[&str] = &["env::var", "env::vars", "var_os("];

/// Where `src` (unit tests excluded) reads the environment.
fn env_reads(name: &str, src: &str) -> Vec<String> {
    let (code, _) = lex(without_unit_tests(src));
    ENV_READS
        .iter()
        .filter(|f| has_code(&code, f))
        .map(|f| format!("{name}: reads the environment with {f:?}"))
        .collect()
}

#[test]
fn libraries_read_no_environment() {
    assert!(!env_reads("sample", "fn f() { std::env::var(\"X\").ok(); }").is_empty());
    assert!(!env_reads("sample", "use std::env; fn f() { env::var_os(\"X\"); }").is_empty());
    assert!(env_reads("sample", "// std::env::var(\"X\")\nfn f() {}").is_empty());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("formats/src"), &mut files);
    rust_files(&root.join("e2fs/src"), &mut files);
    assert!(files.len() > 20, "only {} sources found", files.len());
    let bad: Vec<String> = files
        .iter()
        .flat_map(|f| {
            let src = std::fs::read_to_string(f).expect("read");
            env_reads(&f.display().to_string(), &src)
        })
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Run `subroot ARGS` under strace in `dir`; returns (success, trace).
fn traced(dir: &Path, args: &[&str]) -> (bool, String) {
    let log = dir.join("strace.log");
    let inner = subroot();
    let out = Command::new(which("strace").expect("strace"))
        .args(["-f", "-qq", "-e", "trace=execve,openat,open,mount", "-o"])
        .arg(&log)
        .arg(inner.get_program())
        .args(inner.get_args())
        .args(args)
        .current_dir(dir)
        .env_remove("CI")
        .output()
        .expect("strace");
    let trace = std::fs::read_to_string(&log).expect("trace");
    std::fs::remove_file(&log).expect("rm");
    (out.status.success(), trace)
}

/// The first quoted argument of a traced syscall line.
fn first_path(line: &str) -> Option<&str> {
    let start = line.find('"')? + 1;
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

fn check_trace(args: &[&str], trace: &str, expect_open: &str) {
    check_trace_allowing(args, trace, expect_open, &[]);
}

/// [`check_trace`], also allowing the programs named in `programs` (by file name).
fn check_trace_allowing(args: &[&str], trace: &str, expect_open: &str, programs: &[&str]) {
    let mut execs = Vec::new();
    let mut opened = false;
    for line in trace.lines() {
        if line.contains("execve(") {
            let p = first_path(line).unwrap_or("?");
            execs.push(p.to_string());
        }
        if line.contains(" mount(") {
            panic!("{args:?} called mount: {line}");
        }
        if line.contains("open") {
            if let Some(p) = first_path(line) {
                for bad in FORBIDDEN_OPENS {
                    assert!(!p.starts_with(bad), "{args:?} opened {p}: {line}");
                }
                // Outputs are written as `.NAME.subroot-tmp-PID` and renamed.
                opened |=
                    p.ends_with(expect_open) || p.contains(&format!(".{expect_open}.subroot-tmp-"));
            }
        }
    }
    // setpriv (when the suite is root), subroot itself, and the allowed programs.
    assert!(!execs.is_empty(), "{args:?}: empty trace?\n{trace}");
    for e in &execs {
        let name = e.rsplit('/').next().unwrap_or(e);
        assert!(
            name == "setpriv" || name == "subroot" || programs.contains(&name),
            "{args:?} executed {e}"
        );
    }
    assert_eq!(
        execs.iter().filter(|e| e.ends_with("/subroot")).count(),
        1,
        "{args:?}: {execs:?}"
    );
    assert!(
        opened,
        "{args:?}: the trace never shows {expect_open} being opened"
    );
}

#[test]
fn commands_run_no_programs_and_open_no_devices() {
    if !need("strace", "commands_run_no_programs_and_open_no_devices")
        || !need("mke2fs", "commands_run_no_programs_and_open_no_devices")
    {
        return;
    }
    // The tracer is real strace (so an empty trace means a broken test, not a clean run).
    assert!(run_stdout("strace", &["-V"]).contains("strace"));
    let d = workdir();
    let dir = d.path();
    let fs = dir.join("fs.raw");
    run("truncate", &["-s", "32M", s(&fs)]);
    run("mke2fs", &["-q", "-F", "-t", "ext4", s(&fs)]);
    run("chmod", &["a+r", s(&fs)]);
    let cases: Vec<(Vec<&str>, &str, bool)> = vec![
        (
            vec![
                "create",
                "disk.raw",
                "-s",
                "64M",
                "--table",
                "gpt",
                "--part",
                "size=rest,type=linux",
            ],
            "disk.raw",
            true,
        ),
        (
            vec![
                "create",
                "disk.qcow2",
                "-s",
                "1G",
                "-O",
                "qcow2",
                "--table",
                "mbr",
                "--part",
                "size=100M,type=linux,bootable",
            ],
            "disk.qcow2",
            true,
        ),
        (vec!["info", "fs.raw"], "fs.raw", true),
        (vec!["info", "--json", "disk.raw"], "disk.raw", true),
        (vec!["info", "disk.qcow2"], "disk.qcow2", true),
        (
            vec!["convert", "fs.raw", "fs.qcow2", "-O", "qcow2", "-c"],
            "fs.qcow2",
            true,
        ),
        (vec!["convert", "fs.qcow2", "back.raw"], "back.raw", true),
        // A failure path too: reading a file that is not a qcow2 image as one.
        (vec!["info", "-f", "qcow2", "fs.raw"], "fs.raw", false),
    ];
    for (args, expect_open, success) in &cases {
        let (ok, trace) = traced(dir, args);
        assert_eq!(ok, *success, "{args:?}");
        check_trace(args, &trace, expect_open);
    }
    assert!(same_bytes(&fs, &dir.join("back.raw")));
}

/// The ext writer starts e2fsprogs and nothing else — no mount, no loop device — even
/// when it rebuilds a filesystem with owners and devices, as uid 65534.
#[test]
fn mkfs_runs_only_e2fsprogs() {
    for t in ["strace", "mke2fs", "debugfs", "e2fsck"] {
        if !need(t, "mkfs_runs_only_e2fsprogs") {
            return;
        }
    }
    let d = workdir();
    let dir = d.path();
    let fs = dir.join("fs.raw");
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc")).expect("mkdir");
    std::fs::write(tree.join("etc/hostname"), b"traced\n").expect("write");
    run("truncate", &["-s", "32M", s(&fs)]);
    run(
        "mke2fs",
        &["-q", "-F", "-t", "ext4", "-d", s(&tree), s(&fs)],
    );
    run("chmod", &["a+r", s(&fs)]);
    let args = ["mkfs", "fs.raw", "--from", "fs.raw", "-o", "new.raw"];
    let (ok, trace) = traced(dir, &args);
    assert!(ok, "{trace}");
    check_trace_allowing(
        &args,
        &trace,
        "new.raw",
        // stdbuf (coreutils) line-buffers debugfs so its errors pair with its commands.
        &["mke2fs", "debugfs", "e2fsck", "dumpe2fs", "stdbuf"],
    );
    assert!(trace.contains("mke2fs"), "mke2fs never ran?\n{trace}");
}
