"""Open the encoders of an engine folder (what `bench` and `localize` run).

An engine folder written by `vsslrt export` holds ONNX graphs; one written by `vsslrt build` also
records the backend it was built for (`manifest.backend`) and, for TensorRT, the engine plans with
their cache keys. This module turns either into ready runners for the split graphs (visual, audio,
and the object-saliency net when present), so that the caller can reuse embeddings across audio
conditions and form maps with `vsslrt.head`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.engine import backends
from vsslrt.errors import InputError, ManifestMismatchError
from vsslrt.manifest import Manifest

@dataclass
class Encoders:
    """Activated runners of one engine folder.

    Attributes:
        folder: The engine folder.
        manifest: Its manifest (files verified against their hashes).
        backend: "ort", "ort-cuda", "ort-trt" or "trt".
        precision: "fp32" or "fp16".
        visual, audio: Runners of the split encoders.
        objectness: Runner of the object-saliency graph, or None when the folder has none.
    """

    folder: Path
    manifest: Manifest
    backend: str
    precision: str
    visual: Any
    audio: Any
    objectness: Any = None
    _outputs: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.folder.name

    def embed_images(self, images: np.ndarray) -> Any:
        """(B, 3, 224, 224) float32 -> (B, K, C, h, w) visual embeddings."""
        return self.visual.infer({"image": images})[self._outputs["visual"]]

    def embed_audio(self, spectrograms: np.ndarray) -> Any:
        """(B, C, F, T) float32 -> (B, K, C) audio embeddings."""
        return self.audio.infer({"audio": spectrograms})[self._outputs["audio"]]

    def object_maps(self, images: np.ndarray) -> Any:
        """(B, 3, 224, 224) -> (B, h, w) raw object-saliency maps."""
        if self.objectness is None:
            raise InputError(f"{self.folder}: expected an object-saliency graph, got none.",
                             hint=f"re-export with `vsslrt export --model {self.manifest.model} --object-net`")
        out = self.objectness.infer({"image": images})[self._outputs["object"]]
        return out.reshape(out.shape[0], out.shape[-2], out.shape[-1])

    def close(self) -> None:
        for runner in (self.visual, self.audio, self.objectness):
            if runner is not None and getattr(runner, "is_active", True):
                try:
                    runner.deactivate()
                except Exception:  # noqa: BLE001 - closing must not mask the error that got us here
                    pass

    def __enter__(self) -> Encoders:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

def _has_graph(manifest: Manifest, role: str, precision: str) -> bool:
    return any(g.role == role and g.precision == precision for g in manifest.graphs)

def open_encoders(
    folder: str | Path,
    *,
    backend: str | None = None,
    precision: str | None = None,
    threads: int | None = None,
    with_object: bool = True,
    allow_host_code: bool = False,
) -> Encoders:
    """Verify an engine folder and activate its encoders.

    Args:
        folder: The engine folder (or its manifest.json).
        backend: Override the folder's backend ("ort" runs the ONNX graphs on the CPU whatever the
            folder was built for). Defaults to the backend recorded by `vsslrt build`, else "ort".
        precision: "fp32" or "fp16". Defaults to the built precision, else fp32.
        threads: ONNX Runtime intra-op threads. Defaults to the usable cores.
        with_object: Also open the object-saliency graph when the folder has one.
        allow_host_code: Let TensorRT run host code embedded in a plan (docs/engines.md).
            Defaults to False.

    Raises:
        InputError: No manifest, or a graph is missing.
        ManifestMismatchError: A file changed since export, or a TensorRT engine does not match here.
        BackendUnavailableError: The backend cannot run here.
    """
    folder = Path(folder)
    if folder.name == "manifest.json":
        folder = folder.parent
    manifest = Manifest.read(folder)
    manifest.verify_files(folder)
    recorded = manifest.backend or {}
    backend = backend or recorded.get("backend", "ort")
    precision = precision or recorded.get("precision", "fp32")
    if precision not in manifest.precisions:
        raise ManifestMismatchError(
            f"{folder}: expected graphs in {precision}, got only {', '.join(manifest.precisions)}.",
            hint="pass --precision with one of those, or rebuild the folder",
        )

    chosen = backends.get(backend)
    # Side graphs (the object net) run on ONNX Runtime whatever the backend: on its provider, or the CPU.
    side = chosen if chosen.ort_provider is not None else backends.get("ort")

    def graph_runner(role: str) -> Any:
        graph = manifest.graph(role, precision)
        return chosen.make_runner(folder / graph.file, threads=threads)

    def engine_runner(role: str) -> Any:
        entry = recorded.get("engines", {}).get(role)
        if recorded.get("backend") != chosen.name or entry is None:
            raise ManifestMismatchError(
                f"{folder}: expected a {chosen.name} engine for the {role} graph, got none in the manifest.",
                hint=f"build one with `vsslrt build --engine {folder} --backend {chosen.name}`",
            )
        # The plan is loaded only if its bytes match the sha256 the manifest lists.
        return chosen.make_runner(folder / entry["file"], expected_key=entry.get("key"),
                                  expected_sha256=manifest.files[entry["file"]].sha256, allow_host_code=allow_host_code)

    make = engine_runner if chosen.builds_engines else graph_runner
    outputs = {
        "visual": manifest.graph("visual", precision).outputs[0],
        "audio": manifest.graph("audio", precision).outputs[0],
    }
    runners: dict[str, Any] = {}
    try:
        for role in ("visual", "audio"):
            runners[role] = make(role)
            runners[role].activate()
        obj_precision = precision if _has_graph(manifest, "object", precision) else "fp32"
        if with_object and _has_graph(manifest, "object", obj_precision):
            graph = manifest.graph("object", obj_precision)
            # The object net is a fixed ImageNet ResNet-18: ONNX Runtime runs it on any backend.
            runners["object"] = side.make_runner(folder / graph.file, threads=threads)
            runners["object"].activate()
            outputs["object"] = graph.outputs[0]
    except BaseException:
        for runner in runners.values():
            try:
                runner.deactivate()
            except Exception:  # noqa: BLE001
                pass
        raise
    return Encoders(folder, manifest, backend, precision, runners["visual"], runners["audio"],
                    runners.get("object"), outputs)
