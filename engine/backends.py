"""The backend table: one entry per way of running an engine folder's encoders.

Everything that names a backend reads this table: the probe (what can run here), the encoders (which
runner to open), the build (which engines to make), the distributed driver (which backends need a
GPU per actor) and the CLI (the choices of `--backend`). A new backend is one entry here plus its
runner module; an unknown name is refused with the list of valid ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vsslrt.errors import InputError

AUTO = "auto"
"""Not a backend: the request to pick the best one this machine can run (`probe.choose_backend`)."""


@dataclass(frozen=True)
class Backend:
    """How one backend runs.

    Attributes:
        name: The name users type (`--backend NAME`) and manifests record.
        summary: One line for `--help` and `vsslrt doctor`.
        ort_provider: The ONNX Runtime provider (`OrtRunner(provider=...)`) for ONNX Runtime backends,
            None for backends that run a built engine.
        needs_gpu: Runs only with a visible CUDA device (a Ray actor then asks for one GPU).
        extra: The pip extra that installs it (`pip install 'vsslrt[EXTRA]'`).
        builds_engines: `vsslrt build` compiles engine files for it (TensorRT plans); the others run
            the exported ONNX graphs as they are.
        auto_rank: Preference of `--backend auto` (lower first); None: never picked automatically.
        precisions: The graph precisions it runs (int8: the QDQ graphs of `vsslrt.export.quantize`).
    """

    name: str
    summary: str
    ort_provider: str | None
    needs_gpu: bool
    extra: str
    builds_engines: bool = False
    auto_rank: int | None = None
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")

    @property
    def ort_provider_name(self) -> str | None:
        """ONNX Runtime's own name of the provider ("CUDAExecutionProvider"), as `get_available_providers` lists it."""
        return None if self.ort_provider is None else _ORT_PROVIDER_NAMES[self.ort_provider]

    def make_runner(self, path: str | os.PathLike[str], *, threads: int | None = None,
                    expected_key: Mapping[str, Any] | None = None, expected_sha256: str | None = None,
                    allow_host_code: bool = False) -> Any:
        """A runner (not yet activated) for one graph or engine file of this backend (`expected_sha256`
        and `allow_host_code`: see `TrtRunner`)."""
        if self.ort_provider is not None:
            from vsslrt.engine.ort_runner import OrtRunner  # onnxruntime stays unimported until a runner is made

            return OrtRunner(path, provider=self.ort_provider, intra_op_num_threads=threads)
        if self.name == "torch":
            from vsslrt.engine.torch_runner import TorchRunner  # torch stays unimported until a runner is made

            # `path` is the ONNX graph: the program beside it runs, the graph is the parity reference.
            return TorchRunner.beside(path, threads=threads)
        from vsslrt.engine.trt_runner import TrtRunner  # tensorrt/cupy stay unimported until a runner is made

        return TrtRunner(path, expected_key=expected_key, expected_sha256=expected_sha256, allow_host_code=allow_host_code)


_ORT_PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}

BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("ort", "ONNX Runtime on the CPU (runs everywhere)", ort_provider="cpu", needs_gpu=False,
                extra="cpu", auto_rank=2),
        Backend("trt", "native TensorRT engines (fastest; needs tensorrt, CuPy and a GPU)", ort_provider=None,
                needs_gpu=True, extra="trt", builds_engines=True, auto_rank=0),
        Backend("ort-cuda", "ONNX Runtime's CUDA provider (needs onnxruntime-gpu and a GPU)", ort_provider="cuda",
                needs_gpu=True, extra="gpu", auto_rank=1),
        Backend("ort-trt", "ONNX Runtime's TensorRT provider (never picked by auto: native trt is faster)",
                ort_provider="tensorrt", needs_gpu=True, extra="gpu"),
        Backend("torch", "the exported PyTorch programs (.pt2) on CUDA or the CPU, for GPUs without TensorRT or "
                "onnxruntime-gpu", ort_provider=None, needs_gpu=False, extra="export", precisions=("fp32",)),
    )
}

BACKEND_NAMES: tuple[str, ...] = tuple(BACKENDS)
CHOICES: tuple[str, ...] = (AUTO, *BACKEND_NAMES)
"""What `--backend` accepts."""


def get(name: str) -> Backend:
    """The table entry of `name`; an unknown name is an InputError listing the valid ones."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise InputError(
            f"backend: expected one of {', '.join(CHOICES)}, got {name!r}.",
            hint="`vsslrt doctor` says which of them this machine can run",
        ) from None


def check_choice(name: str) -> str:
    """`name` when it is "auto" or a backend of the table, else the InputError of `get`."""
    if name != AUTO:
        get(name)
    return name


def by_preference() -> list[Backend]:
    """The backends `--backend auto` may pick, best first."""
    return sorted((b for b in BACKENDS.values() if b.auto_rank is not None), key=lambda b: b.auto_rank)
