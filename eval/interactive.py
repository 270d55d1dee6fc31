"""IS3 interactive metrics as SSLalignment defines them (protocols-extended.md section 6).

IS3 holds each synthetic image twice, once per sounding object (two audio queries per image). Per
sample: the map is upsampled (bilinear, align-corners), min-max normalised per image (left as it is
when constant), binarised with a strict `>` at two thresholds, and scored by cIoU against the GT
(weighted GT allowed; no epsilon):

* median: the value at ascending index N // 2 of the normalised map;
* adaptive: the value at index N - g, g = the number of GT pixels (N // 2 for an empty GT). It
  reads the GT's size, so it is an oracle on object size: the fixed-mode keys say so.

A group is one image (the records' `group`); IIoU counts an image only when every one of its queries
reaches cIoU 0.5, IAUC is the area under that group success rate over the 21 cIoU thresholds. The
state is per-sample scalars only (two cIoUs and the group), so shards merge exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from vsslrt.errors import InputError
from vsslrt.eval import _stats, _xp
from vsslrt.eval._persample import PerSampleEvaluator, PerSampleStore, config_json_of
from vsslrt.eval._resize import RESIZES
from vsslrt.eval._select import (PackedGT, ciou, gt_masks, normalised_mask, range_of, resize_into, run_chunks,
                                select_fast)

N_PIXELS = 224 * 224
MODES = ("paper", "fixed")
COLUMNS = ("median", "adaptive")
FIXED_NAMES = {"median": "median", "adaptive": "adaptive_oracle"}
PAPER_NAMES = {"median": "", "adaptive": "_adap"}
DEFAULT_CHUNK = 16


def measure(maps: Any, marked: Any, full: Any, resize_with: str, *, xp: Any,
            source: str = "InteractiveEvaluator.update") -> Any:
    """(B, 2) cIoU at the median and adaptive thresholds of the min-max normalised maps."""
    dtype = xp.result_type(maps.dtype, xp.float32)
    up = resize_into(maps, resize_with, xp=xp, dtype=dtype, tag="interactive:up")  # read-only below
    lo, hi = range_of(up, xp=xp, source=source)
    gt = PackedGT(marked, full, xp=xp)  # packed and counted once for both columns
    g = gt.n_marked
    k_med = N_PIXELS // 2
    g_eff = xp.where(g == 0, xp.full_like(g, k_med), g)
    # Min-max is monotone: the order statistics of the normalised map are the normalised ones.
    if _xp.fast(xp) and up.dtype in (np.float32, np.float64):  # one compiled selection of both positions
        positions = np.stack([np.full_like(g_eff, k_med), N_PIXELS - g_eff], axis=1)
        values, _, _ = select_fast(up, lo, hi, positions)
        t_med, t_adap = values[:, 0], values[:, 1]
    else:
        t_med, t_adap = _xp.order_statistics(up, k_med, N_PIXELS - g_eff, xp=xp)
    cols = [ciou(normalised_mask(up, t, lo, hi, strict=True, xp=xp), marked, full, 0.0, xp=xp, packed=gt)
            for t in (t_med, t_adap)]
    return xp.stack(cols, axis=1)


def reduce_interactive(s: Mapping[str, np.ndarray], mode: str) -> dict[str, float]:
    """The IS3 keys of docs/metrics.md ("IS3 interactive") from id-sorted per-sample scalars."""
    if s["sample_id"].shape[0] == 0:
        raise InputError("compute: expected at least one evaluated sample, got none.", hint="call update() first")
    grid = _stats.threshold_grid(mode)
    out: dict[str, float] = {}
    for j, column in enumerate(COLUMNS):
        ciou = s["ciou"][:, j]
        if mode == "fixed":  # one NaN policy: an empty GT with an empty prediction gives 0
            ciou = np.where(np.isnan(ciou), 0.0, ciou)
        iiou, iauc = _stats.interactive(ciou, s["group"], grid)
        if mode == "paper":
            sfx = PAPER_NAMES[column]
            out[f"cIoU{sfx}"] = _stats.success_rate(ciou)
            out[f"AUC{sfx}"] = _stats.auc(ciou, grid)
            out[f"IIoU{sfx}"] = iiou
            out[f"IAUC{sfx}"] = iauc
            if column == "median":
                out["mIoU(persample)"] = _stats.mean_x100(ciou)
        else:
            name = FIXED_NAMES[column]
            out[f"is3/ciou@{name}"] = _stats.success_rate(ciou)
            out[f"is3/miou@{name}"] = _stats.mean_x100(ciou)
            out[f"is3/auc@{name}"] = _stats.auc(ciou, grid)
            out[f"is3/iiou@{name}"] = iiou
            out[f"is3/iauc@{name}"] = iauc
    if mode == "fixed":
        out["is3/n_groups"] = float(np.unique(s["group"]).shape[0])
    return out


class InteractiveEvaluator(PerSampleEvaluator):
    """Accumulates IS3 queries (two cIoUs and a group per sample) and computes IIoU / IAUC.

    Args:
        mode: "paper" (SSLalignment's numbers and names) or "fixed" (one NaN policy, grid i/20,
            explicit names with the adaptive threshold marked as an oracle).
        resize_with: "bilinear" (SSLalignment's align-corners, default), "cv2" or "bicubic".
        chunk_size: samples measured together. Defaults to 16 on NumPy, the batch on CuPy.
    """

    def __init__(self, mode: str = "fixed", *, resize_with: str = "bilinear", chunk_size: int | None = None) -> None:
        if mode not in MODES:
            raise InputError(f"IS3 protocol: expected a mode in {', '.join(MODES)}, got {mode!r}.",
                             hint="--protocol fixed (default) or --protocol paper")
        if resize_with not in RESIZES:
            raise InputError(f"IS3 protocol: expected an upsampling in {', '.join(RESIZES)}, got {resize_with!r}.")
        self.mode, self.resize_with, self.chunk_size = mode, resize_with, chunk_size
        self._store = PerSampleStore(self._config_json(), "InteractiveEvaluator")

    def _config_json(self) -> str:
        return json.dumps({"interactive": {"mode": self.mode, "resize": self.resize_with}})

    def update(self, maps: Any, gt: Any, group: Any, *, sample_ids: Any = None) -> InteractiveEvaluator:
        """Measure one batch: maps (N, h, w), gt (N, 224, 224) bool or weights, group (N,) int."""
        source = "InteractiveEvaluator.update"
        xp = _xp.namespace({"maps": maps, "gt": gt, "group": group}, subject=source)
        if maps.ndim != 3 or not xp.isdtype(maps.dtype, "real floating"):
            raise InputError(f"{source}: expected 'maps' to be real floating (N, h, w), got {maps.dtype} {tuple(maps.shape)}.")
        n = int(maps.shape[0])
        if group.ndim != 1 or int(group.shape[0]) != n or not xp.isdtype(group.dtype, "integral"):
            raise InputError(f"{source}: expected integer 'group' of shape ({n},), got {group.dtype} {tuple(group.shape)}.",
                             hint="IS3 records carry the image-pair group; pass dataset.groups")
        marked, full = gt_masks(gt, n, xp=xp, source=source)
        ids = self._store.next_ids(n, sample_ids, source)
        chunk = self.chunk_size or (DEFAULT_CHUNK if _xp.is_numpy(xp) else max(n, 1))
        parts = run_chunks(lambda a, b: measure(maps[a:b], marked[a:b], None if full is None else full[a:b],
                                                self.resize_with, xp=xp, source=source), n, chunk, xp=xp)
        self._store.append({"ciou": xp.concat(parts, axis=0), "group": xp.astype(group, xp.int64)}, ids, source)
        return self

    @classmethod
    def from_state(cls, state: Mapping[str, Any], **options: Any) -> InteractiveEvaluator:
        raw = json.loads(config_json_of(state)).get("interactive")
        if raw is None:
            raise InputError("state: expected an IS3 interactive state, got another evaluator's state.")
        ev = cls(raw["mode"], resize_with=raw["resize"], **options)
        ev._store.merge_state(state)
        return ev

    def compute(self) -> dict[str, float]:
        return reduce_interactive(self._store.host(), self.mode)
