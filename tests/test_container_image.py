"""The container image, built here and run exactly as the Helm chart's default values run it:
each container's arguments, environment, volumes, security context and limits come from the
rendered Deployments, translated to ``podman run`` options. Only what a cluster has and this
machine lacks is swapped: host network on loopback ports instead of pod IPs, and one backend
address for the router instead of Kubernetes discovery. An engine container and a router in
front of it answer probes, authenticate with the chart's generated key, transcribe real
speech, write nothing outside /tmp, serve whisper-base joined and checked at build time, and
stop well within their grace period.

Needs podman, runc, mmdebstrap and hadolint (scripts/install-image-tools.sh), helm
(scripts/install-chart-tools.sh) and root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from stenostack import __version__
from stenostack.models.whisper.family import BASE_MODEL_SHA256
from tests.chart import Manifest, deployments, flag, render, router_config, secret_data
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
# The environment the image bakes in (the chart sets none of it): writes and caches go to
# /tmp only, and nothing is fetched at run time.
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
# The securityContext fields translated below; any other fails the test, never passes unseen.
SECURITY_FIELDS = {
    "runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "seccompProfile",
    "readOnlyRootFilesystem", "allowPrivilegeEscalation", "privileged", "capabilities",
}  # fmt: skip
QUANTITY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}
# The router runs more than one worker here (the chart's default is 1): their shared metrics
# live in a private directory under TMPDIR, which must work on the read-only root.
ROUTER_WORKERS = 2


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
    pod: Manifest  # the rendered pod spec
    spec: Manifest  # its container
    options: list[str]  # ``podman run`` options for what the pod spec sets

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def inspect(self) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(podman("inspect", self.name).stdout)
        return data[0]


Containers = tuple[Container, Container]


def quantity(value: str | int) -> float:
    """A Kubernetes quantity ("3Gi", "500m", "2") as a number."""
    text = str(value)
    for suffix, factor in QUANTITY_SUFFIXES.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


def security_options(pod: Manifest, container: Manifest) -> list[str]:
    """The pod's and the container's securityContext (the container's wins) as podman
    options; podman's default seccomp profile is the runtime default."""
    context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    unknown = set(context) - SECURITY_FIELDS
    assert not unknown, f"securityContext {sorted(unknown)}: translate it to podman here"
    user, group = context["runAsUser"], context.get("runAsGroup", context["runAsUser"])
    assert not (context.get("runAsNonRoot") and user == 0), "runAsNonRoot with runAsUser 0"
    assert context.get("seccompProfile", {}).get("type", "RuntimeDefault") == "RuntimeDefault"
    assert not context.get("privileged"), "a privileged container is not run here"
    options = ["--user", f"{user}:{group}"]
    if "fsGroup" in context:  # the kubelet adds it to the process's groups
        options += ["--group-add", str(context["fsGroup"])]
    if context.get("readOnlyRootFilesystem"):
        options += ["--read-only", "--read-only-tmpfs=false"]
    if context.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    capabilities = context.get("capabilities", {})
    options += [option for cap in capabilities.get("drop", []) for option in ("--cap-drop", cap)]
    options += [option for cap in capabilities.get("add", []) for option in ("--cap-add", cap)]
    return options


def resource_options(container: Manifest) -> list[str]:
    """The container's limits (requests only place a pod on a node)."""
    limits = container.get("resources", {}).get("limits", {})
    unknown = set(limits) - {"cpu", "memory"}
    assert not unknown, f"resource limits {sorted(unknown)}: translate them to podman here"
    options = []
    if "cpu" in limits:
        options += ["--cpus", f"{quantity(limits['cpu']):g}"]
    if "memory" in limits:
        options += ["--memory", str(int(quantity(limits["memory"])))]
    return options


def environment(manifests: list[Manifest], container: Manifest) -> dict[str, str]:
    """The container's env, secretKeyRefs resolved against the rendered Secrets."""
    assert "envFrom" not in container, "envFrom: resolve it here"
    values = {}
    for entry in container.get("env", []):
        if "value" in entry:
            values[entry["name"]] = str(entry["value"])
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            reference = entry["valueFrom"]["secretKeyRef"]
            values[entry["name"]] = secret_data(manifests, reference["name"])[
                reference["key"]
            ].decode()
        else:
            pytest.fail(f"env {entry['name']}: a source this test cannot resolve: {entry}")
    return values


def project_secret(
    manifests: list[Manifest], source: Manifest, directory: Path, fs_group: int | None
) -> Path:
    """The files the kubelet projects from a secret volume into ``directory``: its items (or
    every key), with the item's mode or defaultMode; group-owned by the pod's fsGroup, which
    also gets read access, as the kubelet sets them."""
    data = secret_data(manifests, source["secretName"])
    items = source.get("items") or [{"key": key, "path": key} for key in data]
    directory.mkdir(parents=True)
    directory.chmod(0o755)
    for item in items:
        path = directory / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[item["key"]])
        mode = item.get("mode", source.get("defaultMode", 0o644))
        os.chown(path, 0, 0 if fs_group is None else fs_group)
        path.chmod(mode if fs_group is None else mode | 0o440)
    return directory


def volume_options(
    manifests: list[Manifest], pod: Manifest, container: Manifest, files: Path
) -> list[str]:
    """The container's volume mounts: an emptyDir as a tmpfs of its size limit, a secret
    volume as its files in ``files``, bind-mounted read-only."""
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    fs_group = pod.get("securityContext", {}).get("fsGroup")
    options = []
    for mount in container.get("volumeMounts", []):
        unknown = set(mount) - {"name", "mountPath", "readOnly"}
        assert not unknown, f"volumeMount {mount['name']}: {sorted(unknown)} not translated"
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            limit = volume["emptyDir"].get("sizeLimit")
            size = f":size={int(quantity(limit))}" if limit else ""
            options += ["--tmpfs", f"{mount['mountPath']}{size}"]
        elif "secret" in volume:
            host = project_secret(manifests, volume["secret"], files / mount["name"], fs_group)
            options += ["--volume", f"{host}:{mount['mountPath']}:ro"]
        else:
            kinds = sorted(set(volume) - {"name"})
            pytest.fail(f"volume {mount['name']} is {kinds}: teach this test to mount it")
    return options


def pod_options(
    manifests: list[Manifest], pod: Manifest, container: Manifest, files: Path
) -> list[str]:
    env = environment(manifests, container)
    return [
        *RUNTIME,
        *security_options(pod, container),
        *resource_options(container),
        *volume_options(manifests, pod, container, files),
        *(option for key, value in env.items() for option in ("--env", f"{key}={value}")),
    ]


def swap_flags(args: list[str], dropped: tuple[str, ...], added: list[str]) -> list[str]:
    """``args`` without the ``--flag=value`` flags named in ``dropped`` (each must be there,
    or the swap did nothing), then ``added``."""
    present = {arg.split("=", 1)[0] for arg in args}
    assert set(dropped) <= present, f"{set(dropped) - present} not in {args}"
    return [arg for arg in args if arg.split("=", 1)[0] not in dropped] + added


def written_paths(name: str) -> set[str]:
    """Every path in the container's writable overlay layer (a tmpfs /tmp is not in it)."""
    upper = podman("inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", name).stdout.strip()
    return {f"/{path.relative_to(upper)}" for path in Path(upper).rglob("*")}


@pytest.fixture(scope="module")
def image() -> str:
    """The CPU image, built on the local Debian base (built first if podman lacks it)."""
    subprocess.run([str(ROOT / "scripts/build-image.sh"), "--local-base"], check=True, timeout=1800)
    return IMAGE


@pytest.fixture(scope="module")
def manifests() -> list[Manifest]:
    """The chart's default values rendered (once: its generated keys stay the same)."""
    return render("default")


def run_deployment(
    image: str,
    manifests: list[Manifest],
    role: str,
    swapped: tuple[tuple[str, ...], list[str]],
    files: Path,
    names: list[str],
) -> Container:
    """Start the container of the ``role`` Deployment as its pod spec does, on a loopback
    port with the flags in ``swapped`` replaced, and wait for its ``/ready``. Its name goes
    into ``names`` before it is created, so that it is always removed."""
    (deployment,) = deployments(manifests, role)
    pod = deployment["spec"]["template"]["spec"]
    assert "initContainers" not in pod, "the default values fetch no model"
    (spec,) = pod["containers"]
    tag = spec["image"].rsplit(":", 1)[1]
    assert tag == IMAGE.rsplit(":", 1)[1], f"the chart runs {spec['image']}, built here: {IMAGE}"
    port = free_port()
    dropped, added = swapped
    args = swap_flags(
        spec["args"], ("--host", "--port", *dropped), ["--host=127.0.0.1", f"--port={port}"]
    )
    name = f"stenostack-test-{role}-{uuid.uuid4().hex[:8]}"
    names.append(name)
    options = [
        *pod_options(manifests, pod, spec, files / role),
        "--network", "host",
        # Not the chart's (Kubernetes ignores HEALTHCHECK): the image's check, on this port.
        "--env", f"STENOSTACK_HEALTHCHECK_URL=http://127.0.0.1:{port}/health",
    ]  # fmt: skip
    podman("run", "--detach", "--name", name, *options, image, *args, *added)
    container = Container(name, f"http://127.0.0.1:{port}", pod, spec, options)
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
def containers(
    image: str, manifests: list[Manifest], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Containers]:
    """The engine of the default values (serving both bundled models) and the router in front
    of it, Kubernetes discovery swapped for the engine's address."""
    files = tmp_path_factory.mktemp("pod-files")
    names: list[str] = []
    try:
        engine = run_deployment(image, manifests, "engine", ((), []), files, names)
        discovery = ("--k8s-label-selector", "--k8s-namespace")
        extra = [f"--backend={engine.url}", f"--workers={ROUTER_WORKERS}"]
        router = run_deployment(image, manifests, "router", (discovery, extra), files, names)
        yield engine, router
    finally:
        for name in names:
            podman("rm", "--force", "--time", "2", name, check=False)


@pytest.fixture(scope="module")
def caller_key(manifests: list[Manifest]) -> str:
    """A caller key the rendered router config accepts; any string when it asks none."""
    keys = (yaml.safe_load(router_config(manifests)) or {}).get("api_keys") or ["unused"]
    return str(keys[0]["key"] if isinstance(keys[0], dict) else keys[0])


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


def test_probes_answer(containers: Containers) -> None:
    for container in containers:
        probes = ("startupProbe", "readinessProbe", "livenessProbe")
        rendered = {container.spec[probe]["httpGet"]["path"] for probe in probes}
        for path in sorted({"/health", "/ready"} | rendered):
            response = httpx.get(f"{container.url}{path}", timeout=10)
            assert response.status_code == 200, (container.name, path, response.text)


def test_both_serve_the_playground_from_the_installed_package(containers: Containers) -> None:
    """The page and its scripts are package data: the image's wheel must carry them, and
    they are served without a key even where the API needs one."""
    for container in containers:
        page = httpx.get(f"{container.url}/", timeout=10)
        assert page.status_code == 200, (container.name, page.text)
        assert '<script type="module" src="/playground/app.js">' in page.text
        script = httpx.get(f"{container.url}/playground/app.js", timeout=10)
        assert script.status_code == 200 and "import" in script.text, container.name


def test_healthcheck_passes_and_fails_when_the_server_is_gone(containers: Containers) -> None:
    for container in containers:
        result = podman("healthcheck", "run", container.name, check=False)
        assert result.returncode == 0, (container.name, result.stdout, result.stderr)
    # The same command pointed at a closed port must fail, or the check above proves nothing.
    engine = containers[0]
    command = engine.inspect()["Config"]["Healthcheck"]["Test"][1:]
    closed = f"STENOSTACK_HEALTHCHECK_URL=http://127.0.0.1:{free_port()}/health"
    failed = podman("exec", "--env", closed, engine.name, *command, check=False)
    assert failed.returncode != 0


def test_engine_requires_the_key_the_router_is_given(
    containers: Containers, manifests: list[Manifest]
) -> None:
    """The engine reads its key from the chart's secret volume (--api-key-file); the router
    gets the same Secret's key in its environment."""
    engine, router = containers
    key = environment(manifests, router.spec)["STENOSTACK_BACKEND_API_KEY"]
    assert len(key) >= 32, "the chart's generated key"
    models = f"{engine.url}/v1/models"
    assert httpx.get(models, timeout=10).status_code == 401
    wrong = httpx.get(models, headers={"Authorization": f"Bearer {key[:-1]}"}, timeout=10)
    assert wrong.status_code == 401
    keyed = httpx.get(models, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert keyed.status_code == 200, keyed.text


@pytest.mark.parametrize("model", ["whisper-tiny.en", "whisper-base"])
def test_transcription_through_the_router_container(
    containers: Containers, caller_key: str, model: str
) -> None:
    _, router = containers
    clip = wav_bytes(compose([0.3, COFFEE_ORDER, 0.3]).samples)
    client = openai_client(router.url, api_key=caller_key, timeout=120)
    text = client.audio.transcriptions.create(model=model, file=("a.wav", clip)).text
    assert word_error_rate(COFFEE_ORDER, text) <= 0.2, text


def test_router_workers_share_metrics_from_under_tmp(
    containers: Containers, caller_key: str
) -> None:
    """Every worker that takes a scrape answers for all of them, from files in a private
    directory under TMPDIR (the only writable path), one set per worker process."""
    engine, router = containers

    def healthy() -> list[tuple[str, float]]:
        response = httpx.get(  # a new connection each time: any worker may take it
            f"{router.url}/metrics", headers={"Authorization": f"Bearer {caller_key}"}, timeout=10
        )
        assert response.status_code == 200, response.text
        return [
            (sample.labels["backend"], sample.value)
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if sample.name == "stenostack_router_backend_healthy"
        ]

    # 1 once every worker has checked the engine (the gauge is the workers' minimum).
    deadline = time.monotonic() + 10
    while healthy() != [(engine.url, 1.0)] and time.monotonic() < deadline:
        time.sleep(0.2)
    for _ in range(2 * ROUTER_WORKERS):
        assert healthy() == [(engine.url, 1.0)]
    script = "import glob; print(*glob.glob('/tmp/stenostack-router-metrics-*/*.db'))"
    files = podman("exec", router.name, "python3", "-c", script).stdout.split()
    pids = {Path(file).stem.rsplit("_", 1)[1] for file in files}  # e.g. gauge_livemin_8.db
    assert len(pids) == ROUTER_WORKERS, files


def test_processes_run_as_the_unprivileged_user(containers: Containers) -> None:
    for container in containers:
        pid = container.inspect()["State"]["Pid"]
        status = Path(f"/proc/{pid}/status").read_text()
        uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
        gids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Gid:"))
        assert uids == [str(UID)] * 4 and gids == [str(UID)] * 4, (container.name, status)


def test_whisper_base_is_joined_and_checked_in_the_image(containers: Containers) -> None:
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


def test_nothing_was_written_outside_tmp(image: str, containers: Containers) -> None:
    """Runs after the transcription: serving wrote nothing to the image's filesystem. Podman
    itself puts mount points (/etc/hosts, /run/.containerenv, the secret volumes) into every
    container's layer, so a container that runs nothing with the same options gives the
    baseline."""
    for container in containers:
        name = f"stenostack-test-baseline-{uuid.uuid4().hex[:8]}"
        try:
            podman("run", "--name", name, *container.options, "--entrypoint", "true", image)
            baseline = written_paths(name)
        finally:
            podman("rm", "--force", name, check=False)
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


def test_containers_stop_cleanly_well_within_their_grace_period(containers: Containers) -> None:
    """Last in this module, since it stops the containers: ``podman stop`` with the pod's
    terminationGracePeriodSeconds, as the kubelet stops a pod. The engine keeps its port open
    through its drain notice (answering /ready with 503), and each exits 0 after its notice
    and before its drain timeout would also have run out."""
    engine = containers[0]
    started = time.monotonic()
    stops = {
        container.name: subprocess.Popen(
            ["podman", "stop", "--time", str(container.pod["terminationGracePeriodSeconds"]),
             container.name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for container in containers
    }  # fmt: skip
    took: dict[str, float] = {}
    statuses: set[int] = set()
    while len(took) < len(stops):
        for name, stop in stops.items():
            if name not in took and stop.poll() is not None:
                took[name] = time.monotonic() - started
        with suppress(httpx.TransportError):
            statuses.add(httpx.get(f"{engine.url}/ready", timeout=1).status_code)
        time.sleep(0.1)
    assert 503 in statuses, statuses
    for container in containers:
        args = container.spec["args"]
        notice = float(flag(args, "--drain-notice-s"))
        drain = float(flag(args, "--drain-timeout-s"))
        grace = container.pod["terminationGracePeriodSeconds"]
        print(f"{container.name} stopped in {took[container.name]:.1f} s (grace {grace} s)")
        state = container.inspect()["State"]
        assert state["ExitCode"] == 0, (state, container.logs())
        assert notice <= took[container.name] < notice + drain < grace, took
