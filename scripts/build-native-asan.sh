#!/usr/bin/env bash
# Builds the egress proxy's native addon (native/tunnel-relay/*.c) with AddressSanitizer and
# UndefinedBehaviorSanitizer into native/tunnel-relay/build-asan/tunnel_relay.node, beside the
# normal build (build/Release), which it leaves alone. Node is not built with ASan: the addon
# loads only with clang's ASan runtime preloaded (scripts/test-native-asan.sh does that, and
# sets BERTH_NATIVE_ASAN=1 so src/egress/tunnel-relay.ts loads this file). Every UBSan finding
# aborts (-fno-sanitize-recover=all), as every ASan one does. Needs Debian's clang and
# libclang-rt-14-dev (scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v clang >/dev/null || { echo "build-native-asan: clang is not installed (bash scripts/setup.sh)" >&2; exit 1; }
# Node's headers (node_api.h and the OpenSSL headers of the OpenSSL inside Node): where Node is
# installed, else node-gyp's copy.
node_prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
version=$(node -p process.versions.node)
include=""
for dir in "$node_prefix/include/node" "${HOME:-/root}/.cache/node-gyp/$version/include/node"; do
  [ -r "$dir/node_api.h" ] && { include=$dir; break; }
done
[ -n "$include" ] || { echo "build-native-asan: Node's headers (node_api.h) were not found; run npm run build:native first" >&2; exit 1; }

out=native/tunnel-relay/build-asan
mkdir -p "$out"
# -shared-libsan: the addon's sanitizer calls resolve to the preloaded runtime (the one Node's
# process has), not to a second copy linked in. -z nodelete as in binding.gyp.
clang -shared -fPIC -g -O1 -fno-omit-frame-pointer \
  -fsanitize=address,undefined -fno-sanitize-recover=all -shared-libsan \
  -Wall -Wextra -Werror -DNAPI_VERSION=8 \
  -I"$include" -I"$include/openssl" \
  -Wl,-z,nodelete \
  -o "$out/tunnel_relay.node.tmp" native/tunnel-relay/*.c
mv "$out/tunnel_relay.node.tmp" "$out/tunnel_relay.node"
echo "built $out/tunnel_relay.node (ASan + UBSan)"
