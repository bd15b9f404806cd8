#!/usr/bin/env bash
# Installs the system programs the test harness starts or calls, when they are missing:
#   docker-registry  (Debian's distribution registry: tests/src/oci_registry.rs)
#   htpasswd         (apache2-utils: bcrypt htpasswd file for the auth registry)
#   mariadb-server   (a throwaway MariaDB the stand-in reaches with the MySQL DSN: tests/src/mariadb.rs;
#                    each test starts its own server on a data directory of its own, unprivileged)
#   openssl          (handy for inspecting the per-run certificates; used by scripts)
#   postgresql       (a throwaway database the Model Registry stand-in connects to: tests/src/postgres.rs)
#   psql             (postgresql-client: how the stand-in reaches it, with libpq)
#   skopeo           (pulls modelcars as a container tool does: the many-files OCI test)
# Idempotent: does nothing (and needs no privileges) when everything is present. Uses the system's
# configured apt sources; runs apt as root directly or through sudo.
set -euo pipefail

# command-to-check  package-providing-it
required=(
  "/usr/bin/docker-registry docker-registry"
  "htpasswd apache2-utils"
  "/usr/sbin/mariadbd mariadb-server"
  "mariadb-install-db mariadb-server"
  "openssl openssl"
  "pg_ctlcluster postgresql"
  "psql postgresql-client"
  "skopeo skopeo"
)

missing=()
for entry in "${required[@]}"; do
  cmd=${entry% *}
  pkg=${entry#* }
  if ! command -v "$cmd" >/dev/null 2>&1; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-test-deps: all test dependencies present"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: missing packages (${missing[*]}) and no apt-get; install them manually" >&2
  exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-test-deps: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi

echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"

for entry in "${required[@]}"; do
  cmd=${entry% *}
  if ! command -v "$cmd" >/dev/null 2>&1; then
    echo "install-test-deps: $cmd still missing after install" >&2
    exit 1
  fi
done
echo "install-test-deps: done"
