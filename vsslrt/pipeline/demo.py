"""The built-in demo models: their shipped engine folders, the backend they run with, and their engines.

The demo models ship as engine folders in `vsslrt/assets/demo/` (ONNX graphs + manifest, trained by
`export/train_demo.py`): `demo-pos` was trained on positive pairs only, `demo-san` also with
silence and noise as negatives. `vsslrt bench` with no arguments benchmarks both on the synthetic
IS3-like test split (`vsslrt.data.synth.ensure_split`) and shows, side by side, the paper's finding:
the positives-only model still highlights the image under silence and noise, the negative-trained
one does not. This module only locates and builds; the run and its display are the CLI's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vsslrt.errors import InputError
from vsslrt.models import DEMO_ASSETS, DEMO_MODELS
from vsslrt.data.synth import cache_root
from vsslrt.engine.probe import capabilities, choose_backend
from vsslrt.files import sha256_file
from vsslrt.pipeline.build import build_exported_folder


def demo_engine_dirs() -> list[Path]:
    """The shipped demo engine folders (package data)."""
    folders = [DEMO_ASSETS / name for name in DEMO_MODELS]
    missing = [str(f) for f in folders if not (f / "manifest.json").is_file()]
    if missing:
        raise InputError(
            f"demo models: expected engine folders with a manifest.json, got none at {', '.join(missing)}.",
            hint="reinstall vsslrt (the demo models ship as package data), or retrain them with "
            "`python -m vsslrt.export.train_demo`",
        )
    return folders


def demo_backend(requested: str = "auto", caps: Any = None) -> tuple[str, str]:
    """The backend the demos run with, and why: the best this machine has unless one is requested."""

    return choose_backend(requested, caps if caps is not None else capabilities())


def demo_engines(backend: str, *, batch: int, cache: Path | None = None, **build_options: Any) -> list[Path]:
    """Engine folders of the demos for `backend`.

    ONNX Runtime runs the shipped ONNX graphs as they are. For native TensorRT each shipped folder is
    copied once into the cache (`<cache>/demo-engines/<manifest sha256[:12]>/<name>`, never into the
    installed package) and its engines are built there through the engine cache, with the parity
    check against ONNX Runtime fp32; later runs reuse them (`vsslrt.pipeline.build.build_exported_folder`).

    Args:
        backend: The resolved backend ("ort", "ort-cuda", "ort-trt" or "trt").
        batch: The benchmark's batch size (the TensorRT profile's optimum; its maximum is >= this).
        cache: Root of the copies. Defaults to the cache of `vsslrt.data.synth.cache_root`.
        build_options: Passed to `build_exported_folder` (tests inject stand-in modules here).
    """
    shipped = demo_engine_dirs()
    if backend != "trt":
        return shipped
    import shutil
    import tempfile


    root = (cache if cache is not None else cache_root().parent) / "demo-engines"
    root.mkdir(parents=True, exist_ok=True)
    folders = []
    for source in shipped:
        # <digest>/<name>: the folder keeps the model's name, which names its results in the run.
        digest = sha256_file(source / "manifest.json")[:12]
        target = root / digest / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_dir():  # copy into a temporary sibling, then rename: never a half copy
            staging = Path(tempfile.mkdtemp(prefix=f".{source.name}-", dir=target.parent))
            shutil.copytree(source, staging, dirs_exist_ok=True)
            try:
                staging.rename(target)
            except OSError:  # another run made it meanwhile
                shutil.rmtree(staging, ignore_errors=True)
        build_exported_folder(target, backend="trt", precision="fp32", batch=f"1:{batch}:{max(64, batch)}",
                              **build_options)
        folders.append(target)
    return folders
