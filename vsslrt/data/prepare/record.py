"""`prepare.json`, the record of how a prepared folder was made, and the report of what was not.

`prepare.json` (format "vsslrt-prepare", version 1) holds the tool's version (vsslrt, PyAV, FFmpeg's
libraries), the settings that move numbers (frame time, audio window, sample rate, channel rule,
resampler, JPEG quality, how videos map to clips), the metadata files with their sha256, and per
prepared clip its source file (path relative to the source folder, fingerprinted as
`settings.HASH_RULE` says), the offset of the clip in it, the decoded frame time and the audio span.
`read_prepare_record` gives the benchmark a compact copy for its dataset fingerprint.

`prepare_report.json` lists every clip that was not prepared with its reason, the listed clips no
file provides, duplicate files, notes (short audio, variable frame rate, ...) and the audio formats
converted, with counts of how much of the official list the folder covers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from vsslrt.errors import DataError
from vsslrt.files import atomic_write_json, sha256_bytes, sha256_file
from vsslrt import __version__

RECORD_NAME = "prepare.json"
REPORT_NAME = "prepare_report.json"
FORMAT = "vsslrt-prepare"
FORMAT_VERSION = 1


def tool_versions() -> dict:
    doc = {"vsslrt": __version__}
    try:
        import av  # optional extra: recorded when present

        doc["pyav"] = av.__version__
        doc["ffmpeg"] = {name: ".".join(map(str, v)) for name, v in sorted(av.library_versions.items())}
    except ImportError:
        pass
    return doc


def file_record(path: Path | None) -> dict | None:
    return None if path is None else {"path": str(path), "sha256": sha256_file(path)}


@dataclass
class PrepareReport:
    """What a preparation run did (also written to `prepare_report.json`).

    Attributes:
        kind: "vggss", "flickr" or "manifest".
        out: The output folder.
        listed: Clips the list (annotations, test list, videos found) names.
        prepared: Clip ids prepared and usable (this run or an earlier one).
        skipped: How many of them an earlier run had finished.
        failed: (clip, source, reason) of the clips that could not be prepared.
        missing: Listed clips that no source file provides.
        duplicates: (clip, used file, ignored files).
        notes: (clip, note) of prepared clips with something to know.
        audio_sources: "44100 Hz, 2 ch" -> clip ids converted from that format.
        extra: Preparer-specific counts (audio-only clips, unused boxes, ...).
    """

    kind: str
    out: Path
    listed: int = 0
    prepared: list[str] = field(default_factory=list)
    skipped: int = 0
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str, list[str]]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    audio_sources: dict[str, list[str]] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def not_prepared(self) -> int:
        return self.listed - len(self.prepared)

    @property
    def exit_code(self) -> int:
        """0 when at least one clip was prepared, 1 when none was."""
        return 0 if self.prepared else 1

    def coverage(self) -> float:
        return len(self.prepared) / self.listed if self.listed else 0.0

    def to_dict(self) -> dict:
        return {
            "kind": self.kind, "out": str(self.out),
            "counts": {"listed": self.listed, "prepared": len(self.prepared), "skipped_as_finished": self.skipped,
                       "not_prepared": self.not_prepared, "failed": len(self.failed), "missing": len(self.missing),
                       "duplicates": len(self.duplicates), "with_notes": len({c for c, _ in self.notes}),
                       "coverage": round(self.coverage(), 6), **self.extra},
            "failed": [{"clip": c, "source": s, "reason": r} for c, s, r in self.failed],
            "missing": [{"clip": c, "reason": "no video file provides this clip"} for c in self.missing],
            "duplicates": [{"clip": c, "used": u, "ignored": i} for c, u, i in self.duplicates],
            "notes": [{"clip": c, "note": n} for c, n in self.notes],
            "audio_sources": {k: {"count": len(v), "clips": v} for k, v in sorted(self.audio_sources.items())},
        }

    def write(self) -> Path:
        return atomic_write_json(self.out / REPORT_NAME, self.to_dict())


def collect(report: PrepareReport, results: dict[str, dict], keys: list[str]) -> dict[str, dict]:
    """Fill the report from task results (in `keys` order); returns the successful results."""
    good = {}
    for key in keys:
        result = results.get(key)
        if result is None:
            continue
        if result.get("status") != "ok":
            report.failed.append((key, result.get("source", ""), result.get("reason", "unknown")))
            continue
        good[key] = result
        report.notes.extend((key, n) for n in result.get("notes", []))
        src = result.get("audio_source") or {}
        if src:
            report.audio_sources.setdefault(f"{src.get('sample_rate')} Hz, {src.get('channels')} ch, "
                                            f"{src.get('codec')}", []).append(key)
    return good


def clip_records(good: dict[str, dict], source_root: Path) -> dict[str, dict]:
    """Per clip: its source (relative path, fingerprint), offset and outputs, for prepare.json."""
    out = {}
    for key, r in good.items():
        source = Path(r["source"])
        try:
            rel = str(source.relative_to(source_root))
        except ValueError:
            rel = str(source)
        out[key] = {"source": rel, "fingerprint": r.get("fingerprint"), "offset": r.get("offset"),
                    "outputs": r.get("outputs", [])}
    return out


def write_record(out: Path, kind: str, settings: dict, inputs: dict, clips: dict[str, dict]) -> Path:
    doc = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tool": tool_versions(), "settings": settings, "inputs": inputs,
        "hash_rule": settings.get("hash_rule"), "clips": clips,
    }
    return atomic_write_json(out / RECORD_NAME, doc)


def read_prepare_record(data_dir: str | Path) -> dict | None:
    """The preparation record of a dataset folder, compact, for a run's dataset fingerprint.

    Returns:
        None when the folder has no `prepare.json`; otherwise the record without its per-clip
        section, which is replaced by `n_clips` and `clips_sha256` (sha256 of that section's
        canonical JSON: any change of a source fingerprint, offset or frame time changes it).

    Raises:
        DataError: The file is not a preparation record this version reads.
    """
    path = Path(data_dir) / RECORD_NAME
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: expected a preparation record (JSON), got {' '.join(str(exc).split())}.",
                        hint="rerun `vsslrt data prepare` into this folder, or remove the file") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise DataError(f"{path}: expected format {FORMAT!r} version {FORMAT_VERSION}, got {got!r}.",
                        hint="rerun `vsslrt data prepare` into this folder")
    clips = doc.pop("clips", {}) or {}
    doc["n_clips"] = len(clips)
    doc["clips_sha256"] = sha256_bytes(json.dumps(clips, sort_keys=True, separators=(",", ":")))
    return doc
