"""The dtype and shape of a graph input or output: one description for manifests and runners.

A dimension is a positive int (fixed by the model) or a str naming a dimension known only at run
time; the batch dimension is named "batch" (`BATCH`). Engine-folder manifests store exactly this
form (`{"shape": ["batch", 3, 224, 224], "dtype": "float32"}`), and runners describe the inputs they
accept with it too: each converts its backend's own form with `TensorSpec.from_runtime` (ONNX
Runtime reports run-time dimensions as names or None, TensorRT as -1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BATCH = "batch"


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: shape with a name (`"batch"`) for each run-time dimension, and dtype.

    Attributes:
        shape: Positive ints for fixed dimensions, names for dimensions known only at run time.
        dtype: The NumPy name of the element type ("float32", "float16", "int64", ...).
    """

    shape: tuple[int | str, ...]
    dtype: str = "float32"

    @classmethod
    def from_runtime(cls, dtype: Any, dims: Sequence[Any]) -> TensorSpec:
        """A runner backend's description in this form.

        Args:
            dtype: Anything `numpy.dtype` accepts.
            dims: Non-negative ints are fixed; anything else (-1, None, a symbolic name) is a
                run-time dimension: "batch" on the first axis, else the backend's name for it or
                "dim<axis>".
        """
        shape: list[int | str] = []
        for axis, d in enumerate(dims):
            if isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0:
                shape.append(int(d))
            elif axis == 0:
                shape.append(BATCH)
            else:
                shape.append(d if isinstance(d, str) and d else f"dim{axis}")
        return cls(shape=tuple(shape), dtype=np.dtype(dtype).name)

    def fixed(self, axis: int) -> bool:
        """Whether the dimension on `axis` is fixed by the model (not a run-time name)."""
        return not isinstance(self.shape[axis], str)

    def describe(self) -> str:
        """E.g. "float32 (N, 3, 224, 224)": N for a run-time batch axis, ? for other run-time axes."""
        dims = ", ".join(str(d) if self.fixed(i) else ("N" if i == 0 else "?") for i, d in enumerate(self.shape))
        return f"{np.dtype(self.dtype).name} ({dims})"
