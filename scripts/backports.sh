#!/usr/bin/env bash
# Make the distribution's backports suite available to apt, derived from the machine's own
# apt sources (no archive address is written into the repository): for every deb822 source
# (or one-line entry) naming the release suite, add the same archive with `<suite>-backports`.
# Idempotent; needs root. Prints the suite name it enabled.
#
#   bash scripts/backports.sh            # enable and `apt-get update`
#   bash scripts/backports.sh --print    # only print the deb822 entries (no root, no changes)
set -euo pipefail
print_only=false
[[ ${1:-} == --print ]] && print_only=true
$print_only || [[ $(id -u) == 0 ]] || { echo "backports.sh: needs root" >&2; exit 1; }
. /etc/os-release
suite=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
out=/etc/apt/sources.list.d/subroot-backports.sources
if $print_only || [[ ! -f $out ]]; then
  entries=$(
    python3 - "$suite" <<'PY'
import glob, re, sys
suite = sys.argv[1]
seen = []
def add(types, uris, components, signed):
    key = (uris, components)
    if key in seen:
        return
    seen.append(key)
    print(f"Types: {types}\nURIs: {uris}\nSuites: {suite}-backports\nComponents: {components}")
    if signed:
        print(f"Signed-By: {signed}")
    print()
for path in glob.glob("/etc/apt/sources.list.d/*.sources"):
    for stanza in open(path).read().split("\n\n"):
        f = {}
        for line in stanza.splitlines():
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m:
                f[m.group(1).lower()] = m.group(2).strip()
        if suite in f.get("suites", "").split() and "deb" in f.get("types", "").split():
            add("deb", f["uris"], f.get("components", "main"), f.get("signed-by"))
for path in ["/etc/apt/sources.list"] + glob.glob("/etc/apt/sources.list.d/*.list"):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        m = re.match(r"^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$", line.strip())
        if m and m.group(3) == suite:
            add("deb", m.group(2), m.group(4), None)
PY
  )
  [[ -n $entries ]] || { echo "backports.sh: no apt source names the suite $suite" >&2; exit 1; }
  if $print_only; then
    printf '%s\n' "$entries"
    exit 0
  fi
  printf '%s\n' "$entries" > "$out"
fi
apt-get update -qq
echo "$suite-backports"
