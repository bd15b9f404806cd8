#!/usr/bin/env bash
# Assembles a one-layer OCI image archive from a root filesystem directory, offline: no builder daemon
# and no image registry (none outside this machine is reachable). The layer is an uncompressed,
# reproducible tar (sorted names, mtime 0, numeric owners as they are in the directory), so the same
# directory always gives the same digests. The archive is what `ctr images import` loads.
#
#   oci-image.sh --rootfs DIR --name REF --out FILE [--user UID:GID] [--entrypoint JSON] [--cmd JSON]
#                [--env JSON] [--workdir DIR]
# REF is the full reference containerd records (e.g. mro.local/model-sync:dev); JSON values are JSON
# arrays (e.g. '["/model-sync"]'). Prints the manifest digest.
set -euo pipefail

rootfs="" name="" out="" user="" entrypoint="null" cmd="null" env='["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]' workdir="/"
while [ $# -gt 0 ]; do
  case "$1" in
    --rootfs) rootfs="$2"; shift 2 ;;
    --name) name="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --user) user="$2"; shift 2 ;;
    --entrypoint) entrypoint="$2"; shift 2 ;;
    --cmd) cmd="$2"; shift 2 ;;
    --env) env="$2"; shift 2 ;;
    --workdir) workdir="$2"; shift 2 ;;
    *) echo "oci-image.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -d "$rootfs" ] || { echo "oci-image.sh: --rootfs must be a directory (got '$rootfs')" >&2; exit 2; }
[ -n "$name" ] || { echo "oci-image.sh: --name is required" >&2; exit 2; }
[ -n "$out" ] || { echo "oci-image.sh: --out is required" >&2; exit 2; }
case "$name" in *:*) ;; *) echo "oci-image.sh: --name must carry a tag (got '$name')" >&2; exit 2 ;; esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/blobs/sha256"

put_blob() { # file -> prints digest hex, moves the file into blobs/
  local d; d=$(sha256sum "$1" | cut -d' ' -f1)
  mv "$1" "$work/blobs/sha256/$d"
  echo "$d"
}
size_of() { stat -c %s "$work/blobs/sha256/$1"; }

tar --sort=name --mtime=@0 --numeric-owner --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$rootfs" -cf "$work/layer.tar" .
layer=$(put_blob "$work/layer.tar")

printf '{"architecture":"amd64","os":"linux","config":{"User":"%s","Env":%s,"Entrypoint":%s,"Cmd":%s,"WorkingDir":"%s"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"tests/local-cluster/oci-image.sh"}]}' \
  "$user" "$env" "$entrypoint" "$cmd" "$workdir" "$layer" >"$work/config.json"
config=$(put_blob "$work/config.json")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
  "$config" "$(size_of "$config")" "$layer" "$(size_of "$layer")" >"$work/manifest.json"
manifest=$(put_blob "$work/manifest.json")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
  "$manifest" "$(size_of "$manifest")" "$name" "${name##*:}" >"$work/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci-layout"

mkdir -p "$(dirname "$out")"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" -cf "$out.tmp" oci-layout index.json blobs
mv "$out.tmp" "$out"
echo "sha256:$manifest"
