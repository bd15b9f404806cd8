#!/usr/bin/env bash
# Installs the independent signature verifiers the signing tests run against model-sync's output
# (PyPI `model-signing`, `sigstore` and the RFC 3161 verifier it uses, `rfc3161-client`, pinned) into a venv and prints the venv's bin directory on
# stdout. Progress goes to stderr.
#
# Idempotent: a venv holding the pinned versions is reused, so only the first run needs network
# access. Cache root shared with the other harness scripts:
#   ${MRO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/model-registry-operator}/sigstore-venv-<hash>
# where <hash> names the pinned set: checkouts pinning different versions (branches, worktrees)
# each keep their own venv instead of rebuilding one under each other's running tests.
# pip uses whatever index the machine is configured for; this script names none.
set -euo pipefail

MODEL_SIGNING_VERSION="${MODEL_SIGNING_VERSION:-1.1.1}"
SIGSTORE_VERSION="${SIGSTORE_VERSION:-4.5.1}"
# Verifies the RFC 3161 timestamps in bundles (SIGSTORE_TSA_URL); pinned, not left to sigstore's range.
RFC3161_CLIENT_VERSION="${RFC3161_CLIENT_VERSION:-1.0.9}"
# model-signing imports OpenSSL (certificate mode) at start-up without declaring the dependency.
PYOPENSSL_VERSION="${PYOPENSSL_VERSION:-26.4.0}"
CACHE_ROOT="${MRO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/model-registry-operator}"
WANT="model-signing==$MODEL_SIGNING_VERSION sigstore==$SIGSTORE_VERSION rfc3161-client==$RFC3161_CLIENT_VERSION pyopenssl==$PYOPENSSL_VERSION"
VENV="$CACHE_ROOT/sigstore-venv-$(printf '%s' "$WANT" | sha256sum | cut -c1-12)"
STAMP="$VENV/.installed"

log() { echo "install-sigstore-verifiers: $*" >&2; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/model_signing" ]; then
  echo "$VENV/bin"
  exit 0
fi

PYTHON="${PYTHON:-$(command -v python3 || true)}"
if [ -z "$PYTHON" ] || ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  log "python3 with venv missing: installing Debian packages python3 python3-venv"
  if [ "$(id -u)" = 0 ]; then as_root=(); else as_root=(sudo); fi
  "${as_root[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq python3 python3-venv >&2
  PYTHON="$(command -v python3)"
fi

mkdir -p "$CACHE_ROOT"
# Parallel test binaries must not build the same venv at once.
exec 9>"$CACHE_ROOT/.sigstore-venv.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
if ! { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; }; then
  log "installing $WANT into $VENV (takes a minute)"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    $WANT >&2
  echo "$WANT" >"$STAMP"
fi
if ! "$VENV/bin/model_signing" --help >/dev/null 2>&1 || ! "$VENV/bin/sigstore" --help >/dev/null 2>&1; then
  log "model_signing or sigstore in $VENV/bin does not start"
  exit 1
fi
echo "$VENV/bin"
