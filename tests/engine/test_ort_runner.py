"""ONNX Runtime runner on the CPU with the tiny committed models."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from vsslrt.engine.base import TensorSpec, array_kind
from vsslrt.engine.ort_runner import OrtRunner
from vsslrt.errors import BackendUnavailableError, InputError


def _weights(path):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def _unit(x, axis):
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def reference_visual(image, w):
    pooled = image.reshape(image.shape[0], 3, 7, 32, 7, 32).mean(axis=(3, 5))  # AveragePool 32/32
    conv = np.einsum("nchw,oc->nohw", pooled, w["v_w"][:, :, 0, 0]) + w["v_b"][None, :, None, None]
    return _unit(conv[:, None], axis=2)


def reference_audio(audio, w):
    fc = audio.mean(axis=3)[:, 0] @ w["a_w"].T + w["a_b"]
    return _unit(fc[:, None], axis=2)


def test_specs_and_outputs_match_numpy_reference(models_dir, make_feeds):
    feeds = make_feeds(batch=3)
    w_vis, w_aud = _weights(models_dir / "visual.onnx"), _weights(models_dir / "audio.onnx")
    with OrtRunner(models_dir / "visual.onnx") as visual, OrtRunner(models_dir / "audio.onnx") as audio:
        assert visual.input_specs() == {"image": TensorSpec(("batch", 3, 224, 224), "float32")}
        assert audio.input_specs()["audio"].shape == ("batch", 1, 16, 24)
        v = visual.infer({"image": feeds["image"]})["visual"]
        a = audio.infer({"audio": feeds["audio"]})["audio_embedding"]
    assert v.shape == (3, 1, 512, 7, 7) and a.shape == (3, 1, 512)
    np.testing.assert_allclose(v, reference_visual(feeds["image"], w_vis), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a, reference_audio(feeds["audio"], w_aud), rtol=1e-4, atol=1e-5)


def test_fused_map_is_cosine_of_encoder_outputs(models_dir, make_feeds):
    feeds = make_feeds(batch=2)
    with OrtRunner(models_dir / "model.onnx") as fused, OrtRunner(models_dir / "visual.onnx") as visual, OrtRunner(
        models_dir / "audio.onnx"
    ) as audio:
        assert set(fused.input_specs()) == {"image", "audio"}
        heat = fused.infer(feeds)["map"]
        v = visual.infer({"image": feeds["image"]})["visual"]
        a = audio.infer({"audio": feeds["audio"]})["audio_embedding"]
    expected = np.einsum("nkchw,nkc->nkhw", v, a).mean(axis=1) * 0.5 + 0.5
    assert heat.shape == (2, 7, 7)
    np.testing.assert_allclose(heat, expected, atol=1e-5)
    assert fused.last_latency > 0


def test_cpu_session_settings_are_applied(models_dir):
    runner = OrtRunner(models_dir / "audio.onnx", intra_op_num_threads=1, graph_optimization_level="basic")
    with runner:
        options = runner.session.get_session_options()
        assert options.intra_op_num_threads == 1
        assert "BASIC" in str(options.graph_optimization_level)
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert runner.active_providers == ("CPUExecutionProvider",)


def test_cupy_feeds_round_trip_on_a_cpu_session(models_dir, make_feeds, fake_cupy, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    feeds = make_feeds(("audio",), batch=2)
    with OrtRunner(models_dir / "audio.onnx") as runner:
        host = runner.infer(feeds)["audio_embedding"]
        device = runner.infer({"audio": fake_cupy.asarray(feeds["audio"])})["audio_embedding"]
    assert array_kind(device) == "cupy"
    np.testing.assert_array_equal(device.get(), host)


def test_validation_error_names_the_model(models_dir):
    with OrtRunner(models_dir / "visual.onnx") as runner:
        with pytest.raises(InputError, match=r"visual.onnx: expected input 'image' to have shape float32 \(N, 3, 224, 224\)"):
            runner.infer({"image": np.zeros((1, 3, 32, 32), np.float32)})


def test_unavailable_gpu_provider_is_refused_before_loading(models_dir):
    runner = OrtRunner(models_dir / "audio.onnx", provider="cuda")
    with pytest.raises(BackendUnavailableError, match="expected ONNX Runtime to offer CUDAExecutionProvider") as info:
        runner.activate()
    assert "vsslrt[gpu]" in str(info.value)
    assert not runner.is_active


def test_silent_cpu_fallback_is_detected(models_dir, monkeypatch):
    """ORT lists CUDA as available but cannot load it: it falls back to CPU; we refuse."""
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(BackendUnavailableError, match="CUDAExecutionProvider to be active .* fell back silently"):
        OrtRunner(models_dir / "audio.onnx", provider="cuda").activate()
    with OrtRunner(models_dir / "audio.onnx", provider="auto") as runner:  # "auto" accepts the fallback
        assert runner.active_providers == ("CPUExecutionProvider",)


def test_auto_on_cpu_build_uses_cpu(models_dir):
    with OrtRunner(models_dir / "audio.onnx", provider="auto") as runner:
        assert runner.active_providers[0] == "CPUExecutionProvider"


def test_missing_onnxruntime_names_the_cpu_extra(models_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(BackendUnavailableError, match=r"onnxruntime is not installed") as info:
        OrtRunner(models_dir / "audio.onnx").activate()
    assert "pip install 'vsslrt[cpu]'" in str(info.value)


def test_bad_settings_and_paths(tmp_path, models_dir):
    with pytest.raises(InputError, match="expected provider to be one of cpu, cuda, tensorrt, auto, got 'gpu'"):
        OrtRunner(models_dir / "audio.onnx", provider="gpu")
    with pytest.raises(InputError, match="expected intra_op_num_threads to be >= 1"):
        OrtRunner(models_dir / "audio.onnx", intra_op_num_threads=0)
    with pytest.raises(InputError, match="does not exist"):
        OrtRunner(tmp_path / "missing.onnx").activate()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(InputError, match="expected a model ONNX Runtime can load"):
        OrtRunner(broken).activate()


def test_sessions_keep_quantize_nodes_where_the_graph_puts_them(models_dir, monkeypatch):
    """QDQ propagation is off: in an int8 graph with an fp32 stem it would move the first QuantizeLinear up
    across the stem's fp32 MaxPool onto ONNX Runtime's slow NCHW uint8 MaxPool (docs/int8.md)."""
    import onnxruntime as ort

    seen = {}
    real = ort.InferenceSession

    def recording(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", recording)
    with OrtRunner(models_dir / "audio.onnx") as runner:
        assert runner.session is not None
    assert seen["disabled_optimizers"] == ["QDQPropagationTransformer"]
