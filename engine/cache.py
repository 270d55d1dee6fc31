"""Engine cache: a key from everything that invalidates a TensorRT engine, and atomic storage.

A serialized engine only runs with the TensorRT version, GPU and driver it was built for, and it
encodes the ONNX graph, the precision, the batch profile and the builder settings. The key
holds all of them; `diff` names what changed between two keys, so a stale engine is reported as
"rebuild because tensorrt_version 10.16.1 -> 11.4.0" rather than a deserialisation crash.

Storage layout (one folder, several models)::

    <root>/<name>-<digest>.plan        the serialized engine
    <root>/<name>-<digest>.key.json    its key and the plan's sha256, written after the plan
    <root>/timing-<digest>.cache       TensorRT timing cache, one per TensorRT version and GPU

Both files are written atomically (temporary file in the same folder, fsync, os.replace), and
the key file is written last: a build interrupted at any point leaves either the previous state
or a plan without a key, which `lookup` and the TensorRT runner both refuse.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from vsslrt.errors import InputError, ManifestMismatchError
from vsslrt.files import atomic_write_bytes, atomic_write_text, sha256_file
from vsslrt.manifest import onnx_external_data

KEY_SCHEMA = 1
PRECISIONS = ("fp32", "fp16", "int8")  # int8: explicit quantization, Q/DQ nodes in the ONNX


@dataclass(frozen=True)
class BuildEnvironment:
    """The parts of the machine an engine is tied to (filled in by `probe.build_environment`)."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    driver_version: str
    cuda_version: str


ENVIRONMENT_FIELDS = tuple(f.name for f in dataclasses.fields(BuildEnvironment))


@dataclass(frozen=True)
class EngineKey:
    """Everything that makes a built engine valid or stale. Field order is the report order."""

    onnx_sha256: str
    precision: str
    profile: str
    builder_optimization_level: int
    workspace_bytes: int
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    driver_version: str
    cuda_version: str
    schema: int = KEY_SCHEMA

    @classmethod
    def create(
        cls,
        *,
        onnx_sha256: str,
        precision: str,
        profile: str,
        builder_optimization_level: int,
        workspace_bytes: int,
        environment: BuildEnvironment,
    ) -> EngineKey:
        if precision not in PRECISIONS:
            raise InputError(f"engine key: expected precision to be one of {', '.join(PRECISIONS)}, got {precision!r}.")
        return cls(
            onnx_sha256=onnx_sha256,
            precision=precision,
            profile=str(profile),
            builder_optimization_level=int(builder_optimization_level),
            workspace_bytes=int(workspace_bytes),
            **dataclasses.asdict(environment),
        )

    def environment(self) -> BuildEnvironment:
        return BuildEnvironment(**{name: getattr(self, name) for name in ENVIRONMENT_FIELDS})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "engine key") -> EngineKey:
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in data and n != "schema"]
        if missing or data.get("schema", KEY_SCHEMA) != KEY_SCHEMA:
            raise ManifestMismatchError(
                f"{source}: expected an engine key of schema {KEY_SCHEMA} with fields {', '.join(names)}, "
                f"got schema {data.get('schema')!r} missing {', '.join(missing) or 'nothing'}.",
                hint="rebuild the engine with `vsslrt build`",
            )
        return cls(**{n: data[n] for n in names if n in data})

    def digest(self) -> str:
        """A short, stable content hash of the key (used in file names)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class KeyChange(NamedTuple):
    """One field that differs between two keys."""

    field: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.field} {self.old} -> {self.new}"


def diff(old: EngineKey | Mapping[str, Any], new: EngineKey | Mapping[str, Any]) -> list[KeyChange]:
    """The fields whose values differ, in key order (fields missing on one side show as None)."""
    old_d = old.to_dict() if isinstance(old, EngineKey) else dict(old)
    new_d = new.to_dict() if isinstance(new, EngineKey) else dict(new)
    order = [f.name for f in dataclasses.fields(EngineKey)]
    names = order + sorted((set(old_d) | set(new_d)) - set(order))
    return [KeyChange(n, old_d.get(n), new_d.get(n)) for n in names if old_d.get(n) != new_d.get(n)]


def describe(changes: list[KeyChange]) -> str:
    """'tensorrt_version 10.16.1 -> 11.4.0; gpu_name A100 -> H100' (or 'nothing')."""
    return "; ".join(str(c) for c in changes) or "nothing"


# -- hashing -------------------------------------------------------------------------------


def onnx_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 over an ONNX file and every external-data file it references.

    Weights exported to a side file (model.onnx.data) change the engine as much as the graph
    does, so both are hashed, in a fixed order, each prefixed by its relative name.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: expected an ONNX file, got a path that does not exist.")
    locations = onnx_external_data(path)
    digest = hashlib.sha256()
    for name, file in [(path.name, path)] + [(loc, path.parent / loc) for loc in locations]:
        if not file.is_file():
            raise InputError(
                f"{path}: expected external data file {name!r} beside the model, got nothing there.",
                hint="keep the .onnx file and its .data file in the same folder",
            )
        digest.update(name.encode() + b"\0" + sha256_file(file).encode())
    return digest.hexdigest()


# -- the cache -----------------------------------------------------------------------------


def key_path_for(plan_path: str | os.PathLike[str]) -> Path:
    """The key file that belongs to a plan file: engine.plan -> engine.key.json."""
    plan_path = Path(plan_path)
    return plan_path.with_name(plan_path.stem + ".key.json")


def read_record(plan_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON record written beside a plan: {"key": ..., "plan_sha256": ..., "info": ...}.

    Raises:
        ManifestMismatchError: The key file is missing or unreadable.
    """
    key_file = key_path_for(plan_path)
    try:
        record = json.loads(key_file.read_text())
    except FileNotFoundError:
        raise ManifestMismatchError(
            f"{plan_path}: expected its key file {key_file.name} beside it, got none "
            "(the engine is unverified or its build was interrupted).",
            hint="rebuild the engine with `vsslrt build`",
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestMismatchError(
            f"{key_file}: expected a readable JSON engine key, got {exc}.", hint="rebuild the engine with `vsslrt build`"
        ) from exc
    if not isinstance(record, dict):
        raise ManifestMismatchError(f"{key_file}: expected a JSON object, got {type(record).__name__}.")
    return record


def read_key(plan_path: str | os.PathLike[str]) -> tuple[EngineKey, str]:
    """The key written beside a plan and the plan's recorded sha256."""
    record = read_record(plan_path)
    key_file = key_path_for(plan_path)
    return EngineKey.from_dict(record.get("key", {}), source=str(key_file)), str(record.get("plan_sha256", ""))


class EngineCache:
    """A folder of built engines indexed by model name and EngineKey.

    Args:
        root: The folder (created on first store).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def plan_path(self, name: str, key: EngineKey) -> Path:
        return self.root / f"{name}-{key.digest()}.plan"

    def timing_cache_path(self, environment: BuildEnvironment) -> Path:
        """One timing cache per TensorRT version and GPU: timings do not transfer across either."""
        ident = f"{environment.tensorrt_version}|{environment.gpu_name}|{environment.compute_capability}"
        return self.root / f"timing-{hashlib.sha256(ident.encode()).hexdigest()[:16]}.cache"

    def lookup(self, name: str, key: EngineKey, *, verify_plan: bool = True) -> Path | None:
        """The stored plan for (name, key), or None when absent, unkeyed or damaged.

        Args:
            verify_plan: Re-hash the plan and compare it to the sha256 recorded at store time.
                Defaults to True.
        """
        plan = self.plan_path(name, key)
        if not plan.is_file():
            return None
        try:
            stored_key, plan_hash = read_key(plan)
        except ManifestMismatchError:
            return None
        if stored_key != key:
            return None
        if verify_plan and sha256_file(plan) != plan_hash:
            return None
        return plan

    def store(self, name: str, key: EngineKey, plan: Any, info: Mapping[str, Any] | None = None) -> Path:
        """Write the plan, then its key file; both atomically. Returns the plan path.

        Args:
            info: JSON-serialisable facts about the build (e.g. the engine inspector summary),
                kept in the key file so a reused engine still reports them. Defaults to none.
        """
        path = self.plan_path(name, key)
        atomic_write_bytes(path, plan)
        record = {
            "key": key.to_dict(),
            "plan_sha256": hashlib.sha256(memoryview(plan)).hexdigest(),
            "info": dict(info or {}),
        }
        atomic_write_text(key_path_for(path), json.dumps(record, indent=2, sort_keys=True) + "\n")
        return path

    def stale_entries(self, name: str, key: EngineKey) -> list[tuple[Path, list[KeyChange]]]:
        """Other stored engines for `name`, each with what differs from `key` (for rebuild messages)."""
        found = []
        for key_file in sorted(self.root.glob(f"{name}-*.key.json")):
            plan = key_file.with_name(key_file.name[: -len(".key.json")] + ".plan")
            try:
                stored, _ = read_key(plan)
            except ManifestMismatchError:
                continue
            if stored != key:
                found.append((plan, diff(stored, key)))
        return found
