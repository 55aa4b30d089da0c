#!/usr/bin/env bash
# Builds a local Python base image (Debian bookworm minbase + python3 3.11) for machines that
# cannot pull from a registry: mmdebstrap makes the root filesystem, podman imports it.
# Cached: does nothing when the image is already in podman's storage.
# Usage: deploy/container/build-local-base.sh [IMAGE]   (default localhost/stenostack-base:bookworm)
set -euo pipefail
image="${1:-${STENOSTACK_BASE_IMAGE:-localhost/stenostack-base:bookworm}}"
if podman image exists "$image"; then
    exit 0
fi

# The Debian mirror apt already uses (deb822 or one-line sources), else the default.
mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
    mirror="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v '^[[:space:]]*#' \
        | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ' || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
fi

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
start=$(date +%s)
echo "building base image $image from $mirror (bookworm minbase + python3)" >&2
# Docs, man pages and locales are left out; apt's lists and caches are removed afterwards.
# The hook's "$1" (the new root) is mmdebstrap's to expand, hence the single quotes.
# shellcheck disable=SC2016
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*' \
    bookworm "$workdir/rootfs.tar" "$mirror"
podman import --quiet --change 'CMD ["/usr/bin/python3"]' "$workdir/rootfs.tar" "$image" >/dev/null
echo "base image $image built in $(( $(date +%s) - start )) s" >&2
