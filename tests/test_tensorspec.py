"""One TensorSpec for manifests and runners: the runtime forms convert to named run-time dimensions."""

from __future__ import annotations

import numpy as np
import pytest

from vsslrt.engine.base import TensorSpec as RunnerSpec
from vsslrt.engine.base import check_feeds
from vsslrt.errors import InputError
from vsslrt.manifest import TensorSpec as ManifestSpec
from vsslrt.tensorspec import BATCH, TensorSpec


def test_manifests_and_runners_share_the_class():
    assert ManifestSpec is TensorSpec and RunnerSpec is TensorSpec


@pytest.mark.parametrize(("dtype", "dims", "want"), [
    (np.float32, (-1, 3, 224, 224), TensorSpec((BATCH, 3, 224, 224), "float32")),  # TensorRT
    (np.dtype("float16"), [None, "time", 5], TensorSpec((BATCH, "time", 5), "float16")),  # ONNX Runtime
    ("int64", (2, -1, None), TensorSpec((2, "dim1", "dim2"), "int64")),
    (np.float32, (np.int64(4), 0), TensorSpec((4, 0), "float32")),
])
def test_runtime_forms_convert_to_one_convention(dtype, dims, want):
    spec = TensorSpec.from_runtime(dtype, dims)
    assert spec == want
    assert all(type(d) is int for d in spec.shape if not isinstance(d, str))  # plain ints: JSON-ready


def test_describe_names_the_batch_n_and_other_run_time_dims_question_marks():
    assert TensorSpec((BATCH, 3, 224, 224)).describe() == "float32 (N, 3, 224, 224)"
    assert TensorSpec((BATCH, "time", 5), "float16").describe() == "float16 (N, ?, 5)"


def test_check_feeds_lets_run_time_dims_vary_and_fixes_the_others():
    specs = {"audio": TensorSpec((BATCH, 1, "time", 24))}
    for shape in ((1, 1, 7, 24), (5, 1, 300, 24)):
        check_feeds({"audio": np.zeros(shape, np.float32)}, specs, subject="audio.onnx")
    with pytest.raises(InputError, match=r"shape float32 \(N, 1, \?, 24\), got \(2, 1, 7, 25\)"):
        check_feeds({"audio": np.zeros((2, 1, 7, 25), np.float32)}, specs, subject="audio.onnx")
    with pytest.raises(InputError, match="dtype float32, got float64"):
        check_feeds({"audio": np.zeros((2, 1, 7, 24))}, specs, subject="audio.onnx")
