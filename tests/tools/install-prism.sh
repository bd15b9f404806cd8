#!/usr/bin/env bash
# Installs the Prism CLI (OpenAPI mock/validating proxy) used by the Model Registry contract test and
# prints the path of its executable on stdout. Progress goes to stderr.
#
# Idempotent: a cached install of the pinned version is reused, so only the first run needs npm and
# network access. The cache root is shared with the other harness scripts:
#   ${MRO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/model-registry-operator}/prism
# npm uses whatever registry the machine is configured for; this script names none.
set -euo pipefail

PRISM_VERSION="${PRISM_VERSION:-5.14.2}"
CACHE_ROOT="${MRO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/model-registry-operator}"
PREFIX="$CACHE_ROOT/prism"
BIN="$PREFIX/node_modules/.bin/prism"
PKG_JSON="$PREFIX/node_modules/@stoplight/prism-cli/package.json"

log() { echo "install-prism: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

installed_version() {
  [ -x "$BIN" ] && [ -f "$PKG_JSON" ] || return 1
  node -e 'process.stdout.write(require(process.argv[1]).version)' "$PKG_JSON" 2>/dev/null
}

if [ "$(installed_version || true)" = "$PRISM_VERSION" ]; then
  echo "$BIN"
  exit 0
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "node/npm missing: installing Debian packages nodejs npm"
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nodejs npm >&2
fi

mkdir -p "$PREFIX"
# A lock so parallel test binaries (or developers) do not run npm into the same prefix at once.
exec 9>"$PREFIX/.install.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
if [ "$(installed_version || true)" != "$PRISM_VERSION" ]; then
  log "installing @stoplight/prism-cli@$PRISM_VERSION into $PREFIX (takes a minute)"
  npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
    "@stoplight/prism-cli@$PRISM_VERSION" >&2
fi
got="$(installed_version || true)"
if [ "$got" != "$PRISM_VERSION" ]; then
  log "expected prism-cli $PRISM_VERSION at $BIN, found '${got:-nothing}'"
  exit 1
fi
echo "$BIN"
