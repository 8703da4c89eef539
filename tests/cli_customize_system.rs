//! `subroot customize`'s system operations (`--hostname`, `--timezone`, `--root-password`,
//! `--password`, `--ssh-inject`, `--firstboot`, `--firstboot-command`, `--sysprep`) on the
//! cached Debian image, as uid 65534, written as `--overlay` outputs. Judged by reading the
//! output back (`subroot cat`, `ls -l`), by the host's crypt(3) (perl) for the password
//! hashes, by `e2fsck -fn` on the flattened output, and by the input staying unchanged.
//! The boot test (tests/boot.rs) runs such an image.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

const PW: &str = "Tr0ub4dor&3 x";

/// A public key made by ssh-keygen (a fixed one if the machine lacks it).
fn public_key(dir: &Path) -> String {
    let k = dir.join("id_test");
    let made = which("ssh-keygen").is_some()
        && Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "ci@example",
                "-f",
                s(&k),
            ])
            .status()
            .is_ok_and(|st| st.success());
    if made {
        std::fs::read_to_string(k.with_extension("pub"))
            .unwrap()
            .trim()
            .to_string()
    } else {
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOz0n5V3wYk7nq2wP1Nn2mRZ0lF9GkqH3Y3N5s0JgqYb ci@example"
            .to_string()
    }
}

fn cat(dir: &Path, img: &Path, path: &str) -> String {
    ok(dir, &["-q", "cat", s(img), path])
}

/// The `ls -l` line of `path` in `img`: mode string, uid, gid.
fn stat(dir: &Path, img: &Path, path: &str) -> (String, String, String) {
    let out = ok(dir, &["-q", "ls", "-l", s(img), path]);
    let line = out.lines().last().unwrap_or_default().to_string();
    let f: Vec<&str> = line.split_whitespace().collect();
    assert!(f.len() >= 3, "ls -l {path}: {out}");
    (f[0].into(), f[1].into(), f[2].into())
}

/// Whether the host's crypt(3) (libxcrypt through perl) accepts `pw` for `hash`.
fn crypt_verifies(pw: &str, hash: &str) -> bool {
    let out = Command::new("perl")
        .args([
            "-e",
            "print crypt($ARGV[0], $ARGV[1]) eq $ARGV[1] ? 'yes' : 'no'",
            pw,
            hash,
        ])
        .output()
        .expect("perl");
    out.stdout == b"yes"
}

/// `e2fsck -fn` of the root partition (at 1 MiB) of `img`, flattened by qemu-img.
fn fsck_root(dir: &Path, img: &Path) {
    let flat = dir.join("flat.raw");
    run("qemu-img", &["convert", "-O", "raw", s(img), s(&flat)]);
    run("e2fsck", &["-fn", &format!("{}?offset=1048576", s(&flat))]);
    std::fs::remove_file(flat).unwrap();
}

fn shadow_hash(shadow: &str, user: &str) -> (String, String) {
    let line = shadow
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .unwrap_or_else(|| panic!("no {user} in {shadow}"));
    let f: Vec<&str> = line.split(':').collect();
    (f[1].to_string(), f[2].to_string())
}

#[test]
fn system_operations_on_the_debian_image() {
    let test = "system_operations_on_the_debian_image";
    for t in ["qemu-img", "e2fsck", "perl"] {
        if !need(t, test) {
            return;
        }
    }
    let Some(image) = debian_image("initramfs-tools") else {
        return;
    };
    let d = workdir();
    let key = public_key(d.path());
    let script = d.path().join("hello.sh");
    std::fs::write(&script, "#!/bin/sh\necho hello from firstboot\n").unwrap();
    run("chmod", &["a+r", s(&script)]);
    let before_shadow = cat(d.path(), &image, "/etc/shadow");
    let input_sum = run_stdout("md5sum", &[s(&image)]);
    let out = d.path().join("out.qcow2");
    ok(
        d.path(),
        &[
            "-q",
            "customize",
            s(&image),
            "--hostname",
            "vm1.example.org",
            "--timezone",
            "Europe/Paris",
            "--root-password",
            &format!("password:{PW}"),
            "--password",
            "daemon:disabled",
            "--ssh-inject",
            &format!("root:string:{key}"),
            "--firstboot",
            s(&script),
            "--firstboot-command",
            "echo second",
            "--write",
            "/etc/machine-id:0123456789abcdef0123456789abcdef\n",
            "--write",
            "/var/log/dpkg.log:installed things\n",
            "--write",
            "/var/log/dpkg.log.1:older things\n",
            "--write",
            "/tmp/junk:x",
            "--sysprep",
            "--overlay",
            s(&out),
        ],
    );
    // hostname and hosts
    assert_eq!(cat(d.path(), &out, "/etc/hostname"), "vm1.example.org\n");
    let hosts = cat(d.path(), &out, "/etc/hosts");
    assert!(
        hosts.contains("127.0.0.1\tlocalhost\n127.0.1.1\tvm1.example.org vm1\n"),
        "{hosts}"
    );
    // time zone
    let lt = ok(d.path(), &["-q", "ls", "-l", s(&out), "/etc/localtime"]);
    assert!(
        lt.trim_end()
            .ends_with("-> ../usr/share/zoneinfo/Europe/Paris"),
        "{lt}"
    );
    assert_eq!(cat(d.path(), &out, "/etc/timezone"), "Europe/Paris\n");
    // passwords: yescrypt as the image's PAM says; other lines untouched; owner and mode
    let shadow = cat(d.path(), &out, "/etc/shadow");
    let (root_hash, _) = shadow_hash(&shadow, "root");
    assert!(root_hash.starts_with("$y$j9T$"), "{root_hash}");
    assert!(crypt_verifies(PW, &root_hash));
    assert!(!crypt_verifies("wrong", &root_hash));
    assert_eq!(shadow_hash(&shadow, "daemon").0, "*");
    for (a, b) in before_shadow.lines().zip(shadow.lines()) {
        if !a.starts_with("root:") {
            assert_eq!(a, b);
        }
    }
    assert_eq!(
        stat(d.path(), &image, "/etc/shadow"),
        stat(d.path(), &out, "/etc/shadow")
    );
    // the key, owned by root, modes 0700 / 0600
    assert_eq!(
        cat(d.path(), &out, "/root/.ssh/authorized_keys"),
        format!("{key}\n")
    );
    let (m, u, g) = stat(d.path(), &out, "/root/.ssh/authorized_keys");
    assert_eq!(
        (m.as_str(), u.as_str(), g.as_str()),
        ("-rw-------", "0", "0")
    );
    let listing = ok(d.path(), &["-q", "ls", "-l", s(&out), "/root"]);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("drwx------") && l.ends_with(" .ssh")),
        "{listing}"
    );
    // first boot: both scripts in order, the unit and its wants link
    let scripts = ok(
        d.path(),
        &["-q", "ls", s(&out), "/usr/lib/subroot-firstboot/scripts"],
    );
    assert_eq!(
        scripts.lines().collect::<Vec<_>>(),
        ["0001-hello.sh", "0002-command"]
    );
    assert_eq!(
        cat(
            d.path(),
            &out,
            "/usr/lib/subroot-firstboot/scripts/0001-hello.sh"
        ),
        "#!/bin/sh\necho hello from firstboot\n"
    );
    assert_eq!(
        stat(d.path(), &out, "/usr/lib/subroot-firstboot/run").0,
        "-rwxr-xr-x"
    );
    let wants = ok(
        d.path(),
        &[
            "-q",
            "ls",
            "-l",
            s(&out),
            "/etc/systemd/system/multi-user.target.wants",
        ],
    );
    assert!(
        wants
            .contains("subroot-firstboot.service -> /etc/systemd/system/subroot-firstboot.service"),
        "{wants}"
    );
    assert!(cat(
        d.path(),
        &out,
        "/etc/systemd/system/subroot-firstboot.service"
    )
    .contains("ExecStart=/usr/lib/subroot-firstboot/run"));
    // sysprep, which sees the earlier operations of the run: the machine id written
    // earlier is emptied, and so is the log written earlier.
    assert_eq!(cat(d.path(), &out, "/etc/machine-id"), "");
    assert_eq!(cat(d.path(), &out, "/var/log/dpkg.log"), "");
    let logs = ok(d.path(), &["-q", "ls", s(&out), "/var/log"]);
    assert!(!logs.lines().any(|l| l == "dpkg.log.1"), "{logs}");
    assert_eq!(ok(d.path(), &["-q", "ls", s(&out), "/tmp"]), "");
    // sysprep of that output (as a used machine): logs truncated in place (owner and mode
    // kept) or removed when rotated, /tmp emptied, the first-boot scripts left waiting.
    let again = d.path().join("again.qcow2");
    ok(
        d.path(),
        &[
            "-q",
            "customize",
            s(&out),
            "--sysprep",
            "--overlay",
            s(&again),
        ],
    );
    assert_eq!(cat(d.path(), &again, "/var/log/dpkg.log"), "");
    assert_eq!(
        stat(d.path(), &again, "/var/log/dpkg.log"),
        stat(d.path(), &out, "/var/log/dpkg.log")
    );
    let logs = ok(d.path(), &["-q", "ls", s(&again), "/var/log"]);
    assert!(!logs.lines().any(|l| l == "dpkg.log.1"), "{logs}");
    assert_eq!(ok(d.path(), &["-q", "ls", s(&again), "/tmp"]), "");
    assert_eq!(
        stat(d.path(), &again, "/var/log/wtmp"),
        stat(d.path(), &image, "/var/log/wtmp")
    );
    let waiting = ok(
        d.path(),
        &["-q", "ls", s(&again), "/usr/lib/subroot-firstboot/scripts"],
    );
    assert_eq!(waiting, scripts);
    fsck_root(d.path(), &again);
    // the input untouched, the output a sound filesystem
    assert_eq!(run_stdout("md5sum", &[s(&image)]), input_sum);
    fsck_root(d.path(), &out);
}

/// Injecting the same key twice (once more on the output) leaves it there once.
#[test]
fn ssh_inject_is_idempotent() {
    let Some(image) = debian_image("initramfs-tools") else {
        return;
    };
    let d = workdir();
    let key = public_key(d.path());
    let kf = d.path().join("k.pub");
    std::fs::write(&kf, format!("{key}\n")).unwrap();
    run("chmod", &["a+r", s(&kf)]);
    let a = d.path().join("a.qcow2");
    let b = d.path().join("b.qcow2");
    let inject = format!("root:file:{}", s(&kf));
    ok(
        d.path(),
        &[
            "-q",
            "customize",
            s(&image),
            "--ssh-inject",
            &inject,
            "--ssh-inject",
            &inject,
            "--overlay",
            s(&a),
        ],
    );
    ok(
        d.path(),
        &[
            "-q",
            "customize",
            s(&a),
            "--ssh-inject",
            &inject,
            "--overlay",
            s(&b),
        ],
    );
    assert_eq!(
        cat(d.path(), &b, "/root/.ssh/authorized_keys"),
        format!("{key}\n")
    );
}

/// A system operation sees the file operations given before it: a user added to
/// `/etc/passwd` and `/etc/shadow` by `--append-line`, with a home made by `--mkdir` and
/// given to it by `--chown`, then gets `--password` and `--ssh-inject`.
#[test]
fn system_operations_see_earlier_file_operations() {
    let Some(image) = debian_image("initramfs-tools") else {
        return;
    };
    let d = workdir();
    let key = public_key(d.path());
    let out = d.path().join("u.qcow2");
    ok(
        d.path(),
        &[
            "-q",
            "customize",
            s(&image),
            "--append-line",
            "/etc/passwd:ci:x:1234:1234:CI user:/home/ci:/bin/sh",
            "--append-line",
            "/etc/group:ci:x:1234:",
            "--append-line",
            "/etc/shadow:ci:!:19000:0:99999:7:::",
            "--mkdir",
            "/home/ci",
            "--chown",
            "ci:ci:/home/ci",
            "--password",
            &format!("ci:password:{PW}"),
            "--ssh-inject",
            &format!("ci:string:{key}"),
            "--overlay",
            s(&out),
        ],
    );
    let shadow = cat(d.path(), &out, "/etc/shadow");
    let (hash, _) = shadow_hash(&shadow, "ci");
    assert!(crypt_verifies(PW, &hash), "{hash}");
    assert_eq!(
        cat(d.path(), &out, "/home/ci/.ssh/authorized_keys"),
        format!("{key}\n")
    );
    let (mode, uid, gid) = stat(d.path(), &out, "/home/ci/.ssh/authorized_keys");
    assert_eq!(
        (mode.as_str(), uid.as_str(), gid.as_str()),
        ("-rw-------", "1234", "1234")
    );
    fsck_root(d.path(), &out);
}

/// Bad requests fail before anything is written, naming what is wrong.
#[test]
fn bad_system_operations_are_refused_before_writing() {
    let Some(image) = debian_image("initramfs-tools") else {
        return;
    };
    let d = workdir();
    let out = d.path().join("out.qcow2");
    let cases: &[(&[&str], &[&str])] = &[
        (&["--password", "alice:password:x"], &["no user \"alice\""]),
        (
            &["--timezone", "Mars/Olympus"],
            &["unknown time zone", "/usr/share/zoneinfo/Mars/Olympus"],
        ),
        (
            &["--sysprep=machine-id,bogus"],
            &["unknown operation \"bogus\"", "ssh-hostkeys"],
        ),
        (&["--hostname", "bad name"], &["not a host name"]),
        (
            &["--ssh-inject", "nobody:string:ssh-ed25519 AAAA x"],
            &["/nonexistent) is not a directory"],
        ),
        (
            &["--firstboot", "/no/such/script"],
            &["cannot read the script /no/such/script"],
        ),
    ];
    for (ops, phrases) in cases {
        let mut args = vec!["-q", "customize", s(&image)];
        args.extend_from_slice(ops);
        args.extend_from_slice(&["--overlay", s(&out)]);
        fails(d.path(), &args, 1, phrases);
        assert!(!out.exists(), "{ops:?} left an output");
    }
}
