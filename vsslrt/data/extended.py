"""Extended Flickr-SoundNet and Extended VGG-SS: the test lists plus non-sounding samples.

protocols-extended.md sections 1.2 and 2.2: the positives are the ordinary test set (the Flickr or
VGG-SS adapter reads them, boxes and all); the negatives come from `flickr_test_plus_silent.csv` /
`vggss_test_plus_silent.csv` (header `video,audio,label`, label `non-sounding`): the frame of clip
`video` heard with the audio of clip `audio`, with an empty ground truth. Extended Flickr has
250 + 250 = 500 samples, Extended VGG-SS 5,158 + 5,158 = 10,316.

Media: `{data_dir}/frames/{video}.jpg` and `{data_dir}/audio/{audio}.wav`, as the base sets. The
reference keeps only the positives whose files exist and never checks the negatives' files (a
missing one is silently replaced by a random other sample); here every sample's files are checked
by `validate_dataset`, a missing one is an error naming the file, and `--skip-bad` leaves it out.

The dataset is an `ExtendedDataset`: a `Dataset` with one `sounding` flag per sample. A negative
shares the group of the positive whose frame it shows (the same image), so offscreen sampling and
retrieval treat it as that image.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vsslrt.data.flickr import load_flickr
from vsslrt.data.problems import ProblemList
from vsslrt.data.records import Dataset, OffscreenClip, Sample, resolve_metadata
from vsslrt.data.vggss import load_vggss
from vsslrt.errors import DataError

NEGATIVE_LABEL = "non-sounding"
FLICKR_NEGATIVES = ("flickr_test_plus_silent.csv",)
VGGSS_NEGATIVES = ("vggss_test_plus_silent.csv",)
VGGSS_TEST_LIST = ("vggss_test.csv",)
NEGATIVE_COLUMNS = ("video", "audio", "label")


@dataclass(eq=False)
class ExtendedDataset(Dataset):
    """A test set with non-sounding samples.

    Attributes:
        sounding: per sample, True for a positive (sounding) pair, False for a non-sounding one.
    """

    sounding: tuple[bool, ...] = ()

    @property
    def positive(self) -> np.ndarray:
        """(N,) bool: the evaluator's `positive` array."""
        return np.array(self.sounding, dtype=bool)

    @property
    def n_boxes(self) -> np.ndarray:
        """(N,) int64 box counts (SLAVC's `bb`: 0 for every negative)."""
        return np.array([len(s.boxes) for s in self.samples], dtype=np.int64)


def read_negative_list(path: Path, problems: ProblemList) -> list[tuple[str, str]]:
    """(video, audio) of every row of a `*_plus_silent.csv`; bad rows become problems."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: expected a readable negative list, got {exc}.", hint="check the file") from None
    if not rows or [c.strip().lower() for c in rows[0][:3]] != list(NEGATIVE_COLUMNS):
        got = ",".join(rows[0]) if rows else "an empty file"
        raise DataError(f"{path}: expected the header video,audio,label, got {got}.",
                        hint="use the extended list of the SLAVC / ACL-SSL release (flickr_test_plus_silent.csv)")
    pairs = []
    seen: set[tuple[str, str]] = set()
    for line, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        where = f"{path}:{line}"
        cells = [c.strip() for c in row]
        if len(cells) < 3 or not cells[0] or not cells[1]:
            problems.error(where, f"expected video,audio,label, got {','.join(row)[:80]}")
            continue
        if cells[2] != NEGATIVE_LABEL:
            problems.error(where, f"expected the label {NEGATIVE_LABEL!r}, got {cells[2]!r}")
            continue
        pair = (cells[0], cells[1])
        if pair in seen:
            problems.warning(where, f"repeats the pair video={pair[0]} audio={pair[1]}: it is evaluated twice")
        seen.add(pair)
        pairs.append(pair)
    if not pairs:
        raise DataError(f"{path}: expected at least one non-sounding row, got none.", hint="check the file")
    return pairs


def _extend(base: Dataset, kind: str, negatives: list[tuple[str, str]], list_path: Path,
            problems: ProblemList) -> ExtendedDataset:
    """The base samples (sounding) followed by one sample per negative row."""
    by_name = {s.name: s for s in base.samples}
    next_group = max((s.group for s in base.samples), default=-1) + 1
    samples = list(base.samples)
    for video, audio in negatives:
        owner = by_name.get(video)
        if owner is None:
            group, next_group = next_group, next_group + 1
        else:
            group = owner.group
        samples.append(Sample(
            index=len(samples),
            name=f"{video}_{audio}",  # ACL-SSL's sample id for an extended pair
            image=base.root / "frames" / f"{video}.jpg",
            audio=base.root / "audio" / f"{audio}.wav",
            boxes=np.zeros((0, 4), dtype=np.int64),
            sound_class=None,
            group=group,
            onscreen=owner.onscreen if owner is not None else (),
        ))
    sources = {**base.sources, "negative_list": str(list_path)}
    sounding = tuple([True] * len(base.samples) + [False] * len(negatives))
    return ExtendedDataset(kind, base.root, tuple(samples), base.class_clips, sources,
                           [*base.problems, *problems.items], sounding=sounding)


def load_extended_flickr(root: Path, *, metadata_dir: Path, annotation_dir: str | Path | None = None) -> ExtendedDataset:
    """Extended Flickr-SoundNet: the Flickr test set plus `flickr_test_plus_silent.csv`."""
    base = load_flickr(root, metadata_dir=metadata_dir, annotation_dir=annotation_dir)
    problems = ProblemList()
    path = resolve_metadata(None, metadata_dir, FLICKR_NEGATIVES, "Extended Flickr negative list", "--metadata-dir")
    return _extend(base, "flickr-ext", read_negative_list(path, problems), path, problems)


def load_extended_vggss(root: Path, *, metadata_dir: Path, annotation_file: str | Path | None = None,
                        class_dict_file: str | Path | None = None) -> ExtendedDataset:
    """Extended VGG-SS: the VGG-SS annotations (restricted to `vggss_test.csv` when it is present)
    plus `vggss_test_plus_silent.csv`."""
    base = load_vggss(root, metadata_dir=metadata_dir, annotation_file=annotation_file, class_dict_file=class_dict_file)
    problems = ProblemList()
    test_list = resolve_metadata(None, metadata_dir, VGGSS_TEST_LIST, "VGG-SS test list", "--metadata-dir", required=False)
    if test_list is not None:
        base = _restrict(base, test_list, problems)
    path = resolve_metadata(None, metadata_dir, VGGSS_NEGATIVES, "Extended VGG-SS negative list", "--metadata-dir")
    return _extend(base, "vggss-ext", read_negative_list(path, problems), path, problems)


def _restrict(base: Dataset, test_list: Path, problems: ProblemList) -> Dataset:
    """The base samples whose clip id is in the one-column test list (list ids without boxes: errors)."""
    with open(test_list, newline="", encoding="utf-8") as f:
        wanted = [row[0].strip() for row in csv.reader(f) if row and row[0].strip()]
    if wanted and wanted[0].lower() in ("file", "id", "video"):
        wanted = wanted[1:]
    known = {s.name for s in base.samples}
    for name in wanted:
        if name not in known:
            problems.error(test_list, f"lists clip {name}, which the annotation file has no boxes for")
    keep = set(wanted)
    chosen = [s for s in base.samples if s.name in keep]
    renumber = {s.index: i for i, s in enumerate(chosen)}
    samples = tuple(dataclasses.replace(s, index=i, group=i) for i, s in enumerate(chosen))
    clips = None
    if base.class_clips is not None:
        clips = {c: tuple(OffscreenClip(k.name, k.audio, renumber.get(k.index, -1)) for k in ks)
                 for c, ks in base.class_clips.items()}
    sources = {**base.sources, "test_list": str(test_list)}
    return Dataset(base.kind, base.root, samples, clips, sources, list(base.problems))
