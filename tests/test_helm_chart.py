"""The Helm chart (deploy/helm/stenostack): lint, render, validate and scan it offline.

Every example values file in the chart's ci/ folder (as chart-testing expects) and the
default values are linted strictly, rendered, validated against the Kubernetes schemas of
the oldest and newest versions the chart supports, scanned by checkov, and checked for what
the chart promises: non-root read-only containers with resources, drain-aware grace
periods, the router's narrow RBAC, the NetworkPolicy, and engine and router arguments the
real command line accepts. The tools come from scripts/install-chart-tools.sh.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from stenostack.cli import build_parser
from stenostack.router.settings import RouterSettings, load_config_file
from tests.chart import (
    CHART,
    CHECKOV,
    KUBERNETES_VALIDATE,
    NAMESPACE,
    Manifest,
    component,
    deployments,
    flag,
    helm,
    of_kind,
    render,
    rendered_text,
    router_config,
    values_args,
)
from tests.servers import free_port, server_process

EXAMPLES = ["default", *sorted(path.name for path in (CHART / "ci").glob("*-values.yaml"))]
# Custom resources the Kubernetes schemas do not know: checked by apiVersion and kind here.
CUSTOM_RESOURCES = {
    "ScaledObject": "keda.sh/v1alpha1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "HTTPRoute": "gateway.networking.k8s.io/v1",
}


def pod_labels(deployment: Manifest) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def all_containers(deployment: Manifest) -> Iterator[Manifest]:
    pod = deployment["spec"]["template"]["spec"]
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


def test_the_examples_chart_testing_runs_are_there() -> None:
    assert set(EXAMPLES) >= {
        "default",
        "gpu-multi-model-values.yaml",
        "autoscaling-monitoring-values.yaml",
        "airgapped-pvc-values.yaml",
    }


@pytest.mark.parametrize("example", EXAMPLES)
def test_lints_strictly(example: str) -> None:
    result = helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, *values_args(example))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def supported_kubernetes_versions() -> list[str]:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    versions = chart["annotations"]["stenostack.io/tested-kubernetes-versions"].split()
    oldest = re.fullmatch(r">=(\d+\.\d+\.\d+)-0", chart["kubeVersion"])
    assert oldest, chart["kubeVersion"]
    assert versions[0] == oldest.group(1), "the oldest tested version is kubeVersion's floor"
    return list(versions)


@pytest.mark.parametrize("example", EXAMPLES)
def test_manifests_validate_strictly_against_oldest_and_newest_kubernetes(
    example: str, tmp_path: Path
) -> None:
    manifests = render(example)
    built_in = [m for m in manifests if m["kind"] not in CUSTOM_RESOURCES]
    for custom in (m for m in manifests if m["kind"] in CUSTOM_RESOURCES):
        assert custom["apiVersion"] == CUSTOM_RESOURCES[custom["kind"]], custom["metadata"]
    path = tmp_path / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(built_in))
    for version in supported_kubernetes_versions():
        result = subprocess.run(
            [str(KUBERNETES_VALIDATE), "--strict", "--kubernetes-version", version, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "ERROR" not in output, output
        passed = output.count("passed for resource")
        assert passed == len(built_in), f"{passed} of {len(built_in)} validated:\n{output}"


def test_default_values_render_an_engine_and_the_router() -> None:
    manifests = render("default")
    assert len(deployments(manifests, "engine")) == 1
    assert len(deployments(manifests, "router")) == 1
    kinds = {m["kind"] for m in manifests}
    assert {"Service", "ServiceAccount", "Role", "RoleBinding", "Secret"} <= kinds
    assert {"NetworkPolicy", "PodDisruptionBudget"} <= kinds


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_container_is_non_root_read_only_with_resources(example: str) -> None:
    for deployment in of_kind(render(example), "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        for container in all_containers(deployment):
            where = f"{deployment['metadata']['name']}/{container['name']}"
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert security["seccompProfile"]["type"] == "RuntimeDefault", where
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp and volumes[tmp[0]["name"]]["emptyDir"]["sizeLimit"], where
        if component(deployment) == "engine":
            assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize("example", EXAMPLES)
def test_grace_period_outlasts_the_drain(example: str) -> None:
    for deployment in of_kind(render(example), "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        args = pod["containers"][0]["args"]
        notice = float(flag(args, "--drain-notice-s"))
        drain = float(flag(args, "--drain-timeout-s"))
        assert pod["terminationGracePeriodSeconds"] >= notice + drain + 5, deployment["metadata"]


@pytest.mark.parametrize("example", EXAMPLES)
def test_probes_survive_a_slow_model_load(example: str) -> None:
    for engine in deployments(render(example), "engine"):
        container = engine["spec"]["template"]["spec"]["containers"][0]
        startup = container["startupProbe"]
        assert startup["httpGet"]["path"] == "/ready"
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    for router in deployments(render(example), "router"):
        # A router with no engine available still answers (503 with Retry-After), and its
        # refusals are what wakes an engine scaled to zero: it stays in its Service.
        container = router["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/health"


@pytest.mark.parametrize("example", EXAMPLES)
def test_rendered_arguments_are_ones_the_command_line_accepts(example: str) -> None:
    """No invented flag: argparse exits on an unknown one."""
    for deployment in of_kind(render(example), "Deployment"):
        for container in all_containers(deployment):
            build_parser().parse_args(container["args"])


@pytest.mark.parametrize("example", EXAMPLES)
def test_router_may_only_get_list_and_watch_pods(example: str) -> None:
    manifests = render(example)
    (role,) = of_kind(manifests, "Role")
    assert len(role["rules"]) == 1
    (rule,) = role["rules"]
    assert rule["apiGroups"] == [""] and rule["resources"] == ["pods"]
    assert sorted(rule["verbs"]) == ["get", "list", "watch"]
    assert not of_kind(manifests, "ClusterRole") and not of_kind(manifests, "ClusterRoleBinding")
    (binding,) = of_kind(manifests, "RoleBinding")
    (router,) = deployments(manifests, "router")
    account = router["spec"]["template"]["spec"]["serviceAccountName"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
    ]


@pytest.mark.parametrize("example", EXAMPLES)
def test_router_discovers_exactly_this_releases_engines(example: str) -> None:
    manifests = render(example)
    (router,) = deployments(manifests, "router")
    args = router["spec"]["template"]["spec"]["containers"][0]["args"]
    selector = dict(term.split("=", 1) for term in flag(args, "--k8s-label-selector").split(","))
    assert flag(args, "--k8s-namespace") == NAMESPACE
    for engine in deployments(manifests, "engine"):
        assert matches(selector, pod_labels(engine)), engine["metadata"]["name"]
        ports = engine["spec"]["template"]["spec"]["containers"][0]["ports"]
        assert ports[0]["name"] == "http"  # discovery's default port name
    assert not matches(selector, pod_labels(router))


@pytest.mark.parametrize("example", EXAMPLES)
def test_only_the_router_and_monitoring_reach_the_engines(example: str) -> None:
    manifests = render(example)
    (router,) = deployments(manifests, "router")
    (policy,) = [p for p in of_kind(manifests, "NetworkPolicy") if component(p) == "engine"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for engine in deployments(manifests, "engine"):
        assert matches(selector, pod_labels(engine))
    assert not matches(selector, pod_labels(router))
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    peers = rule["from"]
    pod_peers = [peer["podSelector"]["matchLabels"] for peer in peers if "podSelector" in peer]
    assert pod_peers and all(matches(s, pod_labels(router)) for s in pod_peers)
    others = [peer for peer in peers if "podSelector" not in peer]
    assert all(set(peer) == {"namespaceSelector"} for peer in others), others
    assert rule["ports"] == [{"protocol": "TCP", "port": "http"}]


def test_models_from_a_volume_are_mounted_read_only() -> None:
    (engine,) = deployments(render("airgapped-pvc-values.yaml"), "engine")
    pod = engine["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert "--model=whisper-medium=/models/faster-whisper-medium" in container["args"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/models"]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["persistentVolumeClaim"] == {"claimName": "whisper-models", "readOnly": True}
    assert "initContainers" not in pod  # air-gapped: nothing is fetched
    assert pod["imagePullSecrets"] == [{"name": "internal-registry"}]
    assert container["image"].startswith("registry.internal.example/ml/stenostack@sha256:")


def test_hub_models_are_fetched_by_an_init_container_into_the_shared_volume() -> None:
    manifests = render("gpu-multi-model-values.yaml")
    (claim,) = of_kind(manifests, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    large = next(d for d in deployments(manifests, "engine") if "large" in d["metadata"]["name"])
    pod = large["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["args"] == [
        "download-model",
        "Systran/faster-whisper-large-v3",
        "--output-dir=/models/faster-whisper-large-v3",
    ]
    assert {"name": "HF_HUB_OFFLINE", "value": "0"} in init["env"]
    engine = pod["containers"][0]
    assert "--model=whisper-large-v3=/models/faster-whisper-large-v3" in engine["args"]
    assert engine["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert engine["image"].endswith("-cuda")
    assert next(m for m in engine["volumeMounts"] if m["mountPath"] == "/models")["readOnly"]


def test_hub_model_on_a_read_only_volume_is_refused() -> None:
    result = helm(
        "template", "stt", str(CHART),
        "--set", "engines[0].name=x",
        "--set", "engines[0].models[0].name=m",
        "--set", "engines[0].models[0].source=hub",
        "--set", "engines[0].models[0].repoId=Systran/faster-whisper-small",
        "--set", "engines[0].models[0].path=small",
        "--set", "engines[0].modelVolume.create=true",
    )  # fmt: skip
    assert result.returncode != 0
    assert "must be writable" in result.stderr


@pytest.mark.parametrize(
    "bad",
    [
        "engines[0].replicas=-1",
        "engines[0].bogus=1",
        "router.routing=random",
        "engineDefaults.device=tpu",
        "engines[0].name=Not_A_DNS_Label",
        "drain.marginSeconds=0",
        "router.settings.kubernetes.enabled=false",
    ],
)
def test_values_schema_rejects_a_bad_value(bad: str) -> None:
    result = helm("template", "stt", str(CHART), "--set", bad)
    assert result.returncode != 0, f"--set {bad} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr


def test_autoscaling_renders_keda_and_hpa_on_queued_audio() -> None:
    manifests = render("autoscaling-monitoring-values.yaml")
    scaled = {m["metadata"]["name"]: m for m in of_kind(manifests, "ScaledObject")}
    engines = {d["metadata"]["name"]: d for d in deployments(manifests, "engine")}
    assert set(scaled) | {
        h["metadata"]["name"] for h in of_kind(manifests, "HorizontalPodAutoscaler")
    } == set(engines)
    for name, scaler in scaled.items():
        assert scaler["spec"]["scaleTargetRef"]["name"] == name
        assert "replicas" not in engines[name]["spec"]  # the autoscaler owns it
        trigger = scaler["spec"]["triggers"][0]
        assert trigger["type"] == "prometheus"
        assert trigger["metadata"]["query"] == (
            f'sum(stenostack_queued_audio_seconds{{namespace="{NAMESPACE}",service="{name}"}})'
        )
    tiny = scaled["stt-stenostack-engine-tiny"]
    assert tiny["spec"]["minReplicaCount"] == 0
    assert tiny["spec"]["triggers"][0]["metadata"]["threshold"] == "320"
    assert len(tiny["spec"]["triggers"]) == 2  # a wake-up signal while no engine reports
    wake = tiny["spec"]["triggers"][1]["metadata"]
    # Requests for this engine's own models, held at the router or refused there, and
    # nothing else: another engine's callers do not wake it.
    assert wake["query"].count('model=~"whisper-tiny.en"') == 2, wake["query"]
    assert "stenostack_router_requests_waiting{" in wake["query"]
    assert "stenostack_router_requests_total{" in wake["query"]
    assert float(wake["threshold"]) >= 1000 and wake["activationThreshold"] == "0"
    routers = deployments(manifests, "router")
    args = routers[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--cold-start-model=whisper-tiny.en" in args
    (hpa,) = of_kind(manifests, "HorizontalPodAutoscaler")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "stenostack_queued_audio_seconds"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "190"}


def test_monitoring_scrapes_engines_and_router_with_their_keys() -> None:
    manifests = render("autoscaling-monitoring-values.yaml")
    services = of_kind(manifests, "Service")
    monitors = of_kind(manifests, "ServiceMonitor")
    assert {component(m) for m in monitors} == {"engine", "router"}
    for monitor in monitors:
        selected = [
            s
            for s in services
            if matches(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        ]
        assert selected and all(component(s) == component(monitor) for s in selected)
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
        credentials = endpoint["authorization"]["credentials"]
        secret = next(
            s for s in of_kind(manifests, "Secret") if s["metadata"]["name"] == credentials["name"]
        )
        assert credentials["key"] in secret["data"]


@pytest.mark.parametrize("label", ["grafana_dashboard=1", "find_me=yes"])
def test_dashboards_configmap_ships_every_dashboard_file(label: str) -> None:
    name, value = label.split("=")
    manifests = render(
        "default",
        "--set=monitoring.dashboards.enabled=true",
        f"--set=monitoring.dashboards.label={name}",
        f"--set-string=monitoring.dashboards.labelValue={value}",
    )
    (configmap,) = of_kind(manifests, "ConfigMap")
    assert configmap["metadata"]["labels"][name] == value
    files = sorted((CHART / "dashboards").glob("*.json"))
    assert {"engine.json", "router.json"} <= {path.name for path in files}
    assert configmap["data"] == {
        f"stenostack-{path.name}": path.read_text().rstrip("\n") for path in files
    }


def test_rendered_router_config_is_one_the_router_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(router_config(render("gpu-multi-model-values.yaml")))
    settings = load_config_file(path, RouterSettings())
    assert settings.timeouts.first_byte_s == 900 and settings.retries.max_attempts == 2
    limited = [
        key for key in settings.api_keys if isinstance(key, dict) and "requests_per_minute" in key
    ]
    assert limited == [
        {
            "key": "ci-team-a-0123456789abcdef",
            "requests_per_minute": 600,
            "audio_minutes_per_hour": 6000,
        }
    ]
    assert "ci-unlimited-key-0123456789abcdef" in settings.api_keys


def test_router_starts_with_the_rendered_config_and_arguments(tmp_path: Path) -> None:
    """The chart's router arguments, config file and backend key, on loopback: Kubernetes
    discovery swapped for one backend address where nothing listens."""
    manifests = render("gpu-multi-model-values.yaml")
    path = tmp_path / "config.yaml"
    path.write_text(router_config(manifests))
    (router,) = deployments(manifests, "router")
    container = router["spec"]["template"]["spec"]["containers"][0]
    (key_env,) = container["env"]
    reference = key_env["valueFrom"]["secretKeyRef"]
    secret = next(
        s for s in of_kind(manifests, "Secret") if s["metadata"]["name"] == reference["name"]
    )
    backend_key = base64.b64decode(secret["data"][reference["key"]]).decode()
    kept = [
        arg
        for arg in container["args"]
        if not arg.startswith(("--k8s-", "--host=", "--port=", "--config=", "--workers="))
    ]
    command = [sys.executable, "-m", "stenostack", *kept, f"--config={path}", "--workers=1"]
    command.append(f"--backend=http://127.0.0.1:{free_port()}")
    # /ready is 503 while no backend answers; the router is up and serving all the same.
    with server_process(command, env={key_env["name"]: backend_key}, ready_status=503) as server:
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
        denied = httpx.get(f"{server.url}/v1/models", timeout=5)
        assert denied.status_code == 401  # the rendered caller keys are in force
        keyed = httpx.get(
            f"{server.url}/v1/models",
            headers={"Authorization": "Bearer ci-unlimited-key-0123456789abcdef"},
            timeout=5,
        )
        assert keyed.status_code == 200, keyed.text
    assert "Traceback" not in server.log()


def test_checkov_finds_nothing_beyond_the_documented_skips(tmp_path: Path) -> None:
    config = CHART / ".checkov.yaml"
    lines = [line for line in config.read_text().splitlines() if re.match(r"\s+- CKV", line)]
    assert lines, "no skip-check entries parsed"
    for line in lines:
        assert re.fullmatch(r"\s+- CKV2?_K8S_\d+  # .{20,}", line), f"skip without a reason: {line}"
    for example in EXAMPLES:
        (tmp_path / f"{example}.yaml").write_text(rendered_text(example))
    result = subprocess.run(
        [str(CHECKOV), "--config-file", str(config), "-d", str(tmp_path), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = yaml.safe_load(result.stdout)
    summary = report["summary"]
    failed = [
        f"{check['check_id']} {check['resource']}" for check in report["results"]["failed_checks"]
    ]
    assert summary["failed"] == 0 and not failed, failed
    assert summary["parsing_errors"] == 0 and summary["passed"] > 100, summary
