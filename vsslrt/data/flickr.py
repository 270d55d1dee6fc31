"""Flickr-SoundNet adapter (the SoundNet-Flickr test set of "Learning to Localize Sound Source").

Files: `{data_dir}/frames/{id}.jpg`, `{data_dir}/audio/{id}.wav`, and one XML file per clip in
`{data_dir}/Annotations/{id}.xml` holding every annotator's boxes. A box is a `<bbox>` element whose
children give the coordinates in the 256 x 256 frame of the released images: named `xmin`, `ymin`,
`xmax`, `ymax` children when present, otherwise the four children after the first (the order the
reference parser reads). Each coordinate becomes int(224 * v / 256), as the reference does.

The sample list is `flickr_test.csv` in the metadata folder (first column: clip ids), or every
annotated id (sorted) when that file is absent. The set has no classes: offscreen audio is drawn from
any other clip. Each sample is its own group.

Ground truth: every annotator's box is kept (`Sample.boxes`). The reference weights them by
consensus (protocols-extended.md C1: a pixel covered by one box counts 0.5, by two or more 1);
`gt_weights` gives that weight map (the dataset's `sources["gt_rule"]` is "consensus"), which the
evaluators take as weighted ground truth. `Dataset.gt_maps` stays the boolean union of the boxes.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vsslrt.data.records import GT_SIZE, Dataset, Sample, check_box_values, resolve_metadata
from vsslrt.data.problems import ProblemList
from vsslrt.errors import DataError

LIST_NAMES = ("flickr_test.csv",)
GT_RULE = "gt_rule"  # key of Dataset.sources naming the ground-truth rule
CONSENSUS = "consensus"
FLICKR_FRAME = 256.0
_NAMED = ("xmin", "ymin", "xmax", "ymax")


def parse_flickr_xml(path: Path) -> list[list[float]]:
    """All boxes of one annotation file, in the 256-pixel frame.

    Raises:
        ValueError: The file is not XML or a box is not four numbers.
    """
    root = ET.parse(path).getroot()
    boxes = []
    for bbox in root.iter("bbox"):
        children = list(bbox)
        named = {c.tag: c.text for c in children if c.tag in _NAMED}
        if len(named) == 4:
            values = [named[k] for k in _NAMED]
        elif len(children) == 5:
            values = [c.text for c in children[1:]]
        else:
            raise ValueError(f"a <bbox> with {len(children)} children (expected xmin, ymin, xmax, ymax)")
        boxes.append([float(v) for v in values])
    return boxes


def load_flickr(root: Path, *, metadata_dir: Path, annotation_dir: str | Path | None = None) -> Dataset:
    """Read Flickr-SoundNet metadata into a Dataset (no media is opened here)."""
    problems = ProblemList()
    ann_dir = Path(annotation_dir) if annotation_dir is not None else root / "Annotations"
    if not ann_dir.is_dir():
        raise DataError(
            f"Flickr annotations: expected a folder of XML files at {ann_dir}, got no such folder.",
            hint="pass the folder with --annotations",
        )
    sources = {"annotations": str(ann_dir), GT_RULE: CONSENSUS}
    list_path = resolve_metadata(None, metadata_dir, LIST_NAMES, "Flickr sample list", "--metadata-dir", required=False)
    if list_path is not None:
        with open(list_path, newline="", encoding="utf-8") as f:
            ids = [row[0].strip() for row in csv.reader(f) if row and row[0].strip()]
        sources["sample_list"] = str(list_path)
    else:
        ids = sorted(p.stem for p in ann_dir.glob("*.xml"))
        sources["sample_list"] = f"every XML file in {ann_dir}"
    if not ids:
        raise DataError(f"Flickr sample list: expected at least one clip id, got none in {list_path or ann_dir}.", hint="check the files")

    samples = []
    for clip in ids:
        xml_path = ann_dir / f"{clip}.xml"
        if not xml_path.is_file():
            problems.error(xml_path, "expected the clip's annotation file, got no such file")
            continue
        try:
            raw = parse_flickr_xml(xml_path)
        except (ET.ParseError, ValueError, TypeError) as exc:
            problems.error(xml_path, f"expected Flickr-SoundNet XML boxes, got {' '.join(str(exc).split())}")
            continue
        boxes = check_box_values(raw, str(xml_path), problems, upper=FLICKR_FRAME)
        if boxes is None:
            continue
        if len(boxes) == 0:
            problems.warning(xml_path, "has no boxes: its ground-truth map is empty")
        index = len(samples)
        samples.append(
            Sample(
                index=index,
                name=clip,
                image=root / "frames" / f"{clip}.jpg",
                audio=root / "audio" / f"{clip}.wav",
                boxes=(224.0 * boxes / FLICKR_FRAME).astype(np.int64),
                sound_class=None,
                group=index,
            )
        )
    return Dataset("flickr", root, tuple(samples), None, sources, problems.items)


def consensus_map(boxes: np.ndarray, size: int = GT_SIZE) -> np.ndarray:
    """(size, size) float32 consensus weights: min(boxes covering the pixel / 2, 1) (C1)."""
    count = np.zeros((size, size), dtype=np.float32)
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.int64).reshape(-1, 4):
        count[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] += 1
    return np.minimum(count / 2, 1).astype(np.float32)


def gt_weights(dataset: Dataset, indices: Sequence[int] | None = None) -> np.ndarray:
    """(N, 224, 224) float32 ground-truth weights of the given samples (all by default).

    Consensus weights (0, 0.5, 1) for a dataset whose `sources["gt_rule"]` is "consensus" (Flickr
    and Extended Flickr); elsewhere the boolean union of the boxes as 0/1, so that every other
    dataset scores exactly as with `Dataset.gt_maps`.
    """
    if dataset.sources.get(GT_RULE) != CONSENSUS:
        return dataset.gt_maps(indices).astype(np.float32)
    chosen = dataset.samples if indices is None else [dataset.samples[i] for i in indices]
    out = np.zeros((len(chosen), GT_SIZE, GT_SIZE), dtype=np.float32)
    for i, sample in enumerate(chosen):
        out[i] = consensus_map(sample.boxes)
    return out
