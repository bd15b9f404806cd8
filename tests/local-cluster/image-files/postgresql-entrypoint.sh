#!/bin/sh
# Entrypoint of mro.local/postgresql (tests/local-cluster/images.sh): the environment of the
# sample database Deployments (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA), initialised
# on the first start into an empty data directory (an emptyDir), then the server in the foreground.
# Runs as the image's non-root user; the password goes to initdb through a file that is removed
# before the server starts (never in argv or the log).
#
# The initialisation is marked done only at its end (.mro-initialised): a container killed in the
# middle of it (a liveness probe on a slow machine) starts over from an empty directory on its
# next start instead of serving a half-made cluster.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
if [ ! -f "$PGDATA/.mro-initialised" ]; then
  [ -n "${POSTGRES_PASSWORD:-}" ] || { echo "postgresql-entrypoint: POSTGRES_PASSWORD is not set" >&2; exit 1; }
  if [ -d "$PGDATA" ]; then
    # A partial initialisation (or an empty mount): start from nothing.
    find "$PGDATA" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
  fi
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA"
  pw=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pw" --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C --no-sync >/dev/null
  rm -f "$pw"
  echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \"$db\" OWNER \"$user\";" | postgres --single -D "$PGDATA" -j postgres >/dev/null
  fi
  : >"$PGDATA/.mro-initialised"
  echo "postgresql-entrypoint: initialised $PGDATA (user $user, database $db)" >&2
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql
