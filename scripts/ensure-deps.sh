#!/usr/bin/env bash
# Installs what weft's build, tests and demo need when it is missing: Debian packages via apt-get, npm packages via npm ci.
# Sourced by scripts/test.sh and scripts/demo.sh; safe to run again (it only installs what is absent).
set -euo pipefail

# command → Debian package that provides it
declare -A WEFT_DEBIAN_PACKAGES=(
  [ip]=iproute2
  [tcpdump]=tcpdump
  [ethtool]=ethtool
  [ping]=iputils-ping
  [iperf3]=iperf3
  [iptables]=iptables
  [python3]=python3
  [bridge]=iproute2
  [cc]=build-essential
  [etcd]=etcd-server
  [etcdctl]=etcd-client
)

# file → Debian package that provides it: the reference CNI plugins, which Debian installs in /usr/lib/cni (the CNI tests,
# the demo's chained conflist and `weft install-cni` use them from there)
declare -A WEFT_DEBIAN_FILES=(
  [/usr/lib/cni/host-local]=containernetworking-plugins
  [/usr/lib/cni/portmap]=containernetworking-plugins
  [/usr/lib/cni/bandwidth]=containernetworking-plugins
  [/usr/lib/cni/tuning]=containernetworking-plugins
)

ensure_debian_packages() {
  local missing=()
  for cmd in "${!WEFT_DEBIAN_PACKAGES[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${WEFT_DEBIAN_PACKAGES[$cmd]}")
  done
  for file in "${!WEFT_DEBIAN_FILES[@]}"; do
    [ -x "$file" ] || missing+=("${WEFT_DEBIAN_FILES[$file]}")
  done
  # One line per package, each once; none at all when nothing is missing (printf of no words still prints one empty line).
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sed '/^$/d' | sort -u)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "weft: missing Debian packages: ${missing[*]} — install them (as root: apt-get install ${missing[*]})" >&2
    return 1
  fi
  echo "weft: installing missing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ " ${missing[*]} " == *" etcd-server "* ]]; then stop_system_etcd; fi
}

# Debian's etcd-server enables and starts a system etcd on 127.0.0.1:2379. The tests start their own etcd on free ports
# and need none running: stop it and keep it from starting at boot.
stop_system_etcd() {
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    echo "weft: disabling the system etcd service that Debian's etcd-server enabled (the tests run their own etcd)"
    systemctl disable --now etcd.service >/dev/null 2>&1 || true
  elif command -v service >/dev/null 2>&1; then
    service etcd stop >/dev/null 2>&1 || true
  fi
}

ensure_node_modules() {
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "weft: installing npm dependencies (npm ci)"
    npm ci --no-audit --no-fund
  fi
}

ensure_build() {
  echo "weft: building (AssemblyScript core + TypeScript)"
  npm run --silent build
}
