"""The two ways ``transcribe`` fails: the whole command (exit status 2), or one file."""

from __future__ import annotations


class UsageError(Exception):
    """The command cannot start as asked: no inputs, a bad option, a model that cannot be
    loaded, a server that cannot be reached (exit status 2). The message is one line."""


class TranscriptionFailed(Exception):
    """One file could not be transcribed (the others go on); the message is one line."""
