"""TensorRT runner logic with stand-in tensorrt/cupy modules whose "engines" run on ONNX Runtime."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from vsslrt.engine.base import TensorSpec, array_kind
from vsslrt.engine.cache import EngineCache, key_path_for
from vsslrt.engine.ort_runner import OrtRunner
from vsslrt.engine.trt_builder import BatchProfile, BuildSettings, build_engine
from vsslrt.engine.trt_runner import TrtRunner
from vsslrt.errors import BackendUnavailableError, InputError, ManifestMismatchError


@pytest.fixture
def built(make_trt, fake_cupy, models_dir, tmp_path):
    """A fused-model engine built with the fake TensorRT for the fake H100; returns (trt, plan path, key)."""
    trt = make_trt()
    from vsslrt.engine.probe import build_environment

    env = build_environment(trt=trt, cupy=fake_cupy)
    result = build_engine(models_dir / "model.onnx", BuildSettings(BatchProfile(1, 2, 4)), EngineCache(tmp_path), name="model", environment=env, trt=trt)
    return trt, result.plan_path, result.key


def _reference(models_dir, feeds):
    with OrtRunner(models_dir / "model.onnx") as ort_runner:
        return ort_runner.infer(feeds)["map"]


def test_runs_numpy_feeds_and_matches_onnx_runtime(built, fake_cupy, models_dir, make_feeds):
    trt, plan, _ = built
    with TrtRunner(plan, trt=trt, cupy=fake_cupy) as runner:
        assert runner.input_specs()["image"] == TensorSpec(("batch", 3, 224, 224), "float32")
        assert runner.profile_range("audio") == ((1, 1, 16, 24), (4, 1, 16, 24))
        for batch in (3, 1, 4):  # shapes change between calls; buffers stay the same
            feeds = make_feeds(batch=batch)
            out = runner.infer(feeds)
            assert array_kind(out["map"]) == "numpy" and out["map"].shape == (batch, 7, 7)
            np.testing.assert_allclose(out["map"], _reference(models_dir, feeds), atol=1e-6)
        assert runner.last_latency > 0
        assert runner._stream.non_blocking and runner._stream.synchronized > 0


def test_buffers_are_allocated_once_at_max_batch(built, fake_cupy, make_feeds):
    trt, plan, _ = built
    with TrtRunner(plan, trt=trt, cupy=fake_cupy) as runner:
        addresses = dict(runner._context.addresses)
        assert runner._buffers["image"].shape == (4, 3, 224, 224)
        assert runner._buffers["map"].shape == (4, 7, 7)
        runner.infer(make_feeds(batch=2))
        runner.infer(make_feeds(batch=4))
        assert runner._context.addresses == addresses


def test_outputs_are_copies_not_views_of_reused_buffers(built, fake_cupy, make_feeds, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    trt, plan, _ = built
    with TrtRunner(plan, trt=trt, cupy=fake_cupy) as runner:
        feeds = {k: fake_cupy.asarray(v) for k, v in make_feeds(batch=2).items()}
        first = runner.infer(feeds)["map"]
        assert array_kind(first) == "cupy"
        kept = np.array(first)
        runner.infer({k: fake_cupy.asarray(v) for k, v in make_feeds(batch=2).items()})
        np.testing.assert_array_equal(np.array(first), kept)


def test_batch_outside_the_profile_is_an_input_error(built, fake_cupy, make_feeds):
    trt, plan, _ = built
    with TrtRunner(plan, trt=trt, cupy=fake_cupy) as runner:
        with pytest.raises(InputError, match=r"expected input 'image' to have a shape between \(1, 3, 224, 224\) and \(4, 3, 224, 224\).*got \(5, 3, 224, 224\)"):
            runner.infer(make_feeds(batch=5))


def test_cuda_graph_captured_after_warmup_and_replayed(built, fake_cupy, models_dir, make_feeds):
    trt, plan, _ = built
    with TrtRunner(plan, trt=trt, cupy=fake_cupy, cuda_graphs=True) as runner:
        first = make_feeds(batch=2)
        np.testing.assert_allclose(runner.infer(first)["map"], _reference(models_dir, first), atol=1e-6)
        assert runner._context.enqueues == 1 and fake_cupy.graph_launches == 0  # warm-up enqueue, then capture
        second = make_feeds(batch=2)
        np.testing.assert_allclose(runner.infer(second)["map"], _reference(models_dir, second), atol=1e-6)
        assert fake_cupy.graph_launches == 1  # the replay reads the new inputs at the same addresses
        runner.infer(make_feeds(batch=3))  # a new batch size gets its own graph
        assert len(runner._graphs) == 2 and not runner.graph_failures


def test_failed_capture_falls_back_to_enqueue(built, fake_cupy, models_dir, make_feeds):
    trt, plan, _ = built
    fake_cupy.capture_error = "operation not permitted when stream is capturing"
    with TrtRunner(plan, trt=trt, cupy=fake_cupy, cuda_graphs=True) as runner:
        for _ in range(3):
            feeds = make_feeds(batch=2)
            np.testing.assert_allclose(runner.infer(feeds)["map"], _reference(models_dir, feeds), atol=1e-6)
        assert list(runner.graph_failures.values()) == ["RuntimeError: operation not permitted when stream is capturing"]
        assert fake_cupy.graph_launches == 0 and runner._context.enqueues == 3


def test_engine_for_another_gpu_or_driver_is_refused(built, fakes):
    trt, plan, _ = built
    other = fakes.make_fake_cupy(gpu_name="NVIDIA L4", cc=(8, 9), driver=12080)
    runner = TrtRunner(plan, trt=trt, cupy=other)
    with pytest.raises(ManifestMismatchError, match="gpu_name NVIDIA H100 80GB HBM3 -> NVIDIA L4; compute_capability 9.0 -> 8.9; driver_version 13.0 -> 12.8") as info:
        runner.activate()
    assert "rebuild with `vsslrt build`" in str(info.value)
    assert not runner.is_active


def test_expected_key_from_a_manifest_is_checked(built, fake_cupy):
    trt, plan, key = built
    stale = {**key.to_dict(), "tensorrt_version": "10.16.1"}
    with pytest.raises(ManifestMismatchError, match="tensorrt_version 10.16.1 -> 11.4.0.106"):
        TrtRunner(plan, expected_key=stale, trt=trt, cupy=fake_cupy).activate()
    with TrtRunner(plan, expected_key=key, trt=trt, cupy=fake_cupy) as runner:
        assert runner.is_active


def test_unkeyed_or_tampered_plans_are_refused(built, fake_cupy):
    trt, plan, _ = built
    original = plan.read_bytes()
    plan.write_bytes(original.replace(b'"onnx"', b'"onnx" '))
    with pytest.raises(ManifestMismatchError, match="expected the plan to match the sha256 recorded at build time"):
        TrtRunner(plan, trt=trt, cupy=fake_cupy).activate()
    plan.write_bytes(original)
    key_path_for(plan).unlink()
    with pytest.raises(ManifestMismatchError, match="expected its key file .* got none"):
        TrtRunner(plan, trt=trt, cupy=fake_cupy).activate()
    with TrtRunner(plan, trt=trt, cupy=fake_cupy, allow_unverified=True) as runner:
        assert runner.is_active


def test_missing_tensorrt_or_cupy(monkeypatch, tmp_path, make_trt):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendUnavailableError, match=r"tensorrt is not installed.*pip install 'vsslrt\[trt\]'"):
        TrtRunner(tmp_path / "x.plan").activate()
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(BackendUnavailableError, match=r"cupy is not installed.*pip install 'vsslrt\[gpu\]'"):
        TrtRunner(tmp_path / "x.plan", trt=make_trt()).activate()
