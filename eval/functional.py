"""`evaluate()`: every metric of docs/metrics.md for one batch of heatmaps, in one call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vsslrt.eval.state import Evaluator


def evaluate(
    pos: Any,
    silence: Any,
    noise: Any,
    offscreen: Any,
    gt: Any,
    *,
    obj: Any = None,
    group: Any = None,
    protocol: str = "fixed",
    thresholds: Mapping[str, float] | None = None,
    fixed: float = 0.5,
    interp: str = "bilinear",
    chunk_size: int | None = None,
    num_workers: int | None = None,
) -> dict[str, float]:
    """Evaluate raw similarity maps under positive and negative audio.

    The arrays may be NumPy or CuPy (all from the same library); the work runs where they live.

    Args:
        pos, silence, noise, offscreen: raw maps (N, H, W), real floating; 224x224 maps are not
            resampled.
        gt: (N, 224, 224) boolean ground truth.
        obj: raw object-saliency maps (N, H', W'); adds the OGL metrics. Defaults to none.
        group: (N,) integer group ids; adds the interactive metrics. Defaults to none.
        protocol: "fixed" (bugs fixed, explicit names) or "paper" (reference numbers and key
            names). Defaults to "fixed".
        thresholds: universal thresholds by name, e.g. {"max": .6041, "max10": .6645,
            "maxq3": .6382}; all three are required in paper mode. Defaults to none.
        fixed: the fixed threshold. Defaults to 0.5.
        interp: "bilinear" (align-corners) or "cv2"; in paper mode it applies to pos and obj
            only, negatives always use cv2 (Q10). Defaults to "bilinear".
        chunk_size: samples processed together. Defaults to the evaluator's choice.
        num_workers: CPU threads over chunks. Defaults to the evaluator's choice.

    Returns:
        Exactly the keys of docs/metrics.md for the mode, as Python floats.

    Raises:
        InputError: invalid arrays or settings; the message names the field and the fix.
    """
    evaluator = Evaluator(
        protocol, thresholds, fixed, interp, chunk_size=chunk_size, num_workers=num_workers
    )
    evaluator.update(pos, silence, noise, offscreen, gt, obj=obj, group=group, _source="evaluate", _require_gt=True)
    return evaluator.compute()
