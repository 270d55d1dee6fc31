"""``export_model``: architecture + weights -> ONNX graphs -> parity -> manifest.

The folder it writes (the ONNX part of an engine folder, DESIGN.md section Contracts)::

    visual.onnx        image (N,3,224,224)  -> visual (N,K,512,h,w)   L2-normalised
    audio.onnx         audio (N,C,F,T)      -> audio_embedding (N,K,512)  L2-normalised
    model.onnx         image, audio         -> map    (N,h,w)         scale * mean_k cos + offset
                       (the two encoder graphs composed with the head, see onnx_io.compose_fused)
    *.fp16.onnx        the same in fp16, normalisation and head kept fp32 (precision fp16/both)
    object.onnx        image                -> object (N,7,7)         OGL object prior (optional)
    manifest.json

Parity runs after every export (PyTorch eager fp32 vs ONNX Runtime CPU), on batches of 1 and
``parity_samples - 1`` so the dynamic batch dimension is exercised too; failing it raises
``EngineBuildError`` with the figures and writes no manifest.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vsslrt import __version__
from vsslrt.errors import EngineBuildError, InputError
from vsslrt.head import similarity_maps
from vsslrt.manifest import (
    MANIFEST_NAME,
    CheckpointInfo,
    GraphEntry,
    Manifest,
    ParityFigures,
    describe_failures,
    TensorSpec,
    external_data_files,
    sha256_file,
)
from vsslrt.models import ModelSpec, get_model

PRECISION_CHOICES = ("fp32", "fp16", "both")
GRAPH_FILES = {"visual": "visual.onnx", "audio": "audio.onnx", "fused": "model.onnx", "object": "object.onnx"}
GRAPH_IO = {
    "visual": (("image",), ("visual",)),
    # ONNX names must be unique within a graph: the input is "audio", so the output is not.
    "audio": (("audio",), ("audio_embedding",)),
    "fused": (("image", "audio"), ("map",)),
    "object": (("image",), ("object",)),
}


def graph_file(role: str, precision: str) -> str:
    """File name of a graph: ``visual.onnx``, ``visual.fp16.onnx``, ..."""
    base = GRAPH_FILES[role]
    return base if precision == "fp32" else base.replace(".onnx", f".{precision}.onnx")


@dataclass(frozen=True)
class ObjectNetOptions:
    """The object-saliency options of an export (`--object-net`, `--imagenet-weights`), one definition
    for `vsslrt export` and `vsslrt build`.

    Attributes:
        object_net: also export the OGL object-saliency network (``object.onnx``).
        imagenet_weights: torchvision ImageNet ResNet-18 weights for the object network, and for the
            visual backbone of a random-init export. Never downloaded.
    """

    object_net: bool = False
    imagenet_weights: str | Path | None = None

    def check(self) -> None:
        """Raises InputError for a weights path that is no file (before minutes of work)."""
        if self.imagenet_weights is not None and not Path(self.imagenet_weights).is_file():
            raise InputError(
                f"{self.imagenet_weights}: expected the torchvision ImageNet ResNet-18 weights file, got a path "
                "that does not exist.", hint="download resnet18-f37072fd.pth yourself and pass its path")

    def export_kwargs(self) -> dict:
        """The keyword arguments of `export_model` these options set (none when they are the defaults)."""
        kwargs: dict = {}
        if self.object_net:
            kwargs["object_net"] = True
        if self.imagenet_weights is not None:
            kwargs["imagenet_weights"] = self.imagenet_weights
        return kwargs

    def satisfied_by(self, manifest: Manifest, *, random_init: bool) -> bool:
        """Whether an existing export already is what these options would export: an object graph when
        one is asked for, and the same ImageNet weights wherever they are used (the object network; the
        visual backbone of a random-init export)."""
        if self.object_net and not any(g.role == "object" for g in manifest.graphs):
            return False
        if self.object_net or random_init:
            wanted = sha256_file(self.imagenet_weights) if self.imagenet_weights is not None else None
            return manifest.checkpoint.imagenet_weights == wanted
        return True


@dataclass
class _Exported:
    role: str
    precision: str
    path: Path
    fp32_nodes: tuple[str, ...] = field(default_factory=tuple)


def export_model(
    name: str,
    out_dir: str | Path,
    checkpoint: str | Path | None = None,
    *,
    seed: int = 0,
    precision: str = "fp32",
    object_net: bool = False,
    imagenet_weights: str | Path | None = None,
    trust_checkpoint: bool = False,
    ignore_unexpected_keys: bool = False,
    parity_samples: int = 8,
    opset: int | None = None,
    threads: int | None = None,
) -> Manifest:
    """Export a registry model to ONNX, check parity, and write ``manifest.json``.

    Args:
        name: registry model name (``vsslrt.models.REGISTRY``).
        out_dir: folder to write (created; graph files of the same names are replaced).
        checkpoint: official checkpoint file; ``None`` exports a seeded random initialisation.
        seed: seed of the random initialisation and of the parity inputs.
        precision: ``"fp32"``, ``"fp16"`` (fp16 graphs only) or ``"both"``.
        object_net: also export the OGL object-saliency network (``object.onnx``).
        imagenet_weights: torchvision ImageNet ResNet-18 weights for the object network, and for
            the visual backbone of a random-init export (the reference's untrained starting point).
        trust_checkpoint: allow arbitrary pickled objects in the checkpoint.
        ignore_unexpected_keys: accept checkpoint keys the architecture lacks (recorded in the
            manifest's checkpoint layout); missing keys and wrong shapes still fail.
        parity_samples: number of realistic samples for parity (>= 2; run as batches 1 and n-1).
        opset: ONNX opset (default: the exporter's).
        threads: torch and ONNX Runtime intra-op threads during the export (default: theirs).

    Returns:
        The manifest written to ``out_dir/manifest.json``.

    Raises:
        InputError: bad model name, precision, checkpoint or weights file.
        BackendUnavailableError: torch or onnxruntime missing.
        EngineBuildError: export, ONNX check, fp16 transform or parity failed (no manifest is
            written then, and a previous one in ``out_dir`` is removed).
    """
    spec = get_model(name)
    if precision not in PRECISION_CHOICES:
        raise InputError(
            f"precision: expected one of {', '.join(PRECISION_CHOICES)}, got {precision!r}.",
            hint="use --precision fp32, fp16 or both",
        )
    if parity_samples < 2:
        raise InputError(f"parity_samples: expected an integer >= 2, got {parity_samples}.")
    ObjectNetOptions(object_net, imagenet_weights).check()
    torch = _import_torch()
    _import_onnxruntime()  # fail before minutes of export, not at the parity check
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        loading = {"trust": trust_checkpoint, "ignore_unexpected": ignore_unexpected_keys}
        return _export(spec, Path(out_dir), checkpoint, seed, precision, object_net, imagenet_weights,
                       loading, parity_samples, opset, threads)
    finally:
        torch.set_num_threads(previous_threads)


def _export(spec, out, checkpoint, seed, precision, object_net, imagenet_weights, loading, samples, opset, threads):
    from vsslrt.export.architectures import build_model, build_object_net  # lazy: torch; this module is read without it (build options, choices)
    from vsslrt.export.backbones import load_imagenet_resnet18
    from vsslrt.export.checkpoints import load_checkpoint
    from vsslrt.export.wrappers import AudioEncoder, VisualEncoder

    precisions = ("fp32", "fp16") if precision == "both" else (precision,)
    model = build_model(spec.name, seed=seed)
    imagenet_sha = None
    if checkpoint is not None:
        loaded = load_checkpoint(model, spec.name, checkpoint, **loading)
    elif imagenet_weights is not None:
        load_imagenet_resnet18(model.imgnet, imagenet_weights)
        imagenet_sha = sha256_file(imagenet_weights)
    object_model = None
    if object_net:
        object_model = build_object_net(seed=seed)
        if imagenet_weights is not None:
            load_imagenet_resnet18(object_model.net, imagenet_weights)
            imagenet_sha = sha256_file(imagenet_weights)
    if checkpoint is not None:
        ck_info = CheckpointInfo(
            path=str(Path(checkpoint).resolve()), sha256=loaded.sha256, layout=loaded.layout,
            imagenet_weights=imagenet_sha,
        )
    else:
        ck_info = CheckpointInfo(random_init=True, seed=seed, imagenet_weights=imagenet_sha)

    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).unlink(missing_ok=True)  # a stale manifest must not outlive a failed export
    images = realistic_images_for(spec, samples, seed)
    audios = realistic_audio_for(spec, samples, seed)
    modules = {"visual": (VisualEncoder(model), images), "audio": (AudioEncoder(model), audios)}
    if object_model is not None:
        modules["object"] = (object_model, images)
    exported, protos = _export_graphs(modules, out, precisions, opset)
    programs = export_programs(modules, out) if "fp32" in precisions else []
    exported += _compose_fused(spec, protos, out)
    parity = _check_parity(spec, model, object_model, exported, images, audios, threads)
    manifest = _build_manifest(spec, out, exported, parity, ck_info, opset_of(protos))
    for program in programs:  # hashed like every file a runner loads
        manifest.add_file(out, program)
    manifest.write(out)
    return manifest


# ------------------------------------------------------------------------------------------ steps
def _import_torch():
    try:
        import torch
    except ImportError:
        from vsslrt.errors import missing_extra  # error path only

        raise missing_extra("torch", "export", "export models to ONNX") from None
    return torch


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        from vsslrt.errors import missing_extra  # error path only

        raise missing_extra("onnxruntime", "cpu", "check the exported graphs against PyTorch") from None
    return onnxruntime


def realistic_images_for(spec: ModelSpec, n: int, seed: int) -> np.ndarray:
    from vsslrt.export.parity import realistic_images  # lazy: torch (see _export)

    return realistic_images(n, spec.image_size, seed)


def realistic_audio_for(spec: ModelSpec, n: int, seed: int) -> np.ndarray:
    from vsslrt.export.parity import realistic_spectrograms  # lazy: torch (see _export)

    return realistic_spectrograms(n, spec.audio_shape, spec.frontend, seed)


def _export_graphs(modules: dict, out: Path, precisions, opset):
    """Export each (module, example data) as fp32, derive fp16; keep the requested precisions.

    Returns:
        The written graphs, and {precision: {role: (ModelProto, kept-fp32 node names)}}.
    """
    import torch

    from vsslrt.export.onnx_io import check_model, convert_to_fp16, export_module, save_model  # lazy: torch (see _export)

    exported, protos = [], {p: {} for p in precisions}
    for role, (module, data) in modules.items():
        inputs, outputs = GRAPH_IO[role]
        path = out / graph_file(role, "fp32")
        # Example batch of 2: a batch of 1 would let the tracer specialise the batch dimension.
        proto, tail = export_module(module, (torch.from_numpy(data[:2]),), path, inputs, outputs, opset)
        if "fp32" in precisions:
            exported.append(_Exported(role, "fp32", path))
            protos["fp32"][role] = (proto, ())
        if "fp16" in precisions:
            path16 = out / graph_file(role, "fp16")
            proto16 = convert_to_fp16(proto, tail)
            save_model(proto16, path16)
            check_model(path16)
            exported.append(_Exported(role, "fp16", path16, tail))
            protos["fp16"][role] = (proto16, tail)
        if "fp32" not in precisions:
            path.unlink()  # only needed to derive the fp16 graph
    return exported, protos


def export_programs(modules: dict, out: Path, roles: tuple[str, ...] = ("visual", "audio")) -> list[str]:
    """``visual.pt2`` and ``audio.pt2``: each encoder as a `torch.export` ExportedProgram with a dynamic
    batch, beside its fp32 ONNX graph, for the torch backend (`vsslrt.engine.torch_runner`, which loads
    the file and never these classes). Returns the written file names (relative to `out`)."""
    import torch

    from vsslrt.export.onnx_io import MAX_BATCH  # lazy: torch (see _export)

    written = []
    for role in roles:
        if role not in modules:
            continue
        module, data = modules[role]
        (name,), _ = GRAPH_IO[role]
        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        try:
            program = torch.export.export(module.eval(), (torch.from_numpy(data[:2]),), dynamic_shapes={name: {0: batch}})
        except Exception as exc:  # torch.export raises many unrelated types
            raise EngineBuildError(f"{role}: expected torch.export to capture the encoder, got {type(exc).__name__}: "
                                   f"{str(exc)[:300]}.", hint="rerun with VSSLRT_DEBUG=1 for the traceback") from exc
        target = out / GRAPH_FILES[role].replace(".onnx", ".pt2")
        staged = target.with_name(f".{target.stem}.tmp.pt2")  # torch.export.save wants the .pt2 suffix
        torch.export.save(program, str(staged))
        staged.replace(target)  # atomic: a reader never sees half a program
        written.append(target.name)
    return written


def _compose_fused(spec: ModelSpec, protos: dict, out: Path) -> list[_Exported]:
    """model.onnx (and model.fp16.onnx): the encoder graphs composed with the head."""
    from vsslrt.export.onnx_io import check_model, compose_fused, save_model  # lazy: torch (see _export)

    exported = []
    (v_name,), (a_name,), (m_name,) = GRAPH_IO["visual"][1], GRAPH_IO["audio"][1], GRAPH_IO["fused"][1]
    for precision, graphs in protos.items():
        (vis, vis_kept), (aud, aud_kept) = graphs["visual"], graphs["audio"]
        fused, head_nodes = compose_fused(vis, aud, spec.head.scale, spec.head.offset, v_name, a_name, m_name)
        path = out / graph_file("fused", precision)
        save_model(fused, path)
        check_model(path)
        kept = ()
        if precision != "fp32":
            kept = tuple("visual/" + n for n in vis_kept) + tuple("audio/" + n for n in aud_kept) + head_nodes
        exported.append(_Exported("fused", precision, path, kept))
    return exported


def ort_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session for parity checks."""
    ort = _import_onnxruntime()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise EngineBuildError(
            f"{Path(path).name}: expected ONNX Runtime to load the exported graph, got {type(exc).__name__}: "
            f"{str(exc)[:300]}."
        ) from exc


def _check_parity(spec, model, object_model, exported, images, audios, threads) -> dict[str, ParityFigures]:
    import onnxruntime as ort
    import torch

    from vsslrt.export.parity import (  # lazy: torch (see _export)
        FP16_MAX_ABS,
        FP16_MIN_ARGMAX,
        FP32_MAX_ABS,
        compare_maps,
        run_in_batches,
    )

    n = len(images)
    batches = (1, n - 1)
    runtime = f"onnxruntime {ort.__version__} CPUExecutionProvider"
    with torch.no_grad():
        reference = model.reference_map(torch.from_numpy(images), torch.from_numpy(audios)).numpy()
        object_ref = object_model(torch.from_numpy(images)).numpy() if object_model is not None else None
    by_key = {(e.role, e.precision): e.path for e in exported}
    gates = {"fp32": (FP32_MAX_ABS, 0.0), "fp16": (FP16_MAX_ABS, FP16_MIN_ARGMAX)}
    figures: dict[str, ParityFigures] = {}
    for precision in ("fp32", "fp16"):
        if ("visual", precision) not in by_key:
            continue
        max_abs, min_argmax = gates[precision]
        visual = _run(by_key["visual", precision], "image", images, batches, threads)
        audio = _run(by_key["audio", precision], "audio", audios, batches, threads)
        _check_embeddings(spec, visual, audio, precision)
        split = np.asarray(similarity_maps(visual, audio, spec.head))
        figures[f"split.{precision}"] = compare_maps(reference, split, max_abs, min_argmax, batches, runtime)
        session = ort_session(by_key["fused", precision], threads)
        fused = run_in_batches(
            lambda i, a: session.run(["map"], {"image": i, "audio": a})[0], (images, audios), batches
        )
        figures[f"fused.{precision}"] = compare_maps(reference, fused, max_abs, min_argmax, batches, runtime)
        if object_ref is not None:
            got = _run(by_key["object", precision], "image", images, batches, threads)
            scale = max(1.0, float(np.abs(object_ref).max()))  # unnormalised map: relative gate
            figures[f"object.{precision}"] = compare_maps(
                object_ref, got, max_abs * scale, min_argmax, batches, runtime
            )
    detail = describe_failures(figures)
    if detail:
        raise EngineBuildError(
            f"{spec.name}: expected the ONNX graphs to match PyTorch on {n} realistic samples, got {detail}.",
            hint="rerun with VSSLRT_DEBUG=1; try --precision fp32, or another opset with --opset",
        )
    return figures


def _run(path: Path, input_name: str, data: np.ndarray, batches, threads) -> np.ndarray:
    from vsslrt.export.parity import run_in_batches  # lazy: torch (see _export)

    session = ort_session(path, threads)
    return run_in_batches(lambda x: session.run(None, {input_name: x})[0], (data,), batches)


def _check_embeddings(spec: ModelSpec, visual: np.ndarray, audio: np.ndarray, precision: str) -> None:
    """Shapes and unit norms of the encoder outputs (the head relies on both)."""
    n = len(visual)
    want_v = (n, spec.head.num_maps, 512, spec.map_size, spec.map_size)
    want_a = (n, spec.head.num_maps, 512)
    if visual.shape != want_v or audio.shape != want_a:
        raise EngineBuildError(
            f"{spec.name}: expected encoder outputs {want_v} and {want_a}, got {visual.shape} and {audio.shape}."
        )
    if visual.dtype != np.float32 or audio.dtype != np.float32:
        raise EngineBuildError(
            f"{spec.name} ({precision}): expected float32 encoder outputs, got {visual.dtype} and {audio.dtype}."
        )
    worst = max(float(np.abs(np.linalg.norm(x, axis=2) - 1).max()) for x in (visual, audio))
    if worst > 1e-3:
        raise EngineBuildError(
            f"{spec.name} ({precision}): expected unit-norm embeddings, got a norm off by {worst:.3g}."
        )


def opset_of(protos: dict) -> int | None:
    """The default-domain opset of the exported graphs."""
    proto = next(iter(next(iter(protos.values())).values()))[0]
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    versions = {"vsslrt": __version__, "torch": torch.__version__, "onnx": onnx.__version__}
    versions["onnxruntime"] = onnxruntime.__version__
    try:
        import torchvision

        versions["torchvision"] = torchvision.__version__
    except ImportError:  # pragma: no cover - torchvision is part of the export extra
        pass
    try:
        import onnxconverter_common

        versions["onnxconverter_common"] = onnxconverter_common.__version__
    except ImportError:  # pragma: no cover
        pass
    return versions


def _build_manifest(spec, out: Path, exported, parity, ck_info, opset) -> Manifest:
    k, size = spec.head.num_maps, spec.map_size
    inputs = {
        "image": TensorSpec(("batch", 3, spec.image_size, spec.image_size)),
        "audio": TensorSpec(("batch", *spec.audio_shape)),
    }
    outputs = {
        "visual": TensorSpec(("batch", k, 512, size, size)),
        "audio_embedding": TensorSpec(("batch", k, 512)),
        "map": TensorSpec(("batch", size, size)),
    }
    if any(e.role == "object" for e in exported):
        outputs["object"] = TensorSpec(("batch", 7, 7))
    graphs = []
    manifest = Manifest(
        model=spec.name,
        frontend=spec.frontend,
        head=spec.head,
        map_size=size,
        inputs=inputs,
        outputs=outputs,
        graphs=graphs,
        files={},
        checkpoint=ck_info,
        thresholds=dict(spec.thresholds),
        parity=parity,
        versions=_versions(),
        opset=opset,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    for e in exported:
        ins, outs = GRAPH_IO[e.role]
        relative = os.path.relpath(e.path, out).replace(os.sep, "/")
        graphs.append(GraphEntry(e.role, e.precision, relative, ins, outs, e.fp32_nodes))
        manifest.add_file(out, relative)
        for data_file in external_data_files(out, relative):  # weights saved beside a graph are loaded too
            manifest.add_file(out, data_file)
    return manifest

