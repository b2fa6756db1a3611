#!/usr/bin/env bash
# Licences, bans, sources and advisories of the dependency tree (cargo-deny, deny.toml).
#
# Advisories come from RustSec's database, which lives on GitHub. Where GitHub answers, the live
# database is fetched and used. Where it does not (this project's machines and CI reach only the
# package registries), the check runs against .ci/advisory-snapshot/: the advisories for every
# crate name in Cargo.lock, copied from a dated advisory-db commit by
# scripts/update-advisory-snapshot.sh. The line printed says which, and how old the snapshot is;
# crate names added since the snapshot are listed, unchecked.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo deny --locked check licenses bans sources

live_db=https://github.com/RustSec/advisory-db
if [ "${DENY_ADVISORIES:-auto}" != snapshot ] && timeout 20 git ls-remote --exit-code "$live_db" HEAD >/dev/null 2>&1; then
  echo "advisories: checked against the live RustSec database ($live_db)"
  cargo deny --locked check advisories
  exit 0
fi

snapshot=$PWD/.ci/advisory-snapshot
commit=$(awk '$1 == "commit" { print $2 }' "$snapshot/SNAPSHOT")
date=$(awk '$1 == "date" { print $2 }' "$snapshot/SNAPSHOT")
age_days=$(( ($(date +%s) - $(date -d "$date" +%s)) / 86400 ))
echo "advisories: $live_db is unreachable from here; checked against the committed snapshot of advisory-db ${commit:0:12} ($date, $age_days days old; refresh with scripts/update-advisory-snapshot.sh where GitHub is reachable)"

uncovered=$(comm -23 \
  <(awk '/^\[\[package\]\]/ { n = "" } /^name = / { gsub(/"/, "", $3); n = $3 } /^source = "registry\+/ { print n }' Cargo.lock | sort -u) \
  "$snapshot/COVERS")
if [ -n "$uncovered" ]; then
  echo "advisories: NOT checked (new since the snapshot): $(echo $uncovered)"
fi

if [ "$age_days" -gt 90 ]; then
  echo "advisories: WARNING: the snapshot is older than 90 days (cargo-deny's own limit for a database it may not fetch); it is accepted up to 365"
fi

# cargo-deny reads the database from a git checkout in its database directory: make one from
# the snapshot, dated as the snapshot (cargo-deny checks that age against
# maximum-db-staleness), where cargo-deny looks for RustSec's database, and check offline.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db=$(DENY_ADVISORY_DB_PATH=$work cargo deny --locked --offline -L debug check advisories 2>&1 |
  sed -n "s/.*Opening advisory database at '\(.*\)'.*/\1/p" | head -n 1) || true
if [ -z "$db" ]; then
  echo "advisories: cannot tell where cargo-deny looks for its database; not checked" >&2
  exit 1
fi
mkdir -p "$db"
cp -r "$snapshot/crates" "$db/"
(
  cd "$db"
  git init -q -b main
  git add crates
  GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date \
    git -c user.name=snapshot -c user.email=snapshot@localhost commit -q -m "advisory-db $commit, for Cargo.lock"
  git rev-parse HEAD > .git/FETCH_HEAD
  touch -d "$date" .git/FETCH_HEAD
)
sed 's|^\[advisories\]$|[advisories]\nmaximum-db-staleness = "P365D"|' deny.toml > "$work/deny.toml"
DENY_ADVISORY_DB_PATH=$work cargo deny --locked --offline --config "$work/deny.toml" check advisories
