"""stenostack: an OpenAI-compatible speech-to-text serving stack."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stenostack")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
