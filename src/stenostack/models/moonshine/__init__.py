"""Moonshine models on ONNX Runtime."""
