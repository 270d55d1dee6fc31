"""Metric reports: JSON (machine-readable) and Markdown (for people), both written atomically.

Files are written to a temporary file in the target folder and moved into place with
`os.replace`, so a reader never sees half a report and an interrupted run leaves the old one.
JSON has no NaN: non-finite numbers are written as null (and read back as NaN by `read_json`).
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
from vsslrt.eval.keys import NEGATIVES


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


def summary_table(metrics: Mapping[str, float]) -> tuple[list[str], list[list[str]]]:
    """The headline numbers as (column headers, rows of strings).

    fixed mode: one row per threshold (cIoU, mIoU, AUC, pIA per negative, both F-scores).
    paper mode: one row per headline key of the reference.
    """
    names = [k.split("@", 1)[1] for k in metrics if k.startswith("pos/miou@")]
    if names:
        headers = ["threshold", "cIoU", "mIoU", "AUC", *(f"pIA {n}" for n in NEGATIVES), "F", "F AUC/AOC"]
        rows = []
        for t in names:
            keys = [f"pos/ciou@{t}", f"pos/miou@{t}", f"pos/auc@{t}", *(f"{n}/pia@{t}" for n in NEGATIVES)]
            keys += [f"f/pos_neg@{t}", f"f_auc_aoc/pos_neg@{t}"]
            rows.append([t, *(format_value(k, metrics[k]) for k in keys)])
        return headers, rows
    headline = [
        "CIoU", "AUC", "CIoU_adap", "AUC_adap", "CIoU_maxq3", "AUC_maxq3",
        "pIA_Silence_MaxQ3", "pIA_Noise_MaxQ3", "pIA_OffScreen_MaxQ3",
        "AOC_Silence_MaxQ3", "AOC_Noise_MaxQ3", "AOC_OffScreen_MaxQ3",
        "F_Pos_Neg", "F_AUC_AOC_Pos_Neg", "iiou_adap", "IAUC_adap",
        "Median_Max_Heatmap", "Median_Max_Heatmap_Silence", "Median_Max_Heatmap_Noise", "Median_Max_Heatmap_Offscreen",
    ]  # fmt: skip
    return ["metric", "value"], [[k, format_value(k, metrics[k])] for k in headline if k in metrics]


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
