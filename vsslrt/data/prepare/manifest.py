"""`vsslrt data prepare manifest`: any folder of videos -> a manifest dataset (`vsslrt.data.manifest`).

Each video (searched recursively; its path without suffix is its id) gives one or more records: a
frame and the audio window of `window` seconds centred on it (shifted inside the track near its
ends, the whole track when shorter: the video deployment's edge policy). Frame times, in seconds
from the first frame: `at` (the same times in every video), `every` (a frame every so many seconds
from 0), or else the times the boxes file gives for that video, or else the middle of the video.

    DATA/frames/{id}_{ms}.jpg  DATA/audio/{id}_{ms}.wav  DATA/manifest.jsonl
    DATA/prepare.json  DATA/prepare_report.json

The records of one video share a group (`group` = its id), so no frame of a video is given the
same video's sound as offscreen audio. Boxes (optional) come from a CSV or JSON file:

    video,time,x1,y1,x2,y2,class           CSV: one box per row; "boxes" ("x1 y1 x2 y2;...") may
    kitchen/tap.mp4,2.5,0.1,0.2,0.4,0.6,tap  replace x1..y2; time and class are optional
    [{"video": "tap.mp4", "time": 2.5, "boxes": [[0.1, 0.2, 0.4, 0.6]], "class": "tap"}]   JSON
    {"tap.mp4": [[0.1, 0.2, 0.4, 0.6]]}                                                   JSON

`video` is the file's path relative to --videos, its name or its id; boxes are normalised to [0, 1]
of the frame's width and height; a box without a time belongs to every frame of its video. Without
boxes the records have none (empty ground truth): the positive metrics mean nothing then and only
the negative ones should be read.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from vsslrt.data.manifest import parse_csv_boxes
from vsslrt.data.prepare import record as rec
from vsslrt.data.prepare.driver import Progress, run_tasks
from vsslrt.data.prepare.extract import ClipTask
from vsslrt.data.prepare.names import scan_videos
from vsslrt.data.prepare.settings import HASH_RULE, MANIFEST_WINDOW, MediaSettings
from vsslrt.data.prepare.vggss import check_folder
from vsslrt.data.records import read_json
from vsslrt.errors import DataError, InputError
from vsslrt.files import atomic_write_text
from vsslrt.data.video import _av


@dataclass(frozen=True)
class BoxEntry:
    where: str
    video: str
    time: float | None
    boxes: tuple[tuple[float, float, float, float], ...]
    cls: str | None


def _number(text: object, where: str, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise DataError(f"{where}: expected {what} as a number, got {text!r}.", hint="fix the boxes file") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: expected a finite {what}, got {text!r}.", hint="fix the boxes file")
    return value


def _boxes(value: object, where: str) -> tuple:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(b, list) and len(b) == 4 for b in value):
        raise DataError(f"{where}: expected boxes as a list of [x1, y1, x2, y2], got {str(value)[:80]}.",
                        hint="boxes are normalised to [0, 1] of the frame")
    return tuple(tuple(_number(v, where, "a box coordinate") for v in b) for b in value)


def read_boxes(path: Path) -> list[BoxEntry]:
    """The boxes file (CSV or JSON, see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--boxes: expected a file at {path}, got no such file.")
    entries = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in reader.fieldnames or []]
            corners = all(k in header for k in ("x1", "y1", "x2", "y2"))
            if "video" not in header or not (corners or "boxes" in header):
                raise DataError(f"{path}: expected a header with video and x1,y1,x2,y2 (or boxes), got {header}.",
                                hint="e.g. video,time,x1,y1,x2,y2,class")
            for lineno, raw in enumerate(reader, start=2):
                row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
                where = f"{path}:{lineno}"
                if corners:
                    values = [row.get(k, "") for k in ("x1", "y1", "x2", "y2")]
                    boxes = () if not any(values) else (tuple(_number(v, where, "a box coordinate") for v in values),)
                else:
                    try:
                        boxes = tuple(tuple(b) for b in parse_csv_boxes(row.get("boxes", "")))
                    except ValueError as exc:
                        raise DataError(f'{where}: expected boxes as "x1 y1 x2 y2;...", got {row.get("boxes")!r} ({exc}).') from None
                time = _number(row["time"], where, "a time") if row.get("time") else None
                entries.append(BoxEntry(where, row["video"], time, boxes, row.get("class") or None))
        return entries
    doc = read_json(path, "boxes file")
    if isinstance(doc, dict):
        doc = [{"video": k, **(v if isinstance(v, dict) else {"boxes": v})} for k, v in doc.items()]
    if not isinstance(doc, list):
        raise DataError(f"{path}: expected a JSON list of {{video, boxes, time, class}} or an object video -> boxes, "
                        f"got {type(doc).__name__}.")
    for i, item in enumerate(doc):
        where = f"{path}[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("video"), str):
            raise DataError(f"{where}: expected an object with a string 'video', got {str(item)[:80]}.")
        time = None if item.get("time") is None else _number(item["time"], where, "a time")
        cls = item.get("class") if isinstance(item.get("class"), str) and item.get("class") else None
        entries.append(BoxEntry(where, item["video"], time, _boxes(item.get("boxes"), where), cls))
    return entries


def _ms(t: float) -> int:
    return int(round(t * 1000))


def prepare_manifest(videos: str | Path, out: str | Path, *, boxes: str | Path | None = None,
                     at: tuple[float, ...] | None = None, every: float | None = None,
                     window: float = MANIFEST_WINDOW, media: MediaSettings | None = None, workers: int = 1,
                     progress: Progress | None = None) -> rec.PrepareReport:
    """Turn a folder of videos into a manifest dataset (see the module docstring).

    Returns:
        The report (also in `out/prepare_report.json`); `exit_code` is 1 when nothing was prepared.
    """

    media = media or MediaSettings()
    media.check()
    if at and every is not None:
        raise InputError("--at and --every: expected one way to choose frame times, got both.")
    if at is not None and any(not math.isfinite(t) or t < 0 for t in at):
        raise InputError(f"--at: expected times of at least 0 s, got {list(at)}.")
    if every is not None and not (every > 0):
        raise InputError(f"--every: expected a positive number of seconds, got {every!r}.")
    if not (window > 0):
        raise InputError(f"--window: expected a positive number of seconds, got {window!r}.")
    videos, out = check_folder(Path(videos), "--videos"), Path(out)
    _av()
    entries = read_boxes(Path(boxes)) if boxes is not None else []

    found = scan_videos(videos)
    report = rec.PrepareReport("manifest", out)
    ids: dict[str, Path] = {}
    for path in found:
        key = path.relative_to(videos).with_suffix("").as_posix()
        if key in ids:
            report.duplicates.append((key, str(ids[key]), [str(path)]))
        else:
            ids[key] = path
    report.listed = len(ids)
    lookup: dict[str, str | None] = {}
    for key, path in ids.items():
        for alias in (path.relative_to(videos).as_posix(), path.name, key, path.stem):
            lookup[alias] = key if lookup.get(alias, key) == key else None  # None: ambiguous
    per_video: dict[str, list[BoxEntry]] = {}
    unused = []
    for entry in entries:
        key = lookup.get(entry.video)
        if key is None:
            why = "names no video in --videos" if entry.video not in lookup else "matches several videos (give the path)"
            unused.append((entry.where, f"{entry.video!r} {why}"))
            continue
        per_video.setdefault(key, []).append(entry)

    tasks = []
    for key, path in ids.items():
        own = per_video.get(key, [])
        if at:
            times, rule = tuple(float(t) for t in at), None
        elif every is not None:
            times, rule = (), ("every", float(every))
        elif any(e.time is not None for e in own):
            times, rule = tuple(sorted({e.time for e in own if e.time is not None})), None
        else:
            times, rule = (), "middle"
        safe = key.replace("{", "{{").replace("}", "}}")
        tasks.append(ClipTask(key=key, source=str(path), frames=times, frame_rule=rule,
                              frame_names=(f"frames/{safe}_{{t_ms:08d}}.jpg",),
                              audio_names=(f"audio/{safe}_{{t_ms:08d}}.wav",), window=float(window),
                              policy="centred", layout="clips", media=media))
    results, _ = run_tasks(tasks, out, workers=workers, progress=progress)
    good = rec.collect(report, results, [t.key for t in tasks])
    report.prepared = list(good)
    report.skipped = sum(1 for c in good if results[c].get("skipped"))

    lines, classes = [], {}
    for key, result in good.items():
        own = per_video.get(key, [])
        cls = next((e.cls for e in own if e.cls), None)
        if any(e.cls and e.cls != cls for e in own):
            report.notes.append((key, f"several classes in the boxes file; {cls!r} is used"))
        classes[key] = cls
        times = {_ms(o["time"]) for o in result["outputs"]}
        for e in own:
            if e.time is not None and _ms(e.time) not in times:
                unused.append((e.where, f"time {e.time:g} s is no frame time of {key}"))
        for o in result["outputs"]:
            doc = {"image": o["image"], "audio": o["audio"], "name": Path(o["image"]).with_suffix("").as_posix()[len("frames/"):],
                   "group": key}
            if boxes is not None:
                doc["boxes"] = [list(b) for e in own if e.time is None or _ms(e.time) == _ms(o["time"]) for b in e.boxes]
            if cls:
                doc["class"] = cls
            lines.append(json.dumps(doc))
    if any(classes.values()) and not all(classes.values()):
        report.extra["videos_without_class"] = [k for k, c in classes.items() if not c]
    report.extra.update({"records": len(lines), "boxes": "from " + str(boxes) if boxes is not None else "none",
                         "unused_boxes": [{"where": w, "reason": r} for w, r in unused]})
    if len(good) == 1:
        report.notes.append((next(iter(good)), "one video only: offscreen audio needs clips of at least two videos"))
    if lines:
        atomic_write_text(out / "manifest.jsonl", "\n".join(lines) + "\n")
        settings = {"frame_times": list(at) if at else None, "every": every,
                    "frame_rule": "the first frame at or after each time (timestamps); default: the video's middle",
                    "audio_window": {"seconds": float(window), "placement": "centred on the frame, shifted inside "
                                     "the track near its ends, the whole track when shorter"},
                    **media.to_dict(), "hash_rule": HASH_RULE}
        inputs = {"videos": str(videos), "boxes": rec.file_record(None if boxes is None else Path(boxes)),
                  "listed_clips": len(ids)}
        rec.write_record(out, "manifest", settings, inputs, rec.clip_records(good, videos))
    report.write()
    return report
