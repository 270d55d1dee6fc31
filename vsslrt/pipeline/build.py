"""`vsslrt build`: export -> engine -> parity against ONNX Runtime fp32 -> manifest.

This module joins the export stage (PyTorch -> ONNX + manifest) and the engine stage (backend
choice, TensorRT engines with their cache). One call produces an engine folder that `bench` and
`localize` can run:

1. choose the backend (`--backend auto` explains its choice);
2. export the model, unless the folder already holds an export of the same model, weights and
   precision whose files still match their recorded hashes (re-exporting would change the ONNX
   hashes and with them every engine key);
3. for TensorRT, build one engine per graph through the engine cache in `<folder>/engines/`
   (a second build with the same key reuses the engine; a stale engine is rebuilt and the
   report says what changed);
4. run the built engines and ONNX Runtime fp32 (CPU) on the same realistic inputs, at the
   profile's minimum batch and a second batch size, and compare the maps (split encoders + head,
   and the fused graph) with the export stage's gates (fp32: max |diff| <= 1e-4; fp16: <= 5e-3
   with the argmax location unchanged on >= 99 % of samples);
5. record the backend, the engines (files, keys, inspector summary) and the parity figures in
   `manifest.json` (atomically). A failed parity check raises and leaves the manifest untouched.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.engine import backends
from vsslrt.errors import BackendUnavailableError, EngineBuildError, InputError, ManifestMismatchError
from vsslrt.manifest import MANIFEST_NAME, Manifest, ParityFigures, describe_failures
from vsslrt.files import sha256_file
from vsslrt.models import get_model
from vsslrt.engine.cache import EngineCache, describe
from vsslrt.engine.ort_runner import OrtRunner
from vsslrt.engine.probe import build_environment, capabilities, choose_backend
from vsslrt.engine.trt_builder import BatchProfile, BuildSettings, build_engine
from vsslrt.engine.trt_common import load_tensorrt
from vsslrt.engine.trt_runner import TrtRunner
from vsslrt.head import similarity_maps
from vsslrt.pipeline import int8
from vsslrt.engine.cache import key_path_for
from vsslrt.export import pipeline as export_stage
from vsslrt.export.pipeline import ObjectNetOptions
from vsslrt.pipeline.gate import INT8_PARITY_MAX_ABS
from vsslrt.export.parity import (
    FP16_MAX_ABS,
    FP16_MIN_ARGMAX,
    FP32_MAX_ABS,
    compare_maps,
    realistic_images,
    realistic_spectrograms,
    run_in_batches,
)

ENGINE_DIR = "engines"
BUILD_PRECISIONS = ("fp32", "fp16", "int8")
ROLES = ("visual", "audio", "fused")


@dataclass(frozen=True)
class EngineRecord:
    """One built (or reused) engine, or the ONNX graph an ONNX Runtime backend runs."""

    role: str
    file: str  # relative to the folder
    reused: bool
    changes: tuple[str, ...] = ()  # why an older engine of this graph was not reused
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildReport:
    """What `build_engine_folder` did, for the CLI to print."""

    folder: Path
    model: str
    backend: str
    backend_reason: str
    precision: str
    batch_profile: str
    exported: bool  # False when an existing export was reused
    engines: tuple[EngineRecord, ...]
    parity: dict[str, ParityFigures]
    gate: Any = None  # vsslrt.pipeline.gate.GateFigures of an int8 (or gated fp16) build


def build_engine_folder(
    model: str,
    out: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    seed: int = 0,
    backend: str = "auto",
    precision: str = "fp32",
    batch: str = "1:16:64",
    workspace_bytes: int = 1 << 30,
    optimization_level: int = 3,
    parity_samples: int = 8,
    threads: int | None = None,
    caps: Any = None,
    trt: Any = None,
    cupy: Any = None,
    export: Callable[..., Manifest] | None = None,
    calibration: Any = None,
    object_net: bool = False,
    imagenet_weights: str | os.PathLike[str] | None = None,
    reuse_export: bool = True,
) -> BuildReport:
    """Export a registry model and build its engines into one folder; see the module docstring.

    Args:
        model: Registry model name (`vsslrt.models.REGISTRY`).
        out: The engine folder (created).
        checkpoint: Official checkpoint; None exports a seeded random initialisation.
        seed: Seed of the random initialisation and of the parity inputs. Defaults to 0.
        backend: "auto", "ort", "trt", "ort-cuda" or "ort-trt". Defaults to "auto".
        precision: "fp32" or "fp16" (the engines' precision; fp16 uses the fp16 ONNX). Defaults to "fp32".
        batch: TensorRT batch profile "min:opt:max". Defaults to "1:16:64".
        workspace_bytes: TensorRT builder workspace. Defaults to 1 GiB.
        optimization_level: TensorRT builder optimisation level 0..5. Defaults to 3.
        parity_samples: Samples for the parity check (at least 2). Defaults to 8.
        threads: CPU threads for export and ONNX Runtime. Defaults to their own choice.
        caps: Capabilities to decide from. Defaults to probing this machine.
        trt: The tensorrt module. Defaults to importing it when the backend is trt.
        cupy: The cupy module. Defaults to importing it when the backend is trt.
        export: The export function. Defaults to `vsslrt.export.pipeline.export_model`.
        object_net: Also export the OGL object-saliency network (`object.onnx`), as `vsslrt export
            --object-net` does; without it a paper-protocol bench has no `_OGL` keys. Defaults to False.
        imagenet_weights: torchvision ImageNet ResNet-18 weights for the object network (and the visual
            backbone of a random-init export), as `vsslrt export --imagenet-weights`. Never downloaded.
        calibration: `vsslrt.pipeline.int8.Calibration`: the calibration data of an int8 build (default:
            the built-in synthetic set) and the accuracy gate's data and limits; given for fp16, it gates fp16 too.
        reuse_export: Keep an intact export of the same model and weights in `out` (step 2). False always
            exports, as `vsslrt export --precision int8` does (export, then this build). Defaults to True.

    Raises:
        InputError: Bad model, precision, batch profile, checkpoint path or calibration options.
        BackendUnavailableError: The requested backend cannot run here, or not at `precision` (the message says why).
        EngineBuildError: Export, engine build, the parity check or the accuracy gate failed.
    """

    spec = get_model(model)
    profile = _check_options(precision, parity_samples, batch)
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise InputError(f"{checkpoint}: expected a checkpoint file, got a path that does not exist.")
    folder = Path(out)
    chosen, reason = choose_backend(backend, caps if caps is not None else capabilities())
    # Before minutes of export: a precision the backend cannot run, calibration data that does not load.
    calibration, data = _calibration_data(chosen, precision, calibration)

    objects = ObjectNetOptions(object_net, imagenet_weights)
    objects.check()
    manifest = reusable_export(folder, spec.name, checkpoint, seed, precision, objects=objects) if reuse_export else None
    exported = manifest is None
    if manifest is None:
        export = export or export_stage.export_model  # read at call time; it imports torch only when it runs
        # fp16 engines are checked against the fp32 graphs, so an fp16 build exports both.
        exported_precision = "both" if precision == "fp16" else "fp32"
        # Only the object options that are set reach the export function (an injected one need not know them).
        manifest = export(spec.name, folder, checkpoint, seed=seed, precision=exported_precision, threads=threads,
                          **objects.export_kwargs())
    manifest, gating = _reduced_precision(folder, manifest, precision, chosen, calibration, data)
    report = _build_and_record(folder, manifest, chosen, reason, precision, profile, exported, workspace_bytes,
                               optimization_level, parity_samples, seed, threads, trt, cupy)
    return _gated(report, gating, calibration, threads)


def build_exported_folder(
    folder: str | os.PathLike[str],
    *,
    backend: str = "auto",
    precision: str = "fp32",
    batch: str = "1:16:64",
    workspace_bytes: int = 1 << 30,
    optimization_level: int = 3,
    parity_samples: int = 8,
    seed: int = 0,
    threads: int | None = None,
    caps: Any = None,
    trt: Any = None,
    cupy: Any = None,
    calibration: Any = None,
) -> BuildReport:
    """Build the engines of a folder that already holds ONNX graphs and their manifest (steps 1 and
    3-5 of the module docstring): a shipped demo model, or an export made on another machine.

    Args: as `build_engine_folder`, without the export's (model, checkpoint).

    Raises:
        InputError: Bad precision or batch profile, no manifest, or no graphs of `precision`.
        ManifestMismatchError: A graph no longer matches the sha256 its manifest records.
        BackendUnavailableError: The requested backend cannot run here.
        EngineBuildError: Engine build or the parity check failed.
    """

    profile = _check_options(precision, parity_samples, batch)
    folder = Path(folder)
    manifest = Manifest.read(folder)
    changed = _changed_graph(folder, manifest)
    if changed is not None:
        raise ManifestMismatchError(
            f"{folder / changed}: expected the graph recorded in {folder / MANIFEST_NAME} (sha256), got a missing "
            "or different file.", hint="re-export the model into this folder")
    missing = _missing_graphs(manifest, precision)
    if missing:
        raise InputError(f"{folder}: expected {precision} and fp32 visual and audio graphs, got none for "
                         f"{', '.join(f'{r} {p}' for r, p in missing)}.", hint="export with --precision both for fp16 engines")
    chosen, reason = choose_backend(backend, caps if caps is not None else capabilities())
    calibration, data = _calibration_data(chosen, precision, calibration)
    manifest, gating = _reduced_precision(folder, manifest, precision, chosen, calibration, data)
    report = _build_and_record(folder, manifest, chosen, reason, precision, profile, False, workspace_bytes,
                               optimization_level, parity_samples, seed, threads, trt, cupy)
    return _gated(report, gating, calibration, threads)


def _calibration_data(backend: str, precision: str, calibration: Any):
    """(calibration, its loaded data) of a gated build: int8, or fp16 with a calibration given; (None, None)
    otherwise. Refuses a precision the backend cannot run."""
    _check_precision(backend, precision)
    if precision == "fp32" or (precision == "fp16" and calibration is None):
        return None, None
    calibration = calibration if calibration is not None else int8.Calibration()
    return calibration, int8.load_calibration_data(calibration)


def _reduced_precision(folder: Path, manifest: Manifest, precision: str, backend: str, calibration: Any, data: Any):
    """int8: write the int8 graphs (`vsslrt.pipeline.int8`). Returns the manifest and what `_gated` needs
    (None for a build without a gate)."""
    if data is None:
        return manifest, None
    before = (folder / MANIFEST_NAME).read_bytes() if (folder / MANIFEST_NAME).is_file() else None
    if precision == "int8":
        manifest = int8.quantize_folder(folder, manifest, backend, calibration, data)
    return manifest, (data, before, calibration)


def _check_precision(backend: str, precision: str) -> None:
    """BackendUnavailableError when `backend` does not run `precision` graphs (`vsslrt.engine.backends`)."""
    entry = backends.get(backend)
    if precision not in entry.precisions:
        able = [b.name for b in backends.BACKENDS.values() if precision in b.precisions]
        raise BackendUnavailableError(
            f"backend {backend}: expected a precision it runs ({', '.join(entry.precisions)}), got {precision}.",
            hint=f"build {precision} for {', '.join(able)}; or pass --precision fp32")


def _gated(report: BuildReport, gating: Any, calibration: Any, threads: int | None) -> BuildReport:
    """The report with the accuracy gate's figures (the gate raises when it fails)."""
    if gating is None:
        return report
    from dataclasses import replace


    data, before, calibration = gating
    # The gate's batches stay within the engines' optimisation profile ("min:opt:max").
    batch = min(32, int(report.batch_profile.rsplit(":", 1)[-1]))
    figures = int8.gate_build(report.folder, precision=report.precision, backend=report.backend, batch=batch,
                              calibration=calibration, data=data, threads=threads, previous_manifest=before)
    return replace(report, gate=figures)


def _build_and_record(folder, manifest, chosen, reason, precision, profile, exported, workspace_bytes,
                      optimization_level, parity_samples, seed, threads, trt, cupy) -> BuildReport:
    """Engines (TensorRT) or graphs (ONNX Runtime), parity against ONNX Runtime fp32, manifest record."""
    roles = [r for r in ROLES if _has_graph(manifest, r, precision)]
    if chosen == "trt":
        engines = _build_trt_engines(
            folder, manifest, roles, precision, profile, workspace_bytes, optimization_level, trt, cupy
        )
        runners = {e.role: _trt_runner_factory(folder / e.file, e.info["key"], trt, cupy) for e in engines}
    else:
        engines = tuple(EngineRecord(r, manifest.graph(r, precision).file, reused=True) for r in roles)
        runners = {e.role: _ort_runner_factory(folder / e.file, backends.get(chosen).ort_provider, threads) for e in engines}
        if chosen == "torch":  # the programs beside the graphs (`vsslrt.engine.torch_runner`)
            runners = {e.role: (lambda path=folder / e.file: backends.get("torch").make_runner(path, threads=threads))
                       for e in engines}

    batches = _parity_batches(profile, parity_samples)
    parity = check_parity(folder, manifest, runners, precision, batches, seed, threads, label=f"{chosen} {precision}")
    detail = describe_failures(parity)
    if detail:
        raise EngineBuildError(
            f"{folder}: expected the {chosen} {precision} engines to match ONNX Runtime fp32, got {detail}.",
            hint="try --precision fp32, or report the model and GPU (TensorRT has had miscompiles)",
        )

    _record(folder, manifest, chosen, reason, precision, profile, engines, parity)
    return BuildReport(folder, manifest.model, chosen, reason, precision, str(profile), exported, engines, parity)


# -- export reuse ---------------------------------------------------------------------------


def reusable_export(
    folder: Path, model: str, checkpoint: str | os.PathLike[str] | None, seed: int, precision: str,
    *, objects: Any = None,
) -> Manifest | None:
    """The folder's manifest when it is an intact export of the same model and weights (and, with
    `objects` (`vsslrt.export.pipeline.ObjectNetOptions`), of the object network asked for) that has the
    graphs of `precision` and the fp32 graphs (the parity reference)."""
    if not (folder / MANIFEST_NAME).is_file():
        return None
    try:
        manifest = Manifest.read(folder)
    except (InputError, ManifestMismatchError):
        return None
    if _changed_graph(folder, manifest) is not None:
        return None
    ck = manifest.checkpoint
    if manifest.model != model:
        return None
    if checkpoint is None:
        same_weights = ck.random_init and ck.seed == seed
    else:
        same_weights = not ck.random_init and ck.sha256 == sha256_file(checkpoint)
    if not same_weights or _missing_graphs(manifest, precision):
        return None
    if objects is not None and not objects.satisfied_by(manifest, random_init=checkpoint is None):
        return None
    return manifest


def _check_options(precision: str, parity_samples: int, batch: str) -> Any:
    """Validate the build options shared by both entry points; returns the parsed batch profile."""

    if precision not in BUILD_PRECISIONS:
        raise InputError(f"build: expected precision to be one of {', '.join(BUILD_PRECISIONS)}, got {precision!r}.")
    if parity_samples < 2:
        raise InputError(f"build: expected parity_samples to be >= 2, got {parity_samples}.")
    return BatchProfile.parse(batch)


def _changed_graph(folder: Path, manifest: Manifest) -> str | None:
    """The first graph file that is missing or no longer matches its recorded sha256, else None
    (the graphs only: engines are checked by their own keys)."""
    for graph in manifest.graphs:
        path, record = folder / graph.file, manifest.files.get(graph.file)
        if record is None or not path.is_file() or sha256_file(path) != record.sha256:
            return graph.file
    return None


def _missing_graphs(manifest: Manifest, precision: str) -> list[tuple[str, str]]:
    """(role, precision) of the encoder graphs a build of `precision` needs and the folder lacks: those
    of `precision`, and the fp32 ones (the parity reference)."""
    # int8 graphs are made by the build itself, from the fp32 ones.
    exported = "fp32" if precision == "int8" else precision
    return [(r, p) for r in ("visual", "audio") for p in sorted({exported, "fp32"}) if not _has_graph(manifest, r, p)]


def _has_graph(manifest: Manifest, role: str, precision: str) -> bool:
    return any(g.role == role and g.precision == precision for g in manifest.graphs)


# -- engines ---------------------------------------------------------------------------------


def _build_trt_engines(
    folder, manifest, roles, precision, profile, workspace_bytes, level, trt, cupy
) -> tuple[EngineRecord, ...]:

    trt = load_tensorrt(trt)
    environment = build_environment(trt=trt, cupy=cupy)
    settings = BuildSettings(profile, precision=precision, workspace_bytes=workspace_bytes, optimization_level=level)
    cache = EngineCache(folder / ENGINE_DIR)
    records = []
    for role in roles:
        graph = manifest.graph(role, precision)
        built = build_engine(
            folder / graph.file, settings, cache, name=f"{role}-{precision}", environment=environment, trt=trt
        )
        records.append(
            EngineRecord(
                role=role,
                file=os.path.relpath(built.plan_path, folder).replace(os.sep, "/"),
                reused=built.reused,
                changes=tuple(describe(changes) for _, changes in built.replaced),
                info={**built.info, "key": built.key.to_dict(), "onnx": graph.file},
            )
        )
    return tuple(records)


def _trt_runner_factory(plan: Path, key: Mapping[str, Any], trt: Any, cupy: Any) -> Callable[[], Any]:
    def make():

        return TrtRunner(plan, expected_key=key, trt=trt, cupy=cupy)

    return make


def _ort_runner_factory(path: Path, provider: str, threads: int | None) -> Callable[[], Any]:
    def make():

        return OrtRunner(path, provider=provider, intra_op_num_threads=threads)

    return make


# -- parity ----------------------------------------------------------------------------------


def _parity_batches(profile: Any, samples: int) -> tuple[int, int]:
    """The profile's minimum batch and a second size within the profile (sum >= samples if possible)."""
    second = min(profile.max, max(profile.min, samples - profile.min))
    return profile.min, second


def check_parity(
    folder: Path,
    manifest: Manifest,
    runners: Mapping[str, Callable[[], Any]],
    precision: str,
    batches: tuple[int, ...],
    seed: int,
    threads: int | None,
    *,
    label: str,
) -> dict[str, ParityFigures]:
    """Maps from the candidate runners vs ONNX Runtime fp32 on the CPU, on realistic inputs.

    Returns figures keyed "engine.split.<precision>" (visual + audio engines through the head)
    and "engine.fused.<precision>" when a fused engine exists.
    """

    n = sum(batches)
    image_size = int(manifest.inputs["image"].shape[-1])
    audio_shape = tuple(int(d) for d in manifest.inputs["audio"].shape[1:])
    images = realistic_images(n, image_size, seed)
    audios = realistic_spectrograms(n, audio_shape, manifest.frontend, seed)
    max_abs, min_argmax = (FP32_MAX_ABS, 0.0) if precision == "fp32" else (FP16_MAX_ABS, FP16_MIN_ARGMAX)
    if precision == "int8":
        # A sanity bound on random realistic inputs (a broken engine, NaNs); whether int8 still
        # localises is the accuracy gate's question, answered in metric space on real samples.

        max_abs, min_argmax = INT8_PARITY_MAX_ABS * manifest.head.scale, 0.0

    def run(make_runner: Callable[[], Any], role: str) -> np.ndarray:
        inputs = {"visual": ("image",), "audio": ("audio",), "fused": ("image", "audio")}[role]
        arrays = {"image": images, "audio": audios}
        with make_runner() as runner:
            output = _single_output(manifest, role)
            return run_in_batches(
                lambda *xs: runner.infer(dict(zip(inputs, xs)))[output], [arrays[i] for i in inputs], batches
            )

    def reference(role: str) -> Callable[[], Any]:
        path = folder / manifest.graph(role, "fp32").file
        return lambda: OrtRunner(path, provider="cpu", intra_op_num_threads=threads)

    figures = {}
    ref_split = np.asarray(similarity_maps(run(reference("visual"), "visual"), run(reference("audio"), "audio"), manifest.head))
    got_split = np.asarray(similarity_maps(run(runners["visual"], "visual"), run(runners["audio"], "audio"), manifest.head))
    figures[f"engine.split.{precision}"] = compare_maps(ref_split, got_split, max_abs, min_argmax, batches, label)
    if "fused" in runners:
        ref_fused = run(reference("fused"), "fused")
        got_fused = run(runners["fused"], "fused")
        figures[f"engine.fused.{precision}"] = compare_maps(ref_fused, got_fused, max_abs, min_argmax, batches, label)
    return figures


def _single_output(manifest: Manifest, role: str) -> str:
    (name,) = manifest.graph(role, "fp32").outputs
    return name


# -- manifest --------------------------------------------------------------------------------


def _record(folder, manifest, backend, reason, precision, profile, engines, parity) -> None:
    section: dict[str, Any] = {
        "backend": backend,
        "reason": reason,
        "precision": precision,
        "batch_profile": str(profile),
        "engines": {
            e.role: {"file": e.file, "reused": e.reused, **({"changes": list(e.changes)} if e.changes else {}), **e.info}
            for e in engines
        },
    }
    if backend == "trt":

        first_key = engines[0].info["key"]
        section["tensorrt_version"] = first_key["tensorrt_version"]
        section["gpu"] = {k: first_key[k] for k in ("gpu_name", "compute_capability", "driver_version", "cuda_version")}
        for e in engines:
            manifest.add_file(folder, e.file)
            manifest.add_file(folder, os.path.relpath(key_path_for(folder / e.file), folder).replace(os.sep, "/"))
    else:
        section["provider"] = backends.get(backend).ort_provider
    manifest.backend = section
    manifest.parity.update(parity)
    manifest.write(folder)
