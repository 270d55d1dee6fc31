"""Overlay PNGs (protocol.md section 5.11): jet heat over the mask, a blue tint when nothing sounds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vsslrt.pipeline.localize import Localizer
from vsslrt.pipeline.overlay import display_map, jet, render_overlay, write_overlay_png


def test_jet_is_matplotlibs_jet():
    matplotlib = pytest.importorskip("matplotlib")
    values = np.linspace(0.0, 1.0, 256)
    np.testing.assert_allclose(jet(values), matplotlib.colormaps["jet"](values)[:, :3], atol=1e-12)


def test_display_map_zeroes_outside_and_min_maxes_inside():
    values = np.array([[0.1, 0.5], [0.7, 0.9]])
    out = display_map(values, values > 0.4)
    np.testing.assert_allclose(out, [[0.0, 0.0], [0.5, 1.0]])
    assert not display_map(values, np.zeros((2, 2), bool)).any()
    np.testing.assert_array_equal(display_map(values, values > 0.8), [[0, 0], [0, 1.0]])


def test_render_blends_with_alpha_half_and_tints_blue_when_nothing_survives():
    rgb = np.full((6, 8, 3), 100, np.uint8)
    values = np.zeros((6, 8))
    empty = render_overlay(rgb, values, np.zeros((6, 8), bool))
    expected = np.rint(0.5 * 100 + 0.5 * 255 * jet(np.zeros(1))[0]).astype(np.uint8)  # jet(0): dark blue
    assert (empty == expected).all() and expected[2] > expected[0]
    values[2, 3] = 1.0
    hot = render_overlay(rgb, values, values > 0.5)
    np.testing.assert_array_equal(hot[2, 3], np.rint(0.5 * 100 + 0.5 * 255 * jet(np.ones(1))[0]))
    # A map in another frame is resized to the image.
    assert render_overlay(rgb, np.ones((3, 4)), np.ones((3, 4), bool)).shape == (6, 8, 3)


def test_overlay_png_of_a_real_result_differs_when_sounding(engine, calibration_file, fit_pairs, tmp_path):
    image, audio = fit_pairs[2]
    doc = json.loads(calibration_file.read_text())
    with Localizer(engine, calibration_file, threads=1) as probe:
        score = probe.localize(image, audio).score
    pngs = {}
    for name, detection in (("sounding", score - 0.01), ("silent", score + 0.01)):
        doc["detection"]["threshold"] = detection
        doc["localization"]["threshold"] = score - 0.05
        with Localizer(engine, doc, threads=1) as loc:
            result = loc.localize(image, audio)
        assert result.sounding is (name == "sounding")
        pngs[name] = np.asarray(Image.open(write_overlay_png(result, tmp_path / f"{name}.png")))
        assert pngs[name].shape == (1024, 1024, 3)
        assert pngs[name].reshape(-1, 3).std(axis=0).max() > 5  # not a uniform picture
    changed = np.any(pngs["sounding"] != pngs["silent"], axis=-1)
    assert changed.mean() > 0.01
    # Silent: below the caption, every pixel is the image blended with jet(0).
    rgb = np.asarray(Image.open(image).convert("RGB")).astype(np.float64)
    tint = np.rint(0.5 * rgb + 0.5 * 255 * jet(np.zeros(1))[0]).astype(np.uint8)
    np.testing.assert_array_equal(pngs["silent"][200:], tint[200:])
