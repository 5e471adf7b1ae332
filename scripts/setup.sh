#!/usr/bin/env bash
# Sets up Berth on this machine: the Docker engine (Debian's docker.io, started if not running),
# the tools the image builder needs, the npm dependencies, the build, and the base images.
# Safe to run again: every step checks first.
#
#   bash scripts/setup.sh                 everything (both base images)
#   BERTH_IMAGES="minimal" bash scripts/setup.sh   only the small image
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

# What the package managers and builds print goes to one log file, named here; a step that fails
# shows its own output from it, once, then the reason.
SETUP_LOG="${BERTH_SETUP_LOG:-${TMPDIR:-/tmp}/berth-setup.log}"
: >"$SETUP_LOG" || die "cannot write the log file $SETUP_LOG (set BERTH_SETUP_LOG)"
say "details of every step go to $SETUP_LOG"
# run_logged "why it failed" command...: runs the command with its output in the log.
run_logged() {
  local why=$1 start
  shift
  start=$(($(wc -l <"$SETUP_LOG") + 1))
  printf '$ %s\n' "$*" >>"$SETUP_LOG"
  if ! "$@" >>"$SETUP_LOG" 2>&1; then
    printf '%s\n' "--- output of: $* (from $SETUP_LOG)" >&2
    tail -n "+$start" "$SETUP_LOG" >&2
    printf '%s\n' '---' >&2
    die "$why"
  fi
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

is_debian() { [ -r /etc/debian_version ] && command -v apt-get >/dev/null; }

# 1. System packages: the Docker engine and what the image builder and tests use.
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v iptables >/dev/null || need+=(iptables)
command -v ip >/dev/null || need+=(iproute2)
command -v git >/dev/null || need+=(git)
# ssh: the orchestrator fetches ssh:// and user@host:path repositories on the host (the sandbox never runs it).
command -v ssh >/dev/null || need+=(openssh-client)
# sshd: the ssh checkout is tested against a real server (started by the test, not as a service).
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
# A C/C++ toolchain: better-sqlite3 and the egress proxy's tunnel relay compile here.
command -v make >/dev/null || need+=(make)
command -v g++ >/dev/null || need+=(g++)
command -v python3 >/dev/null || need+=(python3)
# clang with its sanitizer and libFuzzer runtimes, and OpenSSL's headers: the native addon's
# ASan + UBSan build and its fuzzers (npm run test:native; scripts/test-native-asan.sh,
# scripts/fuzz-native.sh). Debian 12 ships the runtimes in libclang-rt-14-dev.
command -v clang >/dev/null || need+=(clang)
compgen -G '/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a' >/dev/null || need+=(libclang-rt-14-dev)
[ -r /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
# Chromium: the web UI's tests drive Debian's browser (playwright-core, no browser download).
command -v chromium >/dev/null || need+=(chromium)
# PostgreSQL: the store's second adapter is tested against a real server.
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  if is_debian; then
    say "installing ${need[*]} from Debian's packages"
    run_logged "apt-get update failed (are you root, or is sudo available?)" as_root apt-get update
    run_logged "apt-get install ${need[*]} failed" \
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"
  else
    die "missing ${need[*]}. This script installs them on Debian only; elsewhere install a Docker engine (API 1.41+), debootstrap, iptables, git and an ssh client, start the engine, and run this again."
  fi
fi

# 2. The Docker engine must answer.
docker_up() { timeout 5 docker info >/dev/null 2>&1; }
if ! docker_up; then
  say "starting the Docker engine"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    as_root systemctl start docker || true
  fi
  if ! docker_up; then
    as_root bash -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &' || die "cannot start dockerd (run this script as root)"
  fi
  for _ in $(seq 1 60); do docker_up && break; sleep 0.5; done
  docker_up || die "the Docker engine did not come up; see /var/log/dockerd.log"
fi

# 3. Node dependencies and the build.
# Node.js 20 or newer. Debian 12's own nodejs package is 18, so apt-get alone is not enough there.
node_hint="install Node.js 20 or newer (with npm), for example from the official Linux binary tarball on the Node.js website (unpack it and put its bin/ folder on PATH) or from NodeSource's Debian packages for Node 20+; then run this again. Debian 12's nodejs package is 18, too old"
command -v node >/dev/null || die "Node.js is not installed: $node_hint"
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$node_major" -ge 20 ] 2>/dev/null || die "Node.js $(node --version 2>/dev/null || echo '(unknown)') is too old: $node_hint"
command -v npm >/dev/null || die "npm is not installed: $node_hint"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies"
  # Native addons compile here (no prebuilt binaries are downloaded from outside).
  run_logged "npm ci failed" env npm_config_build_from_source=true npm ci --no-audit --no-fund
fi
say "building"
# The egress proxy's tunnel relay (native/tunnel-relay): a small C addon, built with the same
# toolchain as the npm dependencies above. Without it tunnels still work, relayed with streams.
run_logged "the native tunnel relay did not build (it needs make, g++ and python3)" npm run build:native
run_logged "the TypeScript build failed" npx tsc -b
# The web UI (web/ → web/dist, served by berth serve at /), typed from the server's OpenAPI document.
run_logged "the web UI did not build" npm run build:web

# 4. The base images (built locally: no container registry is needed).
for image in ${BERTH_IMAGES:-minimal universal}; do
  if docker image inspect "berth/$image:latest" >/dev/null 2>&1; then
    say "image berth/$image is already built"
  else
    say "building image berth/$image (the first build takes a few minutes)"
    run_logged "building the image berth/$image failed" node bin/berth.js image build "$image"
  fi
done

say "ready: start the server with: npx berth serve"
