"""`vsslrt data prepare vggss`: VGG-SS from the user's own VGGSound videos.

For each clip of the annotation file that a local video provides (file names: `names`), the frame
in the middle of the 10 s clip (5 s after its start: VGG-SS's boxes were drawn on the clip's centre
frame) and the clip's 10 s of audio, 16 kHz mono, are written in the layout `vsslrt.data.vggss`
reads:

    DATA/frames/{id}.jpg  DATA/audio/{id}.wav
    DATA/vggss_annotations.json          the annotation records of the prepared clips, in order
    DATA/vggss_class_files_dict.json     the class dictionary, restricted to clips with audio
    DATA/prepare.json  DATA/prepare_report.json

Clips the class dictionary lists beyond the annotations are offscreen candidates: their audio is
prepared too when a video provides it. The class dictionary comes from `class_dict` (the official
JSON, or VGGSound's CSV `ytid,start,label,split`), or else from the records' "class" fields.
"""

from __future__ import annotations

import csv
from pathlib import Path

from vsslrt.data.prepare import record as rec
from vsslrt.data.prepare.driver import Progress, run_tasks
from vsslrt.data.prepare.extract import ClipTask
from vsslrt.data.prepare.names import match_videos, parse_clip_name, scan_videos
from vsslrt.data.prepare.settings import (
    AUTO_CLIP_SLACK,
    HASH_RULE,
    SOURCE_MODES,
    VGGSS_CLIP_SECONDS,
    VGGSS_FRAME_TIME,
    MediaSettings,
)
from vsslrt.data.problems import ProblemList
from vsslrt.data.records import read_class_dict, read_json
from vsslrt.data.vggss import ANNOTATION_NAMES, CLASS_DICT_NAMES
from vsslrt.errors import DataError, InputError
from vsslrt.data.video import _av
from vsslrt.files import atomic_write_json


def check_folder(path: Path, option: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{option}: expected a folder at {path}, got {'a file' if path.exists() else 'no such folder'}.")
    return path


def read_annotations(path: Path) -> tuple[list[dict], list[str], list[tuple[str, str]]]:
    """The records, their unique clip ids in order, and (where, problem) of unusable records."""
    records = read_json(Path(path), "VGG-SS annotation list")
    if not isinstance(records, list) or not records:
        raise DataError(f"{path}: expected a non-empty JSON list of {{file, bbox}} records, got "
                        f"{'an empty list' if records == [] else type(records).__name__}.",
                        hint="use the VGG-SS annotation file (vggss.json or vggss_annotations.json)")
    ids, bad = [], []
    for i, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("file"), str) or not record["file"]:
            bad.append((f"{path}[{i}]", "expected a record with a non-empty string 'file'"))
            continue
        ids.append(record["file"].split("/")[-1])
    return records, list(dict.fromkeys(ids)), bad


def read_classes(path: Path | None, records: list[dict], ids: list[str]) -> dict[str, list[str]]:
    """class -> clip ids, in the dictionary's order."""
    if path is not None and Path(path).suffix.lower() == ".csv":
        return _classes_from_vggsound_csv(Path(path), set(ids))
    if path is not None:
        problems = ProblemList()
        classes = read_class_dict(Path(path), problems)
        if problems.errors:
            raise DataError(f"{path}: {problems.errors[0].message}.", hint="check the class dictionary")
        return classes
    classes: dict[str, list[str]] = {}
    for record in records:
        if isinstance(record, dict) and isinstance(record.get("file"), str):
            cls = record.get("class")
            if not isinstance(cls, str) or not cls:
                raise DataError("VGG-SS class dictionary: expected --class-dict or a 'class' in every annotation "
                                f"record, got a record without one ({record['file']}).",
                                hint="pass --class-dict vggss_class_files_dict.json (or VGGSound's vggsound.csv)")
            name = record["file"].split("/")[-1]
            if name not in classes.setdefault(cls, []):
                classes[cls].append(name)
    return classes


def _classes_from_vggsound_csv(path: Path, wanted: set[str]) -> dict[str, list[str]]:
    """VGGSound's CSV (ytid, start seconds, label, split; no header) -> class dictionary of `wanted`."""
    classes: dict[str, list[str]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for lineno, row in enumerate(csv.reader(handle), start=1):
            if len(row) < 3:
                continue
            try:
                clip = f"{row[0].strip()}_{int(float(row[1])):06d}"
            except ValueError:
                if lineno == 1:
                    continue  # a header row
                raise DataError(f"{path}:{lineno}: expected 'ytid,start,label,split', got {','.join(row)[:80]!r}.",
                                hint="pass VGGSound's vggsound.csv or the VGG-SS class dictionary") from None
            if clip in wanted:
                classes.setdefault(row[2].strip(), []).append(clip)
    return classes


def prepare_vggss(
    videos: str | Path,
    annotations: str | Path,
    out: str | Path,
    *,
    class_dict: str | Path | None = None,
    frame_time: float = VGGSS_FRAME_TIME,
    clip_seconds: float = VGGSS_CLIP_SECONDS,
    source: str = "auto",
    media: MediaSettings | None = None,
    workers: int = 1,
    progress: Progress | None = None,
) -> rec.PrepareReport:
    """Prepare VGG-SS from local videos (see the module docstring).

    Args:
        videos: Folder of VGGSound videos (searched recursively).
        annotations: The VGG-SS annotation file.
        out: The dataset folder to write.
        class_dict: The class dictionary (JSON) or VGGSound's CSV; default: the records' classes.
        frame_time: Seconds from the clip's start of the frame (the first frame at or after it).
        clip_seconds: The clip's length: the audio window is [0, clip_seconds) of the clip.
        source: How files relate to clips (`settings.SOURCE_MODES`).
        media: Audio and JPEG settings.
        workers: Decoding processes.
        progress: Called as (done, total) after each clip.

    Returns:
        The report (also in `out/prepare_report.json`); `exit_code` is 1 when nothing was prepared.

    Raises:
        InputError, DataError: Unusable inputs (before any decoding).
    """

    media = media or MediaSettings()
    media.check()
    if not (clip_seconds > 0):
        raise InputError(f"--clip-seconds: expected a positive length, got {clip_seconds!r}.")
    if not (0 <= frame_time < clip_seconds):
        raise InputError(f"--frame-time: expected seconds in [0, {clip_seconds:g}) of the clip, got {frame_time!r}.")
    if source not in SOURCE_MODES:
        raise InputError(f"--source: expected one of {', '.join(SOURCE_MODES)}, got {source!r}.")
    videos, out = check_folder(Path(videos), "--videos"), Path(out)
    annotations = Path(annotations)
    _av()  # the video extra, checked once rather than failing every clip
    records, ids, bad = read_annotations(annotations)
    classes = read_classes(None if class_dict is None else Path(class_dict), records, ids)
    in_dict = {clip for files in classes.values() for clip in files}
    audio_only = [c for c in dict.fromkeys(c for files in classes.values() for c in files) if c not in set(ids)]

    report = rec.PrepareReport("vggss", out, listed=len(ids))
    report.failed.extend((where, "", problem) for where, problem in bad)
    usable = []
    for clip in ids:
        if clip in in_dict:
            usable.append(clip)
        else:
            report.failed.append((clip, "", "not in the class dictionary (offscreen sampling must exclude its class)"))
    found = scan_videos(videos)
    matches = match_videos(usable + audio_only, found)
    tasks = []
    for clip in usable + audio_only:
        match = matches.get(clip)
        if match is None:
            if clip not in audio_only:
                report.missing.append(clip)
            continue
        if match.ignored:
            report.duplicates.append((clip, str(match.path), [str(p) for p in match.ignored]))
        wanted = parse_clip_name(clip)
        only_audio = clip in audio_only
        tasks.append(ClipTask(
            key=clip, source=str(match.path), frames=() if only_audio else (float(frame_time),),
            frame_names=(f"frames/{clip}.jpg",), audio_names=(f"audio/{clip}.wav",), window=float(clip_seconds),
            policy="clip", clip_start=float(wanted.start) if wanted and wanted.start is not None else 0.0,
            layout=source if wanted and wanted.start is not None else "clips",
            name_has_start=bool(match.name and match.name.start is not None), audio_only=only_audio, media=media))

    results, report.skipped = run_tasks(tasks, out, workers=workers, progress=progress)
    order = [t.key for t in tasks]
    good = rec.collect(report, results, order)
    failed_audio_only = [f for f in report.failed if f[0] in set(audio_only)]
    report.failed = [f for f in report.failed if f[0] not in set(audio_only)]
    report.prepared = [c for c in usable if c in good]
    report.skipped = sum(1 for c in report.prepared if results[c].get("skipped"))
    with_audio = set(good)
    report.extra = {"class_dict_only_clips": len(audio_only),
                    "class_dict_only_prepared": sum(1 for c in audio_only if c in good),
                    "class_dict_only_failed": len(failed_audio_only), "videos_found": len(found)}
    if report.prepared:
        kept = set(report.prepared)
        rec_out = [r for r in records if isinstance(r, dict) and isinstance(r.get("file"), str)
                   and r["file"].split("/")[-1] in kept]

        atomic_write_json(out / ANNOTATION_NAMES[0], rec_out)
        restricted = {cls: [c for c in files if c in with_audio] for cls, files in classes.items()}
        atomic_write_json(out / CLASS_DICT_NAMES[0], {k: v for k, v in restricted.items() if v})
        settings = {"frame_time": float(frame_time), "frame_rule": "the first frame at or after frame_time (timestamps)",
                    "clip_seconds": float(clip_seconds), "audio_window": [0.0, float(clip_seconds)],
                    "time_origin": "the clip's start: the file's first video frame, plus the clip's start time "
                                   "when the file is the whole video",
                    "source": source, "auto_clip_slack": AUTO_CLIP_SLACK, **media.to_dict(), "hash_rule": HASH_RULE}
        inputs = {"videos": str(videos), "annotations": rec.file_record(annotations),
                  "class_dict": rec.file_record(None if class_dict is None else Path(class_dict)),
                  "listed_clips": len(ids)}
        rec.write_record(out, "vggss", settings, inputs, rec.clip_records(good, videos))
    report.write()
    return report
