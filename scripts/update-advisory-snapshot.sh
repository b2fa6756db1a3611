#!/usr/bin/env bash
# Refreshes .ci/advisory-snapshot/: the RustSec advisories (CC0-1.0) for every crate name in
# Cargo.lock, taken from a RustSec advisory-db git repository (a clone or a bare mirror) given
# as the only argument. scripts/deny.sh checks against this snapshot where GitHub, which hosts
# the live database, cannot be reached. Run it after changing dependencies, and whenever a
# newer advisory-db is at hand.
#
#   scripts/update-advisory-snapshot.sh ~/src/advisory-db
set -euo pipefail
cd "$(dirname "$0")/.."
source_repo=${1:?usage: scripts/update-advisory-snapshot.sh <advisory-db git repository>}
git_dir=$source_repo
[ -d "$source_repo/.git" ] && git_dir=$source_repo/.git
git() { command git --git-dir "$git_dir" "$@"; }

snapshot=.ci/advisory-snapshot
rm -rf "$snapshot"
mkdir -p "$snapshot/crates"

# Every crate name Cargo.lock takes from a registry (the workspace's own have no `source`).
awk '/^\[\[package\]\]/ { name = "" }
     /^name = / { gsub(/"/, "", $3); name = $3 }
     /^source = "registry\+/ { print name }' Cargo.lock | sort -u > "$snapshot/COVERS"

advisories=0
while read -r name; do
  while read -r path; do
    [ -n "$path" ] || continue
    mkdir -p "$snapshot/$(dirname "$path")"
    git show "HEAD:$path" > "$snapshot/$path"
    advisories=$((advisories + 1))
  done < <(git ls-tree -r --name-only HEAD "crates/$name/")
done < "$snapshot/COVERS"

{
  echo "commit $(git rev-parse HEAD)"
  echo "date $(git log -1 --format=%cI HEAD)"
} > "$snapshot/SNAPSHOT"
git show HEAD:LICENSE.txt > "$snapshot/LICENSE.txt"
echo "advisory snapshot: $advisories advisories for $(wc -l < "$snapshot/COVERS") crate names, $(cat "$snapshot/SNAPSHOT" | tr '\n' ' ')"
