#!/usr/bin/env bash
# A real, local Kubernetes control plane: etcd + kube-apiserver (RBAC, service-account signing,
# static tokens) + kube-controller-manager (garbage collector, job, deployment, replicaset, endpoints,
# namespace and service-account controllers). No cloud or node controllers.
# With --node, also kube-scheduler and a real node (node.sh: kubelet + containerd + runc, kube-proxy,
# cluster DNS, in a network namespace of its own); the apiserver then authorizes the kubelet with the
# Node authorizer and NodeRestriction, and advertises the host end of the node's veth (where pods reach
# it). Without --node there is no kubelet; tests that need pods to run use the test node agent.
#
#   cluster.sh start [--dir DIR] [--owner-pid PID] [--node]   start (prints `export KUBECONFIG=...`)
#   cluster.sh stop  [--dir DIR]                     stop everything started in DIR
#   cluster.sh status [--dir DIR]
#
# DIR defaults to $MRO_CLUSTER_DIR or ~/.cache/model-registry-operator/local-cluster. It receives:
#   admin.kubeconfig         cluster-admin (group system:masters)
#   operator.kubeconfig      system:serviceaccount:model-registry-operator-system:model-registry-operator-controller-manager
#   unprivileged.kubeconfig  user "unprivileged" with no bindings (authorization tests)
#   ports.env, logs/, pids/
# With --owner-pid, a watchdog stops the cluster when that process exits (used by the test harness).
# Binaries: see provision.sh (ETCD, KUBE_APISERVER, KUBE_CONTROLLER_MANAGER, KUBECTL, KUBEBUILDER_ASSETS).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${MRO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/model-registry-operator}"
cmd="${1:-}"; shift || true
dir="${MRO_CLUSTER_DIR:-$cache_root/local-cluster}"
owner_pid=""
with_node=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --owner-pid) owner_pid="$2"; shift 2 ;;
    --node) with_node=1; shift ;;
    *) echo "cluster.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

OPERATOR_NAMESPACE=model-registry-operator-system
OPERATOR_SA=model-registry-operator-controller-manager

log() { echo "local-cluster: $*" >&2; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 40000 ))
    if port_free "$p"; then echo "$p"; return; fi
  done
  log "no free port found"; exit 1
}

stop_cluster() {
  [ -d "$dir/pids" ] || return 0
  local stopped=""
  if [ -f "$dir/node.env" ]; then bash "$here/node.sh" stop --dir "$dir" && stopped=1; fi
  for name in kube-scheduler kube-controller-manager kube-apiserver etcd watchdog; do
    local f="$dir/pids/$name"
    [ -f "$f" ] || continue
    local pid; pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      stopped=1
    fi
    rm -f "$f"
  done
  # etcd data lives in memory-backed storage when available; drop it with the cluster.
  if [ -f "$dir/etcd-data-dir" ]; then rm -rf "$(cat "$dir/etcd-data-dir")"; rm -f "$dir/etcd-data-dir"; fi
  [ -n "$stopped" ] && log "stopped ($dir)"
  return 0
}

write_kubeconfig() { # file user token
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:${APISERVER_PORT}
    certificate-authority: ${dir}/pki/ca.crt
users:
- name: $2
  user:
    token: $3
contexts:
- name: local
  context: {cluster: local, user: $2}
current-context: local
KC
  chmod 600 "$1"
}

start_cluster() {
  if [ -f "$dir/pids/kube-apiserver" ] && kill -0 "$(cat "$dir/pids/kube-apiserver")" 2>/dev/null; then
    log "already running in $dir"
    echo "export KUBECONFIG=$dir/admin.kubeconfig"
    return 0
  fi
  # One provisioning at a time across concurrent callers (it may build binaries).
  mkdir -p "$cache_root"
  # The node's binaries only when the node is wanted (a control plane alone never builds the kubelet).
  local want_node=0; [ -n "$with_node" ] && want_node=1
  eval "$(MRO_NODE=$want_node flock "$cache_root/.provision.lock" "$here/provision.sh")"

  mkdir -p "$dir/pki" "$dir/logs" "$dir/pids"
  stop_cluster
  local started; started=$(date +%s)

  ETCD_PORT=$(free_port); ETCD_PEER_PORT=$(free_port); APISERVER_PORT=$(free_port)
  cat >"$dir/ports.env" <<P
ETCD_PORT=$ETCD_PORT
APISERVER_PORT=$APISERVER_PORT
P
  local advertise=127.0.0.1 extra_san="" node_flags=() authz=RBAC
  if [ -n "$with_node" ]; then
    bash "$here/node.sh" plan --dir "$dir"
    # shellcheck disable=SC1091
    . "$dir/node.env"
    advertise="$HOST_IP"; extra_san=",IP:$HOST_IP"; authz=Node,RBAC
  fi

  # PKI: a CA, the apiserver's serving certificate and the service-account signing key.
  local pki="$dir/pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=mro-local-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1%s,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' "$extra_san" >"$pki/apiserver.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

  # Static tokens: admin, controller-manager, the operator's ServiceAccount identity, an unprivileged user.
  local t_admin t_kcm t_op t_unpriv
  t_admin=$(openssl rand -hex 24); t_kcm=$(openssl rand -hex 24)
  t_op=$(openssl rand -hex 24); t_unpriv=$(openssl rand -hex 24)
  cat >"$pki/tokens.csv" <<T
$t_admin,admin,admin-uid,"system:masters"
$t_kcm,system:kube-controller-manager,kcm-uid,"system:masters"
$t_op,system:serviceaccount:${OPERATOR_NAMESPACE}:${OPERATOR_SA},operator-uid,"system:serviceaccounts,system:serviceaccounts:${OPERATOR_NAMESPACE},system:authenticated"
$t_unpriv,unprivileged,unprivileged-uid,"system:authenticated"
T
  if [ -n "$with_node" ]; then
    # The node's identities (default bindings: Node authorizer, system:node-proxier,
    # system:kube-scheduler) and the apiserver's client certificate for the kubelet API.
    local t_node t_proxy t_sched
    t_node=$(openssl rand -hex 24); t_proxy=$(openssl rand -hex 24); t_sched=$(openssl rand -hex 24)
    printf '%s,system:node:%s,node-uid,"system:nodes"\n%s,system:kube-proxy,kube-proxy-uid\n%s,system:kube-scheduler,kube-scheduler-uid\n' \
      "$t_node" "$NODE_NAME" "$t_proxy" "$t_sched" >>"$pki/tokens.csv"
    echo "$t_node" >"$pki/node-token"; echo "$t_proxy" >"$pki/proxy-token"
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
      -keyout "$pki/kubelet-client.key" -out "$pki/kubelet-client.csr" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >"$pki/kubelet-client.ext"
    openssl x509 -req -in "$pki/kubelet-client.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -days 30 -extfile "$pki/kubelet-client.ext" -out "$pki/kubelet-client.crt" 2>/dev/null
    chmod 600 "$pki/node-token" "$pki/proxy-token" "$pki/kubelet-client.key"
    node_flags=(--enable-admission-plugins NodeRestriction --kubelet-preferred-address-types InternalIP
      --kubelet-client-certificate "$pki/kubelet-client.crt" --kubelet-client-key "$pki/kubelet-client.key")
  fi
  chmod 600 "$pki"/*.key "$pki/tokens.csv"

  # etcd on memory-backed storage when there is some: tests are about the API, not durability.
  local data
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then data=$(mktemp -d /dev/shm/mro-etcd.XXXXXX); else data="$dir/etcd"; mkdir -p "$data"; fi
  echo "$data" >"$dir/etcd-data-dir"
  setsid "$ETCD" --name local --data-dir "$data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn \
    >"$dir/logs/etcd.log" 2>&1 </dev/null &
  echo $! >"$dir/pids/etcd"

  setsid "$KUBE_APISERVER" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address "$advertise" --secure-port "$APISERVER_PORT" --insecure-port 0 \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" \
    --authorization-mode "$authz" "${node_flags[@]}" \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true \
    --cert-dir "$pki" --v 1 \
    >"$dir/logs/kube-apiserver.log" 2>&1 </dev/null &
  echo $! >"$dir/pids/kube-apiserver"

  write_kubeconfig "$dir/admin.kubeconfig" admin "$t_admin"
  write_kubeconfig "$dir/kube-controller-manager.kubeconfig" kube-controller-manager "$t_kcm"
  write_kubeconfig "$dir/operator.kubeconfig" "$OPERATOR_SA" "$t_op"
  write_kubeconfig "$dir/unprivileged.kubeconfig" unprivileged "$t_unpriv"
  [ -n "$with_node" ] && write_kubeconfig "$dir/kube-scheduler.kubeconfig" kube-scheduler "$t_sched"

  local ready=""
  # Up to 180 s: a loaded 2-core machine (parallel builds, other control planes) can be slow.
  for _ in $(seq 1 1800); do
    if "$KUBECTL" --kubeconfig "$dir/admin.kubeconfig" get --raw /readyz >/dev/null 2>&1; then ready=1; break; fi
    if ! kill -0 "$(cat "$dir/pids/kube-apiserver")" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if [ -z "$ready" ]; then
    log "kube-apiserver did not become ready; last log lines:"; tail -n 30 "$dir/logs/kube-apiserver.log" >&2
    stop_cluster; exit 1
  fi

  # With a node: the node lifecycle controller lifts the kubelet's not-ready taint once it is Ready,
  # Endpoints written by hand (Services without selector) are mirrored to the EndpointSlices kube-proxy reads,
  # and claims are bound to the PersistentVolumes made for them (the kubelet mounts only bound claims).
  local kcm_extra=""; [ -n "$with_node" ] && kcm_extra=",nodelifecycle,endpointslicemirroring,persistentvolume-binder"
  setsid "$KUBE_CONTROLLER_MANAGER" \
    --kubeconfig "$dir/kube-controller-manager.kubeconfig" \
    --controllers "garbagecollector,job,deployment,replicaset,endpoint,endpointslice,namespace,serviceaccount,serviceaccount-token$kcm_extra" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --leader-elect=false --port 0 --secure-port 0 --v 1 \
    >"$dir/logs/kube-controller-manager.log" 2>&1 </dev/null &
  echo $! >"$dir/pids/kube-controller-manager"

  if [ -n "$with_node" ]; then
    setsid "$KUBE_SCHEDULER" --kubeconfig "$dir/kube-scheduler.kubeconfig" --leader-elect=false \
      --port 0 --secure-port 0 --v 1 >"$dir/logs/kube-scheduler.log" 2>&1 </dev/null &
    echo $! >"$dir/pids/kube-scheduler"
  fi

  # The operator's namespace and ServiceAccount exist as they would after `make deploy`.
  "$KUBECTL" --kubeconfig "$dir/admin.kubeconfig" create namespace "$OPERATOR_NAMESPACE" >/dev/null 2>&1 || true

  if [ -n "$owner_pid" ]; then
    setsid bash -c "while kill -0 $owner_pid 2>/dev/null; do sleep 1; done; exec '$here/cluster.sh' stop --dir '$dir'" \
      >/dev/null 2>&1 </dev/null &
    echo $! >"$dir/pids/watchdog"
  fi
  if [ -n "$with_node" ] && ! bash "$here/node.sh" start --dir "$dir"; then
    log "the node did not start (logs in $dir/node/logs); stopping the control plane"
    stop_cluster; exit 1
  fi
  log "ready in $(( $(date +%s) - started ))s: apiserver https://127.0.0.1:$APISERVER_PORT ($KUBE_APISERVER)"
  echo "export KUBECONFIG=$dir/admin.kubeconfig"
}

case "$cmd" in
  start) start_cluster ;;
  stop) stop_cluster ;;
  status)
    if [ -f "$dir/pids/kube-apiserver" ] && kill -0 "$(cat "$dir/pids/kube-apiserver")" 2>/dev/null; then
      echo "running: export KUBECONFIG=$dir/admin.kubeconfig"
    else echo "not running"; exit 1; fi ;;
  *) echo "usage: cluster.sh start|stop|status [--dir DIR] [--owner-pid PID]" >&2; exit 2 ;;
esac
