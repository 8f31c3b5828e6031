#!/usr/bin/env bash
# Install what seqgrad needs on Debian 12 (only what is missing), then configure a release
# build directory. Safe to run again: with everything installed it only reconfigures.
#
#   scripts/setup.sh [--fuzz] [--bench] [--onnxruntime] [--deps-only] [BUILD_DIR]
#
#   BUILD_DIR     build directory, relative to the repository root (default: build, or the
#                 BUILD_DIR environment variable)
#   --fuzz        also install clang and its runtime libraries (libFuzzer) for the fuzzer
#   --bench       also install what the comparison benchmarks build with: g++ and oneDNN
#                 (libdnnl-dev) for bench/bench_onednn (PyTorch: see bench/README.md)
#   --onnxruntime also install Node.js and, with scripts/setup_onnxruntime.sh, onnxruntime
#                 (npm onnxruntime-node) into tests/onnx/node_modules for tests/test_onnx_ort.c
#   --deps-only   install what is missing and stop (no build directory)
#   MESON_OPTS    environment: extra options for `meson setup`, e.g.
#                 MESON_OPTS="--werror -Dwarning_level=2" scripts/setup.sh
#
# Run as root, or as a user with sudo. Python (torch, numpy) is only needed to regenerate
# test fixtures and is deliberately not installed here.
set -euo pipefail

usage() { sed -n '2,20s/^# \{0,1\}//p' "$0"; }

fuzz=0
bench=0
ort=0
deps_only=0
build_dir="${BUILD_DIR:-build}"
while [ $# -gt 0 ]; do
  case "$1" in
    --fuzz) fuzz=1 ;;
    --bench) bench=1 ;;
    --onnxruntime) ort=1 ;;
    --deps-only) deps_only=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "setup.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) build_dir="$1" ;;
  esac
  shift
done

# Work from the repository root so that relative build directories mean the same thing
# wherever the script is called from.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# ---- Debian packages ----------------------------------------------------------------------
# Build: compiler and C library headers, meson + ninja, pkg-config (pkgconf), BLIS (matmul),
# SLEEF (vector exp/log/tanh), Check (unit tests), cJSON (safetensors headers, checkpoints),
# protobuf-c and ONNX's onnx.proto (ONNX export and import: io/onnx*.c), Open MPI (dist/:
# data-parallel training; mpirun for its tests).
packages=(gcc libc6-dev meson ninja-build pkgconf libblis-dev libsleef-dev check libcjson-dev
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev libopenmpi-dev openmpi-bin)
if [ "$fuzz" = 1 ]; then
  packages+=(clang libclang-rt-dev)
fi
if [ "$bench" = 1 ]; then
  packages+=(g++ libdnnl-dev)
fi
# Node.js for onnxruntime-node (only when node / npm are not there already).
if [ "$ort" = 1 ]; then
  command -v node >/dev/null 2>&1 || packages+=(nodejs)
  command -v npm >/dev/null 2>&1 || packages+=(npm)
fi

if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
      sudo=()
    elif command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "setup.sh: missing packages: ${missing[*]}" >&2
      echo "setup.sh: not root and no sudo; as root, run:" >&2
      echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y" \
        "--no-install-recommends ${missing[*]}" >&2
      exit 1
    fi
    echo "setup.sh: installing ${missing[*]}"
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends "${missing[@]}"
  fi
else
  echo "setup.sh: dpkg-query not found (not Debian?): make sure these are installed:" \
    "${packages[*]}" >&2
fi

for tool in meson ninja pkg-config cc; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "setup.sh: '$tool' not found after installing packages" >&2
    exit 1
  fi
done

if [ "$ort" = 1 ]; then
  scripts/setup_onnxruntime.sh
fi

[ "$deps_only" = 1 ] && exit 0

# ---- configure ----------------------------------------------------------------------------
extra=()
if [ -n "${MESON_OPTS:-}" ]; then
  read -r -a extra <<<"$MESON_OPTS"
fi
if [ -f "$build_dir/meson-private/coredata.dat" ]; then
  # A reconfigure keeps options from earlier runs; without MESON_OPTS go back to the
  # default of warnings not being errors (.ci/run configures this same directory with
  # --werror), so the quick-start commands behave the same whatever ran before.
  if [ ${#extra[@]} -eq 0 ]; then
    extra=(-Dwerror=false)
  fi
  action=(meson setup --reconfigure "$build_dir" --buildtype=release "${extra[@]}")
else
  action=(meson setup "$build_dir" --buildtype=release "${extra[@]}")
fi
# meson's configure log is long; keep it, show it only when something went wrong.
log=$(mktemp "${TMPDIR:-/tmp}/seqgrad-setup.XXXXXX")
trap 'rm -f "$log"' EXIT
if ! "${action[@]}" >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup.sh: FAILED: ${action[*]}" >&2
  exit 1
fi
echo "setup.sh: $build_dir configured (release${MESON_OPTS:+, $MESON_OPTS})"
