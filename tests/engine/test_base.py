"""The runner protocol: lifecycle, input validation done once in the base class, output kinds, latency."""

from __future__ import annotations

import numpy as np
import pytest

from vsslrt.engine.base import Runner, TensorSpec, array_kind, check_feeds
from vsslrt.errors import InputError


class DoublingRunner(Runner):
    """Returns 2 * x; counts lifecycle calls."""

    def __init__(self):
        super().__init__("doubler")
        self.activations = 0
        self.deactivations = 0
        self.seen_kind = None

    def activate_impl(self):
        self.activations += 1

    def input_specs_impl(self):
        return {"x": TensorSpec(("batch", 3, 4), "float32")}

    def infer_impl(self, feeds, kind):
        self.seen_kind = kind
        return {"y": np.asarray(feeds["x"]) * 2}  # always NumPy: the base converts to the caller's kind

    def deactivate_impl(self):
        self.deactivations += 1


def test_lifecycle_is_idempotent_and_context_managed():
    runner = DoublingRunner()
    assert not runner.is_active
    with runner:
        runner.activate()
        assert runner.is_active
    runner.deactivate()
    assert (runner.activations, runner.deactivations) == (1, 1)
    assert not runner.is_active


def test_inactive_runner_refuses_with_hint():
    with pytest.raises(InputError, match="expected the runner to be active before infer"):
        DoublingRunner().infer({"x": np.zeros((1, 3, 4), np.float32)})


def test_infer_returns_numpy_for_numpy_and_measures_latency():
    with DoublingRunner() as runner:
        x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
        out = runner.infer({"x": x})
        np.testing.assert_array_equal(out["y"], 2 * x)
        assert array_kind(out["y"]) == "numpy"
        assert runner.last_latency is not None and runner.last_latency > 0


def test_cupy_inputs_give_cupy_outputs(fake_cupy, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "cupy", fake_cupy)
    with DoublingRunner() as runner:
        x = fake_cupy.asarray(np.ones((1, 3, 4), np.float32))
        out = runner.infer({"x": x})
        assert runner.seen_kind == "cupy"
        assert array_kind(out["y"]) == "cupy"
        np.testing.assert_array_equal(out["y"].get(), np.full((1, 3, 4), 2, np.float32))


@pytest.mark.parametrize(
    ("feeds", "message"),
    [
        ({}, r"expected inputs x, got none \(missing x\)"),
        ({"x": np.zeros((1, 3, 4), np.float32), "z": np.zeros(1, np.float32)}, r"\(unexpected z\)"),
        ({"x": np.zeros((1, 3, 4), np.float64)}, "expected input 'x' to have dtype float32, got float64"),
        ({"x": np.zeros((3, 4), np.float32)}, r"expected input 'x' to have shape float32 \(N, 3, 4\), got \(3, 4\)"),
        ({"x": np.zeros((5, 3, 5), np.float32)}, r"got \(5, 3, 5\)"),
        ({"x": [[1.0]]}, "expected input 'x' to be a NumPy or CuPy array, got list"),
    ],
)
def test_validation_names_tensor_expected_and_got(feeds, message):
    with DoublingRunner() as runner:
        with pytest.raises(InputError, match=message) as info:
            runner.infer(feeds)
        assert str(info.value).startswith("doubler:")
        assert "\n" not in str(info.value)


def test_dynamic_dimension_accepts_any_batch():
    with DoublingRunner() as runner:
        for batch in (1, 7):
            assert runner.infer({"x": np.zeros((batch, 3, 4), np.float32)})["y"].shape == (batch, 3, 4)


def test_mixed_array_kinds_are_refused(fake_cupy):
    specs = {"a": TensorSpec((2,), "float32"), "b": TensorSpec((2,), "float32")}

    class TwoInputs(DoublingRunner):
        def input_specs_impl(self):
            return specs

    with TwoInputs() as runner:
        with pytest.raises(InputError, match="one array kind, got a=numpy, b=cupy"):
            runner.infer({"a": np.zeros(2, np.float32), "b": fake_cupy.asarray(np.zeros(2, np.float32))})


def test_check_inputs_false_skips_validation():
    with DoublingRunner() as runner:
        out = runner.infer({"x": np.zeros((2, 2), np.float32)}, check_inputs=False)
        assert out["y"].shape == (2, 2)


def test_check_feeds_is_usable_standalone():
    spec = {"image": TensorSpec(("batch", 3, 224, 224), "float32")}
    check_feeds({"image": np.zeros((2, 3, 224, 224), np.float32)}, spec, subject="visual.onnx")
    with pytest.raises(InputError, match=r"^visual.onnx: expected input 'image'"):
        check_feeds({"image": np.zeros((2, 3, 112, 112), np.float32)}, spec, subject="visual.onnx")
