#!/usr/bin/env bash
# Installs everything tabby's build, demo and tests need on a fresh Debian 12 machine (as root):
# the apt packages, then the npm packages from package-lock.json. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  iproute2            # ip: tabby's kernel layer
  util-linux          # nsenter: netns given by path
  procps              # sysctl, pgrep
  nftables iptables   # natOutgoing
  iputils-ping        # connectivity checks
  socat               # TCP transfers in tests
  containernetworking-plugins  # reference ptp/host-local/bridge for interop and benchmarks
  qemu-system-x86 linux-image-amd64 busybox-static  # test/qemu: a stock Debian kernel (ipip) under qemu
  golang-go golang-github-appc-cni-dev  # test/runtimes: the libcni client, built offline
  golang-github-spf13-cobra-dev golang-github-masterminds-semver-dev python3  # test/runtimes: upstream cnitool (../shared/tools/cnitool/build.sh)
  containerd runc podman busybox-static  # test/runtimes: real runtimes running busybox containers
  etcd-server etcd-client openssl  # test/etcd: real etcd 3.4 members (etcdctl enables auth; openssl makes TLS certs)
  iperf3 ethtool      # bench/offload.mjs: pod-to-pod throughput with the VXLAN device's TX checksum offload on and off
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null
  apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
fi

if ! npm ls --depth=0 >/dev/null 2>&1; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund >/dev/null
fi
