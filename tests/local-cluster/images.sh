#!/usr/bin/env bash
# Builds our container images offline, the equivalent of the Dockerfile's stages (runtime-base, then
# model-sync / operator on it), and optionally loads them into a node's containerd.
#
#   images.sh --out DIR [--model-sync BIN] [--operator BIN] [--busybox] [--standin BIN]
#             [--databases] [--catalog BIN] [--rbac-proxy BIN] [--import CONTAINERD_SOCKET]
#
# The base is what the Dockerfile takes from distroless cc-debian12:nonroot, made from this machine's
# Debian packages instead (no image registry outside this machine is reachable): the dynamic loader
# and the libraries the binary links (libc6, libgcc-s1, found with ldd), CA certificates
# (ca-certificates), /etc/passwd and /etc/group with root and nonroot (65532), a world-writable /tmp.
# The packages every file came from are listed in /usr/share/mro-base/packages inside the image.
# Images (all tagged :dev, user 65532:65532 unless said):
#   mro.local/model-sync:dev        ENTRYPOINT ["/model-sync"]
#   mro.local/model-sync-root:dev   the same with USER 0 (tests: runAsNonRoot must refuse it)
#   mro.local/operator:dev          ENTRYPOINT ["/model-registry-operator"] CMD ["run"]
#   mro.local/busybox:dev           the static busybox under /bin and libc6's NSS modules (tests: volumes, DNS, HTTP)
#   mro.local/model-registry:v0.3.14  the Model Registry stand-in (tests' model_registry_standin) at
#                                   /model-registry, taking the real server's command line; psql
#                                   (postgresql-client-15) and the mariadb client for its database checks
#   mro.local/postgresql:15         PostgreSQL 15 from Debian's postgresql-15 and postgresql-client-15,
#                                   user postgres (999); POSTGRES_USER/PASSWORD/DB and PGDATA as the
#                                   sample Deployment sets them, initialised on start
#                                   (image-files/postgresql-entrypoint.sh)
#   mro.local/mariadb:10.11         MariaDB 10.11 from Debian's mariadb-server-core and
#                                   mariadb-client-core, user mysql (999); MYSQL_* as the sample
#                                   Deployment sets them, initialised on start (image-files/mariadb-entrypoint.sh)
#   mro.local/model-catalog:v0.3.14  the Model Catalog server stand-in (tests' catalog_standin) at
#                                   /model-registry: the catalog Deployment's `catalog` container runs
#                                   it with the command the controller renders (/model-registry catalog)
#   mro.local/catalog-data:dev      what the catalog Deployment's two init containers copy: the static
#                                   busybox's sh and cp, /app/data/<one file per default source>.yaml and
#                                   /app/benchmarks/ (small test files, not the real catalog data)
#   mro.local/kube-rbac-proxy:dev   the kube-rbac-proxy stand-in (tests' kube_rbac_proxy_standin) at
#                                   /usr/local/bin/kube-rbac-proxy, the entrypoint (the rendered
#                                   sidecars give only arguments, as for the real image)
# Shells and tools in the database images are the static busybox's applets (bash for the MySQL
# sample's readiness probe); each image lists the Debian packages its files came from.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="" sync_bin="" op_bin="" busybox="" sock="" standin_bin="" databases="" catalog_bin="" proxy_bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --model-sync) sync_bin="$2"; shift 2 ;;
    --operator) op_bin="$2"; shift 2 ;;
    --busybox) busybox=1; shift ;;
    --standin) standin_bin="$2"; shift 2 ;;
    --databases) databases=1; shift ;;
    --catalog) catalog_bin="$2"; shift 2 ;;
    --rbac-proxy) proxy_bin="$2"; shift 2 ;;
    --import) sock="$2"; shift 2 ;;
    *) echo "images.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "images.sh: --out is required" >&2; exit 2; }
mkdir -p "$out"

# runtime-base plus one binary at /<name>: rootfs in $1.
base_rootfs() { # rootfs binary
  local root="$1" bin="$2"
  rm -rf "$root"; mkdir -p "$root"/{etc/ssl/certs,tmp,usr/share/mro-base}
  chmod 1777 "$root/tmp"
  local files=() f
  while read -r f; do files+=("$f"); done < <(ldd "$bin" | grep -oE '/[^ ]+' | sort -u)
  for f in "${files[@]}"; do
    [ -e "$f" ] || continue
    mkdir -p "$root$(dirname "$f")"
    cp -L "$f" "$root$f"
  done
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
  mkdir -p "$root/home/nonroot"; chown 65532:65532 "$root/home/nonroot"
  { for f in "${files[@]}"; do
      dpkg -S "$(readlink -f "$f")" 2>/dev/null || dpkg -S "$f" 2>/dev/null || echo "(no package): $f"
    done
    echo "ca-certificates (generated by update-ca-certificates): /etc/ssl/certs/ca-certificates.crt"
  } | sort -u >"$root/usr/share/mro-base/packages"
  cp -L "$bin" "$root/$(basename "$bin")"
  chmod 0755 "$root/$(basename "$bin")"
}

# Copies files (keeping their paths; symlinks among them stay symlinks) and every library the
# executables and shared objects among them link (one ldd run) into a rootfs; records the copied
# paths in $root/.files for package_list.
copy_with_libs() { # rootfs files...
  local root="$1"; shift
  [ $# -gt 0 ] || return 0
  printf '%s\n' "$@" | sed 's|^/||' | tar -C / --no-recursion -cf - -T - | tar -C "$root" -xf -
  printf '%s\n' "$@" >>"$root/.files"
  local libs l
  libs=$(printf '%s\n' "$@" | while read -r l; do
      if [ -f "$l" ] && [ ! -L "$l" ] && { [ -x "$l" ] || case "$l" in *.so|*.so.*) true ;; *) false ;; esac; }; then echo "$l"; fi
    done | { xargs -r ldd 2>/dev/null || true; } | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }' | sort -u)
  for l in $libs; do
    [ -e "$root$l" ] && continue
    mkdir -p "$root$(dirname "$l")"; cp -L "$l" "$root$l"; echo "$l" >>"$root/.files"
  done
}

# Every file a Debian package installed (symlinks included), except documentation and what the
# images leave out (PostgreSQL's LLVM JIT, which drags in libLLVM).
package_files() { # packages...
  local p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || { echo "images.sh: Debian package $p is not installed (provision.sh installs it)" >&2; exit 1; }
    dpkg -L "$p" | grep -vE '^/usr/share/(doc|man|lintian)/|/lib/bitcode/|/llvmjit' \
      | while read -r f; do if [ -L "$f" ] || [ -f "$f" ]; then echo "$f"; fi; done
  done
}

# The static busybox at /bin with these applets.
add_busybox() { # rootfs applets...
  local root="$1" a; shift
  mkdir -p "$root/bin"; cp /bin/busybox "$root/bin/busybox"
  for a in "$@"; do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
}

# Writes the package list (/usr/share/mro-base/packages) from the files copied so far (one dpkg -S).
package_list() { # rootfs
  local root="$1"
  mkdir -p "$root/usr/share/mro-base"
  { [ -f "$root/usr/share/mro-base/packages" ] && cat "$root/usr/share/mro-base/packages"
    if [ -f "$root/.files" ]; then
      sort -u "$root/.files" | while read -r f; do echo "$f"; readlink -f "$f"; done | sort -u | { xargs -r dpkg -S 2>/dev/null || true; } | cut -d: -f1 | sort -u \
        | sed 's/$/: (files of this package)/'
    fi
    echo "busybox-static: /bin/busybox"
  } | sort -u >"$root/usr/share/mro-base/packages.tmp"
  mv "$root/usr/share/mro-base/packages.tmp" "$root/usr/share/mro-base/packages"
  rm -f "$root/.files"
}

users() { # rootfs name uid
  printf 'root:x:0:0:root:/root:/sbin/nologin\n%s:x:%s:%s:%s:/tmp:/bin/sh\n' "$2" "$3" "$3" "$2" >"$1/etc/passwd"
  printf 'root:x:0:\n%s:x:%s:\n' "$2" "$3" >"$1/etc/group"
}

build() { # name rootfs oci-image.sh args...
  local name="$1" root="$2"; shift 2
  local file="$out/${name//[\/:]/_}.tar"
  bash "$here/oci-image.sh" --rootfs "$root" --name "$name" --out "$file" "$@" >/dev/null
  if [ -n "$sock" ]; then ctr --address "$sock" -n k8s.io images import "$file" >/dev/null; fi
  echo "$name $file"
}

if [ -n "$sync_bin" ]; then
  base_rootfs "$out/rootfs-model-sync" "$sync_bin"
  build mro.local/model-sync:dev "$out/rootfs-model-sync" --user 65532:65532 --entrypoint '["/model-sync"]'
  build mro.local/model-sync-root:dev "$out/rootfs-model-sync" --user 0:0 --entrypoint '["/model-sync"]'
fi
if [ -n "$op_bin" ]; then
  base_rootfs "$out/rootfs-operator" "$op_bin"
  build mro.local/operator:dev "$out/rootfs-operator" --user 65532:65532 \
    --entrypoint '["/model-registry-operator"]' --cmd '["run"]'
fi
if [ -n "$busybox" ]; then
  root="$out/rootfs-busybox"; rm -rf "$root"; mkdir -p "$root"/{bin,etc,tmp}; chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for a in sh cat ls stat sleep wget nslookup echo test id printf head tr cut grep sed env date true seq timeout; do
    ln -s busybox "$root/bin/$a"
  done
  # The static busybox still loads glibc's NSS modules for name lookups (wget): libc6's, as on the host.
  for f in /lib64/ld-linux-x86-64.so.2 /lib/x86_64-linux-gnu/{libc.so.6,libnss_files.so.2,libnss_dns.so.2,libresolv.so.2}; do
    mkdir -p "$root$(dirname "$f")"; cp -L "$f" "$root$f"
  done
  printf 'hosts: files dns\npasswd: files\ngroup: files\n' >"$root/etc/nsswitch.conf"
  printf 'root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/tmp:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
  build mro.local/busybox:dev "$root" --user 65532:65532 --entrypoint '["/bin/sh"]'
fi

if [ -n "$standin_bin" ]; then
  root="$out/rootfs-model-registry"
  base_rootfs "$root" "$standin_bin"
  mv "$root/$(basename "$standin_bin")" "$root/model-registry"
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  copy_with_libs "$root" "$pgbin/psql" /usr/bin/mariadb \
    /lib/x86_64-linux-gnu/libnss_files.so.2 /lib/x86_64-linux-gnu/libnss_dns.so.2 /lib/x86_64-linux-gnu/libresolv.so.2
  mkdir -p "$root/usr/bin"; ln -sf "$pgbin/psql" "$root/usr/bin/psql"; ln -sf mariadb "$root/usr/bin/mysql"
  printf 'hosts: files dns\npasswd: files\ngroup: files\n' >"$root/etc/nsswitch.conf"
  package_list "$root"
  build mro.local/model-registry:v0.3.14 "$root" --user 65532:65532 --entrypoint '["/model-registry"]' \
    --env '["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","MRO_STANDIN_VERSION=v0.3.14"]'
fi
if [ -n "$catalog_bin" ]; then
  root="$out/rootfs-model-catalog"
  base_rootfs "$root" "$catalog_bin"
  mv "$root/$(basename "$catalog_bin")" "$root/model-registry"
  build mro.local/model-catalog:v0.3.14 "$root" --user 65532:65532 --entrypoint '["/model-registry"]'

  # The catalog and benchmark data the init containers copy (`cp /app/data/*.yaml /shared-data/`,
  # `cp -r /app/benchmarks/* ...`): one small file per data file the default sources name.
  root="$out/rootfs-catalog-data"; rm -rf "$root"; mkdir -p "$root"/{etc,tmp,app/data,app/benchmarks}
  chmod 1777 "$root/tmp"
  add_busybox "$root" sh cp ls cat
  for f in models-catalog validated-models-catalog other-models-catalog redhat-mcp-servers-catalog \
    partner-mcp-servers-catalog community-mcp-servers-catalog redhat-agents-catalog; do
    printf '# test data of tests/local-cluster/images.sh, not a real catalog\nsource: %s\n' "$f" >"$root/app/data/$f.yaml"
  done
  printf '{"note": "test benchmark data of tests/local-cluster/images.sh"}\n' >"$root/app/benchmarks/test-benchmarks.json"
  chmod -R a+rX "$root/app"
  users "$root" nonroot 65532
  package_list "$root"
  build mro.local/catalog-data:dev "$root" --user 65532:65532 --entrypoint '["/bin/sh"]'
fi
if [ -n "$proxy_bin" ]; then
  root="$out/rootfs-kube-rbac-proxy"
  base_rootfs "$root" "$proxy_bin"
  mkdir -p "$root/usr/local/bin"
  mv "$root/$(basename "$proxy_bin")" "$root/usr/local/bin/kube-rbac-proxy"
  build mro.local/kube-rbac-proxy:dev "$root" --user 65532:65532 --entrypoint '["/usr/local/bin/kube-rbac-proxy"]'
fi
if [ -n "$databases" ]; then
  here_files="$here/image-files"
  # PostgreSQL: the server and client programs of the newest installed major, its shared files, tzdata.
  root="$out/rootfs-postgresql"; rm -rf "$root"; mkdir -p "$root"/{etc,tmp,var/lib/postgresql,var/run/postgresql}
  chmod 1777 "$root/tmp"
  pgmajor=$(basename "$(ls -d /usr/lib/postgresql/*/ | sort -V | tail -n1)")
  mapfile -t files < <(package_files "postgresql-$pgmajor" "postgresql-client-$pgmajor" tzdata)
  copy_with_libs "$root" "${files[@]}"
  add_busybox "$root" sh cat chmod mkdir mktemp printf rm echo test id ls sleep env find
  users "$root" postgres 999
  chown 999:999 "$root/var/lib/postgresql" "$root/var/run/postgresql"
  mkdir -p "$root/usr/local/bin"
  install -m 0755 "$here_files/postgresql-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
  package_list "$root"
  build "mro.local/postgresql:$pgmajor" "$root" --user 999:999 --entrypoint '["/usr/local/bin/docker-entrypoint.sh"]' \
    --env "[\"PATH=/usr/lib/postgresql/$pgmajor/bin:/usr/local/bin:/usr/bin:/bin\",\"PGDATA=/var/lib/postgresql/data\"]"

  # MariaDB: the server and client cores, their shared files and the option files of mariadb-common.
  root="$out/rootfs-mariadb"; rm -rf "$root"; mkdir -p "$root"/{etc/mysql,tmp,var/lib/mysql,run/mysqld}
  chmod 1777 "$root/tmp"
  mapfile -t files < <(package_files mariadb-server-core mariadb-client-core)
  copy_with_libs "$root" "${files[@]}" /bin/bash
  add_busybox "$root" sh cat chmod chown mkdir mktemp printf rm echo test id ls sleep env dirname basename \
    find hostname sed awk uname tr grep cut
  ln -s /bin/bash "$root/bin/bash" 2>/dev/null || true
  users "$root" mysql 999
  # Server settings for a test machine shared by many servers: a small buffer pool, no
  # performance schema or binary log, and InnoDB's simulated I/O instead of Linux native AIO (the
  # host's AIO contexts are shared with every other MariaDB the tests run at the same time).
  printf '[client-server]\nsocket = /run/mysqld/mysqld.sock\n\n[mariadbd]\ndatadir = /var/lib/mysql\npid-file = /run/mysqld/mysqld.pid\ncharacter-set-server = utf8mb4\ninnodb_buffer_pool_size = 64M\ninnodb_use_native_aio = 0\nperformance_schema = OFF\nskip-log-bin\n' >"$root/etc/mysql/my.cnf"
  chown 999:999 "$root/var/lib/mysql" "$root/run/mysqld"
  mkdir -p "$root/usr/local/bin"
  install -m 0755 "$here_files/mariadb-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
  package_list "$root"
  build mro.local/mariadb:10.11 "$root" --user 999:999 --entrypoint '["/usr/local/bin/docker-entrypoint.sh"]'
fi
