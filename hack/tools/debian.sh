#!/usr/bin/env bash
# Installs the Debian packages a real node needs (containerd, runc, the CNI
# plugins, and busybox-static for the workload base image) and the headless
# browser the web view's tests drive (chromium) when they are missing. It
# does nothing where it cannot (not Linux, not root, no apt-get): the tests
# then use kwok only, skip the browser, and say so.
set -euo pipefail

packages=(containerd runc containernetworking-plugins busybox-static iptables chromium)

if [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	echo "real node and browser: not a root Linux with apt-get; tests run on kwok only and skip the browser" >&2
	exit 0
fi
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages for the real node and the browser tests: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
