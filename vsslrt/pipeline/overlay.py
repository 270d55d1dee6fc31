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

import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vsslrt.errors import InputError
from vsslrt.eval._xp import to_numpy
from vsslrt.files import atomic_write_bytes

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
        values: The upsampled map; any size (resized to the image when it differs); NumPy or a
            device array (copied to the host here).
        mask: Bool mask of `values`' shape (the pixels shown).
        boxes: Objects with x0, y0, x1, y1 in image pixels (exclusive x1, y1).
        caption: Text drawn in the top-left corner.
        alpha: Weight of the heatmap in the blend.
    """
    return overlay_layer(rgb.shape[:2], values, mask, boxes=boxes, caption=caption, alpha=alpha).apply(rgb)


@dataclass(frozen=True)
class OverlayLayer:
    """An overlay apart from the image it goes on: out = rint(image * keep + add), per pixel.

    Under the heatmap `keep` is 1 - alpha and `add` the colour times alpha; under the boxes and the
    caption `keep` is 0 and `add` the drawn colour. One layer serves every frame that shows the same
    result (a video's frames between two localised ones): the colouring and the drawing are done
    once, each frame costs one multiply-add.

    Attributes:
        keep: (H, W, 1) float32.
        add: (H, W, 3) float32.
    """

    keep: np.ndarray
    add: np.ndarray

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """The overlay on an (H, W, 3) uint8 image of the layer's size -> (H, W, 3) uint8."""
        return _blend(rgb, self.keep, self.add).astype(np.uint8)


def _blend(pixels: np.ndarray, keep: np.ndarray, add: np.ndarray) -> np.ndarray:
    """rint(pixels * keep + add) clipped to [0, 255], in float32 (a layer's one multiply-add)."""
    out = pixels.astype(np.float32)
    out *= keep
    out += add
    np.rint(out, out=out)
    np.clip(out, 0, 255, out=out)
    return out


def overlay_layer(
    size: tuple[int, int],
    values: Any,
    mask: Any,
    *,
    boxes: Sequence[Any] = (),
    caption: str | None = None,
    alpha: float = ALPHA,
) -> OverlayLayer:
    """The `OverlayLayer` of a map for images of `size` (height, width); see `render_overlay`."""
    height, width = int(size[0]), int(size[1])
    levels = _levels(_display(values, mask), (height, width))
    table = _colour_table(float(alpha))
    add = np.empty((height, width, 3), dtype=np.float32)
    for channel in range(3):  # one 1-D lookup per channel: several times faster than table[levels]
        add[..., channel] = np.take(table[:, channel], levels)
    keep = np.full((height, width, 1), np.float32(1.0 - alpha), dtype=np.float32)
    drawn, colours = _drawing(width, height, boxes, caption)
    if drawn is not None:
        keep[drawn] = 0.0
        add[drawn] = colours[drawn]
    return OverlayLayer(keep=keep, add=add)


def _display(values: Any, mask: Any) -> np.ndarray:
    """`display_map` in float32 on the host (a device map is copied here, where it is drawn)."""

    return display_map(to_numpy(values), to_numpy(mask).astype(bool, copy=False)).astype(np.float32)


def _levels(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The display map resized (bilinear) to `size` (height, width) -> colour levels 0..255 (intp)."""
    from PIL import Image

    height, width = size
    if heat.shape != (height, width):
        heat = np.asarray(Image.fromarray(heat, mode="F").resize((width, height), Image.BILINEAR))
    # 256 colour levels, as matplotlib's colormaps have: one table lookup per pixel.
    return np.clip(np.rint(heat * (LEVELS - 1)), 0, LEVELS - 1).astype(np.intp)


@functools.lru_cache(maxsize=8)
def _colour_table(alpha: float) -> np.ndarray:
    table = (np.float32(alpha * 255.0) * jet(np.linspace(0.0, 1.0, LEVELS))).astype(np.float32)
    table.setflags(write=False)
    return table


def _drawing(width: int, height: int, boxes: Sequence[Any], caption: str | None
             ) -> tuple[np.ndarray | None, np.ndarray]:
    """(pixels drawn, their colours) of the boxes and the caption; (None, _) when nothing is drawn.

    The shapes are drawn twice with the same calls: in colour on black, and as coverage on an
    8-bit mask, so the layer knows which pixels hide the image.
    """
    from PIL import Image, ImageDraw

    if not boxes and not caption:
        return None, np.zeros((0, 0, 3), np.uint8)
    image, cover = Image.new("RGB", (width, height)), Image.new("L", (width, height))
    draw, mark = ImageDraw.Draw(image), ImageDraw.Draw(cover)
    line = max(2, round(min(width, height) / 150))
    for box in boxes:
        corners = [box.x0, box.y0, max(box.x0, box.x1 - 1), max(box.y0, box.y1 - 1)]
        draw.rectangle(corners, outline=BOX_COLOUR, width=line)
        mark.rectangle(corners, outline=255, width=line)
    if caption:
        font = _font(max(12, min(width, height) // 40))
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        pad = max(4, (bottom - top) // 4)
        panel = [0, 0, right - left + 2 * pad, bottom - top + 2 * pad]
        draw.rectangle(panel, fill=(0, 0, 0))
        mark.rectangle(panel, fill=255)
        draw.text((pad - left, pad - top), caption, fill=(255, 255, 255), font=font)  # inside the panel
    return np.asarray(cover) > 0, np.asarray(image)


@dataclass(frozen=True)
class Yuv420Layer:
    """An overlay layer for 4:2:0 YUV planes: a video's own pixels, blended without a conversion
    to RGB and back.

    YUV is affine in RGB, so blending in YUV is blending in RGB: out = keep * plane + add, with
    `add` the layer's colours in YUV plus (1 - keep) times the planes' offsets. The chroma planes
    (one value per 2 x 2 pixels, as the source's) take the heatmap at half resolution and the
    drawn pixels' share of each 2 x 2 block.

    Attributes:
        keep_y, add_y: (H, W) float32.
        keep_c, add_u, add_v: (H / 2, W / 2) float32.
    """

    keep_y: np.ndarray
    add_y: np.ndarray
    keep_c: np.ndarray
    add_u: np.ndarray
    add_v: np.ndarray

    def apply(self, planes: Sequence[np.ndarray], out: Sequence[np.ndarray]) -> None:
        """Blend (Y, U, V) uint8 planes of the layer's size into the `out` planes (uint8 views)."""
        for plane, keep, add, target in zip(planes, (self.keep_y, self.keep_c, self.keep_c),
                                            (self.add_y, self.add_u, self.add_v), out):
            target[...] = _blend(plane, keep, add)


#: (Kr, Kb) of the YUV matrices (ITU-R BT.601, BT.709, BT.2020 non-constant luminance).
YUV_MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}


def yuv_matrix(matrix: str = "bt601", full_range: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(A, offset) with yuv = A @ rgb + offset for 8-bit values (rgb in [0, 255])."""
    if matrix not in YUV_MATRICES:
        raise InputError(f"YUV matrix: expected one of {', '.join(YUV_MATRICES)}, got {matrix!r}.")
    kr, kb = YUV_MATRICES[matrix]
    luma = np.array([kr, 1.0 - kr - kb, kb])
    rows = np.stack([luma, (np.array([0.0, 0.0, 1.0]) - luma) / (2 * (1 - kb)),
                     (np.array([1.0, 0.0, 0.0]) - luma) / (2 * (1 - kr))])
    if full_range:
        return rows, np.array([0.0, 128.0, 128.0])
    return rows * np.array([[219.0 / 255.0], [224.0 / 255.0], [224.0 / 255.0]]), np.array([16.0, 128.0, 128.0])


def yuv420_layer(
    size: tuple[int, int],
    values: Any,
    mask: Any,
    *,
    boxes: Sequence[Any] = (),
    caption: str | None = None,
    alpha: float = ALPHA,
    matrix: str = "bt601",
    full_range: bool = False,
) -> Yuv420Layer:
    """The overlay of `render_overlay` as a `Yuv420Layer` for planes of an even `size` (height,
    width) in a YUV `matrix` (`YUV_MATRICES`) and range."""
    height, width = int(size[0]), int(size[1])
    if height % 2 or width % 2:
        raise InputError(f"yuv420_layer: expected an even frame size, got {width} x {height}.")
    a, offset = yuv_matrix(matrix, full_range)
    # Under the heatmap keep = 1 - alpha, so the offsets' share is alpha * offset.
    tables = (_colour_table(float(alpha)).astype(np.float64) @ a.T + alpha * offset).astype(np.float32)
    heat = _display(values, mask)
    luma, chroma = _levels(heat, (height, width)), _levels(heat, (height // 2, width // 2))
    f32 = np.float32
    keep_y = np.full((height, width), f32(1.0 - alpha), dtype=f32)
    keep_c = np.full((height // 2, width // 2), f32(1.0 - alpha), dtype=f32)
    add_y = np.take(tables[:, 0], luma)
    add_u, add_v = np.take(tables[:, 1], chroma), np.take(tables[:, 2], chroma)
    drawn, colours = _drawing(width, height, boxes, caption)
    if drawn is not None:
        rows, cols = np.nonzero(drawn)  # the boxes' outlines and the caption: few pixels
        yuv = (colours[rows, cols].astype(np.float64) @ a.T + offset).astype(f32)
        keep_y[rows, cols] = 0.0
        add_y[rows, cols] = yuv[:, 0]
        # Each 2 x 2 block: its drawn pixels' colours weigh their share, the blend the rest.
        block, blocks = (rows // 2) * (width // 2) + cols // 2, keep_c.size
        share = (np.bincount(block, minlength=blocks) / 4.0).astype(f32).reshape(keep_c.shape)
        keep_c *= 1.0 - share
        for add, channel in ((add_u, 1), (add_v, 2)):
            add *= 1.0 - share
            add += (np.bincount(block, weights=yuv[:, channel], minlength=blocks) / 4.0).astype(f32).reshape(add.shape)
    return Yuv420Layer(keep_y=keep_y, add_y=add_y, keep_c=keep_c, add_u=add_u, add_v=add_v)


@functools.lru_cache(maxsize=16)
def _font(size: int) -> Any:
    """Pillow's built-in font at a size readable on the image (older Pillow: its fixed bitmap font)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1, or built without FreeType
        return ImageFont.load_default()


def overlay_png_bytes(result: Any) -> bytes:
    """A `LocalizationResult`'s overlay, encoded as PNG bytes (what `write_overlay_png` writes)."""
    from PIL import Image

    caption = (f"sounding {result.score:.3f}" if result.sounding
               else f"not sounding {result.score:.3f}") + f" (detection {result.detection_threshold:.3f})"
    pixels = render_overlay(result.rgb, result.map, result.mask, boxes=result.boxes, caption=caption)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def write_overlay_png(result: Any, path: str | Path) -> Path:
    """Write a `LocalizationResult`'s overlay as a PNG, atomically; returns the path."""

    path = Path(path)
    atomic_write_bytes(path, overlay_png_bytes(result))
    return path
