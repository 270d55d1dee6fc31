"""VGG-SS adapter (protocol 1.3, 1.5, 2.1).

Annotation: a JSON list of records {"file": clip id (a path is cut to its basename), "bbox": list of
normalised [x1, y1, x2, y2], "class": optional}. Boxes outside [0, 1] are clipped, as the protocol
does (the official file holds 12 such values); they are reported as warnings. Media:
`{data_dir}/frames/{file}.jpg` and `{data_dir}/audio/{file}.wav`.

Offscreen sampling needs each clip's class: the first class of the class dictionary that lists the
clip (the reference's get_key). A clip missing from the dictionary is an error (Q17: the reference
crashes on it). When the record also carries a "class" that is a dictionary class, it is excluded
too. Each sample is its own group.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vsslrt.data.records import (
    Dataset,
    Sample,
    boxes_from_normalised,
    build_class_clips,
    check_box_values,
    class_of_clip,
    read_class_dict,
    read_json,
    resolve_metadata,
)
from vsslrt.data.problems import ProblemList
from vsslrt.errors import DataError

ANNOTATION_NAMES = ("vggss_annotations.json", "vggss.json")
CLASS_DICT_NAMES = ("vggss_class_files_dict.json", "class_files_dict.json")


def load_vggss(
    root: Path,
    *,
    metadata_dir: Path,
    annotation_file: str | Path | None = None,
    class_dict_file: str | Path | None = None,
) -> Dataset:
    """Read VGG-SS metadata into a Dataset (no media is opened here)."""
    problems = ProblemList()
    ann_path = resolve_metadata(annotation_file, metadata_dir, ANNOTATION_NAMES, "VGG-SS annotations", "--annotations")
    records = read_json(ann_path, "VGG-SS annotation list")
    if not isinstance(records, list):
        raise DataError(
            f"{ann_path}: expected a JSON list of {{file, bbox}} records, got {type(records).__name__}.",
            hint="use the VGG-SS annotation file (vggss_annotations.json)",
        )
    if not records:
        raise DataError(f"{ann_path}: expected at least one annotation record, got an empty list.", hint="check the file")
    dict_path = resolve_metadata(
        class_dict_file, metadata_dir, CLASS_DICT_NAMES, "VGG-SS class dictionary", "--class-dict", required=False
    )
    sources = {"annotations": str(ann_path)}

    parsed = []  # (where, name, boxes, record class)
    for i, rec in enumerate(records):
        where = f"{ann_path}[{i}]"
        if not isinstance(rec, dict) or not isinstance(rec.get("file"), str) or not rec["file"]:
            problems.error(where, f"expected a record with a non-empty string 'file', got {str(rec)[:80]}")
            continue
        name = rec["file"].split("/")[-1]
        boxes = check_box_values(
            rec.get("bbox"), f"{where} ({name})", problems, upper=1.0, clip_note="clipped to [0, 1] as the protocol does"
        )
        if boxes is None:
            continue
        if len(boxes) == 0:
            problems.warning(f"{where} ({name})", "has no boxes: its ground-truth map is empty")
        cls = rec.get("class")
        parsed.append((where, name, boxes, cls if isinstance(cls, str) and cls else None))

    _check_other_annotation_file(ann_path, parsed, problems, sources)

    if dict_path is not None:
        class_files = read_class_dict(dict_path, problems)
        sources["class_dict"] = str(dict_path)
    elif parsed and all(cls is not None for _, _, _, cls in parsed):
        class_files = {}
        for _, name, _, cls in parsed:
            class_files.setdefault(cls, []).append(name)
        sources["class_dict"] = f"built from the 'class' field of {ann_path}"
    else:
        raise DataError(
            f"VGG-SS class dictionary: expected one of {', '.join(str(metadata_dir / n) for n in CLASS_DICT_NAMES)} "
            f"or a 'class' in every annotation record, got neither.",
            hint="offscreen sampling needs each clip's class; pass --class-dict vggss_class_files_dict.json",
        )

    owner = class_of_clip(class_files)
    samples = []
    for where, name, boxes, rec_cls in parsed:
        index = len(samples)
        cls = owner.get(name)
        if cls is None:
            problems.error(
                f"{where} ({name})",
                "expected the clip to be listed in the class dictionary (offscreen sampling must exclude its class), "
                "got no entry",
            )
        onscreen = tuple(dict.fromkeys(c for c in (cls, rec_cls) if c is not None and c in class_files))
        samples.append(
            Sample(
                index=index,
                name=name,
                image=root / "frames" / f"{name}.jpg",
                audio=root / "audio" / f"{name}.wav",
                boxes=boxes_from_normalised(boxes),
                sound_class=cls or rec_cls,
                group=index,
                onscreen=onscreen,
            )
        )
    clips = build_class_clips(class_files, lambda n: root / "audio" / f"{n}.wav", samples)
    return Dataset("vggss", root, tuple(samples), clips, sources, problems.items)


def _check_other_annotation_file(ann_path: Path, parsed: list, problems: ProblemList, sources: dict) -> None:
    """Protocol Q15: the reference reads VGG-SS boxes from vggss_annotations.json, but SSL-TIE from
    vggss.json. vsslrt uses one file for every model; when the other file lies beside it, its boxes
    are compared clip by clip (after clipping to [0, 1]) and every disagreement is a warning, so that
    a comparison with numbers computed from the other file is not silently off."""
    if ann_path.name not in ANNOTATION_NAMES:
        return
    other = ann_path.with_name(next(n for n in ANNOTATION_NAMES if n != ann_path.name))
    if not other.is_file():
        return
    try:
        records = read_json(other, "VGG-SS annotation list")
    except DataError as exc:
        problems.warning(other, f"could not be read for the agreement check ({exc.one_line()})")
        return
    if not isinstance(records, list):
        problems.warning(other, f"expected a JSON list for the agreement check, got {type(records).__name__}")
        return
    theirs = {}
    for rec in records:
        if isinstance(rec, dict) and isinstance(rec.get("file"), str):
            try:
                boxes = np.clip(np.asarray(rec.get("bbox") or [], dtype=np.float64).reshape(-1, 4), 0.0, 1.0)
            except (TypeError, ValueError):
                continue
            theirs[rec["file"].split("/")[-1]] = boxes
    ours = {name: np.clip(boxes, 0.0, 1.0) for _, name, boxes, _ in parsed}
    common = ours.keys() & theirs.keys()
    differ = sorted(n for n in common
                    if ours[n].shape != theirs[n].shape or not np.allclose(ours[n], theirs[n], atol=1e-6))
    only_ours, only_theirs = len(ours.keys() - theirs.keys()), len(theirs.keys() - ours.keys())
    sources["agreement_check"] = (f"{other.name}: {len(common)} clips in both, {len(differ)} with different boxes, "
                                  f"{only_ours} only in {ann_path.name}, {only_theirs} only in {other.name}")
    if differ:
        problems.warning(other, f"{len(differ)} of {len(common)} shared clips have other boxes than {ann_path.name} "
                         f"(e.g. {', '.join(differ[:3])}); vsslrt uses {ann_path.name} for every model (protocol Q15)")
    if only_ours or only_theirs:
        problems.warning(other, f"the clip lists differ from {ann_path.name}: {only_ours} clips only in "
                         f"{ann_path.name}, {only_theirs} only in {other.name} (protocol Q15)")
