"""The engine-folder manifest (``manifest.json``): everything needed to run an exported model.

An engine folder holds the ONNX graphs (``visual.onnx``, ``audio.onnx``, ``model.onnx``, their
``.fp16.onnx`` variants, optionally ``object.onnx``), the engines built from them, and this
manifest. ``vsslrt bench`` and ``vsslrt localize`` read nothing else. The manifest records:

* the model, its audio front-end, its map head (K, scale, offset), map size and input shapes;
* every graph: role (visual / audio / fused / object), precision, file, input and output names,
  and the nodes that an fp16 graph keeps in fp32;
* the sha256 of every file a runner loads: graphs, their ONNX external-data files, engine plans
  (``verify_files`` refuses a folder whose files changed, a listed path that resolves outside the
  folder, and a graph that references external data the manifest does not list);
* parity figures of the export (PyTorch vs ONNX Runtime);
* versions, the checkpoint (path + sha256, or random init + seed), universal thresholds with
  provenance;
* ``backend``: a free-form section the engine stage fills (backend, engine files, GPU, ...).

Reading validates every field and raises ``InputError`` naming the field; a different format
version raises ``ManifestMismatchError``. Writing is atomic (``vsslrt.files``). No torch.

``content_sha256`` (written by ``write``, checked by ``read``) holds one sha256 per top-level field
over its canonical JSON, so a hand edit of, say, ``head.scale`` or a threshold is refused with a
ManifestMismatchError naming the field. It detects edits, it is not a signature: whoever can
write the folder can recompute it, so an engine folder is only as trustworthy as its source
(docs/engines.md).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from vsslrt.errors import InputError, ManifestMismatchError
from vsslrt.files import atomic_write_text, sha256_file
from vsslrt.models import MapHead, Threshold
from vsslrt.tensorspec import TensorSpec  # graph inputs and outputs, in the form runners describe them too

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
CONTENT_KEY = "content_sha256"
ROLES = ("visual", "audio", "fused", "object")
PRECISIONS = ("fp32", "fp16", "int8")  # int8: QDQ graphs calibrated by the build (vsslrt.export.quantize)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class GraphEntry:
    """One ONNX graph of the folder."""

    role: str  # one of ROLES
    precision: str  # one of PRECISIONS
    file: str  # path relative to the folder, POSIX separators
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    fp32_nodes: tuple[str, ...] = ()  # fp16/int8 graphs: nodes kept in fp32 (normalisation, head, stem)


@dataclass(frozen=True)
class FileRecord:
    sha256: str
    size: int


@dataclass(frozen=True)
class ParityFigures:
    """PyTorch (fp32, eager) vs ONNX Runtime on the same inputs, compared on the maps."""

    max_abs_diff: float
    mean_abs_diff: float
    argmax_agreement: float  # share of samples whose map argmax location is unchanged
    n_samples: int
    batch_sizes: tuple[int, ...]
    max_abs_tolerance: float
    min_argmax_agreement: float
    runtime: str  # e.g. "onnxruntime 1.32.0 CPUExecutionProvider"
    passed: bool


def describe_failures(figures: dict[str, ParityFigures]) -> str | None:
    """One line naming every failed comparison with its figures and tolerances, or None if all passed."""
    failed = {k: v for k, v in figures.items() if not v.passed}
    if not failed:
        return None
    return "; ".join(
        f"{k}: max |diff| {v.max_abs_diff:.3g} (tolerance {v.max_abs_tolerance:.3g}), argmax agreement "
        f"{v.argmax_agreement:.0%} (minimum {v.min_argmax_agreement:.0%})"
        for k, v in failed.items()
    )


@dataclass(frozen=True)
class CheckpointInfo:
    """Where the weights came from: a file (path + sha256) or a seeded random initialisation."""

    path: str | None = None
    sha256: str | None = None
    random_init: bool = False
    seed: int | None = None
    layout: str | None = None  # e.g. "'model' with 'module.' prefixes"
    imagenet_weights: str | None = None  # sha256 of user-given ImageNet weights, if any

    @property
    def label(self) -> str:
        return f"random-init (seed {self.seed})" if self.random_init else f"{self.path} ({self.sha256})"


@dataclass
class Manifest:
    """The engine folder's manifest (see the module docstring)."""

    model: str
    frontend: str
    head: MapHead
    map_size: int
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    graphs: list[GraphEntry]
    files: dict[str, FileRecord]
    checkpoint: CheckpointInfo
    thresholds: dict[str, Threshold] = field(default_factory=dict)
    parity: dict[str, ParityFigures] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    opset: int | None = None
    created: str | None = None
    backend: dict[str, Any] = field(default_factory=dict)  # filled by the engine stage
    # int8: how each graph was calibrated, and the accuracy gate per precision (vsslrt.pipeline.gate)
    quantization: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    # ----------------------------------------------------------------------------------- queries
    @property
    def precisions(self) -> tuple[str, ...]:
        return tuple(p for p in PRECISIONS if any(g.precision == p for g in self.graphs))

    def graph(self, role: str, precision: str = "fp32") -> GraphEntry:
        """The graph of a role and precision.

        Raises:
            ManifestMismatchError: the folder has no such graph.
        """
        for entry in self.graphs:
            if entry.role == role and entry.precision == precision:
                return entry
        have = ", ".join(f"{g.role}/{g.precision}" for g in self.graphs) or "none"
        raise ManifestMismatchError(
            f"manifest of {self.model}: expected a {role} graph in {precision}, got only {have}.",
            hint=f"re-export with `vsslrt export --model {self.model} --precision both`",
        )

    # ------------------------------------------------------------------------------------- files
    def add_file(self, folder: str | Path, relative: str) -> FileRecord:
        """Hash ``folder/relative`` and record it under ``relative``."""
        path = Path(folder) / relative
        record = FileRecord(sha256=sha256_file(path), size=path.stat().st_size)
        self.files[_check_relative("files", relative)] = record
        return record

    def verify_files(self, folder: str | Path) -> None:
        """Check the folder as one unit: every recorded file exists inside ``folder`` with its
        recorded sha256, and every graph's external data is recorded too.

        Raises:
            ManifestMismatchError: a file is missing, its hash changed, its path resolves outside the
                folder (a symlink), or a graph references an external-data file the manifest does
                not list (the message names the file).
        """
        folder = Path(folder)
        for relative, record in sorted(self.files.items()):
            path = inside_folder(folder, relative)
            if not path.is_file():
                raise ManifestMismatchError(
                    f"{path}: expected the file recorded in {MANIFEST_NAME} to exist, got no such file.",
                    hint="copy the whole engine folder, or re-export it",
                )
            if path.stat().st_size != record.size or sha256_file(path) != record.sha256:
                raise ManifestMismatchError(
                    f"{path}: expected sha256 {record.sha256[:12]}... as recorded in {MANIFEST_NAME}, "
                    f"got a different file (sha256 {sha256_file(path)[:12]}...).",
                    hint="the file was changed after export; re-export the folder with `vsslrt export`",
                )
        for graph in self.graphs:
            for relative in external_data_files(folder, graph.file):
                if relative not in self.files:
                    raise ManifestMismatchError(
                        f"{folder / relative}: expected every external-data file of {graph.file} to be recorded "
                        f"in {MANIFEST_NAME} with its sha256, got a file it does not list.",
                        hint="re-export the folder with `vsslrt export` (it records external data)",
                    )

    # --------------------------------------------------------------------------------- read/write
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["graphs"] = [asdict(g) for g in self.graphs]
        return data

    def write(self, folder: str | Path) -> Path:
        """Validate and write ``folder/manifest.json`` atomically; returns its path."""
        self.validate()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / MANIFEST_NAME
        data = self.to_dict()
        data[CONTENT_KEY] = content_digests(data)
        text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"
        atomic_write_text(target, text)
        return target

    @classmethod
    def read(cls, path: str | Path) -> Manifest:
        """Read and validate a manifest from a folder or a ``manifest.json`` path."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        if not path.is_file():
            raise InputError(
                f"{path}: expected an engine manifest, got no such file.",
                hint="point at a folder written by `vsslrt export` or `vsslrt build`",
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: expected valid JSON, got a parse error ({exc}).") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = MANIFEST_NAME) -> Manifest:
        """Build a manifest from parsed JSON, validating every field."""
        reader = _Reader(source)
        obj = reader.mapping("manifest", data)
        version = obj.get("format_version")
        if version != FORMAT_VERSION:
            raise ManifestMismatchError(
                f"{source}: expected format_version to be {FORMAT_VERSION}, got {version!r}.",
                hint="re-export the folder with this version of vsslrt",
            )
        head = reader.mapping("head", obj.get("head"))
        manifest = cls(
            model=reader.string("model", obj.get("model")),
            frontend=reader.string("frontend", obj.get("frontend")),
            head=MapHead(
                num_maps=reader.integer("head.num_maps", head.get("num_maps")),
                scale=reader.number("head.scale", head.get("scale")),
                offset=reader.number("head.offset", head.get("offset")),
            ),
            map_size=reader.integer("map_size", obj.get("map_size")),
            inputs=reader.tensors("inputs", obj.get("inputs")),
            outputs=reader.tensors("outputs", obj.get("outputs")),
            graphs=[reader.graph(i, g) for i, g in enumerate(reader.sequence("graphs", obj.get("graphs")))],
            files={
                reader.string("files key", k): FileRecord(
                    sha256=reader.string(f"files[{k}].sha256", reader.mapping(f"files[{k}]", v).get("sha256")),
                    size=reader.integer(f"files[{k}].size", v.get("size"), minimum=0),
                )
                for k, v in reader.mapping("files", obj.get("files")).items()
            },
            checkpoint=reader.checkpoint(obj.get("checkpoint")),
            thresholds={
                reader.string("thresholds key", k): Threshold(
                    value=reader.number(f"thresholds.{k}.value", reader.mapping(f"thresholds.{k}", v).get("value")),
                    provenance=reader.string(f"thresholds.{k}.provenance", v.get("provenance")),
                )
                for k, v in reader.mapping("thresholds", obj.get("thresholds", {})).items()
            },
            parity={
                reader.string("parity key", k): reader.parity(k, v)
                for k, v in reader.mapping("parity", obj.get("parity", {})).items()
            },
            versions={
                reader.string("versions key", k): reader.string(f"versions.{k}", v)
                for k, v in reader.mapping("versions", obj.get("versions", {})).items()
            },
            opset=None if obj.get("opset") is None else reader.integer("opset", obj.get("opset")),
            created=None if obj.get("created") is None else reader.string("created", obj.get("created")),
            backend=reader.mapping("backend", obj.get("backend", {})),
            quantization=reader.mapping("quantization", obj.get("quantization", {})),
            gates=reader.mapping("gates", obj.get("gates", {})),
            format_version=version,
        )
        manifest.validate(source)
        _check_content(manifest, obj.get(CONTENT_KEY), source)
        return manifest

    def validate(self, source: str = MANIFEST_NAME) -> None:
        """Check the cross-field rules (raises ``InputError`` naming the field)."""

        def bad(name: str, constraint: str, value: Any) -> InputError:
            return InputError(f"{source}: expected {name} to be {constraint}, got {value!r}.")

        if not self.model:
            raise bad("model", "a non-empty name", self.model)
        if not self.frontend:
            raise bad("frontend", "a non-empty front-end name", self.frontend)
        if self.head.num_maps < 1:
            raise bad("head.num_maps", ">= 1", self.head.num_maps)
        if not (math.isfinite(self.head.scale) and self.head.scale > 0 and math.isfinite(self.head.offset)):
            raise bad("head.scale/offset", "finite with scale > 0", (self.head.scale, self.head.offset))
        if self.map_size < 1:
            raise bad("map_size", ">= 1", self.map_size)
        if not self.graphs:
            raise bad("graphs", "a non-empty list", [])
        seen = set()
        for g in self.graphs:
            if g.role not in ROLES:
                raise bad(f"graph {g.file} role", f"one of {ROLES}", g.role)
            if g.precision not in PRECISIONS:
                raise bad(f"graph {g.file} precision", f"one of {PRECISIONS}", g.precision)
            if (g.role, g.precision) in seen:
                raise bad("graphs", "one graph per role and precision", f"{g.role}/{g.precision} twice")
            seen.add((g.role, g.precision))
            _check_relative(f"graph {g.role}/{g.precision} file", g.file, source)
            if g.file not in self.files:
                raise bad(f"files[{g.file}]", "recorded with its sha256", "no entry")
            for name in g.inputs:
                if name not in self.inputs:
                    raise bad(f"inputs[{name}] (used by {g.file})", "declared", "no entry")
            for name in g.outputs:
                if name not in self.outputs:
                    raise bad(f"outputs[{name}] (produced by {g.file})", "declared", "no entry")
        for relative, record in self.files.items():
            _check_relative("files key", relative, source)
            if not _SHA256.match(record.sha256):
                raise bad(f"files[{relative}].sha256", "64 lowercase hex digits", record.sha256)
        engines = self.backend.get("engines", {})
        for role, entry in (engines.items() if isinstance(engines, dict) else ()):
            # Runners load these files: each must be a folder-relative path whose hash is recorded.
            file = entry.get("file") if isinstance(entry, dict) else None
            if not isinstance(file, str) or not file:
                raise bad(f"backend.engines.{role}.file", "a relative path", file)
            _check_relative(f"backend.engines.{role}.file", file, source)
            if file not in self.files:
                raise bad(f"files[{file}] (backend.engines.{role})", "recorded with its sha256", "no entry")
        ck = self.checkpoint
        if ck.random_init:
            if ck.seed is None:
                raise bad("checkpoint.seed", "an integer for a random-init export", None)
        elif not (ck.path and ck.sha256 and _SHA256.match(ck.sha256)):
            raise bad("checkpoint", "a path with its sha256, or random_init with a seed", asdict(ck))


def _check_relative(name: str, relative: str, source: str = MANIFEST_NAME) -> str:
    posix = PurePosixPath(relative)
    if not relative or posix.is_absolute() or ".." in posix.parts or "\\" in relative:
        raise InputError(f"{source}: expected {name} to be a relative path inside the folder, got {relative!r}.")
    return relative


# --------------------------------------------------------------------------- folder as one unit
def inside_folder(folder: str | Path, relative: str) -> Path:
    """``folder/relative``, refused unless it resolves inside ``folder`` (symlinks followed).

    Raises:
        ManifestMismatchError: ``relative`` is absolute, climbs out with ``..``, or passes through a
            symlink that points outside the folder.
    """
    folder = Path(folder)
    posix = PurePosixPath(relative)
    path = folder / relative
    if not relative or posix.is_absolute() or ".." in posix.parts or "\\" in relative:
        raise ManifestMismatchError(
            f"{path}: expected a path listed in {MANIFEST_NAME} to be relative and inside the folder, got {relative!r}.",
            hint="re-export the folder with `vsslrt export`; do not edit manifest.json by hand",
        )
    resolved, root = path.resolve(), folder.resolve()
    if not resolved.is_relative_to(root):
        raise ManifestMismatchError(
            f"{path}: expected a file inside the engine folder {folder}, got a path that resolves to {resolved}.",
            hint="copy the files into the folder instead of linking to them from elsewhere",
        )
    return path


def onnx_external_data(path: str | Path) -> list[str]:
    """The external-data locations an ONNX file references, as written in it (sorted, unique).

    Weights saved beside the graph (``visual.onnx.data``) are loaded by ONNX Runtime and by
    TensorRT's parser from the graph's directory; they change the model as much as the graph does.
    """
    data = Path(path).read_bytes()
    if b"location" not in data:  # every external-data entry carries the key "location"
        return []
    import onnx  # core dependency, imported lazily: most folders never get here

    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's DecodeError for a file that is not a model
        raise ManifestMismatchError(
            f"{path}: expected an ONNX model, got a file that does not parse ({type(exc).__name__}).",
            hint="re-export the folder with `vsslrt export`",
        ) from None
    return sorted(
        {
            entry.value
            for tensor in _all_tensors(model.graph)
            if tensor.data_location == onnx.TensorProto.EXTERNAL
            for entry in tensor.external_data
            if entry.key == "location"
        }
    )


def external_data_files(folder: str | Path, graph_file: str) -> list[str]:
    """Folder-relative paths of the external-data files of ``folder/graph_file``.

    Raises:
        ManifestMismatchError: a location is absolute, climbs out of the folder, or resolves outside it.
    """
    folder = Path(folder)
    graph_path = folder / graph_file
    if not graph_path.is_file():
        return []
    base = PurePosixPath(graph_file).parent
    out = []
    for location in onnx_external_data(graph_path):
        posix = PurePosixPath(location)
        relative = (base / posix).as_posix()
        if posix.is_absolute() or ".." in posix.parts or "\\" in location:
            raise ManifestMismatchError(
                f"{graph_path}: expected external data beside the graph, got location {location!r}.",
                hint="keep external-data files inside the engine folder and re-export",
            )
        inside_folder(folder, relative)
        out.append(relative)
    return out


def _all_tensors(graph: Any):
    """Initializers and tensor attributes of a graph and of every subgraph."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for sub in attr.graphs:
                yield from _all_tensors(sub)


def content_digests(data: dict[str, Any]) -> dict[str, str]:
    """sha256 of the canonical JSON (sorted keys, no spaces) of each top-level field of ``data``."""
    return {
        key: hashlib.sha256(
            json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
        ).hexdigest()
        for key, value in data.items()
        if key != CONTENT_KEY
    }


def _check_content(manifest: Manifest, recorded: Any, source: str) -> None:
    """Refuse a manifest whose fields no longer match the digests written with it.

    A manifest without ``content_sha256`` (written before the field existed, or by hand as in
    tests) is accepted: the digest detects edits of manifests that carry it, it is not a
    signature (removing it, or recomputing it, is open to anyone who can write the folder), so
    refusing older manifests would break every folder exported before it without making any
    folder safer. Fields added to the format after a manifest was written are not in its digest
    and are not checked; a digest for a field this version does not know is ignored.
    """
    if recorded is None:
        return
    if not isinstance(recorded, dict) or not all(isinstance(v, str) for v in recorded.values()):
        raise ManifestMismatchError(
            f"{source}: expected {CONTENT_KEY} to map each field to a sha256, got {type(recorded).__name__}.",
            hint="manifest.json was edited after export; re-export the folder with `vsslrt export`",
        )
    current = content_digests(manifest.to_dict())
    changed = [key for key, digest in current.items() if key in recorded and recorded[key] != digest]
    if changed:
        raise ManifestMismatchError(
            f"{source}: expected {', '.join(changed)} to be as written by vsslrt ({CONTENT_KEY}), got an edited value.",
            hint="manifest.json was edited after export; re-export the folder with `vsslrt export` "
            "(or rebuild it with `vsslrt build`) instead of editing it",
        )


class _Reader:
    """Typed field access with one error template."""

    def __init__(self, source: str) -> None:
        self.source = source

    def _bad(self, name: str, constraint: str, value: Any) -> InputError:
        return InputError(
            f"{self.source}: expected {name} to be {constraint}, got {value!r}.",
            hint="re-export the folder with `vsslrt export`; do not edit manifest.json by hand",
        )

    def mapping(self, name: str, value: Any) -> dict:
        if not isinstance(value, dict):
            raise self._bad(name, "an object", value)
        return value

    def sequence(self, name: str, value: Any) -> list:
        if not isinstance(value, list):
            raise self._bad(name, "a list", value)
        return value

    def string(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self._bad(name, "a non-empty string", value)
        return value

    def strings(self, name: str, value: Any) -> tuple[str, ...]:
        return tuple(self.string(name, x) for x in self.sequence(name, value))

    def integer(self, name: str, value: Any, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            raise self._bad(name, "an integer" + (f" >= {minimum}" if minimum is not None else ""), value)
        return value

    def number(self, name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self._bad(name, "a finite number", value)
        return float(value)

    def boolean(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self._bad(name, "true or false", value)
        return value

    def tensors(self, name: str, value: Any) -> dict[str, TensorSpec]:
        out = {}
        for key, spec in self.mapping(name, value).items():
            spec = self.mapping(f"{name}.{key}", spec)
            shape = self.sequence(f"{name}.{key}.shape", spec.get("shape"))
            for dim in shape:
                if not (dim == "batch" or (isinstance(dim, int) and not isinstance(dim, bool) and dim > 0)):
                    raise self._bad(f"{name}.{key}.shape", "positive integers or 'batch'", shape)
            out[key] = TensorSpec(shape=tuple(shape), dtype=self.string(f"{name}.{key}.dtype", spec.get("dtype")))
        return out

    def graph(self, index: int, value: Any) -> GraphEntry:
        name = f"graphs[{index}]"
        g = self.mapping(name, value)
        return GraphEntry(
            role=self.string(f"{name}.role", g.get("role")),
            precision=self.string(f"{name}.precision", g.get("precision")),
            file=self.string(f"{name}.file", g.get("file")),
            inputs=self.strings(f"{name}.inputs", g.get("inputs")),
            outputs=self.strings(f"{name}.outputs", g.get("outputs")),
            fp32_nodes=self.strings(f"{name}.fp32_nodes", g.get("fp32_nodes", [])),
        )

    def checkpoint(self, value: Any) -> CheckpointInfo:
        c = self.mapping("checkpoint", value)

        def optional_str(key: str) -> str | None:
            return None if c.get(key) is None else self.string(f"checkpoint.{key}", c.get(key))

        return CheckpointInfo(
            path=optional_str("path"),
            sha256=optional_str("sha256"),
            random_init=self.boolean("checkpoint.random_init", c.get("random_init", False)),
            seed=None if c.get("seed") is None else self.integer("checkpoint.seed", c.get("seed")),
            layout=optional_str("layout"),
            imagenet_weights=optional_str("imagenet_weights"),
        )

    def parity(self, key: str, value: Any) -> ParityFigures:
        p = self.mapping(f"parity.{key}", value)
        return ParityFigures(
            max_abs_diff=self.number(f"parity.{key}.max_abs_diff", p.get("max_abs_diff")),
            mean_abs_diff=self.number(f"parity.{key}.mean_abs_diff", p.get("mean_abs_diff")),
            argmax_agreement=self.number(f"parity.{key}.argmax_agreement", p.get("argmax_agreement")),
            n_samples=self.integer(f"parity.{key}.n_samples", p.get("n_samples"), minimum=1),
            batch_sizes=tuple(
                self.integer(f"parity.{key}.batch_sizes", b, minimum=1)
                for b in self.sequence(f"parity.{key}.batch_sizes", p.get("batch_sizes"))
            ),
            max_abs_tolerance=self.number(f"parity.{key}.max_abs_tolerance", p.get("max_abs_tolerance")),
            min_argmax_agreement=self.number(f"parity.{key}.min_argmax_agreement", p.get("min_argmax_agreement")),
            runtime=self.string(f"parity.{key}.runtime", p.get("runtime")),
            passed=self.boolean(f"parity.{key}.passed", p.get("passed")),
        )
