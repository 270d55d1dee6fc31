"""The similarity head on the device: cached embeddings -> similarity maps (NumPy or CuPy).

The exported encoders give L2-normalised embeddings: visual (N, K, C, h, w) and audio (N, K, C),
K = ``MapHead.num_maps``. The map of the published models is

    map[n, y, x] = scale * mean_k sum_c visual[n, k, c, y, x] * audio[n, k, c] + offset

(protocol.md section 4; scale/offset put EZ-VSL-style (cos + 1) / 2 maps on [0, 1]). It is formed
here rather than in the graph so that one visual pass serves every audio condition (positive,
silence, noise, offscreen): ``similarity_maps_multi`` contracts one visual batch with M audio
batches, one batched matrix product per condition.

The code uses only the array API (through ``array_api_compat``), so it runs unchanged on NumPy and
CuPy arrays and returns arrays of the input's kind on the input's device. It never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from array_api_compat import array_namespace

from vsslrt.errors import InputError
from vsslrt.models import MapHead

Array = Any


def _shape(x: Array) -> tuple[int, ...]:
    return tuple(int(d) for d in x.shape)


def _as_float32(xp, x: Array) -> Array:
    # fp16 embeddings (an fp16 engine without fp32 outputs) are widened: a 512-term dot product
    # accumulated in fp16 would lose about three decimal digits.
    return x if x.dtype == xp.float32 else xp.astype(x, xp.float32)


def _check_visual(visual: Array, head: MapHead) -> tuple[int, int, int, int, int]:
    shape = _shape(visual)
    if len(shape) != 5 or shape[1] != head.num_maps:
        raise InputError(
            f"visual embeddings: expected shape (N, K={head.num_maps}, C, h, w), got {shape}.",
            hint="pass the 'visual' output of the visual encoder of the same model",
        )
    return shape  # type: ignore[return-value]


def _check_audio(name: str, audio: Array, n: int, k: int, c: int) -> None:
    shape = _shape(audio)
    if len(shape) != 3 or shape[1:] != (k, c) or shape[0] not in (1, n):
        raise InputError(
            f"{name}: expected shape ({n} or 1, {k}, {c}) to match the visual embeddings, got {shape}.",
            hint="pass the 'audio' output of the audio encoder of the same model, one row per image "
            "(or a single row, which is broadcast)",
        )


def similarity_maps(visual: Array, audio: Array, head: MapHead) -> Array:
    """Similarity maps of N image/audio pairs.

    Args:
        visual: (N, K, C, h, w) L2-normalised visual embeddings.
        audio: (N, K, C) L2-normalised audio embeddings; (1, K, C) is broadcast to every image
            (e.g. the one silence embedding of a run).
        head: the model's map head (K, scale, offset).

    Returns:
        (N, h, w) float32 maps, on the reported scale of the model.
    """
    return similarity_maps_multi(visual, [audio], head)[0]


def similarity_maps_multi(visual: Array, audios: Sequence[Array] | Array, head: MapHead) -> Array:
    """Maps of one visual batch against M audio batches, in one batched contraction.

    This is ``einsum('nkchw,mnkc->mnhw')`` written as batched matrix products: for each condition m
    and image n, the (1, K*C) row of its audio embedding times the image's (K*C, h*w) visual
    features, so the maps are the same however the conditions and images are batched.

    Args:
        visual: (N, K, C, h, w) L2-normalised visual embeddings.
        audios: a sequence of M arrays of shape (N, K, C) or (1, K, C) (broadcast), or one stacked
            array of shape (M, N, K, C). Typical order: positive, silence, noise, offscreen.
        head: the model's map head.

    Returns:
        (M, N, h, w) float32 maps.
    """
    xp = array_namespace(visual)
    n, k, c, h, w = _check_visual(visual, head)
    if isinstance(audios, (list, tuple)):
        if not audios:
            raise InputError("audio embeddings: expected at least one audio batch, got none.")
        parts = []
        for i, audio in enumerate(audios):
            _check_audio(f"audio batch {i}", audio, n, k, c)
            parts.append(xp.broadcast_to(_as_float32(xp, audio), (n, k, c)))
        stacked = xp.stack(parts, axis=1)  # (N, M, K, C)
    else:
        shape = _shape(audios)
        if len(shape) != 4:
            raise InputError(
                f"audio embeddings: expected a stacked array of shape (M, {n}, {k}, {c}), got {shape}.",
                hint="stack the audio batches on a new first axis, or pass them as a list",
            )
        _check_audio("stacked audio embeddings (per condition)", audios[0], n, k, c)
        stacked = xp.permute_dims(xp.broadcast_to(_as_float32(xp, audios), (shape[0], n, k, c)), (1, 0, 2, 3))
    m = int(stacked.shape[1])
    vis = xp.reshape(_as_float32(xp, visual), (n, k * c, h * w))
    aud = xp.reshape(stacked, (n, m, k * c))
    # One product per condition, (N, 1, K*C) x (N, K*C, h*w): a condition's map must not depend on
    # which other conditions are formed with it, and BLAS picks a different kernel (and summation
    # order) for each number of rows M, which moves the last float32 digit and flips pixels at a
    # threshold. Per row the product is the same whatever M and N are.
    dots = xp.stack([xp.matmul(aud[:, i : i + 1, :], vis)[:, 0, :] for i in range(m)], axis=0)  # (M, N, h*w)
    # mean over k folded into the scale: one multiply-add on the small output.
    maps = dots * (head.scale / k) + head.offset
    return xp.reshape(maps, (m, n, h, w))
