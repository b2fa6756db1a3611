#!/usr/bin/env bash
# Builds the deployable artifacts for x86_64 Lambda (provided.al2 and provided.al2023):
#   dist/function.zip  `bootstrap` at the root, plus the handler files (default: the example
#                      handlers' libhandlers_example.so), ready for `--runtime provided.al2023`.
#   dist/layer.zip     `bootstrap` alone at the root: the layer is extracted to /opt, and Lambda
#                      runs /opt/bootstrap when the function's own zip has no bootstrap, so a
#                      function with this layer ships only its handler.
#
# Usage: scripts/package.sh [HANDLER_FILE...]
#   HANDLER_FILE  a handler shared library (built with the `sdk` crate for x86_64 glibc <= 2.26)
#                 or an executable, put at the root of function.zip with its own mode.
#                 Without one, the example handlers are built and packaged.
#
# The binaries are built with cargo-zigbuild against glibc 2.26 (the target
# x86_64-unknown-linux-gnu.2.26), so they load on Amazon Linux 2 (glibc 2.26) as well as
# AL2023 (2.34). cargo-zigbuild and zig come from the peers' venv (scripts/setup-peers.sh).
# DIST_DIR overrides the output folder (default: dist).
set -euo pipefail
cd "$(dirname "$0")/.."

readonly zig_target=x86_64-unknown-linux-gnu.2.26
# cargo-zigbuild drops the glibc suffix from the output folder.
readonly out_dir=target/x86_64-unknown-linux-gnu/release
readonly dist=${DIST_DIR:-dist}

for file in "$@"; do
  if [ ! -f "$file" ]; then
    echo "package.sh: handler file '$file' does not exist (give the path of a .so or an executable)" >&2
    exit 2
  fi
done

started=$(date +%s)
scripts/setup-peers.sh
# The venv's bin holds cargo-zigbuild, and python3 there finds zig (`python3 -m ziglang`).
export PATH="$PWD/.venv/bin:$PATH"

echo "package.sh: building bootstrap and the example handlers for $zig_target (release)" >&2
# Two builds, not one: built in one run with the handler library, the same bootstrap comes
# out 0.37 MB larger (no crate or feature of its own is added: its async state machines are
# inlined differently), see docs/size.md.
cargo zigbuild --release --locked --target "$zig_target" -p bootstrap --bin bootstrap
cargo zigbuild --release --locked --target "$zig_target" -p handlers-example --lib

handlers=("$@")
if [ ${#handlers[@]} -eq 0 ]; then
  handlers=("$out_dir/libhandlers_example.so")
fi

# A handler built elsewhere (plain `cargo build` on a newer distribution) may need a newer glibc
# than Amazon Linux 2 has: say so, since it still loads on provided.al2023 (glibc 2.34).
if command -v readelf >/dev/null; then
  for file in "${handlers[@]}"; do
    newest=$(readelf -V -W "$file" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sort -uV | tail -1 || true)
    if [ -n "$newest" ] && [ "$(printf '%s\n' "$newest" GLIBC_2.26 | sort -V | tail -1)" != GLIBC_2.26 ]; then
      echo "package.sh: warning: $file needs $newest: it loads on provided.al2023 but not on provided.al2 (glibc 2.26); build it with cargo zigbuild --target x86_64-unknown-linux-gnu.2.26" >&2
    fi
  done
fi

mkdir -p "$dist"
python3 scripts/package_zip.py "$dist/function.zip" "$out_dir/bootstrap" "${handlers[@]}"
python3 scripts/package_zip.py "$dist/layer.zip" "$out_dir/bootstrap"

echo "package.sh: done in $(($(date +%s) - started)) s; bootstrap is $(stat -c %s "$out_dir/bootstrap") bytes (stripped)" >&2
ls -l "$dist/function.zip" "$dist/layer.zip" >&2
