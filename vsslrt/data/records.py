"""Dataset records shared by every adapter, and ground-truth maps (`vsslrt.data.datasets` loads them).

An adapter (vggss, is3, flickr, manifest) turns a folder and its metadata files into a `Dataset`:
an ordered tuple of `Sample`s plus the class -> clips table that offscreen sampling draws from.
Adapters never stop at the first bad record: they collect every problem (`Dataset.problems`), and
`validate_dataset` adds the file checks and raises one `DatasetProblemsError` listing them all.

Boxes are stored as integer pixel boxes in the 224 x 224 frame, [x1, y1, x2, y2] with end-exclusive
slices, already converted by the dataset's own rule (protocol 1.3 for normalised boxes, 1.4 for
IS3's pixel boxes), so `gt_map` is the same for every dataset.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from vsslrt.data.problems import Problem, ProblemList
from vsslrt.errors import DataError, InputError

GT_SIZE = 224


@dataclass(frozen=True, eq=False)
class Sample:
    """One test pair.

    Attributes:
        index: Position in the dataset (the order the reference iterates in).
        name: Clip id (VGG-SS file id, IS3 image name, Flickr id, manifest name).
        image: Path of the image.
        audio: Path of the positive audio.
        boxes: (K, 4) int64 pixel boxes in the 224 x 224 frame, [x1, y1, x2, y2], end-exclusive.
        sound_class: Class of the positive sound, None where the dataset has no classes.
        group: Integer id of the image the sample belongs to (IS3: the image pair), for interactive IoU.
        onscreen: Classes visible in the image; offscreen audio is never drawn from them.
        onscreen_reference: The classes the reference code's own rule excludes instead (paper mode;
            IS3 quirk Q16), or None where it excludes `onscreen`.
    """

    index: int
    name: str
    image: Path
    audio: Path
    boxes: np.ndarray
    sound_class: str | None
    group: int
    onscreen: tuple[str, ...] = ()
    onscreen_reference: tuple[str, ...] | None = None


@dataclass(frozen=True)
class OffscreenClip:
    """An audio clip offscreen sampling may draw.

    Attributes:
        name: Clip id as the class dictionary lists it.
        audio: Path of the audio file.
        index: Dataset index of the sample with this audio, or -1 when the clip is not a sample.
    """

    name: str
    audio: Path
    index: int


@dataclass(eq=False)
class Dataset:
    """A loaded test set.

    Attributes:
        kind: "vggss", "is3", "flickr" or "manifest".
        root: The data folder.
        samples: The samples in iteration order.
        class_clips: Class -> candidate offscreen clips, in the class dictionary's order; None when
            the dataset has no classes and offscreen audio is drawn from any clip of another image.
        sources: The metadata files used, by role (provenance for reports).
        problems: Problems found while reading the metadata.
    """

    kind: str
    root: Path
    samples: tuple[Sample, ...]
    class_clips: dict[str, tuple[OffscreenClip, ...]] | None
    sources: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.samples]

    @property
    def groups(self) -> np.ndarray:
        """(N,) int64 group ids, the evaluator's `group` array."""
        return np.array([s.group for s in self.samples], dtype=np.int64)

    def gt_maps(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """(N, 224, 224) bool ground-truth maps of the given samples (all by default)."""
        chosen = self.samples if indices is None else [self.samples[i] for i in indices]
        return gt_maps([s.boxes for s in chosen])

    @functools.cached_property
    def _drawable_classes(self) -> tuple[str, ...]:
        return tuple(sorted(c for c, clips in (self.class_clips or {}).items() if clips))

    @functools.cached_property
    def _group_members(self) -> dict[int, list[int]]:
        members: dict[int, list[int]] = {}
        for s in self.samples:
            members.setdefault(s.group, []).append(s.index)
        return members

    def offscreen_classes(self, index: int, mode: str = "fixed") -> list[str]:
        """The sorted candidate classes for sample `index` (its on-screen classes removed; in "paper"
        mode the ones the reference's rule removes, where they differ)."""
        sample = self.samples[index]
        onscreen = sample.onscreen_reference if mode == "paper" and sample.onscreen_reference is not None else sample.onscreen
        return [c for c in self._drawable_classes if c not in onscreen]

    def offscreen_others(self, index: int) -> list[int]:
        """Without classes: the indices of the samples of other images (sorted)."""
        group = self.samples[index].group
        return [s.index for s in self.samples if s.group != group]

    def nth_other(self, index: int, n: int) -> int:
        """`offscreen_others(index)[n]` in O(group size) instead of O(N)."""
        for member in self._group_members[self.samples[index].group]:  # ascending
            if member <= n:
                n += 1
        return n

    def count_others(self, index: int) -> int:
        """len(offscreen_others(index))."""
        return len(self.samples) - len(self._group_members[self.samples[index].group])


# --------------------------------------------------------------------------------------------
# Boxes and ground-truth maps


def boxes_from_normalised(boxes: np.ndarray) -> np.ndarray:
    """Protocol 1.3: clip to [0, 1], multiply by 224, truncate (`astype(int)`)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (np.clip(b, 0.0, 1.0) * GT_SIZE).astype(np.int64)


def boxes_from_pixels(boxes: np.ndarray) -> np.ndarray:
    """Protocol 1.4: boxes already in 224-pixel units, truncated to int (`int(v)`)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.trunc(b).astype(np.int64)


def gt_map(boxes: np.ndarray, size: int = GT_SIZE) -> np.ndarray:
    """(size, size) bool union of the boxes: rows y1:y2 and columns x1:x2 of each box set."""
    out = np.zeros((size, size), dtype=bool)
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.int64).reshape(-1, 4):
        out[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = True
    return out


def gt_maps(boxes_per_sample: Sequence[np.ndarray], size: int = GT_SIZE) -> np.ndarray:
    """(N, size, size) bool maps, one per sample."""
    out = np.zeros((len(boxes_per_sample), size, size), dtype=bool)
    for i, boxes in enumerate(boxes_per_sample):
        out[i] = gt_map(boxes, size)
    return out


def check_box_values(boxes: object, where: str, problems: ProblemList, *, upper: float, clip_note: str | None = None) -> np.ndarray | None:
    """Parse a list of [x1, y1, x2, y2] boxes and report non-finite, out-of-range or inverted ones.

    Args:
        boxes: The raw JSON/CSV value (list of 4-number lists).
        where: Location for problem messages.
        problems: Where problems go.
        upper: The image extent in the boxes' units (1.0 normalised, 224 or 256 pixels).
        clip_note: When set, out-of-range values are a warning (the protocol clips them) with this note;
            otherwise they are an error.

    Returns:
        (K, 4) float64, or None when the value is not a list of 4-number boxes or holds non-finite values.
    """
    if boxes is None:
        return np.zeros((0, 4))
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        problems.error(where, f"expected boxes to be a list of [x1, y1, x2, y2] numbers, got {_short(boxes)}")
        return None
    if arr.size == 0:
        return np.zeros((0, 4))
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 4:
        problems.error(where, f"expected boxes to be a list of [x1, y1, x2, y2] numbers, got {_short(boxes)}")
        return None
    if not np.all(np.isfinite(arr)):
        problems.error(where, f"expected finite box coordinates, got {_short(arr.tolist())}")
        return None
    outside = (arr < 0.0) | (arr > upper)
    if np.any(outside):
        text = f"expected box coordinates in [0, {upper:g}], got {_short(arr.tolist())}"
        if clip_note:
            problems.warning(where, f"{text}; {clip_note}")
        else:
            problems.error(where, text)
            return None
    inverted = (arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1])
    if np.any(inverted):
        problems.error(where, f"expected x1 <= x2 and y1 <= y2 in every box, got {_short(arr.tolist())}")
        return None
    return arr


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Metadata files


def resolve_metadata(
    explicit: str | Path | None,
    folder: Path,
    candidates: Sequence[str],
    what: str,
    option: str,
    *,
    required: bool = True,
) -> Path | None:
    """Find a metadata file: the explicit path if given, else the first candidate name in `folder`.

    Raises:
        DataError: A required file is not found (the message lists every path tried).
    """
    if explicit is not None:
        path = Path(explicit)
        if not path.exists():
            raise DataError(f"{what}: expected a file at {path}, got no such file.", hint=f"check the path given to {option}")
        return path
    for name in candidates:
        path = folder / name
        if path.exists():
            return path
    if not required:
        return None
    tried = ", ".join(str(folder / n) for n in candidates)
    raise DataError(
        f"{what}: expected one of {tried}, got none of them.",
        hint=f"pass the folder with --metadata-dir or the file with {option}",
    )


def read_json(path: Path, what: str) -> object:
    """Parse a JSON file; a syntax error names the file, line and column."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: expected valid JSON ({what}), got a syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}.",
            hint="fix the file or regenerate it",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: expected a readable {what}, got {exc}.", hint="check the file") from None


def read_class_dict(path: Path, problems: ProblemList) -> dict[str, list[str]]:
    """A class -> clip ids dictionary (`class_files_dict.json`), insertion order kept."""
    data = read_json(path, "class dictionary")
    if not isinstance(data, dict):
        raise DataError(
            f"{path}: expected a JSON object mapping class -> list of clip ids, got {type(data).__name__}.",
            hint="the class dictionary looks like {\"dog\": [\"clip1\", \"clip2\"], ...}",
        )
    out: dict[str, list[str]] = {}
    for cls, files in data.items():
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            problems.error(f"{path}[{cls!r}]", f"expected a list of clip ids, got {_short(files)}")
            continue
        out[str(cls)] = list(files)
    return out


def class_of_clip(class_files: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Clip id -> class, taking the first class in dictionary order that lists it (the reference's get_key)."""
    owner: dict[str, str] = {}
    for cls, files in class_files.items():
        for name in files:
            owner.setdefault(name, cls)
    return owner


def build_class_clips(
    class_files: Mapping[str, Sequence[str]],
    audio_for: Callable[[str], Path],
    samples: Sequence[Sample],
) -> dict[str, tuple[OffscreenClip, ...]]:
    """Class -> OffscreenClip tuple, in dictionary order.

    A clip that is one of the samples uses that sample's audio file and index (so the pipeline can
    reuse its positive input); any other clip gets `audio_for(name)` and index -1.
    """
    by_name = {s.name: s for s in samples}

    def clip(name: str) -> OffscreenClip:
        sample = by_name.get(name)
        if sample is not None:
            return OffscreenClip(name, sample.audio, sample.index)
        return OffscreenClip(name, audio_for(name), -1)

    return {cls: tuple(clip(name) for name in files) for cls, files in class_files.items()}


def group_ids(keys: Sequence[object]) -> list[int]:
    """Map group keys to ints in order of first appearance (None: a group of its own)."""
    ids: dict[object, int] = {}
    out = []
    for key in keys:
        if key is None:
            key = object()  # unique: a sample without a group is alone in its image
        out.append(ids.setdefault(key, len(ids)))
    return out


# --------------------------------------------------------------------------------------------
# Entry point
