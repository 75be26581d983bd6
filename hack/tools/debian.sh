#!/usr/bin/env bash
# Installs the Debian packages a real node needs (containerd, runc, the CNI
# plugins, and busybox-static for the workload base image) when they are
# missing. It does nothing where a real node cannot run (not Linux, not
# root, no apt-get): the tests then use kwok only and say so.
set -euo pipefail

packages=(containerd runc containernetworking-plugins busybox-static iptables)

if [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	echo "real node: not a root Linux with apt-get; tests run on kwok only" >&2
	exit 0
fi
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages for the real node: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
