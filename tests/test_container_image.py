"""The container image, built here and run as the Helm chart runs it: user 10001, read-only
root with a tmpfs on /tmp, the contract's environment, loopback only. An engine container and
a router container in front of it answer probes and transcribe real speech, write nothing
outside /tmp, and serve whisper-base joined and checked at build time.

Needs podman, runc, mmdebstrap and hadolint (scripts/install-image-tools.sh) and root.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from stenostack import __version__
from stenostack.models.sources import BASE_MODEL_SHA256
from tests.servers import free_port, openai_client
from tests.speech import compose, wav_bytes
from tests.texts import COFFEE_ORDER
from tests.wer import word_error_rate

ROOT = Path(__file__).resolve().parent.parent
CONTAINERFILES = [
    ROOT / "deploy/container/Containerfile",
    ROOT / "deploy/container/Containerfile.cuda",
]
IMAGE = f"localhost/stenostack:{__version__}-cpu"
UID = 10001
# The environment the chart sets (and the image bakes in): writes and caches go to /tmp only.
CONTRACT_ENV = {
    "TMPDIR": "/tmp",
    "HOME": "/tmp",
    "XDG_CACHE_HOME": "/tmp/cache",
    "HF_HOME": "/tmp/huggingface",
    "HF_HUB_OFFLINE": "1",
    "STENOSTACK_CACHE_DIR": "/opt/stenostack/cache",
    "PYTHONDONTWRITEBYTECODE": "1",
}
# runc and these limits: crun and podman's default ulimits fail on some hosts' cgroups.
RUNTIME = ["--runtime", "runc", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=20000:20000"]


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


@dataclass
class Container:
    name: str
    url: str

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def inspect(self) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(podman("inspect", self.name).stdout)
        return data[0]


@pytest.fixture(scope="module")
def image() -> str:
    """The CPU image, built on the local Debian base (built first if podman lacks it)."""
    subprocess.run([str(ROOT / "scripts/build-image.sh"), "--local-base"], check=True, timeout=1800)
    return IMAGE


def chart_options(port: int) -> list[str]:
    """``podman run`` options for what the chart's pod spec sets: its user, a read-only root
    with only /tmp writable (the emptyDir), the environment; host network, on loopback."""
    env = {**CONTRACT_ENV, "STENOSTACK_HEALTHCHECK_URL": f"http://127.0.0.1:{port}/health"}
    return [
        *RUNTIME, "--user", f"{UID}:{UID}", "--read-only", "--read-only-tmpfs=false",
        "--tmpfs", "/tmp", "--network", "host",
        *(option for key, value in env.items() for option in ("--env", f"{key}={value}")),
    ]  # fmt: skip


def written_paths(name: str) -> set[str]:
    """Every path in the container's writable overlay layer (a tmpfs /tmp is not in it)."""
    upper = podman("inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", name).stdout.strip()
    return {f"/{path.relative_to(upper)}" for path in Path(upper).rglob("*")}


def run_container(image: str, role: str, port: int, args: list[str], names: list[str]) -> Container:
    """Start a container the way the chart's pod spec does, and wait for its ``/ready``.
    Its name goes into ``names`` before it is created, so that it is always removed."""
    name = f"stenostack-test-{role}-{uuid.uuid4().hex[:8]}"
    names.append(name)
    podman("run", "--detach", "--name", name, *chart_options(port), image, *args,
           "--host", "127.0.0.1", "--port", str(port))  # fmt: skip
    container = Container(name, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{container.url}/ready", timeout=2).status_code == 200:
                return container
        except httpx.TransportError:
            pass
        if not container.inspect()["State"]["Running"] or time.monotonic() > deadline:
            raise AssertionError(f"{role} container never became ready:\n{container.logs()}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def containers(image: str) -> Iterator[tuple[Container, Container]]:
    """An engine container serving two bundled models and a router container in front of it."""
    names: list[str] = []
    try:
        engine_port, router_port = free_port(), free_port()
        # whisper-base as well: it loads from the image's read-only cache, joined at build.
        engine_args = ["serve", "--model", "whisper-tiny.en", "--model", "whisper-base"]
        engine = run_container(image, "engine", engine_port, engine_args, names)
        router_args = ["router", "--backend", engine.url]
        router = run_container(image, "router", router_port, router_args, names)
        yield engine, router
    finally:
        for name in names:
            podman("rm", "--force", "--time", "2", name, check=False)


def test_image_declares_user_entrypoint_env_and_healthcheck(image: str) -> None:
    data = json.loads(podman("image", "inspect", image).stdout)[0]
    config = data["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["stenostack"]
    assert config["Cmd"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert "8000/tcp" in config["ExposedPorts"]
    baked = dict(entry.split("=", 1) for entry in config["Env"])
    assert {key: baked.get(key) for key in CONTRACT_ENV} == CONTRACT_ENV
    assert data["Healthcheck"]["Test"][0] == "CMD"  # podman lists it beside Config


def test_probes_answer(containers: tuple[Container, Container]) -> None:
    for container in containers:
        for path in ("/health", "/ready"):
            response = httpx.get(f"{container.url}{path}", timeout=10)
            assert response.status_code == 200, (container.name, path, response.text)


def test_healthcheck_passes_and_fails_when_the_server_is_gone(
    containers: tuple[Container, Container],
) -> None:
    for container in containers:
        result = podman("healthcheck", "run", container.name, check=False)
        assert result.returncode == 0, (container.name, result.stdout, result.stderr)
    # The same command pointed at a closed port must fail, or the check above proves nothing.
    engine = containers[0]
    command = engine.inspect()["Config"]["Healthcheck"]["Test"][1:]
    closed = f"STENOSTACK_HEALTHCHECK_URL=http://127.0.0.1:{free_port()}/health"
    failed = podman("exec", "--env", closed, engine.name, *command, check=False)
    assert failed.returncode != 0


@pytest.mark.parametrize("model", ["whisper-tiny.en", "whisper-base"])
def test_transcription_through_the_router_container(
    containers: tuple[Container, Container], model: str
) -> None:
    _, router = containers
    clip = wav_bytes(compose([0.3, COFFEE_ORDER, 0.3]).samples)
    client = openai_client(router.url, timeout=120)
    text = client.audio.transcriptions.create(model=model, file=("a.wav", clip)).text
    assert word_error_rate(COFFEE_ORDER, text) <= 0.2, text


def test_processes_run_as_the_unprivileged_user(
    containers: tuple[Container, Container],
) -> None:
    for container in containers:
        pid = container.inspect()["State"]["Pid"]
        status = Path(f"/proc/{pid}/status").read_text()
        uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
        gids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Gid:"))
        assert uids == [str(UID)] * 4 and gids == [str(UID)] * 4, (container.name, status)


def test_whisper_base_is_joined_and_checked_in_the_image(
    containers: tuple[Container, Container],
) -> None:
    """Resolving whisper-base in the running (read-only) engine finds the joined file built
    into the image, whose sha256 is the one the sources expect."""
    script = (
        "import hashlib; from stenostack.models.sources import resolve_model_dir as r; "
        "path = r('whisper-base') / 'model.bin'; print(path); "
        "print(hashlib.file_digest(path.open('rb'), 'sha256').hexdigest())"
    )
    result = podman("exec", containers[0].name, "python3", "-c", script)
    path, digest = result.stdout.split()
    assert path.startswith("/opt/stenostack/cache/")
    assert digest == BASE_MODEL_SHA256


def test_nothing_was_written_outside_tmp(
    image: str, containers: tuple[Container, Container]
) -> None:
    """Runs after the transcription: serving wrote nothing to the image's filesystem. Podman
    itself puts mount points (/etc/hosts, /run/.containerenv) into every container's layer, so
    a container that runs nothing with the same options gives the baseline."""
    name = f"stenostack-test-baseline-{uuid.uuid4().hex[:8]}"
    try:
        podman("run", "--name", name, *chart_options(free_port()), "--entrypoint", "true", image)
        baseline = written_paths(name)
    finally:
        podman("rm", "--force", name, check=False)
    for container in containers:
        assert written_paths(container.name) == baseline, container.name


@pytest.mark.parametrize("containerfile", CONTAINERFILES, ids=lambda path: path.name)
def test_containerfile_passes_hadolint(containerfile: Path) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(containerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # Every ignored rule says why, in the comment line just above it.
    lines = containerfile.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            above = lines[number - 1].strip()
            assert above.startswith("#") and "hadolint" not in above, f"line {number + 1}"
