#!/usr/bin/env bash
# Runs the egress tests (test/egress, the unit project) with the native addon built with
# AddressSanitizer + UndefinedBehaviorSanitizer (scripts/build-native-asan.sh). Node is not built
# with ASan: clang's ASan runtime (which carries UBSan's too) is preloaded into Node and into
# what the tests start. Fails when a test fails, when the sanitizer build is not the one loaded,
# and when any sanitizer wrote a report, even one a test survived (a report in a child process
# the test did not watch, or one after the test's end).
#
#   bash scripts/test-native-asan.sh                 build, then every test/egress file
#   bash scripts/test-native-asan.sh test/egress/native-tls-leg.test.ts   some files only
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/build-native-asan.sh
runtime=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
[ -r "$runtime" ] || { echo "test-native-asan: clang's ASan runtime is missing (Debian: libclang-rt-14-dev)" >&2; exit 1; }
reports=$(mktemp -d "${TMPDIR:-/tmp}/berth-asan.XXXXXX")
trap 'rm -rf "$reports"' EXIT

export BERTH_NATIVE_ASAN=1
# detect_leaks=0: Node is not instrumented and keeps much of its memory to the end on purpose
# (LeakSanitizer reports it all). Every report ends the process (halt_on_error, abort) and goes
# to a file under $reports (log_path), which the check below reads whatever the tests said.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=0:log_path=$reports/asan"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"

# The reports reach $reports and are seen: a canary library (built here, ASan + UBSan like the
# addon) makes one report of each kind when Node loads it; a run whose options lost the reports
# would otherwise pass with any number of them.
canary=$reports/canary
mkdir -p "$canary"
cat >"$canary/canary.c" <<'C'
#include <stdlib.h>
#include <string.h>
__attribute__((constructor)) static void canary(void) {
  if (getenv("CANARY_UBSAN") != NULL) {
    char *volatile nothing = NULL;
    volatile int offset = 0;
    char *volatile moved = nothing + offset; /* NULL + 0: undefined */
    (void)moved;
    return;
  }
  char *volatile heap = malloc(8);
  volatile int past = 8;
  heap[past] = 1; /* heap-buffer-overflow */
  free(heap);
}
C
clang -shared -fPIC -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -shared-libsan \
  -o "$canary/canary.so" "$canary/canary.c"
for kind in asan ubsan; do
  which=CANARY_KIND=$kind
  [ "$kind" = ubsan ] && which=CANARY_UBSAN=1
  env "$which" ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$canary/report" \
    UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$canary/report" LD_PRELOAD="$runtime" \
    node -e 'try { process.dlopen({ exports: {} }, process.argv[1]); } catch {}' "$canary/canary.so" \
    >/dev/null 2>&1 && { echo "test-native-asan: the $kind canary did not fail" >&2; exit 1; }
  compgen -G "$canary/report.*" >/dev/null || { echo "test-native-asan: the $kind canary's report was not written" >&2; exit 1; }
  grep -q "$([ "$kind" = asan ] && echo heap-buffer-overflow || echo 'applying zero offset to null pointer')" "$canary"/report.* ||
    { echo "test-native-asan: the $kind canary's report is not the expected one" >&2; cat "$canary"/report.* >&2; exit 1; }
  rm -f "$canary"/report.*
done
rm -rf "$canary"

# The sanitizer build loads, and is the file the process has mapped.
LD_PRELOAD=$runtime node -e '
  const addon = require(process.argv[1]);
  const maps = require("node:fs").readFileSync("/proc/self/maps", "utf8");
  if (typeof addon.tls.start !== "function" || !maps.includes("build-asan/tunnel_relay.node")
      || !maps.includes("libclang_rt.asan")) {
    console.error("test-native-asan: the ASan addon is not the one loaded"); process.exit(1);
  }' "$PWD/native/tunnel-relay/build-asan/tunnel_relay.node"

files=("$@")
[ ${#files[@]} -gt 0 ] || files=(test/egress)
status=0
LD_PRELOAD=$runtime npx vitest run --project unit "${files[@]}" || status=$?

if compgen -G "$reports/*" >/dev/null; then
  echo "test-native-asan: sanitizer reports:" >&2
  for report in "$reports"/*; do
    printf -- '--- %s\n' "$(basename "$report")" >&2
    cat "$report" >&2
  done
  exit 1
fi
[ "$status" -eq 0 ] || { echo "test-native-asan: the egress tests failed under the ASan build" >&2; exit "$status"; }
echo "test-native-asan: the egress tests passed with the ASan + UBSan addon, no sanitizer report"
