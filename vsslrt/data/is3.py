"""IS3 adapter (protocol 1.4, 1.5, 2.1; quirk Q16 fixed).

Files: `{data_dir}/images/{image}` and `{data_dir}/audio_wav/{audio}`, the basenames of a record's
`image` and `audio` fields (e.g. `name.jpg`, `name.wav`; the sample's name is the image basename without
extension)
(the official records hold absolute paths from the authors' machine: only basenames are used).

Boxes come from `synthetic3240_bbox.json`: records {image, audio, gt_box}, gt_box = [x1, y1, x2, y2]
already in 224-pixel units, truncated to int; one box per record, keyed by the image name. The sample
list is `IS3_annotation.json` when present, otherwise the box file's own records.

A name is `{objA}_{objB}[_{id}]_{target}`: each composite image holds two objects, and the dataset has
one record per target sound. The image pair is the name without its last token; it is the sample's
group. The on-screen classes (never drawn as offscreen audio) are taken from the annotation, not from a
filename glob (Q16 fixed): the classes of every record of the pair (class dictionary lookup, else the
target token) plus every dictionary class whose name appears as whole tokens in the pair key (so both
objects are excluded even when only one target of the pair is in the sample list).
"""

from __future__ import annotations

from pathlib import Path

from vsslrt.data.records import (
    Dataset,
    Sample,
    boxes_from_pixels,
    build_class_clips,
    check_box_values,
    class_of_clip,
    group_ids,
    read_class_dict,
    read_json,
    resolve_metadata,
)
from vsslrt.data.problems import ProblemList
from vsslrt.errors import DataError

BOX_NAMES = ("synthetic3240_bbox.json",)
ANNOTATION_NAMES = ("IS3_annotation.json",)
CLASS_DICT_NAMES = ("IS3_class_files_dict.json", "class_files_dict.json")


def _basename(path: str) -> str:
    return path.replace("\\", "/").split("/")[-1]


def _stem(path: str) -> str:
    base = _basename(path)
    return base.rsplit(".", 1)[0] if "." in base else base


def _token_runs(key: str) -> set[str]:
    """Every run of consecutive '_' tokens of `key` (the candidate class names it contains)."""
    tokens = key.split("_")
    return {"_".join(tokens[i:j]) for i in range(len(tokens)) for j in range(i + 1, len(tokens) + 1)}


def load_is3(
    root: Path,
    *,
    metadata_dir: Path,
    annotation_file: str | Path | None = None,
    class_dict_file: str | Path | None = None,
    box_file: str | Path | None = None,
) -> Dataset:
    """Read IS3 metadata into a Dataset (no media is opened here)."""
    problems = ProblemList()
    box_path = resolve_metadata(box_file, metadata_dir, BOX_NAMES, "IS3 boxes", "--boxes")
    box_records = read_json(box_path, "IS3 box list")
    if not isinstance(box_records, list):
        raise DataError(
            f"{box_path}: expected a JSON list of {{image, audio, gt_box}} records, got {type(box_records).__name__}.",
            hint="use the IS3 box file (synthetic3240_bbox.json)",
        )
    sources = {"boxes": str(box_path)}

    boxes_by_name: dict[str, object] = {}
    for i, rec in enumerate(box_records):
        if not isinstance(rec, dict) or not isinstance(rec.get("image"), str):
            problems.error(f"{box_path}[{i}]", f"expected a record with a string 'image', got {str(rec)[:80]}")
            continue
        name = _stem(rec["image"])
        if name in boxes_by_name:
            problems.warning(f"{box_path}[{i}] ({name})", "repeats an image already listed; the later box is used")
        boxes_by_name[name] = rec.get("gt_box")

    ann_path = resolve_metadata(annotation_file, metadata_dir, ANNOTATION_NAMES, "IS3 sample list", "--annotations", required=False)
    if ann_path is not None:
        records = read_json(ann_path, "IS3 sample list")
        if not isinstance(records, list):
            raise DataError(
                f"{ann_path}: expected a JSON list of {{image, audio}} records, got {type(records).__name__}.",
                hint="use IS3_annotation.json, or leave it out to use the box file's records",
            )
        list_path = ann_path
        sources["annotations"] = str(ann_path)
    else:
        records, list_path = box_records, box_path
        sources["annotations"] = f"{box_path} (no IS3_annotation.json)"
    if not records:
        raise DataError(f"{list_path}: expected at least one IS3 record, got an empty list.", hint="check the file")

    parsed = []  # (where, name, image file name, audio file name, boxes, pair key, target)
    for i, rec in enumerate(records):
        where = f"{list_path}[{i}]"
        if not isinstance(rec, dict) or not isinstance(rec.get("image"), str):
            problems.error(where, f"expected a record with a string 'image', got {str(rec)[:80]}")
            continue
        name = _stem(rec["image"])
        audio = rec.get("audio")
        audio_name = _basename(audio) if isinstance(audio, str) and audio else f"{name}.wav"
        if "_" not in name:
            problems.error(f"{where} ({name})", "expected a name objA_objB[_id]_target, got no '_' separated tokens")
            continue
        if name not in boxes_by_name:
            problems.error(f"{where} ({name})", f"expected a box for this image in {box_path}, got none")
            continue
        boxes = check_box_values(boxes_by_name[name], f"{box_path} ({name})", problems, upper=224.0)
        if boxes is None:
            continue
        pair, target = name.rsplit("_", 1)
        parsed.append((where, name, _basename(rec["image"]), audio_name, boxes, pair, target))

    dict_path = resolve_metadata(class_dict_file, metadata_dir, CLASS_DICT_NAMES, "IS3 class dictionary", "--class-dict", required=False)
    if dict_path is not None:
        class_files = read_class_dict(dict_path, problems)
        sources["class_dict"] = str(dict_path)
    else:
        class_files = {}
        for _, name, _, _, _, _, target in parsed:
            class_files.setdefault(target, []).append(name)
        sources["class_dict"] = "derived from the last token of each name (no class dictionary found)"
        problems.warning(
            metadata_dir,
            "no IS3 class dictionary found (IS3_class_files_dict.json); classes were derived from the names' "
            "last token. Pass --class-dict for the official one",
        )

    owner = class_of_clip(class_files)
    pair_classes: dict[str, set[str]] = {}
    for _, name, _, _, _, pair, target in parsed:
        cls = owner.get(name, target)
        pair_classes.setdefault(pair, set()).add(cls)
    for pair, classes in pair_classes.items():
        classes.update(_token_runs(pair) & class_files.keys())

    groups = group_ids([pair for *_, pair, _ in parsed])
    samples = []
    for (where, name, image_name, audio_name, boxes, pair, target), group in zip(parsed, groups):
        if name not in owner:
            problems.warning(f"{where} ({name})", "is not in the class dictionary: it is never drawn as offscreen audio")
        samples.append(
            Sample(
                index=len(samples),
                name=name,
                image=root / "images" / image_name,
                audio=root / "audio_wav" / audio_name,
                boxes=boxes_from_pixels(boxes),
                sound_class=owner.get(name, target),
                group=group,
                onscreen=tuple(sorted(pair_classes[pair])),
            )
        )
    clips = build_class_clips(class_files, lambda n: root / "audio_wav" / f"{n}.wav", samples)
    return Dataset("is3", root, tuple(samples), clips, sources, problems.items)
