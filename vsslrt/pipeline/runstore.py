"""Run folder persistence: resumable per-shard progress (written through `vsslrt.files`).

A run folder holds, per engine and shard, the evaluator state (host NumPy arrays) and the set of
finished sample ids. Each checkpoint is written to a temporary file and renamed into place, so a
crash or Ctrl-C leaves either the previous checkpoint or the new one, never a half-written file.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.errors import DataError, InputError, ManifestMismatchError
from vsslrt.files import atomic_savez, atomic_write_json, json_default, sha256_file

COMPLETE_NAME = "run.complete.json"  # written last: the only proof that a run folder is finished
# Not part of a finished run's content: the writer's lock and the per-batch parts (deleted after the marker).
_NOT_LISTED = {COMPLETE_NAME, ".lock"}


class ShardCheckpoint:
    """Evaluator state + finished sample ids of one (engine, shard), with the run's identity.

    Everything lives in ONE .npz written atomically, so the state and the list of finished samples
    can never disagree after a crash. The identity (dataset, protocol, seed, repeats, engine manifest
    hash, ...) is stored with it; resuming with another identity is refused, because mixing would
    silently change the numbers.
    """

    _DONE = "__done__"
    _META = "__meta__"

    def __init__(self, directory: Path, identity: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self.identity = json.loads(json.dumps(identity, default=json_default))
        self.path = self.directory / "checkpoint.npz"

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> tuple[dict[str, np.ndarray], set[int], dict[str, Any]]:
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            meta = json.loads(str(arrays.pop(self._META)))
            done = arrays.pop(self._DONE)
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(
                f"{self.path}: the resume checkpoint is unreadable ({exc}).",
                hint="delete this file to start this part of the run again",
            ) from exc
        stored = meta.get("identity", {})
        if stored != self.identity:
            changed = sorted(k for k in set(stored) | set(self.identity) if stored.get(k) != self.identity.get(k))
            raise ManifestMismatchError(
                f"{self.path}: cannot resume, the run settings changed ({', '.join(changed)}).",
                hint="rerun with the original settings, or choose a new --out folder",
            )
        return arrays, {int(i) for i in done}, meta.get("extra", {})

    def save(self, state: dict[str, np.ndarray], done: set[int], extra: dict[str, Any] | None = None) -> None:
        for reserved in (self._DONE, self._META):
            if reserved in state:
                raise ValueError(f"state key {reserved!r} is reserved")
        meta = json.dumps({"identity": self.identity, "extra": extra or {}}, default=json_default)
        arrays = dict(state)
        arrays[self._DONE] = np.array(sorted(done), dtype=np.int64)
        arrays[self._META] = np.array(meta)
        atomic_savez(self.path, arrays)


class PartLog:
    """An append-only, resumable log of per-batch evaluator states for one (engine, shard).

    Each finished batch is written as its own small file `part-NNNNNN.npz` (atomically), holding
    only that batch's per-sample state, its sample ids and its notes. Saving a batch therefore costs
    the same at sample 100 as at sample 100,000 (a single growing checkpoint would be rewritten after
    every batch: quadratic I/O). Because evaluator states merge exactly, loading the parts in order
    and merging them gives the state of an uninterrupted run. The run's identity is stored once in
    `identity.json`; resuming with another identity is refused.
    """

    _DONE = "__done__"
    _META = "__meta__"

    def __init__(self, directory: Path, identity: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self.identity = json.loads(json.dumps(identity, default=json_default))
        self.identity_path = self.directory / "identity.json"

    def exists(self) -> bool:
        return self.identity_path.exists()

    def parts(self) -> list[Path]:
        return sorted(self.directory.glob("part-*.npz"))

    def start(self) -> None:
        """Begin a new log (refuses to overwrite one: that is what resume is for)."""
        if self.exists():
            raise InputError(f"{self.directory}: holds an interrupted run.", hint="add --resume to continue it")
        atomic_write_json(self.identity_path, self.identity)

    def check_identity(self) -> None:
        try:
            stored = json.loads(self.identity_path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.identity_path}: unreadable ({exc}).",
                             hint="delete the run folder to start again") from exc
        if stored != self.identity:
            changed = sorted(k for k in set(stored) | set(self.identity) if stored.get(k) != self.identity.get(k))
            raise ManifestMismatchError(
                f"{self.directory}: cannot resume, the run settings changed ({', '.join(changed)}).",
                hint="rerun with the original settings, or choose a new --out folder",
            )

    def append(self, state: dict[str, np.ndarray], done: set[int] | list[int], extra: dict[str, Any] | None = None) -> Path:
        for reserved in (self._DONE, self._META):
            if reserved in state:
                raise ValueError(f"state key {reserved!r} is reserved")
        existing = self.parts()
        number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        arrays = dict(state)
        arrays[self._DONE] = np.array(sorted(int(i) for i in done), dtype=np.int64)
        arrays[self._META] = np.array(json.dumps(extra or {}, default=json_default))
        path = self.directory / f"part-{number:06d}.npz"
        atomic_savez(path, arrays)
        return path

    def load(self) -> list[tuple[dict[str, np.ndarray], set[int], dict[str, Any]]]:
        """Every part in order: (state, finished sample ids, notes).

        A broken LAST part (the write a crash or a full disk cut short) is moved aside to
        `part-NNNNNN.npz.broken`: its batch is simply recomputed. A broken earlier part is refused,
        naming it: the parts after it were written later, so the log is damaged, not cut short.
        """
        self.check_identity()
        out = []
        parts = self.parts()
        for position, path in enumerate(parts):
            try:
                with np.load(path, allow_pickle=False) as npz:
                    arrays = {k: npz[k] for k in npz.files}
                extra = json.loads(str(arrays.pop(self._META)))
                done = {int(i) for i in arrays.pop(self._DONE)}
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                reason = " ".join(str(exc).split()) or type(exc).__name__
                if position == len(parts) - 1:
                    os.replace(path, path.with_name(path.name + ".broken"))
                    break
                raise DataError(f"{path}: unreadable resume part ({reason}); later parts exist, so it is not the "
                                "interrupted last write.",
                                hint=f"delete {path} and every later part-*.npz in {self.directory}; their "
                                     "batches are recomputed on --resume") from None
            out.append((arrays, done, extra))
        return out


# ------------------------------------------------------------------------------------------------
# The completion marker


def _listed_files(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.rglob("*") if p.is_file() and p.name not in _NOT_LISTED
                  and not (p.name.startswith("part-") and p.parent.parent.name == "shards"))


def write_complete_marker(run_dir: Path) -> Path:
    """Write `run.complete.json` LAST: every file of the finished run with its size and sha256."""
    run_dir = Path(run_dir)
    files = {str(p.relative_to(run_dir)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
             for p in _listed_files(run_dir)}
    return atomic_write_json(run_dir / COMPLETE_NAME, {"finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                                        "files": files})


def read_complete_marker(run_dir: Path, *, verify: bool | tuple[str, ...] = True) -> dict[str, Any] | None:
    """The completion marker of a run folder, or None when the run is not finished.

    Args:
        verify: Check that every listed file (True), or those named (paths relative to the run
            folder), is there with its recorded size and sha256.

    Raises:
        DataError: The marker is unreadable, or a file it lists is missing or changed.
    """
    path = Path(run_dir) / COMPLETE_NAME
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        files = doc["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: expected the run's completion marker (JSON with 'files'), got "
                        f"{' '.join(str(exc).split())}.", hint="rerun the benchmark into a new folder") from None
    if verify:
        for rel, entry in files.items():
            if verify is not True and rel not in verify:
                continue
            f = Path(run_dir) / rel
            if not f.is_file() or f.stat().st_size != entry.get("bytes") or sha256_file(f) != entry.get("sha256"):
                state = "is missing" if not f.is_file() else "changed after the run finished"
                raise DataError(f"{f}: {state} (the completion marker {path} lists it).",
                                hint="rerun the benchmark into a new folder")
    return doc


def unfinished_hint(run_dir: Path) -> str:
    """What to type to finish an unfinished run folder."""
    return f"finish it with the same `vsslrt bench` command plus --out {run_dir} --resume"
