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

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.pipeline.calibrate import Calibration, as_calibration
from vsslrt.errors import DataError, InputError, ManifestMismatchError
from vsslrt.data import get_frontend, preprocess_image
from vsslrt.data.audio_io import read_audio
from vsslrt.data.frontends import prepare_signal, spectrogram_inputs
from vsslrt.data.images import decode_image
from vsslrt.engine.profiler import ProfileSettings, environment_block, profile
from vsslrt.eval import _xp
from vsslrt.eval.interp import weight_matrix
from vsslrt.files import atomic_write_json, sha256_file
from vsslrt.head import similarity_maps
from vsslrt.pipeline import encoders as encoder_stage  # looked up at call time (tests replace open_encoders)

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


@dataclass
class PreparedPair:
    """A pair after decoding and the front-ends, ready for the encoders (`Localizer.run_prepared`).

    Attributes:
        pair: The pair (its name and where its inputs came from).
        rgb: The decoded image (H, W, 3) uint8.
        image_row: (3, 224, 224) float32 visual input.
        audio_row: (1, F, T) float32 audio input.
        seconds: Seconds spent on "image_input" and "audio_input" (decoding included).
    """

    pair: Pair
    rgb: np.ndarray = field(repr=False)
    image_row: np.ndarray = field(repr=False)
    audio_row: np.ndarray = field(repr=False)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class EmbeddedPair:
    """A prepared pair after the encoders and the head (`Localizer.embed_prepared`).

    Attributes:
        prepared: The prepared pair.
        raw: Its (h, w) raw map.
        full: Its upsampled map when the batch was upsampled together, else None.
        shared_ms: Its share of the batch's stages (milliseconds).
        upsample_seconds: Its share of the batch's upsampling.
        batch_size: Pairs in its batch.
    """

    prepared: PreparedPair
    raw: Any = field(repr=False)
    full: Any = field(repr=False)
    shared_ms: dict[str, float]
    upsample_seconds: float
    batch_size: int


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
        trust_engine_code: `open_encoders(allow_host_code=...)`: let TensorRT run host code embedded
            in a plan (docs/engines.md).

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
        trust_engine_code: bool = False,
    ) -> None:

        if str(map_size) not in MAP_SIZES:
            raise InputError(f"localize: expected map_size to be one of {', '.join(MAP_SIZES)}, got {map_size!r}.")
        self.engine_dir = Path(engine_dir)
        self.calibration = as_calibration(calibration)
        check_calibration_matches(self.engine_dir, self.calibration)
        self.map_size = str(map_size)
        self.gate = gate
        self.encoders = encoder_stage.open_encoders(self.engine_dir, backend=backend, precision=precision, threads=threads,
                                      with_object=False, allow_host_code=trust_engine_code)
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
    def prepare(self, pair: Pair) -> PreparedPair:
        """Decode a pair's files and run the front-ends (no engine work: safe to run in parallel).

        Raises:
            DataError: The image or the audio cannot be read.
        """

        t = time.perf_counter()
        rgb = decode_image(pair.image)
        t_audio = time.perf_counter()
        audio = read_audio(pair.audio)
        done = time.perf_counter()
        prepared = self.prepare_decoded(pair, rgb, audio)
        # Decoding counts in its input's stage.
        prepared.seconds["image_input"] += t_audio - t
        prepared.seconds["audio_input"] += done - t_audio
        return prepared

    def prepare_decoded(self, pair: Pair, rgb: np.ndarray, audio: Any) -> PreparedPair:
        """The front-ends of an already decoded image ((H, W, 3) uint8) and audio clip (`DecodedAudio`).

        Raises:
            DataError: The audio does not suit the front-end (see `vsslrt.data.prepare_signal`).
        """
        image_row, audio_row, seconds = frontend_rows(rgb, audio, self.spec, self.calibration.protocol)
        return PreparedPair(pair, rgb, image_row, audio_row, seconds)

    def run_prepared(self, prepared: Sequence[PreparedPair]) -> list[LocalizationResult]:
        """Run the encoders once on a batch of prepared pairs; results in input order.

        Rows prepared on a device (CuPy arrays) are fed as they are: the runners answer in kind, and
        the results' raw map, map and mask stay device arrays (boxes and scores are host values).
        """
        return [self.finish_embedded(item) for item in self.embed_prepared(prepared)]

    def embed_prepared(self, prepared: Sequence[PreparedPair]) -> list[EmbeddedPair]:
        """The engine part of `run_prepared`: the encoders, the head and the batch's upsampled maps.

        `finish_embedded` then gives each pair's result; it needs no engine, so a service runs it
        per pair in parallel, outside the engine's one thread.
        """

        if not prepared:
            return []
        clock = time.perf_counter
        times: dict[str, float] = {
            stage: sum(p.seconds.get(stage, 0.0) for p in prepared) for stage in ("image_input", "audio_input")}
        images = _stacked([p.image_row for p in prepared])
        audio = _stacked([p.audio_row for p in prepared])
        t = clock()
        visual = self.encoders.embed_images(images)
        times["visual_encoder"] = clock() - t
        t = clock()
        embeddings = self.encoders.embed_audio(audio)
        times["audio_encoder"] = clock() - t
        t = clock()
        maps = similarity_maps(visual, embeddings, self.encoders.manifest.head)
        # Device maps stay where the head formed them (the overlay copies what it draws).
        raw = np.asarray(maps, dtype=np.float32) if _on_host(maps) else _as_float32(maps)
        times["head"] = clock() - t
        t = clock()
        fulls = self._upsampled_batch(raw, prepared)
        upsample_share = (clock() - t) / len(prepared)
        # The stages before the postprocess are shared by the batch: each pair counts its share.
        shared = {name: 1e3 * s / len(prepared) for name, s in times.items()}
        return [EmbeddedPair(item, raw[row], None if fulls is None else fulls[row], shared, upsample_share,
                             len(prepared)) for row, item in enumerate(prepared)]

    def finish_embedded(self, embedded: EmbeddedPair) -> LocalizationResult:
        """One pair's result from `embed_prepared`: thresholds, mask and boxes (no engine work)."""
        t = time.perf_counter()
        item = embedded.prepared
        result = self._finish(item.pair, item.rgb, embedded.raw, embedded.full)
        per_pair = dict(embedded.shared_ms)
        per_pair["postprocess"] = 1e3 * (time.perf_counter() - t + embedded.upsample_seconds)
        per_pair["total"] = sum(per_pair.values())
        per_pair["batch_size"] = float(embedded.batch_size)
        result.timing_ms = per_pair
        return result

    def _run_chunk(self, chunk: Sequence[Pair], on_bad: Callable[[Pair, DataError], None] | None = None
                   ) -> list[LocalizationResult]:
        kept: list[PreparedPair] = []
        for pair in chunk:
            try:
                kept.append(self.prepare(pair))
            except DataError as exc:
                if on_bad is None:
                    raise
                on_bad(pair, exc)
        return self.run_prepared(kept)

    def _upsampled_batch(self, raw: np.ndarray, prepared: Sequence[PreparedPair]) -> np.ndarray | None:
        """The batch's upsampled maps in one pair of products, when they share a frame (224 x 224, or
        images of one size) on the host; None otherwise (each pair is upsampled in `decide`).

        Each map goes through the same two float64 products as `upsample_map`, as one stacked call
        (one BLAS call per map and factor, the same kernel and digits) instead of one call per map.
        """
        if len(prepared) < 2 or not _on_host(raw):
            return None
        frames = {(224, 224) if self.map_size != "image" else (int(p.rgb.shape[0]), int(p.rgb.shape[1]))
                  for p in prepared}
        if len(frames) != 1:
            return None

        (height, width), = frames
        rows = weight_matrix(int(raw.shape[1]), self.calibration.interp, height)
        cols = weight_matrix(int(raw.shape[2]), self.calibration.interp, width)
        with _one_blas_thread():
            return np.matmul(np.matmul(rows, raw.astype(np.float64)), cols.T).astype(np.float32)

    def _finish(self, pair: Pair, rgb: np.ndarray, raw: np.ndarray, full: np.ndarray | None = None
                ) -> LocalizationResult:
        cal = self.calibration
        height, width = int(rgb.shape[0]), int(rgb.shape[1])
        full, mask, score, sounding, boxes = decide(raw, (width, height), cal, map_size=self.map_size, gate=self.gate,
                                                    full=full)
        return LocalizationResult(
            name=pair.name, image=pair.image, audio=pair.audio, image_size=(width, height), raw_map=raw, map=full, mask=mask,
            score=score, sounding=sounding, detection_threshold=cal.detection_threshold,
            localization_threshold=cal.localization_threshold, boxes=boxes, timing_ms={}, rgb=rgb,
        )


def frontend_signals(rgb: np.ndarray, audio: Any, spec: Any, protocol: str = "fixed"
                     ) -> tuple[np.ndarray, np.ndarray, int, dict[str, float]]:
    """A decoded image and clip -> ((3, 224, 224) image row, the front-end's signal, its rate,
    seconds per stage): everything but the spectrogram, which a batch can compute at once.

    Raises:
        DataError: The audio does not suit the front-end (see `vsslrt.data.prepare_signal`).
    """
    clock = time.perf_counter
    t = clock()
    image_row = preprocess_image(rgb)
    t_audio = clock()
    signal, rate = prepare_signal(audio, spec, mode=protocol)
    return image_row, signal, rate, {"image_input": t_audio - t, "audio_input": clock() - t_audio}


def frontend_rows(rgb: np.ndarray, audio: Any, spec: Any, protocol: str = "fixed"
                  ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """A decoded image and clip -> ((3, 224, 224) image row, (1, F, T) audio row, seconds per stage).

    Args:
        rgb: (H, W, 3) uint8.
        audio: `vsslrt.data.audio_io.DecodedAudio`.
        spec: The audio front-end (`vsslrt.data.get_frontend`).
        protocol: The calibration run's protocol ("fixed" or "paper").

    Raises:
        DataError: The audio does not suit the front-end (see `vsslrt.data.prepare_signal`).
    """
    # The same two steps as `vsslrt.data.audio_input`, from the decoded samples.
    image_row, signal, rate, seconds = frontend_signals(rgb, audio, spec, protocol)
    t = time.perf_counter()
    audio_row = spectrogram_inputs([signal], spec, rates=rate)[0]
    seconds["audio_input"] += time.perf_counter() - t
    return image_row, audio_row, seconds


def decide(raw: np.ndarray, image_size: tuple[int, int], calibration: Calibration, *, map_size: str = "224",
           gate: bool = True, full: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float, bool, list[Box]]:
    """One raw map -> (upsampled map, mask, score, sounding, boxes) with a calibration's thresholds.

    Args:
        raw: (h, w) raw map from the head.
        image_size: (width, height) of the original image (boxes are in its pixels).
        map_size: "224" (the protocol's frame) or "image" (the image's own size).
        gate: An empty mask when the detection says "not sounding".
        full: `raw` already upsampled to the frame (a batch's maps upsampled together); computed
            here when None.
    """
    width, height = int(image_size[0]), int(image_size[1])
    frame = (height, width) if str(map_size) == "image" else (224, 224)
    if full is None:
        full = upsample_map(raw, frame, calibration.interp)
    scale, limits = (width / frame[1], height / frame[0]), (width, height)
    if not _on_host(raw):

        # A device map: the map and the mask stay on the device (the overlay reads them there);
        # the connected components run on the host, from the boolean mask and each region's window.
        xp = _namespace(full)
        score = float(xp.max(raw))
        sounding = score > calibration.detection_threshold
        if gate and not sounding:
            return full, xp.zeros(frame, dtype=xp.bool, device=_xp.device_of(full)), score, sounding, []
        mask = full > calibration.localization_threshold
        return full, mask, score, sounding, mask_boxes(_host(mask), _HostWindows(full), scale=scale, limits=limits)
    score = float(np.max(raw))
    sounding = score > calibration.detection_threshold
    if gate and not sounding:
        mask = np.zeros(frame, dtype=bool)
    else:
        mask = full > calibration.localization_threshold
    boxes = mask_boxes(mask, full, scale=scale, limits=limits)
    return full, mask, score, sounding, boxes


# ------------------------------------------------------------------------------------------------
# Helpers (public: the overlay, the CLI and tests use them)


def check_calibration_matches(engine_dir: Path, calibration: Calibration) -> None:
    """Refuse a calibration made for another engine (sha256 of manifest.json).

    Raises:
        InputError: The engine folder or its manifest.json does not exist.
        ManifestMismatchError: The hashes differ.
    """

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

    rows = weight_matrix(int(raw.shape[0]), interp, int(size[0]))
    cols = weight_matrix(int(raw.shape[1]), interp, int(size[1]))
    if not _on_host(raw):
        # A device map (CuPy) stays on its device: the same two products, in float64 there.
        xp = _namespace(raw)
        dev = _xp.device_of(raw)
        x = xp.astype(raw, xp.float64)
        product = xp.asarray(rows, device=dev) @ x @ xp.asarray(np.ascontiguousarray(cols.T), device=dev)
        return xp.astype(product, xp.float32)
    raw = np.asarray(raw, dtype=np.float64)
    with _one_blas_thread():
        return (rows @ raw @ cols.T).astype(np.float32)


_BLAS_LOCK = threading.Lock()
_BLAS_CONTROLLER: list[Any] = []  # [threadpoolctl.ThreadpoolController or None], made on first use


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """One BLAS thread for the map's small products (same kernel, same digits).

    OpenBLAS splits a (224 x 7) @ (7 x 224) product over its threads; on a busy machine waking them
    cost 10 to 30 ms per call instead of 0.1 ms. The lock keeps concurrent callers from restoring
    each other's limit. Without threadpoolctl (the `video` and `serve` extras) the product runs as is.
    """
    if not _BLAS_CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController  # optional: scans the loaded BLAS once
        except ImportError:
            _BLAS_CONTROLLER.append(None)
        else:
            _BLAS_CONTROLLER.append(ThreadpoolController())
    controller = _BLAS_CONTROLLER[0]
    if controller is None:
        yield
        return
    with _BLAS_LOCK, controller.limit(limits=1, user_api="blas"):
        yield


def _stacked(rows: Sequence[Any]) -> Any:
    """Rows -> one contiguous float32 batch, NumPy or of the rows' device namespace."""
    if isinstance(rows[0], np.ndarray):
        return np.ascontiguousarray(np.stack(rows), dtype=np.float32)
    return _as_float32(_namespace(rows[0]).stack(list(rows)))


def _as_float32(array: Any) -> Any:
    xp = _namespace(array)
    return xp.astype(array, xp.float32, copy=False)


def _namespace(array: Any) -> Any:
    from array_api_compat import array_namespace  # light; only the device paths need it

    return array_namespace(array)


def _on_host(array: Any) -> bool:
    """True for a NumPy array on the NumPy fast path (the default); False for a device array, or
    for NumPy under `vsslrt.eval._xp.use_fast_paths(False)` (the generic path CuPy runs)."""

    return isinstance(array, np.ndarray) and _xp.fast_paths_enabled()


def _host(array: Any) -> np.ndarray:

    return _xp.to_numpy(array)


class _HostWindows:
    """A device map read by `mask_boxes` one region's bounding box at a time: each window is copied
    to the host, never the whole map."""

    def __init__(self, values: Any) -> None:
        self.values = values

    def __getitem__(self, key: Any) -> np.ndarray:
        return _host(self.values[key])


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
