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

Paper mode reproduces the reference's rule instead (`Sample.onscreen_reference`, protocol 2.1 step 3):
list `images/` in directory order, keep the files matching the glob `{pair}*`, and exclude the classes
(`get_key`: first class of the dictionary listing the file's id) of the first two matches, once each.
For a name without a numeric id the prefix also matches other pairs' images, so an on-screen class can
stay among the candidates (Q16). Where the reference would crash (fewer than two matches: IndexError; a
match in no class: ValueError) the classes found are used and a warning says so.
"""

from __future__ import annotations

import bisect
import os
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
from vsslrt.data.masks import MaskDataset, MaskSample

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
    masks: bool = False,
) -> Dataset:
    """Read IS3 metadata into a Dataset (no media is opened here).

    With `masks`, each sample's ground truth is its segmentation mask (`with_segmentation_masks`).
    """
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

    notes: list[str] = []
    reference = _reference_onscreen(root / "images", {pair for *_, pair, _ in parsed}, owner, notes)
    if notes:
        # Only paper mode uses the reference's rule: its cases are provenance of a paper-mode run, not
        # warnings for every user of the dataset.
        sources["paper_mode_onscreen_notes"] = f"{len(notes)} image pairs: " + "; ".join(notes[:5]) + (
            "; ..." if len(notes) > 5 else "")
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
                onscreen_reference=reference.get(pair),
            )
        )
    clips = build_class_clips(class_files, lambda n: root / "audio_wav" / f"{n}.wav", samples)
    if masks:
        return with_segmentation_masks(Dataset("is3", root, tuple(samples), clips, sources, problems.items))
    return Dataset("is3", root, tuple(samples), clips, sources, problems.items)


MASK_FOLDERS = ("gt_segmentation", "gt_masks")
MASK_SUFFIXES = (".jpg", ".png", ".jpeg")


def with_segmentation_masks(dataset: Dataset):
    """The IS3 dataset with each sample's mask as its ground truth (protocols-extended.md 6.4).

    The masks are the binary maps of IS3's `gt_segmentation` folder (one per annotation, named like
    the image; `gt_masks/` accepted too), stored as JPEG: read as gray, foreground > 127, at
    224x224. The released code never reads them, so these are vsslrt's definitions; a sample
    without a mask file is an error naming the file (`--skip-bad` leaves it out).
    """
    import dataclasses


    folder = next((dataset.root / f for f in MASK_FOLDERS if (dataset.root / f).is_dir()), None)
    problems = ProblemList()
    problems.extend(dataset.problems)
    if folder is None:
        raise DataError(f"{dataset.root}: expected a gt_segmentation/ folder of IS3 masks, got none.",
                        hint="use --dataset is3 for the box ground truth")
    samples = []
    for s in dataset.samples:
        found = next((folder / f"{s.name}{x}" for x in MASK_SUFFIXES if (folder / f"{s.name}{x}").is_file()), None)
        if found is None:
            problems.error(folder / f"{s.name}.jpg", f"expected the mask of sample {s.name}, got no such file",
                           samples=[s.index])
        fields = {f.name: getattr(s, f.name) for f in dataclasses.fields(s)}
        samples.append(MaskSample(**fields, mask=found, mask_encoding="gray"))
    sources = {**dataset.sources, "masks": str(folder)}
    return MaskDataset(dataset.kind, dataset.root, tuple(samples), dataset.class_clips, sources, problems.items)


def _reference_onscreen(
    images: Path, pairs: set[str], owner: dict[str, str], notes: list[str]
) -> dict[str, tuple[str, ...]]:
    """pair -> the classes the reference excludes for it (module docstring); {} without an image folder."""
    try:
        listing = os.listdir(images)  # directory order, as the reference's glob sees it
    except OSError:
        return {}  # validation reports the missing images; paper mode then keeps the annotation's classes
    ordered = sorted(range(len(listing)), key=listing.__getitem__)
    names = [listing[i] for i in ordered]
    out = {}
    for pair in sorted(pairs):
        lo = bisect.bisect_left(names, pair)
        hi = lo
        while hi < len(names) and names[hi].startswith(pair):  # glob "{pair}*"
            hi += 1
        first = sorted(ordered[lo:hi])[:2]  # the first two in directory order
        classes = [owner.get(_stem(listing[i])) for i in first]
        where = f"{images} ({pair}*)"
        if len(first) < 2:
            notes.append(f"{where}: matches {len(first)} image(s) where the reference reads two (it raises "
                         "IndexError); paper mode excludes the classes found")
        if None in classes:
            notes.append(f"{where}: a matching image is in no class of the dictionary (the reference raises "
                         "ValueError); paper mode skips it")
        out[pair] = tuple(sorted({c for c in classes if c is not None}))
    return out
