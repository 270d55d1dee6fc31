"""vsslrt.pipeline.int8: which nodes a folder's int8 graphs keep in fp32 (`Calibration.keep_fp32`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from vsslrt.errors import InputError  # noqa: E402
from vsslrt.manifest import Manifest  # noqa: E402
from vsslrt.pipeline import int8  # noqa: E402

TESTS = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("vsslrt_test_int8_folder_engine", TESTS / "models" / "int8_engine.py")
int8_engine = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(int8_engine)


def test_keep_fp32_names_apply_to_the_graph_that_has_them(tmp_path):
    split = int8_engine.synth_split(tmp_path / "split", n_records=24)
    folder = int8_engine.make_int8_engine(tmp_path / "eng")
    calibration = int8.Calibration(data=str(split), samples=8, batch=8, gate_samples=8, keep_fp32=("conv_c2",))
    data = int8.load_calibration_data(calibration)
    manifest = int8.quantize_folder(folder, Manifest.read(folder), "ort", calibration, data)
    visual, audio = manifest.quantization["visual"], manifest.quantization["audio"]
    assert "conv_c2" in visual["fp32_nodes"] and visual["quantized_ops"] == 1  # the visual graph's middle conv; its stem
    assert audio["quantized_ops"] == 2 and "conv_c2" not in audio["fp32_nodes"]
    assert visual["keep_fp32"] == ["conv_c2"] and visual["fp32_rule"] == int8.FP32_RULE

    unknown = int8.Calibration(data=str(split), samples=8, batch=8, gate_samples=8, keep_fp32=("conv_c2", "nope"))
    with pytest.raises(InputError, match="keep_fp32: expected node names of the visual or audio graph") as err:
        int8.quantize_folder(folder, Manifest.read(folder), "ort", unknown, data)
    assert "got nope." in err.value.one_line() and "\n" not in err.value.one_line()


def test_fp32_stem_keeps_each_stem_and_makes_the_graphs_again(tmp_path):
    split = int8_engine.synth_split(tmp_path / "split", n_records=24)
    folder = int8_engine.make_int8_engine(tmp_path / "eng")
    quantized = int8.Calibration(data=str(split), samples=8, batch=8, gate_samples=8)
    data = int8.load_calibration_data(quantized)
    manifest = int8.quantize_folder(folder, Manifest.read(folder), "ort", quantized, data)
    manifest.write(folder)
    before = {role: (folder / f"{role}.int8.onnx").stat().st_mtime_ns for role in ("visual", "audio")}
    stems = {"visual": "conv_c1", "audio": "gemm_g1"}
    for role, stem in stems.items():
        assert stem not in manifest.quantization[role]["fp32_nodes"] and manifest.quantization[role]["quantized_ops"] == 2
    kept = int8.Calibration(data=str(split), samples=8, batch=8, gate_samples=8, fp32_stem=True)
    manifest = int8.quantize_folder(folder, Manifest.read(folder), "ort", kept, data)
    for role, stem in stems.items():
        record = manifest.quantization[role]
        assert record["fp32_stem"] is True and stem in record["fp32_nodes"] and record["quantized_ops"] == 1
        assert stem in manifest.graph(role, "int8").fp32_nodes
        assert (folder / f"{role}.int8.onnx").stat().st_mtime_ns != before[role]  # another record: quantized again
    with pytest.raises(InputError, match="fp32_stem: expected True or False, got 'yes'"):
        int8.Calibration(data=str(split), fp32_stem="yes").check()
