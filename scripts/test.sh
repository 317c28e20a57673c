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
if [ "$#" -gt 0 ]; then exec npx vitest run "$@"; fi
npx vitest run
# Every dataplane test again with two TUN queues per agent (one worker thread each; src/lab/topology.ts reads this).
echo "weft: the dataplane tests again, with 2 TUN queues per agent (WEFT_LAB_QUEUES=2)"
WEFT_LAB_QUEUES=2 npx vitest run test/integration/dataplane-
