"""Per-sample measurements of one batch, vectorised over samples (the functional core).

`batch_scalars` turns a batch of raw maps into per-sample scalars only: IoU with the GT at every
threshold column, pIA of each negative, IoU of each map pair, raw max/min, GT size. Reductions to
metrics happen later (`_reduce.py`) on the merged, id-sorted scalars, so any split of the data into
batches, chunks or shards gives the same numbers.

How a chunk is measured: the thresholds of every column form one (B, T) array (the median and
adaptive ones from a selection on the positive map, the others constant); the four maps (B, N)
are compared with it into one (B, 4, T, N) mask (bit-packed on NumPy); the masks are then counted,
intersected with the GT and intersected pairwise (the six map pairs) with a handful of array
operations, without looping over samples, pixels or the threshold grid in Python.

Numerical conventions (shared with the reference code, which works on float32 maps): in fixed mode
maps are upsampled in float64 and rounded once to the working dtype (float32 for float32 inputs); in
paper mode float32 maps are upsampled with the reference's own float32 arithmetic
(`interp.upsample_reference`), so that they binarise as the reference's do; every threshold is cast
to the working dtype before the strict comparison `value > t`; OGL mixtures and min-max
normalisation run in the working dtype; IoU, pIA and everything after are float64.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vsslrt.eval import _xp
from vsslrt.eval.config import N_PIXELS, EvalConfig
from vsslrt.eval.interp import upsample, upsample_reference
from vsslrt.eval.keys import CONDITIONS, NEGATIVES, PAIRS

OGL_MAP_WEIGHT = 0.4
OGL_OBJ_WEIGHT = 0.6


def working_dtype(arrays: list[Any], *, xp: Any) -> Any:
    """float32 for float32 (or narrower) maps, float64 for float64 maps."""
    return xp.result_type(*(a.dtype for a in arrays), xp.float32)


def batch_scalars(
    raw: Mapping[str, Any], gt: Any, obj: Any, config: EvalConfig, *, xp: Any, gt_full: Any = None
) -> dict[str, Any]:
    """All per-sample scalars of one chunk.

    Args:
        raw: condition -> raw maps (B, h, w), already validated.
        gt: (B, 224, 224) ground truth (bool or 0/1).
        obj: (B, h', w') raw object maps or None.
        config: what to measure.
        gt_full: for consensus-weighted GT (Flickr, C1), the (B, 224, 224) pixels of weight 1; the
            other `gt` pixels weigh 0.5 in every IoU. None: `gt` is binary.
        xp: the array namespace.

    Returns:
        Name -> per-sample array on the input's device: `gt_pixels` (B,), `max`/`min` (B, 4),
        `thr` (B, 2) = (t_med, t_adap), `iou` (B, T), `pia` (B, 3, T), `pair_iou` (B, 6, Tp); the
        same with suffix `_ogl` when obj is given; `sweep_iou` (B, K), `sweep_pia` (B, 3, K) with
        a sweep. IoUs are raw: NaN where both the GT and the binary map are empty.
    """
    b = int(raw["pos"].shape[0])
    dtype = working_dtype([raw[c] for c in CONDITIONS] + ([obj] if obj is not None else []), xp=xp)
    ground = xp.reshape(gt, (b, N_PIXELS))
    if not xp.isdtype(ground.dtype, "bool"):
        ground = ground != 0
    ground_mask = _xp.as_mask(ground, xp=xp)  # (B, 1, ...)
    g = _xp.count_true(ground_mask, xp=xp)[:, 0]
    full_mask = None if gt_full is None else _xp.as_mask(xp.reshape(gt_full, (b, N_PIXELS)), xp=xp)

    out: dict[str, Any] = {"gt_pixels": g}
    resample = _resampler(config, dtype, xp)
    up = {"pos": resample(raw["pos"], config.interp, "up:pos")}
    for neg in NEGATIVES:
        up[neg] = resample(raw[neg], config.negative_interp, f"up:{neg}")

    columns = config.columns
    flat = {c: xp.reshape(raw[c], (b, -1)) for c in CONDITIONS}
    out.update(
        _family(
            up,
            ground_mask,
            g,
            columns,
            (config.pair_start, len(columns)),
            config.constant_values(columns),
            dtype,
            xp,
            raw_rows=flat,
            full_mask=full_mask,
        )
    )

    if obj is not None:
        obj_flat = xp.reshape(obj, (b, -1))
        out["obj_range"] = xp.stack(
            [xp.astype(xp.max(obj_flat, axis=1), xp.float64), xp.astype(xp.min(obj_flat, axis=1), xp.float64)], axis=1
        )
        q = resample(obj, config.interp, "up:obj")
        mixed = _ogl_maps(up, q, config.protocol, dtype, xp)
        ogl_columns = config.ogl_columns
        family = _family(
            mixed, ground_mask, g, ogl_columns, config.ogl_pair_columns, config.constant_values(ogl_columns), dtype, xp,
            full_mask=full_mask,
        )
        out.update({f"{name}_ogl": value for name, value in family.items()})

    if config.sweep is not None:
        full = None if gt_full is None else xp.reshape(gt_full, (b, N_PIXELS))
        out.update(_sweep(up, ground, g, config.sweep, dtype, xp, full=full))
    return out


def _resampler(config: EvalConfig, dtype: Any, xp: Any):
    """maps, interp, buffer tag -> (B, N) upsampled rows in `dtype`.

    paper mode on float32 maps: the reference's float32 arithmetic (Q10 kept, its rounding too);
    otherwise (fixed mode, float64 maps) the float64 weights rounded once.
    """
    if config.protocol == "paper" and dtype == xp.float32:
        return lambda maps, interp, tag: upsample_reference(maps, interp, xp=xp, out_tag=tag)
    return lambda maps, interp, tag: upsample(maps, interp, xp=xp, dtype=dtype, out_tag=tag)


def _ogl_maps(up: Mapping[str, Any], q: Any, protocol: str, dtype: Any, xp: Any) -> dict[str, Any]:
    """The OGL maps: 0.4 map + 0.6 obj per condition (Q11).

    paper: raw mixtures, as the reference. fixed: min-max every map and the object map, mix, and
    min-max the mixture. The NumPy path writes into per-thread buffers (`_xp.scratch`) with the
    same rounded operations in the same order.
    """
    w_map = xp.asarray(OGL_MAP_WEIGHT, dtype=dtype)
    w_obj = xp.asarray(OGL_OBJ_WEIGHT, dtype=dtype)
    fast = _xp.fast(xp)
    obj_term = q if protocol == "paper" else _minmax(q, xp, tag="norm:obj")
    if fast:
        import numpy as np

        weighted_obj = np.multiply(obj_term, w_obj, out=_xp.scratch("mix:obj", q.shape, dtype))
    else:
        weighted_obj = w_obj * obj_term
    mixed = {}
    for c in CONDITIONS:
        if protocol == "paper":
            if fast:
                mix = np.multiply(up[c], w_map, out=_xp.scratch(f"mix:{c}", q.shape, dtype))
            else:
                mix = w_map * up[c]
            mix += weighted_obj
            mixed[c] = mix
        else:
            mix = _minmax(up[c], xp, tag=f"norm:{c}")
            mix *= w_map
            mix += weighted_obj
            mixed[c] = _minmax(mix, xp, tag=f"mix:{c}")
    return mixed


def _minmax(rows: Any, xp: Any, *, tag: str | None = None) -> Any:
    """Per-row (x - min) / (max - min) in the rows' dtype; a constant row becomes zeros.

    With `tag`, the NumPy path writes into that per-thread buffer (valid until the next chunk).
    """
    lo = xp.min(rows, axis=1, keepdims=True)
    hi = xp.max(rows, axis=1, keepdims=True)
    span = hi - lo
    flat = span == 0
    divisor = xp.where(flat, xp.ones_like(span), span)
    if tag is not None and _xp.fast(xp):
        import numpy as np

        scaled = np.subtract(rows, lo, out=_xp.scratch(tag, rows.shape, rows.dtype))
        np.divide(scaled, divisor, out=scaled)
        if flat.any():
            scaled[flat[:, 0]] = 0
        return scaled
    scaled = (rows - lo) / divisor
    if bool(xp.any(flat)):
        scaled = xp.where(flat, xp.zeros_like(scaled), scaled)
    return scaled


def _ratio(num: Any, den: Any, xp: Any) -> Any:
    """num / den in float64 (exactly Python's int / int), with den == 0 left for the caller."""
    den_safe = xp.where(den == 0, xp.ones_like(den), den)
    return xp.astype(num, xp.float64) / xp.astype(den_safe, xp.float64)


def _family(
    maps: Mapping[str, Any],
    ground_mask: Any,
    g: Any,
    columns: tuple[str, ...],
    pair_range: tuple[int, int],
    constants: Mapping[int, float],
    dtype: Any,
    xp: Any,
    raw_rows: Mapping[str, Any] | None = None,
    full_mask: Any = None,
) -> dict[str, Any]:
    """IoU, pIA and pair IoU of one family (WOGL or OGL) of upsampled maps (B, N).

    The four maps are binarised at every threshold column at once into one (B, 4, T, ...) mask;
    counts, the positive-GT overlaps and the six pair overlaps are then one operation each.

    With `raw_rows` (condition -> raw maps (B, h*w)) it also returns their per-sample `max` and
    `min`, taken right before the same map is binarised: for 224x224 inputs the raw rows are the
    maps themselves, so the chunk is read from memory once. The extremes double as the
    finiteness check of `Evaluator.update` (NaN propagates through max, inf shows).
    """
    pos = maps["pos"]
    b = int(pos.shape[0])
    highs: dict[str, Any] = {}
    lows: dict[str, Any] = {}

    def extremes(c: str) -> None:
        if raw_rows is not None:
            highs[c] = xp.astype(xp.max(raw_rows[c], axis=1), xp.float64)
            lows[c] = xp.astype(xp.min(raw_rows[c], axis=1), xp.float64)

    extremes("pos")
    # Upsampling is a convex combination: a non-negative raw map stays non-negative, which lets
    # the NumPy selection use the float bits as integer keys directly.
    nonnegative = raw_rows is not None and _xp.fast(xp) and bool(xp.all(lows["pos"] >= 0))
    k_med = N_PIXELS // 2
    g_eff = xp.where(g == 0, xp.full_like(g, k_med), g)
    t_med, t_adap = _xp.order_statistics(pos, k_med, N_PIXELS - g_eff, xp=xp, nonnegative=nonnegative)

    dev = _xp.device_of(pos)
    t = len(columns)
    thr = xp.empty((b, t), dtype=dtype, device=dev)
    for i, name in enumerate(columns):  # a handful of columns, each one set for the whole batch
        if name == "median":
            thr[:, i] = t_med
        elif name == "adaptive":
            thr[:, i] = t_adap
        else:
            thr[:, i] = xp.asarray(constants[i], dtype=dtype, device=dev)

    rows = []
    for c in CONDITIONS:
        if c != "pos":
            extremes(c)  # right before the map is binarised, while its chunk is in cache
        rows.append(maps[c])
    masks = _xp.binarize(rows, thr[:, :, None], xp=xp)  # (B, 4, T, ...): condition, threshold
    counts = _xp.count_true(masks, xp=xp)  # (B, 4, T)

    inter = _xp.count_both(masks[:, 0], ground_mask, xp=xp)  # pos & GT, (B, T)
    den = g[:, None] + counts[:, 0] - inter
    nan = xp.full(den.shape, float("nan"), dtype=xp.float64, device=dev)
    if full_mask is None:
        iou = xp.where(den == 0, nan, _ratio(inter, den, xp))
    else:  # consensus weights (C1): sum(B*G) / (sum(G) + |B outside G|), G = 1 on full, 0.5 elsewhere
        inter_full = _xp.count_both(masks[:, 0], full_mask, xp=xp)
        g_full = _xp.count_true(full_mask, xp=xp)[:, 0]
        num = 0.5 * xp.astype(inter + inter_full, xp.float64)  # halves of integers: exact
        den_w = 0.5 * xp.astype(g[:, None] + g_full[:, None], xp.float64) + xp.astype(counts[:, 0] - inter, xp.float64)
        iou = xp.where(den_w == 0, nan, num / xp.where(den_w == 0, xp.ones_like(den_w), den_w))
    pia = xp.astype(counts[:, 1:], xp.float64) / N_PIXELS  # (B, 3, T): silence, noise, offscreen

    start, stop = pair_range
    both = _xp.count_pairs(masks, _PAIR_A, _PAIR_B, start, stop, xp=xp)  # (B, 6, Tp)
    pair_counts = counts[:, :, start:stop]
    first = xp.take(pair_counts, xp.asarray(_PAIR_A, dtype=xp.int64, device=dev), axis=1)
    second = xp.take(pair_counts, xp.asarray(_PAIR_B, dtype=xp.int64, device=dev), axis=1)
    union = first + second - both
    # Both empty: 1. B empty and A not (or the reverse): 0 / |A| = 0, as the reference.
    pair_iou = xp.where(union == 0, xp.ones(union.shape, dtype=xp.float64, device=dev), _ratio(both, union, xp))

    ranges = {}
    if raw_rows is not None:
        ranges = {
            "max": xp.stack([highs[c] for c in CONDITIONS], axis=1),
            "min": xp.stack([lows[c] for c in CONDITIONS], axis=1),
        }
    return {
        **ranges,
        "thr": xp.astype(thr[:, :2], xp.float64),  # every column list starts with median, adaptive
        "iou": iou,
        "pia": pia,
        "pair_iou": pair_iou,
    }


# The six map pairs as indices into CONDITIONS (first and second map of each pair).
_PAIR_A = tuple(CONDITIONS.index(a) for a, _ in PAIRS)
_PAIR_B = tuple(CONDITIONS.index(b) for _, b in PAIRS)


def _sweep(
    maps: Mapping[str, Any], ground: Any, g: Any, grid: tuple[float, ...], dtype: Any, xp: Any, full: Any = None
) -> dict[str, Any]:
    """Positive IoU and negative pIA at every candidate threshold (WOGL maps).

    Each map row is sorted once and every candidate is located by a batched binary search, so the
    cost does not grow with the number of candidates. An empty GT gives IoU 0 (fixed-mode policy).
    """
    dev = _xp.device_of(maps["pos"])
    t = xp.asarray(list(grid), dtype=xp.float64, device=dev)
    t = xp.astype(t, dtype)
    pos = maps["pos"]
    neg_inf = xp.full(pos.shape, -float("inf"), dtype=dtype, device=dev)
    above = _xp.count_greater_sorted(xp.sort(pos, axis=1), t, xp=xp)
    inside = _xp.count_greater_sorted(xp.sort(xp.where(ground, pos, neg_inf), axis=1), t, xp=xp)
    den = g[:, None] + above - inside
    iou = xp.where(den == 0, xp.zeros(den.shape, dtype=xp.float64, device=dev), _ratio(inside, den, xp))
    if full is not None:  # consensus weights, as in `_family`
        inside_full = _xp.count_greater_sorted(xp.sort(xp.where(full, pos, neg_inf), axis=1), t, xp=xp)
        g_full = xp.astype(xp.count_nonzero(full, axis=1), xp.int64)
        num = 0.5 * xp.astype(inside + inside_full, xp.float64)
        den_w = 0.5 * xp.astype(g[:, None] + g_full[:, None], xp.float64) + xp.astype(above - inside, xp.float64)
        iou = xp.where(den_w == 0, xp.zeros_like(den_w), num / xp.where(den_w == 0, xp.ones_like(den_w), den_w))
    iou = xp.where(g[:, None] == 0, xp.zeros_like(iou), iou)
    pia = xp.stack(
        [
            xp.astype(_xp.count_greater_sorted(xp.sort(maps[neg], axis=1), t, xp=xp), xp.float64) / N_PIXELS
            for neg in NEGATIVES
        ],
        axis=1,
    )
    return {"sweep_iou": iou, "sweep_pia": pia}
