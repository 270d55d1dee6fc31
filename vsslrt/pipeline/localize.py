"""Deployment: where does the sound come from in this image, and is anything sounding at all?

A `Localizer` joins an engine folder with a calibration made for it (`vsslrt calibrate`):

    with Localizer("engines/ezvsl", "runs/ezvsl-is3/calibration.json") as loc:
        result = loc.localize("frame.jpg", "clip.wav")
        print(result.verdict, result.boxes)

One call decodes the image and the audio with the benchmark's front-ends, runs the two encoders,
forms the raw similarity map (h x w) with the model's head and upsamples it with the calibration
run's interpolation (to the protocol's 224 x 224 by default, or to the image's own size). The
score is the raw map's maximum, exactly the quantity the detection threshold was fitted on; the
mask holds the pixels above the localisation threshold, and its connected components
(8-connectivity) give the bounding boxes in the original image's pixel coordinates. With `gate`
(the default) nothing is localised when the detection says "not sounding".

A calibration fitted for another engine is refused: the sha256 of the engine's manifest.json must
equal the one the calibration records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.pipeline.calibrate import Calibration, as_calibration
from vsslrt.errors import DataError, InputError, ManifestMismatchError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus")
MAP_SIZES = ("image", "224")
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Box:
    """One connected region of the mask, in the original image's pixel coordinates.

    Attributes:
        x0, y0: Top-left pixel (inclusive).
        x1, y1: Bottom-right bound (exclusive), so the width is x1 - x0.
        area: Pixels of the region in the map's frame.
        peak: The map's highest value inside the region.
    """

    x0: int
    y0: int
    x1: int
    y1: int
    area: int
    peak: float

    def to_json(self) -> dict[str, Any]:
        return {"box": [self.x0, self.y0, self.x1, self.y1], "area": self.area, "peak": self.peak}


@dataclass
class LocalizationResult:
    """The answer for one image/audio pair.

    Attributes:
        name: The pair's name (outputs are written as <name>.json and <name>.png).
        image, audio: The input files.
        image_size: (width, height) of the original image.
        raw_map: (h, w) float32 map from the model's head, on its raw scale.
        map: The upsampled map, (height, width) of the image or (224, 224).
        mask: Pixels of `map` above the localisation threshold (all False when gated and not
            sounding), same shape as `map`.
        score: The raw map's maximum.
        sounding: score > detection threshold.
        detection_threshold, localization_threshold: From the calibration.
        boxes: The mask's connected regions, highest peak first.
        timing_ms: Milliseconds per stage and in total (per pair; a batch's stage time is split
            evenly over its pairs).
        rgb: The decoded image (H, W, 3) uint8, for the overlay.
    """

    name: str
    image: Path
    audio: Path
    image_size: tuple[int, int]
    raw_map: np.ndarray
    map: np.ndarray
    mask: np.ndarray
    score: float
    sounding: bool
    detection_threshold: float
    localization_threshold: float
    boxes: list[Box]
    timing_ms: dict[str, float]
    rgb: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0, 3), np.uint8))

    @property
    def verdict(self) -> str:
        """One line: the decision, the score against the threshold, and the regions found."""
        if self.sounding:
            regions = len(self.boxes)
            return (f"sounding: score {self.score:.4f} > detection threshold {self.detection_threshold:.4f}; "
                    f"{regions} region{'s' if regions != 1 else ''}")
        return f"not sounding: score {self.score:.4f} <= detection threshold {self.detection_threshold:.4f}"

    def to_json(self) -> dict[str, Any]:
        """Everything but the full-size arrays (the raw map is small and included)."""
        return {
            "name": self.name,
            "image": str(self.image),
            "audio": str(self.audio),
            "image_size": list(self.image_size),
            "sounding": self.sounding,
            "score": self.score,
            "detection_threshold": self.detection_threshold,
            "localization_threshold": self.localization_threshold,
            "map_size": [int(self.map.shape[1]), int(self.map.shape[0])],
            "mask_fraction": float(np.mean(self.mask)) if self.mask.size else 0.0,
            "boxes": [b.to_json() for b in self.boxes],
            "raw_map": np.round(self.raw_map.astype(np.float64), 6).tolist(),
            "timing_ms": self.timing_ms,
        }


@dataclass(frozen=True)
class Pair:
    """One image/audio pair to localise, with the name its outputs get."""

    name: str
    image: Path
    audio: Path


class Localizer:
    """A warm engine with its calibration, answering image/audio pairs.

    Args:
        engine_dir: The engine folder (`vsslrt export` / `vsslrt build` output).
        calibration: calibration.json's path, its parsed content, or a `Calibration`.
        map_size: "224" (default): the map and mask in the protocol's 224 x 224 frame, where the
            thresholds were fitted (boxes are scaled to image pixels); "image": at the image's own
            size (finer boxes; on a 1024 x 1024 image this about doubles the call's latency).
        gate: Localise only when the detection says "sounding". Defaults to True.
        backend, precision, threads: Passed to `vsslrt.pipeline.encoders.open_encoders`.

    Raises:
        InputError: No engine folder, or a bad calibration file.
        ManifestMismatchError: The calibration was made for another engine.
    """

    def __init__(
        self,
        engine_dir: str | Path,
        calibration: Calibration | dict[str, Any] | str | Path,
        *,
        map_size: str = "224",
        gate: bool = True,
        backend: str | None = None,
        precision: str | None = None,
        threads: int | None = None,
    ) -> None:
        from vsslrt.data import get_frontend
        from vsslrt.pipeline.encoders import open_encoders

        if str(map_size) not in MAP_SIZES:
            raise InputError(f"localize: expected map_size to be one of {', '.join(MAP_SIZES)}, got {map_size!r}.")
        self.engine_dir = Path(engine_dir)
        self.calibration = as_calibration(calibration)
        check_calibration_matches(self.engine_dir, self.calibration)
        self.map_size = str(map_size)
        self.gate = gate
        self.encoders = open_encoders(self.engine_dir, backend=backend, precision=precision, threads=threads,
                                      with_object=False)
        self.spec = get_frontend(self.encoders.manifest.frontend)

    # ----- public API -----------------------------------------------------------------------
    def localize(self, image_path: str | Path, audio_path: str | Path) -> LocalizationResult:
        """Localise the sound of one audio clip in one image.

        Raises:
            DataError: The image or the audio cannot be read.
        """
        return next(self.iter_localize([Pair(Path(image_path).stem, Path(image_path), Path(audio_path))]))

    def localize_batch(self, pairs: Iterable[Pair | tuple[str | Path, str | Path]], *,
                       batch_size: int = 8) -> list[LocalizationResult]:
        """Localise many pairs, running the encoders on `batch_size` pairs at a time."""
        return list(self.iter_localize(pairs, batch_size=batch_size))

    def iter_localize(
        self,
        pairs: Iterable[Pair | tuple[str | Path, str | Path]],
        *,
        batch_size: int = 8,
        progress: Callable[[int], None] | None = None,
        on_bad: Callable[[Pair, DataError], None] | None = None,
    ) -> Iterator[LocalizationResult]:
        """Results one by one, in input order, so that a long batch never holds every image.

        Args:
            pairs: `Pair`s or (image, audio) tuples.
            batch_size: Pairs per encoder call.
            progress: Called with the number of pairs finished (localised or skipped) after each batch.
            on_bad: Called with a pair whose image or audio cannot be read, and the error; the pair
                is skipped. Defaults to None: the error is raised.

        Raises:
            DataError: A pair's image or audio cannot be read (without `on_bad`).
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"localize: expected batch_size to be a positive integer, got {batch_size!r}.")
        chunk: list[Pair] = []
        done = 0
        for pair in pairs:
            chunk.append(_as_pair(pair))
            if len(chunk) == batch_size:
                results = self._run_chunk(chunk, on_bad)
                done += len(chunk)
                chunk = []
                if progress is not None:
                    progress(done)
                yield from results
        if chunk:
            results = self._run_chunk(chunk, on_bad)
            if progress is not None:
                progress(done + len(chunk))
            yield from results

    def close(self) -> None:
        self.encoders.close()

    def __enter__(self) -> Localizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- one batch ------------------------------------------------------------------------
    def _run_chunk(self, chunk: Sequence[Pair], on_bad: Callable[[Pair, DataError], None] | None = None
                   ) -> list[LocalizationResult]:
        from vsslrt.data import audio_input, preprocess_image
        from vsslrt.data.images import decode_image
        from vsslrt.head import similarity_maps

        clock = time.perf_counter
        times: dict[str, float] = {"image_input": 0.0, "audio_input": 0.0}
        kept: list[Pair] = []
        rgbs, image_rows, audio_rows = [], [], []
        for pair in chunk:
            try:
                t = clock()
                rgb = decode_image(pair.image)
                image_row = preprocess_image(rgb)
                t_audio = clock()
                audio_row = audio_input(pair.audio, self.spec, mode=self.calibration.protocol)
                done = clock()
            except DataError as exc:
                if on_bad is None:
                    raise
                on_bad(pair, exc)
                continue
            times["image_input"] += t_audio - t
            times["audio_input"] += done - t_audio
            kept.append(pair)
            rgbs.append(rgb)
            image_rows.append(image_row)
            audio_rows.append(audio_row)
        if not kept:
            return []
        chunk = kept
        images, audio = np.stack(image_rows), np.stack(audio_rows)
        t = clock()
        visual = self.encoders.embed_images(np.ascontiguousarray(images, dtype=np.float32))
        times["visual_encoder"] = clock() - t
        t = clock()
        embeddings = self.encoders.embed_audio(np.ascontiguousarray(audio, dtype=np.float32))
        times["audio_encoder"] = clock() - t
        t = clock()
        raw = np.asarray(similarity_maps(visual, embeddings, self.encoders.manifest.head), dtype=np.float32)
        times["head"] = clock() - t
        results = []
        for row, (pair, rgb) in enumerate(zip(chunk, rgbs)):
            t = clock()
            result = self._finish(pair, rgb, raw[row])
            post = clock() - t
            per_pair = {name: 1e3 * s / len(chunk) for name, s in times.items()}
            per_pair["postprocess"] = 1e3 * post
            # The stages before the postprocess are shared by the batch: each pair counts its share.
            per_pair["total"] = sum(per_pair.values())
            per_pair["batch_size"] = float(len(chunk))
            result.timing_ms = per_pair
            results.append(result)
        return results

    def _finish(self, pair: Pair, rgb: np.ndarray, raw: np.ndarray) -> LocalizationResult:
        cal = self.calibration
        height, width = int(rgb.shape[0]), int(rgb.shape[1])
        frame = (height, width) if self.map_size == "image" else (224, 224)
        full = upsample_map(raw, frame, cal.interp)
        score = float(np.max(raw))
        sounding = score > cal.detection_threshold
        if self.gate and not sounding:
            mask = np.zeros(frame, dtype=bool)
        else:
            mask = full > cal.localization_threshold
        boxes = mask_boxes(mask, full, scale=(width / frame[1], height / frame[0]), limits=(width, height))
        return LocalizationResult(
            name=pair.name, image=pair.image, audio=pair.audio, image_size=(width, height), raw_map=raw, map=full, mask=mask,
            score=score, sounding=sounding, detection_threshold=cal.detection_threshold,
            localization_threshold=cal.localization_threshold, boxes=boxes, timing_ms={}, rgb=rgb,
        )


# ------------------------------------------------------------------------------------------------
# Helpers (public: the overlay, the CLI and tests use them)


def check_calibration_matches(engine_dir: Path, calibration: Calibration) -> None:
    """Refuse a calibration made for another engine (sha256 of manifest.json).

    Raises:
        InputError: The engine folder or its manifest.json does not exist.
        ManifestMismatchError: The hashes differ.
    """
    from vsslrt.files import sha256_file

    engine_dir = Path(engine_dir)
    if not engine_dir.is_dir():
        raise InputError(f"{engine_dir}: expected an engine folder, got no such folder.",
                         hint="pass --engine with a folder written by `vsslrt export` or `vsslrt build`")
    manifest = engine_dir / "manifest.json"
    if not manifest.is_file():
        raise InputError(f"{engine_dir}: expected an engine folder with a manifest.json, got none.",
                         hint="pass --engine with a folder written by `vsslrt export` or `vsslrt build`")
    actual = sha256_file(manifest)
    if actual != calibration.manifest_sha256:
        raise ManifestMismatchError(
            f"{calibration.origin}: expected a calibration of engine {engine_dir} (manifest sha256 {actual[:12]}...), "
            f"got one made for model {calibration.model} engine "
            f"{calibration.document.get('engine', '?')} (manifest sha256 {calibration.manifest_sha256[:12]}...).",
            hint="thresholds do not transfer between models or builds: benchmark this engine with `vsslrt bench` "
            "and calibrate its run with `vsslrt calibrate RUNDIR`",
        )


def upsample_map(raw: np.ndarray, size: tuple[int, int], interp: str = "bilinear") -> np.ndarray:
    """(h, w) raw map -> (height, width) float32 with the protocol's interpolation weights.

    The same separable linear weights the evaluator uses for 224 x 224 (`vsslrt.eval.interp`),
    evaluated at the requested size, so the mask at the image size is the protocol's mask drawn
    at a finer or coarser grid.
    """
    from vsslrt.eval.interp import weight_matrix

    raw = np.asarray(raw, dtype=np.float64)
    rows = weight_matrix(int(raw.shape[0]), interp, int(size[0]))
    cols = weight_matrix(int(raw.shape[1]), interp, int(size[1]))
    return (rows @ raw @ cols.T).astype(np.float32)


def mask_boxes(mask: np.ndarray, values: np.ndarray, *, scale: tuple[float, float] = (1.0, 1.0),
               limits: tuple[int, int] | None = None) -> list[Box]:
    """Bounding boxes of the mask's 8-connected regions, highest peak first.

    Args:
        mask: (H, W) bool.
        values: (H, W) map, for each region's peak.
        scale: (x, y) factors from the mask's frame to image pixels.
        limits: (width, height) of the image, to clip scaled boxes. Defaults to the mask's size.
    """
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    if count == 0:
        return []
    width, height = limits if limits is not None else (mask.shape[1], mask.shape[0])
    sx, sy = scale
    boxes = []
    for region, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
        # Work inside the region's bounding box only (ndimage.maximum scans the whole image per call).
        inside = labels[rows, cols] == region
        boxes.append(Box(
            x0=int(np.floor(cols.start * sx)), y0=int(np.floor(rows.start * sy)),
            x1=min(width, int(np.ceil(cols.stop * sx))), y1=min(height, int(np.ceil(rows.stop * sy))),
            area=int(np.count_nonzero(inside)), peak=float(values[rows, cols][inside].max()),
        ))
    return sorted(boxes, key=lambda b: -b.peak)


def write_result_json(result: LocalizationResult, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the result (and any extra sections) as JSON, atomically."""
    from vsslrt.files import atomic_write_json

    path = Path(path)
    atomic_write_json(path, {**result.to_json(), **(extra or {})})
    return path


def _as_pair(pair: Pair | tuple[str | Path, str | Path]) -> Pair:
    if isinstance(pair, Pair):
        return pair
    if isinstance(pair, (tuple, list)) and len(pair) == 2:
        image, audio = Path(pair[0]), Path(pair[1])
        return Pair(image.stem, image, audio)
    raise InputError(f"localize: expected (image, audio) pairs, got {pair!r}.")


# ------------------------------------------------------------------------------------------------
# Finding pairs


def pairs_from_folder(folder: str | Path) -> tuple[list[Pair], list[Path]]:
    """Image/audio pairs of a folder (searched recursively), matched by file stem.

    Returns:
        (pairs sorted by name, files left without a partner).

    Raises:
        InputError: No such folder, no pair at all, or a stem shared by two images or two clips.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--folder {folder}: expected a folder of images and audio clips, got no such folder.")
    images: dict[str, Path] = {}
    clips: dict[str, Path] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        suffix = path.suffix.lower()
        table = images if suffix in IMAGE_SUFFIXES else clips if suffix in AUDIO_SUFFIXES else None
        if table is None:
            continue
        if path.stem in table:
            kind = "images" if table is images else "audio clips"
            raise InputError(f"--folder {folder}: expected one file per stem among the {kind}, got "
                             f"{table[path.stem]} and {path}.", hint="rename one of them, or use --manifest")
        table[path.stem] = path
    pairs = [Pair(stem, images[stem], clips[stem]) for stem in sorted(images.keys() & clips.keys())]
    if not pairs:
        raise InputError(f"--folder {folder}: expected image and audio files with matching names "
                         f"(e.g. a.jpg and a.wav), got {len(images)} images and {len(clips)} clips, none matching.")
    unmatched = sorted([images[s] for s in images.keys() - clips.keys()] + [clips[s] for s in clips.keys() - images.keys()])
    return pairs, unmatched


def pairs_from_manifest(path: str | Path) -> list[Pair]:
    """Pairs from a JSON-lines file: {"image": ..., "audio": ..., "name": optional} per line.

    Relative paths are relative to the manifest's folder; the default name is the image's stem.

    Raises:
        InputError: Unreadable file, a bad line, no record, or two records with one name.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--manifest {path}: expected a JSON-lines file of image/audio pairs, got no such file.")
    pairs: list[Pair] = []
    seen: dict[str, int] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--manifest {path}: expected a readable UTF-8 text file, got: {exc}.") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: expected a JSON object, got a syntax error at column {exc.colno}: {exc.msg}.",
                             hint='one pair per line: {"image": "a.jpg", "audio": "a.wav"}') from None
        if not isinstance(record, dict) or not all(isinstance(record.get(k), str) and record.get(k) for k in ("image", "audio")):
            raise InputError(f"{where}: expected an object with 'image' and 'audio' paths, got {line.strip()[:80]}.",
                             hint='one pair per line: {"image": "a.jpg", "audio": "a.wav"}')
        image, audio = (path.parent / record["image"]), (path.parent / record["audio"])
        name = str(record.get("name") or image.stem)
        if Path(name).name != name or name in (".", ".."):
            raise InputError(f"{where}: expected 'name' to be a plain file name, got {name!r}.",
                             hint="outputs are written as <name>.json and <name>.png in --out; drop the folders")
        if name in seen:
            raise InputError(f"{where}: expected a name not used before, got {name!r} (also on line {seen[name]}).",
                             hint="add distinct 'name' fields; outputs are written as <name>.json and <name>.png")
        seen[name] = lineno
        pairs.append(Pair(name, image, audio))
    if not pairs:
        raise InputError(f"--manifest {path}: expected at least one image/audio pair, got an empty file.")
    return pairs


# ------------------------------------------------------------------------------------------------
# Latency


def profile_localize(localizer: Localizer, image: str | Path, audio: str | Path, *, iterations: int = 20,
                     min_seconds: float = 0.0) -> dict[str, Any]:
    """Latency of one `localize` call on a warm engine (warm-up excluded), trtexec-style statistics.

    Each iteration is a whole call: decoding both files, the front-ends, the encoders, the head
    and the post-processing; its stages are recorded too.

    Returns:
        `vsslrt.engine.profiler.LatencyReport.to_json()` (times in ms: median, percentile(90%), ...).
    """
    from vsslrt.engine.profiler import ProfileSettings, environment_block, profile

    if not isinstance(iterations, int) or iterations < 1:
        raise InputError(f"profile: expected iterations to be a positive integer, got {iterations!r}.")

    def step(timer: Any) -> None:
        result = localizer.localize(image, audio)
        for name, ms in result.timing_ms.items():
            if name not in ("total", "batch_size"):
                timer.record(name, ms / 1e3)

    settings = ProfileSettings(warmup_seconds=0.2, warmup_iterations=2, min_iterations=iterations,
                               min_seconds=min_seconds, max_iterations=iterations if min_seconds == 0 else None)
    enc = localizer.encoders
    report = profile(step, batch_size=1, settings=settings,
                     environment=environment_block(backend=enc.backend, precision=enc.precision))
    return report.to_json()
