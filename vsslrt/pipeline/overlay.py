"""Overlay PNGs of a localisation, drawn like the paper's figures (protocol.md section 5.11).

1. every pixel outside the mask (map <= the threshold, or everything when the detection said "not
   sounding") is set to 0;
2. the remaining values are min-max normalised to [0, 1];
3. the result is coloured with the jet colormap and blended onto the image with alpha 0.5;
4. so when nothing survives the whole image gets jet(0), a dark blue tint.

The regions' boxes are outlined and a caption states the verdict. The colormap is matplotlib's
"jet" (its piecewise-linear segment data), evaluated with NumPy so no plotting library is loaded.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np

ALPHA = 0.5
LEVELS = 256
PNG_COMPRESS_LEVEL = 1  # zlib level 1: several times faster than the default 6 for a slightly larger file
BOX_COLOUR = (255, 255, 255)

# matplotlib's _jet_data: (x, value) anchors per channel.
_JET = {
    "red": ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
    "green": ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
    "blue": ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
}


def jet(values: np.ndarray) -> np.ndarray:
    """Colour values in [0, 1] with jet: (...,) -> (..., 3) float in [0, 1]."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    channels = []
    for name in ("red", "green", "blue"):
        xs, ys = zip(*_JET[name])
        channels.append(np.interp(v, xs, ys))
    return np.stack(channels, axis=-1)


def display_map(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zero outside the mask, min-max normalise inside it (section 5.11); a single value becomes 1."""
    out = np.zeros(values.shape, dtype=np.float64)
    if not mask.any():
        return out
    inside = values[mask].astype(np.float64)
    lo, hi = float(inside.min()), float(inside.max())
    out[mask] = (inside - lo) / (hi - lo) if hi > lo else 1.0
    return out


def render_overlay(
    rgb: np.ndarray,
    values: np.ndarray,
    mask: np.ndarray,
    *,
    boxes: Sequence[Any] = (),
    caption: str | None = None,
    alpha: float = ALPHA,
) -> np.ndarray:
    """The overlay as an (H, W, 3) uint8 image.

    Args:
        rgb: The original image (H, W, 3) uint8.
        values: The upsampled map; any size (resized to the image when it differs).
        mask: Bool mask of `values`' shape (the pixels shown).
        boxes: Objects with x0, y0, x1, y1 in image pixels (exclusive x1, y1).
        caption: Text drawn in the top-left corner.
        alpha: Weight of the heatmap in the blend.
    """
    from PIL import Image, ImageDraw

    height, width = rgb.shape[:2]
    heat = display_map(values, mask).astype(np.float32)
    if heat.shape != (height, width):
        heat = np.asarray(Image.fromarray(heat, mode="F").resize((width, height), Image.BILINEAR))
    # 256 colour levels, as matplotlib's colormaps have: one table lookup per pixel.
    levels = np.clip(np.rint(heat * (LEVELS - 1)), 0, LEVELS - 1).astype(np.intp)
    table = (np.float32(alpha * 255.0) * jet(np.linspace(0.0, 1.0, LEVELS))).astype(np.float32)
    blended = np.float32(1.0 - alpha) * rgb.astype(np.float32) + table[levels]
    image = Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    line = max(2, round(min(width, height) / 150))
    for box in boxes:
        draw.rectangle([box.x0, box.y0, max(box.x0, box.x1 - 1), max(box.y0, box.y1 - 1)], outline=BOX_COLOUR,
                       width=line)
    if caption:
        font = _font(max(12, min(width, height) // 40))
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        pad = max(4, (bottom - top) // 4)
        draw.rectangle([0, 0, right - left + 2 * pad, bottom - top + 2 * pad], fill=(0, 0, 0))
        draw.text((pad - left, pad - top), caption, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def _font(size: int) -> Any:
    """Pillow's built-in font at a size readable on the image (older Pillow: its fixed bitmap font)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1, or built without FreeType
        return ImageFont.load_default()


def write_overlay_png(result: Any, path: str | Path) -> Path:
    """Write a `LocalizationResult`'s overlay as a PNG, atomically; returns the path."""
    from PIL import Image

    from vsslrt.files import atomic_write_bytes

    caption = (f"sounding {result.score:.3f}" if result.sounding
               else f"not sounding {result.score:.3f}") + f" (detection {result.detection_threshold:.3f})"
    pixels = render_overlay(result.rgb, result.map, result.mask, boxes=result.boxes, caption=caption)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path
