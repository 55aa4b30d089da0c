"""Moonshine's tokenizer, read from ``tokenizer.bin`` for decoding token ids to text.

The file is the byte strings of the tokens in id order, each after its length: one byte
below 128, else two bytes (``first - 128 + second * 128``); a zero length is an unused id.
Ids 0 to 2 are ``<unk>``, ``<s>`` and ``</s>``, 3 to 258 the single bytes (for characters
outside the vocabulary, a token per UTF-8 byte), then SentencePiece pieces, a space written
as "▁" (U+2581). Decoding follows the reference C++ ``BinTokenizer::tokens_to_text``:
specials (``<...>``) are skipped, the bytes joined before they are read as UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

START_TOKEN = 1  # <s>: the decoder's first input
END_TOKEN = 2  # </s>

SPACE_MARKER = "\u2581".encode()
_LONG_LENGTH = 128  # a first length byte from here on is followed by a second


class BinTokenizer:
    """Token ids to text, for one model's vocabulary."""

    def __init__(self, pieces: list[bytes]) -> None:
        if len(pieces) <= END_TOKEN:
            raise ValueError(f"a Moonshine vocabulary holds <unk>, <s> and </s>: {len(pieces)}")
        self._pieces = pieces
        self._special = [_is_special(piece) for piece in pieces]

    @classmethod
    def from_file(cls, path: Path) -> BinTokenizer:
        return cls(parse_pieces(path.read_bytes()))

    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    def decode(self, tokens: Iterable[int]) -> str:
        """The text of ``tokens``, specials left out, without surrounding spaces."""
        joined = b"".join(self._pieces[t] for t in tokens if not self._special[t])
        return _readable(joined).strip()

    def token_bytes(self, token: int) -> bytes:
        """One token's bytes, its space marker as a space (what it adds to the text)."""
        return b"" if self._special[token] else self._pieces[token].replace(SPACE_MARKER, b" ")

    def token_text(self, token: int) -> str:
        return self.token_bytes(token).decode("utf-8", errors="replace")


def parse_pieces(data: bytes) -> list[bytes]:
    """The byte strings of ``tokenizer.bin``, by token id."""
    pieces: list[bytes] = []
    offset = 0
    while offset < len(data):
        length = data[offset]
        offset += 1
        if length >= _LONG_LENGTH:
            if offset >= len(data):
                raise ValueError("tokenizer.bin ends inside a token's length")
            length = data[offset] * _LONG_LENGTH + length - _LONG_LENGTH
            offset += 1
        if offset + length > len(data):
            raise ValueError(f"tokenizer.bin ends inside token {len(pieces)}")
        pieces.append(data[offset : offset + length])
        offset += length
    return pieces


def _is_special(piece: bytes) -> bool:
    # The reference's rule; an unused (empty) id decodes to nothing as well.
    return not piece or (len(piece) > 2 and piece.startswith(b"<") and piece.endswith(b">"))


def _readable(data: bytes) -> str:
    return data.replace(SPACE_MARKER, b" ").decode("utf-8", errors="replace")
