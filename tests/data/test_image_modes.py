"""Every Pillow mode decodes to the documented 8-bit RGB, EXIF orientation is applied, and the header
check (`image_header`) catches cut-off and unsupported files without decoding good ones."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from tests.data.conftest import write_image
from vsslrt.data.images import decode_image, image_header, preprocess_image, to_rgb
from vsslrt.errors import DataError


def _grey16(seed: int = 0, shape=(7, 9)) -> np.ndarray:
    values = np.random.default_rng(seed).integers(0, 65536, shape, dtype=np.uint16)
    values.flat[:4] = [0, 65535, 257 * 128, 128]  # the ends of the range and the rounding edge
    return values


def _pillow_16_to_8(img: Image.Image) -> np.ndarray:
    """Pillow's own arithmetic: I-mode point v / 257 + 0.5 (truncated: rounds to nearest), then L."""
    out = img.convert("I").point(lambda v: v * (1 / 257) + 0.5).convert("L").convert("RGB")
    return np.asarray(out)


def test_sixteen_bit_png_scales_by_the_full_range_instead_of_clipping(tmp_path):
    values = _grey16()
    Image.fromarray(values).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as img:
        assert img.mode == "I;16"
        clipped = np.asarray(img.convert("RGB"))
        expected = _pillow_16_to_8(img)
    ours = decode_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(ours, expected)
    np.testing.assert_array_equal(ours[..., 0], np.round(values * (255 / 65535)).astype(np.uint8))
    assert (clipped == 255).mean() > 0.9 and ours.mean() < 200  # what convert('RGB') alone gives


def test_sixteen_bit_copy_of_an_8bit_image_decodes_to_the_same_model_input(tmp_path):
    grey = np.random.default_rng(1).integers(0, 256, (40, 30), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.tif")
    eight = decode_image(tmp_path / "g8.png")
    np.testing.assert_array_equal(decode_image(tmp_path / "g16.png"), eight)
    np.testing.assert_array_equal(decode_image(tmp_path / "g16.tif"), eight)
    np.testing.assert_array_equal(preprocess_image(decode_image(tmp_path / "g16.png")), preprocess_image(eight))


@pytest.mark.parametrize("mode", ["I;16", "I;16L", "I;16B", "I"])
def test_every_sixteen_bit_layout_decodes_alike(mode):
    values = _grey16(2)
    if mode == "I":
        img = Image.fromarray(values.astype(np.int32))
    else:
        dtype = ">u2" if mode == "I;16B" else "<u2"
        img = Image.frombytes(mode, values.shape[::-1], values.astype(dtype).tobytes())
    assert img.mode == mode
    np.testing.assert_array_equal(np.asarray(img).astype(np.int64), values)
    np.testing.assert_array_equal(to_rgb(img), _pillow_16_to_8(img))


def test_integer_image_outside_sixteen_bits_is_refused(tmp_path):
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(tmp_path / "big.tif")
    with pytest.raises(DataError, match=r"^\S*big\.tif: expected a 32-bit integer image to hold 16-bit values in \[0, 65535\], got \[0, 70000\]"):
        decode_image(tmp_path / "big.tif")
    Image.fromarray(np.array([[0, 65535]], dtype=np.int32)).save(tmp_path / "ok.tif")
    np.testing.assert_array_equal(decode_image(tmp_path / "ok.tif")[0, :, 0], [0, 255])


def test_float_images_in_unit_range_are_scaled_and_in_byte_range_kept(tmp_path):
    rng = np.random.default_rng(3)
    unit = rng.random((6, 8), dtype=np.float32)
    unit.flat[:2] = [0.0, 1.0]
    img = Image.fromarray(unit)
    assert img.mode == "F"
    expected = np.asarray(img.point(lambda v: v * 255).convert("L").convert("RGB"))
    np.testing.assert_array_equal(to_rgb(img), expected)
    assert to_rgb(img).max() == 255  # convert('RGB') alone makes this image black
    byte_range = Image.fromarray(unit * 200 + 20)
    np.testing.assert_array_equal(to_rgb(byte_range), np.asarray(byte_range.convert("RGB")))
    img.save(tmp_path / "f.tif")
    np.testing.assert_array_equal(decode_image(tmp_path / "f.tif"), expected)
    for bad, shown in ((np.array([[0.0, np.nan]], np.float32), "NaN or infinity"), (np.array([[-1.0, 300.0]], np.float32), r"\[-1, 300\]")):
        with pytest.raises(DataError, match=rf"expected a float image with values in \[0, 1\] or \[0, 255\], got {shown}"):
            to_rgb(Image.fromarray(bad))


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "LA", "PA", "CMYK", "YCbCr", "RGBX", "HSV"])
def test_eight_bit_modes_decode_exactly_as_convert_rgb(mode):
    rgb = np.random.default_rng(4).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    base = Image.fromarray(rgb)
    img = base.convert("P").convert("PA") if mode == "PA" else base.convert(mode)
    if mode in ("RGBA", "LA", "PA"):  # a real alpha channel: it is dropped, the stored colours kept
        alpha = np.random.default_rng(5).integers(0, 256, (9, 11), dtype=np.uint8)
        img.putalpha(Image.fromarray(alpha))
    assert img.mode == mode
    np.testing.assert_array_equal(to_rgb(img), np.asarray(img.convert("RGB")))


@pytest.mark.parametrize("name, mode", [("l.png", "L"), ("p.png", "P"), ("rgba.png", "RGBA"), ("la.png", "LA"), ("one.png", "1"),
                                         ("cmyk.jpg", "CMYK"), ("rgb.jpg", "RGB"), ("rgb.png", "RGB")])
def test_files_of_ordinary_modes_decode_as_before(tmp_path, name, mode):
    rgb = np.random.default_rng(6).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    img = Image.fromarray(rgb).convert(mode)
    if mode in ("RGBA", "LA"):
        img.putalpha(Image.fromarray(np.arange(120, dtype=np.uint8).reshape(12, 10) * 2))
    img.save(tmp_path / name)
    with Image.open(tmp_path / name) as reopened:
        assert reopened.mode == mode
        expected = np.asarray(reopened.convert("RGB"))
    np.testing.assert_array_equal(decode_image(tmp_path / name), expected)


def test_palette_with_transparency_decodes_without_a_warning(tmp_path):
    rgb = np.random.default_rng(7).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    img = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    img.info["transparency"] = bytes([0, 128] + [255] * 6)  # per-entry alpha, as PNG tRNS stores it
    img.save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as reopened, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert isinstance(reopened.info.get("transparency"), bytes)
        expected = np.asarray(reopened.convert("RGB"))
    assert any("Transparency" in str(w.message) for w in caught)  # Pillow's own path warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(decode_image(tmp_path / "p.png"), expected)


# (orientation, the transform that turns the stored pixels upright)
ORIENTATIONS = [
    (1, lambda a: a),
    (2, lambda a: a[:, ::-1]),
    (3, lambda a: a[::-1, ::-1]),
    (4, lambda a: a[::-1]),
    (5, lambda a: a.transpose(1, 0, 2)),
    (6, lambda a: np.rot90(a, k=-1)),
    (7, lambda a: a[::-1, ::-1].transpose(1, 0, 2)),
    (8, lambda a: np.rot90(a, k=1)),
]


@pytest.mark.parametrize("orientation, upright", ORIENTATIONS)
def test_exif_orientation_is_applied(tmp_path, orientation, upright):
    stored = np.random.default_rng(8).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "o.png", exif=exif)
    decoded = decode_image(tmp_path / "o.png")
    np.testing.assert_array_equal(decoded, np.ascontiguousarray(upright(stored)))


def test_header_check_reads_size_and_mode_and_catches_cut_files(tmp_path):
    for name in ("a.jpg", "a.png"):
        write_image(tmp_path / name, 40, 30, seed=9)
        assert image_header(tmp_path / name) == (40, 30, "RGB")
        data = (tmp_path / name).read_bytes()
        (tmp_path / f"cut-{name}").write_bytes(data[: len(data) * 2 // 3])
        with pytest.raises(DataError, match=rf"cut-{name.replace('.', '[.]')}: expected a readable image.*truncated"):
            image_header(tmp_path / f"cut-{name}")
        (tmp_path / f"padded-{name}").write_bytes(data + b"\x00" * 4096)  # trailing data after the end marker
        assert image_header(tmp_path / f"padded-{name}") == (40, 30, "RGB")
    Image.fromarray(_grey16()).save(tmp_path / "g16.png")
    assert image_header(tmp_path / "g16.png") == (9, 7, "I;16")
    with pytest.raises(DataError, match=r"nothere\.png: expected an image file, got no such file"):
        image_header(tmp_path / "nothere.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match=r"junk\.png: expected a readable image"):
        image_header(tmp_path / "junk.png")
