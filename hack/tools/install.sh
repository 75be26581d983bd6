#!/usr/bin/env bash
# Builds the pinned tools of go.mod beside this file into a cache outside the
# clone, keyed by version, and links them into the given bin directory as
# <name>-<version> plus a plain <name> link. A tool already in the cache is
# never rebuilt, so a fresh clone on a warm machine installs in seconds.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bindir=${1:?usage: install.sh BIN_DIR [TOOL...]}
shift
mkdir -p "$bindir"
bindir=$(cd "$bindir" && pwd)
cache=${GYRE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gyre/tools}
mkdir -p "$cache"

# name|module|package
tools=(
	"etcd|go.etcd.io/etcd/server/v3|go.etcd.io/etcd/server/v3"
	"kube-apiserver|k8s.io/kubernetes|k8s.io/kubernetes/cmd/kube-apiserver"
	"kube-controller-manager|k8s.io/kubernetes|k8s.io/kubernetes/cmd/kube-controller-manager"
	"kube-scheduler|k8s.io/kubernetes|k8s.io/kubernetes/cmd/kube-scheduler"
	"kubectl|k8s.io/kubernetes|k8s.io/kubernetes/cmd/kubectl"
	"kubelet|k8s.io/kubernetes|k8s.io/kubernetes/cmd/kubelet"
	"kwok|sigs.k8s.io/kwok|sigs.k8s.io/kwok/cmd/kwok"
	"controller-gen|sigs.k8s.io/controller-tools|sigs.k8s.io/controller-tools/cmd/controller-gen"
	"staticcheck|honnef.co/go/tools|honnef.co/go/tools/cmd/staticcheck"
)

want=("$@")
selected() {
	[ ${#want[@]} -eq 0 ] && return 0
	local w
	for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done
	return 1
}

cd "$here"
missing=()
for t in "${tools[@]}"; do
	IFS='|' read -r name module pkg <<<"$t"
	selected "$name" || continue
	version=$(go list -m -f '{{.Version}}' "$module")
	file="$name-$version"
	if [ ! -x "$cache/$file" ]; then
		missing+=("$name|$pkg|$file")
	fi
done

if [ ${#missing[@]} -gt 0 ]; then
	tmp=$(mktemp -d "$cache/.build.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	for m in "${missing[@]}"; do
		IFS='|' read -r name pkg file <<<"$m"
		echo "building $file (the Kubernetes binaries take minutes the first time)" >&2
		# Static: the kubelet needs no cgo, and a static binary runs on any
		# Linux whatever its libc.
		CGO_ENABLED=0 go build -o "$tmp/$name" "$pkg"
		mv "$tmp/$name" "$cache/$file"
	done
fi

for t in "${tools[@]}"; do
	IFS='|' read -r name module pkg <<<"$t"
	selected "$name" || continue
	version=$(go list -m -f '{{.Version}}' "$module")
	file="$name-$version"
	ln -sf "$cache/$file" "$bindir/$file"
	ln -sf "$file" "$bindir/$name"
done
