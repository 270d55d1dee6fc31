"""AVSBench S4 (single source) and MS3 (multiple sources) adapters: frames, masks, test lists.

protocols-extended.md section 3.2. The meta CSV (`s4_meta_data.csv`, `ms3_meta_data.csv`, in the
dataset download) has a header with a `split` column; each row is one video, its name in the first
column (and, for S4, its category in the `category` column, else the third). Only the `test` rows
are read (`split=`). Every test video has five annotated frames, one per second, and each frame is
one sample:

* S4: `visual_frames/{split}/{category}/{name}/{name}_{k}.png`, masks
  `gt_masks/{split}/{category}/{name}/{name}_{k}.png` (binary), audio
  `audio_wav/{split}/{category}/{name}.wav`;
* MS3: `visual_frames/{name}/{name}.mp4_{k}.png`, masks `gt_masks/{split}/{name}/{name}_{k}.png`
  (palette, foreground index 255), audio `audio_wav/{split}/{name}.wav` (or `audio_wav/{name}.wav`);

with k = 1..5, paths relative to the data folder (`s4_data/`, `ms3_data/`); the meta CSV is found in
`--metadata-dir`, the data folder, or the folder above it (the official layout). The five frames
of a video share its 5 s clip as their audio (the official audio features cover the whole clip),
and its group, so offscreen audio always comes from another video: for S4 from another category
(the class of a video is its category), for MS3 (no categories) from any other video.

Sample names are `{name}_{k}` and `Dataset.videos` gives each frame's video index in the list
order, which the mask evaluator's paper mode uses to rebuild the official test batches.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from vsslrt.data.masks import MaskDataset, MaskSample
from vsslrt.data.problems import ProblemList
from vsslrt.data.records import OffscreenClip, resolve_metadata
from vsslrt.errors import DataError

FRAMES_PER_VIDEO = 5
SETTINGS = {
    "s4": {"meta": ("s4_meta_data.csv",), "encoding": "binary"},
    "ms3": {"meta": ("ms3_meta_data.csv",), "encoding": "palette255"},
}


def _read_meta(path: Path, setting: str, split: str) -> list[tuple[str, str | None]]:
    """(video name, category or None) of every row of the split, in file order."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: expected a readable AVSBench meta CSV, got {exc}.", hint="check the file") from None
    if not rows:
        raise DataError(f"{path}: expected a header with a 'split' column, got an empty file.")
    header = [c.strip().lower() for c in rows[0]]
    if "split" not in header:
        raise DataError(f"{path}: expected a header with a 'split' column, got {','.join(rows[0])[:80]}.",
                        hint=f"use the {setting}_meta_data.csv of the AVSBench download")
    at_split = header.index("split")
    at_cat = header.index("category") if "category" in header else 2
    out = []
    for row in rows[1:]:
        cells = [c.strip() for c in row]
        if not cells or not cells[0] or len(cells) <= at_split or cells[at_split] != split:
            continue
        category = cells[at_cat] if setting == "s4" and len(cells) > at_cat and cells[at_cat] else None
        out.append((cells[0], category))
    if not out:
        raise DataError(f"{path}: expected at least one row with split '{split}', got none.", hint="check the file")
    return out


def _paths(root: Path, setting: str, split: str, name: str, category: str | None, k: int) -> tuple[Path, Path]:
    if setting == "s4":
        return (root / "visual_frames" / split / category / name / f"{name}_{k}.png",
                root / "gt_masks" / split / category / name / f"{name}_{k}.png")
    return (root / "visual_frames" / name / f"{name}.mp4_{k}.png",
            root / "gt_masks" / split / name / f"{name}_{k}.png")


def _audio(root: Path, setting: str, split: str, name: str, category: str | None) -> Path:
    if setting == "s4":
        return root / "audio_wav" / split / category / f"{name}.wav"
    nested = root / "audio_wav" / split / f"{name}.wav"
    return nested if nested.exists() or not (root / "audio_wav" / f"{name}.wav").exists() else root / "audio_wav" / f"{name}.wav"


def load_avsbench(root: Path, setting: str, *, metadata_dir: Path, annotation_file: str | Path | None = None,
                  split: str = "test") -> MaskDataset:
    """Read an AVSBench S4 or MS3 split into a MaskDataset (masks are checked when read)."""
    if setting not in SETTINGS:
        raise DataError(f"AVSBench: expected a setting in {', '.join(SETTINGS)}, got {setting!r}.")
    spec = SETTINGS[setting]
    problems = ProblemList()
    try:
        meta = resolve_metadata(annotation_file, metadata_dir, spec["meta"], f"AVSBench {setting} meta CSV", "--annotations")
    except DataError:
        meta = resolve_metadata(None, root.parent, spec["meta"], f"AVSBench {setting} meta CSV", "--annotations")
    videos = _read_meta(meta, setting, split)
    samples: list[MaskSample] = []
    clips: dict[str, list[OffscreenClip]] = {}
    for v, (name, category) in enumerate(videos):
        where = f"{meta} ({name})"
        if setting == "s4" and category is None:
            problems.error(where, "expected a category for this S4 video, got none")
            continue
        audio = _audio(root, setting, split, name, category)
        first = len(samples)
        for k in range(1, FRAMES_PER_VIDEO + 1):
            image, mask = _paths(root, setting, split, name, category, k)
            if not mask.is_file():
                problems.error(mask, f"expected the mask of frame {k} of video {name}, got no such file",
                               samples=[len(samples)])
            samples.append(MaskSample(
                index=len(samples), name=f"{name}_{k}", image=image, audio=audio,
                boxes=np.zeros((0, 4), dtype=np.int64), sound_class=category, group=v,
                onscreen=(category,) if category else (), mask=mask, mask_encoding=spec["encoding"], video=v))
        if category is not None:
            clips.setdefault(category, []).append(OffscreenClip(name, audio, first))
    class_clips = {c: tuple(entries) for c, entries in clips.items()} if setting == "s4" else None
    sources = {"meta": str(meta), "split": split, "masks": spec["encoding"]}
    return MaskDataset(f"avsbench-{setting}", root, tuple(samples), class_clips, sources, problems.items)
