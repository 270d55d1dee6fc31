"""vsslrt.head on NumPy and CuPy: the map formula, the multi-condition contraction, input checks."""

from __future__ import annotations

import numpy as np
import pytest

from vsslrt.errors import InputError
from vsslrt.head import similarity_maps, similarity_maps_multi
from vsslrt.models import MapHead


def _unit(rng, shape, axis):
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=axis, keepdims=True)


def _reference(visual, audio, head):
    # The definition, term by term, in float64.
    cos = np.einsum("nkchw,nkc->nkhw", visual.astype(np.float64), audio.astype(np.float64))
    return head.scale * cos.mean(axis=1) + head.offset


@pytest.mark.parametrize("head", [MapHead(1, 0.5, 0.5), MapHead(2, 0.5, 0.5), MapHead(1, 1.0, 0.0)])
def test_maps_match_the_definition(xp, head):
    rng = np.random.default_rng(0)
    visual = _unit(rng, (4, head.num_maps, 16, 5, 6), axis=2)
    audio = _unit(rng, (4, head.num_maps, 16), axis=2)
    maps = similarity_maps(xp.asarray(visual), xp.asarray(audio), head)
    assert type(maps) is type(xp.asarray(visual)) and maps.dtype == xp.float32
    got = np.asarray(maps.get() if hasattr(maps, "get") else maps)
    np.testing.assert_allclose(got, _reference(visual, audio, head), atol=1e-6, rtol=0)
    lo, hi = head.offset - head.scale, head.offset + head.scale
    assert got.min() >= lo - 1e-6 and got.max() <= hi + 1e-6


def test_multi_equals_separate_calls_with_broadcast_silence(xp):
    rng = np.random.default_rng(1)
    head = MapHead(2, 0.5, 0.5)
    visual = xp.asarray(_unit(rng, (3, 2, 8, 7, 7), axis=2))
    pos, noise, off = (xp.asarray(_unit(rng, (3, 2, 8), axis=2)) for _ in range(3))
    silence = xp.asarray(_unit(rng, (1, 2, 8), axis=2))  # one embedding for the whole run
    stacked = similarity_maps_multi(visual, [pos, silence, noise, off], head)
    assert stacked.shape == (4, 3, 7, 7)
    for i, audio in enumerate((pos, silence, noise, off)):
        single = similarity_maps(visual, audio, head)
        assert float(xp.max(xp.abs(stacked[i] - single))) <= 1e-6
    as_array = similarity_maps_multi(visual, xp.stack([pos, noise]), head)
    assert float(xp.max(xp.abs(as_array[1] - stacked[2]))) == 0.0


def test_fp16_embeddings_are_widened():
    rng = np.random.default_rng(2)
    head = MapHead(1, 1.0, 0.0)
    visual = _unit(rng, (2, 1, 512, 3, 3), axis=2)
    audio = _unit(rng, (2, 1, 512), axis=2)
    maps = similarity_maps(visual.astype(np.float16), audio.astype(np.float16), head)
    assert maps.dtype == np.float32
    np.testing.assert_allclose(maps, _reference(visual, audio, head), atol=2e-3)


@pytest.mark.parametrize(
    ("visual_shape", "audio_shape", "match"),
    [
        ((2, 1, 8, 7, 7), (2, 2, 8), r"expected shape \(2 or 1, 1, 8\)"),
        ((2, 1, 8, 7, 7), (3, 1, 8), r"got \(3, 1, 8\)"),
        ((2, 8, 7, 7), (2, 1, 8), r"visual embeddings: expected shape \(N, K=1, C, h, w\)"),
    ],
)
def test_shape_errors_name_the_input(visual_shape, audio_shape, match):
    with pytest.raises(InputError, match=match):
        similarity_maps(np.zeros(visual_shape, np.float32), np.zeros(audio_shape, np.float32), MapHead())


def test_empty_audio_list():
    with pytest.raises(InputError, match="at least one audio batch"):
        similarity_maps_multi(np.zeros((1, 1, 4, 2, 2), np.float32), [], MapHead())
