#!/usr/bin/env bash
# Benchmark `subroot relayout` on an image with ~1 GiB of used data, raw and qcow2, with
# both engines: edit (the default) against a plain copy of the image (`qemu-img
# convert`), and both against the floor measured in the same run: `mke2fs -d` from an
# already-extracted tree (what any rebuild must at least do) plus `qemu-img convert` of
# the result to the output format. guestfish doing the same moves is measured when
# libguestfs is installed.
# Prints wall times, ratios and peak RSS. Work files go to bench/work/ (git-ignored).
#
# The initrd step against the filesystem edit alone (issue 15: at most 1.5x): when the
# real initramfs-tools initrd of scripts/build-initrds.sh is cached (44 MB, zstd), a second
# image is made from the same tree with it in place of the small demo initrd, and relayout
# of both is timed (--overlay and -o raw): the demo initrd costs next to nothing, so the
# first image's time is the filesystem edit alone and the ratio is what a real initrd adds.
#
#   bash bench/relayout.sh [DATA_MIB]      # default 1024
#   SUBROOT=path/to/subroot bash bench/relayout.sh   # that binary, no cargo build
#   BENCH_INITRD_ONLY=1 bash bench/relayout.sh       # only the initrd rows
source "$(dirname "$0")/lib.sh"
mib=${1:-1024}
bench_need mke2fs qemu-img cpio gzip /usr/bin/time
subroot=$(bench_subroot)
work=$PWD/bench/work/relayout
rm -rf "$work"; mkdir -p "$work"
stage=$work/tree

# The tree: the demo root (with /boot, a GRUB config and an initramfs-tools initrd) plus
# copies of the host's /usr/lib and /usr/share up to DATA_MIB of file data.
bash scripts/demo-image.sh "$work/demo.raw" "$subroot" >/dev/null
mkdir -p "$stage"
cp -a testdata/demo-root/. "$stage/"
mkdir -p "$stage/boot"
(cd testdata/demo-initrd && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -n > "$stage/boot/initrd.img-6.1.0-bench"
# Real small files first: subdirectories of the host's /usr/share while they fit in half
# the budget; then 32 MiB files of random data up to DATA_MIB.
mkdir -p "$stage/usr/share" "$stage/usr/lib/bench"
for src in /usr/share/*; do
  [[ -d $src ]] || continue
  have=$(du -sm "$stage" | cut -f1); add=$(du -sm "$src" | cut -f1)
  (( have + add <= mib / 2 )) || continue
  cp -a "$src" "$stage/usr/share/" 2>/dev/null || true
done
i=0
while (( $(du -sm "$stage" | cut -f1) + 32 <= mib )); do
  head -c 32M /dev/urandom > "$stage/usr/lib/bench/blob$i"; i=$((i + 1))
done
data=$(du -sm "$stage" | cut -f1)
part_mib=$(( data * 2 + 256 ))
echo "tree: ${data} MiB, $(find "$stage" | wc -l) entries; partition ${part_mib} MiB"

img=$work/in.raw
truncate -s $(( (part_mib + 2) << 20 )) "$img"
printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q "$img"
mke2fs -q -F -t ext4 -L bench -E offset=1048576 -d "$stage" "$img" "${part_mib}M"
qemu-img convert -O qcow2 "$img" "$work/in.qcow2"

# "seconds peak_rss_kib": the command's own peak RSS (subroot's, without the mke2fs,
# debugfs and e2fsck it runs; the issue's budget excludes mke2fs).
measure() { python3 bench/measure.py --own "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

# The initrd step against the filesystem edit alone.
real_initrd=$(bash scripts/build-initrds.sh 2>/dev/null | tail -n1)/initramfs-tools.img || true
if [[ -f $real_initrd ]]; then
  cp "$stage/boot/initrd.img-6.1.0-bench" "$work/demo-initrd.img"
  cp "$real_initrd" "$stage/boot/initrd.img-6.1.0-bench"
  truncate -s $(( (part_mib + 2) << 20 )) "$work/real.raw"
  printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q "$work/real.raw"
  mke2fs -q -F -t ext4 -L bench -E offset=1048576 -d "$stage" "$work/real.raw" "${part_mib}M"
  cp "$work/demo-initrd.img" "$stage/boot/initrd.img-6.1.0-bench"
  # Best of 3, timed without sampling the RSS (--own polls every 20 ms, too coarse here).
  best3() {
    local b= t
    for _ in 1 2 3; do
      rm -f "$work/ov.qcow2"
      read -r t _ < <(python3 bench/measure.py "$@")
      if [[ -z $b ]] || awk "BEGIN{exit !($t < $b)}"; then b=$t; fi
    done
    echo "$b"
  }
  for v in "$img demo" "$work/real.raw real"; do
    read -r f k <<<"$v"
    eval "ov_$k=$(best3 "$subroot" -q relayout "$f" --overlay "$work/ov.qcow2")"
    eval "o_$k=$(best3 "$subroot" -q relayout "$f" -o "$work/out.raw" --force --engine edit)"
  done
  rm -f "$work/ov.qcow2" "$work/out.raw" "$work/real.raw"
  printf '%-40s %8s %8s %6s\n' "" "demo" "real" "ratio"
  printf '%-40s %8s %8s %6s\n' "relayout --overlay: initrd demo / real" "$ov_demo" "$ov_real" "$(ratio "$ov_real" "$ov_demo")"
  printf '%-40s %8s %8s %6s\n' "relayout -o raw:    initrd demo / real" "$o_demo" "$o_real" "$(ratio "$o_real" "$o_demo")"
  echo "(demo: the small demo initrd, i.e. the filesystem edit alone; real: the same tree with"
  echo " the 44 MB initramfs-tools zstd initrd; ratio = relayout / its filesystem edit alone)"
else
  echo "initrd step: no real initrd cached (sudo bash scripts/build-initrds.sh); not measured"
fi
[[ -z ${BENCH_INITRD_ONLY:-} ]] || exit 0

# The edit engine (the default): the filesystem copied and edited in place.
read -r r_raw m_raw < <(measure "$subroot" -q relayout "$img" -o "$work/out.raw" --force --engine edit)
read -r r_q m_q < <(measure "$subroot" -q relayout "$work/in.qcow2" -o "$work/out.qcow2" -O qcow2 --force --engine edit)
# Only the changes: an overlay backed by the input, and the input changed in place (on a
# synced copy; the copy is not timed).
rm -f "$work/ov.qcow2"
read -r ov_raw ovm_raw < <(measure "$subroot" -q relayout "$img" --overlay "$work/ov.qcow2")
ov_size=$(stat -c %s "$work/ov.qcow2"); rm -f "$work/ov.qcow2"
read -r ov_q ovm_q < <(measure "$subroot" -q relayout "$work/in.qcow2" --overlay "$work/ov.qcow2")
rm -f "$work/ov.qcow2"
cp --sparse=always "$img" "$work/ip.raw"; sync "$work/ip.raw"
read -r ip_raw ipm_raw < <(measure "$subroot" -q relayout "$work/ip.raw" --in-place)
cp --sparse=always "$work/in.qcow2" "$work/ip.qcow2"; sync "$work/ip.qcow2"
read -r ip_q ipm_q < <(measure "$subroot" -q relayout "$work/ip.qcow2" --in-place)
rm -f "$work/ip.raw" "$work/ip.qcow2"
# Its floor: copying the image (what "at copy speed" means): qemu-img convert.
read -r c_raw c_rm < <(measure qemu-img convert -O raw "$img" "$work/copy.raw")
read -r c_q c_qm < <(measure qemu-img convert -O qcow2 "$work/in.qcow2" "$work/copy.qcow2")
rm -f "$work/copy.raw" "$work/copy.qcow2"
# The rebuild engine.
read -r b_raw b_mraw < <(measure "$subroot" -q relayout "$img" -o "$work/out.raw" --force --engine rebuild)
read -r b_q b_mq < <(measure "$subroot" -q relayout "$work/in.qcow2" -o "$work/out.qcow2" -O qcow2 --force --engine rebuild)
# The floor: mke2fs -d of the already-extracted tree into a partition-sized file, then
# qemu-img convert of that file to qcow2 (raw output needs no conversion).
read -r f_mk m_mk < <(measure mke2fs -q -F -t ext4 -d "$stage" "$work/floor.img" "${part_mib}M")
read -r f_cv m_cv < <(measure qemu-img convert -O qcow2 "$work/floor.img" "$work/floor.qcow2")
f_q=$(awk -v a="$f_mk" -v b="$f_cv" 'BEGIN { printf "%.3f", a + b }')
printf '%-40s %8s %10s\n' "" "seconds" "peak RSS"
printf '%-40s %8s %8s MiB\n' "relayout raw -> raw (edit engine)" "$r_raw" $((m_raw / 1024))
printf '%-40s %8s %8s MiB\n' "relayout qcow2 -> qcow2 (edit engine)" "$r_q" $((m_q / 1024))
printf '%-40s %8s %8s MiB  overlay %s KiB\n' "relayout raw --overlay" "$ov_raw" $((ovm_raw / 1024)) $((ov_size / 1024))
printf '%-40s %8s %8s MiB\n' "relayout qcow2 --overlay" "$ov_q" $((ovm_q / 1024))
printf '%-40s %8s %8s MiB\n' "relayout raw --in-place" "$ip_raw" $((ipm_raw / 1024))
printf '%-40s %8s %8s MiB\n' "relayout qcow2 --in-place" "$ip_q" $((ipm_q / 1024))
printf '%-40s %8s %8s MiB\n' "copy: qemu-img convert raw -> raw" "$c_raw" $((c_rm / 1024))
printf '%-40s %8s %8s MiB\n' "copy: qemu-img convert qcow2 -> qcow2" "$c_q" $((c_qm / 1024))
printf '%-40s %8s %8s MiB\n' "relayout raw -> raw (rebuild engine)" "$b_raw" $((b_mraw / 1024))
printf '%-40s %8s %8s MiB\n' "relayout qcow2 -> qcow2 (rebuild engine)" "$b_q" $((b_mq / 1024))
printf '%-40s %8s %8s MiB\n' "floor: mke2fs -d" "$f_mk" $((m_mk / 1024))
printf '%-40s %8s %8s MiB\n' "floor: + qemu-img convert -O qcow2" "$f_q" $((m_cv / 1024))
echo "ratio raw,   edit engine:    relayout / floor = $(ratio "$r_raw" "$f_mk"), relayout / copy = $(ratio "$r_raw" "$c_raw")"
echo "ratio qcow2, edit engine:    relayout / floor = $(ratio "$r_q" "$f_q"), relayout / copy = $(ratio "$r_q" "$c_q")"
echo "ratio raw,   rebuild engine: relayout / floor = $(ratio "$b_raw" "$f_mk")"
echo "ratio qcow2, rebuild engine: relayout / floor = $(ratio "$b_q" "$f_q")"
# The tar populate path (e2fsprogs >= 1.47.1; scripts/e2fsprogs-backports.sh fetches one),
# against the floor of the same mke2fs.
tar_mke2fs=${SUBROOT_TEST_MKE2FS_TAR:-}
[[ -n $tar_mke2fs ]] || tar_mke2fs=$(bash scripts/e2fsprogs-backports.sh 2>/dev/null) || tar_mke2fs=
if [[ -n $tar_mke2fs ]]; then
  read -r t_raw t_m < <(SUBROOT_MKE2FS=$tar_mke2fs measure "$subroot" -q relayout "$img" -o "$work/out-tar.raw" --force --engine rebuild)
  read -r t_fl t_fm < <(measure "$tar_mke2fs" -q -F -t ext4 -d "$stage" "$work/floor.img" "${part_mib}M")
  printf '%-40s %8s %8s MiB\n' "relayout raw (rebuild, tar path)" "$t_raw" $((t_m / 1024))
  printf '%-40s %8s %8s MiB\n' "floor: mke2fs -d (same mke2fs)" "$t_fl" $((t_fm / 1024))
  echo "ratio raw, tar path: relayout / floor = $(ratio "$t_raw" "$t_fl")"
  rm -f "$work/out-tar.raw"
else
  echo "tar path: no mke2fs that reads tar (scripts/e2fsprogs-backports.sh failed); not measured"
fi
# guestfish doing relayout's moves in place on a copy of the raw image: /r0, every top-level
# entry but the shared boot, var, home and lost+found renamed into it, the mount points
# with their EMPTY files. Not the boot config and initrd rewrites, nor the new output file
# relayout writes, so it does less work. The names come from the staging tree, whose top
# level is the image's less lost+found. The appliance start alone is its own row: a fixed
# cost of every guestfish run. Both rows give guestfish's own peak RSS and that of its
# whole process tree (the qemu appliance).
if command -v guestfish >/dev/null; then
  export LIBGUESTFS_BACKEND=direct
  gf_img=$work/gf.raw
  gf_fresh() { rm -f "$gf_img"; cp --sparse=always "$img" "$gf_img"; }
  gf_fresh
  # A start that is not timed: builds supermin's appliance cache on a first run, and
  # finds out whether qemu can start it as is. Where /dev/kvm exists but qemu aborts on
  # it (a nested VM), force TCG.
  gf_accel="qemu's choice"
  if ! guestfish -a "$gf_img" run 2>/dev/null; then
    if [[ -z ${LIBGUESTFS_BACKEND_SETTINGS:-} ]] &&
       LIBGUESTFS_BACKEND_SETTINGS=force_tcg guestfish -a "$gf_img" run 2>/dev/null; then
      export LIBGUESTFS_BACKEND_SETTINGS=force_tcg; gf_accel="TCG (forced: KVM failed)"
    else
      gf_accel=
    fi
  fi
  if [[ -n $gf_accel ]]; then
    gf_moves() {
      echo "mkdir /r0"
      local n
      while IFS= read -r n; do
        case $n in boot | var | home | lost+found) continue ;; esac
        n=${n//\\/\\\\}; n=${n//\"/\\\"}
        echo "rename \"/$n\" \"/r0/$n\""
      done < <(find "$stage" -mindepth 1 -maxdepth 1 -printf '%f\n' | LC_ALL=C sort)
      for n in boot var home; do echo "mkdir /r0/$n"; echo "touch /r0/$n/EMPTY"; done
    }
    # What guestfish left must be a clean filesystem whose top level is r0 beside the
    # entries that stay, and r0 the moved entries plus the mount points.
    gf_ls() { debugfs -R "ls -p $1" "$gf_img?offset=1048576" 2>/dev/null | awk -F/ '$6 != "." && $6 != ".." && $6 != "" { print $6 }' | LC_ALL=C sort | tr '\n' ' '; }
    gf_check() {
      local fsck want_top want_r0
      fsck=$(e2fsck -fn "$gf_img?offset=1048576" 2>&1) || { echo "$fsck" >&2; exit 1; }
      want_top=$( { echo lost+found; echo r0; find "$stage" -mindepth 1 -maxdepth 1 -printf '%f\n' | grep -x -e boot -e var -e home; } | LC_ALL=C sort | tr '\n' ' ')
      want_r0=$( { printf '%s\n' boot var home; find "$stage" -mindepth 1 -maxdepth 1 -printf '%f\n' | grep -vx -e boot -e var -e home -e lost+found; } | LC_ALL=C sort | tr '\n' ' ')
      [[ $(gf_ls /) == "$want_top" && $(gf_ls /r0) == "$want_r0" ]] ||
        { echo "guestfish left / as: $(gf_ls /), /r0 as: $(gf_ls /r0)" >&2; exit 1; }
    }
    read -r gs_t gs_m < <(measure guestfish -a "$gf_img" run)
    read -r _ gs_tm < <(python3 bench/measure.py guestfish -a "$gf_img" run)
    read -r g_t g_m < <(measure guestfish -a "$gf_img" -m /dev/sda1 <<GF
$(gf_moves)
GF
)
    # Its check, and a second run on a fresh copy for the whole tree's peak RSS.
    gf_check
    gf_fresh
    read -r _ g_tm < <(python3 bench/measure.py guestfish -a "$gf_img" -m /dev/sda1 <<GF
$(gf_moves)
GF
)
    gf_check
    echo "guestfish ($gf_accel), own peak RSS and (whole tree, qemu included):"
    printf '%-34s %8s %8s MiB (%s MiB)\n' "guestfish appliance start alone" "$gs_t" $((gs_m / 1024)) $((gs_tm / 1024))
    printf '%-34s %8s %8s MiB (%s MiB)\n' "guestfish moves raw, in place" "$g_t" $((g_m / 1024)) $((g_tm / 1024))
    echo "ratio raw:   relayout / guestfish moves = $(ratio "$r_raw" "$g_t")"
  else
    echo "guestfish: the appliance does not start here; not compared"
  fi
  rm -f "$gf_img"
else
  echo "guestfish: libguestfs is not installed; not compared"
fi
