"""Request body -> the decoded image and audio of one pair, every failure naming its field.

Two request formats carry the same fields:

* multipart/form-data: files `image` and `audio`; optional fields `name`, `mask`, `overlay`
  ("true"/"false", "1"/"0");
* application/json: {"image": base64, "audio": base64, "name": str, "mask": bool, "overlay": bool}.

Decoding follows the benchmark's readers: the image by `vsslrt.data.images.to_rgb`, the rule of
`vsslrt.data.images.decode_image`, the audio with libsndfile at float64 and all channels
(`vsslrt.data.audio_io.read_audio`), here from memory. The image's pixel count and the clip's
duration are read from the headers and checked before the samples are decoded.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.pipeline.serve.limits import RequestError, ServeLimits
from vsslrt.data.audio_io import DecodedAudio
from vsslrt.data.images import to_rgb

FIELDS = ("image", "audio")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
MAX_NAME = 200


@dataclass(frozen=True)
class Payload:
    """One localisation request, not yet decoded.

    Attributes:
        image, audio: The encoded files.
        name: The pair's name in the answer.
        image_name, audio_name: The uploaded file names (or the field names).
        mask: Also answer the mask, run-length encoded.
        overlay: Also answer the overlay PNG, base64.
    """

    image: bytes
    audio: bytes
    name: str = "pair"
    image_name: str = "image"
    audio_name: str = "audio"
    mask: bool = False
    overlay: bool = False


def _flag(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise RequestError(400, f"{field}: expected true or false, got {str(value)[:40]!r}.", field)


def _name(value: Any, field: str = "name") -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        raise RequestError(400, f"{field}: expected a non-empty string of at most {MAX_NAME} characters, "
                           f"got {str(value)[:40]!r}.", field)
    return value.strip()


def _require(data: bytes | None, field: str) -> bytes:
    if not data:
        raise RequestError(400, f"{field}: expected a non-empty {field} file, got "
                           f"{'an empty one' if data is not None else 'none'}.", field)
    return data


def parse_json(body: bytes) -> Payload:
    """A JSON request body -> `Payload`."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(400, f"body: expected a JSON object, got invalid JSON ({exc}).", "body") from None
    if not isinstance(doc, dict):
        raise RequestError(400, f"body: expected a JSON object, got {type(doc).__name__}.", "body")
    files = {}
    for field in FIELDS:
        value = doc.get(field)
        if not isinstance(value, str):
            raise RequestError(400, f"{field}: expected a base64 string, got {'none' if value is None else type(value).__name__}.",
                               field)
        try:
            files[field] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(400, f"{field}: expected base64 (RFC 4648), got characters outside it.", field) from None
    unknown = sorted(set(doc) - {*FIELDS, "name", "mask", "overlay"})
    if unknown:
        raise RequestError(400, f"{unknown[0]}: expected only image, audio, name, mask and overlay, got {unknown[0]!r}.",
                           unknown[0])
    return Payload(image=_require(files["image"], "image"), audio=_require(files["audio"], "audio"),
                   name=_name(doc.get("name", "pair")), mask=_flag(doc.get("mask", False), "mask"),
                   overlay=_flag(doc.get("overlay", False), "overlay"))


async def parse_multipart(request: Any, limits: ServeLimits) -> Payload:
    """A multipart/form-data request (Starlette `Request`) -> `Payload`."""
    from starlette.datastructures import UploadFile  # lazy: part of the `serve` extra

    try:
        form = await request.form(max_files=len(FIELDS), max_fields=8, max_part_size=limits.max_body_bytes)
    except Exception as exc:  # Starlette turns python-multipart's errors into an HTTPException with a detail
        detail = getattr(exc, "detail", None) or exc
        raise RequestError(400, f"body: expected multipart/form-data with the files image and audio, got {detail}.",
                           "body") from None
    try:
        files: dict[str, bytes] = {}
        names: dict[str, str] = {}
        for field in FIELDS:
            part = form.get(field)
            if not isinstance(part, UploadFile):
                got = "none" if part is None else "a text field"
                raise RequestError(400, f"{field}: expected a file part named {field!r}, got {got}.", field)
            files[field] = _require(await part.read(), field)
            names[field] = Path(part.filename or field).name[:MAX_NAME] or field
        extra = {key: form.get(key) for key in ("name", "mask", "overlay") if form.get(key) is not None}
        for key, value in extra.items():
            if not isinstance(value, str):
                raise RequestError(400, f"{key}: expected a text field, got a file.", key)
        return Payload(image=files["image"], audio=files["audio"],
                       name=_name(extra.get("name", Path(names["image"]).stem or "pair")),
                       image_name=names["image"], audio_name=names["audio"],
                       mask=_flag(extra.get("mask", "false"), "mask"),
                       overlay=_flag(extra.get("overlay", "false"), "overlay"))
    finally:
        await form.close()


def decode_image_bytes(data: bytes, limits: ServeLimits) -> np.ndarray:
    """Encoded image -> (H, W, 3) uint8 RGB, as `vsslrt.data.images.decode_image` reads a file."""
    from PIL import Image, UnidentifiedImageError


    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > limits.max_image_pixels:
                raise RequestError(413, f"image: expected at most {limits.max_image_pixels} pixels, got "
                                   f"{width} x {height}.", "image")
            return to_rgb(img, "image")  # the benchmark's one decoding rule (16-bit, float, EXIF orientation)
    except RequestError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise RequestError(422, f"image: expected a readable image (JPEG, PNG, ...), got: "
                           f"{' '.join(str(exc).split())[:200]}.", "image") from None


def decode_audio_bytes(data: bytes, limits: ServeLimits) -> Any:
    """Encoded audio -> `vsslrt.data.audio_io.DecodedAudio` (float64, all channels, native rate).

    The formats libsndfile reads (wav, flac, ogg, mp3, ...), as `read_audio` reads a file.
    """
    import soundfile


    try:
        info = soundfile.info(io.BytesIO(data))
        if info.samplerate <= 0:
            raise ValueError(f"sample rate {info.samplerate}")
        seconds = info.frames / info.samplerate
        if seconds > limits.max_audio_seconds:
            raise RequestError(413, f"audio: expected at most {limits.max_audio_seconds:g} s, got {seconds:.1f} s.",
                               "audio")
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float64", always_2d=True)
    except RequestError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise RequestError(422, f"audio: expected a readable audio file (wav, flac, ogg, mp3), got: "
                           f"{' '.join(str(exc).split())[:200]}.", "audio") from None
    if samples.shape[0] == 0:
        raise RequestError(422, "audio: expected audio with at least one sample, got an empty clip.", "audio")
    if samples.shape[0] / rate > limits.max_audio_seconds:  # a header may understate the length
        raise RequestError(413, f"audio: expected at most {limits.max_audio_seconds:g} s, got "
                           f"{samples.shape[0] / rate:.1f} s.", "audio")
    if not np.all(np.isfinite(samples)):
        raise RequestError(422, "audio: expected finite audio samples, got NaN or infinity.", "audio")
    return DecodedAudio(samples=np.ascontiguousarray(samples.T), sample_rate=int(rate), path=Path("audio"))


def mask_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO's uncompressed run-length encoding: {"size": [h, w], "counts": [...]}.

    Runs of the column-major (Fortran order) flattened mask, alternating False and True, starting
    with False (a first count of 0 when the first pixel is True): `pycocotools.mask.frPyObjects`
    reads it as it is.
    """
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}
