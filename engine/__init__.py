"""Runners (ONNX Runtime, TensorRT), engine builder and cache, latency profiler."""
