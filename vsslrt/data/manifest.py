"""Generic manifest adapter: bring your own data without writing code (`--dataset manifest`).

`manifest.jsonl` in the data folder, one JSON object per line:

    {"image": "frames/a.jpg", "audio": "audio/a.wav", "boxes": [[0.1, 0.2, 0.5, 0.9]], "class": "dog", "group": "img7"}

or `manifest.csv` with a header row and the columns image, audio, boxes, class, group (boxes as
"x1 y1 x2 y2;x1 y1 x2 y2"). Fields:

* image, audio (required): paths relative to the data folder (absolute paths also work).
* boxes: normalised [x1, y1, x2, y2] in [0, 1] of the image's width and height; converted to the
  224 x 224 frame as VGG-SS's are (x 224, truncated). Optional: a sample without boxes has an empty
  ground-truth map (negatives are still evaluated).
* class: the positive sound's class. Offscreen audio is drawn from another class (a uniform class,
  then a uniform clip of it), so when any record has a class every record needs one. Without classes,
  offscreen audio is any clip of another image.
* group: records that share an image (several target sounds in one picture, like IS3) share a group;
  their classes are all on screen and none of them is offscreen audio for the others.
* classes (optional, JSON only): every class visible in the image; added to the on-screen classes.
* name (optional): the sample's id in reports; default: the audio path without extension.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from vsslrt.data.records import (
    Dataset,
    Sample,
    boxes_from_normalised,
    build_class_clips,
    check_box_values,
    group_ids,
)
from vsslrt.data.problems import ProblemList
from vsslrt.errors import DataError

MANIFEST_NAMES = ("manifest.jsonl", "manifest.csv")
CSV_COLUMNS = ("image", "audio", "boxes", "class", "group", "name")
NO_BOXES = "none: no record has a boxes field (a dataset without boxes by design)"
"""`Dataset.sources["boxes"]` of such a manifest: the benchmark skips the positive metrics and runs the negatives."""
_HINT = 'one record per line: {"image": "rel/a.jpg", "audio": "rel/a.wav", "boxes": [[x1, y1, x2, y2]], "class": "dog"}'


def _read_jsonl(path: Path, problems: ProblemList) -> list[tuple[str, dict]]:
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.error(where, f"expected a JSON object, got a syntax error at column {exc.colno}: {exc.msg}")
                continue
            if not isinstance(rec, dict):
                problems.error(where, f"expected a JSON object, got {type(rec).__name__}")
                continue
            records.append((where, rec))
    return records


def parse_csv_boxes(text: str) -> list[list[float]]:
    """"x1 y1 x2 y2;x1 y1 x2 y2" -> [[x1, y1, x2, y2], ...] (empty text: no boxes).

    Raises:
        ValueError: A box does not have four numbers.
    """
    boxes = []
    for part in text.split(";"):
        if not part.strip():
            continue
        values = part.replace(",", " ").split()
        if len(values) != 4:
            raise ValueError(f"box {part.strip()!r} has {len(values)} values")
        boxes.append([float(v) for v in values])
    return boxes


def _read_csv(path: Path, problems: ProblemList) -> list[tuple[str, dict]]:
    records = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in ("image", "audio") if c not in header]
        if missing:
            raise DataError(
                f"{path}: expected a header row with columns {', '.join(CSV_COLUMNS)}, got {header or 'no header'}.",
                hint="the first row names the columns; image and audio are required",
            )
        for lineno, raw in enumerate(reader, start=2):
            where = f"{path}:{lineno}"
            # DictReader puts surplus values under the key None and fills missing ones with None.
            if None in raw or any(v is None for v in raw.values()):
                problems.error(where, f"expected {len(header)} comma-separated columns ({', '.join(header)}), got a different number")
                continue
            row = {k.strip(): v.strip() for k, v in raw.items()}
            rec: dict = {k: row.get(k) for k in ("image", "audio", "class", "group", "name") if row.get(k)}
            if "boxes" not in header:
                records.append((where, rec))  # no boxes column: a dataset without boxes by design
                continue
            text = row.get("boxes") or ""
            try:
                rec["boxes"] = parse_csv_boxes(text)
            except ValueError as exc:
                problems.error(where, f'expected boxes as "x1 y1 x2 y2;x1 y1 x2 y2", got {text!r} ({exc})')
                continue
            records.append((where, rec))
    return records


def load_manifest(root: Path, *, manifest_file: str | Path | None = None) -> Dataset:
    """Read a manifest (jsonl or csv) into a Dataset (no media is opened here)."""
    problems = ProblemList()
    if manifest_file is not None:
        path = Path(manifest_file)
        if not path.is_file():
            raise DataError(f"manifest: expected a file at {path}, got no such file.", hint="check --annotations")
    else:
        found = [root / n for n in MANIFEST_NAMES if (root / n).is_file()]
        if not found:
            raise DataError(
                f"manifest: expected {root / MANIFEST_NAMES[0]} or {root / MANIFEST_NAMES[1]}, got neither.",
                hint=_HINT,
            )
        path = found[0]
        if len(found) > 1:
            problems.warning(found[1], f"ignored: {found[0].name} is used when both manifests exist")
    raw = _read_csv(path, problems) if path.suffix.lower() == ".csv" else _read_jsonl(path, problems)
    if not raw and not problems.errors:
        raise DataError(f"{path}: expected at least one record, got an empty manifest.", hint=_HINT)

    parsed = []  # (where, rec, boxes)
    for where, rec in raw:
        bad = [k for k in ("image", "audio") if not isinstance(rec.get(k), str) or not rec.get(k)]
        if bad:
            problems.error(where, f"expected non-empty string field(s) {', '.join(bad)}, got {str(rec)[:80]}")
            continue
        cls = rec.get("class")
        if cls is not None and (not isinstance(cls, str) or not cls):
            problems.error(where, f"expected 'class' to be a non-empty string, got {cls!r}")
            continue
        visible = rec.get("classes")
        if visible is not None and (not isinstance(visible, list) or not all(isinstance(c, str) for c in visible)):
            problems.error(where, f"expected 'classes' to be a list of class names, got {visible!r}")
            continue
        boxes = check_box_values(rec.get("boxes"), where, problems, upper=1.0)
        if boxes is None:
            continue
        if len(boxes) == 0:
            problems.warning(where, "has no boxes: its ground-truth map is empty")
        parsed.append((where, rec, boxes))

    with_class = [p for p in parsed if p[1].get("class")]
    if with_class and len(with_class) < len(parsed):
        for where, rec, _ in parsed:
            if not rec.get("class"):
                problems.error(
                    where,
                    "expected a 'class' (other records have one, and offscreen sampling must exclude this clip's class), got none",
                )

    groups = group_ids([None if rec.get("group") is None else str(rec["group"]) for _, rec, _ in parsed])
    group_classes: dict[int, set[str]] = {}
    for (_, rec, _), group in zip(parsed, groups):
        visible = group_classes.setdefault(group, set())
        visible.update(rec.get("classes") or ())
        if rec.get("class"):
            visible.add(rec["class"])

    samples = []
    class_files: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for (where, rec, boxes), group in zip(parsed, groups):
        audio = root / rec["audio"]
        name = str(rec.get("name") or Path(rec["audio"]).with_suffix("").as_posix())
        if name in seen:
            problems.error(where, f"expected unique sample names, got {name!r} again (first at {seen[name]}); add a 'name'")
            continue
        seen[name] = where
        cls = rec.get("class")
        if cls:
            class_files.setdefault(cls, []).append(name)
        samples.append(
            Sample(
                index=len(samples),
                name=name,
                image=root / rec["image"],
                audio=audio,
                boxes=boxes_from_normalised(boxes),
                sound_class=cls,
                group=group,
                onscreen=tuple(sorted(group_classes.get(group, ()))),
            )
        )
    clips = None
    if class_files:
        clips = build_class_clips(class_files, lambda n: root / n, samples)
    sources = {"manifest": str(path)}
    if raw and all("boxes" not in rec for _, rec in raw):
        sources["boxes"] = NO_BOXES
    return Dataset("manifest", root, tuple(samples), clips, sources, problems.items)
