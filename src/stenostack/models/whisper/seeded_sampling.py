"""Sampling that a seed reproduces: the same request samples the same text every time.

CTranslate2 (4.x) has only a process-wide seed, ``ctranslate2.set_random_seed``, and each of
a model's worker threads reads it once, when that thread first samples: after that, setting
it again changes nothing. So every seeded call goes to a freshly loaded copy of the model,
whose worker has never sampled, with the seed set just before, and the copy is dropped
after. A call holds one request's step only: in a batch, one random stream would be shared
by every request in it, and what one request drew would depend on the others.

The price is one model load per sampled decode (measured on 2 CPU cores, from the page
cache: 0.14 s for tiny.en, 0.25 s for base, int8), paid only by the temperature fallback,
which is rare on speech, and by requests that ask for a temperature above 0.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import ctranslate2

# The seed is one per process: no two models may set it and sample at once.
_SEED_LOCK = threading.Lock()


class SeededSampler:
    """Runs sampled ``generate`` calls on fresh copies of a model, each with its own seed."""

    def __init__(self, load: Callable[[], ctranslate2.models.Whisper]) -> None:
        self._load = load

    def generate(
        self,
        seed: int,
        features: ctranslate2.StorageView,
        prompts: Sequence[Sequence[int]],
        **options: Any,
    ) -> list[Any]:
        model = self._load()  # outside the lock: loading needs no seed
        with _SEED_LOCK:
            ctranslate2.set_random_seed(seed)
            results: list[Any] = model.generate(features, [list(p) for p in prompts], **options)
        return results
