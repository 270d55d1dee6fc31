"""What the fast video path must not change: the overlay against the per-frame drawing it replaces,
the YUV blend against the RGB blend converted by an independent oracle, the maps' upsampling and
decisions against the plain products, and the array-API (device) path against the NumPy one."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from scenes import RATE, bell_frames, demo_calibration, sound_track

from vsslrt.eval._xp import use_fast_paths
from vsslrt.eval.interp import weight_matrix
from vsslrt.pipeline import overlay
from vsslrt.pipeline.calibrate import as_calibration
from vsslrt.pipeline.localize import Box, decide, upsample_map


def _reference_overlay(rgb, values, mask, boxes, caption, alpha=0.5):
    """The overlay as it was drawn per frame: blend, then draw boxes and caption on the image."""
    height, width = rgb.shape[:2]
    heat = overlay.display_map(values, mask).astype(np.float32)
    if heat.shape != (height, width):
        heat = np.asarray(Image.fromarray(heat, mode="F").resize((width, height), Image.BILINEAR))
    levels = np.clip(np.rint(heat * 255), 0, 255).astype(np.intp)
    table = (np.float32(alpha * 255.0) * overlay.jet(np.linspace(0.0, 1.0, 256))).astype(np.float32)
    blended = np.float32(1.0 - alpha) * rgb.astype(np.float32) + table[levels]
    image = Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    line = max(2, round(min(width, height) / 150))
    for box in boxes:
        draw.rectangle([box.x0, box.y0, max(box.x0, box.x1 - 1), max(box.y0, box.y1 - 1)], outline=(255, 255, 255),
                       width=line)
    if caption:
        font = overlay._font(max(12, min(width, height) // 40))
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        pad = max(4, (bottom - top) // 4)
        draw.rectangle([0, 0, right - left + 2 * pad, bottom - top + 2 * pad], fill=(0, 0, 0))
        draw.text((pad - left, pad - top), caption, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def _smooth_map(rng, shape=(224, 224)):
    return upsample_map(rng.random((7, 7)).astype(np.float32), shape)


BOXES = [Box(10, 20, 100, 91, 5, 0.9), Box(150, 101, 221, 200, 5, 0.8)]


@pytest.mark.parametrize("shape", [(224, 224, 3), (241, 321, 3)])
@pytest.mark.parametrize("boxes,caption", [((), None), (BOXES, None), (BOXES, "  1.20 s  sounding 0.300 / 0.134")])
def test_a_layer_applied_to_an_image_is_the_drawing_it_replaces_pixel_for_pixel(shape, boxes, caption):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, shape, dtype=np.uint8)
    values = _smooth_map(rng)
    mask = values > 0.5
    expected = _reference_overlay(rgb, values, mask, boxes, caption)
    np.testing.assert_array_equal(overlay.render_overlay(rgb, values, mask, boxes=boxes, caption=caption), expected)
    layer = overlay.overlay_layer(shape[:2], values, mask, boxes=boxes, caption=caption)
    other = rng.integers(0, 256, shape, dtype=np.uint8)  # one layer, any frame of that size
    np.testing.assert_array_equal(layer.apply(other), _reference_overlay(other, values, mask, boxes, caption))


def test_yuv_matrices_give_the_standard_values():
    # Limited range: black 16, white 235, neutral chroma 128; BT.601 and BT.709 red.
    for matrix in ("bt601", "bt709", "bt2020"):
        a, offset = overlay.yuv_matrix(matrix)
        np.testing.assert_allclose(a @ [0, 0, 0] + offset, [16, 128, 128], atol=1e-9)
        np.testing.assert_allclose(a @ [255, 255, 255] + offset, [235, 128, 128], atol=1e-9)
    a, offset = overlay.yuv_matrix("bt601")
    np.testing.assert_allclose(a @ [255, 0, 0] + offset, [81.481, 90.203, 240.0], atol=0.001)
    a, offset = overlay.yuv_matrix("bt709")
    np.testing.assert_allclose(a @ [255, 0, 0] + offset, [62.559, 102.336, 240.0], atol=0.001)
    a, offset = overlay.yuv_matrix("bt601", full_range=True)
    np.testing.assert_allclose(a @ [255, 255, 255] + offset, [255, 128, 128], atol=1e-9)


@pytest.mark.parametrize("matrix,full_range", [("bt601", False), ("bt709", False), ("bt601", True)])
def test_the_yuv_blend_is_the_rgb_overlay_in_yuv(matrix, full_range):
    """Oracle: draw the overlay in RGB, convert it to 4:2:0 (2 x 2 chroma means) with the matrix."""
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    values = _smooth_map(rng)
    mask = values > 0.5
    a, offset = overlay.yuv_matrix(matrix, full_range)

    def to_yuv420(image):
        yuv = image.astype(np.float64) @ a.T + offset
        chroma = yuv[..., 1:].reshape(112, 2, 112, 2, 2).mean(axis=(1, 3))
        return yuv[..., 0], chroma[..., 0], chroma[..., 1]

    source = [np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in to_yuv420(rgb)]
    layer = overlay.yuv420_layer((224, 224), values, mask, boxes=BOXES, caption="  1.20 s  sounding",
                                 matrix=matrix, full_range=full_range)
    out = [np.empty_like(p) for p in source]
    layer.apply(source, out)
    expected = to_yuv420(overlay.render_overlay(rgb, values, mask, boxes=BOXES, caption="  1.20 s  sounding"))
    # Luma: the rounding of the source planes and of the blend (<= 1.5 levels).
    assert np.abs(out[0] - expected[0]).max() <= 1.5
    # Chroma: the heatmap is coloured at half resolution; exact away from the mask's edges.
    for got, want in zip(out[1:], expected[1:]):
        error = np.abs(got - want)
        assert error.mean() < 1.0 and np.percentile(error, 95) < 2.0
    with pytest.raises(Exception, match="even frame size"):
        overlay.yuv420_layer((223, 224), values, mask)


def test_upsampling_is_the_plain_float64_product_under_the_blas_limit():
    rng = np.random.default_rng(3)
    for shape, size in (((7, 7), (224, 224)), ((14, 14), (224, 224)), ((7, 7), (241, 321))):
        raw = rng.random(shape).astype(np.float32)
        rows, cols = weight_matrix(shape[0], "bilinear", size[0]), weight_matrix(shape[1], "bilinear", size[1])
        expected = (rows @ raw.astype(np.float64) @ cols.T).astype(np.float32)
        np.testing.assert_array_equal(upsample_map(raw, size), expected)


def test_the_array_api_path_decides_exactly_as_the_numpy_path():
    """The generic path (what CuPy runs) on NumPy: maps, masks, scores and boxes identical."""
    cal = as_calibration(demo_calibration())
    rng = np.random.default_rng(4)
    for k in range(20):
        raw = (rng.random((7, 7)) * 0.3).astype(np.float32)
        for kwargs in ({}, {"map_size": "image", "gate": False}):
            fast = decide(raw, (320, 240), cal, **kwargs)
            with use_fast_paths(False):
                generic = decide(raw, (320, 240), cal, **kwargs)
            np.testing.assert_array_equal(np.asarray(fast[0]), np.asarray(generic[0]))
            np.testing.assert_array_equal(np.asarray(fast[1]), np.asarray(generic[1]))
            assert fast[2:] == generic[2:], k


def test_a_session_on_the_array_api_path_gives_the_numpy_results(localizer):
    """Through `run_prepared` and `StreamSession._decide` (ungated regions included)."""
    from vsslrt.pipeline.stream import Hysteresis, StreamSession

    frames, _ = bell_frames(12)
    track = sound_track()

    def run():
        band = Hysteresis.from_calibration(localizer.calibration, 0.5)  # raw and stable decisions differ
        session = StreamSession(localizer, fps=None, batch_size=4, buffer_seconds=10.0, hysteresis=band)
        session.push_audio(track, RATE)
        for k, frame in enumerate(frames):
            session.push_frame(frame, 0.5 * k)
        return session.poll() + session.finish()

    fast = run()
    with use_fast_paths(False):
        generic = run()
    assert [r.to_json() | {"latency_ms": 0} for r in fast] == [r.to_json() | {"latency_ms": 0} for r in generic]
    for a, b in zip(fast, generic):
        np.testing.assert_array_equal(a.mask, np.asarray(b.mask))
        np.testing.assert_array_equal(a.result.map, np.asarray(b.result.map))
