#!/usr/bin/env bash
# Run every fuzz target in fuzz/ for a bounded time each.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     default 25; CI runs `scripts/fuzz.sh 20`
#   scripts/fuzz.sh 3600                     a long local run: an hour per target
#
# Environment:
#   FUZZ_TARGETS    space-separated subset of targets (default: all of `cargo fuzz list`)
#   FUZZ_PROFILE    release (default) or dev (no faster to build, slower to run: for
#                   debugging a harness)
#   FUZZ_SANITIZER  none (default: Signet forbids unsafe code, so ASan finds little and
#                   costs build time) or address
#   FUZZ_JOBS       parallel fuzzing processes per target (default 1)
#
# The targets live in fuzz/fuzz_targets, their seeds in fuzz/corpus/<target> (committed,
# never written to; each target must have some), and inputs that once crashed a target in
# fuzz/regressions/<target> (committed, replayed by every run). What a run discovers goes to
# fuzz/target/corpus/<target>; crashes to fuzz/artifacts/<target>/. Stable Rust runs cargo-fuzz with RUSTC_BOOTSTRAP=1 (it needs
# -Z flags). Exits non-zero if any target crashed, after running all of them. To reproduce
# a crash: `RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none TARGET fuzz/artifacts/TARGET/crash-...`
# (from fuzz/); then, with the bug fixed, keep the input as a regression: see
# fuzz/regressions/README.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

seconds="${1:-25}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2
    exit 2
fi
profile="${FUZZ_PROFILE:-release}"
sanitizer="${FUZZ_SANITIZER:-none}"
jobs="${FUZZ_JOBS:-1}"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found: installing it from crates.io"
    cargo install cargo-fuzz --locked
fi
cargo fuzz --version

build_flags=(--sanitizer "$sanitizer" --debug-assertions)
case "$profile" in
    release) ;;
    dev) build_flags+=(--dev) ;;
    *) echo "FUZZ_PROFILE must be release or dev" >&2; exit 2 ;;
esac

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
# Every target starts from a committed seed corpus; a target without one is an error.
for target in $targets; do
    if [ -z "$(ls -A "corpus/$target" 2>/dev/null)" ]; then
        echo "fuzz target $target has no seed corpus in fuzz/corpus/$target" >&2
        exit 1
    fi
done
started=$SECONDS
echo "building fuzz targets ($profile, sanitizer $sanitizer): $targets"
for target in $targets; do
    cargo fuzz build "${build_flags[@]}" "$target"
done
echo "built in $((SECONDS - started)) s"

failed=()
for target in $targets; do
    work="target/corpus/$target"
    mkdir -p "$work" "artifacts/$target"
    t0=$SECONDS
    echo
    echo "== $target: ${seconds} s"
    log="target/fuzz-$target.log"
    # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: 2 GiB is a leak or a
    # bomb; -max_len: the API reads at most 64 KiB.
    flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536
        -print_final_stats=1)
    if [ "$jobs" -gt 1 ]; then
        flags+=(-jobs="$jobs" -workers="$jobs")
    fi
    # Inputs that once crashed a target (fuzz/regressions/TARGET, see its README) are read
    # with the seeds, so every run replays them first; libFuzzer writes only to $work.
    corpora=("corpus/$target")
    [ -d "regressions/$target" ] && corpora+=("regressions/$target")
    if cargo fuzz run "${build_flags[@]}" "$target" "$work" "${corpora[@]}" -- \
        "${flags[@]}" >"$log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || tail -n 3 "$log"
        echo "== $target: OK in $((SECONDS - t0)) s"
    else
        tail -n 60 "$log"
        echo "== $target: FAILED (see fuzz/$log and fuzz/artifacts/$target/)"
        failed+=("$target")
    fi
done

echo
echo "fuzzing took $((SECONDS - started)) s in all"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashed: ${failed[*]}" >&2
    exit 1
fi
