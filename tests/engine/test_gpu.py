"""Real TensorRT, CuPy and ONNX Runtime GPU paths (skipped without them; run by scripts/gpu_check.sh).

Each test compares against ONNX Runtime on the CPU with the tiny committed models.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from vsslrt.engine.base import array_kind
from vsslrt.engine.cache import EngineCache
from vsslrt.engine.ort_runner import OrtRunner
from vsslrt.engine.profiler import StageTimer, cuda_event_stage
from vsslrt.engine.trt_builder import BatchProfile, BuildSettings, build_engine
from vsslrt.engine.trt_runner import TrtRunner


def _cpu_map(models_dir, feeds):
    with OrtRunner(models_dir / "model.onnx") as runner:
        return runner.infer(feeds)["map"]


@pytest.mark.trt
def test_real_engine_matches_onnx_runtime_and_is_cached(models_dir, make_feeds, tmp_path):
    import cupy

    cache = EngineCache(tmp_path)
    settings = BuildSettings(BatchProfile(1, 4, 8))
    built = build_engine(models_dir / "model.onnx", settings, cache, name="model")
    assert not built.reused and built.info["inspector"]["layers"] > 0
    assert build_engine(models_dir / "model.onnx", settings, cache, name="model").reused
    with TrtRunner(built.plan_path) as runner:
        for batch in (1, 3, 8):
            feeds = make_feeds(batch=batch)
            np.testing.assert_allclose(runner.infer(feeds)["map"], _cpu_map(models_dir, feeds), atol=1e-4)
        feeds = make_feeds(batch=2)
        on_device = runner.infer({k: cupy.asarray(v) for k, v in feeds.items()})["map"]
        assert array_kind(on_device) == "cupy"
        np.testing.assert_allclose(on_device.get(), _cpu_map(models_dir, feeds), atol=1e-4)


@pytest.mark.trt
def test_real_cuda_graphs_replay_new_inputs(models_dir, make_feeds, tmp_path):
    built = build_engine(models_dir / "model.onnx", BuildSettings(BatchProfile(1, 2, 4)), EngineCache(tmp_path), name="model")
    with TrtRunner(built.plan_path, cuda_graphs=True) as runner:
        for _ in range(3):
            feeds = make_feeds(batch=2)
            np.testing.assert_allclose(runner.infer(feeds)["map"], _cpu_map(models_dir, feeds), atol=1e-4)
        assert runner._graphs or runner.graph_failures  # captured, or a recorded fallback


@pytest.mark.trt
def test_real_fp16_engine_runs_fp16_layers(models_dir, make_feeds, tmp_path):
    from onnxconverter_common import float16

    path = tmp_path / "visual.fp16.onnx"
    onnx.save_model(float16.convert_float_to_float16(onnx.load(str(models_dir / "visual.onnx")), keep_io_types=True), str(path))
    built = build_engine(path, BuildSettings(BatchProfile(1, 2, 4), precision="fp16"), EngineCache(tmp_path), name="visual")
    assert built.info["inspector"]["fp16_share"] > 0
    feeds = make_feeds(("image",), batch=2)
    with TrtRunner(built.plan_path) as trt_runner, OrtRunner(models_dir / "visual.onnx") as cpu:
        got = trt_runner.infer(feeds)["visual"].astype(np.float32)
        np.testing.assert_allclose(got, cpu.infer(feeds)["visual"], atol=5e-3)


@pytest.mark.cupy
def test_ort_cuda_provider_with_cupy_io_binding(models_dir, make_feeds):
    import cupy
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu not installed (CPU build of onnxruntime)")
    feeds = make_feeds(batch=3)
    with OrtRunner(models_dir / "model.onnx", provider="cuda") as runner:
        assert runner.active_providers[0] == "CUDAExecutionProvider"
        out = runner.infer({k: cupy.asarray(v) for k, v in feeds.items()})["map"]
    assert array_kind(out) == "cupy"
    np.testing.assert_allclose(out.get(), _cpu_map(models_dir, feeds), atol=1e-4)


@pytest.mark.gpu
def test_cuda_event_stage_and_device_peak():
    import cupy

    from vsslrt.engine.flops import measure_peak

    timer = StageTimer()
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream, cuda_event_stage(timer, "matmul", stream):
        a = cupy.ones((1024, 1024), dtype=cupy.float32)
        a @ a
    assert timer.times["matmul"] > 0
    assert measure_peak(library="cupy", size=2048, repeats=2).gflops > 100
