"""The bundled example heatmap file is the generator's output and passes validation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from vsslrt.eval import evaluate, load_maps

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _generator():
    spec = importlib.util.spec_from_file_location("make_example_maps", EXAMPLES / "make_example_maps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_file_equals_the_generator_output():
    fresh = _generator().make_example()
    with np.load(EXAMPLES / "example_maps.npz") as saved:
        assert sorted(saved.files) == sorted(fresh)
        for key, value in fresh.items():
            np.testing.assert_array_equal(saved[key], value)
            assert saved[key].dtype == value.dtype


def test_example_positives_beat_negatives():
    fields = load_maps(EXAMPLES / "example_maps.npz")
    assert fields["pos"].shape == (64, 7, 7) and fields["gt"].shape == (64, 224, 224)
    out = evaluate(*(fields[c] for c in ("pos", "silence", "noise", "offscreen", "gt")), obj=fields["obj"],
                   group=fields["group"])
    assert out["max/auroc/pos_vs_silence"] > 0.9
    assert out["pos/ciou@adaptive"] > 50.0
    assert 0.0 < out["silence/pia@median"] < 100.0  # weaker, but not zero
