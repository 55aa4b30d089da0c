"""The router: one OpenAI-compatible front door for many engines (and vLLM servers)."""
