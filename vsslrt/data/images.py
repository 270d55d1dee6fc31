"""Image front-end: decode, resize to 224x224 with the reference's semantics, ImageNet normalisation.

The reference (protocol section 3, quirk Q22) runs `ToTensor()` and then torchvision's
`Resize((224, 224), BICUBIC)` on the float tensor, which in torchvision 0.14 is
`torch.nn.functional.interpolate(mode="bicubic", align_corners=False, antialias=False)`: the
Keys cubic kernel with a = -0.75, source coordinate (dst + 0.5) * in / out - 0.5, taps outside the
image clamped to the border pixel, no antialiasing when shrinking and no clamping of the result
(values may leave [0, 1]). Here that resize is applied separably (height, then width), equal to
torch's kernel up to float32 rounding, computed as a gather of the four taps per output pixel and axis. The same resize is used in
both protocol modes (Q22 asks only for a documented choice).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from vsslrt.errors import DataError

IMAGE_SIZE = 224
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_CUBIC_A = -0.75


def decode_image(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB, upright, by the rules of `to_rgb`.

    8-bit images (L, P, RGB, RGBA, LA, PA, CMYK, YCbCr, 1, ...) decode exactly as
    `PIL.Image.open(path).convert('RGB')` does, the reference loaders' call; 16-bit and float
    images are scaled by their full range. The EXIF orientation, when a file has one, is applied
    first (`PIL.ImageOps.exif_transpose`), so a camera photo is upright as every viewer shows it.

    Returns:
        (H, W, 3) uint8.

    Raises:
        DataError: The file is missing, not an image, truncated, or in a mode with no faithful 8-bit
            RGB form.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: expected an image file, got no such file.",
            hint="check the dataset folder (--data-dir) and the annotation's file names",
        )
    try:
        with Image.open(path) as img:
            return to_rgb(img, path)
    except DataError:  # to_rgb's own message (DataError is a ValueError: re-raise it unchanged)
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(
            f"{path}: expected a readable image (JPEG, PNG, ...), got: {' '.join(str(exc).split())}.",
            hint="check that the file is complete (open it in an image viewer) or re-encode it",
        ) from None


_EXIF_ORIENTATION = 0x0112
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def to_rgb(img, path: str | Path = "image") -> np.ndarray:
    """An opened Pillow image -> (H, W, 3) uint8 RGB, upright (the one decoding rule for files and
    for images received as bytes).

    The EXIF orientation, when the image has one other than 1, is applied first
    (`PIL.ImageOps.exif_transpose`). Then, by mode:
      * 16-bit grey (I;16, I;16L, I;16B, I;16N) and 32-bit integer (I) images are scaled by their
        16-bit full range, v * 255 / 65535 rounded to the nearest integer, so white stays white and
        mid-grey stays mid-grey (Pillow's own `convert` clips at 255 instead: a 16-bit PNG becomes
        almost all white). Pillow decodes every 16-bit grey file (PNG, TIFF, PGM) to one of these
        modes; an I image with values outside [0, 65535] is not 16-bit data and is refused.
      * Float (F) images in [0, 1] are scaled by 255, those in [0, 255] are taken as they are
        (Pillow's F -> L rule, the reference's result); both then clip and truncate as Pillow's
        F -> L does (and torchvision's `to_pil_image`). Other value ranges, NaN or infinity are
        refused.
      * Every other mode goes through `convert('RGB')`, exactly the reference loaders' call:
        transparency (RGBA, LA, PA, P with a transparent colour) is dropped, keeping the stored
        colour of each pixel, not composited on black or white; a palette image with per-entry
        transparency goes through RGBA first, which gives the same pixels without Pillow's warning.

    Raises:
        DataError: An I or F image out of its range, or a mode Pillow cannot convert.
    """
    from PIL import ImageOps

    if img.getexif().get(_EXIF_ORIENTATION, 1) in range(2, 9):
        img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode in SIXTEEN_BIT_MODES or mode == "I":
        values = np.asarray(img)
        if mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
            raise DataError(
                f"{path}: expected a 32-bit integer image to hold 16-bit values in [0, 65535], got "
                f"[{values.min()}, {values.max()}].",
                hint="convert the image to 8- or 16-bit (e.g. PNG) before use",
            )
        grey = ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(v * 255 / 65535)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        values = np.asarray(img, dtype=np.float32)
        finite = bool(np.all(np.isfinite(values)))
        low, high = (float(values.min()), float(values.max())) if values.size and finite else (0.0, 0.0)
        if not finite or low < 0.0 or high > 255.0:
            raise DataError(
                f"{path}: expected a float image with values in [0, 1] or [0, 255], got "
                f"{'NaN or infinity' if not finite else f'[{low:g}, {high:g}]'}.",
                hint="convert the image to 8- or 16-bit (e.g. PNG) before use",
            )
        scale = np.float32(255.0) if high <= 1.0 else np.float32(1.0)
        grey = np.clip(values * scale, 0.0, 255.0).astype(np.uint8)  # truncation, as Pillow's F -> L
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "P" and isinstance(img.info.get("transparency"), bytes):
        img = img.convert("RGBA")
    try:
        rgb = img.convert("RGB")
    except ValueError as exc:  # a mode Pillow has no RGB conversion for (e.g. La)
        raise DataError(
            f"{path}: expected an image mode with an RGB conversion, got mode {mode} ({exc}).",
            hint="re-encode the image as 8-bit RGB (JPEG or PNG)",
        ) from None
    return np.asarray(rgb, dtype=np.uint8)


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """The four Keys-cubic tap weights (a = -0.75) for fractional offsets t, shape (..., 4).

    Evaluated in t's dtype (float32, like torch's CPU kernel for float images).
    """
    one, a = t.dtype.type(1.0), t.dtype.type(_CUBIC_A)

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + one

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + one), near(t), near(one - t), far((one - t) + one)], axis=-1)


@functools.lru_cache(maxsize=32)
def bicubic_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Torch's bicubic resize along one axis (align_corners=False): (taps, weights), both (out_size, 4).

    Output pixel i reads input pixels taps[i] with weights[i]: source x = (i + 0.5) * in / out - 0.5
    (not clamped, as torch does for cubic), taps floor(x) - 1 .. floor(x) + 2 clamped to
    [0, in - 1], weights from the cubic kernel of the fractional part. The coordinates are computed in
    float32 as torch does for float32 images: in float64 the fractional parts differ by up to ~1e-4 for
    a 1024-pixel axis, and so would the output.
    """
    f32 = np.float32
    scale = f32(f32(in_size) / f32(out_size))
    # torch's CPU kernel rounds scale * (i + 0.5) - 0.5 once (a fused multiply-add); the product of two
    # float32 values is exact in float64, so rounding the float64 result once reproduces that (measured:
    # two roundings differ from torch by up to 1e-5 after resizing).
    src = (np.float64(scale) * (np.arange(out_size, dtype=np.float64) + 0.5) - 0.5).astype(f32)
    base = np.floor(src)
    weights = _cubic_weights((src - base).astype(f32))
    taps = np.clip(base[:, None].astype(np.int64) + np.arange(-1, 3)[None, :], 0, in_size - 1)
    taps.setflags(write=False)
    weights.setflags(write=False)
    return taps, weights


def bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """The same resize as a dense (out_size, in_size) float32 matrix (clamped taps accumulate)."""
    taps, weights = bicubic_taps(in_size, out_size)
    matrix = np.zeros((out_size, in_size), dtype=np.float32)
    np.add.at(matrix, (np.repeat(np.arange(out_size), 4), taps.ravel()), weights.ravel())
    return matrix


def _resize_rows(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Resize along `axis`: gather the 4 taps (whole slices along that axis) and sum them weighted."""
    taps, weights = bicubic_taps(x.shape[axis], size)
    shape = [1] * x.ndim
    shape[axis] = size
    out = np.take(x, taps[:, 0], axis=axis).astype(np.float32) * weights[:, 0].reshape(shape)
    for k in range(1, 4):
        out += np.take(x, taps[:, k], axis=axis).astype(np.float32) * weights[:, k].reshape(shape)
    return out


def resize_bicubic(image: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Resize a (C, H, W) or (B, C, H, W) float image to size x size, torch bicubic semantics."""
    x = np.asarray(image, dtype=np.float32)
    return _resize_rows(_resize_rows(x, size, x.ndim - 2), size, x.ndim - 1)


def to_float_chw(rgb: np.ndarray) -> np.ndarray:
    """`ToTensor()`: (H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]."""
    return np.ascontiguousarray(np.transpose(rgb, (2, 0, 1))).astype(np.float32) / np.float32(255.0)


def normalize_imagenet(x: np.ndarray) -> np.ndarray:
    """`Normalize(ImageNet mean, std)` over the channel axis (-3), in float32."""
    shape = (3, 1, 1)
    return (x - IMAGENET_MEAN.reshape(shape)) / IMAGENET_STD.reshape(shape)


def preprocess_image(rgb: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """One decoded (H, W, 3) uint8 image -> (3, size, size) float32 model input.

    Same arithmetic as ToTensor -> resize -> Normalize (x / 255 in float32, then the 4-tap sums),
    arranged for speed on the HWC array: the height pass gathers the 4 tap rows of every output row
    and converts only those to float; each pass is one stacked (1 x 4) @ (4 x n) product.
    """
    height, width, _ = rgb.shape
    if height == width == size:
        # The resize is then the identity: every output pixel's taps weigh (0, 1, 0, 0) exactly,
        # so the 4-tap sums return x / 255 bit for bit (test_images checks it); a video already at
        # the model's size skips them.
        return normalize_imagenet(to_float_chw(rgb))
    return _resized(rgb, size)


def _resized(rgb: np.ndarray, size: int) -> np.ndarray:
    """`preprocess_image` through the two 4-tap passes (any input size)."""
    height, width, _ = rgb.shape
    taps_y, w_y = bicubic_taps(height, size)
    taps_x, w_x = bicubic_taps(width, size)
    rows = rgb[taps_y.ravel()].reshape(size, 4, width * 3).astype(np.float32)
    rows /= np.float32(255.0)
    tall = np.matmul(w_y[:, None, :], rows).reshape(size, width, 3)  # (out rows, W, C)
    cols = tall.transpose(1, 0, 2)[taps_x.ravel()].reshape(size, 4, size * 3)
    out = np.matmul(w_x[:, None, :], cols).reshape(size, size, 3)  # (out cols, out rows, C)
    return normalize_imagenet(np.ascontiguousarray(out.transpose(2, 1, 0)))


def image_batch(images: Sequence[np.ndarray], size: int = IMAGE_SIZE) -> np.ndarray:
    """Decoded RGB images of any sizes -> (B, 3, size, size) float32 model inputs."""
    out = np.empty((len(images), 3, size, size), dtype=np.float32)
    for i, rgb in enumerate(images):
        out[i] = preprocess_image(rgb, size)
    return out


def load_images(paths: Sequence[str | Path], size: int = IMAGE_SIZE) -> np.ndarray:
    """Decode and preprocess image files -> (B, 3, size, size) float32."""
    return image_batch([decode_image(p) for p in paths], size)


# Modes `to_rgb` decodes: Pillow's RGB conversions plus the 16-bit, integer and float rules.
DECODABLE_MODES = frozenset(("1", "L", "P", "RGB", "RGBA", "RGBX", "RGBa", "LA", "PA", "CMYK", "YCbCr", "LAB", "HSV", "I", "F") + SIXTEEN_BIT_MODES)
# The last bytes of a complete file of these formats (a little trailing padding is tolerated).
_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}
_TAIL_BYTES = 64


def image_header(path: str | Path) -> tuple[int, int, str]:
    """(width, height, mode) from the file header, without decoding the pixels.

    Also checks that the mode is one `decode_image` decodes and, for JPEG and PNG, that the file
    ends with its end marker; a file without one is decoded in full to tell a truncated file (an
    error) from harmless trailing data.

    Raises:
        DataError: The file is missing, not an image, empty, truncated, or in an unsupported mode.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: expected an image file, got no such file.",
            hint="check the dataset folder (--data-dir) and the annotation's file names",
        )
    try:
        with open(path, "rb") as f, Image.open(f) as img:
            width, height = img.size
            mode, fmt = img.mode, img.format
            marker = _END_MARKERS.get(fmt or "")
            if marker is not None:
                f.seek(max(0, os.fstat(f.fileno()).st_size - _TAIL_BYTES))
                tail = f.read()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(
            f"{path}: expected a readable image (JPEG, PNG, ...), got: {' '.join(str(exc).split())}.",
            hint="check that the file is complete (open it in an image viewer) or re-encode it",
        ) from None
    if width <= 0 or height <= 0:
        raise DataError(f"{path}: expected an image with at least one pixel, got size {width}x{height}.", hint="re-encode it")
    if mode not in DECODABLE_MODES:
        raise DataError(
            f"{path}: expected an image mode with an RGB conversion, got mode {mode}.",
            hint="re-encode the image as 8-bit RGB (JPEG or PNG)",
        )
    if marker is not None and marker not in tail:
        decode_image(path)  # raises when the file is truncated
    return width, height, mode
