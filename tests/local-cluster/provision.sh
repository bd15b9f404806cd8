#!/usr/bin/env bash
# Makes sure etcd, kube-apiserver, kube-controller-manager and kubectl exist and prints their paths
# as shell assignments (ETCD=..., KUBE_APISERVER=..., ...).
#
# Unless MRO_NODE=0, also the parts of the real node (tests/local-cluster/node.sh): kubelet,
# kube-scheduler and kube-proxy built from the same source package (cached apart from the control
# plane, so adding the node never rebuilds the apiserver), and containerd, runc, the CNI plugins,
# iptables, dnsmasq (cluster DNS) and a static busybox (the sandbox image) from Debian packages. Printed as
# KUBELET=..., KUBE_SCHEDULER=..., KUBE_PROXY=..., CONTAINERD=..., CTR=..., RUNC=..., CNI_BIN_DIR=...,
# BUSYBOX=... .
#
# Order of preference for each binary:
#   1. an explicit env var (ETCD, KUBE_APISERVER, KUBE_CONTROLLER_MANAGER, KUBECTL);
#   2. a directory of binaries in KUBEBUILDER_ASSETS (the envtest layout);
#   3. the cache under $MRO_CACHE_DIR (default ~/.cache/model-registry-operator), keyed by version;
#   4. build from Debian's `kubernetes` source package (vendored Go deps, builds offline), then cache.
# etcd comes from Debian's etcd-server package. Progress goes to stderr; only assignments to stdout.
set -euo pipefail

K8S_DEB_VERSION="${K8S_DEB_VERSION:-1.20.5+really1.20.2-1.1+deb12u1}"
CACHE_ROOT="${MRO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/model-registry-operator}"
# Bump BUILD_REV whenever the way we build changes, so cached binaries are rebuilt.
BUILD_REV=2
BIN_DIR="$CACHE_ROOT/kubernetes-${K8S_DEB_VERSION}-r${BUILD_REV}/bin"
# The node's binaries: their own revision, so that a change here rebuilds only them.
NODE_BUILD_REV=1
NODE_BIN_DIR="$CACHE_ROOT/kubernetes-node-${K8S_DEB_VERSION}-r${NODE_BUILD_REV}/bin"
WANT_NODE="${MRO_NODE:-1}"

log() { echo "provision: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=""
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq >&2; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >&2
}

# Adds deb-src entries mirroring the machine's own deb entries (no host names written by us).
ensure_deb_src() {
  local out=/etc/apt/sources.list.d/model-registry-operator-src.sources
  if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then return 0; fi
  log "adding deb-src entries derived from the existing apt sources"
  local tmp; tmp=$(mktemp)
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed -n '/^Types:/!{p;d};s/^Types:.*/Types: deb-src/p' "$f" >>"$tmp"; echo >>"$tmp"
  done
  if [ -f /etc/apt/sources.list ]; then
    grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' >"$tmp.list" || true
    [ -s "$tmp.list" ] && as_root cp "$tmp.list" /etc/apt/sources.list.d/model-registry-operator-src.list
  fi
  [ -s "$tmp" ] && as_root cp "$tmp" "$out"
  rm -f "$tmp" "$tmp.list"
  as_root apt-get update -qq >&2
  apt_updated=1
}

build_kubernetes() { # output dir, binaries...
  local out="$1"; shift
  # reflect2 1.0.1 (vendored in 1.20) crashes under Go >= 1.18 on the first custom resource write;
  # Debian's packaged 1.0.2 fixes it and is API-compatible.
  apt_install golang-go dpkg-dev rsync golang-github-modern-go-reflect2-dev
  ensure_deb_src
  local work="$CACHE_ROOT/src"
  mkdir -p "$work"
  local tree
  tree=$(find "$work" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
  if [ -z "$tree" ]; then
    log "fetching the kubernetes source package ${K8S_DEB_VERSION}"
    (cd "$work" && apt-get source -qq "kubernetes=${K8S_DEB_VERSION}" >&2)
    tree=$(find "$work" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
  fi
  local reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
  if [ -d "$reflect2" ]; then
    rm -rf "$tree/vendor/github.com/modern-go/reflect2"
    cp -r "$reflect2" "$tree/vendor/github.com/modern-go/reflect2"
  else
    log "warning: $reflect2 missing; the apiserver may crash on custom resources"
  fi
  local what=() b
  for b in "$@"; do what+=("cmd/$b"); done
  log "building $* in $tree (takes several minutes)"
  # GOPATH mode with the tree's vendored dependencies, as the package's own rules build it.
  (
    cd "$tree"
    export GO111MODULE=off GOFLAGS=-mod=vendor GOCACHE="$CACHE_ROOT/gocache" GOPROXY=off
    export KUBE_GIT_VERSION="v1.20.2" KUBE_GIT_TREE_STATE=clean
    make WHAT="${what[*]}" >&2
  )
  mkdir -p "$out"
  for b in "$@"; do
    cp "$(find "$tree/_output" -type f -name "$b" -perm -u+x | head -n1)" "$out/$b"
  done
}

# The source tree and Go cache are large; the binaries are all later runs need.
drop_build_tree() { rm -rf "$CACHE_ROOT/src" "$CACHE_ROOT/gocache"; }

pick() { # name, env value, assets name
  local envval="$1" asset="$2" cached="$3"
  if [ -n "$envval" ]; then echo "$envval"; return; fi
  if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/$asset" ]; then echo "$KUBEBUILDER_ASSETS/$asset"; return; fi
  echo "$cached"
}

etcd_bin=$(pick "${ETCD:-}" etcd "")
if [ -z "$etcd_bin" ]; then
  apt_install etcd-server
  etcd_bin=$(command -v etcd)
fi
apiserver=$(pick "${KUBE_APISERVER:-}" kube-apiserver "$BIN_DIR/kube-apiserver")
kcm=$(pick "${KUBE_CONTROLLER_MANAGER:-}" kube-controller-manager "$BIN_DIR/kube-controller-manager")
kubectl_bin="${KUBECTL:-}"
[ -z "$kubectl_bin" ] && kubectl_bin=$(command -v kubectl || true)
[ -z "$kubectl_bin" ] && kubectl_bin="$BIN_DIR/kubectl"

if [ ! -x "$apiserver" ] || [ ! -x "$kcm" ] || [ ! -x "$kubectl_bin" ]; then
  if [ "$apiserver" != "$BIN_DIR/kube-apiserver" ] && [ ! -x "$apiserver" ]; then
    log "given kube-apiserver '$apiserver' is not executable"; exit 1
  fi
  build_kubernetes "$BIN_DIR" kube-apiserver kube-controller-manager kubectl
fi
apt_install openssl

node_bins=(kubelet kube-scheduler kube-proxy)
if [ "$WANT_NODE" != 0 ]; then
  # runc, not crun: crun refuses cgroup v1 hybrid hosts. busybox-static: the sandbox and base images.
  # postgresql-15 (the test harness installs it too), mariadb-*-core: the database images.
  apt_install containerd runc containernetworking-plugins iptables iproute2 busybox-static dnsmasq-base \
    postgresql-15 postgresql-client-15 mariadb-server-core mariadb-client-core
  need_build=()
  for b in "${node_bins[@]}"; do [ -x "$NODE_BIN_DIR/$b" ] || need_build+=("$b"); done
  [ ${#need_build[@]} -eq 0 ] || build_kubernetes "$NODE_BIN_DIR" "${node_bins[@]}"
fi
drop_build_tree

for b in "$etcd_bin" "$apiserver" "$kcm" "$kubectl_bin"; do
  [ -x "$b" ] || { log "missing binary: $b"; exit 1; }
done
echo "ETCD=$etcd_bin"
echo "KUBE_APISERVER=$apiserver"
echo "KUBE_CONTROLLER_MANAGER=$kcm"
echo "KUBECTL=$kubectl_bin"
if [ "$WANT_NODE" != 0 ]; then
  for b in "${node_bins[@]}"; do [ -x "$NODE_BIN_DIR/$b" ] || { log "missing binary: $NODE_BIN_DIR/$b"; exit 1; }; done
  echo "KUBELET=$NODE_BIN_DIR/kubelet"
  echo "KUBE_SCHEDULER=$NODE_BIN_DIR/kube-scheduler"
  echo "KUBE_PROXY=$NODE_BIN_DIR/kube-proxy"
  echo "CONTAINERD=$(command -v containerd)"
  echo "CTR=$(command -v ctr)"
  echo "RUNC=$(command -v runc)"
  echo "CNI_BIN_DIR=/usr/lib/cni"
  echo "BUSYBOX=/bin/busybox"
fi
