"""The runner protocol shared by every inference backend.

A runner wraps one model on one backend. Construction is cheap (it only records settings);
`activate()` loads the model and allocates what inference needs; `deactivate()` releases it. Use
a runner as a context manager so that release always happens::

    with OrtRunner("visual.onnx") as runner:
        outputs = runner.infer({"image": images})
        print(runner.last_latency)

Subclasses implement the `*_impl` hooks. The public methods here do the work that must be the
same for every backend: refusing to run while inactive, validating the feed dict once (names,
dtype, rank, fixed dimensions), returning outputs in the caller's array kind (NumPy in, NumPy
out; CuPy in, CuPy out) and timing each call.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from vsslrt.errors import InputError, VsslrtInternalError
from vsslrt.tensorspec import TensorSpec


def array_kind(array: Any) -> str:
    """Name the array library of `array` without importing any library.

    Returns:
        "numpy", "cupy", or "other" (anything else, including lists and torch tensors).
    """
    root = type(array).__module__.split(".", 1)[0]
    return root if root in ("numpy", "cupy") else "other"


def to_array_kind(array: Any, kind: str) -> Any:
    """Convert one output array to the caller's array kind ("numpy" or "cupy")."""
    have = array_kind(array)
    if have == kind:
        return array
    if kind == "numpy":
        # CuPy's .get() copies device -> host and synchronises the array's stream.
        return array.get() if have == "cupy" else np.asarray(array)
    if kind == "cupy":
        import cupy

        return cupy.asarray(array)
    raise VsslrtInternalError(f"unknown array kind {kind!r}")


class Runner(abc.ABC):
    """Base class of every backend runner.

    Args:
        name: A readable name used in error messages. Defaults to the class name.

    Attributes:
        last_latency: Host wall time in seconds of the last `infer` call, measured with
            `time.perf_counter` around the backend call after the backend has synchronised
            (device work finished) and the outputs are in the caller's array kind. None before
            the first call.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name or type(self).__name__
        self.is_active = False
        self.last_latency: float | None = None
        self._specs: dict[str, TensorSpec] | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def activate(self) -> None:
        """Load the model and allocate resources. Activating twice is harmless."""
        if self.is_active:
            return
        self.activate_impl()
        self.is_active = True
        self._specs = dict(self.input_specs_impl())

    def deactivate(self) -> None:
        """Release everything `activate` acquired. Deactivating twice is harmless."""
        if not self.is_active:
            return
        try:
            self.deactivate_impl()
        finally:
            self.is_active = False
            self._specs = None

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.deactivate()

    # -- inference -----------------------------------------------------------------------

    def input_specs(self) -> dict[str, TensorSpec]:
        """The inputs this runner accepts: name -> `TensorSpec` (a name such as "batch" for each run-time dim)."""
        self._require_active("input_specs")
        assert self._specs is not None
        return dict(self._specs)

    def infer(self, feeds: Mapping[str, Any], *, check_inputs: bool = True) -> dict[str, Any]:
        """Run the model once.

        Args:
            feeds: Input name -> array. All arrays must be of one kind (all NumPy or all CuPy).
            check_inputs: Validate names, dtypes, ranks and fixed dimensions first. Only turn
                this off in a hot loop whose inputs were already validated. Defaults to True.

        Returns:
            Output name -> array, of the same kind as the inputs. The arrays belong to the
            caller: runners never hand out views of buffers that they reuse.

        Raises:
            InputError: The feed dict does not match `input_specs()`.
        """
        self._require_active("infer")
        kind = self._feed_kind(feeds)
        if check_inputs:
            check_feeds(feeds, self.input_specs(), subject=self.name)
        start = time.perf_counter()
        outputs = self.infer_impl(dict(feeds), kind)
        outputs = {name: to_array_kind(value, kind) for name, value in outputs.items()}
        self.last_latency = time.perf_counter() - start
        return outputs

    # -- hooks for subclasses -------------------------------------------------------------

    @abc.abstractmethod
    def activate_impl(self) -> None:
        """Load the model and allocate resources."""

    @abc.abstractmethod
    def input_specs_impl(self) -> Mapping[str, TensorSpec]:
        """Describe the inputs of the loaded model. Called once, right after activation."""

    @abc.abstractmethod
    def infer_impl(self, feeds: dict[str, Any], kind: str) -> Mapping[str, Any]:
        """Run the model on validated feeds and return when the results are ready.

        Args:
            feeds: Validated inputs, all of array kind `kind`.
            kind: "numpy" or "cupy", the caller's array kind. Returning outputs of this kind
                avoids a conversion; any NumPy or CuPy array is accepted.
        """

    @abc.abstractmethod
    def deactivate_impl(self) -> None:
        """Release resources."""

    # -- helpers --------------------------------------------------------------------------

    def _require_active(self, what: str) -> None:
        if not self.is_active:
            raise InputError(
                f"{self.name}: expected the runner to be active before {what}(), got an inactive runner.",
                hint="use `with runner:` or call runner.activate() first",
            )

    def _feed_kind(self, feeds: Mapping[str, Any]) -> str:
        if not isinstance(feeds, Mapping):
            raise InputError(
                f"{self.name}: expected feeds to be a dict of input name -> array, got {type(feeds).__name__}."
            )
        kinds = {name: array_kind(value) for name, value in feeds.items()}
        for name, kind in kinds.items():
            if kind == "other":
                raise InputError(
                    f"{self.name}: expected input '{name}' to be a NumPy or CuPy array, "
                    f"got {type(feeds[name]).__name__}.",
                    hint="convert it with numpy.asarray(...) or cupy.asarray(...)",
                )
        if len(set(kinds.values())) > 1:
            listing = ", ".join(f"{n}={k}" for n, k in sorted(kinds.items()))
            raise InputError(
                f"{self.name}: expected all inputs to be of one array kind, got {listing}.",
                hint="move every input to the same device first",
            )
        return next(iter(kinds.values()), "numpy")


def check_feeds(feeds: Mapping[str, Any], specs: Mapping[str, TensorSpec], *, subject: str) -> None:
    """Validate a feed dict against input specs; raise InputError naming the first problem.

    Checks, in order: missing and unexpected names (reported together), then per input its
    dtype, rank and every fixed dimension (run-time dimensions take any size).
    """
    missing = sorted(set(specs) - set(feeds))
    extra = sorted(set(feeds) - set(specs))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected {', '.join(extra)}")
        raise InputError(
            f"{subject}: expected inputs {', '.join(sorted(specs))}, got {', '.join(sorted(feeds)) or 'none'} "
            f"({'; '.join(parts)}).",
            hint="pass exactly the input names listed by runner.input_specs()",
        )
    for name, spec in specs.items():
        array = feeds[name]
        got_dtype = np.dtype(array.dtype)
        if got_dtype != np.dtype(spec.dtype):
            raise InputError(
                f"{subject}: expected input '{name}' to have dtype {np.dtype(spec.dtype).name}, got {got_dtype.name}.",
                hint=f"cast it with .astype('{np.dtype(spec.dtype).name}')",
            )
        shape = tuple(int(d) for d in array.shape)
        mismatch = len(shape) != len(spec.shape) or any(
            spec.fixed(axis) and want != got for axis, (want, got) in enumerate(zip(spec.shape, shape))
        )
        if mismatch:
            raise InputError(
                f"{subject}: expected input '{name}' to have shape {spec.describe()}, got {shape}.",
                hint="N (batch) and ? may be any size; every other dimension is fixed by the model",
            )
