#!/usr/bin/env bash
# `npm test`: install what is missing, build, run every test. Integration tests need root; as non-root they are skipped
# with a message saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
ensure_debian_packages
ensure_node_modules
ensure_build
source scripts/ensure-cluster-tools.sh
ensure_cluster_tools # builds kube-apiserver, kube-controller-manager, kubectl, etcd and flanneld (once, cached) for the registry tests
if [ "$(id -u)" -ne 0 ]; then
  echo "weft: not root — integration tests (namespaces, TUN, veth) will be skipped; run 'sudo npm test' for the full suite"
fi
exec npx vitest run "$@"
