"""Which of the reference code's output keys a paper-protocol run did not produce, and why.

The reference writes 164 keys for a test set with image pairs (IS3) when the object-saliency network
runs (docs/metrics.md, "paper keys"): the WOGL family, the `_OGL` family, the F-scores, the interactive
`iiou_adap` / `IAUC_adap` and the max/min statistics. A run without object maps has no `_OGL` keys (60
of them), a test set without groups no interactive ones. `missing_reference_keys` lists every absent
key with the reason, so that a report says what it cannot compare instead of leaving keys out.
"""

from __future__ import annotations

from collections.abc import Mapping

from vsslrt.eval.keys import PAPER_UNIVERSAL, metric_keys

NO_OBJECT_MAPS = (
    "no object-saliency maps in this run: the engine folder has no object graph (build or export the model "
    "with --object-net and --imagenet-weights)"
)
NO_GROUPS = "no interactive groups: the test set has no images with several sounding objects (IS3 image pairs)"
NOT_PAPER = "the run used the fixed protocol: the reference's keys come from --protocol paper"
NOT_COMPUTED = "not in this run's metrics"

INTERACTIVE_KEYS = ("iiou_adap", "IAUC_adap")


def reference_keys() -> list[str]:
    """The reference's full key list (with object maps and groups), in its order."""
    return metric_keys("paper", PAPER_UNIVERSAL, ogl=True, interactive=True)


def missing_reference_keys(
    metrics: Mapping[str, object], *, object_maps: bool, groups: bool, protocol: str = "paper"
) -> dict[str, str]:
    """Reference key -> why `metrics` lacks it, for every reference key it lacks (reference order).

    Args:
        metrics: the run's metrics (key -> value); a key whose value is NaN counts as present.
        object_maps: whether the run had object-saliency maps (OGL metrics).
        groups: whether the test set had interactive groups.
        protocol: the run's protocol, "paper" or "fixed".

    Returns:
        An empty dict when the run produced every reference key.
    """
    missing = {}
    for key in reference_keys():
        if key in metrics:
            continue
        if protocol != "paper":
            reason = NOT_PAPER
        elif key.endswith("_OGL") and not object_maps:
            reason = NO_OBJECT_MAPS
        elif key in INTERACTIVE_KEYS and not groups:
            reason = NO_GROUPS
        else:
            reason = NOT_COMPUTED
        missing[key] = reason
    return missing


def summarise(missing: Mapping[str, str]) -> list[str]:
    """One line per reason: '<count> keys (<first keys>, ...): <reason>', for a report or a CLI."""
    by_reason: dict[str, list[str]] = {}
    for key, reason in missing.items():
        by_reason.setdefault(reason, []).append(key)
    lines = []
    for reason, keys in by_reason.items():
        shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
        lines.append(f"{len(keys)} reference key{'s' if len(keys) != 1 else ''} missing ({shown}): {reason}")
    return lines
