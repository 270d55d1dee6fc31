"""VGGSound clip names: the YouTube id and start time a video's file name carries.

A VGGSound clip is the 10 s of YouTube video `ytid` from `start` seconds; VGG-SS names it
`{ytid}_{start:06d}` (e.g. `-0A4hc6jv9E_000030`). YouTube ids are 11 characters of
`[A-Za-z0-9_-]`, so a name is split by length, never at an underscore (ids contain them). The file
name spellings accepted (any suffix of `VIDEO_SUFFIXES`, in any sub-folder):

    -0A4hc6jv9E_000030.mp4            VGGSound / VGG-SS: start zero-padded to 6 digits
    -0A4hc6jv9E_30.mp4                start not padded
    -0A4hc6jv9E_000030_000040.mp4     start and end (AudioSet / Kinetics downloaders)
    -0A4hc6jv9E_30.000_40.000.mp4     start and end with decimals
    -0A4hc6jv9E.mp4                   the whole YouTube video: the clip starts at the id's time

and any file whose name (without suffix) is the annotation's id exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vsslrt.data.prepare.settings import VIDEO_SUFFIXES

_NUMBER = r"\d+(?:\.\d+)?"
_NAME = re.compile(rf"^(?P<ytid>[A-Za-z0-9_-]{{11}})(?:_(?P<start>{_NUMBER})(?:_(?P<end>{_NUMBER}))?)?$")


@dataclass(frozen=True)
class ClipName:
    """What a name says about a clip.

    Attributes:
        ytid: The YouTube id.
        start: Seconds into the YouTube video where the clip starts; None when the name has none
            (a whole video).
        end: The end the name states, if any.
    """

    ytid: str
    start: float | None
    end: float | None = None

    @property
    def key(self) -> tuple[str, float | None]:
        return (self.ytid, None if self.start is None else round(self.start, 3))


def parse_clip_name(stem: str) -> ClipName | None:
    """`-0A4hc6jv9E_000030` -> ClipName("-0A4hc6jv9E", 30.0); None when the name is no clip name."""
    match = _NAME.match(stem)
    if match is None:
        return None
    start, end = match.group("start"), match.group("end")
    return ClipName(match.group("ytid"), None if start is None else float(start), None if end is None else float(end))


def scan_videos(folder: Path) -> list[Path]:
    """Video files under `folder` (recursively, by suffix), sorted; hidden files and folders skipped."""
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).parts
        if any(part.startswith(".") for part in rel):
            continue
        if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
            found.append(path)
    return sorted(found)


@dataclass(frozen=True)
class Match:
    """The video chosen for a clip, and the others that name the same clip."""

    path: Path
    name: ClipName | None
    ignored: tuple[Path, ...] = ()


def match_videos(clip_ids: list[str], videos: list[Path]) -> dict[str, Match]:
    """Clip id -> the video that provides it.

    A file whose name is the clip's id or its (ytid, start) is preferred over a whole video of the
    same ytid; among several equally good files the shortest relative path, then the first in
    sorted order, is used and the others are listed as duplicates (`Match.ignored`).
    """
    by_stem: dict[str, list[Path]] = {}
    by_key: dict[tuple, list[Path]] = {}
    whole: dict[str, list[Path]] = {}
    names: dict[Path, ClipName | None] = {}
    for path in videos:
        by_stem.setdefault(path.stem, []).append(path)
        name = parse_clip_name(path.stem)
        names[path] = name
        if name is None:
            continue
        if name.start is None:
            whole.setdefault(name.ytid, []).append(path)
        else:
            by_key.setdefault(name.key, []).append(path)
    out: dict[str, Match] = {}
    for clip in clip_ids:
        wanted = parse_clip_name(clip)
        exact = list(dict.fromkeys(by_stem.get(clip, []) + (by_key.get(wanted.key, []) if wanted and wanted.start is not None else [])))
        candidates = exact or (whole.get(wanted.ytid, []) if wanted else [])
        if not candidates:
            continue
        ranked = sorted(candidates, key=lambda p: (len(p.parts), str(p)))
        out[clip] = Match(ranked[0], names[ranked[0]], tuple(ranked[1:]))
    return out
