"""The accuracy gate of a reduced-precision build, in metric space.

A max |diff| on maps says little about whether a model still localises: the gate runs the real
benchmark (`vsslrt.pipeline.bench.EngineSession`, the `vsslrt.eval` Evaluator, fixed protocol) on
held-back samples twice, with the fp32 graphs on ONNX Runtime (the project's reference) and with
the candidate precision on the backend being built, and compares:

* the headline metrics, in points (percent; the max-value AUROCs x 100): pos cIoU@median,
  pos AUC@median, pos mIoU@<headline threshold>, pIA@<threshold> per negative (silence, noise,
  offscreen), F pos/neg@<threshold>, and the AUROC of the map-maximum distributions, positive vs
  each negative;
* the positive maps' argmax agreement: the share of samples whose map maximum is at the same cell.

The build fails when any |delta| exceeds `max_delta` (default 1 point) or the agreement is below
`min_argmax_agreement` (default 99 %); the error is one line with the figures. The figures go into
the manifest (`gates.<precision>`), and `format_gate` turns them into one line for `vsslrt bench`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.errors import EngineBuildError, InputError
from vsslrt.eval.keys import NEGATIVES
from vsslrt.data import BatchLoader
from vsslrt.eval.report import headline_threshold
from vsslrt.head import similarity_maps
from vsslrt.pipeline.results import BenchSettings

DEFAULT_MAX_DELTA = 1.0
DEFAULT_MIN_ARGMAX = 0.99
REFERENCE = ("ort", "fp32")
INT8_PARITY_MAX_ABS = 0.2
"""The build's parity bound for int8 maps on random realistic inputs, as a share of the map scale."""


@dataclass(frozen=True)
class GateThresholds:
    """What the gate accepts: |delta| <= max_delta points on every headline metric, agreement >= min_argmax."""

    max_delta: float = DEFAULT_MAX_DELTA
    min_argmax_agreement: float = DEFAULT_MIN_ARGMAX

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_delta) and self.max_delta >= 0):
            raise InputError(f"gate: expected the maximum metric delta to be >= 0 points, got {self.max_delta!r}.",
                             hint="pass e.g. --gate-max-delta 1.0")
        if not 0.0 <= self.min_argmax_agreement <= 1.0:
            raise InputError(f"gate: expected the minimum argmax agreement in [0, 1], got {self.min_argmax_agreement!r}.",
                             hint="pass e.g. --gate-min-argmax 0.99")


@dataclass(frozen=True)
class GateFigures:
    """The gate's measurement (also the manifest record `gates.<precision>`)."""

    precision: str
    backend: str
    reference: str  # "ort fp32"
    data: str  # what the held-back samples are
    n_samples: int
    threshold: str  # the universal threshold of the thresholded metrics
    reference_metrics: dict[str, float]
    candidate_metrics: dict[str, float]
    deltas: dict[str, float]  # label -> candidate - reference, in points
    argmax_agreement: float
    max_delta: float
    min_argmax_agreement: float
    passed: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def failures(self) -> list[str]:
        """One phrase per violated limit."""
        out = [f"{k} {v:+.2f}" for k, v in self.deltas.items() if not (abs(v) <= self.max_delta)]
        if not self.argmax_agreement >= self.min_argmax_agreement:
            out.append(f"argmax agreement {self.argmax_agreement:.1%} < {self.min_argmax_agreement:.0%}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateFigures:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("reference_metrics", "candidate_metrics", "deltas"):
            values[key] = {k: (math.nan if v is None else float(v)) for k, v in dict(values.get(key, {})).items()}
        return cls(**values)


def headline_keys(metrics: Mapping[str, float]) -> tuple[str, dict[str, str]]:
    """(threshold name, {label: metric key}) of the gated metrics of a fixed-protocol result."""

    thr = headline_threshold(metrics)
    keys = {"pos cIoU@median": "pos/ciou@median", "pos AUC@median": "pos/auc@median",
            f"pos mIoU@{thr}": f"pos/miou@{thr}"}
    keys.update({f"{n} pIA@{thr}": f"{n}/pia@{thr}" for n in NEGATIVES})
    keys[f"F pos/neg@{thr}"] = f"f/pos_neg@{thr}"
    keys.update({f"max AUROC pos vs {n}": f"max/auroc/pos_vs_{n}" for n in NEGATIVES})
    return thr, {label: key for label, key in keys.items() if key in metrics}


def _points(key: str, value: float) -> float:
    # AUROCs are probabilities; every other gated metric is already a percentage.
    return 100.0 * value if key.startswith("max/auroc/") else value


def compare(ref_metrics: Mapping[str, float], new_metrics: Mapping[str, float], ref_argmax: np.ndarray,
            new_argmax: np.ndarray, thresholds: GateThresholds, **context: Any) -> GateFigures:
    """Gate figures from two metric dicts and the per-sample argmax cells of the positive maps."""
    thr, keys = headline_keys(ref_metrics)
    deltas: dict[str, float] = {}
    for label, key in keys.items():
        a, b = float(ref_metrics[key]), float(new_metrics.get(key, math.nan))
        if math.isnan(a) and math.isnan(b):
            continue  # undefined for both (e.g. no offscreen clip): nothing to compare
        deltas[label] = _points(key, b) - _points(key, a)  # NaN on one side only: fails below
    if len(ref_argmax) != len(new_argmax) or len(ref_argmax) == 0:
        raise EngineBuildError(f"gate: expected the same non-empty set of samples twice, got {len(ref_argmax)} and "
                               f"{len(new_argmax)} maps.")
    agreement = float(np.mean(np.asarray(ref_argmax) == np.asarray(new_argmax)))
    figures = GateFigures(
        reference_metrics={k: float(ref_metrics[k]) for k in keys.values()},
        candidate_metrics={k: float(new_metrics.get(k, math.nan)) for k in keys.values()},
        deltas=deltas, argmax_agreement=agreement, threshold=thr, max_delta=thresholds.max_delta,
        min_argmax_agreement=thresholds.min_argmax_agreement, passed=True, **context,
    )
    return replace(figures, passed=not figures.failures())


def run_gate(
    folder: str | Path,
    dataset: Any,
    indices: Sequence[int],
    *,
    precision: str,
    backend: str,
    data_label: str,
    thresholds: GateThresholds = GateThresholds(),
    batch: int = 32,
    workers: int = 2,
    threads: int | None = None,
    seed: int = 0,
) -> GateFigures:
    """Benchmark `indices` of `dataset` with the folder's fp32 graphs on ONNX Runtime and with
    `precision` on `backend`, and compare (see the module docstring). Does not raise on a failed gate:
    `check` does."""

    if not indices:
        raise InputError("gate: expected held-back samples, got none.",
                         hint="use a calibration dataset with more samples than --calib-samples")
    base = BenchSettings(dataset=dataset.kind, data_dir=Path(dataset.root),
                         protocol="fixed", batch=batch, workers=workers, ogl=False, baselines=False, sweep_points=2,
                         threads=threads, seed=seed)
    ref_metrics, ref_argmax = _measure(folder, dataset, indices, replace(base, backend=REFERENCE[0], precision=REFERENCE[1]))
    new_metrics, new_argmax = _measure(folder, dataset, indices, replace(base, backend=backend, precision=precision))
    return compare(ref_metrics, new_metrics, ref_argmax, new_argmax, thresholds, precision=precision, backend=backend,
                   reference=" ".join(REFERENCE), data=data_label, n_samples=len(ref_argmax))


def _measure(folder, dataset, indices, settings) -> tuple[dict[str, float], np.ndarray]:
    """The benchmark metrics of `indices`, and the argmax cell of each positive map."""
    from vsslrt.pipeline.bench import EngineSession  # circular: the gate runs the benchmark, whose plan reports gate figures

    with EngineSession(folder, dataset, settings) as session:
        evaluators = session.plan.new_evaluators(settings)
        session.run_shard(list(indices), evaluators=evaluators)
        metrics = evaluators["model"].compute()
        loader = BatchLoader(dataset, session.spec, mode="fixed", batch_size=settings.batch, repeats=1,
                             run_seed=settings.seed, indices=list(indices), workers=settings.workers,
                             offscreen_inputs=False, noise_inputs=False)
        cells = []
        for batch in loader:
            visual = session.encoders.embed_images(np.ascontiguousarray(batch.images))
            audio = session.encoders.embed_audio(np.ascontiguousarray(batch.positive))
            maps = np.asarray(similarity_maps(visual, audio, session.encoders.manifest.head))
            cells.append(maps.reshape(len(maps), -1).argmax(axis=1))
    return metrics, np.concatenate(cells) if cells else np.empty(0, np.int64)


def check(figures: GateFigures, folder: str | Path) -> None:
    """Raise EngineBuildError (one line, with the figures) when the gate failed."""
    if figures.passed:
        return
    raise EngineBuildError(
        f"{folder}: expected {figures.precision} on {figures.backend} within {figures.max_delta:g} point(s) of "
        f"fp32 on every headline metric and >= {figures.min_argmax_agreement:.0%} argmax agreement on "
        f"{figures.n_samples} held-back samples, got {'; '.join(figures.failures())}.",
        hint="calibrate on more samples (--calib-samples) or another method (--calib-method), keep the stem "
             "(--calib-fp32-stem) or more nodes (Calibration.keep_fp32) in fp32, loosen the gate (--gate-max-delta, "
             f"--gate-min-argmax), or build --precision fp16/fp32; the folder keeps its previous manifest: "
             f"`vsslrt build --engine {folder}` retries without exporting again",
    )


def format_gate(figures: GateFigures | Mapping[str, Any]) -> str:
    """One line for `vsslrt bench`: precision, verdict, the largest deltas, the argmax agreement."""
    if not isinstance(figures, GateFigures):
        figures = GateFigures.from_dict(figures)
    verdict = "passed" if figures.passed else "FAILED"
    ranked = sorted(figures.deltas.items(), key=lambda kv: -abs(kv[1]) if math.isfinite(kv[1]) else -math.inf)
    shown = ", ".join(f"{k} {v:+.2f}" for k, v in ranked[:3])
    worst = max((abs(v) for v in figures.deltas.values()), default=0.0)
    return (f"{figures.precision} on {figures.backend} vs {figures.reference}: accuracy gate {verdict} on "
            f"{figures.n_samples} held-back samples ({figures.data}); largest |delta| {worst:.2f} point(s) "
            f"(limit {figures.max_delta:g}): {shown}; argmax agreement {figures.argmax_agreement:.1%} "
            f"(minimum {figures.min_argmax_agreement:.0%})")


def format_gates(manifest: Any, precision: str | None = None) -> list[str]:
    """The gate lines of an engine folder's manifest (all precisions, or one)."""
    gates = getattr(manifest, "gates", {}) or {}
    return [format_gate(v) for p, v in gates.items() if precision is None or p == precision]


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
