"""PyTorch runner: an encoder's exported program (`torch.export`, ``.pt2``) on CUDA or the CPU.

For GPU machines that have PyTorch with CUDA (and CuPy) but neither TensorRT nor onnxruntime-gpu.
`vsslrt export` writes one ExportedProgram per encoder beside its ONNX graph (``visual.pt2`` beside
``visual.onnx``), hashed in the manifest like every file a runner loads. This runner reads that
file; it never imports `vsslrt.export` or any model class (the one exception to "only export/
imports torch" is this module, and it imports torch lazily, inside functions).

* Device: "auto" takes CUDA when torch sees a device, else the CPU; "cuda" without one is refused.
* fp32 means fp32: TF32 convolutions and matrix products (on by default for cuDNN convolutions)
  are switched off around each call, so the program meets the same 1e-4 parity as the other fp32
  backends.
* CuPy in, CuPy out without a host copy: inputs and outputs cross by DLPack, and the program runs
  on CuPy's current stream (`torch.cuda.ExternalStream`), so no cross-stream synchronisation is needed;
  the call returns after that stream is synchronised (the base class times it).
* Parity after every load: the program and the ONNX graph beside it (ONNX Runtime on the CPU) run on
  the same seeded inputs, and activation fails with EngineBuildError when the outputs differ by more
  than `parity_max_abs`.
* `compile=True` wraps the program in `torch.compile` (first calls then take compile time).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.engine.base import Runner, TensorSpec
from vsslrt.errors import BackendUnavailableError, EngineBuildError, InputError, missing_extra
from vsslrt.engine.ort_runner import OrtRunner

PROGRAM_SUFFIX = ".pt2"
PARITY_MAX_ABS = 1e-4
DEVICES = ("auto", "cuda", "cpu")
_DTYPES = {"torch.float32": np.float32, "torch.float16": np.float16, "torch.int64": np.int64}


def import_torch() -> Any:
    """Import torch or raise the standard missing-extra error."""
    try:
        import torch
    except ImportError:
        raise missing_extra("torch", "export", "run the torch backend") from None
    return torch


def program_path(graph: str | os.PathLike[str]) -> Path:
    """The program beside an fp32 ONNX graph: ``visual.onnx`` -> ``visual.pt2``.

    Raises:
        BackendUnavailableError: The graph is an fp16 or int8 variant (``visual.int8.onnx``): the programs
            are fp32.
    """
    graph = Path(graph)
    stem = graph.name[: -len(".onnx")] if graph.name.endswith(".onnx") else graph.stem
    if "." in stem:
        precision = stem.rsplit(".", 1)[1]
        raise BackendUnavailableError(
            f"backend torch: expected an fp32 graph (it runs the fp32 programs vsslrt export writes), got the "
            f"{precision} graph {graph}.",
            hint=f"run {precision} with --backend ort or trt, or pass --precision fp32",
        )
    return graph.with_name(stem + PROGRAM_SUFFIX)


class TorchRunner(Runner):
    """Run one exported program (.pt2).

    Args:
        program: The ``.pt2`` file (`torch.export.save`).
        reference: The ONNX graph the program was exported with: its output names name the outputs, and
            it is the parity reference. Defaults to the ``.onnx`` beside the program.
        device: "auto", "cuda" or "cpu". Defaults to "auto".
        compile: Wrap the program in `torch.compile`. Defaults to False.
        threads: torch intra-op threads on the CPU. Defaults to torch's own.
        parity_max_abs: The load-time parity bound. Defaults to 1e-4.
        parity_batch: Samples of the load-time parity check. Defaults to 2.
        name: Name used in messages. Defaults to the file name.

    Attributes:
        device: The device in use after activation ("cuda:0", "cpu").
        parity_max_abs_diff: The load-time parity figure.
    """

    def __init__(self, program: str | os.PathLike[str], *, reference: str | os.PathLike[str] | None = None,
                 device: str = "auto", compile: bool = False, threads: int | None = None,
                 parity_max_abs: float = PARITY_MAX_ABS, parity_batch: int = 2, name: str | None = None) -> None:
        self.program_path = Path(program)
        super().__init__(name or self.program_path.name)
        if device not in DEVICES:
            raise InputError(f"{self.name}: expected device to be one of {', '.join(DEVICES)}, got {device!r}.")
        if parity_batch < 1:
            raise InputError(f"{self.name}: expected parity_batch >= 1, got {parity_batch}.")
        self.reference = Path(reference) if reference is not None else self.program_path.with_suffix(".onnx")
        self.requested_device = device
        self.compile = compile
        self.threads = threads
        self.parity_max_abs = parity_max_abs
        self.parity_batch = parity_batch
        self.device: str | None = None
        self.parity_max_abs_diff: float | None = None
        self._torch: Any = None
        self._module: Any = None
        self._input: tuple[str, TensorSpec] | None = None
        self._output = "output"

    @classmethod
    def beside(cls, graph: str | os.PathLike[str], **options: Any) -> TorchRunner:
        """The runner of the program beside an fp32 ONNX graph (what the backend table makes)."""
        return cls(program_path(graph), reference=graph, **options)

    # -- lifecycle -----------------------------------------------------------------------

    def activate_impl(self) -> None:
        torch = import_torch()
        if not self.program_path.is_file():
            raise InputError(f"{self.program_path}: expected a PyTorch program written by `vsslrt export`, got no such file.",
                             hint=f"re-export the folder with `vsslrt export` (it writes {self.program_path.name})")
        device = self._resolve_device(torch)
        if self.threads and device == "cpu":
            torch.set_num_threads(self.threads)
        try:
            program = torch.export.load(str(self.program_path))
        except Exception as exc:  # torch raises many types for a foreign or truncated file
            raise InputError(f"{self.program_path}: expected a torch.export program, got {type(exc).__name__}: "
                             f"{str(exc)[:200]}.", hint="re-export the folder with `vsslrt export`") from exc
        if device != "cpu":
            from torch.export.passes import move_to_device_pass

            program = move_to_device_pass(program, device)
        self._input = _input_spec(program)
        module = program.module()
        self._module = torch.compile(module) if self.compile else module
        self._torch, self.device = torch, device
        self._output = _output_name(self.reference)
        self._check_parity()

    def deactivate_impl(self) -> None:
        self._module = self._torch = self._input = None
        self.device = None

    def input_specs_impl(self) -> dict[str, TensorSpec]:
        name, spec = self._input
        return {name: spec}

    # -- inference -----------------------------------------------------------------------

    def infer_impl(self, feeds: dict[str, Any], kind: str) -> dict[str, Any]:
        torch = self._torch
        (name, value), = feeds.items()
        on_gpu = self.device != "cpu"
        with self._call_context(kind) as stream:
            if kind == "cupy" and on_gpu:
                x = torch.from_dlpack(value)  # zero-copy view of the CuPy buffer
            else:
                host = value.get() if kind == "cupy" else value
                x = torch.from_numpy(np.ascontiguousarray(host)).to(self.device)
            out = self._module(x)
            if kind == "cupy" and on_gpu:
                import cupy

                result = cupy.from_dlpack(out)  # zero-copy: CuPy owns a reference to the tensor
            else:
                result = out.detach().to("cpu").numpy()
            if stream is not None:
                stream.synchronize()
        return {self._output: result}

    # -- helpers --------------------------------------------------------------------------

    def _resolve_device(self, torch: Any) -> str:
        has_cuda = bool(torch.cuda.is_available())
        if self.requested_device == "cuda" and not has_cuda:
            raise BackendUnavailableError(f"{self.name}: expected torch to see a CUDA device, got none "
                                          f"(torch {torch.__version__}).",
                                          hint="install a CUDA build of torch, or pass device='cpu'")
        if self.requested_device == "cpu" or not has_cuda:
            return "cpu"
        return f"cuda:{torch.cuda.current_device()}"

    @contextlib.contextmanager
    def _call_context(self, kind: str):
        """Inference mode; on CUDA: IEEE fp32 (no TF32) and CuPy's current stream."""
        torch = self._torch
        with torch.inference_mode():
            if self.device == "cpu":
                yield None
                return
            with _ieee_fp32(torch):
                if kind == "cupy":
                    import cupy

                    stream = torch.cuda.ExternalStream(cupy.cuda.get_current_stream().ptr)
                else:
                    stream = torch.cuda.current_stream()
                with torch.cuda.stream(stream):
                    yield stream

    def _check_parity(self) -> None:
        """The program against its ONNX graph on ONNX Runtime (CPU), on seeded inputs."""

        if not self.reference.is_file():
            raise InputError(f"{self.reference}: expected the ONNX graph beside {self.program_path.name} (the parity "
                             "reference), got no such file.", hint="re-export the folder with `vsslrt export`")
        name, spec = self._input
        shape = tuple(d if spec.fixed(i) else self.parity_batch for i, d in enumerate(spec.shape))
        x = np.random.default_rng(0).standard_normal(shape).astype(spec.dtype)
        with OrtRunner(self.reference, provider="cpu") as ort:
            want = ort.infer({name: x})
        got = self.infer_impl({name: x}, "numpy")[self._output]
        expected = want[self._output]
        diff = float(np.max(np.abs(expected.astype(np.float64) - got.astype(np.float64)))) if got.shape == expected.shape \
            else float("inf")
        self.parity_max_abs_diff = diff
        if not diff <= self.parity_max_abs:
            raise EngineBuildError(
                f"{self.program_path}: expected the program on {self.device} to match {self.reference.name} on ONNX "
                f"Runtime within {self.parity_max_abs:g}, got max |diff| {diff:.3g} (shapes {tuple(got.shape)} and "
                f"{tuple(expected.shape)}).",
                hint="re-export the folder (the program and the graph must come from the same export)",
            )


@contextlib.contextmanager
def _ieee_fp32(torch: Any):
    """Switch TF32 off for cuDNN convolutions and CUDA matmuls inside the block (restored after)."""
    conv = getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None)
    if conv is not None:
        saved = (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        try:
            yield
        finally:
            torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = saved
        return
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _input_spec(program: Any) -> tuple[str, TensorSpec]:
    """The one user input of an encoder program: name, dtype and shape (symbolic dims named, "batch" first)."""
    user = list(program.graph_signature.user_inputs)
    if len(user) != 1:
        raise InputError(f"program: expected one input (an encoder), got {len(user)}: {', '.join(map(str, user))}.")
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == user[0])
    value = node.meta["val"]
    return str(user[0]), TensorSpec.from_runtime(_DTYPES.get(str(value.dtype), np.float32), value.shape)


def _output_name(graph: Path) -> str:
    """The graph's output name (the runner returns the program's output under it)."""
    import onnx

    if not graph.is_file():
        return "output"
    model = onnx.load(str(graph), load_external_data=False)
    names = [o.name for o in model.graph.output]
    if len(names) != 1:
        raise InputError(f"{graph}: expected one output (an encoder graph), got {len(names)}.")
    return names[0]
