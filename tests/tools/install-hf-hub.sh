#!/usr/bin/env bash
# Installs the real Hugging Face Hub client (PyPI `huggingface-hub`, pinned) into the venv that
# install-sigstore-verifiers.sh makes, and prints the venv's bin directory on stdout. The hf://
# tests run `huggingface_hub.snapshot_download` against the local Hub stand-in
# (tests/src/hf_hub.rs) so that the stand-in is checked against the real client, not only
# against model-sync. Progress goes to stderr.
#
# Idempotent: the pinned version is recorded in a stamp inside the venv, so a venv rebuilt by the
# sigstore script (new pins there) gets the client again, and a current one is reused without
# network access. pip uses whatever index the machine is configured for; this script names none.
set -euo pipefail

HUGGINGFACE_HUB_VERSION="${HUGGINGFACE_HUB_VERSION:-2.4.0}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_ROOT="${MRO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/model-registry-operator}"
WANT="huggingface-hub==$HUGGINGFACE_HUB_VERSION"

log() { echo "install-hf-hub: $*" >&2; }

BIN="$(bash "$HERE/install-sigstore-verifiers.sh" | tail -n 1)"
VENV="$(dirname "$BIN")"
STAMP="$VENV/.installed-hf-hub"

current() { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; }

if ! current; then
  mkdir -p "$CACHE_ROOT"
  # The same lock as the sigstore script: parallel test binaries must not install at once.
  exec 9>"$CACHE_ROOT/.sigstore-venv.lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi
  if ! current; then
    log "installing $WANT into $VENV"
    "$BIN/pip" install --quiet --disable-pip-version-check "$WANT" >&2
    echo "$WANT" >"$STAMP"
  fi
fi
if ! "$BIN/python" -c 'import huggingface_hub, sys; sys.exit(huggingface_hub.__version__ != sys.argv[1])' \
  "$HUGGINGFACE_HUB_VERSION"; then
  log "huggingface_hub $HUGGINGFACE_HUB_VERSION does not import from $VENV"
  exit 1
fi
echo "$BIN"
