#!/usr/bin/env bash
# Get an e2fsprogs whose mke2fs reads a tar on stdin (`mke2fs -d -`, 1.47.1 or newer with
# libarchive) WITHOUT replacing the system's: the release's backports e2fsprogs and its
# own libraries are downloaded with a private apt configuration (the system's apt
# sources, lists and caches are not touched; the apt entry comes from
# `scripts/backports.sh --print`), unpacked with `dpkg -x` into
# testdata/cache/e2fsprogs-backports/, and wrapped by scripts (mke2fs, debugfs, e2fsck,
# dumpe2fs) that point LD_LIBRARY_PATH at the unpacked libraries. libarchive.so.13 (which
# mke2fs dlopens) is downloaded too when the system has none.
#
# Idempotent and cached: a second run only checks the wrappers. Prints the mke2fs
# wrapper's path. Exits non-zero with a message when the archive cannot be reached.
#
#   bash scripts/e2fsprogs-backports.sh        # -> .../testdata/cache/e2fsprogs-backports/mke2fs
set -euo pipefail
cd "$(dirname "$0")"
here=$PWD
out=$(cd .. && pwd)/testdata/cache/e2fsprogs-backports
die() { echo "e2fsprogs-backports.sh: $*" >&2; exit 1; }

# A wrapper works when its mke2fs reports 1.47.1+ and builds an image from a tar on stdin.
works() {
  [[ -x $out/mke2fs ]] || return 1
  local v t
  # Not `| head -1`: with pipefail, mke2fs dying of SIGPIPE on its second line would make
  # the probe fail at random.
  v=$("$out/mke2fs" -V 2>&1) || return 1
  v=${v%%$'\n'*}
  [[ $v =~ mke2fs\ 1\.([0-9]+)\.([0-9]+) ]] || return 1
  ((BASH_REMATCH[1] > 47 || (BASH_REMATCH[1] == 47 && BASH_REMATCH[2] >= 1))) || return 1
  t=$(mktemp -d)
  mkdir "$t/d" && echo probe > "$t/d/f"
  truncate -s 4M "$t/img"
  if tar -C "$t/d" -cf - . | "$out/mke2fs" -F -q -t ext4 -d - "$t/img" >"$t/log" 2>&1; then
    rm -rf "$t"; return 0
  fi
  cat "$t/log" >&2; rm -rf "$t"; return 1
}

if works; then
  echo "$out/mke2fs"
  exit 0
fi

command -v apt-get >/dev/null || die "apt-get is not available (a Debian-like system is needed)"
command -v dpkg >/dev/null || die "dpkg is not available"
. /etc/os-release
suite=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}

priv=$(mktemp -d)
trap 'rm -rf "$priv"' EXIT
mkdir -p "$priv/sources.list.d" "$priv/lists/partial" "$priv/cache/archives/partial" "$priv/debs"
# The backports entries, plus the release suite itself (for libarchive13 when missing).
bash "$here/backports.sh" --print \
  | sed -E "s/^Suites: ${suite}-backports\$/Suites: ${suite} ${suite}-backports/" \
  > "$priv/sources.list.d/subroot-private.sources" \
  || die "cannot derive the backports apt entry from the machine's sources"
apt_opts=(
  -o Dir::Etc::sourcelist=/dev/null
  -o "Dir::Etc::sourceparts=$priv/sources.list.d"
  -o "Dir::State::lists=$priv/lists"
  -o "Dir::Cache=$priv/cache"
  -o APT::Sandbox::User=root
  -o Debug::NoLocking=1
)
[[ $(id -u) == 0 ]] || apt_opts+=(-o APT::Sandbox::User="$(id -un)")
apt-get "${apt_opts[@]}" update -qq >"$priv/update.log" 2>&1 \
  || { cat "$priv/update.log" >&2; die "apt-get update of the private $suite-backports list failed (offline?)"; }
grep -qE '^(W|E): Failed to fetch' "$priv/update.log" \
  && { cat "$priv/update.log" >&2; die "cannot reach the Debian archive (offline?)"; }

bp=$suite-backports
ver=$(apt-cache "${apt_opts[@]}" madison e2fsprogs | awk -v s="$bp" '$0 ~ s"/" {print $3; exit}')
[[ -n $ver ]] || die "no e2fsprogs in $bp"
# e2fsprogs' own libraries at exactly this version (libext2fs2 or libext2fs2t64, ...).
deps=$(apt-cache "${apt_opts[@]}" show "e2fsprogs=$ver" \
  | sed -nE 's/^(Pre-)?Depends: //p' | tr ',' '\n' \
  | sed -E 's/^ *([^ ]+).*/\1/' | grep -E '^(libext2fs|libcom-err|libss)' || true)
pkgs=("e2fsprogs=$ver")
for d in $deps; do
  dv=$(apt-cache "${apt_opts[@]}" madison "$d" | awk -v s="$bp" '$0 ~ s"/" {print $3; exit}')
  if [[ -n $dv ]]; then pkgs+=("$d=$dv"); fi
done
have_libarchive=false
for dir in /usr/lib/*-linux-gnu /usr/lib /lib/*-linux-gnu; do
  [[ -e $dir/libarchive.so.13 ]] && have_libarchive=true
done
if ! $have_libarchive; then
  pkgs+=(libarchive13)
  # Its libraries the system lacks are found by the ldd check below.
fi
echo "e2fsprogs-backports.sh: downloading ${pkgs[*]}" >&2
(cd "$priv/debs" && apt-get "${apt_opts[@]}" download -qq "${pkgs[@]}") >"$priv/dl.log" 2>&1 \
  || { cat "$priv/dl.log" >&2; die "downloading ${pkgs[*]} failed (offline?)"; }

rm -rf "$out.new"
mkdir -p "$out.new/root"
for deb in "$priv"/debs/*.deb; do
  dpkg -x "$deb" "$out.new/root"
done
libdirs=$(find "$out.new/root" -name '*.so*' -printf '%h\n' | sort -u | sed "s|^$out.new|$out|" | paste -sd:)
for prog in mke2fs debugfs e2fsck dumpe2fs; do
  bin=$(find "$out.new/root" -path "*sbin/$prog" -type f | head -1)
  [[ -n $bin ]] || die "the package has no $prog"
  cat > "$out.new/$prog" <<EOF
#!/bin/sh
# $prog $ver from $bp, unpacked beside this script (see scripts/e2fsprogs-backports.sh).
LD_LIBRARY_PATH="$libdirs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "${bin/#$out.new/$out}" "\$@"
EOF
  chmod 755 "$out.new/$prog"
done
rm -rf "$out"
mv "$out.new" "$out"
chmod -R a+rX "$out"
missing=$(LD_LIBRARY_PATH=${libdirs} ldd "$out"/root/sbin/mke2fs "$out"/root/sbin/debugfs 2>&1 | grep 'not found' || true)
[[ -z $missing ]] || die "unresolved libraries: $missing"
works || die "the unpacked mke2fs $ver does not build an image from a tar on stdin"
echo "$out/mke2fs"
