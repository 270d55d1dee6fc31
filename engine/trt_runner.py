"""TensorRT runner: a serialized engine executed on a CuPy stream with pre-allocated buffers.

Design (engine-notes §1.3, §1.4, §1.6):

* The plan is read once; those bytes are hashed and compared with the sha256 the engine folder's
  manifest lists (or, for a plan used alone, the one its key file records), and only those same
  bytes are deserialized, so a plan swapped after the check is never loaded.
* The engine's key file (written by the engine cache) is checked against this machine before
  the plan is deserialized; a plan built for another TensorRT, GPU or driver is refused with
  ManifestMismatchError naming what changed. Plans are executable artifacts, so an unkeyed plan
  is refused too unless the caller opts out.
* TensorRT runs host code embedded in a plan (the lean runtime of a version-compatible plan,
  plugin libraries serialized into it) only when `runtime.engine_host_code_allowed` is set. The
  runner sets it to False explicitly, so such plans fail to deserialize, unless the caller passes
  `allow_host_code=True` (the CLI has no such switch: it never runs them). vsslrt never builds such plans.
* One execution context and one non-default CuPy stream per runner (TensorRT warns that the
  default stream adds device-wide synchronisation).
* Every input and output gets one device buffer sized for the profile's maximum batch, allocated
  at activation; tensor addresses are registered once and never change, which CUDA graphs need.
* Each call copies inputs into the buffers, sets the input shapes, enqueues with
  `execute_async_v3(stream.ptr)` (or replays a CUDA graph captured for that batch size after a
  warm-up enqueue, falling back to plain enqueues when capture fails), then copies the outputs out
  and synchronises the stream.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.engine.base import Runner, TensorSpec
from vsslrt.engine.cache import ENVIRONMENT_FIELDS, EngineKey, describe, diff, read_key
from vsslrt.engine.trt_common import create_runtime, load_cupy, load_tensorrt, make_logger
from vsslrt.errors import InputError, ManifestMismatchError, VsslrtError
from vsslrt.engine.probe import build_environment


class TrtRunner(Runner):
    """Run a TensorRT engine (.plan) built by `vsslrt.engine.trt_builder`.

    Args:
        engine_path: The serialized engine.
        expected_key: The key the engine must have been built under (e.g. from the engine
            folder's manifest). Defaults to the key file written beside the plan.
        cuda_graphs: Capture one CUDA graph per batch size and replay it. Defaults to False.
        allow_unverified: Run a plan that has no key file. Defaults to False.
        expected_sha256: The plan's sha256 as the engine folder's manifest lists it; the plan is
            loaded only when its bytes match. Defaults to the sha256 in the key file.
        allow_host_code: Let TensorRT run host code embedded in the plan (version-compatible /
            lean-runtime plans, serialized plugins). Only for plans from a trusted source.
            Defaults to False.
        trt: The tensorrt module. Defaults to importing it.
        cupy: The cupy module. Defaults to importing it.
        name: Name used in messages. Defaults to the file name.

    Attributes:
        graph_failures: Batch-size shapes whose CUDA-graph capture failed -> the reason; those
            shapes run with plain enqueues.
    """

    def __init__(
        self,
        engine_path: str | os.PathLike[str],
        *,
        expected_key: EngineKey | Mapping[str, Any] | None = None,
        cuda_graphs: bool = False,
        allow_unverified: bool = False,
        expected_sha256: str | None = None,
        allow_host_code: bool = False,
        trt: Any = None,
        cupy: Any = None,
        name: str | None = None,
    ) -> None:
        self.engine_path = Path(engine_path)
        super().__init__(name or self.engine_path.name)
        self.expected_key = expected_key
        self.cuda_graphs = cuda_graphs
        self.allow_unverified = allow_unverified
        self.expected_sha256 = expected_sha256
        self.allow_host_code = allow_host_code
        self._trt_module = trt
        self._cupy_module = cupy
        self.graph_failures: dict[tuple, str] = {}
        self._reset()

    def _reset(self) -> None:
        self._trt = self._cupy = self._runtime = self._engine = self._context = self._stream = None
        self._buffers: dict[str, Any] = {}
        self._inputs: dict[str, TensorSpec] = {}
        self._outputs: list[str] = []
        self._profiles: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._current_shapes: tuple | None = None
        self._graphs: dict[tuple, Any] = {}

    # -- lifecycle -----------------------------------------------------------------------

    def activate_impl(self) -> None:
        trt = load_tensorrt(self._trt_module)
        cupy = load_cupy(self._cupy_module)
        if not self.engine_path.is_file():
            raise InputError(
                f"{self.engine_path}: expected a TensorRT engine file, got a path that does not exist.",
                hint="build it with `vsslrt build --backend trt`",
            )
        plan = self.engine_path.read_bytes()  # hashed and deserialized from this one read
        self._verify_plan(plan)
        self._verify_key(trt, cupy, plan)
        runtime = create_runtime(trt, make_logger(trt))
        # TensorRT's default is False too; set it anyway, so the choice is ours and visible.
        runtime.engine_host_code_allowed = bool(self.allow_host_code)
        engine = runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise ManifestMismatchError(
                f"{self.engine_path}: expected TensorRT {trt.__version__} to deserialize the engine, got None "
                "(see TensorRT's log above).",
                hint="rebuild the engine with `vsslrt build` on this machine"
                + (
                    ""
                    if self.allow_host_code
                    else "; a version-compatible plan or one with serialized plugins runs host code and "
                    "loads only with allow_host_code=True (Python API; docs/engines.md), for plans you trust"
                ),
            )
        # The runtime must outlive the engine it deserialized.
        self._trt, self._cupy, self._runtime, self._engine = trt, cupy, runtime, engine
        self._stream = cupy.cuda.Stream(non_blocking=True)
        self._context = engine.create_execution_context()
        self._allocate()

    def _verify_plan(self, plan: bytes) -> None:
        """Refuse plan bytes whose sha256 differs from the one the manifest lists."""
        if self.expected_sha256 is None:
            return
        got = hashlib.sha256(plan).hexdigest()
        if got != self.expected_sha256:
            raise ManifestMismatchError(
                f"{self.engine_path}: expected sha256 {self.expected_sha256[:12]}... as listed in the engine "
                f"folder's manifest, got a different plan (sha256 {got[:12]}...).",
                hint="the plan was changed after it was built; rebuild it with `vsslrt build`",
            )

    def _verify_key(self, trt: Any, cupy: Any, plan: bytes) -> None:
        """Refuse a plan whose key does not match this machine (what changed is in the message)."""
        if self.expected_key is not None:
            expected = self.expected_key if isinstance(self.expected_key, EngineKey) else EngineKey.from_dict(self.expected_key)
        else:
            try:
                expected, plan_hash = read_key(self.engine_path)
            except ManifestMismatchError:
                if self.allow_unverified:
                    return
                raise
            # A key file without the plan's sha256 is not one the engine cache wrote: refuse it too.
            if self.expected_sha256 is None and hashlib.sha256(plan).hexdigest() != plan_hash:
                raise ManifestMismatchError(
                    f"{self.engine_path}: expected the plan to match the sha256 recorded at build time, got different bytes.",
                    hint="the file was modified or damaged; rebuild it with `vsslrt build`",
                )

        here = build_environment(trt=trt, cupy=cupy)
        changes = [c for c in diff(asdict(expected.environment()), asdict(here)) if c.field in ENVIRONMENT_FIELDS]
        if changes:
            raise ManifestMismatchError(
                f"{self.engine_path}: expected the engine's build environment to match this machine, "
                f"got changes: {describe(changes)}.",
                hint="engines only run where they were built; rebuild with `vsslrt build`",
            )

    def _allocate(self) -> None:
        trt, cupy, engine, context = self._trt, self._cupy, self._engine, self._context
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if n not in inputs]
        for name in inputs:
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))
            lo, _opt, hi = (tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(name, 0))
            self._inputs[name] = TensorSpec.from_runtime(dtype, shape)
            self._profiles[name] = (lo, hi)
            context.set_input_shape(name, hi)
            self._buffers[name] = cupy.empty(hi, dtype=dtype)
        # With every input at its maximum, output shapes are their maxima too.
        for name in self._outputs:
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            shape = tuple(int(d) for d in context.get_tensor_shape(name))
            self._buffers[name] = cupy.empty(shape, dtype=dtype)
        for name, buffer in self._buffers.items():
            context.set_tensor_address(name, buffer.data.ptr)
        self._current_shapes = None

    def deactivate_impl(self) -> None:
        if self._stream is not None:
            self._stream.synchronize()
        self._reset()

    def input_specs_impl(self) -> dict[str, TensorSpec]:
        return dict(self._inputs)

    def profile_range(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(min shape, max shape) of an input in the engine's optimisation profile."""
        self._require_active("profile_range")
        return self._profiles[name]

    # -- inference -----------------------------------------------------------------------

    def infer_impl(self, feeds: dict[str, Any], kind: str) -> dict[str, Any]:
        cupy, stream, context = self._cupy, self._stream, self._context
        shapes = tuple((name, tuple(int(d) for d in feeds[name].shape)) for name in self._inputs)
        self._check_profile(shapes)
        if kind == "cupy":
            # The inputs were written on the caller's stream; ours must not read them early.
            cupy.cuda.get_current_stream().synchronize()
        with stream:
            for name, shape in shapes:
                target = _view(self._buffers[name], shape)
                if kind == "cupy":
                    target[...] = feeds[name]
                else:
                    target.set(np.ascontiguousarray(feeds[name]), stream=stream)
        if shapes != self._current_shapes:
            for name, shape in shapes:
                context.set_input_shape(name, shape)
            self._current_shapes = shapes
        self._launch(shapes)
        outputs = {}
        with stream:
            for name in self._outputs:
                view = _view(self._buffers[name], tuple(int(d) for d in context.get_tensor_shape(name)))
                # Copies, because the buffers are reused by the next call.
                outputs[name] = view.get(stream=stream) if kind == "numpy" else view.copy()
        stream.synchronize()
        return outputs

    def _check_profile(self, shapes: tuple) -> None:
        for name, shape in shapes:
            lo, hi = self._profiles[name]
            if any(not a <= d <= b for a, d, b in zip(lo, shape, hi)):
                raise InputError(
                    f"{self.name}: expected input '{name}' to have a shape between {lo} and {hi} "
                    f"(the engine's optimisation profile), got {shape}.",
                    hint="split the batch, or rebuild with a larger --batch min:opt:max",
                )

    def _enqueue(self) -> None:
        if not self._context.execute_async_v3(self._stream.ptr):
            raise VsslrtError(
                f"{self.name}: expected TensorRT's execute_async_v3 to enqueue the engine, got False.",
                hint="see TensorRT's log above; rerun with VSSLRT_DEBUG=1",
            )

    def _launch(self, shapes: tuple) -> None:
        """Run the engine once for the current shapes, through a CUDA graph where possible."""
        if not self.cuda_graphs or shapes in self.graph_failures:
            self._enqueue()
            return
        graph = self._graphs.get(shapes)
        if graph is not None:
            graph.launch(stream=self._stream)
            return
        # First call at this batch size: a plain enqueue computes the result and performs
        # TensorRT's lazy initialisation, which must stay out of the captured graph.
        self._enqueue()
        self._stream.synchronize()
        self._capture(shapes)

    def _capture(self, shapes: tuple) -> None:
        stream = self._stream
        try:
            stream.begin_capture()
            try:
                ok = self._context.execute_async_v3(stream.ptr)
            finally:
                graph = stream.end_capture()
            if not ok:
                raise RuntimeError("execute_async_v3 returned False during capture")
        except Exception as exc:  # noqa: BLE001 - some engines hold non-capturable work; fall back
            self.graph_failures[shapes] = f"{type(exc).__name__}: {exc}"
            return
        self._graphs[shapes] = graph


def _view(buffer: Any, shape: tuple[int, ...]) -> Any:
    """The first prod(shape) elements of a max-size buffer, as a C-contiguous array of `shape`.

    TensorRT reads and writes packed tensors at the registered address, so a leading slice of
    the flat buffer is exactly the layout it expects for any shape within the profile.
    """
    size = int(np.prod(shape, dtype=np.int64))
    if size > buffer.size:
        raise InputError(f"tensor: expected at most {buffer.size} elements for this engine, got shape {shape}.")
    return buffer.reshape(-1)[:size].reshape(shape)
