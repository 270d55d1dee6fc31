"""Metric reports: JSON (machine-readable) and Markdown (for people), both written atomically.

Files are written to a temporary file in the target folder and moved into place with
`os.replace`, so a reader never sees half a report and an interrupted run leaves the old one.
JSON has no NaN: non-finite numbers are written as null (and read back as NaN by `read_json`).

The headline summary (which numbers lead a report) is defined here once and shown two ways:
`summary_table` for `vsslrt metrics` (every threshold) and `summary_rows` for `vsslrt bench` and
its report.md (the headline threshold, with the margin over the audio-agnostic baselines).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.errors import InputError
from vsslrt.files import atomic_write_text, to_jsonable
from vsslrt.eval.keys import BUILTIN_THRESHOLDS, NEGATIVES


def _atomic_write(path: str | os.PathLike, text: str) -> Path:
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{target}: expected a file path for the report, got a directory.")
    return atomic_write_text(target, text)


def write_json(metrics: Mapping[str, float], path: str | os.PathLike, *, meta: Mapping[str, Any] | None = None) -> Path:
    """Write {"meta": meta, "metrics": metrics} as indented JSON, atomically.

    Args:
        metrics: the metric dictionary (e.g. from `evaluate`).
        path: target file; parent folders are created.
        meta: what produced the numbers (protocol, thresholds and their provenance, seeds, input
            file, ...). Defaults to an empty mapping.

    Returns:
        The written path.
    """
    payload = {"meta": to_jsonable(dict(meta or {})), "metrics": to_jsonable(dict(metrics))}
    return _atomic_write(path, json.dumps(payload, indent=2, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a report written by `write_json`; null metric values come back as NaN."""
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    payload["metrics"] = {k: math.nan if v is None else v for k, v in payload.get("metrics", {}).items()}
    return payload


def format_value(key: str, value: float) -> str:
    """Two decimals for percentages, four for raw map values and AUROC, integers for counts."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if key.startswith("n_"):
        return str(int(value))
    if key.startswith(("max/", "min/", "Max_", "Min_", "Median_")):
        return f"{value:.4f}"
    return f"{value:.2f}"


# ---------------------------------------------------------------------------------------------
# The headline summary: which numbers lead a report. One catalogue, two views: `summary_table`
# (`vsslrt metrics`, every threshold) and `summary_rows` (`vsslrt bench`, one threshold, with the
# margin over the audio-agnostic baselines).

# fixed protocol, per threshold t: (table column, summary label, key family: key = family@t, higher is better)
_FIXED_COLUMNS = (
    ("cIoU", "pos cIoU", "pos/ciou", True),
    ("mIoU", "pos mIoU", "pos/miou", True),
    ("AUC", "pos AUC", "pos/auc", True),
    *((f"pIA {n}", f"{n} pIA", f"{n}/pia", False) for n in NEGATIVES),
    ("F", "F pos/neg", "f/pos_neg", True),
    ("F AUC/AOC", "F AUC/AOC", "f_auc_aoc/pos_neg", True),
)
# The success rate and AUC lead the summary at each sample's own median threshold (the protocol's
# localisation figures); the other columns at the headline universal threshold.
_FIXED_AT_MEDIAN = ("pos/ciou", "pos/auc")

# paper protocol: (reference key, summary label or None when only the table shows it, higher is better)
_PAPER_HEADLINE = (
    ("CIoU", "pos cIoU (pooled, Q1)", True), ("AUC", "pos AUC (pooled, Q1)", True),
    ("CIoU_adap", None, True), ("AUC_adap", None, True),
    ("CIoU_maxq3", "pos mIoU@maxq3", True), ("AUC_maxq3", None, True),
    ("pIA_Silence_MaxQ3", "silence pIA@maxq3", False), ("pIA_Noise_MaxQ3", "noise pIA@maxq3", False),
    ("pIA_OffScreen_MaxQ3", "offscreen pIA@maxq3", False),
    ("AOC_Silence_MaxQ3", None, True), ("AOC_Noise_MaxQ3", None, True), ("AOC_OffScreen_MaxQ3", None, True),
    ("F_Pos_Neg", "F pos/neg@maxq3", True), ("F_AUC_AOC_Pos_Neg", "F AUC/AOC@maxq3", True),
    ("iiou_adap", None, True), ("IAUC_adap", None, True),
    ("Median_Max_Heatmap", None, False), ("Median_Max_Heatmap_Silence", None, False),
    ("Median_Max_Heatmap_Noise", None, False), ("Median_Max_Heatmap_Offscreen", None, False),
)  # fmt: skip


def _threshold_names(metrics: Mapping[str, float]) -> list[str]:
    """The threshold columns of a fixed-protocol result, in key order (none: a paper-protocol result)."""
    return [k.split("@", 1)[1] for k in metrics if k.startswith("pos/miou@")]


def headline_threshold(metrics: Mapping[str, float]) -> str:
    """The universal threshold the summary leads with: maxq3 when present, else the first universal one."""
    names = sorted(set(_threshold_names(metrics)))
    if "maxq3" in names:
        return "maxq3"
    universal = [n for n in names if n not in BUILTIN_THRESHOLDS]
    return universal[0] if universal else "fixed"


def headline(metrics: Mapping[str, float]) -> list[tuple[str, str, bool]]:
    """(label, key, higher is better) of the one-screen summary, in order; keys may be absent.

    Works for both protocols: paper-mode keys are mapped to the same quantities.
    """
    if not _threshold_names(metrics):
        return [(label, key, higher) for key, label, higher in _PAPER_HEADLINE if label is not None]
    thr = headline_threshold(metrics)
    at_median = [(f"{label}@median", f"{family}@median", higher)
                 for _, label, family, higher in _FIXED_COLUMNS if family in _FIXED_AT_MEDIAN]
    at_thr = [(f"{label}@{thr}", f"{family}@{thr}", higher)
              for _, label, family, higher in _FIXED_COLUMNS if family not in _FIXED_AT_MEDIAN]
    separability = [(f"max AUROC pos vs {n}", f"max/auroc/pos_vs_{n}", True) for n in NEGATIVES]
    return at_median + at_thr + separability


def summary_rows(
    metrics: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]] | None = None
) -> list[tuple[str, str, str]]:
    """(label, model value, margin over the best baseline) rows of the one-screen summary.

    Args:
        metrics: the model's metrics.
        baselines: each audio-agnostic baseline's metrics, scored like the model's. Defaults to
            none (empty margins).
    """
    out = []
    for label, key, higher in headline(metrics):
        if key not in metrics:
            continue
        value = metrics[key]
        bases = [b[key] for b in (baselines or {}).values() if key in b and np.isfinite(b[key])]
        margin = ""
        if bases and np.isfinite(value) and not key.startswith("max/"):
            # Positive margin = the model does better than every baseline (higher, or lower for pIA).
            best = max(bases) if higher else min(bases)
            margin = f"{(value - best) if higher else (best - value):+.2f}"
        out.append((label, format_number(value), margin))
    return out


def summary_table(metrics: Mapping[str, float]) -> tuple[list[str], list[list[str]]]:
    """The headline numbers as (column headers, rows of strings).

    fixed mode: one row per threshold (cIoU, mIoU, AUC, pIA per negative, both F-scores).
    paper mode: one row per headline key of the reference.
    """
    names = _threshold_names(metrics)
    if names:
        headers = ["threshold", *(column for column, _, _, _ in _FIXED_COLUMNS)]
        rows = []
        for t in names:
            keys = [f"{family}@{t}" for _, _, family, _ in _FIXED_COLUMNS]
            rows.append([t, *(format_value(k, metrics[k]) for k in keys)])
        return headers, rows
    keys = [key for key, _, _ in _PAPER_HEADLINE]
    return ["metric", "value"], [[k, format_value(k, metrics[k])] for k in keys if k in metrics]


def format_number(value: float) -> str:
    """Two decimals, "nan" for a missing or non-finite value: the engine summary and the bench report's tables."""
    return "nan" if value is None or not np.isfinite(value) else f"{value:.2f}"


def _markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def format_markdown(
    metrics: Mapping[str, float], *, title: str = "Metrics", meta: Mapping[str, Any] | None = None
) -> str:
    """A Markdown report: title, settings, the summary table and every metric."""
    parts = [f"# {title}", ""]
    if meta:
        for key, value in meta.items():
            parts.append(f"- {key}: `{json.dumps(to_jsonable(value))}`")
        parts.append("")
    headers, rows = summary_table(metrics)
    parts += ["## Summary", "", _markdown_table(headers, rows), ""]
    all_rows = [[f"`{k}`", format_value(k, v)] for k, v in metrics.items()]
    parts += ["## All metrics", "", _markdown_table(["metric", "value"], all_rows), ""]
    return "\n".join(parts)


def write_markdown(
    metrics: Mapping[str, float],
    path: str | os.PathLike,
    *,
    title: str = "Metrics",
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write `format_markdown(...)` to `path`, atomically. Returns the written path."""
    return _atomic_write(path, format_markdown(metrics, title=title, meta=meta))
