"""Segmentation metrics on mask ground truth: AVSBench mIoU, F-score (beta^2 = 0.3) and AVSBench-Robust FPR.

Protocol (protocols-extended.md sections 3.3, 2.6 and 4a): every sample is one annotated frame with
a binary mask; the model's map of each audio condition (positive, silence, noise, offscreen) is
scored against the frame's own mask (AVSBench-Robust keeps the positive masks for the negative
conditions, so their mIoU and F measure overlap with the object that would sound). Per frame:

* probabilities p: the map itself (`scale="probability"`, VSSL maps in [0, 1]) or sigmoid(map)
  (`scale="logits"`, AVS decoders); maps smaller than the mask are upsampled first;
* IoU at threshold t (default 0.5, strict `p > t`): |B & G| / (|B | G| + 1e-7); for an empty mask
  the fraction of pixels correctly left empty, (#B = 0) / (H W + 1e-7);
* FPR at t: |B| / (H W + 1e-7), the fraction of the image predicted foreground;
* the F-curve over the 255 thresholds tau_j = linspace(0, 1 - 1e-10, 255) of PyTorch's float32
  arithmetic, B_j = [p >= tau_j]: F_j = 1.3 P_j R_j / (0.3 P_j + R_j), P_j = TP / (|B_j| + 1e-20),
  R_j = TP / (|G| + 1e-20), NaN -> 0. Frames with an empty mask have no F-curve.

Reductions (host NumPy, from the id-sorted per-frame scalars, so shards merge exactly):

* `paper` (the official AVSBench test loop): frames are grouped into the test loader's batches of
  `batch_videos` videos in list order (the `video` index of each frame); mIoU and FPR are the mean
  over batches of the per-batch frame means, F the mean over batches of max_j of the batch's mean
  F-curve (0 for a batch without a non-empty mask). The F-score therefore depends on the batch size,
  as the official code's does; `batch_videos` is part of the settings, never the update batches.
* `fixed`: per-frame means for mIoU and FPR, and F = max_j of the mean F-curve over every non-empty
  frame (one dataset-level threshold, ACL-SSL's batch-independent definition), whatever the split.

The F-curve is counted with one histogram per frame over the 255-threshold grid (each pixel's bin in
the grid, then cumulative counts), so its cost does not grow with the grid. On NumPy one keyed
histogram per frame (the compiled kernel of `_masks_jit`) also gives the mIoU and FPR counts.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vsslrt.errors import InputError
from vsslrt.eval import _xp
from vsslrt.eval._persample import PerSampleEvaluator, PerSampleStore, config_json_of
from vsslrt.eval._resize import RESIZES, resize
from vsslrt.eval.interp import INTERPOLATIONS, linear_taps
from vsslrt.eval.keys import CONDITIONS
from vsslrt.eval.state import MAX_DEFAULT_WORKERS, _available_cpus, _pool

MODES = ("paper", "fixed")
SCALES = ("probability", "logits")
SIDE = 224
N_PIXELS = SIDE * SIDE
BETA2 = 0.3
F_STEPS = 255
F_END = 1 - 1e-10
IOU_EPS = 1e-7
PR_EPS = 1e-20
DEFAULT_BATCH_VIDEOS = 4  # the official test.sh runs --test_batch_size 4
DEFAULT_CHUNK = 16


def f_thresholds() -> np.ndarray:
    """The 255 float32 thresholds of `torch.linspace(0, 1 - 1e-10, 255)` (float32 default dtype).

    PyTorch casts both ends to float32 (1 - 1e-10 becomes 1.0), takes step = (end - start) / 254
    in float32, and forms start + step * i for the first half and end - step * (254 - i) for the
    second, each as one fused multiply-add (its vectorised kernel), i.e. rounded once to float32.
    The products and differences below are exact in float64, so rounding them once is that FMA.
    """
    start = np.float32(0.0)
    end = np.float32(F_END)
    step = np.float64(np.float32((end - start) / np.float32(F_STEPS - 1)))
    i = np.arange(F_STEPS, dtype=np.float64)
    half = F_STEPS // 2
    first = np.float64(start) + step * i[:half]
    second = np.float64(end) - step * (F_STEPS - 1 - i[half:])
    out = np.concatenate([first, second]).astype(np.float32)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class MaskConfig:
    """What the mask evaluator measures (see `MaskEvaluator`)."""

    mode: str = "fixed"
    scale: str = "probability"
    threshold: float = 0.5
    conditions: tuple[str, ...] = CONDITIONS
    batch_videos: int = DEFAULT_BATCH_VIDEOS
    resize: str = "bilinear"

    def to_json(self) -> str:
        return json.dumps({"masks": {
            "mode": self.mode, "scale": self.scale, "threshold": self.threshold,
            "conditions": list(self.conditions), "batch_videos": self.batch_videos, "resize": self.resize}})

    @classmethod
    def from_json(cls, text: str) -> MaskConfig:
        raw = json.loads(text).get("masks")
        if raw is None:
            raise InputError("state: expected a mask-protocol state, got another evaluator's state.")
        return make_mask_config(raw["mode"], scale=raw["scale"], threshold=raw["threshold"],
                                conditions=raw["conditions"], batch_videos=raw["batch_videos"], resize_with=raw["resize"])


def make_mask_config(mode: str = "fixed", *, scale: str = "probability", threshold: float = 0.5,
                     conditions: Sequence[str] = CONDITIONS, batch_videos: int = DEFAULT_BATCH_VIDEOS,
                     resize_with: str = "bilinear") -> MaskConfig:
    """Validate the mask-protocol settings (arguments as `MaskEvaluator`)."""
    if mode not in MODES:
        raise InputError(f"mask protocol: expected a mode in {', '.join(MODES)}, got {mode!r}.",
                         hint="--protocol fixed (default) or --protocol paper")
    if scale not in SCALES:
        raise InputError(f"mask protocol: expected a map scale in {', '.join(SCALES)}, got {scale!r}.",
                         hint="probability for maps in [0, 1]; logits for AVS decoders (sigmoid applied)")
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise InputError(f"mask protocol: expected a numeric threshold, got {threshold!r}.") from None
    if not math.isfinite(t):
        raise InputError(f"mask protocol: expected a finite threshold, got {threshold!r}.")
    conds = tuple(conditions)
    unknown = [c for c in conds if c not in CONDITIONS]
    if not conds or unknown or len(set(conds)) != len(conds):
        raise InputError(f"mask protocol: expected distinct conditions among {', '.join(CONDITIONS)}, got {list(conds)}.")
    if isinstance(batch_videos, bool) or not isinstance(batch_videos, int) or batch_videos < 1:
        raise InputError(f"mask protocol: expected batch_videos to be a positive integer, got {batch_videos!r}.",
                         hint="the official test.sh uses 4 videos per batch; AVSBench-Robust uses 1 or 2")
    if resize_with not in RESIZES:
        raise InputError(f"mask protocol: expected an upsampling in {', '.join(RESIZES)}, got {resize_with!r}.")
    return MaskConfig(mode, scale, t, conds, batch_videos, resize_with)


# ------------------------------------------------------------------------------------------------
# Per-frame measurement (NumPy or CuPy, vectorised over the chunk)


def _sigmoid(x: Any, xp: Any) -> Any:
    one = xp.ones((), dtype=x.dtype)
    return one / (one + xp.exp(-x))


def _grid_bins(p: Any, tau: Any, xp: Any) -> Any:
    """Per pixel, the number of thresholds tau_j <= p (what a binary search in the grid gives).

    The grid is uniform up to rounding (tau_j is j / 254 within 1e-7), so away from the grid points
    the count is floor(254 p) + 1, clipped to [0, 255]; the few pixels within 1e-3 / 254 of a grid
    point (where float rounding could matter) are located by an exact binary search instead.
    """
    steps = int(tau.shape[0])
    q = p * xp.asarray(steps - 1, dtype=p.dtype)
    count = xp.astype(xp.clip(xp.floor(q) + 1, 0, steps), xp.int32)
    near = xp.abs(q - xp.round(q)) < 1e-3
    if bool(xp.any(near)):
        count[near] = xp.astype(xp.searchsorted(tau, p[near], side="right"), xp.int32)
    return count


def _histogram_counts(p: Any, marked: Any, tau: Any, xp: Any) -> tuple[Any, Any]:
    """(B, 255) counts of pixels with p >= tau_j, overall and inside the mask.

    Each pixel's bin is the number of thresholds <= p (`_grid_bins`); the count at tau_j is then
    the number of pixels whose bin exceeds j (a reversed cumulative sum of one histogram per row).
    """
    b = int(p.shape[0])
    k = int(tau.shape[0])
    bins = _grid_bins(p, tau, xp)  # (B, N) in 0..k
    rows = xp.reshape(xp.arange(b, dtype=xp.int32, device=_xp.device_of(p)), (b, 1)) * (k + 1)
    flat = bins + rows
    bincount = getattr(xp, "bincount", None)
    if bincount is None:
        raise InputError("mask protocol: expected an array library with bincount (NumPy or CuPy).")
    every = xp.reshape(bincount(xp.reshape(flat, (-1,)), minlength=b * (k + 1)), (b, k + 1))
    inside = xp.reshape(bincount(flat[marked], minlength=b * (k + 1)), (b, k + 1))
    # pixels with bin > j are those with p >= tau_j: sum of bins j+1..k
    above = xp.flip(xp.cumulative_sum(xp.flip(every, axis=1), axis=1), axis=1)[:, 1:]
    above_in = xp.flip(xp.cumulative_sum(xp.flip(inside, axis=1), axis=1), axis=1)[:, 1:]
    return above, above_in


@functools.lru_cache(maxsize=4)
def _grid(dtype: np.dtype) -> np.ndarray:
    """`f_thresholds` in a maps' dtype (exact: the float32 grid widened)."""
    out = f_thresholds().astype(dtype)
    out.setflags(write=False)
    return out


def _measure_keyed(maps: np.ndarray, gt: np.ndarray, config: MaskConfig, what: str) -> dict[str, np.ndarray]:
    """`measure`'s per-frame values from the compiled kernels (`_masks_jit`).

    Probability maps smaller than 224x224 with a linear upsampling are upsampled inside the
    kernel; the others are upsampled (and passed through the sigmoid) first.
    """
    from vsslrt.eval import _masks_jit

    b, h, w = maps.shape
    dtype = np.result_type(maps.dtype, np.float32)
    out = {"iou": np.empty(b), "fpr": np.empty(b), "f_curve": np.empty((b, F_STEPS)), "g": np.empty(b, np.int64)}
    if not b:
        return out
    with np.errstate(over="ignore"):  # a threshold beyond the dtype's range: +-inf, as a cast
        t = dtype.type(config.threshold)
    gt = np.ascontiguousarray(gt, dtype=np.bool_)
    if gt.shape != (b, N_PIXELS):  # the kernels trust their shapes (no bounds checks in compiled code)
        raise ValueError(f"mask protocol: expected gt of shape ({b}, {N_PIXELS}), got {gt.shape}")
    tail = (gt, t, _grid(dtype), IOU_EPS, PR_EPS, BETA2, out["iou"], out["fpr"], out["f_curve"], out["g"])
    if (h, w) != (SIDE, SIDE) and config.resize in INTERPOLATIONS and config.scale == "probability":
        small = np.ascontiguousarray(maps, dtype=dtype)
        bad = _masks_jit.keyed_measure_upsampled(small, *linear_taps(h, config.resize), *linear_taps(w, config.resize), *tail)
    else:
        with np.errstate(invalid="ignore", over="ignore"):  # NaN from inf: refused below, by count
            up = resize(maps, config.resize, xp=np, dtype=dtype, out_tag="masks:up")
        p = _sigmoid(up, np) if config.scale == "logits" else up
        bad = _masks_jit.keyed_measure(np.ascontiguousarray(p), *tail)
    if bad:
        raise InputError(f"{what}, got {bad} NaN or inf values.", hint="check the model output")
    return out


def _compiled(xp: Any, dtype: Any) -> bool:
    """Whether the compiled kernel measures maps of this dtype (NumPy, float32 or float64 working dtype)."""
    return _xp.fast(xp) and xp.result_type(dtype, xp.float32) in (np.float32, np.float64)


def _kernel_checks_finite(config: MaskConfig, xp: Any, dtype: Any) -> bool:
    """Whether the kernel's own count of non-finite values is the input check for these maps.

    On probability maps it reads the maps (or their upsampling, non-finite exactly when a source
    value is); a sigmoid would hide an infinite logit, so logit maps are checked before.
    """
    return _compiled(xp, dtype) and config.scale == "probability"


def measure(maps: Any, gt: Any, config: MaskConfig, *, xp: Any, what: str = "mask protocol: expected finite maps") -> dict[str, Any]:
    """Per-frame `iou` (B,), `fpr` (B,), `f_curve` (B, 255) and mask size `g` (B,) of one condition's chunk.

    On NumPy (float32 or float64 maps) the compiled kernel measures the chunk in one call; the
    array-API path below (CuPy, and the kernel's reference in the tests) computes the same values.

    Args:
        maps: (B, h, w) raw maps.
        gt: (B, 50176) bool masks.
        what: the start of the error for non-finite values found by the compiled histogram.
    """
    dtype = xp.result_type(maps.dtype, xp.float32)
    if _compiled(xp, dtype):
        return _measure_keyed(maps, gt, config, what)
    up = resize(maps, config.resize, xp=xp, dtype=dtype)
    p = _sigmoid(up, xp) if config.scale == "logits" else up
    on = p > xp.asarray(config.threshold, dtype=dtype)
    g = xp.astype(xp.count_nonzero(gt, axis=1), xp.int64)
    predicted = xp.astype(xp.count_nonzero(on, axis=1), xp.int64)
    inter = xp.astype(xp.count_nonzero(xp.logical_and(on, gt), axis=1), xp.int64)
    tau = xp.asarray(f_thresholds(), device=_xp.device_of(p))
    if dtype != xp.float32:
        tau = xp.astype(tau, dtype)
    selected, tp = _histogram_counts(p, gt, tau, xp)
    union = g + predicted - inter
    empty = g == 0
    # Empty mask: the true-negative fraction, (#B = 0) / (H W + eps), as the official mask_iou.
    num = xp.where(empty, N_PIXELS - predicted, inter)
    den = xp.where(empty, xp.full_like(union, N_PIXELS), union)
    iou = xp.astype(num, xp.float64) / (xp.astype(den, xp.float64) + IOU_EPS)
    fpr = xp.astype(predicted, xp.float64) / (N_PIXELS + IOU_EPS)

    tp = xp.astype(tp, xp.float64)
    precision = tp / (xp.astype(selected, xp.float64) + PR_EPS)
    recall = tp / (xp.reshape(xp.astype(g, xp.float64), (-1, 1)) + PR_EPS)
    den_f = BETA2 * precision + recall
    zero = den_f == 0
    f = xp.where(zero, xp.zeros_like(den_f), (1 + BETA2) * precision * recall / xp.where(zero, xp.ones_like(den_f), den_f))
    f = xp.where(xp.reshape(empty, (-1, 1)), xp.zeros_like(f), f)  # no curve for an empty mask (never averaged)
    return {"iou": iou, "fpr": fpr, "f_curve": f, "g": g}


# ------------------------------------------------------------------------------------------------
# Reductions


def batch_of_frames(video: np.ndarray, batch_videos: int) -> np.ndarray:
    """The official test loader's batch of each frame: videos in ascending order, `batch_videos` per batch."""
    _, rank = np.unique(video, return_inverse=True)
    return rank.reshape(-1) // batch_videos


def _paper_condition(iou, fpr, curve, empty, batch) -> tuple[float, float, float]:
    n_batches = int(batch.max()) + 1
    counts = np.bincount(batch, minlength=n_batches)
    miou = float(np.mean(np.bincount(batch, weights=iou, minlength=n_batches) / counts))
    mfpr = float(np.mean(np.bincount(batch, weights=fpr, minlength=n_batches) / counts))
    valid = ~empty
    sums = np.zeros((n_batches, curve.shape[1]), dtype=np.float64)
    np.add.at(sums, batch[valid], curve[valid])
    n_valid = np.bincount(batch[valid], minlength=n_batches)
    maxima = np.where(n_valid > 0, np.max(sums / np.maximum(n_valid, 1)[:, None], axis=1), 0.0)
    return miou, float(np.mean(maxima)), mfpr


def reduce_masks(s: Mapping[str, np.ndarray], config: MaskConfig) -> dict[str, float]:
    """The mask keys of docs/metrics.md ("Segmentation masks") from id-sorted per-frame scalars."""
    n = s["sample_id"].shape[0]
    if n == 0:
        raise InputError("compute: expected at least one evaluated sample, got none.", hint="call update() first")
    empty = s["gt_empty"].astype(bool)
    out: dict[str, float] = {}
    t = f"{config.threshold:g}"
    tau = f_thresholds().astype(np.float64)
    if config.mode == "paper":
        batch = batch_of_frames(s["video"], config.batch_videos)
    for ci, cond in enumerate(config.conditions):
        iou, fpr, curve = s["iou"][:, ci], s["fpr"][:, ci], s["f_curve"][:, ci]
        if config.mode == "paper":
            miou, f, mfpr = _paper_condition(iou, fpr, curve, empty, batch)
            out[f"{cond}/miou"], out[f"{cond}/F_score"], out[f"{cond}/FPR"] = miou, f, mfpr
            continue
        out[f"mask/{cond}/miou@{t}"] = 100.0 * float(np.mean(iou))
        out[f"mask/{cond}/fpr@{t}"] = 100.0 * float(np.mean(fpr))
        valid = ~empty
        if np.any(valid):
            mean_curve = np.mean(curve[valid], axis=0)
            j = int(np.argmax(mean_curve))
            out[f"mask/{cond}/f_beta"] = 100.0 * float(mean_curve[j])
            out[f"mask/{cond}/f_beta_tau"] = float(tau[j])
        else:
            out[f"mask/{cond}/f_beta"] = math.nan
            out[f"mask/{cond}/f_beta_tau"] = math.nan
    if config.mode == "fixed":
        out["mask/n_frames"] = float(n)
        out["mask/n_empty_gt"] = float(np.count_nonzero(empty))
        out["mask/n_videos"] = float(np.unique(s["video"]).shape[0])
    return out


def mask_metric_keys(config: MaskConfig) -> list[str]:
    """The exact key set `MaskEvaluator.compute()` returns for a configuration."""
    t = f"{config.threshold:g}"
    keys: list[str] = []
    for cond in config.conditions:
        if config.mode == "paper":
            keys += [f"{cond}/miou", f"{cond}/F_score", f"{cond}/FPR"]
        else:
            keys += [f"mask/{cond}/miou@{t}", f"mask/{cond}/fpr@{t}", f"mask/{cond}/f_beta", f"mask/{cond}/f_beta_tau"]
    if config.mode == "fixed":
        keys += ["mask/n_frames", "mask/n_empty_gt", "mask/n_videos"]
    return keys


# ------------------------------------------------------------------------------------------------
# The mergeable evaluator


class MaskEvaluator(PerSampleEvaluator):
    """Accumulates annotated frames (per-frame scalars and F-curves) and computes the mask metrics.

    Args:
        mode: "paper" (the official AVSBench test loop: per-batch means, per-batch F maximum) or
            "fixed" (per-frame means, one dataset-level F threshold).
        scale: "probability" (maps in [0, 1], thresholded as they are) or "logits" (sigmoid first).
        threshold: the binarisation threshold of mIoU and FPR (strict `>`). Defaults to 0.5.
        conditions: the audio conditions given to `update`. Defaults to pos, silence, noise, offscreen.
        batch_videos: videos per batch of the official test loop (paper mode). Defaults to 4.
        resize_with: upsampling of maps smaller than 224x224: "bilinear" (default), "cv2", "bicubic".
        chunk_size: frames measured together. Defaults to 16 on NumPy, the batch on CuPy.

    Example:
        >>> ev = MaskEvaluator("paper", conditions=("pos",))  # doctest: +SKIP
        >>> ev.update({"pos": maps}, masks, video=video_index, sample_ids=ids)  # doctest: +SKIP
        >>> ev.compute()["pos/F_score"]  # doctest: +SKIP
    """

    def __init__(self, mode: str = "fixed", *, scale: str = "probability", threshold: float = 0.5,
                 conditions: Sequence[str] = CONDITIONS, batch_videos: int = DEFAULT_BATCH_VIDEOS,
                 resize_with: str = "bilinear", chunk_size: int | None = None,
                 config: MaskConfig | None = None) -> None:
        self.config = config or make_mask_config(mode, scale=scale, threshold=threshold, conditions=conditions,
                                                 batch_videos=batch_videos, resize_with=resize_with)
        self.chunk_size = chunk_size
        self._store = PerSampleStore(self.config.to_json(), "MaskEvaluator")

    def update(self, maps: Mapping[str, Any] | Any, gt: Any, *, video: Any = None,
               sample_ids: Any = None) -> MaskEvaluator:
        """Measure one batch of frames.

        Args:
            maps: condition -> (N, h, w) raw maps for every configured condition (a bare array
                when the only condition is "pos").
            gt: (N, 224, 224) masks, bool or 0/1.
            video: (N,) int index of each frame's video in the test list (paper-mode batches).
                Defaults to the sample id (one frame per video).
            sample_ids: (N,) unique integer ids. Defaults to consecutive ids.
        """
        source = "MaskEvaluator.update"
        if not isinstance(maps, Mapping):
            maps = {"pos": maps}
        conds = self.config.conditions
        if set(maps) != set(conds):
            raise InputError(f"{source}: expected maps for the conditions {list(conds)}, got {sorted(maps)}.",
                             hint="pass conditions=... to MaskEvaluator for a subset")
        xp = _xp.namespace({**{f"maps[{c}]": maps[c] for c in conds}, "gt": gt, "video": video}, subject=source)
        n = int(gt.shape[0]) if getattr(gt, "ndim", 0) == 3 else -1
        if n < 0 or tuple(gt.shape[1:]) != (SIDE, SIDE):
            raise InputError(f"{source}: expected 'gt' of shape (N, {SIDE}, {SIDE}), got {tuple(getattr(gt, 'shape', ()))}.",
                             hint="AVSBench masks are 224x224; vsslrt.data.avsbench reads them")
        for c in conds:
            m = maps[c]
            if m.ndim != 3 or int(m.shape[0]) != n or not xp.isdtype(m.dtype, "real floating"):
                raise InputError(f"{source}: expected maps[{c!r}] to be real floating ({n}, h, w), "
                                 f"got {m.dtype} {tuple(m.shape)}.")
            if not _kernel_checks_finite(self.config, xp, m.dtype) and not bool(xp.all(xp.isfinite(m))):
                raise InputError(f"{source}: expected finite maps[{c!r}], got NaN or inf.", hint="check the model output")
        masks = xp.reshape(gt if xp.isdtype(gt.dtype, "bool") else gt != 0, (n, N_PIXELS))
        ids = self._store.next_ids(n, sample_ids, source)
        if video is None:
            frames_video = xp.asarray(ids, dtype=xp.int64, device=_xp.device_of(masks))
        else:
            if video.ndim != 1 or int(video.shape[0]) != n or not xp.isdtype(video.dtype, "integral"):
                raise InputError(f"{source}: expected integer 'video' of shape ({n},), got {video.dtype} {tuple(video.shape)}.",
                                 hint="AVSBench datasets carry it as dataset.videos")
            frames_video = xp.astype(video, xp.int64)
        chunk = self.chunk_size or (DEFAULT_CHUNK if _xp.is_numpy(xp) else max(n, 1))

        def one(start: int) -> dict[str, Any]:
            part = [measure(maps[c][start:start + chunk], masks[start:start + chunk], self.config, xp=xp,
                            what=f"{source}: expected finite maps[{c!r}]") for c in conds]
            out = {key: xp.stack([p[key] for p in part], axis=1) for key in ("iou", "fpr", "f_curve")}
            out["gt_empty"] = part[0]["g"] == 0  # one mask for every condition
            return out

        starts = list(range(0, n, chunk))
        if _xp.is_numpy(xp) and len(starts) > 1:  # NumPy releases the GIL: chunks on the evaluator's threads

            parts = list(_pool(min(MAX_DEFAULT_WORKERS, _available_cpus())).map(one, starts))
        else:
            parts = [one(s) for s in starts]
        arrays = {key: xp.concat([p[key] for p in parts], axis=0) for key in ("iou", "fpr", "f_curve", "gt_empty")} if n else {
            "iou": xp.zeros((0, len(conds))), "fpr": xp.zeros((0, len(conds))), "f_curve": xp.zeros((0, len(conds), F_STEPS)),
            "gt_empty": xp.zeros((0,), dtype=xp.bool)}
        arrays["video"] = frames_video
        self._store.append(arrays, ids, source)
        return self

    @classmethod
    def from_state(cls, state: Mapping[str, Any], **options: Any) -> MaskEvaluator:
        ev = cls(config=MaskConfig.from_json(config_json_of(state)), **options)
        ev._store.merge_state(state)
        return ev

    def compute(self) -> dict[str, float]:
        return reduce_masks(self._store.host(), self.config)
