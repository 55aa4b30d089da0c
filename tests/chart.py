"""The Helm chart (deploy/helm/stenostack) rendered offline with the helm binary from
scripts/install-chart-tools.sh, and the manifests it renders, picked apart: shared by the
chart's tests and by the container tests, which run the image as the rendered pods do."""

from __future__ import annotations

import base64
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "stenostack"
HELM = ROOT / ".tools" / "bin" / "helm"
TOOLS_BIN = ROOT / ".tools" / "venv" / "bin"
KUBERNETES_VALIDATE = TOOLS_BIN / "kubernetes-validate"
CHECKOV = TOOLS_BIN / "checkov"
NAMESPACE = "speech"
Manifest = dict[str, Any]


def require_tools() -> None:
    missing = [str(tool) for tool in (HELM, KUBERNETES_VALIDATE, CHECKOV) if not tool.exists()]
    if missing:
        pytest.fail(
            f"chart tools missing ({', '.join(missing)}): run scripts/install-chart-tools.sh",
            pytrace=False,
        )


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    require_tools()
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120)


def values_args(example: str) -> list[str]:
    return [] if example == "default" else ["--values", str(CHART / "ci" / example)]


@cache
def rendered_text(example: str, *flags: str) -> str:
    """``example`` rendered, with any further helm flags (``--set``, ...)."""
    result = helm(
        "template", "stt", str(CHART), "--namespace", NAMESPACE, *values_args(example), *flags
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(example: str, *flags: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(rendered_text(example, *flags)) if doc]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [manifest for manifest in manifests if manifest["kind"] == kind]


def component(manifest: Manifest) -> str:
    return str(manifest["metadata"]["labels"]["app.kubernetes.io/component"])


def deployments(manifests: list[Manifest], role: str) -> list[Manifest]:
    return [d for d in of_kind(manifests, "Deployment") if component(d) == role]


def secret_data(manifests: list[Manifest], name: str) -> dict[str, bytes]:
    """The rendered Secret ``name``'s keys and decoded values (``stringData`` wins over
    ``data``, as the API server merges them). A key the chart makes with randAlphaNum is
    whatever this rendering drew: render is cached, so every caller sees the same one."""
    (secret,) = [s for s in of_kind(manifests, "Secret") if s["metadata"]["name"] == name]
    values = {key: base64.b64decode(value) for key, value in secret.get("data", {}).items()}
    values.update({key: value.encode() for key, value in secret.get("stringData", {}).items()})
    return values


def flag(args: list[str], name: str) -> str:
    values = [arg.split("=", 1)[1] for arg in args if arg.startswith(f"{name}=")]
    assert len(values) == 1, f"{name} given {len(values)} times in {args}"
    return values[0]


def router_config(manifests: list[Manifest]) -> str:
    (router,) = deployments(manifests, "router")
    volumes = router["spec"]["template"]["spec"]["volumes"]
    secret_name = next(v["secret"]["secretName"] for v in volumes if v["name"] == "config")
    return secret_data(manifests, secret_name)["config.yaml"].decode()
