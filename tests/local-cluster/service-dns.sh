#!/usr/bin/env bash
# Keeps the cluster DNS's hosts file in step with the Services: one line per Service with a cluster IP,
# `<ip> <name>.<namespace>.svc.cluster.local <name>.<namespace>.svc`. dnsmasq (--hostsdir) re-reads
# the file when it changes. One watch stream; each event (and each restart of the watch) re-lists, and
# the file is replaced atomically, only when its content changed.
#   service-dns.sh KUBECTL KUBECONFIG HOSTS_FILE
set -uo pipefail
kubectl="$1" kubeconfig="$2" out="$3"
tmp="${out%/*}.tmp"
template='{range .items[*]}{.spec.clusterIP} {.metadata.name}.{.metadata.namespace}.svc.cluster.local {.metadata.name}.{.metadata.namespace}.svc{"\n"}{end}'
relist() {
  local lines new
  lines=$("$kubectl" --kubeconfig "$kubeconfig" get services --all-namespaces -o jsonpath="$template" 2>/dev/null) || return 0
  new=$(grep -E '^[0-9]' <<<"$lines" | sort || true)
  if [ "$new" != "$(cat "$out" 2>/dev/null)" ]; then
    printf '%s\n' "$new" >"$tmp"
    mv "$tmp" "$out"
  fi
}
while :; do
  relist
  "$kubectl" --kubeconfig "$kubeconfig" get services --all-namespaces --watch-only -o name 2>/dev/null \
    | while read -r _; do relist; done
  sleep 1
done
