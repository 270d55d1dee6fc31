"""`vsslrt triton`: every config.pbtxt parses into Triton's real ModelConfig schema, the ensemble is wired
consistently, and the Python-backend steps, run with the repository's own ONNX files, give the result
of `vsslrt localize` on the same pair (Triton itself cannot run here)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
from google.protobuf import text_format  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_helpers import manifest_calibration, write_pairs  # noqa: E402

from vsslrt.errors import InputError  # noqa: E402
from vsslrt.pipeline.demo import demo_engine_dirs  # noqa: E402
from vsslrt.pipeline.localize import Localizer  # noqa: E402
from vsslrt.pipeline.triton import FrontendStep, HeadStep, TritonSettings, build_triton_repository  # noqa: E402

ENGINE = demo_engine_dirs()[1]
DTYPES = {"TYPE_FP32": np.float32, "TYPE_BOOL": np.bool_, "TYPE_INT32": np.int32, "TYPE_STRING": np.object_}


def parse(path: Path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    out = tmp_path_factory.mktemp("triton") / "repo"
    return build_triton_repository(ENGINE, manifest_calibration(ENGINE), out, TritonSettings(max_batch=4))


@pytest.fixture(scope="module")
def configs(repo):
    return {name: parse(folder / "config.pbtxt") for name, folder in repo.models.items()}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return write_pairs(tmp_path_factory.mktemp("pairs"), 3)


def test_every_config_parses_into_the_model_config_schema(repo, configs):
    assert set(configs) == {"vsslrt", "vsslrt_frontend", "vsslrt_visual", "vsslrt_audio", "vsslrt_head"}
    for name, config in configs.items():
        assert config.name == name and config.max_batch_size == 4
    assert configs["vsslrt"].platform == "ensemble"
    for name in ("vsslrt_visual", "vsslrt_audio"):
        assert configs[name].platform == "onnxruntime_onnx"
        assert (repo.models[name] / "1" / "model.onnx").is_file()
    for name in ("vsslrt_frontend", "vsslrt_head"):
        assert configs[name].backend == "python"
        assert (repo.models[name] / "1" / "model.py").is_file()
    for name in ("vsslrt_frontend", "vsslrt_visual", "vsslrt_audio", "vsslrt_head"):
        batching = configs[name].dynamic_batching
        assert configs[name].HasField("dynamic_batching") and batching.max_queue_delay_microseconds == 2000
        assert list(batching.preferred_batch_size) == [4]
        assert configs[name].instance_group[0].count == 1


def test_onnx_configs_name_the_graphs_real_tensors(repo, configs):
    import onnx

    for name in ("vsslrt_visual", "vsslrt_audio"):
        graph = onnx.load(str(repo.models[name] / "1" / "model.onnx")).graph
        config = configs[name]
        for declared, actual in ((config.input, graph.input), (config.output, graph.output)):
            assert [t.name for t in declared] == [t.name for t in actual]
            for tensor, value in zip(declared, actual):
                dims = [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]
                assert dims[0] == -1 and list(tensor.dims) == dims[1:]  # batch dimension left to Triton


def test_the_ensemble_is_wired_consistently(configs):
    ensemble = configs["vsslrt"]
    available = {t.name: (t.data_type, list(t.dims)) for t in ensemble.input}
    for step in ensemble.ensemble_scheduling.step:
        model = configs[step.model_name]
        inputs = {t.name: (t.data_type, list(t.dims)) for t in model.input}
        outputs = {t.name: (t.data_type, list(t.dims)) for t in model.output}
        assert set(step.input_map) == set(inputs), step.model_name
        for key, tensor in step.input_map.items():
            assert tensor in available, f"{step.model_name} reads {tensor} before it is produced"
            assert available[tensor] == inputs[key], (step.model_name, key)
        assert set(step.output_map) <= set(outputs)
        for key, tensor in step.output_map.items():
            available[tensor] = outputs[key]
    for tensor in ensemble.output:
        assert available[tensor.name] == (tensor.data_type, list(tensor.dims)), tensor.name


def _run_repository(repo, configs, pairs):
    """The ensemble by hand: frontend step -> the repository's ONNX files -> head step."""
    import onnxruntime as ort

    frontend = FrontendStep.from_file(repo.models["vsslrt_frontend"] / "1" / "vsslrt_model.json")
    head = HeadStep.from_file(repo.models["vsslrt_head"] / "1" / "vsslrt_model.json")
    images = np.array([[p[0].read_bytes()] for p in pairs], dtype=object)
    audios = np.array([[p[1].read_bytes()] for p in pairs], dtype=object)
    front = frontend({"IMAGE": images, "AUDIO": audios})
    embeddings = {}
    for name, key in (("vsslrt_visual", "image"), ("vsslrt_audio", "audio")):
        session = ort.InferenceSession(str(repo.models[name] / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
        embeddings[name] = session.run(None, {configs[name].input[0].name: front[key]})[0]
    return head({"VISUAL": embeddings["vsslrt_visual"], "AUDIO_EMBEDDING": embeddings["vsslrt_audio"],
                 "IMAGE_SIZE": front["IMAGE_SIZE"]}), front


def test_python_backend_logic_equals_vsslrt_localize(repo, configs, pairs):
    out, front = _run_repository(repo, configs, pairs)
    with Localizer(ENGINE, manifest_calibration(ENGINE), threads=1) as localizer:
        expected = [localizer.localize(*p) for p in pairs]
    head_config = {t.name: t for t in configs["vsslrt_head"].output}
    for name, value in out.items():  # shapes and types as the config declares, with the batch in front
        assert value.shape[0] == len(pairs) and list(value.shape[1:]) == list(head_config[name].dims)
        assert value.dtype == DTYPES[model_config_pb2.DataType.Name(head_config[name].data_type)]
    assert front["IMAGE_SIZE"].tolist() == [list(e.image_size) for e in expected]
    for row, want in enumerate(expected):
        doc = json.loads(out["RESULT"][row, 0])
        reference = want.to_json()
        for key in ("name", "image", "audio", "timing_ms"):
            reference.pop(key)
        assert set(doc) == set(reference)
        assert doc["sounding"] == reference["sounding"] and bool(out["SOUNDING"][row, 0]) == want.sounding
        assert doc["score"] == pytest.approx(reference["score"], abs=1e-6)
        assert out["SCORE"][row, 0] == pytest.approx(want.score, abs=1e-6)
        assert [b["box"] for b in doc["boxes"]] == [b["box"] for b in reference["boxes"]]
        np.testing.assert_allclose(out["RAW_MAP"][row], want.raw_map, atol=2e-6)
        assert np.array_equal(out["MASK"][row], want.mask)
    assert any(e.sounding for e in expected)


def _fake_pb_utils():
    """The few names of Triton's `triton_python_backend_utils` that model.py uses."""
    pb = types.ModuleType("triton_python_backend_utils")

    class Tensor:
        def __init__(self, name, value):
            self._name, self._value = name, value

        def name(self):
            return self._name

        def as_numpy(self):
            return self._value

    class InferenceResponse:
        def __init__(self, output_tensors, error=None):
            self.output_tensors, self.error = output_tensors, error

    class TritonError(Exception):
        pass

    pb.Tensor, pb.InferenceResponse, pb.TritonError = Tensor, InferenceResponse, TritonError
    pb.get_input_tensor_by_name = lambda request, name: next((t for t in request if t.name() == name), None)
    return pb


def test_model_py_runs_the_steps_through_the_backend_interface(repo, configs, pairs, monkeypatch):
    pb = _fake_pb_utils()
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", pb)
    folder = repo.models["vsslrt_frontend"]
    spec = importlib.util.spec_from_file_location("vsslrt_triton_frontend_model", folder / "1" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.TritonPythonModel()
    model.initialize({"model_repository": str(folder), "model_version": "1", "model_config": "{}"})
    good = [pb.Tensor("IMAGE", np.array([[pairs[0][0].read_bytes()]], dtype=object)),
            pb.Tensor("AUDIO", np.array([[pairs[0][1].read_bytes()]], dtype=object))]
    bad = [pb.Tensor("IMAGE", np.array([[b"not an image"]], dtype=object)), good[1]]
    answers = model.execute([good, bad])
    assert answers[0].error is None and {t.name() for t in answers[0].output_tensors} == {"image", "audio", "IMAGE_SIZE"}
    assert answers[1].output_tensors == [] and "image: expected a readable image" in str(answers[1].error)
    _, front = _run_repository(repo, configs, pairs[:1])
    image = next(t for t in answers[0].output_tensors if t.name() == "image").as_numpy()
    assert np.array_equal(image, front["image"])


def test_tensorrt_plans_become_tensorrt_plan_models(tmp_path):
    from vsslrt.manifest import Manifest

    folder = tmp_path / "engine"
    shutil.copytree(ENGINE, folder)
    manifest = Manifest.read(folder)
    engines = {}
    for role in ("visual", "audio"):
        (folder / f"{role}.plan").write_bytes(f"plan of {role}".encode())
        manifest.add_file(folder, f"{role}.plan")
        engines[role] = {"file": f"{role}.plan", "key": {}}
    manifest.backend = {"backend": "trt", "precision": "fp32", "batch_profile": "1:8:16", "engines": engines}
    manifest.write(folder)
    repo = build_triton_repository(folder, manifest_calibration(folder), tmp_path / "repo",
                                   TritonSettings(name="san", max_batch=16))
    for name in ("san_visual", "san_audio"):
        config = parse(repo.models[name] / "config.pbtxt")
        assert config.platform == "tensorrt_plan" and config.instance_group[0].kind == config.instance_group[0].KIND_GPU
    assert (repo.models["san_visual"] / "1" / "model.plan").read_bytes() == b"plan of visual"
    with pytest.raises(InputError, match="TensorRT profile"):
        build_triton_repository(folder, manifest_calibration(folder), tmp_path / "repo2", TritonSettings(max_batch=32))


def test_bad_options_and_a_foreign_calibration_are_refused(tmp_path, repo):
    from vsslrt.errors import ManifestMismatchError

    with pytest.raises(InputError, match="new or empty folder"):
        build_triton_repository(ENGINE, manifest_calibration(ENGINE), repo.path)
    with pytest.raises(InputError, match="--name"):
        TritonSettings(name="bad name!")
    other = demo_engine_dirs()[0]
    with pytest.raises(ManifestMismatchError):
        build_triton_repository(ENGINE, manifest_calibration(other), tmp_path / "repo")


def test_cli_writes_the_repository_and_prints_the_tritonserver_command(tmp_path):
    from typer.testing import CliRunner

    from vsslrt.cli.app import create_app

    calibration = tmp_path / "cal.json"
    calibration.write_text(json.dumps(manifest_calibration(ENGINE)))
    result = CliRunner().invoke(create_app(), ["triton", "--engine", str(ENGINE), "--calibration", str(calibration),
                                               "--out", str(tmp_path / "repo"), "--max-batch", "2"])
    assert result.exit_code == 0, result.output
    assert f"tritonserver --model-repository {(tmp_path / 'repo').resolve()}" in result.output
    assert parse(tmp_path / "repo" / "vsslrt_head" / "config.pbtxt").max_batch_size == 2
