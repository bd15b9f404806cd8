#!/usr/bin/env bash
# A real Kubernetes node for the local control plane of cluster.sh: kubelet + containerd + runc, with
# kube-proxy (iptables mode) and a small cluster DNS, all inside a network namespace of its own.
#
#   node.sh plan  --dir DIR   reserve a slot (addresses, names) and write DIR/node.env
#   node.sh start --dir DIR   start the node of the control plane in DIR (after `plan` and the apiserver)
#   node.sh stop  --dir DIR   stop it: pods, containerd, kubelet, namespace, host rule, cgroups
#
# Why a network namespace: the kubelet refuses a loopback node address (logs, exec and probes need a
# routable one), and pods must never reach a network outside this machine. The namespace `mro-node-K`
# gets one veth pair to the host (host side 10.213.K.1/30, node side 10.213.K.2/30) and no default
# route; pods sit on a bridge in it (10.214.K.0/24, no masquerade). Nothing in the namespace can route
# anywhere but the host end of the veth and its own pods.
# Test servers listen on the host's 127.0.0.1: a host rule scoped to the veth lets pods reach them at
# 10.213.K.1:<same port> (DNAT to 127.0.0.1 with route_localnet on that interface only), and a second
# one (OUTPUT, destination 10.213.K.1 only) gives host processes the same view. The kubelet,
# kube-proxy and pods reach the apiserver the same way.
# Cluster DNS: CoreDNS is not packaged for Debian 12, so dnsmasq (dnsmasq-base) serves
# <svc>.<ns>.svc.cluster.local from a hosts file that a watcher rewrites from the Services every
# second; it forwards nothing (no upstream servers).
# Processes enter only the network namespace (nsenter --net), never a mount namespace of their own:
# the kubelet's Secret/ConfigMap tmpfs mounts must be visible to containerd.
# K (1..250) is the first slot not held by a live control plane (lock in /run/mro-node).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cmd="${1:-}"; shift || true
dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    *) echo "node.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$dir" ] || { echo "node.sh: --dir is required" >&2; exit 2; }

NODE_NAME=mro-node
RUN_ROOT=/run/mro-node
log() { echo "local-node: $*" >&2; }
die() { log "$*"; exit 1; }

plan_node() {
  [ "$(id -u)" = 0 ] || die "a real node needs root (network namespaces, cgroups, containerd); run without it: MRO_NODE=0"
  mkdir -p "$RUN_ROOT"
  exec 9>"$RUN_ROOT/.lock"
  flock 9
  local k=""
  for i in $(seq 1 250); do
    local slot="$RUN_ROOT/$i"
    if [ -d "$slot" ]; then
      local owner; owner=$(cat "$slot/owner" 2>/dev/null || true)
      # A slot whose control plane is gone is stale: clean it and take it.
      if [ -n "$owner" ] && [ -f "$owner/pids/kube-apiserver" ] && kill -0 "$(cat "$owner/pids/kube-apiserver")" 2>/dev/null; then
        continue
      fi
      if [ -n "$owner" ] && [ "$owner" != "$dir" ] && [ -f "$owner/node.env" ]; then
        log "cleaning stale slot $i (control plane in $owner is gone)"
        dir="$owner" stop_node || true
      fi
      # Mounts a killed node left behind (sandbox shm, volumes) would make the removal fail.
      awk -v d="$slot/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
      done
      rm -rf "$slot"
    fi
    if ip -4 addr show | grep -qE "inet 10\.21[34]\.$i\." || ip netns list | grep -qw "mro-node-$i"; then continue; fi
    mkdir -p "$slot"; echo "$dir" >"$slot/owner"; k=$i; break
  done
  [ -n "$k" ] || die "no free node slot in $RUN_ROOT"
  cat >"$dir/node.env" <<E
NODE_SLOT=$k
NODE_NAME=$NODE_NAME
NETNS=mro-node-$k
HOST_VETH=mron${k}h
NODE_VETH=mron${k}n
HOST_IP=10.213.$k.1
NODE_IP=10.213.$k.2
POD_CIDR=10.214.$k.0/24
POD_GATEWAY=10.214.$k.1
CLUSTER_DNS=10.213.$k.2
CGROUP_ROOT=/mro-node-$k
RUN_DIR=$RUN_ROOT/$k
E
}

# Every cgroup v1 hierarchy (and the unified one, when mounted) gets the node's root, so that several
# nodes on one machine never share /kubepods.
cgroup_dirs() { for h in /sys/fs/cgroup/*/; do [ -d "$h" ] && echo "${h%/}$CGROUP_ROOT"; done; }

wait_for() { # seconds description command...
  local secs="$1" what="$2"; shift 2
  for _ in $(seq 1 $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

start_node() {
  [ -f "$dir/node.env" ] || die "no $dir/node.env: run \`node.sh plan\` before the apiserver starts"
  # shellcheck disable=SC1091
  . "$dir/node.env"; . "$dir/ports.env"
  eval "$(flock "${MRO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/model-registry-operator}/.provision.lock" "$here/provision.sh")"
  [ -n "${KUBELET:-}" ] || die "provision.sh gave no node binaries (MRO_NODE=0 in the environment?)"
  local nd="$dir/node"; mkdir -p "$nd"/{cni,cni-ipam,kubelet,containerd,dns,logs} "$RUN_DIR" "$dir/pids"
  local in_ns=(nsenter "--net=/run/netns/$NETNS")

  # Network: namespace, veth pair, no default route, the host rule for loopback test servers.
  ip netns add "$NETNS"
  ip link add "$HOST_VETH" type veth peer name "$NODE_VETH"
  ip link set "$NODE_VETH" netns "$NETNS"
  ip addr add "$HOST_IP/30" dev "$HOST_VETH"
  ip link set "$HOST_VETH" up
  sysctl -qw "net.ipv4.conf.$HOST_VETH.route_localnet=1"
  host_rules -A
  "${in_ns[@]}" ip link set lo up
  "${in_ns[@]}" ip addr add "$NODE_IP/30" dev "$NODE_VETH"
  "${in_ns[@]}" ip link set "$NODE_VETH" up
  # Replies to pods go back through the veth (without this route they would follow the host's default).
  ip route add "$POD_CIDR" via "$NODE_IP" dev "$HOST_VETH"
  "${in_ns[@]}" sysctl -qw net.ipv4.ip_forward=1
  "${in_ns[@]}" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null \
    || log "warning: bridge-nf-call-iptables unavailable; Service traffic between pods on the bridge may fail"

  # Pod network: a bridge and host-local addresses; no masquerade, no route but the bridge's.
  cat >"$nd/cni/10-mro-pods.conflist" <<C
{"cniVersion":"0.4.0","name":"mro-pods","plugins":[{"type":"bridge","bridge":"mro0","isGateway":true,"ipMasq":false,"hairpinMode":true,"ipam":{"type":"host-local","dataDir":"$nd/cni-ipam","ranges":[[{"subnet":"$POD_CIDR","gateway":"$POD_GATEWAY"}]],"routes":[{"dst":"0.0.0.0/0"}]}}]}
C

  # containerd: state, sockets and runc's root of its own; CRI with restrict_oom_score_adj (this
  # machine's root lacks CAP_SYS_RESOURCE, so negative oom_score_adj writes are refused).
  cat >"$nd/containerd/config.toml" <<T
version = 2
root = "$nd/containerd/root"
state = "$RUN_DIR/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$RUN_DIR/containerd.sock"
[ttrpc]
  address = "$RUN_DIR/containerd-ttrpc.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$nd/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "mro.local/pause:1"
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$RUNC"
        Root = "$RUN_DIR/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$nd/cni"
T
  setsid "${in_ns[@]}" "$CONTAINERD" --config "$nd/containerd/config.toml" >"$nd/logs/containerd.log" 2>&1 </dev/null &
  echo $! >"$dir/pids/containerd"
  wait_for 30 containerd "$CTR" --address "$RUN_DIR/containerd.sock" version \
    || { tail -n 20 "$nd/logs/containerd.log" >&2; die "containerd did not start"; }

  # The sandbox image, built here from the static busybox: no image can be pulled.
  local pause_root="$nd/pause-rootfs"
  rm -rf "$pause_root"; mkdir -p "$pause_root/bin"
  cp "$BUSYBOX" "$pause_root/bin/busybox"
  ln -s busybox "$pause_root/bin/sh"; ln -s busybox "$pause_root/bin/sleep"
  bash "$here/oci-image.sh" --rootfs "$pause_root" --name mro.local/pause:1 --out "$nd/pause.tar" \
    --entrypoint '["/bin/sh","-c","trap \"exit 0\" TERM INT; while :; do sleep 3600 & wait $!; done"]' >/dev/null
  "$CTR" --address "$RUN_DIR/containerd.sock" -n k8s.io images import "$nd/pause.tar" >/dev/null

  # Identities (tokens cluster.sh put in the apiserver's token file): the node (Node authorizer),
  # kube-proxy (the default system:node-proxier binding).
  local pki="$dir/pki"
  local server="https://$HOST_IP:$APISERVER_PORT"
  node_kubeconfig "$dir/kubelet.kubeconfig" "$server" "$(cat "$pki/node-token")"
  node_kubeconfig "$dir/kube-proxy.kubeconfig" "$server" "$(cat "$pki/proxy-token")"

  for c in $(cgroup_dirs); do mkdir -p "$c"; done
  : >"$nd/resolv.conf"   # pods get only the cluster DNS; the host's resolvers are never handed out
  cat >"$nd/kubelet.yaml" <<K
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
failSwapOn: false
resolvConf: $nd/resolv.conf
clusterDNS: [$CLUSTER_DNS]
clusterDomain: cluster.local
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
syncFrequency: 10s
fileCheckFrequency: 5s
K
  setsid "${in_ns[@]}" "$KUBELET" --config "$nd/kubelet.yaml" --kubeconfig "$dir/kubelet.kubeconfig" \
    --container-runtime remote --container-runtime-endpoint "unix://$RUN_DIR/containerd.sock" \
    --pod-infra-container-image mro.local/pause:1 --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
    --root-dir "$nd/kubelet" --cert-dir "$nd/kubelet/pki" --v 1 \
    >"$nd/logs/kubelet.log" 2>&1 </dev/null &
  echo $! >"$dir/pids/kubelet"

  setsid "${in_ns[@]}" "$KUBE_PROXY" --kubeconfig "$dir/kube-proxy.kubeconfig" --proxy-mode iptables \
    --cluster-cidr "$POD_CIDR" --hostname-override "$NODE_NAME" --bind-address "$NODE_IP" \
    --conntrack-max-per-core 0 --conntrack-tcp-timeout-established 0 --conntrack-tcp-timeout-close-wait 0 \
    --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address 127.0.0.1:10256 --v 1 \
    >"$nd/logs/kube-proxy.log" 2>&1 </dev/null &
  echo $! >"$dir/pids/kube-proxy"

  # Cluster DNS: answers *.cluster.local from the watcher's hosts file; no upstream servers at all.
  setsid "${in_ns[@]}" dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll --bind-interfaces \
    --listen-address "$CLUSTER_DNS" --port 53 --hostsdir "$nd/dns" --local /cluster.local/ \
    --domain-needed --bogus-priv --pid-file="$nd/dnsmasq.pid" --user=root --log-facility=- \
    >"$nd/logs/dnsmasq.log" 2>&1 </dev/null &
  echo $! >"$dir/pids/dnsmasq"
  setsid bash "$here/service-dns.sh" "$KUBECTL" "$dir/admin.kubeconfig" "$nd/dns/services" \
    >"$nd/logs/service-dns.log" 2>&1 </dev/null &
  echo $! >"$dir/pids/service-dns"

  local kc=("$KUBECTL" --kubeconfig "$dir/admin.kubeconfig")
  if ! wait_for 180 "node Ready" bash -c "'${KUBECTL}' --kubeconfig '$dir/admin.kubeconfig' get node $NODE_NAME -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"; then
    log "node $NODE_NAME did not become Ready; last kubelet log lines:"
    tail -n 40 "$nd/logs/kubelet.log" >&2
    "${kc[@]}" get node -o wide >&2 || true
    exit 1
  fi
  log "node $NODE_NAME Ready (namespace $NETNS, node IP $NODE_IP, pods $POD_CIDR, host servers at $HOST_IP)"
}

# The host's two rules (-A adds, -D removes): TCP to $HOST_IP goes to the same port on 127.0.0.1,
# whether it comes from the node's namespace (through the veth) or from a host process (a test's
# operator checking the URL it gave a pod), so one address means the same server on both sides.
host_rules() {
  iptables -t nat "$1" PREROUTING -i "$HOST_VETH" -d "$HOST_IP" -p tcp -j DNAT --to-destination 127.0.0.1 \
    -m comment --comment "mro-node-$NODE_SLOT: pods reach host loopback test servers"
  iptables -t nat "$1" OUTPUT -d "$HOST_IP" -p tcp -j DNAT --to-destination 127.0.0.1 \
    -m comment --comment "mro-node-$NODE_SLOT: host processes reach them at the same address"
}

node_kubeconfig() { # file server token
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "$2", certificate-authority: "$dir/pki/ca.crt"}
users:
- name: node
  user: {token: "$3"}
contexts:
- name: local
  context: {cluster: local, user: node}
current-context: local
KC
  chmod 600 "$1"
}

kill_pid_file() { # file
  local f="$1"; [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

stop_node() {
  [ -f "$dir/node.env" ] || return 0
  # shellcheck disable=SC1091
  . "$dir/node.env"
  local nd="$dir/node"
  for p in service-dns dnsmasq kube-proxy kubelet; do kill_pid_file "$dir/pids/$p"; done
  # Containers: killed through containerd while it runs, then every shim it started (their pid files).
  local sock="$RUN_DIR/containerd.sock" ctr_bin; ctr_bin=$(command -v ctr || true)
  if [ -S "$sock" ] && [ -n "$ctr_bin" ]; then
    for t in $("$ctr_bin" --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      "$ctr_bin" --address "$sock" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
    done
    sleep 0.5
    for t in $("$ctr_bin" --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      "$ctr_bin" --address "$sock" -n k8s.io tasks delete -f "$t" >/dev/null 2>&1 || true
    done
  fi
  for f in "$RUN_DIR"/containerd/io.containerd.runtime.v2.task/*/*/shim.pid; do
    [ -f "$f" ] && kill_pid_file "$f"
  done
  kill_pid_file "$dir/pids/containerd"
  # Pod logs the kubelet wrote under /var/log/pods (a fixed path in 1.20): those of this node's pods.
  for p in "$nd"/kubelet/pods/*/; do
    [ -d "$p" ] || continue
    rm -rf /var/log/pods/*_"$(basename "$p")"
  done
  find /var/log/containers -xtype l -delete 2>/dev/null || true
  # Mounts left under the node's directories (volumes, overlay snapshots, the sandbox netns).
  for d in "$nd" "$RUN_DIR"; do
    [ -d "$d" ] || continue
    awk -v d="$d/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
  done
  host_rules -D 2>/dev/null || true
  # Sandbox namespaces of pods still running at the stop (containerd never tore them down): the
  # ones whose eth0 holds an address of this node's pod range. Looked at before the node's own
  # namespace goes, since that takes the pods' veth pairs (and their addresses) with it.
  local n
  for n in $(ip netns list | awk '/^cni-/ { print $1 }'); do
    if ip -n "$n" -4 -o addr show 2>/dev/null | grep -qF "inet ${POD_CIDR%0/24}"; then
      ip netns delete "$n" 2>/dev/null || true
    fi
  done
  ip netns delete "$NETNS" 2>/dev/null || true
  ip link delete "$HOST_VETH" 2>/dev/null || true
  for c in $(cgroup_dirs); do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  # Keep the logs; drop the bulk (images, containerd content, pod directories).
  rm -rf "$RUN_DIR" "$nd/containerd/root" "$nd/kubelet" "$nd/pause-rootfs" "$nd/pause.tar" "$dir/images" 2>/dev/null || true
  rm -f "$dir/node.env"
}

case "$cmd" in
  plan) plan_node ;;
  start) start_node ;;
  stop) stop_node ;;
  *) echo "usage: node.sh plan|start|stop --dir DIR" >&2; exit 2 ;;
esac
