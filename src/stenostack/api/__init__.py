"""HTTP: OpenAI-compatible endpoints, request parsing, response formats and errors."""
