//! Black-box tests of `subroot relayout`: the plan (`--dry-run`, text and JSON) of images
//! made at test time by the reference tools (`mke2fs -d` from a staged tree, initrds by
//! GNU `cpio` + `gzip`, LUKS by `cryptsetup`, btrfs by `mkfs.btrfs`), the refusals, and
//! the idempotence of the command-line edits. Judges: `debugfs` (what the filesystem
//! holds), `blkid` (what a partition is), `cmp`/`names` (nothing written by a dry run).

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

use common::relayout::{image, qcow2_disk, sh, stage, INITRD_DIR};

fn json(dir: &Path, args: &[&str]) -> Value {
    let out = ok(dir, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("string").to_string())
        .collect()
}

/// The top-level names of partition 1's filesystem, as debugfs lists them.
fn debugfs_top(img: &Path) -> Vec<String> {
    let part = img.with_extension("p1");
    sh(&format!(
        "dd if={} of={} bs=1M skip=1 status=none",
        s(img),
        s(&part)
    ));
    let out = run_stdout("debugfs", &["-R", "ls -p /", s(&part)]);
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| l.split('/').nth(5).map(str::to_string))
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .collect();
    v.sort();
    let _ = std::fs::remove_file(&part);
    v
}

#[test]
fn dry_run_plans_the_demo_image() {
    for t in ["mke2fs", "debugfs", "cpio", "sfdisk"] {
        if !need(t, "dry_run_plans_the_demo_image") {
            return;
        }
    }
    let d = workdir();
    let st = stage(d.path(), Some(Path::new(INITRD_DIR)));
    let img = image(d.path(), &st);
    let before = names(d.path());
    let plan = json(d.path(), &["relayout", s(&img), "--dry-run", "--json"]);
    // Nothing written.
    assert_eq!(names(d.path()), before);
    assert_eq!(plan["root_partition"], 1);
    assert_eq!(plan["uuid"], "5e1f0b0a-7c3d-4e2a-9b1c-2d3e4f5a6b7c");
    assert_eq!(plan["subroot"], "r0");
    // What inspect sees of the system being moved, from the image's own files.
    let os_release = std::fs::read_to_string(st.join("etc/os-release")).expect("os-release");
    let pretty = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"'))
        .expect("PRETTY_NAME");
    assert_eq!(plan["system"]["os"], pretty, "{plan}");
    assert_eq!(
        plan["system"]["hostname"],
        std::fs::read_to_string(st.join("etc/hostname"))
            .expect("hostname")
            .trim(),
        "{plan}"
    );
    // Every top-level name debugfs sees is either moved or kept, and the split is the rule.
    let top = debugfs_top(&img);
    let moved: Vec<String> = plan["moves"]
        .as_array()
        .expect("moves")
        .iter()
        .map(|m| {
            let from = m["from"].as_str().expect("from");
            assert_eq!(m["to"].as_str().expect("to"), format!("/r0{from}"));
            from.trim_start_matches('/').to_string()
        })
        .collect();
    let kept: Vec<String> = strings(&plan["kept"])
        .iter()
        .map(|k| k.trim_start_matches('/').to_string())
        .collect();
    let mut all: Vec<String> = moved.iter().chain(kept.iter()).cloned().collect();
    all.sort();
    assert_eq!(all, top);
    for k in &kept {
        assert!(
            ["boot", "var", "home", "lost+found"].contains(&k.as_str()),
            "{k} kept"
        );
    }
    assert!(moved.contains(&"bin".to_string()) && moved.contains(&"etc".to_string()));
    // The edits: the grub.cfg linux line and GRUB_CMDLINE_LINUX, nothing else.
    let edits = plan["edits"].as_array().expect("edits");
    let paths: Vec<&str> = edits
        .iter()
        .map(|e| e["path"].as_str().expect("p"))
        .collect();
    assert_eq!(paths, vec!["/boot/grub/grub.cfg", "/r0/etc/default/grub"]);
    assert_eq!(
        edits[0]["changes"][0]["new"],
        "\tlinux /boot/vmlinuz root=LABEL=demo-root ro quiet subroot=r0"
    );
    assert_eq!(
        edits[1]["changes"][0]["new"],
        "GRUB_CMDLINE_LINUX=\"subroot=r0\""
    );
    let initrds = plan["initrds"].as_array().expect("initrds");
    assert_eq!(initrds.len(), 1);
    assert_eq!(initrds[0]["path"], "/boot/initrd.img-6.1.0-t");
    assert_eq!(initrds[0]["flavour"], "initramfs-tools");
    assert_eq!(
        initrds[0]["size"].as_u64(),
        Some(
            std::fs::metadata(st.join("boot/initrd.img-6.1.0-t"))
                .expect("stat")
                .len()
        )
    );
    assert_eq!(
        plan["installed"][0]["path"],
        "/r0/etc/initramfs-tools/scripts/local-bottom/subroot"
    );
    let created: Vec<String> = plan["created"]
        .as_array()
        .expect("created")
        .iter()
        .map(|c| c["path"].as_str().expect("p").to_string())
        .collect();
    for p in [
        "/r0",
        "/r0/boot",
        "/r0/boot/EMPTY",
        "/r0/var/EMPTY",
        "/r0/home",
        "/r0/sysroot",
    ] {
        assert!(
            created.iter().any(|c| c == p),
            "{p} not created: {created:?}"
        );
    }
    let parts = plan["partitions"].as_array().expect("partitions");
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0]["action"], "edit");
    assert_eq!(parts[0]["start"], 1048576);
    assert_eq!(plan["engine"], "edit");
    assert!(plan["engine_reason"].is_null(), "{plan}");
    let rb = json(
        d.path(),
        &[
            "relayout",
            s(&img),
            "--dry-run",
            "--json",
            "--engine",
            "rebuild",
        ],
    );
    assert_eq!(rb["engine"], "rebuild");
    assert_eq!(rb["partitions"][0]["action"], "rebuild");
    assert!(rb["engine_reason"]
        .as_str()
        .expect("reason")
        .contains("asked"));

    // The text plan says the same.
    let text = ok(d.path(), &["relayout", s(&img), "--dry-run"]);
    assert!(text.contains("move    /etc -> /r0/etc (dir)"), "{text}");
    assert!(
        text.contains("+ GRUB_CMDLINE_LINUX=\"subroot=r0\""),
        "{text}"
    );

    // --move: the note's list; names that do not exist are skipped and reported.
    let plan = json(
        d.path(),
        &[
            "relayout",
            s(&img),
            "--dry-run",
            "--json",
            "--move",
            "bin dev etc lib lib32 lib64 media mnt opt proc root run sbin selinux srv sys tmp usr",
        ],
    );
    let skipped = strings(&plan["skipped"]);
    assert!(skipped.contains(&"lib32".to_string()) && skipped.contains(&"selinux".to_string()));
    assert!(!skipped.contains(&"etc".to_string()));
    assert_eq!(plan["moves"].as_array().expect("m").len(), 3);
}

#[test]
fn command_line_edits_are_idempotent() {
    for t in ["mke2fs", "cpio", "sfdisk"] {
        if !need(t, "command_line_edits_are_idempotent") {
            return;
        }
    }
    let d = workdir();
    let st = stage(d.path(), Some(Path::new(INITRD_DIR)));
    // A system whose boot configuration already says subroot (twice on one line).
    std::fs::write(
        st.join("boot/grub/grub.cfg"),
        "menuentry x {\n\tlinux /boot/vmlinuz root=LABEL=r ro subroot=r0\n}\nmenuentry y {\n\tlinux /boot/vmlinuz subroot=old ro subroot=r9\n}\n",
    )
    .expect("write");
    std::fs::write(
        st.join("etc/default/grub"),
        "GRUB_CMDLINE_LINUX=\"subroot=r0\"\n",
    )
    .expect("w");
    let img = image(d.path(), &st);
    let plan = json(d.path(), &["relayout", s(&img), "--dry-run", "--json"]);
    let edits = plan["edits"].as_array().expect("edits");
    assert_eq!(edits.len(), 1, "{edits:?}");
    let ch = edits[0]["changes"].as_array().expect("changes");
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0]["line"], 5);
    assert_eq!(ch[0]["new"], "\tlinux /boot/vmlinuz subroot=r0 ro");
}

#[test]
fn refuses_an_image_already_relayouted() {
    for t in ["mke2fs", "cpio", "sfdisk"] {
        if !need(t, "refuses_an_image_already_relayouted") {
            return;
        }
    }
    // An r0 with content.
    let d = workdir();
    let st = stage(d.path(), Some(Path::new(INITRD_DIR)));
    sh(&format!(
        "mkdir -p {0}/r0/etc && echo x > {0}/r0/etc/x",
        s(&st)
    ));
    let img = image(d.path(), &st);
    fails(
        d.path(),
        &["-q", "relayout", s(&img), "-o", "out.raw"],
        3,
        &["/r0 exists and is not empty", "already relayouted"],
    );
    assert!(!d.path().join("out.raw").exists());

    // An initrd that already has the hook: refused, unless --refresh-hook.
    let d = workdir();
    let hooked = d.path().join("initrd-hooked");
    sh(&format!(
        "cp -a {INITRD_DIR} {h} && mkdir -p {h}/scripts/local-bottom && printf '#!/bin/sh\\n' > {h}/scripts/local-bottom/subroot",
        h = s(&hooked)
    ));
    let st = stage(d.path(), Some(&hooked));
    let img = image(d.path(), &st);
    fails(
        d.path(),
        &["-q", "relayout", s(&img), "--dry-run"],
        3,
        &[
            "/boot/initrd.img-6.1.0-t already has the subroot hook",
            "--refresh-hook",
        ],
    );
    let plan = json(
        d.path(),
        &["relayout", s(&img), "--dry-run", "--json", "--refresh-hook"],
    );
    assert_eq!(plan["initrds"][0]["hook_present"], true);
}

#[test]
fn refuses_without_initrd_or_with_an_unknown_one() {
    for t in ["mke2fs", "cpio", "sfdisk"] {
        if !need(t, "refuses_without_initrd_or_with_an_unknown_one") {
            return;
        }
    }
    let d = workdir();
    let st = stage(d.path(), None);
    let img = image(d.path(), &st);
    fails(
        d.path(),
        &["-q", "relayout", s(&img), "--dry-run"],
        3,
        &["no initrd found"],
    );

    let d = workdir();
    let plain = d.path().join("plain");
    sh(&format!(
        "mkdir -p {p}/bin && printf '#!/bin/sh\\n' > {p}/init",
        p = s(&plain)
    ));
    let st = stage(d.path(), Some(&plain));
    let img = image(d.path(), &st);
    fails(
        d.path(),
        &["-q", "relayout", s(&img), "--dry-run"],
        3,
        &[
            "/boot/initrd.img-6.1.0-t is of an unknown flavour",
            "initramfs-tools and dracut",
        ],
    );
}

#[test]
fn refuses_luks_and_btrfs() {
    for t in ["cryptsetup", "blkid", "sfdisk", "mkfs.btrfs"] {
        if !need(t, "refuses_luks_and_btrfs") {
            return;
        }
    }
    let d = workdir();
    let img = d.path().join("luks.raw");
    let vol = d.path().join("vol");
    sh(&format!(
        "truncate -s 32M {v} && printf pass | cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 \
         --pbkdf-force-iterations 1000 --key-file - {v} && \
         truncate -s 40M {i} && printf 'label: dos\\nstart=2048, type=83\\n' | sfdisk -q {i} && \
         dd if={v} of={i} bs=1M seek=1 conv=notrunc status=none && chmod a+r {i}",
        v = s(&vol),
        i = s(&img)
    ));
    // The judge: blkid says the partition is LUKS.
    let probe = run("blkid", &["-p", "-o", "value", "-s", "TYPE", s(&vol)]);
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "crypto_LUKS");
    fails(
        d.path(),
        &["-q", "relayout", s(&img), "--dry-run"],
        3,
        &[
            "is crypto_LUKS",
            "found a LUKS-encrypted volume",
            "ext2/3/4",
        ],
    );

    let img = d.path().join("btrfs.raw");
    sh(&format!(
        "truncate -s 200M {v}.b && mkfs.btrfs -q {v}.b && truncate -s 210M {i} && \
         printf 'label: dos\\nstart=2048, type=83\\n' | sfdisk -q {i} && \
         dd if={v}.b of={i} bs=1M seek=1 conv=notrunc status=none && chmod a+r {i}",
        v = s(&vol),
        i = s(&img)
    ));
    fails(
        d.path(),
        &["-q", "relayout", s(&img), "--dry-run"],
        3,
        &["is btrfs", "found a btrfs filesystem", "ext2/3/4"],
    );
}

/// Manifest lines (path, rest) with paths renamed, including the hard-link column (the
/// path of the group's first member in walk order, which the relayout may change: it is
/// renamed and then re-chosen as the smallest renamed member, on both sides alike).
fn manifest(dir: &Path, img: &Path, rename: &dyn Fn(&str) -> String) -> Vec<(String, String)> {
    manifest_of(dir, img, &[], rename)
}

/// [`manifest`] with extra arguments (`-p N`).
fn manifest_of(
    dir: &Path,
    img: &Path,
    extra: &[&str],
    rename: &dyn Fn(&str) -> String,
) -> Vec<(String, String)> {
    let mut args = vec!["-q", "manifest", s(img)];
    args.extend_from_slice(extra);
    let text = ok(dir, &args);
    let mut rows: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    let mut groups: std::collections::HashMap<String, String> = Default::default();
    for r in &mut rows {
        r[0] = rename(&r[0]);
        if r[11] != "-" {
            let g = groups.entry(r[11].clone()).or_insert_with(|| r[0].clone());
            if r[0] < *g {
                *g = r[0].clone();
            }
        }
    }
    for r in &mut rows {
        if r[11] != "-" {
            r[11] = groups[&r[11]].clone();
        }
    }
    rows.into_iter()
        .map(|r| (r[0].clone(), r[1..].join("\t")))
        .collect()
}

#[test]
fn relayout_keeps_every_entry_exactly() {
    for t in [
        "mke2fs", "debugfs", "e2fsck", "cpio", "sfdisk", "setfattr", "cmp",
    ] {
        if !need(t, "relayout_keeps_every_entry_exactly") {
            return;
        }
    }
    let d = workdir();
    let st = stage(d.path(), Some(Path::new(INITRD_DIR)));
    // A rich tree: owners, xattrs, hard links, a sparse file, a fifo, ns times, and (as
    // root) devices and foreign owners.
    sh(&format!(
        "cd {r} && mkdir -p usr/lib/x var/lib/y && \
         printf data > usr/lib/x/a && ln usr/lib/x/a usr/lib/x/b && ln usr/lib/x/a var/lib/y/c && \
         truncate -s 8M usr/lib/x/sparse && printf tail | dd of=usr/lib/x/sparse bs=1 seek=4194304 conv=notrunc status=none && \
         mkfifo usr/lib/x/fifo && setfattr -n user.note -v hello usr/lib/x/a && \
         touch -d '2021-05-06 07:08:09.123456789' usr/lib/x/sparse && chmod 4751 usr/lib/x/a && \
         if [ $(id -u) = 0 ]; then mknod usr/lib/x/null c 1 3 && chown 1234:5678 usr/lib/x/sparse && \
           mkdir -p home/u && chown -R 1000:1000 home/u; fi && \
         mkdir 'with space' \"q'uote\" \"$(printf 'bad\\377name')\" && touch 'with space/f' && \
         printf x > \"q'uote/\\\"dq\" && ln -s usr/lib lnk && printf y > 'top file' && \
         (cd 'with space' && seq -f 'n%04g' 1 300 | xargs touch)",
        r = s(&st)
    ));
    let img = image(d.path(), &st);
    let mut outs = Vec::new();
    for engine in ["edit", "rebuild"] {
        let out = d.path().join(format!("out-{engine}.raw"));
        ok(
            d.path(),
            &["-q", "relayout", s(&img), "-o", s(&out), "--engine", engine],
        );
        keeps_every_entry(d.path(), &img, &out);
        outs.push(out);
    }
    // Both engines make the same tree.
    let same = |p: &str| p.to_string();
    assert_eq!(
        manifest(d.path(), &outs[0], &same),
        manifest(d.path(), &outs[1], &same)
    );
}

/// Judge one relayout output `out` of `img` (see `relayout_keeps_every_entry_exactly`).
fn keeps_every_entry(dir: &Path, img: &Path, out: &Path) {
    let d = tempfile::tempdir_in(dir).expect("tempdir");
    let plan = json(d.path(), &["relayout", s(img), "--dry-run", "--json"]);
    let moved: Vec<String> = plan["moves"]
        .as_array()
        .expect("moves")
        .iter()
        .map(|m| {
            let from = json_name(m, "from").expect("from");
            subroot_formats::manifest::escape(&from[1..])
        })
        .collect();
    let rename = |p: &str| -> String {
        let top = p.split('/').next().unwrap_or("");
        if moved.iter().any(|m| m == top) {
            format!("r0/{p}")
        } else {
            p.to_string()
        }
    };
    let before = manifest(d.path(), img, &rename);
    let after = manifest(d.path(), out, &|p| p.to_string());
    let created: Vec<String> = plan["created"]
        .as_array()
        .expect("created")
        .iter()
        .map(|c| {
            c["path"]
                .as_str()
                .expect("p")
                .trim_start_matches('/')
                .to_string()
        })
        .collect();
    let edited: Vec<String> = plan["edits"]
        .as_array()
        .expect("edits")
        .iter()
        .chain(plan["initrds"].as_array().expect("initrds"))
        .map(|c| {
            c["path"]
                .as_str()
                .expect("p")
                .trim_start_matches('/')
                .to_string()
        })
        .collect();
    let after_map: std::collections::BTreeMap<&str, &str> = after
        .iter()
        .map(|(p, l)| (p.as_str(), l.as_str()))
        .collect();
    let before_map: std::collections::BTreeMap<&str, &str> = before
        .iter()
        .map(|(p, l)| (p.as_str(), l.as_str()))
        .collect();
    for (p, line) in &before_map {
        let got = after_map
            .get(p)
            .unwrap_or_else(|| panic!("{p} missing from the output"));
        if edited.iter().any(|e| e == p) {
            // Same metadata apart from size and content.
            let strip = |l: &str| {
                let f: Vec<&str> = l.split('\t').collect();
                format!("{} {} {} {} {} {}", f[0], f[1], f[2], f[4], f[11], f[12])
            };
            assert_eq!(strip(got), strip(line), "{p}");
            assert_ne!(got, line, "{p} was to be edited");
        } else {
            assert_eq!(got, line, "{p} changed");
        }
    }
    for p in after_map.keys() {
        if !before_map.contains_key(p) {
            assert!(
                created.iter().any(|c| c == p),
                "{p} appeared but is not in the plan"
            );
        }
    }
    // The rebuilt filesystem is clean for e2fsck and holds what debugfs says.
    let part = d.path().join("p1");
    sh(&format!(
        "dd if={} of={} bs=1M skip=1 status=none",
        s(out),
        s(&part)
    ));
    let fsck = run("e2fsck", &["-fn", s(&part)]);
    assert!(
        fsck.status.success(),
        "e2fsck: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let ea = run_stdout(
        "debugfs",
        &["-R", "ea_get /r0/usr/lib/x/a user.note", s(&part)],
    );
    assert!(ea.contains("hello"), "{ea}");
    let stat = run_stdout("debugfs", &["-R", "stat /r0/usr/lib/x/a", s(&part)]);
    assert!(stat.contains("Links: 3"), "{stat}");
    // Outside the partition nothing changed (the MBR and the gap before it).
    assert!(run("cmp", &["-n", "1048576", s(img), s(out)])
        .status
        .success());
    assert_eq!(
        std::fs::metadata(img).expect("stat").len(),
        std::fs::metadata(out).expect("stat").len()
    );
}

#[test]
fn relayout_edits_a_separate_boot_partition() {
    let t = "relayout_edits_a_separate_boot_partition";
    for tool in [
        "mke2fs", "e2fsck", "debugfs", "cpio", "sfdisk", "blkid", "cmp",
    ] {
        if !need(tool, t) {
            return;
        }
    }
    use common::relayout::{separate_boot_disk, BOOT_UUID, ROOT_UUID};
    let d = workdir();
    let (img, _) = separate_boot_disk(d.path());

    // Before: the root partition is found by its os-release.
    let before_ls = subroot_in(d.path(), &["ls", s(&img), "/etc"]);
    assert!(before_ls.status.success());
    let note = String::from_utf8_lossy(&before_ls.stderr);
    assert!(
        note.contains("using partition 2 (ext4, label=root) (root filesystem)"),
        "{note}"
    );

    // The plan names both partitions, and the edits and initrd are on partition 1.
    let plan = json(d.path(), &["relayout", s(&img), "--dry-run", "--json"]);
    assert_eq!(plan["root_partition"], 2);
    assert_eq!(plan["uuid"], ROOT_UUID);
    assert_eq!(plan["boot_partition"]["partition"], 1);
    assert_eq!(plan["boot_partition"]["uuid"], BOOT_UUID);
    assert_eq!(
        plan["boot_partition"]["fstab_device"],
        format!("UUID={BOOT_UUID}")
    );
    let parts = plan["partitions"].as_array().expect("partitions");
    assert_eq!(parts.len(), 2);
    assert!(parts.iter().all(|p| p["action"] == "edit"), "{parts:?}");
    let edits = plan["edits"].as_array().expect("edits");
    let grub = edits
        .iter()
        .find(|e| e["path"] == "/grub/grub.cfg")
        .unwrap_or_else(|| panic!("no grub.cfg edit: {edits:?}"));
    assert_eq!(grub["partition"], 1);
    assert_eq!(grub["changes"].as_array().expect("changes").len(), 2);
    assert!(edits.iter().all(|e| e["path"] != "/boot/grub/grub.cfg"));
    assert_eq!(plan["initrds"][0]["path"], "/initrd.img-6.1.0-t");
    assert_eq!(plan["initrds"][0]["partition"], 1);
    let text = ok(d.path(), &["relayout", s(&img), "--dry-run"]);
    assert!(
        text.contains("edit    /grub/grub.cfg on partition 1"),
        "{text}"
    );
    assert!(text.contains("/boot   partition 1"), "{text}");

    // The real runs, with both engines.
    for engine in ["edit", "rebuild"] {
        let out = d.path().join(format!("out-{engine}.raw"));
        ok(
            d.path(),
            &["-q", "relayout", s(&img), "-o", s(&out), "--engine", engine],
        );
        separate_boot_output(d.path(), &img, &out);
    }
}

/// Judge one relayout output `out` of `img` (see `relayout_edits_a_separate_boot_partition`).
fn separate_boot_output(dir: &Path, img: &Path, out: &Path) {
    use common::relayout::{separate_part, BOOT_UUID, ROOT_UUID};
    let d = tempfile::tempdir_in(dir).expect("tempdir");
    let (img, out) = (img.to_path_buf(), out.to_path_buf());
    let (p1, p2) = (d.path().join("p1"), d.path().join("p2"));
    separate_part(&out, 1, &p1);
    separate_part(&out, 2, &p2);
    for (part, uuid) in [(&p1, BOOT_UUID), (&p2, ROOT_UUID)] {
        let fsck = run("e2fsck", &["-fn", s(part)]);
        assert!(
            fsck.status.success(),
            "e2fsck {}: {}",
            s(part),
            String::from_utf8_lossy(&fsck.stdout)
        );
        let id = run_stdout("blkid", &["-p", "-o", "value", "-s", "UUID", s(part)]);
        assert_eq!(id.trim(), uuid);
    }
    // grub.cfg on p1: every linux line carries subroot=r0 (debugfs reads it).
    let cfg = run_stdout("debugfs", &["-R", "cat /grub/grub.cfg", s(&p1)]);
    let linux: Vec<&str> = cfg
        .lines()
        .filter(|l| l.trim_start().starts_with("linux "))
        .collect();
    assert_eq!(linux.len(), 2, "{cfg}");
    assert!(linux.iter().all(|l| l.ends_with(" subroot=r0")), "{cfg}");
    // The initrd on p1 has the hook.
    let listing = ok(
        d.path(),
        &[
            "-q",
            "initrd",
            "ls",
            "--image",
            s(&out),
            "-p",
            "1",
            "/initrd.img-6.1.0-t",
        ],
    );
    assert!(
        listing.lines().any(|l| l == "scripts/local-bottom/subroot"),
        "{listing}"
    );
    // The root's /boot is still the (empty) mount point, the system is in r0.
    let top = run_stdout("debugfs", &["-R", "ls -p /r0/etc", s(&p2)]);
    assert!(top.contains("/os-release/"), "{top}");

    // /boot manifests are equal except the two edited files (same metadata apart from
    // size and content).
    let same = |p: &str| p.to_string();
    let before = manifest_of(d.path(), &img, &["-p", "1"], &same);
    let after = manifest_of(d.path(), &out, &["-p", "1"], &same);
    assert_eq!(before.len(), after.len());
    for ((pb, lb), (pa, la)) in before.iter().zip(after.iter()) {
        assert_eq!(pb, pa);
        if pb == "grub/grub.cfg" || pb == "initrd.img-6.1.0-t" {
            let strip = |l: &str| {
                let f: Vec<&str> = l.split('\t').collect();
                format!("{} {} {} {} {} {}", f[0], f[1], f[2], f[4], f[11], f[12])
            };
            assert_eq!(strip(la), strip(lb), "{pb}");
            assert_ne!(la, lb, "{pb} was to be edited");
        } else {
            assert_eq!(la, lb, "{pb} changed");
        }
    }
    // Outside the two partitions nothing changed (the MBR and the gap before p1).
    assert!(run("cmp", &["-n", "1048576", s(&img), s(&out)])
        .status
        .success());

    // After: `ls OUT /r0` needs no -p on this two-partition disk.
    let after_ls = subroot_in(d.path(), &["ls", s(&out), "/r0"]);
    let note = String::from_utf8_lossy(&after_ls.stderr);
    assert!(after_ls.status.success(), "{note}");
    assert!(
        note.contains(
            "using partition 2 (ext4, label=root) (root filesystem of a relayouted image)"
        ),
        "{note}"
    );
    let names: Vec<String> = String::from_utf8_lossy(&after_ls.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(names.iter().any(|n| n == "etc"), "{names:?}");
}

#[test]
fn separate_boot_that_cannot_be_found_or_is_not_ext_is_refused() {
    let t = "separate_boot_that_cannot_be_found_or_is_not_ext_is_refused";
    for tool in ["mke2fs", "cpio", "sfdisk", "mkfs.vfat"] {
        if !need(tool, t) {
            return;
        }
    }
    // fstab names a UUID no partition has.
    let d = workdir();
    let st = stage(d.path(), Some(Path::new(INITRD_DIR)));
    std::fs::write(
        st.join("etc/fstab"),
        "LABEL=demo-root / ext4 defaults 0 1
UUID=deadbeef-0000-4000-8000-000000000000 /boot ext4 defaults 0 2
",
    )
    .expect("fstab");
    let img = image(d.path(), &st);
    fails(
        d.path(),
        &["-q", "relayout", s(&img), "--dry-run"],
        3,
        &[
            "mounts /boot from UUID=deadbeef-0000-4000-8000-000000000000",
            "no partition",
        ],
    );
    // fstab names a vfat partition as /boot.
    let img2 = d.path().join("vfat-boot.raw");
    sh(&format!(
        "truncate -s 96M {i} && \
         printf 'label: dos\\nstart=2048, size=65536, type=c\\nstart=67584, type=83\\n' | sfdisk -q {i} && \
         truncate -s 32M {i}.v && mkfs.vfat -i 12345678 {i}.v >/dev/null && \
         dd if={i}.v of={i} bs=1M seek=1 conv=notrunc status=none && \
         printf 'LABEL=demo-root / ext4 defaults 0 1\\nUUID=1234-5678 /boot vfat defaults 0 2\\n' > {r}/etc/fstab && \
         mke2fs -q -F -t ext4 -L root -E offset=34603008 -d {r} {i} 63M && chmod a+r {i}",
        i = s(&img2),
        r = s(&st)
    ));
    fails(
        d.path(),
        &["-q", "relayout", s(&img2), "--dry-run"],
        3,
        &["the /boot partition 1 (UUID=1234-5678) is not ext2/3/4"],
    );
}

#[test]
fn esp_boot_entries_are_planned_and_edited() {
    let t = "esp_boot_entries_are_planned_and_edited";
    for tool in [
        "mke2fs",
        "cpio",
        "sfdisk",
        "mkfs.vfat",
        "mcopy",
        "mmd",
        "mtype",
        "fsck.fat",
        "blkid",
    ] {
        if !need(tool, t) {
            return;
        }
    }
    let d = workdir();
    let st = stage(d.path(), Some(Path::new(INITRD_DIR)));
    // p1: an ESP (FAT by mkfs.vfat, files by mtools); p2: the root.
    let esp = d.path().join("esp.v");
    let files = d.path().join("espfiles");
    std::fs::create_dir_all(&files).expect("mkdir");
    // A Debian-style GRUB stub (no linux line: needs no edit) ...
    std::fs::write(
        files.join("grub.cfg"),
        "search.fs_uuid 5e1f0b0a-7c3d-4e2a-9b1c-2d3e4f5a6b7c root\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n",
    )
    .expect("w");
    let img = d.path().join("esp.raw");
    let build = |with_entry: bool| {
        let entry = if with_entry {
            format!(
                "printf 'title Demo\\nlinux /vmlinuz-6.1.0-t\\ninitrd /initrd.img-6.1.0-t\\noptions root=LABEL=root ro\\n' > {f}/demo.conf && \
                 mmd -i {e} ::/loader ::/loader/entries && mcopy -i {e} {f}/demo.conf ::/loader/entries/demo.conf && ",
                f = s(&files),
                e = s(&esp)
            )
        } else {
            String::new()
        };
        sh(&format!(
            "rm -f {i} {e} && truncate -s 96M {i} && \
             printf 'label: dos\\nstart=2048, size=65536, type=ef\\nstart=67584, type=83\\n' | sfdisk -q {i} && \
             truncate -s 32M {e} && mkfs.vfat {e} >/dev/null && \
             mmd -i {e} ::/EFI ::/EFI/debian && mcopy -i {e} {f}/grub.cfg ::/EFI/debian/grub.cfg && {entry} \
             dd if={e} of={i} bs=1M seek=1 conv=notrunc status=none && \
             mke2fs -q -F -t ext4 -L root -E offset=34603008 -d {r} {i} 63M && chmod a+r {i}",
            i = s(&img),
            e = s(&esp),
            f = s(&files),
            r = s(&st)
        ));
    };

    // Only the stub: nothing to edit on the ESP; the run goes ahead and copies it.
    build(false);
    let plan = json(d.path(), &["relayout", s(&img), "--dry-run", "--json"]);
    assert_eq!(plan["esp_edits"], serde_json::json!([]));
    let out = d.path().join("out.raw");
    ok(d.path(), &["-q", "relayout", s(&img), "-o", s(&out)]);
    assert!(
        run("cmp", &["-n", &(33u64 << 20).to_string(), s(&img), s(&out)])
            .status
            .success()
    );

    // A boot loader entry on the ESP: planned, and the real run is refused, writing nothing.
    build(true);
    let plan = json(d.path(), &["relayout", s(&img), "--dry-run", "--json"]);
    let esp_edits = plan["esp_edits"].as_array().expect("esp_edits");
    assert_eq!(esp_edits.len(), 1, "{esp_edits:?}");
    assert_eq!(esp_edits[0]["path"], "/loader/entries/demo.conf");
    assert_eq!(esp_edits[0]["partition"], 1);
    assert_eq!(esp_edits[0]["what"], "bls-entry");
    assert_eq!(
        esp_edits[0]["changes"][0]["new"],
        "options root=LABEL=root ro subroot=r0"
    );
    let text = ok(d.path(), &["relayout", s(&img), "--dry-run"]);
    assert!(
        text.contains("esp     /loader/entries/demo.conf on partition 1"),
        "{text}"
    );
    // The real run edits the entry on the ESP through the FAT writer: same volume id,
    // `fsck.fat -n` clean, the stub untouched, the entry carrying subroot=r0.
    let out2 = d.path().join("out2.raw");
    let report = ok(d.path(), &["relayout", s(&img), "-o", s(&out2)]);
    assert!(report.is_empty() || !report.contains("error"), "{report}");
    let esp_out = d.path().join("esp-out.v");
    sh(&format!(
        "dd if={o} of={e} bs=1M skip=1 count=32 status=none",
        o = s(&out2),
        e = s(&esp_out)
    ));
    let fsck = run("fsck.fat", &["-n", s(&esp_out)]);
    assert!(fsck.status.success(), "{fsck:?}");
    let id = |p: &Path| run_stdout("blkid", &["-p", "-o", "value", "-s", "UUID", s(p)]);
    assert_eq!(id(&esp_out), id(&esp));
    let mtype = |p: &str| {
        let o = std::process::Command::new("mtype")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-i", s(&esp_out), p])
            .output()
            .expect("mtype");
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let entry = mtype("::/loader/entries/demo.conf");
    assert!(
        entry.contains("options root=LABEL=root ro subroot=r0\n"),
        "{entry}"
    );
    assert!(
        entry.starts_with("title Demo\nlinux /vmlinuz-6.1.0-t\n"),
        "{entry}"
    );
    assert_eq!(
        mtype("::/EFI/debian/grub.cfg"),
        std::fs::read_to_string(files.join("grub.cfg")).expect("read")
    );
    // The root filesystem is relayouted as usual; no scratch files are left.
    let listing = ok(d.path(), &["ls", s(&out2), "-p", "2", "/r0"]);
    assert!(listing.lines().any(|l| l == "etc"), "{listing}");
    let leftovers: Vec<String> = common::names(d.path())
        .into_iter()
        .filter(|n| n.contains("subroot-tmp") || n.contains("scratch"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn engine_falls_back_to_rebuild_where_edit_cannot() {
    let t = "engine_falls_back_to_rebuild_where_edit_cannot";
    for tool in ["mke2fs", "e2fsck", "cpio", "sfdisk", "debugfs"] {
        if !need(tool, t) {
            return;
        }
    }
    let d = workdir();
    let st = stage(d.path(), Some(Path::new(INITRD_DIR)));
    // An ext4 with inline_data (directories may keep `..` in the inode), one with quotas
    // (the editor does not account its writes in the quota files): `auto` takes the rebuild
    // and says why; `--engine edit` is refused (exit status 3), writing nothing.
    let out = d.path().join("out.raw");
    for (feature, why) in [("inline_data", "inline_data"), ("quota", "quota")] {
        let img = d.path().join(format!("{feature}.raw"));
        sh(&format!(
            "truncate -s 48M {i} && printf 'label: dos\\nstart=2048, type=83\\n' | sfdisk -q {i} && \
             mke2fs -q -F -t ext4 -O {feature} -L root -E offset=1048576 -d {t} {i} 47M",
            i = s(&img),
            t = s(&st)
        ));
        let plan = json(d.path(), &["relayout", s(&img), "--dry-run", "--json"]);
        assert_eq!(plan["engine"], "rebuild");
        assert!(
            plan["engine_reason"]
                .as_str()
                .expect("reason")
                .contains(why),
            "{plan}"
        );
        assert_eq!(plan["partitions"][0]["action"], "rebuild");
        fails(
            d.path(),
            &["-q", "relayout", s(&img), "-o", s(&out), "--engine", "edit"],
            3,
            &["cannot be edited in place", why, "--engine rebuild"],
        );
        assert!(!out.exists());
    }
    // A filesystem e2fsck already finds fault with (a group's free count off, as in an
    // image taken from a running system): the plan sees it (the free counts are checked
    // against the bitmaps before any edit); `auto` rebuilds (the result is clean),
    // `--engine edit` is refused.
    let unclean = d.path().join("unclean.raw");
    common::relayout::raw_disk(&unclean, &st);
    let dev = format!("{}?offset=1048576", s(&unclean));
    let cmds = d.path().join("unclean.cmds");
    std::fs::write(
        &cmds,
        "set_bg 0 free_blocks_count 5\nset_bg 0 checksum calc\n",
    )
    .expect("w");
    run("debugfs", &["-w", "-f", s(&cmds), &dev]);
    let judged = std::process::Command::new("e2fsck")
        .args(["-fn", &dev])
        .output()
        .expect("e2fsck");
    assert!(!judged.status.success(), "e2fsck finds the input unclean");
    fails(
        d.path(),
        &[
            "-q",
            "relayout",
            s(&unclean),
            "-o",
            s(&out),
            "--engine",
            "edit",
        ],
        3,
        &["not clean before any edit", "--engine rebuild"],
    );
    assert!(!out.exists());
    let planned = json(d.path(), &["relayout", s(&unclean), "--dry-run", "--json"]);
    assert_eq!(planned["engine"], "rebuild", "{planned}");
    let why = planned["engine_reason"].as_str().expect("a reason");
    assert!(
        why.contains("not clean before any edit") && why.contains("e2fsck -fn finds fault"),
        "{why}"
    );
    let r = subroot_in(d.path(), &["relayout", s(&unclean), "-o", s(&out)]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("relayouted") && last.ends_with("; engine rebuild)"),
        "{err}"
    );
    let fixed = format!("{}?offset=1048576", s(&out));
    let fsck = run("e2fsck", &["-fn", &fixed]);
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    std::fs::remove_file(&out).expect("rm");

    // A file that gets new content but has a second name: the edit gives the edited name
    // an inode of its own (as sed -i would), the other name keeps the old content.
    let st2 = d.path().join("st2");
    sh(&format!(
        "cp -a {a} {b} && ln {b}/boot/grub/grub.cfg {b}/boot/grub/grub.cfg.bak",
        a = s(&st),
        b = s(&st2)
    ));
    let img2 = d.path().join("linked.raw");
    common::relayout::raw_disk(&img2, &st2);
    let plan = json(d.path(), &["relayout", s(&img2), "--dry-run", "--json"]);
    assert_eq!(plan["engine"], "edit", "{plan}");
    ok(d.path(), &["-q", "relayout", s(&img2), "-o", s(&out)]);
    let part = d.path().join("p1");
    sh(&format!(
        "dd if={} of={} bs=1M skip=1 status=none",
        s(&out),
        s(&part)
    ));
    let fsck = run("e2fsck", &["-fn", s(&part)]);
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    // The edited name left its hard-link group; the other name keeps the old content.
    let cfg = ok(d.path(), &["-q", "cat", s(&out), "/boot/grub/grub.cfg"]);
    let bak = ok(d.path(), &["-q", "cat", s(&out), "/boot/grub/grub.cfg.bak"]);
    assert!(
        cfg.contains("subroot=r0") && !bak.contains("subroot=r0"),
        "{cfg}\n{bak}"
    );
    let links = run_stdout("debugfs", &["-R", "stat /boot/grub/grub.cfg.bak", s(&part)]);
    assert!(links.contains("Links: 1"), "{links}");
}

#[test]
fn relayout_is_reproducible_with_source_date_epoch() {
    let t = "relayout_is_reproducible_with_source_date_epoch";
    for tool in ["mke2fs", "e2fsck", "debugfs", "cpio", "sfdisk", "cmp"] {
        if !need(tool, t) {
            return;
        }
    }
    let d = workdir();
    let st = stage(d.path(), Some(Path::new(INITRD_DIR)));
    let img = image(d.path(), &st);
    for engine in ["edit", "rebuild"] {
        let outs: Vec<_> = (0..2)
            .map(|i| {
                let out = d.path().join(format!("{engine}-{i}.raw"));
                let r = std::process::Command::new(env!("CARGO_BIN_EXE_subroot"))
                    .args(["-q", "relayout", s(&img), "-o", s(&out), "--engine", engine])
                    .env("SOURCE_DATE_EPOCH", "1700000000")
                    .output()
                    .expect("run subroot");
                assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
                out
            })
            .collect();
        let same = run("cmp", &[s(&outs[0]), s(&outs[1])]);
        assert!(same.status.success(), "{engine}: two runs differ");
    }
}

/// The output format follows the input's unless -O says otherwise (as for mkfs, copy-in
/// and rm); `--force` only replaces an existing output, `--refresh-hook` alone goes on
/// over an image that already has the hook. Judged by `qemu-img info`/`check`.
#[test]
fn output_follows_the_input_format_and_force_only_replaces_output() {
    for t in ["mke2fs", "cpio", "sfdisk", "qemu-img"] {
        if !need(
            t,
            "output_follows_the_input_format_and_force_only_replaces_output",
        ) {
            return;
        }
    }
    let d = workdir();
    let st = stage(d.path(), Some(Path::new(INITRD_DIR)));
    let img = d.path().join("in.qcow2");
    qcow2_disk(&img, &st);
    let out = d.path().join("out.img");
    ok(d.path(), &["-q", "relayout", s(&img), "-o", s(&out)]);
    let info: Value =
        serde_json::from_str(&run_stdout("qemu-img", &["info", "--output=json", s(&out)]))
            .expect("qemu-img info");
    assert_eq!(info["format"], "qcow2", "{info}");
    run("qemu-img", &["check", "-q", s(&out)]);
    fails(
        d.path(),
        &["-q", "relayout", s(&img), "-o", s(&out)],
        1,
        &["exists", "--force"],
    );
    ok(
        d.path(),
        &["-q", "relayout", s(&img), "-o", s(&out), "--force"],
    );
    // --force is not a licence to relayout an image that has the hook already.
    let again = d.path().join("again.img");
    fails(
        d.path(),
        &[
            "-q",
            "relayout",
            s(&out),
            "-o",
            s(&again),
            "--force",
            "--subroot",
            "r1",
        ],
        3,
        &["already has the subroot hook", "--refresh-hook"],
    );
    assert!(!again.exists());
    // qcow2-only options with a raw input and no -O: refused before any work.
    let raw = image(d.path(), &st);
    fails(
        d.path(),
        &["-q", "relayout", s(&raw), "-o", s(&again), "-c", "zstd"],
        1,
        &["--compress needs qcow2 output"],
    );
    assert!(!again.exists());
}
