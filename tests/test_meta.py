"""Models, health, readiness, version and Prometheus metrics."""

from __future__ import annotations

import httpx
from openai import OpenAI

from tests.servers import RunningServer
from tests.speech import compose, wav_bytes


def test_models_list_with_capabilities(client: OpenAI) -> None:
    models = {model.id: model.model_dump() for model in client.models.list()}
    assert set(models) == {"whisper-base", "whisper-tiny.en", "moonshine-base", "whisper-1"}
    base = models["whisper-base"]["capabilities"]
    tiny = models["whisper-tiny.en"]["capabilities"]
    assert base["translation"] and base["language_detection"] and len(base["languages"]) >= 99
    assert not tiny["translation"] and tiny["languages"] == ["en"]
    assert models["whisper-1"]["root"] == "whisper-base"
    assert models["whisper-1"]["capabilities"] == base
    assert client.models.retrieve("whisper-1").id == "whisper-1"


def test_unknown_model_is_404(engine: RunningServer) -> None:
    response = httpx.get(f"{engine.url}/v1/models/nope", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_health_ready_version(engine: RunningServer) -> None:
    assert httpx.get(f"{engine.url}/health", timeout=10).json() == {"status": "ok"}
    ready = httpx.get(f"{engine.url}/ready", timeout=10)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    version = httpx.get(f"{engine.url}/version", timeout=10).json()
    assert version["version"] and version["ctranslate2"]


def test_metrics_count_requests_errors_audio_and_latency(
    engine: RunningServer, client: OpenAI
) -> None:
    before = engine.metric_samples()
    clip = compose([0.2, "Good evening everyone.", 0.2])
    client.audio.transcriptions.create(
        model="whisper-tiny.en", file=("a.wav", wav_bytes(clip.samples))
    )
    httpx.post(
        f"{engine.url}/v1/audio/transcriptions",
        files={"file": ("a.wav", b"")},
        data={"model": "whisper-tiny.en"},
        timeout=30,
    )
    after = engine.metric_samples()

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    model = {"endpoint": "transcriptions", "model": "whisper-tiny.en"}
    assert delta("stenostack_requests_total", **model, status="200") == 1
    assert delta("stenostack_requests_total", **model, status="400") == 1
    assert delta("stenostack_request_errors_total", **model, status="400", code="empty_file") == 1
    assert abs(delta("stenostack_audio_seconds_total", **model) - clip.duration) < 0.05
    assert delta("stenostack_request_duration_seconds_count", **model) == 2
    assert delta("stenostack_real_time_factor_count", model="whisper-tiny.en") == 1
    assert delta("stenostack_queue_duration_seconds_count", model="whisper-tiny.en") == 1
    assert after[("stenostack_requests_running", (("model", "whisper-tiny.en"),))] == 0
    assert after[("stenostack_requests_waiting", (("model", "whisper-tiny.en"),))] == 0
