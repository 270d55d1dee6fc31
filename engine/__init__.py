"""Runners (ONNX Runtime, TensorRT), engine builder and cache, capability probe, latency profiler.

Modules (each imports its heavy backend only inside functions, so importing this package is cheap):

- ``base``: the Runner protocol (activate/deactivate, input_specs, validated infer, last_latency).
- ``ort_runner``: ONNX Runtime on the CPU, or its CUDA / TensorRT execution providers.
- ``trt_common``: loading TensorRT and CuPy (three failure levels), version-dependent flags.
- ``trt_builder``: ONNX -> serialized TensorRT engine (strongly typed, dynamic-batch profile).
- ``trt_runner``: a serialized engine on a CuPy stream with fixed buffers and optional CUDA graphs.
- ``cache``: engine cache keys, what-changed diffs, atomic files.
- ``probe``: what this machine can run, and the `--backend auto` choice.
- ``profiler``: trtexec-style latency statistics; ``flops``: model FLOPs and the measured peak.

This package never imports ``vsslrt.eval`` (and eval never imports it); ``vsslrt`` joins them.
"""
