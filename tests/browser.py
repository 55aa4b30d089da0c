"""A headless browser for the playground's tests: Debian's Chromium driven by Playwright.

Playwright's own browser download is never used (the checks run without internet); the
system's ``/usr/bin/chromium`` is launched instead, with its background traffic off so the
page's own requests are the only ones, and optionally a fake microphone that plays a file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = os.environ.get("STENOSTACK_CHROMIUM", "/usr/bin/chromium")
ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A test plays the audio without a click first.
    "--autoplay-policy=no-user-gesture-required",
)


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (install Debian's chromium, or set STENOSTACK_CHROMIUM)"
    return None


def fake_microphone(wav: Path) -> tuple[str, ...]:
    """Arguments that grant microphone access without asking and make the microphone play
    ``wav`` (once: ``%noloop``; 16-bit PCM WAV) from when capture starts."""
    return (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}%noloop",
    )


@contextmanager
def chromium(*extra_args: str) -> Iterator[Browser]:
    """A headless Chromium, closed on exit."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*ARGS, *extra_args]
        )
        try:
            yield browser
        finally:
            browser.close()
