#!/usr/bin/env bash
# Builds the libFuzzer targets of the native addon (native/fuzz/*_fuzzer.c, with ASan + UBSan,
# Debian's clang, linked with Debian's OpenSSL: no Node), replays every committed input (seed
# corpora and the regression inputs of crashes once found), then fuzzes each target for a bounded
# time from its seeds. Fails on any crash, sanitizer report or failed check; a new crash's input
# is kept under native/fuzz/build/crashes/TARGET/ (commit it to native/fuzz/regressions/TARGET/
# with the fix: it is then replayed by every run).
#
#   bash scripts/fuzz-native.sh                       every target, BERTH_FUZZ_SECONDS each (20)
#   BERTH_FUZZ_SECONDS=600 bash scripts/fuzz-native.sh tls_session   one target, longer
#   BERTH_FUZZ_SECONDS=0 bash scripts/fuzz-native.sh  replay the committed inputs only
set -euo pipefail
cd "$(dirname "$0")/.."

command -v clang >/dev/null || { echo "fuzz-native: clang is not installed (bash scripts/setup.sh)" >&2; exit 1; }
seconds=${BERTH_FUZZ_SECONDS:-20}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(relay_pump tls_handshake tls_session)
build=native/fuzz/build
mkdir -p "$build"
flags=(-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
  -fno-sanitize-recover=all -Wall -Wextra -Werror -Inative/tunnel-relay)

sources_of() {
  case $1 in
    relay_pump) echo native/tunnel-relay/relay_pump.c ;;
    tls_handshake | tls_session) echo native/tunnel-relay/tls_leg_engine.c native/fuzz/fuzz_support.c ;;
    *) echo "fuzz-native: no target $1" >&2; exit 1 ;;
  esac
}
libraries_of() {
  case $1 in
    tls_*) echo -lssl -lcrypto ;;
  esac
}

# detect_leaks stays on: the fuzzers run no Node. Every report aborts.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
for target in "${targets[@]}"; do
  binary="$build/${target}_fuzzer"
  # shellcheck disable=SC2046
  clang "${flags[@]}" -o "$binary" "native/fuzz/${target}_fuzzer.c" $(sources_of "$target") $(libraries_of "$target")
  inputs=()
  for dir in "native/fuzz/corpus/$target" "native/fuzz/regressions/$target"; do
    [ -d "$dir" ] && while IFS= read -r file; do inputs+=("$file"); done < <(find "$dir" -type f | sort)
  done
  [ ${#inputs[@]} -gt 0 ] || { echo "fuzz-native: $target has no seed corpus" >&2; exit 1; }
  # Replay: each committed input runs once (a crash input fixed once must stay fixed).
  "$binary" -runs=1 "${inputs[@]}" >"$build/$target.replay.log" 2>&1 ||
    { cat "$build/$target.replay.log" >&2; echo "fuzz-native: $target failed on a committed input" >&2; exit 1; }
  echo "fuzz-native: $target: ${#inputs[@]} committed inputs replayed"
  [ "$seconds" -gt 0 ] || continue
  work=$(mktemp -d "${TMPDIR:-/tmp}/berth-fuzz-$target.XXXXXX")
  crashes="$build/crashes/$target"
  mkdir -p "$crashes"
  if ! "$binary" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$crashes/" "$work" "native/fuzz/corpus/$target" \
    >"$build/$target.fuzz.log" 2>&1; then
    tail -n 60 "$build/$target.fuzz.log" >&2
    rm -rf "$work"
    echo "fuzz-native: $target found a crash: its input is in $crashes/ (add it to native/fuzz/regressions/$target/ with the fix)" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$build/$target.fuzz.log" | grep -o '[0-9]*$' || echo '?')
  rm -rf "$work"
  echo "fuzz-native: $target: ${seconds}s, $runs inputs, no crash"
done
