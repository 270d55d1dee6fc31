"""The committed tiny models are exactly what tests/models/make_models.py produces."""

from __future__ import annotations

import importlib.util

import onnx


def test_committed_models_match_their_generator(models_dir, tmp_path):
    spec = importlib.util.spec_from_file_location("make_models", models_dir / "make_models.py")
    make_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_models)
    make_models.main(tmp_path)
    for name in make_models.BUILDERS:
        committed = (models_dir / f"{name}.onnx").read_bytes()
        assert (tmp_path / f"{name}.onnx").read_bytes() == committed, f"{name}.onnx differs: rerun make_models.py"
        onnx.checker.check_model(onnx.load_from_string(committed), full_check=True)
        assert len(committed) < 64 * 1024
