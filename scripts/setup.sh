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
  tcpdump                     # underlay captures: the mesh test checks only TLS crosses it
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

# promtool checks the mesh proxy's metrics in tests. Debian ships it only inside the
# prometheus package, whose server the project does not want installed and started:
# the package is downloaded and promtool alone is extracted into .tools/bin.
if ! command -v promtool >/dev/null && [ ! -x .tools/bin/promtool ]; then
  echo "setup: extracting promtool from Debian's prometheus package into .tools/bin"
  work=$(mktemp -d)
  (cd "$work" && apt-get download prometheus >/dev/null 2>&1) || {
    apt-get update -qq
    (cd "$work" && apt-get download prometheus >/dev/null)
  }
  dpkg-deb -x "$work"/prometheus_*.deb "$work/x"
  mkdir -p .tools/bin
  cp "$work/x/usr/bin/promtool" .tools/bin/promtool
  rm -rf "$work"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "setup: build"
npm run --silent build
