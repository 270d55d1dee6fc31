"""TensorRT builder logic through a stand-in tensorrt module (10.x and 11.x surfaces)."""

from __future__ import annotations

import sys

import onnx
import pytest

from vsslrt.engine.cache import BuildEnvironment, EngineCache
from vsslrt.engine.trt_builder import (
    BatchProfile,
    BuildSettings,
    build_engine,
    build_serialized_engine,
    onnx_precision,
    summarize_layers,
)
from vsslrt.engine.trt_common import load_tensorrt, network_flags
from vsslrt.errors import BackendUnavailableError, EngineBuildError, InputError

ENV = BuildEnvironment("11.4.0.106", "NVIDIA H100 80GB HBM3", "9.0", "13.0", "13.0")


@pytest.fixture(scope="module")
def fp16_visual(models_dir, tmp_path_factory):
    from onnxconverter_common import float16

    model = float16.convert_float_to_float16(onnx.load(str(models_dir / "visual.onnx")), keep_io_types=True)
    path = tmp_path_factory.mktemp("fp16") / "visual.onnx"
    onnx.save_model(model, str(path))
    return path


# -- profiles and settings -----------------------------------------------------------------


def test_batch_profile_parses_and_validates():
    profile = BatchProfile.parse("1:16:64")
    assert (profile.min, profile.opt, profile.max) == (1, 16, 64)
    assert str(profile) == "1:16:64"
    assert profile.shapes((-1, 3, 224, 224)) == ((1, 3, 224, 224), (16, 3, 224, 224), (64, 3, 224, 224))
    for bad, message in [
        ("16", "three integers"),
        ("1:x:4", "three integers"),
        ("1:2:3:4", "three integers"),
        ("0:1:4", r"1 <= min <= opt <= max, got 0:1:4"),
        ("4:2:8", r"got 4:2:8"),
        ("1:8:4", r"got 1:8:4"),
    ]:
        with pytest.raises(InputError, match=message):
            BatchProfile.parse(bad)


def test_build_settings_validate():
    profile = BatchProfile(1, 1, 1)
    with pytest.raises(InputError, match="precision to be one of fp32, fp16, int8, got 'int4'"):
        BuildSettings(profile, precision="int4")
    with pytest.raises(InputError, match="optimization_level to be in 0..5, got 6"):
        BuildSettings(profile, optimization_level=6)
    with pytest.raises(InputError, match="workspace_bytes to be > 0"):
        BuildSettings(profile, workspace_bytes=0)


# -- version-dependent flags --------------------------------------------------------------


@pytest.mark.parametrize(("version", "flags"), [("11.4.0.106", 0), ("11.0.0", 0), ("10.16.1", 1 << 1), ("10.0.1", 1 << 1)])
def test_network_is_strongly_typed_on_every_version(make_trt, version, flags):
    assert network_flags(make_trt(version)) == flags


def test_tensorrt_9_is_refused(make_trt):
    with pytest.raises(BackendUnavailableError, match="expected version 10.x or 11.x, got 8.6.1"):
        network_flags(make_trt("8.6.1"))


@pytest.mark.parametrize("version", ["10.16.1", "11.4.0.106"])
def test_build_sets_profile_workspace_level_and_never_a_precision_flag(make_trt, models_dir, version):
    trt = make_trt(version)
    settings = BuildSettings(BatchProfile(1, 8, 32), workspace_bytes=1 << 28, optimization_level=5)
    result = build_serialized_engine(models_dir / "model.onnx", settings, trt=trt)
    (network,), (config,) = trt.record["networks"], trt.record["configs"]
    assert network.flags == (0 if version.startswith("11") else 2)
    assert config.flags == []  # no FP16/BF16/... flag: precision comes from the ONNX
    assert config.cleared_flags == [trt.BuilderFlag.TF32]  # fp32 means fp32, not TF32
    assert config.pool_limits == {trt.MemoryPoolType.WORKSPACE: 1 << 28}
    assert config.builder_optimization_level == 5
    assert config.profiling_verbosity == trt.ProfilingVerbosity.DETAILED
    (profile,) = config.profiles
    assert profile.shapes == {
        "image": ((1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 224, 224)),
        "audio": ((1, 1, 16, 24), (8, 1, 16, 24), (32, 1, 16, 24)),
    }
    assert result.tensorrt_version == version
    assert result.info()["profile_shapes"]["audio"] == [[1, 1, 16, 24], [8, 1, 16, 24], [32, 1, 16, 24]]


def test_fp16_comes_from_the_graph_not_a_flag(make_trt, models_dir, fp16_visual):
    assert onnx_precision(fp16_visual) == "fp16"
    assert onnx_precision(models_dir / "visual.onnx") == "fp32"
    trt = make_trt("10.16.1")  # 10.x still has BuilderFlag.FP16; it must stay unused
    result = build_serialized_engine(fp16_visual, BuildSettings(BatchProfile(1, 4, 8), precision="fp16"), trt=trt)
    assert trt.record["configs"][0].flags == [] and trt.record["configs"][0].cleared_flags == []
    assert result.summary.fp16_layers == 3 and result.summary.fp32_layers == 1
    assert result.summary.fp16_share == pytest.approx(0.75)


def test_precision_must_match_the_graph(make_trt, models_dir, fp16_visual):
    with pytest.raises(EngineBuildError, match="expected a fp16 graph, got a fp32 one"):
        build_serialized_engine(models_dir / "visual.onnx", BuildSettings(BatchProfile(1, 1, 2), precision="fp16"), trt=make_trt())
    with pytest.raises(EngineBuildError, match="expected a fp32 graph, got a fp16 one"):
        build_serialized_engine(fp16_visual, BuildSettings(BatchProfile(1, 1, 2)), trt=make_trt())


def test_timing_cache_is_loaded_and_saved(make_trt, models_dir, tmp_path):
    cache_file = tmp_path / "timing.cache"
    settings = BuildSettings(BatchProfile(1, 2, 4))
    trt = make_trt()
    build_serialized_engine(models_dir / "audio.onnx", settings, timing_cache_path=cache_file, trt=trt)
    assert trt.record["configs"][0].timing_cache.loaded == b""
    assert cache_file.read_bytes() == b"|timings"
    build_serialized_engine(models_dir / "audio.onnx", settings, timing_cache_path=cache_file, trt=trt)
    assert trt.record["configs"][1].timing_cache.loaded == b"|timings"  # the second build starts from the first's timings
    assert cache_file.read_bytes() == b"|timings|timings"


def test_parser_errors_are_listed(make_trt, models_dir, tmp_path):
    model = onnx.load(str(models_dir / "audio.onnx"))
    model.graph.node[0].op_type = "NoSuchOp"
    bad = tmp_path / "bad.onnx"
    onnx.save_model(model, str(bad))
    with pytest.raises(EngineBuildError, match=r"bad.onnx: expected TensorRT's ONNX parser to accept the model, got 1 error\(s\): In node") as info:
        build_serialized_engine(bad, BuildSettings(BatchProfile(1, 1, 1)), trt=make_trt())
    assert "INVALID_GRAPH" in str(info.value) and "NoSuchOp" in str(info.value)


def test_unreadable_file_is_an_input_error(make_trt, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(InputError, match="bad.onnx: expected an ONNX model, got a file that does not parse"):
        build_serialized_engine(bad, BuildSettings(BatchProfile(1, 1, 1)), trt=make_trt())


def test_static_batch_is_refused(make_trt, models_dir, tmp_path):
    model = onnx.load(str(models_dir / "audio.onnx"))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    path = tmp_path / "static.onnx"
    onnx.save_model(model, str(path))
    with pytest.raises(EngineBuildError, match=r"expected input 'audio' to have a dynamic batch dimension .* got shape \(4, 1, 16, 24\)"):
        build_serialized_engine(path, BuildSettings(BatchProfile(1, 1, 1)), trt=make_trt())


def test_failed_build_is_an_error(make_trt, models_dir):
    trt = make_trt()
    trt.fail_build = True
    with pytest.raises(EngineBuildError, match="expected TensorRT to build an engine, got no engine"):
        build_serialized_engine(models_dir / "audio.onnx", BuildSettings(BatchProfile(1, 1, 1)), trt=trt)


def test_inspector_summary_classifies_formats():
    layers = [
        {"Outputs": [{"Format/Datatype": "Row major linear FP16 format"}]},
        {"Outputs": [{"Format/Datatype": "Half"}]},
        {"Outputs": [{"Format/Datatype": "Float"}]},
        {"Outputs": [{"Format/Datatype": "Row major Int8 format"}]},
        {"Outputs": [{"Format/Datatype": "N/A due to dynamic shapes"}]},
        "bare layer name (verbosity below DETAILED)",
    ]
    summary = summarize_layers(layers)
    assert (summary.layers, summary.fp16_layers, summary.fp32_layers, summary.other_layers, summary.unknown_layers) == (6, 2, 1, 1, 2)
    assert summary.fp16_share == pytest.approx(0.5)
    assert summarize_layers([]).fp16_share is None


# -- cached builds ------------------------------------------------------------------------


def test_second_build_reuses_and_a_new_environment_rebuilds(make_trt, models_dir, tmp_path):
    trt = make_trt()
    cache = EngineCache(tmp_path)
    settings = BuildSettings(BatchProfile(1, 4, 8))
    first = build_engine(models_dir / "visual.onnx", settings, cache, name="visual", environment=ENV, trt=trt)
    assert not first.reused and first.plan_path.is_file() and trt.record["builds"] == 1
    assert first.info["inspector"]["fp16_share"] == 0.0
    second = build_engine(models_dir / "visual.onnx", settings, cache, name="visual", environment=ENV, trt=trt)
    assert second.reused and second.plan_path == first.plan_path and trt.record["builds"] == 1
    assert second.info == first.info

    newer = BuildEnvironment(**{**ENV.__dict__, "tensorrt_version": "11.5.0"})
    third = build_engine(models_dir / "visual.onnx", settings, cache, name="visual", environment=newer, trt=trt)
    assert not third.reused and trt.record["builds"] == 2
    assert [str(c) for _, changes in third.replaced for c in changes] == ["tensorrt_version 11.4.0.106 -> 11.5.0"]


def test_build_engine_probes_environment_through_cupy(make_trt, models_dir, tmp_path, fake_cupy, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    built = build_engine(models_dir / "audio.onnx", BuildSettings(BatchProfile(1, 1, 2)), EngineCache(tmp_path), name="audio", trt=make_trt())
    assert built.key.gpu_name == "NVIDIA H100 80GB HBM3"
    assert built.key.compute_capability == "9.0" and built.key.driver_version == "13.0"


# -- absence ------------------------------------------------------------------------------


def test_missing_tensorrt_names_the_trt_extra(monkeypatch, models_dir):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendUnavailableError, match="tensorrt is not installed") as info:
        build_serialized_engine(models_dir / "audio.onnx", BuildSettings(BatchProfile(1, 1, 1)))
    assert "pip install 'vsslrt[trt]'" in str(info.value)


def test_bindings_without_libraries(monkeypatch, tmp_path):
    package = tmp_path / "tensorrt"
    package.mkdir()
    (package / "__init__.py").write_text(
        "raise ImportError('libnvonnxparser.so.11: cannot open shared object file: No such file or directory')\n"
    )
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BackendUnavailableError, match="expected its shared libraries .* libnvonnxparser.so.11"):
        load_tensorrt()


def test_libraries_without_cuda(make_trt, models_dir):
    with pytest.raises(BackendUnavailableError, match="expected trt.Builder to initialise CUDA, got: pybind11"):
        build_serialized_engine(models_dir / "audio.onnx", BuildSettings(BatchProfile(1, 1, 1)), trt=make_trt(cuda_ok=False))
