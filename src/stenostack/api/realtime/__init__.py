"""The Realtime API in transcription mode: live audio in, text out, over a WebSocket."""
