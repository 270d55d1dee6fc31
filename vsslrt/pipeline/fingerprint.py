"""The dataset fingerprint of a run: what proves two runs (or a run and its resume) read the same data.

It covers every metadata file the adapter read (`Dataset.sources`: sha256 of each file, of every file
of a folder), the ordered sample list of the run (names, media paths, boxes, classes, groups), the
size and modification time of each media file (hashing every image and clip would cost a full read of
the data set), and the `vsslrt data prepare` record of the folder when there is one. Its short
`digest` goes into metrics.json and report.md; the per-file hashes let a resume name what changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vsslrt.errors import DataError, ManifestMismatchError
from vsslrt.files import sha256_file, to_jsonable

FINGERPRINT_NAME = "fingerprint.json"  # in the run folder: the full fingerprint, checked by every --resume
SAMPLE_LIST = "the sample list"
MEDIA = "the media files"
PREPARE = "the preparation record (prepare.json)"


def _canonical(doc: Any) -> str:
    return hashlib.sha256(json.dumps(to_jsonable(doc), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _metadata_hashes(sources: dict[str, str]) -> dict[str, str]:
    """sha256 of every metadata file by path (a folder source contributes each of its files)."""
    out: dict[str, str] = {}
    for value in sources.values():
        path = Path(str(value))
        if path.is_file():
            out[str(path.resolve())] = sha256_file(path)
        elif path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                out[str(child.resolve())] = sha256_file(child)
    return dict(sorted(out.items()))


def _stat(path: Path) -> list[Any]:
    try:
        st = path.stat()
    except OSError:
        return [str(path), None, None]  # a missing file (skipped with --skip-bad) is part of the identity too
    return [str(path), st.st_size, st.st_mtime_ns]


def dataset_fingerprint(dataset, indices: Sequence[int]) -> dict[str, Any]:
    """The fingerprint of `dataset` restricted to the run's samples `indices`.

    Returns:
        {"digest": 16 hex digits, "metadata": {file: sha256}, "samples": sha256, "media": sha256,
        "prepare": sha256 or None}.
    """
    from vsslrt.data.prepare.record import read_prepare_record  # lazy: the prepare package is only needed here

    samples = [dataset[i] for i in indices]
    listing = [[s.name, str(s.image), str(s.audio), to_jsonable(s.boxes), s.sound_class, int(s.group), list(s.onscreen)]
               for s in samples]
    media = {str(p): _stat(p) for s in samples for p in (s.image, s.audio)}
    for entries in (dataset.class_clips or {}).values():
        for clip in entries:
            media.setdefault(str(clip.audio), _stat(clip.audio))
    record = read_prepare_record(dataset.root)
    stats = sorted(media.values())
    doc = {
        "metadata": _metadata_hashes(dataset.sources),
        "samples": _canonical({"kind": dataset.kind, "samples": listing,
                               "classes": {k: [c.name for c in v] for k, v in (dataset.class_clips or {}).items()}}),
        "media": _canonical(stats),
        "prepare": None if record is None else _canonical(record),
    }
    # media_files (path, bytes, mtime_ns) stay in the run folder's fingerprint.json, out of the digest
    # and of metrics.json: they only serve to name the media file that changed.
    return {"digest": _canonical(doc)[:16], **doc, "media_files": stats}


def check_same_data(stored: dict[str, Any], current: dict[str, Any], run_dir: Path, *,
                    media_may_change: bool = False) -> None:
    """Refuse a resume whose data differs from the interrupted run's, naming what changed.

    Args:
        media_may_change: The run stopped on an unreadable media file, which the user has since
            fixed: media sizes and times may differ (the metadata and the sample list may not).

    Raises:
        ManifestMismatchError: Naming the metadata file (or the sample list, the media, the
            preparation record) that changed.
    """
    if stored.get("digest") == current.get("digest"):
        return
    if media_may_change and all(stored.get(k) == current.get(k) for k in ("metadata", "samples", "prepare")):
        return
    hint = (f"restore the original input, or start a new run: choose another --out folder (or delete {run_dir})")
    old, new = stored.get("metadata") or {}, current.get("metadata") or {}
    for path in sorted(set(old) | set(new)):
        if old.get(path) != new.get(path):
            what = "is no longer used" if path not in new else ("is new" if path not in old else "changed")
            raise ManifestMismatchError(f"{run_dir}: cannot resume, the dataset file {path} {what} since the run "
                                        "was started.", hint=hint)
    if stored.get("samples") == current.get("samples") and stored.get("media") != current.get("media"):
        old_media = {row[0]: row for row in stored.get("media_files") or []}
        for row in current.get("media_files") or []:
            if old_media.get(row[0], row) != row:
                raise ManifestMismatchError(f"{run_dir}: cannot resume, the media file {row[0]} changed (size or "
                                            "modification time) since the run was started.", hint=hint)
    for key, label in (("samples", SAMPLE_LIST), ("media", MEDIA), ("prepare", PREPARE)):
        if stored.get(key) != current.get(key):
            raise ManifestMismatchError(f"{run_dir}: cannot resume, {label} changed since the run was started.",
                                        hint=hint)
    raise ManifestMismatchError(f"{run_dir}: cannot resume, the dataset fingerprint changed "
                                f"({stored.get('digest')} -> {current.get('digest')}).", hint=hint)


def read_fingerprint(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: expected the run's dataset fingerprint (JSON), got {' '.join(str(exc).split())}.",
                        hint="delete the run folder to start the run again") from None
    if not isinstance(doc, dict) or "digest" not in doc:
        raise DataError(f"{path}: expected a dataset fingerprint with a 'digest', got none.",
                        hint="delete the run folder to start the run again")
    return doc


def warning_lines(problems) -> list[str]:
    """The dataset's warnings as report.md and metrics.json list them, one line each."""
    return [f"{p.where}: {' '.join(p.message.split())}" for p in problems]


def dataset_facts(dataset, indices: Sequence[int] | None = None) -> tuple[dict[str, Any], list[str]]:
    """(fingerprint, warning lines) of a run over `indices` (all samples by default): what a run folder
    records about its data, whoever writes it (a run, or shards merged on a driver)."""
    from vsslrt.data.validation import validate_dataset  # lazy: validation loads the adapters' readers

    indices = range(len(dataset)) if indices is None else indices
    report = validate_dataset(dataset, raise_on_error=False)
    return dataset_fingerprint(dataset, indices), warning_lines(report.warnings)

