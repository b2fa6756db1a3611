#!/usr/bin/env bash
# Fuzzes the bootstrap's parsers of untrusted input with cargo-fuzz (libFuzzer), one target
# after another, each for the given number of seconds (default 600), then minimizes each
# target's corpus (kept in fuzz/corpus/<target>/) and writes docs/reliability/fuzz.json.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]      (FUZZ_PARALLEL=1: all targets at once)
#
# The toolchain may be stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz's nightly-only flags
# (-Zsanitizer…, -Cpasses=sancov-module) through. No sanitizer is used: the code under test is
# safe Rust, so what is hunted is panics, overflows (debug assertions are on), hangs and OOMs.
# A crash stops that target (libFuzzer's behaviour); its input is in fuzz/artifacts/<target>/.
set -euo pipefail

seconds="${1:-600}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

export RUSTC_BOOTSTRAP=1
fuzz_flags=(--sanitizer none)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

nice -n 10 cargo fuzz build "${fuzz_flags[@]}" >&2

logs="$(mktemp -d)"

# Fuzzes one target, minimizes its corpus, and leaves its figures in $logs/<target>.json.
run_target() {
    local target="$1" corpus="corpus/$1" artifacts="artifacts/$1"
    mkdir -p "$corpus" "$artifacts"
    local before status=0 execs crashes files bytes
    before=$(find "$artifacts" -type f | wc -l)
    echo "== $target: ${seconds}s" >&2
    nice -n 10 cargo fuzz run "${fuzz_flags[@]}" "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$logs/$target.log" 2>&1 || status=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$target.log" | grep -o '[0-9]*$' | tail -n 1)
    execs=${execs:-0}
    crashes=$(( $(find "$artifacts" -type f | wc -l) - before ))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1 # libFuzzer stopped on a failure without writing an artifact
    fi
    if [ "$crashes" -gt 0 ]; then
        tail -n 40 "$logs/$target.log" >&2
    fi
    # Keep only the inputs that add coverage.
    nice -n 10 cargo fuzz cmin "${fuzz_flags[@]}" "$target" "$corpus" >"$logs/$target.cmin.log" 2>&1 ||
        echo "cmin failed for $target (see $logs/$target.cmin.log)" >&2
    files=$(find "$corpus" -type f | wc -l)
    bytes=$(find "$corpus" -type f -printf '%s\n' | awk '{ sum += $1 } END { print sum + 0 }')
    printf '%-20s %6ss  runs %12s  crashes %s  corpus %s files, %s bytes\n' "$target" "$seconds" "$execs" "$crashes" "$files" "$bytes"
    printf '{"target":"%s","seconds":%s,"execs":%s,"crashes":%s,"corpus_files":%s,"corpus_bytes":%s,"date":"%s"}\n' \
        "$target" "$seconds" "$execs" "$crashes" "$files" "$bytes" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$logs/$target.json"
}

# One after another by default; FUZZ_PARALLEL=1 runs them side by side (same seconds each).
for target in "${targets[@]}"; do
    if [ "${FUZZ_PARALLEL:-0}" = 1 ]; then
        run_target "$target" &
    else
        run_target "$target"
    fi
done
wait

results=()
total_crashes=0
for target in "${targets[@]}"; do
    line="$(cat "$logs/$target.json")"
    results+=("$line")
    total_crashes=$((total_crashes + $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["crashes"])' "$line")))
done

# Figures of the targets run now replace theirs; the other targets' figures are kept.
mkdir -p "$root/docs/reliability"
printf '%s\n' "${results[@]}" | python3 -c '
import json, os, sys
path = sys.argv[1]
fresh = [json.loads(line) for line in sys.stdin if line.strip()]
old = json.load(open(path)) if os.path.exists(path) else []
names = {r["target"] for r in fresh}
merged = [r for r in old if r["target"] not in names] + fresh
json.dump(sorted(merged, key=lambda r: r["target"]), open(path, "w"), indent=2)
open(path, "a").write("\n")
' "$root/docs/reliability/fuzz.json"
echo "logs in $logs; figures in docs/reliability/fuzz.json" >&2
[ "$total_crashes" -eq 0 ]
