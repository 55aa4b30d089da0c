"""Seeds made of what makes a request what it is, so that sampling repeats for a request."""

from __future__ import annotations

import hashlib

# Seeds stay below this: CTranslate2 reads 2**32 - 1 as "no seed given" and seeds at random.
_SEED_LIMIT = 2**32 - 1


def derive_seed(*parts: bytes) -> int:
    """A 32-bit seed from what makes a request what it is."""
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return int.from_bytes(digest.digest(), "little") % _SEED_LIMIT
