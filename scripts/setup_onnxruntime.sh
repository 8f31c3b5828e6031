#!/usr/bin/env bash
# Install onnxruntime (the npm package onnxruntime-node, pinned in tests/onnx/package.json)
# into tests/onnx/node_modules, where tests/onnx/run_ort.js finds it: tests/test_onnx.c runs
# the exported models in it. Needs Node.js (18 or later; Debian 12: apt-get install nodejs
# npm). Safe to run again: an installed copy of the pinned version is left as it is.
#
#   scripts/setup_onnxruntime.sh
#
# --ignore-scripts: the package's install script would download GPU libraries; the CPU
# runtime the tests use ships in the package itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../tests/onnx"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "setup_onnxruntime.sh: '$tool' not found: install Node.js (apt-get install nodejs npm)" >&2
    exit 1
  fi
done
want=$(node -p "require('./package.json').dependencies['onnxruntime-node']")
have=$(node -p "try { require('onnxruntime-node/package.json').version } catch (e) { '' }" 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  echo "setup_onnxruntime.sh: installing onnxruntime-node $want into tests/onnx/node_modules"
  npm install --ignore-scripts --no-audit --no-fund --no-save --loglevel=error
fi
node -e "require('onnxruntime-node')" || {
  echo "setup_onnxruntime.sh: onnxruntime-node $want does not load" >&2
  exit 1
}
echo "setup_onnxruntime.sh: onnxruntime-node $want ready in tests/onnx/node_modules"
