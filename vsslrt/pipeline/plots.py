"""Plots of a benchmark run (matplotlib, written atomically as PNG).

- `max_values.png`: per negative condition, the distribution of per-sample map maxima for the
  positive audio against that negative, with the thresholds drawn. Overlap is the paper's finding.
- `threshold_sweep.png`: positive mean IoU, each negative's pIA, and the F-score as functions of
  the threshold.
- `compare_<metric>.png` (several engines): one bar chart per headline metric.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.eval.keys import NEGATIVES
from vsslrt.eval.report import summary_rows
from vsslrt.files import atomic_write_bytes

_COLOURS = {"pos": "#1f77b4", "silence": "#7f7f7f", "noise": "#d62728", "offscreen": "#ff7f0e"}


def _figure(*args: Any, **kwargs: Any):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt, plt.subplots(*args, **kwargs)


def _save(plt, fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buffer.getvalue())


def _threshold_lines(ax, thresholds: Mapping[str, float]) -> None:
    # Universal thresholds (from the engine or the command line) in solid dark colours, this run's
    # calibration candidates ("cal:...") dashed, so the two families read apart.
    dark = ["#000000", "#5b2c6f", "#1b4f72", "#7b241c", "#145a32"]
    light = ["#8e44ad", "#2e86c1", "#c0392b", "#27ae60", "#d68910"]
    fixed_i = cal_i = 0
    for name, value in sorted(thresholds.items(), key=lambda kv: kv[1]):
        if name.startswith("cal:"):
            colour, style, cal_i = light[cal_i % len(light)], "--", cal_i + 1
        else:
            colour, style, fixed_i = dark[fixed_i % len(dark)], "-", fixed_i + 1
        ax.axvline(value, color=colour, linestyle=style, linewidth=1, label=f"{name} = {value:.3f}")


def plot_max_values(max_values: Mapping[str, np.ndarray], thresholds: Mapping[str, float], path: Path,
                    *, title: str = "") -> None:
    """Histograms of map maxima: positive vs each negative, one panel per negative."""
    plt, (fig, axes) = _figure(1, 3, figsize=(14, 3.8), sharey=False)
    pos = np.asarray(max_values["pos"], dtype=np.float64)
    all_values = np.concatenate([np.asarray(max_values[c], dtype=np.float64) for c in ("pos", *NEGATIVES)])
    lo, hi = float(np.min(all_values)), float(np.max(all_values))
    if hi <= lo:
        hi = lo + 1e-6
    bins = np.linspace(lo, hi, 41)
    for ax, neg in zip(axes, NEGATIVES):
        values = np.asarray(max_values[neg], dtype=np.float64)
        ax.hist(pos, bins=bins, alpha=0.55, color=_COLOURS["pos"], label=f"positive (n={pos.size})")
        ax.hist(values, bins=bins, alpha=0.55, color=_COLOURS[neg], label=f"{neg} (n={values.size})")
        _threshold_lines(ax, thresholds)
        ax.set_title(f"map maximum: positive vs {neg}")
        ax.set_xlabel("per-sample maximum of the raw map")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("samples")
    if title:
        fig.suptitle(title)
    _save(plt, fig, path)


def plot_threshold_sweep(curves: Mapping[str, np.ndarray], thresholds: Mapping[str, float], path: Path,
                         *, title: str = "") -> None:
    """Positive mean IoU, negative pIA and F as functions of the threshold."""
    plt, (fig, ax) = _figure(figsize=(8, 4.5))
    t = np.asarray(curves["threshold"])
    ax.plot(t, curves["pos_miou"], color=_COLOURS["pos"], linewidth=2, label="positive mean IoU x100")
    for neg in NEGATIVES:
        ax.plot(t, curves[f"{neg}_pia"], color=_COLOURS[neg], label=f"{neg} pIA (% of image)")
    ax.plot(t, curves["f_pos_neg"], color="green", linewidth=2, label="F (pos mIoU vs 100 - neg pIA)")
    _threshold_lines(ax, thresholds)
    ax.set_xlabel("threshold (model's map scale)")
    ax.set_ylabel("percent")
    ax.set_ylim(-2, 102)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title or "threshold sweep")
    _save(plt, fig, path)


def plot_comparison(results: list[Any], out: Path) -> None:
    """One bar chart per summary metric, engines side by side."""
    summaries = [{row[0]: row[1] for row in summary_rows(r.metrics, r.baselines)} for r in results]
    for label in summaries[0]:
        values = []
        for rows in summaries:
            try:
                values.append(float(rows.get(label, "nan")))
            except ValueError:
                values.append(float("nan"))
        plt, (fig, ax) = _figure(figsize=(1.2 + 1.1 * len(results), 3.2))
        ax.bar(range(len(results)), values, color="#1f77b4")
        ax.set_xticks(range(len(results)), [r.name for r in results], rotation=20, ha="right")
        ax.set_title(label)
        slug = "".join(ch if ch.isalnum() else "_" for ch in label).strip("_").lower()
        _save(plt, fig, out / f"compare_{slug}.png")
