"""`vsslrt data prepare flickr`: Flickr-SoundNet's release layout -> the layout the adapter reads.

The release (Senocak et al., "Learning to Localize Sound Source in Visual Scenes") holds
`Annotations/{id}.xml` (every annotator's boxes) and the media in ten sub-folders
`Data/0/` ... `Data/9/`, an image `{id}.jpg` and a sound `{id}.wav` (or .mp3) per clip. The mapping,
both ways (prepare.json records each clip's `source`, so the reverse is exact):

    release                          prepared (vsslrt.data.flickr)
    Annotations/{id}.xml         ->  Annotations/{id}.xml        byte copy, after a parse check
    Data/{k}/{id}.jpg            ->  frames/{id}.jpg             byte copy (other image formats: JPEG)
    Data/{k}/{id}.wav (.mp3, ..) ->  audio/{id}.wav              16 kHz mono PCM-16; a 16 kHz mono
                                                                 PCM-16 WAV is copied byte for byte
    --test-list flickr_test.csv  ->  flickr_test.csv             the rows of the prepared ids, in order

The whole sound is kept: the front-ends take the protocol's window from it, as from the reference's
files. With a test list only its ids are converted (the official test set: 250 of the 5,000
annotated clips); without one every annotated clip is, and the adapter then uses all of them.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from vsslrt.data.prepare import record as rec
from vsslrt.data.prepare.driver import Progress, run_tasks
from vsslrt.data.prepare.settings import HASH_RULE, MediaSettings
from vsslrt.data.prepare.vggss import check_folder
from vsslrt.errors import DataError, VsslrtError
from vsslrt.files import atomic_write_bytes, atomic_write_text
from vsslrt.data.audio_io import mix_channels, read_audio
from vsslrt.data.flickr import parse_flickr_xml
from vsslrt.data.prepare.extract import fingerprint, resample, write_wav

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac")


@dataclass(frozen=True)
class FlickrTask:
    key: str
    source: str  # the sound file
    xml: str
    image: str
    media: MediaSettings = field(default_factory=MediaSettings)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.xml, self.image, self.source)


def _copy(src: Path, dst: Path) -> None:
    atomic_write_bytes(dst, src.read_bytes())


def convert_clip(task: FlickrTask, out: str) -> dict:
    """One clip: annotation, image and sound into the adapter's layout (never raises for bad files)."""

    result: dict = {"key": task.key, "source": task.source, "status": "failed", "notes": []}
    root = Path(out)
    try:
        result["fingerprint"] = {"xml": fingerprint(task.xml), "image": fingerprint(task.image),
                                 "audio": fingerprint(task.source)}
        try:
            boxes = parse_flickr_xml(Path(task.xml))
        except (ET.ParseError, ValueError, TypeError) as exc:
            raise DataError(f"{task.xml}: expected Flickr-SoundNet XML boxes, got {' '.join(str(exc).split())}.") from None
        if not boxes:
            result["notes"].append("the annotation has no boxes: its ground-truth map is empty")
        image_out, audio_out = f"frames/{task.key}.jpg", f"audio/{task.key}.wav"
        result["image_copy"] = _image(Path(task.image), root / image_out, task.media.jpeg_quality)
        result["audio_copy"], result["audio_source"] = _audio(Path(task.source), root / audio_out, task.media)
        if result["audio_copy"] != "copied":
            result["notes"].append(result["audio_copy"])
        _copy(Path(task.xml), root / "Annotations" / f"{task.key}.xml")
        result["outputs"] = [{"image": image_out, "audio": audio_out, "annotation": f"Annotations/{task.key}.xml"}]
        result["status"] = "ok"
    except (VsslrtError, OSError) as exc:
        text = exc.one_line() if isinstance(exc, VsslrtError) else str(exc)
        result["reason"] = " ".join(text.split())
    except Exception as exc:  # noqa: BLE001 - an unexpected decoder error fails this clip, not the run
        result["reason"] = f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}"
    return result


def _image(src: Path, dst: Path, quality: int) -> str:
    from PIL import Image, UnidentifiedImageError  # lazy: Pillow loads in the workers only

    try:
        with Image.open(src) as img:
            fmt = img.format
            if fmt == "JPEG":
                _copy(src, dst)
                return "copied"
            buffer = io.BytesIO()
            img.convert("RGB").save(buffer, format="JPEG", quality=int(quality))
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{src}: expected an image Pillow reads, got {' '.join(str(exc).split())}.") from None
    atomic_write_bytes(dst, buffer.getbuffer())
    return f"converted {fmt} to JPEG (quality {quality})"


def _audio(src: Path, dst: Path, media: MediaSettings) -> tuple[str, dict]:
    import soundfile  # lazy: libsndfile loads in the workers only


    try:
        info = soundfile.info(str(src))
        if (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", media.sample_rate, 1):
            _copy(src, dst)
            return "copied", {"sample_rate": info.samplerate, "channels": 1, "codec": "pcm_s16le"}
    except RuntimeError:  # not a file libsndfile reads (e.g. mp3 on old libsndfile): decoded below
        pass
    decoded = read_audio(src)
    mono = mix_channels(decoded.samples, media.channels).astype("float32")
    write_wav(dst, resample(mono, decoded.sample_rate, media.sample_rate, media.resampler), media.sample_rate)
    source = {"sample_rate": decoded.sample_rate, "channels": decoded.channels, "codec": src.suffix.lower().lstrip(".")}
    return (f"converted {decoded.sample_rate} Hz, {decoded.channels} ch to {media.sample_rate} Hz mono "
            f"({media.channels}, {media.resampler})"), source


def _index(folder: Path, suffixes: tuple[str, ...]) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in suffixes and path.is_file():
                found.setdefault(path.stem, []).append(path)
    return found


def read_test_list(path: Path) -> list[tuple[str, list[str]]]:
    """(id, the whole row) of each row of `flickr_test.csv` (first column: the id)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row and row[0].strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: expected a readable CSV test list, got {exc}.", hint="check --test-list") from None
    if not rows:
        raise DataError(f"{path}: expected at least one clip id, got an empty list.", hint="check --test-list")
    return [(row[0].strip(), row) for row in rows]


def prepare_flickr(release: str | Path, out: str | Path, *, test_list: str | Path | None = None,
                   media: MediaSettings | None = None, workers: int = 1,
                   progress: Progress | None = None) -> rec.PrepareReport:
    """Convert a Flickr-SoundNet release folder (see the module docstring).

    Returns:
        The report (also in `out/prepare_report.json`); `exit_code` is 1 when nothing was prepared.

    Raises:
        InputError, DataError: No release folder, no Annotations/, an unreadable test list.
    """
    media = media or MediaSettings()
    media.check()
    release, out = check_folder(Path(release), "--release"), Path(out)
    annotations = release / "Annotations"
    if not annotations.is_dir():
        raise DataError(f"--release: expected the release's Annotations/ folder at {annotations}, got no such folder.",
                        hint="pass the folder that holds Annotations/ and Data/")
    xmls = {p.stem: p for p in sorted(annotations.glob("*.xml"))}
    rows = read_test_list(Path(test_list)) if test_list is not None else None
    ids = list(dict.fromkeys(i for i, _ in rows)) if rows is not None else sorted(xmls)
    images, sounds = _index(release / "Data", IMAGE_SUFFIXES), _index(release / "Data", AUDIO_SUFFIXES)
    report = rec.PrepareReport("flickr", out, listed=len(ids))
    tasks = []
    for clip in ids:
        missing = [what for what, have in (("annotation", clip in xmls), ("image", clip in images),
                                           ("sound", clip in sounds)) if not have]
        if missing:
            report.failed.append((clip, "", f"the release has no {' and no '.join(missing)} for this clip "
                                            f"(looked in Annotations/ and Data/*/)"))
            continue
        for what, found in (("image", images[clip]), ("sound", sounds[clip])):
            if len(found) > 1:
                report.duplicates.append((clip, str(found[0]), [str(p) for p in found[1:]]))
        tasks.append(FlickrTask(clip, str(sounds[clip][0]), str(xmls[clip]), str(images[clip][0]), media))
    results, _ = run_tasks(tasks, out, worker=convert_clip, workers=workers, progress=progress,
                           folders=("frames", "audio", "Annotations"))
    good = rec.collect(report, results, [t.key for t in tasks])
    report.prepared = list(good)
    report.skipped = sum(1 for c in good if results[c].get("skipped"))
    report.extra = {"annotated_in_release": len(xmls)}
    if report.prepared:
        if rows is not None:
            kept = set(report.prepared)
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerows(row for clip, row in rows if clip in kept)
            atomic_write_text(out / "flickr_test.csv", buffer.getvalue())
        clips, by_key = {}, {t.key: t for t in tasks}
        for key in report.prepared:
            task = by_key[key]
            clips[key] = {"source": {k: str(Path(v).relative_to(release)) for k, v in
                                     (("annotation", task.xml), ("image", task.image), ("audio", task.source))},
                          "fingerprint": good[key].get("fingerprint"), "image": good[key].get("image_copy"),
                          "audio": good[key].get("audio_copy"), "outputs": good[key].get("outputs")}
        settings = {**media.to_dict(), "audio_window": "the whole sound (the front-ends take the protocol's window)",
                    "hash_rule": HASH_RULE}
        inputs = {"release": str(release), "test_list": rec.file_record(None if test_list is None else Path(test_list)),
                  "listed_clips": len(ids)}
        rec.write_record(out, "flickr", settings, inputs, clips)
    report.write()
    return report

