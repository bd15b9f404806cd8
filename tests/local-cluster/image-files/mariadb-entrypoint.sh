#!/bin/sh
# Entrypoint of mro.local/mariadb (tests/local-cluster/images.sh): the environment of the sample
# database Deployments (MYSQL_USER, MYSQL_PASSWORD, MYSQL_ROOT_PASSWORD, MYSQL_DATABASE),
# initialised on the first start into an empty /var/lib/mysql (an emptyDir), then the server in
# the foreground. Runs as the image's non-root user; the accounts are created by a bootstrap run
# reading SQL from stdin (passwords never in argv, a file or the log).
#
# The initialisation is marked done only at its end (.mro-initialised): a container killed in the
# middle of it (a liveness probe on a slow machine) starts over from an empty directory on its
# next start instead of serving half-made system tables.
set -eu
datadir=/var/lib/mysql
if [ ! -f "$datadir/.mro-initialised" ]; then
  for v in MYSQL_USER MYSQL_PASSWORD MYSQL_ROOT_PASSWORD MYSQL_DATABASE; do
    eval "val=\${$v:-}"
    [ -n "$val" ] || { echo "mariadb-entrypoint: $v is not set" >&2; exit 1; }
  done
  # A partial initialisation (or lost+found on a fresh volume): start from nothing.
  find "$datadir" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
  mariadb-install-db --datadir="$datadir" --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve --force >/tmp/install-db.log 2>&1 || {
    cat /tmp/install-db.log >&2; echo "mariadb-entrypoint: mariadb-install-db failed" >&2; exit 1; }
  esc() { printf '%s' "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g"; }
  {
    echo "FLUSH PRIVILEGES;"
    echo "DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');"
    echo "DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';"
    echo "FLUSH PRIVILEGES;"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$(esc "$MYSQL_ROOT_PASSWORD")';"
    echo "CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\`;"
    echo "CREATE USER '$(esc "$MYSQL_USER")'@'%' IDENTIFIED BY '$(esc "$MYSQL_PASSWORD")';"
    echo "GRANT ALL ON \`$MYSQL_DATABASE\`.* TO '$(esc "$MYSQL_USER")'@'%';"
  } | mariadbd --bootstrap --datadir="$datadir" --skip-name-resolve --log-warnings=0 >/dev/null
  : >"$datadir/.mro-initialised"
  echo "mariadb-entrypoint: initialised $datadir (user $MYSQL_USER, database $MYSQL_DATABASE)" >&2
fi
exec mariadbd --datadir="$datadir" --bind-address=0.0.0.0 --port=3306 --skip-name-resolve
