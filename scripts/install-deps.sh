#!/usr/bin/env bash
# Installs the Debian packages the test suite and demo use, only when something is missing.
# Called by .ci/run; safe to run by hand. Needs root.
set -euo pipefail
pkgs=(iproute2 nftables iperf3 etcd-server etcd-client containernetworking-plugins podman runc busybox-static tcpdump iputils-ping procps)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "install-deps: all present (${pkgs[*]})"
