"""Whisper models on CTranslate2."""
