"""Per-sample reference oracle for `vsslrt.eval.evaluate`: docs/metrics.md written out as plain code.

The oracle is deliberately slow and literal. It walks the samples one at a time with ordinary Python
loops, upsamples each map with the per-pixel interpolation formulas, finds the median and adaptive
thresholds with a full sort, binarises with a strict `>`, and aggregates the per-sample values into
exactly the keys that docs/metrics.md defines for the chosen protocol. It is written from
docs/metrics.md and protocol.md (sections 5, 6 and 9) alone, so that the vectorised evaluator can be
held to an independent reading of the same specification.

Numerical conventions (chosen to follow the reference code, which works on float32 maps):

- fixed mode: upsampled values are computed in float64 from the input values and rounded once to the
  maps' dtype (float32 for float32 inputs);
- paper mode, float32 maps: the reference's own float32 arithmetic (protocol.md section 5.1 and
  docs/metrics.md, "Upsampling in paper mode"): PyTorch's bilinear align-corners kernel and OpenCV's
  INTER_LINEAR (through Intel IPP), two separable passes of float32 fused multiply-adds, written
  here pixel-grid-wise with an exact FMA of its own (round-to-odd in float64);
- every threshold is cast to the map's dtype before the strict comparison, as NumPy and PyTorch do
  when a float32 map is compared with a Python float;
- paper-mode OGL mixtures `0.4*map + 0.6*obj` are formed in the maps' dtype, as the reference's
  NumPy code forms them;
- IoUs, pIAs, means, trapezoids and F-scores are float64.
"""

from __future__ import annotations

import math

import numpy as np

SIDE = 224
N_PIXELS = SIDE * SIDE  # 50,176
NEGATIVES = ("silence", "noise", "offscreen")
CONDITIONS = ("pos",) + NEGATIVES
PAIRS = (
    ("pos", "silence"),
    ("pos", "noise"),
    ("pos", "offscreen"),
    ("silence", "noise"),
    ("silence", "offscreen"),
    ("noise", "offscreen"),
)
UNIVERSAL = ("max", "max10", "maxq3")
OGL_MAP_WEIGHT = 0.4
OGL_OBJ_WEIGHT = 0.6


# --------------------------------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------------------------------


def threshold_grid(protocol: str) -> np.ndarray:
    """The 21 abscissae of the AUC/AOC curves.

    `paper` reproduces the reference's `0.05 * i` (7 of the 21 values differ from `i / 20`);
    `fixed` uses the exact `i / 20`.
    """
    if protocol == "paper":
        return np.array([0.05 * i for i in range(21)], dtype=np.float64)
    return np.array([i / 20 for i in range(21)], dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# Upsampling to 224x224, one output pixel at a time (vectorised over the pixel grid only)
# --------------------------------------------------------------------------------------------------


def source_coordinate(x_out: int, n_in: int, interp: str) -> float:
    """Continuous source coordinate of output index `x_out` for an input axis of length `n_in`."""
    if interp == "bilinear":  # align-corners
        return x_out * (n_in - 1) / (SIDE - 1)
    if interp == "cv2":  # OpenCV INTER_LINEAR: pixel centres, edges replicated
        return min(max((x_out + 0.5) * n_in / SIDE - 0.5, 0.0), n_in - 1.0)
    raise ValueError(f"unknown interp {interp!r}")


def _axis_taps(n_in: int, interp: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output index: the lower source index, the upper source index and the upper weight."""
    coords = np.array([source_coordinate(x, n_in, interp) for x in range(SIDE)], dtype=np.float64)
    lower = np.floor(coords).astype(np.int64)
    upper = np.minimum(lower + 1, n_in - 1)
    frac = coords - lower
    return lower, upper, frac


def upsample(raw: np.ndarray, interp: str) -> np.ndarray:
    """Upsample one (h, w) map to 224x224; a map already 224x224 is returned unchanged.

    Each output pixel is the bilinear blend of its four source neighbours, evaluated in float64 and
    rounded once to the map's dtype.
    """
    raw = np.asarray(raw)
    out_dtype = np.promote_types(raw.dtype, np.float32)
    if raw.shape == (SIDE, SIDE):
        return raw.astype(out_dtype, copy=True)
    h, w = raw.shape
    y0, y1, fy = _axis_taps(h, interp)
    x0, x1, fx = _axis_taps(w, interp)
    src = raw.astype(np.float64)
    y0, y1, fy = y0[:, None], y1[:, None], fy[:, None]
    x0, x1, fx = x0[None, :], x1[None, :], fx[None, :]
    value = (
        (1 - fy) * (1 - fx) * src[y0, x0]
        + (1 - fy) * fx * src[y0, x1]
        + fy * (1 - fx) * src[y1, x0]
        + fy * fx * src[y1, x1]
    )
    return value.astype(out_dtype)


def fma_f32(x, y, z) -> np.ndarray:
    """round_f32(x * y + z), computed exactly: the float32 product is exact in float64; the float64
    sum is rounded to odd (TwoSum gives its exact error; an inexact sum with an even last bit moves
    one float64 ulp towards the exact value), and rounding that to float32 is then correct."""
    x, y, z = (np.asarray(a, dtype=np.float32).astype(np.float64) for a in (x, y, z))
    p = x * y
    s = p + z
    bp = s - p
    err = (p - (s - bp)) + (z - bp)
    even = (s.view(np.uint64) & np.uint64(1)) == 0
    s_odd = np.where((err != 0) & even, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return s_odd.astype(np.float32)


def reference_taps(n_in: int, interp: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per output index: (lower index, upper index, lower weight, upper weight), the weights float32.

    bilinear (PyTorch, align_corners=True): scale = f32(n - 1) / f32(223) in float32; src = f32(scale * x);
    lower = min(floor(src), n - 1); upper = lower + 1 below the last index, else lower;
    upper weight = clamp(src - lower, 0, 1), lower weight = 1 - upper weight, in float32.
    cv2 (OpenCV INTER_LINEAR, IPP): c = clamp((x + 0.5) * n / 224 - 0.5, 0, n - 1) in float64;
    lower = floor(c), upper = min(lower + 1, n - 1); fraction f = f32(c - lower) (the upper weight).
    """
    lower, upper = np.zeros(SIDE, np.int64), np.zeros(SIDE, np.int64)
    w_lo, w_hi = np.zeros(SIDE, np.float32), np.zeros(SIDE, np.float32)
    for x in range(SIDE):
        if interp == "bilinear":
            if n_in == SIDE:
                lo, hi, frac = x, x, np.float32(0)
            else:
                scale = np.float32(np.float32(n_in - 1) / np.float32(SIDE - 1))
                src = np.float32(scale * np.float32(x))
                lo = min(int(math.floor(src)), n_in - 1)
                hi = lo + 1 if lo < n_in - 1 else lo
                frac = np.float32(min(max(np.float32(src - np.float32(lo)), np.float32(0)), np.float32(1)))
        elif interp == "cv2":
            c = min(max((x + 0.5) * n_in / SIDE - 0.5, 0.0), n_in - 1.0)
            lo = int(math.floor(c))
            hi = min(lo + 1, n_in - 1)
            frac = np.float32(c - lo)
        else:
            raise ValueError(f"unknown interp {interp!r}")
        lower[x], upper[x], w_hi[x] = lo, hi, frac
        w_lo[x] = np.float32(np.float32(1) - frac)
    return lower, upper, w_lo, w_hi


def upsample_reference(raw: np.ndarray, interp: str) -> np.ndarray:
    """Upsample one float32 (h, w) map as the reference does in float32 (paper mode).

    Each pass computes, per output index with taps (lower, upper) and weights (w0, w1):
    bilinear `fma(v_lower, w0, f32(v_upper * w1))` (PyTorch's `t0 * w0 + t1 * w1`, contracted to an
    FMA by its vectorised CPU builds); cv2 `fma(f32(v_upper - v_lower), w1, v_lower)` (IPP's lerp).
    First along the width (every source row), then along the height.
    """
    raw = np.asarray(raw, dtype=np.float32)
    if raw.shape == (SIDE, SIDE):
        return raw.copy()
    h, w = raw.shape

    def one_pass(values: np.ndarray, lower, upper, w0, w1) -> np.ndarray:
        # values: (n_in, L) -> (224, L), interpolating along axis 0
        a, b = values[lower], values[upper]
        w0, w1 = w0[:, None], w1[:, None]
        if interp == "bilinear":
            return fma_f32(a, w0, (b * w1).astype(np.float32))
        return fma_f32((b - a).astype(np.float32), w1, a)

    wide = one_pass(raw.T, *reference_taps(w, interp)).T  # (h, 224)
    return one_pass(wide, *reference_taps(h, interp))  # (224, 224)


# --------------------------------------------------------------------------------------------------
# Thresholds and binarisation
# --------------------------------------------------------------------------------------------------


def median_threshold(up: np.ndarray) -> np.floating:
    """Value at index N//2 of the ascending sorted 224x224 map."""
    return np.sort(up, axis=None)[N_PIXELS // 2]


def adaptive_threshold(up: np.ndarray, gt: np.ndarray) -> np.floating:
    """sorted(map)[N - g], g = number of GT pixels (N//2 when the GT is empty)."""
    g = int(np.count_nonzero(gt))
    if g == 0:
        g = N_PIXELS // 2
    return np.sort(up, axis=None)[N_PIXELS - g]


def binarise(up: np.ndarray, threshold: float) -> np.ndarray:
    """Strict `value > t`, with t cast to the map's dtype (as a float32 map meets a Python float)."""
    return up > np.asarray(threshold).astype(up.dtype)


# --------------------------------------------------------------------------------------------------
# Per-sample measures
# --------------------------------------------------------------------------------------------------


def iou_with_gt(on: np.ndarray, gt: np.ndarray, protocol: str) -> float:
    """sum(B&G) / (sum(G) + sum(B&~G)).

    `paper`: an empty GT gives 0 when B is non-empty and 0/0 = NaN when B is empty too.
    `fixed`: an empty GT gives 0 whatever B is.
    """
    g = int(np.count_nonzero(gt))
    if g == 0 and protocol == "fixed":
        return 0.0
    inter = int(np.count_nonzero(on & gt))
    outside = int(np.count_nonzero(on & ~gt))
    denominator = g + outside
    if denominator == 0:
        return math.nan
    return inter / denominator


def pia_fraction(up_negative: np.ndarray, threshold: float) -> float:
    """Fraction of the image above the threshold (pIA as a fraction in [0, 1])."""
    return int(np.count_nonzero(binarise(up_negative, threshold))) / N_PIXELS


def pair_iou(a_on: np.ndarray, b_on: np.ndarray) -> float:
    """IoU of two binarised maps, first argument as listed in the pair name."""
    a_count = int(np.count_nonzero(a_on))
    b_count = int(np.count_nonzero(b_on))
    if b_count == 0 and a_count > 0:
        return 0.0
    if a_count == 0 and b_count == 0:
        return 1.0
    return int(np.count_nonzero(a_on & b_on)) / int(np.count_nonzero(a_on | b_on))


# --------------------------------------------------------------------------------------------------
# Aggregates (inputs are lists of per-sample floats; results on the 0-100 scale)
# --------------------------------------------------------------------------------------------------


def success_rate(ious: list[float], cut: float = 0.5) -> float:
    """100 x fraction of entries with IoU >= cut; NaN entries count as failures."""
    hits = sum(1 for v in ious if v >= cut)  # NaN >= cut is False
    return 100.0 * hits / len(ious)


def mean_x100(values: list[float]) -> float:
    """100 x arithmetic mean (NaN propagates)."""
    return 100.0 * float(np.mean(np.array(values, dtype=np.float64)))


def auc(ious: list[float], grid: np.ndarray) -> float:
    """100 x trapezoid of the fraction of entries with IoU >= x_i (NaN entries fail)."""
    values = np.array(ious, dtype=np.float64)
    curve = [np.count_nonzero(values >= x) / len(values) for x in grid]
    return 100.0 * float(np.trapezoid(curve, grid))


def aoc(pias: list[float], grid: np.ndarray) -> float:
    """100 x trapezoid of the fraction of entries with pIA (a fraction) <= x_i."""
    values = np.array(pias, dtype=np.float64)
    curve = [np.count_nonzero(values <= x) / len(values) for x in grid]
    return 100.0 * float(np.trapezoid(curve, grid))


def f_score(a: float, b: float) -> float:
    """2ab / (a + b); 0/0 is NaN."""
    if a + b == 0:
        return math.nan
    return 2.0 * a * b / (a + b)


def interactive(ious: list[float], groups: list[int], grid: np.ndarray) -> tuple[float, float]:
    """Group success: a group succeeds at x only when every member has IoU >= x.

    Returns (100 x mean over groups of the success at 0.5, 100 x trapezoid over the grid of the
    mean over groups of the success at x_i).
    """
    members: dict[int, list[float]] = {}
    for value, key in zip(ious, groups):
        members.setdefault(key, []).append(value)

    def group_rate(cut: float) -> float:
        return sum(1.0 for vals in members.values() if all(v >= cut for v in vals)) / len(members)

    ciou = 100.0 * group_rate(0.5)
    curve = [group_rate(x) for x in grid]
    return ciou, 100.0 * float(np.trapezoid(curve, grid))


def auroc(positives: list[float], negatives: list[float]) -> float:
    """P(positive > negative) + 0.5 P(positive == negative), over every pair."""
    total = 0.0
    for p in positives:
        for n in negatives:
            if p > n:
                total += 1.0
            elif p == n:
                total += 0.5
    return total / (len(positives) * len(negatives))


def minmax(up: np.ndarray) -> np.ndarray:
    """Per-sample min-max normalisation to [0, 1], in the map's dtype.

    A constant map has no range; it becomes all zeros.
    """
    lo, hi = up.min(), up.max()
    if hi == lo:
        return np.zeros_like(up)
    return (up - lo) / (hi - lo)


# --------------------------------------------------------------------------------------------------
# The oracle
# --------------------------------------------------------------------------------------------------


def oracle_max_values(pos, silence, noise, offscreen) -> dict[str, np.ndarray]:
    """Per-sample maxima of the raw (not upsampled) maps, per condition, as float64 arrays."""
    raw = {"pos": pos, "silence": silence, "noise": noise, "offscreen": offscreen}
    return {
        cond: np.array([float(np.max(np.asarray(m))) for m in maps], dtype=np.float64)
        for cond, maps in raw.items()
    }


def oracle_min_values(pos, silence, noise, offscreen) -> dict[str, np.ndarray]:
    """Per-sample minima of the raw maps, per condition, as float64 arrays."""
    raw = {"pos": pos, "silence": silence, "noise": noise, "offscreen": offscreen}
    return {
        cond: np.array([float(np.min(np.asarray(m))) for m in maps], dtype=np.float64)
        for cond, maps in raw.items()
    }


def oracle_evaluate(
    pos,
    silence,
    noise,
    offscreen,
    gt,
    *,
    obj=None,
    group=None,
    protocol: str = "fixed",
    thresholds: dict[str, float] | None = None,
    fixed: float = 0.5,
    interp: str = "bilinear",
) -> dict[str, float]:
    """Every metric of docs/metrics.md for one batch, computed sample by sample.

    Args:
        pos, silence, noise, offscreen: raw maps, (N, H, W).
        gt: (N, 224, 224) boolean ground truth.
        obj: optional raw object-saliency maps (N, H, W); enables the OGL keys.
        group: optional (N,) integer group ids; enables the interactive keys.
        protocol: "fixed" or "paper".
        thresholds: universal thresholds by name; `max`, `max10`, `maxq3` required in paper mode.
        fixed: the fixed threshold.
        interp: "bilinear" (align-corners) or "cv2" (in paper mode: positive and object maps only).

    Returns:
        The metric dictionary, keyed exactly as docs/metrics.md names the keys of the mode.
    """
    thresholds = dict(thresholds or {})
    maps = {
        "pos": np.asarray(pos),
        "silence": np.asarray(silence),
        "noise": np.asarray(noise),
        "offscreen": np.asarray(offscreen),
    }
    gt = np.asarray(gt).astype(bool)
    obj = None if obj is None else np.asarray(obj)
    group = None if group is None else [int(g) for g in np.asarray(group)]
    if protocol == "paper":
        missing = [name for name in UNIVERSAL if name not in thresholds]
        if missing:
            raise ValueError(f"paper mode needs the universal thresholds {missing}")
        return _paper(maps, gt, obj, group, thresholds, fixed, interp)
    if protocol == "fixed":
        return _fixed(maps, gt, obj, group, thresholds, fixed, interp)
    raise ValueError(f"unknown protocol {protocol!r}")


def _max_min_paper(maps) -> dict[str, float]:
    out = {}
    maxima = oracle_max_values(*(maps[c] for c in CONDITIONS))
    minima = oracle_min_values(*(maps[c] for c in CONDITIONS))
    suffix = {"pos": "", "silence": "_Silence", "noise": "_Noise", "offscreen": "_Offscreen"}
    for cond in CONDITIONS:
        s = suffix[cond]
        out[f"Max_Heatmap{s}"] = float(np.mean(maxima[cond]))
        out[f"Min_Heatmap{s}"] = float(np.mean(minima[cond]))
        out[f"Median_Max_Heatmap{s}"] = float(np.median(maxima[cond]))
        out[f"Median_Min_Heatmap{s}"] = float(np.median(minima[cond]))
    return out


# Paper-mode names: threshold variant -> key fragment, per family.
_PAPER_POS_SUFFIX = {"fixed": "05", "max": "max", "max10": "max10", "maxq3": "maxq3"}
_PAPER_NEG_NAME = {"silence": "Silence", "noise": "Noise", "offscreen": "OffScreen"}
_PAPER_NEG_SUFFIX = {
    "fixed": "",
    "median": "_ThrCIoU",
    "adaptive": "_ThrCIoU_Adap",
    "max": "_Max",
    "max10": "_Max10",
    "maxq3": "_MaxQ3",
}
_PAPER_PAIR_NAME = {
    ("pos", "silence"): "Pos_Silence",
    ("pos", "noise"): "Pos_Noise",
    ("pos", "offscreen"): "Pos_Offscreen",
    ("silence", "noise"): "Silence_Noise",
    ("silence", "offscreen"): "Silence_Offscreen",
    ("noise", "offscreen"): "Noise_Offscreen",
}
_PAPER_PAIR_SUFFIX = {
    "fixed": "",
    "adaptive": "_Adap",
    "max": "_Max",
    "max10": "_Max_10",
    "maxq3": "_Max_Q3",
}


def _paper_pia_key(neg: str, variant: str, ogl: bool) -> str:
    if neg == "offscreen" and variant == "adaptive":
        return "pIA_OffScreen_ThrCIoU_Adap_OGL" if ogl else "pIA_OffScreem_ThrCIoU_Adap"
    if ogl and neg == "noise" and variant == "fixed":
        return "pIA_Noise_OG_OGLL_OGL"
    key = f"pIA_{_PAPER_NEG_NAME[neg]}{_PAPER_NEG_SUFFIX[variant]}"
    return key + "_OGL" if ogl else key


def _paper_aoc_key(neg: str, variant: str, ogl: bool) -> str:
    name = _PAPER_NEG_NAME[neg]
    if neg == "offscreen" and variant in ("fixed", "median", "adaptive"):
        name = "Offscreen"
    key = f"AOC_{name}{_PAPER_NEG_SUFFIX[variant]}"
    return key + "_OGL" if ogl else key


def _paper(maps, gt, obj, group, thresholds, fixed, interp) -> dict[str, float]:
    n = maps["pos"].shape[0]
    grid = threshold_grid("paper")
    universal = {name: float(thresholds[name]) for name in UNIVERSAL}
    variants_fixed = {"fixed": float(fixed), **universal}  # constant thresholds, in key order
    families = [False] + ([True] if obj is not None else [])

    # Per-sample lists, per family (False = WOGL, True = OGL).
    pooled = {f: [] for f in families}  # Q1: t_med, fixed, max, max10, maxq3 per sample
    adaptive = {f: [] for f in families}
    const_lists = {f: {v: [] for v in variants_fixed} for f in families}
    pia = {f: {(c, v): [] for c in NEGATIVES for v in _PAPER_NEG_SUFFIX} for f in families}
    pair_lists = {False: {}, True: {}}

    # float32 maps are upsampled with the reference's float32 arithmetic; any float64 input keeps the
    # float64 formula (the reference never sees one).
    arrays = [maps[c] for c in CONDITIONS] + ([obj] if obj is not None else [])
    resample = upsample_reference if np.result_type(*arrays, np.float32) == np.float32 else upsample

    for i in range(n):
        # Q10: positive and object maps with the model's interpolation, negatives always cv2.
        up = {"pos": resample(maps["pos"][i], interp)}
        for neg in NEGATIVES:
            up[neg] = resample(maps[neg][i], "cv2")
        g = gt[i]
        for ogl in families:
            if ogl:
                # Q11: raw mixtures in the maps' dtype, no normalisation.
                q = resample(obj[i], interp)
                w_map = np.asarray(OGL_MAP_WEIGHT).astype(q.dtype)
                w_obj = np.asarray(OGL_OBJ_WEIGHT).astype(q.dtype)
                cur = {c: w_map * up[c] + w_obj * q for c in CONDITIONS}
            else:
                cur = up
            p = cur["pos"]
            t = {"median": median_threshold(p), "adaptive": adaptive_threshold(p, g), **variants_fixed}

            for variant in ("median", "fixed", "max", "max10", "maxq3"):
                pooled[ogl].append(iou_with_gt(binarise(p, t[variant]), g, "paper"))
            adaptive[ogl].append(iou_with_gt(binarise(p, t["adaptive"]), g, "paper"))
            for variant in variants_fixed:
                value = iou_with_gt(binarise(p, t[variant]), g, "paper")
                if not ogl and math.isnan(value):
                    value = 0.0  # Q12: WOGL fixed/universal lists replace NaN by 0
                const_lists[ogl][variant].append(value)

            for neg in NEGATIVES:
                for variant in _PAPER_NEG_SUFFIX:
                    pia[ogl][(neg, variant)].append(pia_fraction(cur[neg], t[variant]))

            pair_variants = ("fixed", "adaptive") if ogl else tuple(_PAPER_PAIR_SUFFIX)
            for a, b in PAIRS:
                for variant in pair_variants:
                    value = pair_iou(binarise(cur[a], t[variant]), binarise(cur[b], t[variant]))
                    pair_lists[ogl].setdefault((a, b, variant), []).append(value)

    out: dict[str, float] = {}
    for ogl in families:
        sfx = "_OGL" if ogl else ""
        out[f"CIoU{sfx}"] = success_rate(pooled[ogl])
        out[f"AUC{sfx}"] = auc(pooled[ogl], grid)
        out[f"CIoU_adap{sfx}"] = success_rate(adaptive[ogl])
        out[f"AUC_adap{sfx}"] = auc(adaptive[ogl], grid)
        for variant, frag in _PAPER_POS_SUFFIX.items():
            out[f"CIoU_{frag}{sfx}"] = mean_x100(const_lists[ogl][variant])  # Q20: mean IoU
            out[f"AUC_{frag}{sfx}"] = auc(const_lists[ogl][variant], grid)
        for (neg, variant), values in pia[ogl].items():
            out[_paper_pia_key(neg, variant, ogl)] = mean_x100(values)
            out[_paper_aoc_key(neg, variant, ogl)] = aoc(values, grid)
        for (a, b, variant), values in pair_lists[ogl].items():
            if ogl:
                key = f"IoU_{_PAPER_PAIR_NAME[(a, b)]}{_PAPER_PAIR_SUFFIX[variant]}_OGL"
            else:
                key = f"IoU_{_PAPER_PAIR_NAME[(a, b)]}{_PAPER_PAIR_SUFFIX[variant]}_WOGL"
            out[key] = mean_x100(values)

    # F-scores: maxq3, WOGL.
    c_pos = out["CIoU_maxq3"]
    a_pos = out["AUC_maxq3"]
    keep = {neg: 100.0 - out[_paper_pia_key(neg, "maxq3", False)] for neg in NEGATIVES}
    aocs = {neg: out[_paper_aoc_key(neg, "maxq3", False)] for neg in NEGATIVES}
    out["F_Pos_Neg"] = f_score(c_pos, float(np.mean(list(keep.values()))))
    out["F_AUC_AOC_Pos_Neg"] = f_score(a_pos, float(np.mean(list(aocs.values()))))
    for neg in NEGATIVES:
        out[f"F_Pos_{_PAPER_NEG_NAME[neg]}"] = f_score(c_pos, keep[neg])
        out[f"F_AUC_AOC_Pos_{_PAPER_NEG_NAME[neg]}"] = f_score(a_pos, aocs[neg])

    if group is not None:
        out["iiou_adap"], out["IAUC_adap"] = interactive(adaptive[False], group, grid)

    out.update(_max_min_paper(maps))
    return out


def _fixed(maps, gt, obj, group, thresholds, fixed, interp) -> dict[str, float]:
    n = maps["pos"].shape[0]
    grid = threshold_grid("fixed")
    constants = {"fixed": float(fixed), **{k: float(v) for k, v in thresholds.items()}}
    wogl_names = ["median", "adaptive", *constants]
    ogl_names = ["median", "adaptive", "fixed"]
    families = {"": wogl_names}
    if obj is not None:
        families["_ogl"] = ogl_names

    ious = {fam: {t: [] for t in names} for fam, names in families.items()}
    pias = {fam: {(c, t): [] for c in NEGATIVES for t in names} for fam, names in families.items()}
    pairs = {fam: {(a, b, t): [] for (a, b) in PAIRS for t in names} for fam, names in families.items()}
    n_empty = 0

    for i in range(n):
        g = gt[i]
        if not g.any():
            n_empty += 1
        up = {c: upsample(maps[c][i], interp) for c in CONDITIONS}  # one interpolation for all
        for fam, names in families.items():
            if fam == "_ogl":
                # Q11 fixed: min-max every map and the object map, mix, and min-max the mixture.
                q = minmax(upsample(obj[i], interp))
                w_map = np.asarray(OGL_MAP_WEIGHT).astype(q.dtype)
                w_obj = np.asarray(OGL_OBJ_WEIGHT).astype(q.dtype)
                cur = {c: minmax(w_map * minmax(up[c]) + w_obj * q) for c in CONDITIONS}
            else:
                cur = up
            p = cur["pos"]
            t = {"median": median_threshold(p), "adaptive": adaptive_threshold(p, g), **constants}
            for name in names:
                on_pos = binarise(p, t[name])
                ious[fam][name].append(iou_with_gt(on_pos, g, "fixed"))
                for neg in NEGATIVES:
                    pias[fam][(neg, name)].append(pia_fraction(cur[neg], t[name]))
                for a, b in PAIRS:
                    value = pair_iou(binarise(cur[a], t[name]), binarise(cur[b], t[name]))
                    pairs[fam][(a, b, name)].append(value)

    out: dict[str, float] = {}
    for fam, names in families.items():
        for name in names:
            values = ious[fam][name]
            out[f"pos{fam}/ciou@{name}"] = success_rate(values)
            out[f"pos{fam}/miou@{name}"] = mean_x100(values)
            out[f"pos{fam}/auc@{name}"] = auc(values, grid)
            for neg in NEGATIVES:
                out[f"{neg}{fam}/pia@{name}"] = mean_x100(pias[fam][(neg, name)])
                out[f"{neg}{fam}/aoc@{name}"] = aoc(pias[fam][(neg, name)], grid)
            for a, b in PAIRS:
                out[f"iou{fam}/{a}_{b}@{name}"] = mean_x100(pairs[fam][(a, b, name)])

    for name in wogl_names:
        miou = out[f"pos/miou@{name}"]
        pos_auc = out[f"pos/auc@{name}"]
        keep = {neg: 100.0 - out[f"{neg}/pia@{name}"] for neg in NEGATIVES}
        aocs = {neg: out[f"{neg}/aoc@{name}"] for neg in NEGATIVES}
        out[f"f/pos_neg@{name}"] = f_score(miou, float(np.mean(list(keep.values()))))
        out[f"f_auc_aoc/pos_neg@{name}"] = f_score(pos_auc, float(np.mean(list(aocs.values()))))
        for neg in NEGATIVES:
            out[f"f/pos_{neg}@{name}"] = f_score(miou, keep[neg])
            out[f"f_auc_aoc/pos_{neg}@{name}"] = f_score(pos_auc, aocs[neg])
        if group is not None:
            ciou, iauc = interactive(ious[""][name], group, grid)
            out[f"interactive/ciou@{name}"] = ciou
            out[f"interactive/auc@{name}"] = iauc

    maxima = oracle_max_values(*(maps[c] for c in CONDITIONS))
    minima = oracle_min_values(*(maps[c] for c in CONDITIONS))
    for cond in CONDITIONS:
        out[f"max/{cond}/mean"] = float(np.mean(maxima[cond]))
        out[f"max/{cond}/median"] = float(np.median(maxima[cond]))
        out[f"min/{cond}/mean"] = float(np.mean(minima[cond]))
        out[f"min/{cond}/median"] = float(np.median(minima[cond]))
    for neg in NEGATIVES:
        out[f"max/auroc/pos_vs_{neg}"] = auroc(list(maxima["pos"]), list(maxima[neg]))

    out["n_samples"] = float(n)
    out["n_empty_gt"] = float(n_empty)
    return out
