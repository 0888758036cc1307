#!/usr/bin/env bash
# Installs what strata needs on a fresh Debian machine, then its npm
# dependencies, then builds. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  iproute2                    # ip: links, addresses, routes, namespaces
  nftables                    # nft: masquerade, NetworkPolicy and Services
  util-linux                  # nsenter, flock
  containernetworking-plugins # the reference plugins, peers in tests and benchmarks
  iptables                    # the reference bridge plugin masquerades with it
  ncat                        # TCP clients and servers in tests
  iperf3                      # data-path benchmarks
  hyperfine                   # benchmark timing
  procps                      # ps, pkill
  curl                        # HTTP client in Service tests and the demo
  bind9-dnsutils              # dig: cluster DNS tests
  dnsperf                     # DNS benchmark client (bench:services)
  dnsmasq-base                # the DNS peer in bench:services (the binary only, no service)
  conntrack                   # inspecting NAT state when a Service test fails
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "setup: build"
npm run --silent build
