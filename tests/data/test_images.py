"""Image front-end: decoding, torch-equivalent bicubic resize, ImageNet normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from tests.data.conftest import write_image
from vsslrt.data.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    bicubic_matrix,
    decode_image,
    image_batch,
    load_images,
    preprocess_image,
    resize_bicubic,
    to_float_chw,
)
from vsslrt.errors import DataError


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def _torch_reference(torch, rgb: np.ndarray) -> np.ndarray:
    """ToTensor -> F.interpolate(bicubic, align_corners=False, antialias=False) -> Normalize."""
    x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div(255)[None]
    y = torch.nn.functional.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False, antialias=False)[0]
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return ((y - mean) / std).numpy()


@pytest.mark.parametrize("height, width", [(1024, 1024), (300, 500), (100, 50), (224, 224), (7, 9), (1, 3)])
def test_preprocess_matches_torch_interpolate(torch, height, width):
    rng = np.random.default_rng(height * 1000 + width)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    np.testing.assert_allclose(preprocess_image(rgb), _torch_reference(torch, rgb), atol=2e-5)
    float_image = to_float_chw(rgb)
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(float_image)[None], size=(224, 224), mode="bicubic", align_corners=False, antialias=False
    )[0].numpy()
    np.testing.assert_allclose(resize_bicubic(float_image), expected, atol=5e-6)


def test_real_is3_image_matches_torch(torch, is3_mini):
    rgb = decode_image(is3_mini / "images" / "lion_cat_872_cat.jpg")
    assert rgb.shape == (1024, 1024, 3) and rgb.dtype == np.uint8
    ours = preprocess_image(rgb)
    np.testing.assert_allclose(ours, _torch_reference(torch, rgb), atol=2e-5)


def test_no_clamp_overshoot_is_kept():
    # A hard edge: the cubic kernel's negative lobes overshoot [0, 1] and nothing clamps them.
    rgb = np.zeros((448, 448, 3), dtype=np.uint8)
    rgb[:, 224:] = 255
    out = resize_bicubic(to_float_chw(rgb))
    assert out.max() > 1.0 and out.min() < 0.0


def test_rows_of_the_resize_matrix_sum_to_one():
    for n_in in (1, 2, 7, 224, 1000):
        np.testing.assert_allclose(bicubic_matrix(n_in, 224).sum(axis=1), 1.0, atol=1e-6)


def test_batch_of_mixed_sizes_and_normalisation(tmp_path):
    a = write_image(tmp_path / "a.png", 32, 24, seed=1)
    b = write_image(tmp_path / "b.png", 50, 40, seed=2)
    batch = load_images([tmp_path / "a.png", tmp_path / "b.png"])
    assert batch.shape == (2, 3, 224, 224) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0], preprocess_image(a))
    np.testing.assert_array_equal(batch[1], preprocess_image(b))
    flat = np.full((10, 10, 3), 255, dtype=np.uint8)
    # A constant image stays constant up to float32 rounding of the kernel weights (as in torch).
    np.testing.assert_allclose(image_batch([flat])[0, :, 5, 5], (1.0 - IMAGENET_MEAN) / IMAGENET_STD, atol=1e-5)


def test_grayscale_and_rgba_become_rgb(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((5, 6), 100, dtype=np.uint8), mode="L").save(tmp_path / "g.png")
    Image.fromarray(np.full((5, 6, 4), 100, dtype=np.uint8), mode="RGBA").save(tmp_path / "r.png")
    assert decode_image(tmp_path / "g.png").shape == (5, 6, 3)
    assert decode_image(tmp_path / "r.png").shape == (5, 6, 3)


def test_missing_corrupt_and_truncated_images_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"nothere\.jpg: expected an image file, got no such file"):
        decode_image(tmp_path / "nothere.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(DataError, match=r"junk\.jpg: expected a readable image"):
        decode_image(tmp_path / "junk.jpg")
    write_image(tmp_path / "full.jpg", 64, 64, seed=3)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.jpg: expected a readable image.*truncated"):
        decode_image(tmp_path / "cut.jpg")


def test_an_image_at_the_model_size_skips_the_resize_bit_for_bit():
    """At 224 x 224 every tap weighs (0, 1, 0, 0) exactly: the shortcut equals the 4-tap passes."""
    from vsslrt.data.images import _resized

    rgb = np.random.default_rng(3).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    np.testing.assert_array_equal(preprocess_image(rgb).view(np.uint32), _resized(rgb, 224).view(np.uint32))
