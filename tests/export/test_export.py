"""Export of the six models: graphs, dynamic batch, parity (independent of the export's own check), fp16."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from vsslrt.errors import EngineBuildError, InputError
from vsslrt.export.architectures import build_model
from vsslrt.export.parity import realistic_images, realistic_spectrograms
from vsslrt.head import similarity_maps, similarity_maps_multi
from vsslrt.manifest import Manifest
from vsslrt.models import get_model

from .conftest import MODELS, PARITY_SAMPLES, THREADS


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_random_init_export_parity_and_dynamic_batch(name, exported):
    folder, manifest = exported(name)
    spec = get_model(name)
    assert Manifest.read(folder) == manifest
    manifest.verify_files(folder)
    assert manifest.checkpoint.random_init and manifest.checkpoint.seed == 0
    for key in ("split.fp32", "fused.fp32"):
        fig = manifest.parity[key]
        assert fig.passed and fig.max_abs_diff <= 1e-4 and fig.batch_sizes == (1, PARITY_SAMPLES - 1)
    for graph in manifest.graphs:
        proto = onnx.load(str(folder / graph.file), load_external_data=False)
        assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
        for value in proto.graph.input:
            assert value.type.tensor_type.shape.dim[0].dim_param == "batch"

    # Independent check: fresh inputs (another seed), batches of 1 and 7, against the PyTorch model
    # rebuilt from the recorded seed.
    images = realistic_images(8, seed=123)
    audios = realistic_spectrograms(8, spec.audio_shape, spec.frontend, seed=123)
    with torch.no_grad():
        reference = build_model(name, seed=0).reference_map(torch.from_numpy(images), torch.from_numpy(audios)).numpy()
    fused = _session(folder / manifest.graph("fused").file)
    maps = np.concatenate([fused.run(["map"], {"image": images[s], "audio": audios[s]})[0]
                           for s in (slice(0, 1), slice(1, 8))])
    assert maps.shape == (8, spec.map_size, spec.map_size)
    assert np.abs(maps - reference).max() <= 1e-4


def test_split_graphs_with_head_equal_the_fused_graph(exported):
    """vsslrt.head on the encoder outputs reproduces the fused graph's map; multi-condition too."""
    folder, manifest = exported("ezvsl")
    spec = get_model("ezvsl")
    images = realistic_images(3, seed=5)
    audios = realistic_spectrograms(3, spec.audio_shape, spec.frontend, seed=5)
    visual = _session(folder / "visual.onnx").run(["visual"], {"image": images})[0]
    audio_sess = _session(folder / "audio.onnx")
    pos = audio_sess.run(["audio_embedding"], {"audio": audios})[0]
    silence = audio_sess.run(["audio_embedding"], {"audio": np.zeros((1, *spec.audio_shape), np.float32)})[0]
    fused = _session(folder / "model.onnx")
    expected_pos = fused.run(["map"], {"image": images, "audio": audios})[0]
    expected_sil = fused.run(["map"], {"image": images, "audio": np.zeros((3, *spec.audio_shape), np.float32)})[0]
    np.testing.assert_allclose(similarity_maps(visual, pos, manifest.head), expected_pos, atol=1e-6, rtol=0)
    both = similarity_maps_multi(visual, [pos, silence], manifest.head)
    assert both.shape == (2, 3, 7, 7)
    np.testing.assert_allclose(both[0], expected_pos, atol=1e-6, rtol=0)
    np.testing.assert_allclose(both[1], expected_sil, atol=1e-6, rtol=0)


def test_fp16_variant_parity_and_fp32_tail(exported):
    from vsslrt.export.onnx_io import tensor_types

    folder, manifest = exported("ezvsl")
    assert manifest.precisions == ("fp32", "fp16")
    for key in ("split.fp16", "fused.fp16"):
        fig = manifest.parity[key]
        assert fig.passed and fig.max_abs_diff <= 5e-3 and fig.argmax_agreement >= 0.99

    graph = manifest.graph("visual", "fp16")
    proto = onnx.load(str(folder / graph.file))
    types = tensor_types(proto)
    conv_weights = [n.input[1] for n in proto.graph.node if n.op_type == "Conv"]
    assert conv_weights and all(types[w] == onnx.TensorProto.FLOAT16 for w in conv_weights)  # really fp16
    assert (folder / graph.file).stat().st_size < 0.6 * (folder / "visual.onnx").stat().st_size
    kept = {n.name: n for n in proto.graph.node if n.name in set(graph.fp32_nodes)}
    assert {"ReduceL2", "Div"} <= {n.op_type for n in kept.values()}
    for node in kept.values():
        for tensor in list(node.input) + list(node.output):
            assert types.get(tensor) != onnx.TensorProto.FLOAT16, (node.name, tensor)
    # The normalisation's epsilon survives exactly (the converter alone would round it to 1e-7).
    clip = next(n for n in kept.values() if n.op_type == "Clip")
    eps = next(onnx.numpy_helper.to_array(t) for t in proto.graph.initializer if t.name == clip.input[1])
    assert eps.dtype == np.float32 and float(eps) == pytest.approx(1e-12, rel=1e-6)
    out = _session(folder / graph.file).run(None, {"image": realistic_images(1, seed=9)})[0]
    assert out.dtype == np.float32


def test_object_network_export(exported):
    folder, manifest = exported("ezvsl")
    assert manifest.parity["object.fp32"].passed
    out = _session(folder / manifest.graph("object").file).run(["object"], {"image": realistic_images(2, seed=1)})[0]
    assert out.shape == (2, 7, 7) and out.min() >= 0


def test_parity_failure_raises_with_the_figures(exported):
    """Graphs checked against a model with other weights: the gate must fail and report numbers."""
    from vsslrt.export.pipeline import _check_parity, _Exported

    folder, manifest = exported("ezvsl")
    spec = get_model("ezvsl")
    files = [_Exported(g.role, g.precision, folder / g.file) for g in manifest.graphs if g.precision == "fp32"]
    images = realistic_images(2, seed=0)
    audios = realistic_spectrograms(2, spec.audio_shape, spec.frontend, seed=0)
    with pytest.raises(EngineBuildError, match=r"split\.fp32: max \|diff\| [0-9.e-]+ \(tolerance 0\.0001\)"):
        _check_parity(spec, build_model("ezvsl", seed=99), None, files, images, audios, THREADS)


def test_bad_arguments_fail_before_any_work(tmp_path):
    from vsslrt.export.pipeline import export_model

    with pytest.raises(InputError, match="precision"):
        export_model("ezvsl", tmp_path, precision="int8")
    with pytest.raises(InputError, match="model: expected one of"):
        export_model("resnet", tmp_path)
    assert not any(tmp_path.iterdir())
