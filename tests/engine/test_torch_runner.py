"""The torch backend: exported programs (.pt2) beside the ONNX graphs, run on the CPU here (CUDA + DLPack
on a GPU machine: the gpu-marked test, run by scripts/gpu_check.sh)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from vsslrt.engine import backends  # noqa: E402
from vsslrt.engine.torch_runner import TorchRunner, program_path  # noqa: E402
from vsslrt.errors import BackendUnavailableError, EngineBuildError  # noqa: E402
from vsslrt.files import sha256_file  # noqa: E402
from vsslrt.manifest import Manifest  # noqa: E402
from vsslrt.tensorspec import TensorSpec  # noqa: E402

EMBED, GRID, AUDIO = 8, 7, (1, 16, 24)


class _Visual(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pool = torch.nn.AvgPool2d(32)
        self.conv = torch.nn.Conv2d(3, EMBED, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pool(image)).unsqueeze(1)  # (N, 1, C, 7, 7)
        return torch.nn.functional.normalize(x, dim=2)


class _Audio(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(AUDIO[1], EMBED)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = self.fc(audio.mean(dim=3).flatten(1)).unsqueeze(1)  # (N, 1, C)
        return torch.nn.functional.normalize(x, dim=2)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """An engine folder with ONNX graphs, programs (export_programs) and a manifest that hashes both."""
    from vsslrt.export.pipeline import export_programs

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("torch") / "eng"
    out.mkdir()
    rng = np.random.default_rng(0)
    modules = {"visual": (_Visual().eval(), rng.standard_normal((4, 3, 224, 224)).astype(np.float32)),
               "audio": (_Audio().eval(), rng.standard_normal((4, *AUDIO)).astype(np.float32))}
    _onnx_twins(modules["visual"][0], modules["audio"][0], out)
    written = export_programs(modules, out)
    assert written == ["visual.pt2", "audio.pt2"]
    files = {f: {"sha256": sha256_file(out / f), "size": (out / f).stat().st_size}
             for f in ("visual.onnx", "audio.onnx", *written)}
    doc = {
        "model": "tiny-torch", "frontend": "ezvsl", "head": {"num_maps": 1, "scale": 0.5, "offset": 0.5}, "map_size": GRID,
        "inputs": {"image": {"shape": ["batch", 3, 224, 224], "dtype": "float32"},
                   "audio": {"shape": ["batch", *AUDIO], "dtype": "float32"}},
        "outputs": {"visual": {"shape": ["batch", 1, EMBED, GRID, GRID], "dtype": "float32"},
                    "audio_embedding": {"shape": ["batch", 1, EMBED], "dtype": "float32"}},
        "graphs": [{"role": "visual", "precision": "fp32", "file": "visual.onnx", "inputs": ["image"], "outputs": ["visual"]},
                   {"role": "audio", "precision": "fp32", "file": "audio.onnx", "inputs": ["audio"],
                    "outputs": ["audio_embedding"]}],
        "files": files, "checkpoint": {"random_init": True, "seed": 0}, "format_version": 1,
    }
    Manifest.from_dict(json.loads(json.dumps(doc))).write(out)
    return out


def _onnx_twins(visual: _Visual, audio: _Audio, out: Path) -> None:
    """The same two encoders written as ONNX graphs by hand, with the modules' weights (seconds faster
    than the exporter; the parity check then compares two independent implementations)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def arr(t, name):
        return numpy_helper.from_array(t.detach().numpy().astype(np.float32), name)

    def const(name, values, dtype=np.int64):
        return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)

    def norm(x, y):  # F.normalize: x / max(||x||, 1e-12)
        return [helper.make_node("ReduceL2", [x], ["n"], axes=[2], keepdims=1),
                helper.make_node("Max", ["n", "eps"], ["s"]), helper.make_node("Div", [x, "s"], [y])]

    def save(nodes, inits, name, inp, outp):
        graph = helper.make_graph(nodes, name, [inp], [outp], inits + [const("eps", 1e-12, np.float32)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save_model(model, str(out / f"{name}.onnx"))

    save([helper.make_node("AveragePool", ["image"], ["p"], kernel_shape=[32, 32], strides=[32, 32]),
          helper.make_node("Conv", ["p", "w", "b"], ["c"], kernel_shape=[1, 1]),
          helper.make_node("Unsqueeze", ["c", "one"], ["raw"]), *norm("raw", "visual")],
         [arr(visual.conv.weight, "w"), arr(visual.conv.bias, "b"), const("one", [1])], "visual",
         helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 224, 224]),
         helper.make_tensor_value_info("visual", TensorProto.FLOAT, ["N", 1, EMBED, GRID, GRID]))
    save([helper.make_node("ReduceMean", ["audio"], ["m"], axes=[3], keepdims=0),
          helper.make_node("Flatten", ["m"], ["f"], axis=1),
          helper.make_node("Gemm", ["f", "w", "b"], ["g"], transB=1),
          helper.make_node("Unsqueeze", ["g", "one"], ["raw"]), *norm("raw", "audio_embedding")],
         [arr(audio.fc.weight, "w"), arr(audio.fc.bias, "b"), const("one", [1])], "audio",
         helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["N", *AUDIO]),
         helper.make_tensor_value_info("audio_embedding", TensorProto.FLOAT, ["N", 1, EMBED]))


def test_program_path_is_beside_the_fp32_graph_only():
    assert program_path("/x/visual.onnx") == Path("/x/visual.pt2")
    for name in ("visual.int8.onnx", "audio.fp16.onnx"):
        with pytest.raises(BackendUnavailableError, match="backend torch: expected an fp32 graph") as err:
            program_path(Path("/x") / name)
        assert "--backend ort or trt" in err.value.hint


def test_runner_loads_checks_parity_and_matches_onnx_runtime_on_cpu(folder):
    from vsslrt.engine.ort_runner import OrtRunner

    x = np.random.default_rng(3).standard_normal((5, 3, 224, 224)).astype(np.float32)
    runner = backends.get("torch").make_runner(folder / "visual.onnx", threads=2)
    assert isinstance(runner, TorchRunner)
    with runner, OrtRunner(folder / "visual.onnx") as ort:
        assert runner.device == "cpu"
        assert runner.parity_max_abs_diff is not None and runner.parity_max_abs_diff <= 1e-4
        spec = runner.input_specs()["image"]
        assert spec == TensorSpec(("batch", 3, 224, 224), "float32")
        got = runner.infer({"image": x})["visual"]
        want = ort.infer({"image": x})["visual"]
    assert got.shape == (5, 1, EMBED, GRID, GRID) and isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_program_that_differs_from_its_graph_fails_at_load(folder, tmp_path):
    import shutil

    other = tmp_path / "visual.onnx"
    shutil.copy(folder / "visual.onnx", other)
    torch.manual_seed(99)
    module = _Visual().eval()
    program = torch.export.export(module, (torch.zeros(2, 3, 224, 224),),
                                  dynamic_shapes={"image": {0: torch.export.Dim("batch", min=1, max=64)}})
    torch.export.save(program, str(tmp_path / "visual.pt2"))
    with pytest.raises(EngineBuildError, match="expected the program on cpu to match visual.onnx"):
        TorchRunner.beside(other).activate()


def test_open_encoders_with_the_torch_backend_gives_the_ort_embeddings(folder):
    from vsslrt.pipeline.encoders import open_encoders

    rng = np.random.default_rng(1)
    images = rng.standard_normal((3, 3, 224, 224)).astype(np.float32)
    audio = rng.standard_normal((3, *AUDIO)).astype(np.float32)
    with open_encoders(folder, backend="torch", threads=2) as t, open_encoders(folder, backend="ort", threads=2) as o:
        assert t.backend == "torch"
        np.testing.assert_allclose(t.embed_images(images), o.embed_images(images), atol=1e-5)
        np.testing.assert_allclose(t.embed_audio(audio), o.embed_audio(audio), atol=1e-5)


def test_torch_backend_without_torch_is_one_line_naming_the_extra(folder, monkeypatch):
    from vsslrt.engine.probe import choose_backend

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(BackendUnavailableError, match="torch is not installed") as err:
        TorchRunner.beside(folder / "visual.onnx").activate()
    assert "vsslrt[export]" in err.value.hint
    caps = _cpu_caps()
    with pytest.raises(BackendUnavailableError, match="run the torch backend"):
        choose_backend("torch", caps)


def test_table_entry_runs_fp32_only_and_is_never_picked_automatically():
    entry = backends.get("torch")
    assert entry.precisions == ("fp32",) and entry.auto_rank is None and not entry.needs_gpu
    assert "torch" in backends.CHOICES


@pytest.mark.gpu
def test_cuda_program_takes_and_returns_cupy_arrays_without_a_host_copy(folder):
    import cupy

    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    x = np.random.default_rng(2).standard_normal((4, 3, 224, 224)).astype(np.float32)
    with TorchRunner.beside(folder / "visual.onnx") as runner:
        assert runner.device.startswith("cuda") and runner.parity_max_abs_diff <= 1e-4
        device_in = cupy.asarray(x)
        out = runner.infer({"image": device_in})["visual"]
        assert isinstance(out, cupy.ndarray)
        host = runner.infer({"image": x})["visual"]
    np.testing.assert_allclose(cupy.asnumpy(out), host, atol=1e-5)


def _cpu_caps():
    import importlib.util

    spec = importlib.util.spec_from_file_location("vsslrt_test_torch_fakes", Path(__file__).with_name("_fakes.py"))
    fakes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fakes)
    return fakes.capabilities(with_trt=False)
