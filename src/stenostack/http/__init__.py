"""HTTP pieces the engine and the router share: OpenAI-shaped error responses, request ids
and the log lines that carry them, and the race between a request's work and its client
hanging up. Nothing here knows about models or backends."""
