#!/usr/bin/env bash
# Builds the real cluster components the control-plane tests run against, when they are missing: kube-apiserver,
# kube-controller-manager and kubectl (k8s.io/kubernetes), etcd ≥ 3.5 and etcdctl (go.etcd.io/etcd), and flanneld
# (github.com/flannel-io/flannel), all from their Go modules. Test infrastructure only: weft itself is not Go.
#
# The binaries are cached outside the clone, keyed by version, in $WEFT_TOOLS_CACHE (default /var/cache/weft-tools), so
# only the first run on a machine pays for the build (some minutes cold on 2 cores). Sourced by scripts/test.sh; can also
# be run on its own: `bash scripts/ensure-cluster-tools.sh`.
set -euo pipefail

WEFT_K8S_VERSION=${WEFT_K8S_VERSION:-v1.37.2}
WEFT_ETCD_VERSION=${WEFT_ETCD_VERSION:-v3.6.8}
WEFT_FLANNEL_VERSION=${WEFT_FLANNEL_VERSION:-v0.28.10}
WEFT_TOOLS_CACHE=${WEFT_TOOLS_CACHE:-/var/cache/weft-tools}

# A wrapper module whose go.mod requires $module@$version and carries $replaces (replace directives only act in the main
# module, so upstream's own replaces must be restated here); `go build` of each package into $out.
_weft_go_build() {
  local out=$1 module=$2 version=$3 replaces=$4; shift 4
  local work
  work=$(mktemp -d)
  mkdir -p "$out.tmp"
  (
    cd "$work"
    printf 'module weft.local/tools\n\ngo 1.26\n\nrequire %s %s\n\n%s\n' "$module" "$version" "$replaces" >go.mod
    printf 'package tools\n\nimport (\n' >tools.go
    for pkg in "$@"; do printf '\t_ "%s"\n' "$pkg" >>tools.go; done
    printf ')\n' >>tools.go
    sed -i '1i //go:build tools' tools.go
    GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
    for pkg in "$@"; do
      GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out.tmp/" "$pkg"
    done
  )
  rm -rf "$work"
  rm -rf "$out" && mv "$out.tmp" "$out"
}

# flanneld's main package links every cloud backend; the Tencent VPC SDK it pins is not served by the module proxy, so the
# build works on a copy of the module without that one backend (weft's tests use only the vxlan backend).
# Its UDP backend is cgo, so this build keeps cgo on.
_weft_build_flanneld() {
  local out=$1 src work
  src=$(cd / && go mod download -json "github.com/flannel-io/flannel@$WEFT_FLANNEL_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  work=$(mktemp -d)
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  mkdir -p "$out.tmp"
  (
    cd "$work"
    sed -i '/pkg\/backend\/tencentvpc"/d' main.go
    GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1
    GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" -o "$out.tmp/flanneld" .
  )
  rm -rf "$work"
  rm -rf "$out" && mv "$out.tmp" "$out"
}

_weft_k8s_replaces() {
  local dir minor
  dir=$(cd / && go mod download -json "k8s.io/kubernetes@$WEFT_K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  minor=${WEFT_K8S_VERSION#v1.}
  printf 'replace (\n'
  sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 v0.'"$minor"'#p' "$dir/go.mod"
  printf ')\n'
}

ensure_cluster_tools() {
  if ! command -v go >/dev/null 2>&1; then
    echo "weft: Go is not installed: the control-plane tests (kube-apiserver, etcd, flanneld) will be skipped" >&2
    return 0
  fi
  mkdir -p "$WEFT_TOOLS_CACHE"
  local k8s="$WEFT_TOOLS_CACHE/kubernetes-$WEFT_K8S_VERSION"
  if [ ! -x "$k8s/kube-apiserver" ] || [ ! -x "$k8s/kube-controller-manager" ] || [ ! -x "$k8s/kubectl" ]; then
    echo "weft: building kube-apiserver, kube-controller-manager and kubectl $WEFT_K8S_VERSION from k8s.io/kubernetes for the kube registry tests (cached in $k8s; some minutes the first time)"
    _weft_go_build "$k8s" k8s.io/kubernetes "$WEFT_K8S_VERSION" "$(_weft_k8s_replaces)" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl
  fi
  local etcd="$WEFT_TOOLS_CACHE/etcd-$WEFT_ETCD_VERSION"
  if [ ! -x "$etcd/etcd" ] || [ ! -x "$etcd/etcdctl" ]; then
    echo "weft: building etcd and etcdctl $WEFT_ETCD_VERSION from go.etcd.io/etcd (kube-apiserver needs etcd >= 3.5; cached in $etcd)"
    _weft_go_build "$etcd" go.etcd.io/etcd/server/v3 "$WEFT_ETCD_VERSION" \
      "require go.etcd.io/etcd/etcdctl/v3 $WEFT_ETCD_VERSION" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3
    mv "$etcd/v3" "$etcd/etcd" 2>/dev/null || mv "$etcd/server" "$etcd/etcd"
  fi
  local flannel="$WEFT_TOOLS_CACHE/flannel-$WEFT_FLANNEL_VERSION"
  if [ ! -x "$flannel/flanneld" ]; then
    echo "weft: building flanneld $WEFT_FLANNEL_VERSION from github.com/flannel-io/flannel to run as a real peer in the mixed-cluster tests (cached in $flannel)"
    _weft_build_flanneld "$flannel"
  fi
  export WEFT_K8S_BIN="$k8s" WEFT_ETCD_BIN="$etcd" WEFT_FLANNEL_BIN="$flannel"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  ensure_cluster_tools
  echo "kubernetes: $WEFT_K8S_BIN  etcd: $WEFT_ETCD_BIN  flannel: $WEFT_FLANNEL_BIN"
fi
