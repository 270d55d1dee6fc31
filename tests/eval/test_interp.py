"""Upsampling weights against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from vsslrt.eval.interp import source_coordinates, upsample, weight_matrix


def test_bilinear_align_corners_coordinates():
    coords = source_coordinates(7, "bilinear")
    assert coords[0] == 0.0 and coords[223] == 6.0
    assert coords[1] == pytest.approx(6 / 223)


def test_cv2_coordinates_are_pixel_centres_clamped():
    coords = source_coordinates(2, "cv2")
    # (x + 0.5) * 2 / 224 - 0.5 = (x + 0.5) / 112 - 0.5, clamped to [0, 1]
    assert coords[0] == 0.0 and coords[55] == 0.0  # -0.4955 and -0.0045 clamp to the first pixel
    assert coords[56] == pytest.approx(0.5 / 112)
    assert coords[111] == pytest.approx(111.5 / 112 - 0.5)
    assert coords[168] == 1.0 and coords[223] == 1.0


@pytest.mark.parametrize("interp", ["bilinear", "cv2"])
@pytest.mark.parametrize("n_in", [1, 2, 7, 14])
def test_weight_rows_are_two_tap_and_sum_to_one(interp, n_in):
    w = weight_matrix(n_in, interp)
    assert w.shape == (224, n_in)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    assert (np.count_nonzero(w, axis=1) <= 2).all()
    assert (w >= 0).all()


def test_2x2_bilinear_corners_and_centre():
    m = np.array([[[1.0, 2.0], [3.0, 5.0]]])
    out = upsample(m, "bilinear", xp=np, dtype=np.float64).reshape(224, 224)
    assert out[0, 0] == 1.0 and out[0, 223] == 2.0 and out[223, 0] == 3.0 and out[223, 223] == 5.0
    fy, fx = 111 / 223, 112 / 223
    expected = (1 - fy) * (1 - fx) * 1 + (1 - fy) * fx * 2 + fy * (1 - fx) * 3 + fy * fx * 5
    assert out[111, 112] == pytest.approx(expected, rel=0, abs=1e-14)


def test_2x2_cv2_replicates_edges_and_blends_inside():
    m = np.array([[[1.0, 2.0], [3.0, 5.0]]])
    out = upsample(m, "cv2", xp=np, dtype=np.float64).reshape(224, 224)
    np.testing.assert_array_equal(out[:56, :56], 1.0)  # top-left quadrant of clamped coordinates
    np.testing.assert_array_equal(out[168:, 168:], 5.0)
    fy = fx = 111.5 / 112 - 0.5
    expected = (1 - fy) * (1 - fx) * 1 + (1 - fy) * fx * 2 + fy * (1 - fx) * 3 + fy * fx * 5
    assert out[111, 111] == pytest.approx(expected, rel=0, abs=1e-14)


@pytest.mark.parametrize("interp", ["bilinear", "cv2"])
def test_matches_four_tap_formula_on_random_maps(interp):
    rng = np.random.default_rng(0)
    m = rng.random((3, 7, 5))
    out = upsample(m, interp, xp=np, dtype=np.float64).reshape(3, 224, 224)
    cy, cx = source_coordinates(7, interp), source_coordinates(5, interp)
    y0, x0 = np.floor(cy).astype(int), np.floor(cx).astype(int)
    y1, x1 = np.minimum(y0 + 1, 6), np.minimum(x0 + 1, 4)
    fy, fx = (cy - y0)[:, None], (cx - x0)[None, :]
    ref = (
        (1 - fy) * (1 - fx) * m[:, y0][:, :, x0]
        + (1 - fy) * fx * m[:, y0][:, :, x1]
        + fy * (1 - fx) * m[:, y1][:, :, x0]
        + fy * fx * m[:, y1][:, :, x1]
    )
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-14)


def test_224_maps_are_not_resampled_and_float32_is_kept():
    rng = np.random.default_rng(1)
    m = rng.random((2, 224, 224), dtype=np.float32)
    out = upsample(m, "bilinear", xp=np, dtype=np.float32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, m.reshape(2, -1))


def test_constant_map_stays_constant_after_rounding():
    m = np.full((1, 7, 7), 0.6, dtype=np.float32)
    for interp in ("bilinear", "cv2"):
        out = upsample(m, interp, xp=np, dtype=np.float32)
        np.testing.assert_array_equal(out, np.float32(0.6))


# --------------------------------------------------------------------------------------------------
# Paper mode: the reference's float32 arithmetic, bit for bit
# --------------------------------------------------------------------------------------------------

import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
from fractions import Fraction  # noqa: E402
from pathlib import Path  # noqa: E402

from vsslrt.eval import _fma, _fma_jit, _xp  # noqa: E402
from vsslrt.eval.interp import reference_taps, upsample_reference  # noqa: E402

FIXTURE = Path(__file__).with_name("fixtures") / "reference_upsampling.json"


def _generic(maps, interp):
    """The array-API path (the one CuPy runs), on NumPy."""
    import array_api_compat

    with _xp.use_fast_paths(False):
        return np.asarray(upsample_reference(maps, interp, xp=array_api_compat.array_namespace(maps)))


def _both_paths(maps, interp):
    fast = upsample_reference(maps, interp, xp=np).copy()
    generic = _generic(maps, interp)
    np.testing.assert_array_equal(fast.view(np.uint32), generic.view(np.uint32))
    return fast.reshape(len(maps), 224, 224)


def _sha(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()


def _recorded():
    data = json.loads(FIXTURE.read_text())
    for name, case in data["cases"].items():
        raw = np.array(case["bits"], dtype=np.uint32).view(np.float32).reshape(case["shape"])
        yield pytest.param(raw, case, id=name)


@pytest.mark.parametrize("raw,case", list(_recorded()))
def test_reference_upsampling_equals_recorded_torch_and_opencv(raw, case):
    """Outputs of torch 2.14 (AVX2 build) F.interpolate(bilinear, align_corners=True) and OpenCV 5.1
    cv2.resize(INTER_LINEAR, IPP on), recorded as sha256 of the float32 bytes: fast and generic paths."""
    bilinear = _both_paths(raw[None], "bilinear")[0]
    linear = _both_paths(raw[None], "cv2")[0]
    assert _sha(bilinear) == case["torch_bilinear_sha256"], bilinear[[111, 223, 5], [112, 223, 200]]
    assert _sha(linear) == case["cv2_linear_sha256"], linear[[111, 223, 5], [112, 223, 200]]


def _torch_fuses() -> str | None:
    torch = pytest.importorskip("torch")
    capability = torch.backends.cpu.get_cpu_capability()
    if platform.machine().lower() not in ("x86_64", "amd64") or capability not in ("AVX2", "AVX512"):
        return f"torch runs its {capability} kernel on {platform.machine()}: the fused (AVX2/AVX-512) rounding is not live here"
    return None


def _maps_for_live_checks(size):
    rng = np.random.default_rng(size)
    return {
        "random": rng.random((6, size, size), dtype=np.float32),
        "cosine": (rng.random((6, size, size), dtype=np.float32) * 2 - 1).astype(np.float32),
        "ties": (rng.integers(0, 9, size=(6, size, size)) / 8).astype(np.float32),
        "near-ties": (np.float32(0.5) + rng.integers(0, 3, size=(6, size, size)) * np.float32(2**-24)).astype(np.float32),
        "wide-range": (rng.random((6, size, size)) * 10.0 ** rng.integers(-9, 1, size=(6, size, size))).astype(np.float32),
    }


@pytest.mark.parametrize("size", [7, 14])
def test_reference_bilinear_equals_live_torch(size):
    reason = _torch_fuses()
    if reason:
        pytest.skip(reason)
    import torch

    for kind, maps in _maps_for_live_checks(size).items():
        want = torch.nn.functional.interpolate(torch.from_numpy(maps)[:, None], size=(224, 224), mode="bilinear",
                                               align_corners=True).numpy()[:, 0]
        got = _both_paths(maps, "bilinear")
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (kind, int((got != want).sum()))


@pytest.mark.parametrize("size", [7, 14])
def test_reference_cv2_equals_live_opencv(size):
    cv2 = pytest.importorskip("cv2")
    if not cv2.ipp.useIPP():
        pytest.skip("OpenCV runs without Intel IPP here: its own INTER_LINEAR code rounds differently")
    for kind, maps in _maps_for_live_checks(size).items():
        want = np.stack([cv2.resize(m, (224, 224), interpolation=cv2.INTER_LINEAR) for m in maps])
        got = _both_paths(maps, "cv2")
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (kind, int((got != want).sum()))


def test_reference_weights_are_float32_as_the_kernels_compute_them():
    lower, upper, w0, w1 = reference_taps(7, "bilinear")
    assert w0.dtype == w1.dtype == np.float32
    scale = np.float32(6) / np.float32(223)
    assert lower[100] == 2 and w1[100] == np.float32(np.float32(scale * np.float32(100)) - np.float32(2))  # src 2.69
    assert lower[223] == 6 and upper[223] == 6  # the last index reads one pixel
    lower, upper, w0, w1 = reference_taps(7, "cv2")
    assert (lower[:16] == 0).all() and (w1[:16] == 0).all()  # clamped left edge
    assert (lower[208:] == 6).all() and (upper[208:] == 6).all() and (w1[208:] == 0).all()
    assert w1[16] == np.float32(1 / 64)


def test_reference_keeps_224_maps_and_float32_output():
    m = np.random.default_rng(4).random((2, 224, 224), dtype=np.float32)
    out = upsample_reference(m, "bilinear", xp=np)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, m.reshape(2, -1))


def test_tiny_values_take_the_exact_path():
    """Nonzero values below 2**-30 could give float32-subnormal results, where the fast midpoint test
    does not apply; such chunks run the TwoSum rule everywhere and still agree with the recorded rule."""
    rng = np.random.default_rng(5)
    maps = (rng.random((3, 7, 7)) * 1e-36).astype(np.float32)
    assert _fma.needs_exact_path(maps, xp=np)
    for interp in ("bilinear", "cv2"):
        _both_paths(maps, interp)  # fast == generic
        lower, upper, w0, w1 = reference_taps(7, interp)
        m = maps[0]
        rows = slice(8, 40)  # a band crossing a source row: exact rational arithmetic is slow
        if interp == "bilinear":
            wide = _fma_exact(m[:, lower], w0, m[:, upper] * w1)
            want = _fma_exact(wide[lower[rows]], w0[rows, None], wide[upper[rows]] * w1[rows, None])
        else:
            wide = _fma_exact(m[:, upper] - m[:, lower], w1, m[:, lower])
            want = _fma_exact(wide[upper[rows]] - wide[lower[rows]], w1[rows, None], wide[lower[rows]])
        got = upsample_reference(maps, interp, xp=np).reshape(3, 224, 224)[0, rows]
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def _fma_exact(x, y, z):
    """round_f32(x * y + z) with exact rational arithmetic (slow; small arrays only)."""
    x, y, z = np.broadcast_arrays(*(np.asarray(a, dtype=np.float32) for a in (x, y, z)))
    out = np.empty(x.shape, np.float32)
    for idx in np.ndindex(x.shape):
        out[idx] = _round_f32(Fraction(float(x[idx])) * Fraction(float(y[idx])) + Fraction(float(z[idx])))
    return out


def _round_f32(v: Fraction) -> np.float32:
    """Round a rational to the nearest float32, ties to even (by bracketing its float32 neighbours)."""
    guess = np.float32(float(v))  # within one float32 ulp of the answer
    candidates = {guess, np.nextafter(guess, np.float32(np.inf)), np.nextafter(guess, np.float32(-np.inf))}
    def key(c):
        return (abs(Fraction(float(c)) - v), int(np.array(c).view(np.uint32)) & 1)
    return min(candidates, key=key)


def test_fma32_decides_float32_midpoints_exactly():
    """x * y + z whose float64 rounding lands exactly on a float32 midpoint while the exact value does
    not: rounding twice (to float64, then float32) is one ulp off; both paths round once, as an FMA."""
    u = 2.0**-23
    # v = (1 + u) + 2**-24 (1 + u)(1 - u) = 1 + u + 2**-24 - 2**-70: just below the midpoint
    # 1 + u + 2**-24, to which float64 rounds; ties-to-even would then give 1 + 2u.
    x = np.array([1 + u, -(1 + u), 1.0, 0.75], np.float32)
    y = np.array([2**-24 * (1 - u), 2**-24 * (1 - u), 2**-24, 2**-10], np.float32)
    z = np.array([1 + u, -(1 + u), 1.0, 3.0], np.float32)
    want = _fma_exact(x, y, z)
    twice = (x.astype(np.float64) * y + z).astype(np.float32)
    assert want[0] == np.float32(1 + u) and twice[0] == np.float32(1 + 2 * u)  # a real double-rounding case
    assert want[2] == np.float32(1.0)  # exactly on the midpoint: ties to even
    out = np.empty(4, np.float32)
    _fma_jit.fma32(x, y, z, out)
    np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32))
    np.testing.assert_array_equal(np.asarray(_fma.fma32_exact(x, y, z, xp=np)).view(np.uint32), want.view(np.uint32))
    rng = np.random.default_rng(6)
    xs, ys, zs = (rng.standard_normal(300).astype(np.float32) * np.float32(s) for s in (1.0, 2**-20, 1.0))
    got = np.empty(300, np.float32)
    _fma_jit.fma32(xs, ys, zs, got)
    np.testing.assert_array_equal(got, _fma_exact(xs, ys, zs))
