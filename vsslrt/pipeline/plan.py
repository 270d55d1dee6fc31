"""How one engine is evaluated, from its manifest and the settings alone (host only, no encoders).

`plan_engine` fixes the run's universal thresholds (given, or the manifest's, with provenance),
the upsampling, the calibration sweep grid and the scored baselines; `EnginePlan` creates the
evaluators and turns their (merged) state into an `EngineResult`. A single-process run
(`vsslrt.pipeline.bench`) and a Ray driver (`vsslrt.pipeline.distributed`) build the same plan, so
both give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt import __version__
from vsslrt.errors import DataError, InputError
from vsslrt.eval.keys import PAPER_UNIVERSAL
from vsslrt.files import sha256_file
from vsslrt.pipeline.baselines import BASELINES
from vsslrt.pipeline.gate import format_gates
from vsslrt.pipeline.latency import latency_summary
from vsslrt.pipeline.results import BenchSettings, EngineResult
from vsslrt.pipeline.states import join_states
from vsslrt.eval import Evaluator
from vsslrt.eval.calibration import candidate_grid, fit_candidates, sweep_curves
from vsslrt.eval.coverage import INTERACTIVE_KEYS, missing_reference_keys
from vsslrt.eval.protocols import applicable_protocols, check_applicable, get_preset, missing_needs
from vsslrt.eval.extended import ExtendedEvaluator
from vsslrt.eval.interactive import InteractiveEvaluator
from vsslrt.eval.masks import MaskEvaluator
from vsslrt.eval.retrieval import RetrievalEvaluator
from vsslrt.pipeline.multisource import NAME as MULTISOURCE, MixturePanels
from vsslrt.models import REGISTRY


@dataclass
class EnginePlan:
    """How one engine is evaluated, from its manifest and the settings alone (no encoders needed).

    A single-process run and a distributed driver build the same plan, so both create evaluators
    with the same configuration and turn the merged evaluator state into the same `EngineResult`.
    """

    folder: Path
    manifest: Any
    backend: str
    precision: str
    use_ogl: bool
    thresholds: dict[str, dict[str, Any]]
    interp: str
    value_range: tuple[float, float]
    sweep: np.ndarray
    baseline_names: list[str]
    manifest_sha256: str
    # (preset, mode) reported beside the negative-audio protocol, each by its own evaluator
    protocols: list[tuple[str, str]] = field(default_factory=list)
    protocol_notes: dict[str, str] = field(default_factory=dict)  # applicable presets bench cannot compute
    has_groups: bool | None = None  # whether the dataset has interactive groups (None: unknown)
    n_mixtures: int = 0  # the duet list's mixtures (multi-source protocol)

    @property
    def name(self) -> str:
        return self.folder.name

    def new_evaluators(self, settings: BenchSettings) -> dict[str, Any]:
        """Empty evaluators: "model", "baseline:<name>" for each scored baseline, "protocol:<preset>"."""

        def new(sweep: Any) -> Any:
            return Evaluator(protocol=settings.protocol, thresholds={k: v["value"] for k, v in self.thresholds.items()},
                             fixed=settings.fixed, interp=self.interp, sweep=sweep)

        # Only the model's evaluator keeps the calibration sweep (per-sample values at every candidate
        # threshold); the baselines are scored at the run's thresholds, which keeps their state small.
        return {"model": new(self.sweep), **{f"baseline:{b}": new(None) for b in self.baseline_names},
                **{f"protocol:{name}": protocol_evaluator(name, mode, n_mixtures=self.n_mixtures)
                   for name, mode in self.protocols}}

    def identity(self, settings: BenchSettings, n_samples: int) -> dict[str, Any]:
        """What a resume checkpoint must match: every setting that changes the numbers."""
        return {
            "vsslrt": __version__, "engine": self.name, "manifest_sha256": self.manifest_sha256,
            "dataset": settings.dataset, "data_dir": str(Path(settings.data_dir).resolve()), "samples": n_samples,
            "protocol": settings.protocol, "repeats": settings.effective_repeats, "seed": settings.seed,
            "thresholds": self.thresholds, "fixed": settings.fixed, "interp": self.interp, "batch": settings.batch,
            "noise_bank": settings.noise_bank, "ogl": self.use_ogl, "baselines": self.baseline_names,
            "backend": self.backend, "precision": self.precision, "sweep_points": settings.sweep_points,
            "protocols": [list(p) for p in self.protocols],
        }

    def result(self, evaluators: dict[str, Any], skipped: list[dict[str, Any]], timings: dict[str, list[float]],
               settings: BenchSettings, latency: dict[str, Any] | None = None,
               identity: dict[str, Any] | None = None) -> EngineResult:
        """Metrics, baselines, calibration and latency from the (merged) evaluators of the whole run.

        Args:
            latency: The latency block; defaults to the per-batch summary of `timings`.
            identity: The run identity (`identity()`), stored with the final state in the run folder.
        """
        model_ev = evaluators["model"]
        if len(model_ev) == 0:
            raise DataError(f"{settings.data_dir}: no sample could be evaluated ({len(skipped)} skipped).",
                            hint="run without --skip-bad to see the first error")
        repeats = settings.effective_repeats
        metrics = model_ev.compute()
        base_metrics = {k.split(":", 1)[1]: ev.compute() for k, ev in evaluators.items() if k.startswith("baseline:")}
        calibration, sweep_curves = _calibrate(model_ev)
        if latency is None:
            latency = latency_summary(timings, repeats, self.backend, self.precision, settings.protocol)
        manifest = self.manifest
        return EngineResult(
            name=self.name, model=manifest.model, metrics=metrics, baselines=base_metrics,
            thresholds=self.thresholds, calibration=calibration, max_values=model_ev.max_values(), sweep=sweep_curves,
            latency=latency, n_samples=len(model_ev) // repeats, skipped=skipped,
            manifest={"model": manifest.model, "frontend": manifest.frontend, "backend": self.backend,
                      "precision": self.precision, "checkpoint": manifest.checkpoint.label,
                      "sha256": self.manifest_sha256, "ogl": self.use_ogl, "interp": self.interp},
            state=join_states({k: ev.state() for k, ev in evaluators.items()}),
            identity=identity, protocols=self._protocol_results(evaluators, settings),
            gates=format_gates(manifest, self.precision), missing_keys=self._missing_keys(metrics, settings),
        )

    def _protocol_results(self, evaluators: dict[str, Any], settings: BenchSettings) -> dict[str, dict[str, Any]]:
        """Preset -> provenance and metrics; the negative-audio metrics are the result's own `metrics`."""

        out: dict[str, dict[str, Any]] = {"negative-audio": {
            "provenance": get_preset("negative-audio").provenance(settings.protocol), "metrics": "see metrics"}}
        for name, mode in self.protocols:
            ev = evaluators[f"protocol:{name}"]
            entry: dict[str, Any] = {"provenance": get_preset(name).provenance(mode)}
            if len(ev) == 0:
                entry["note"] = "no sample of this run reached this protocol's evaluator"
            else:
                entry["metrics"] = ev.compute()
                entry["n_samples"] = len(ev)
            if hasattr(ev, "notes"):  # what else the protocol records (multi-source: its queries, unscored mixtures)
                entry.update(ev.notes())
            out[name] = entry
        for name, note in self.protocol_notes.items():
            out[name] = {"provenance": get_preset(name).provenance(settings.protocol), "note": note}
        return out

    def _missing_keys(self, metrics: dict[str, float], settings: BenchSettings) -> dict[str, str]:
        """Paper mode: the reference keys this run cannot produce, with the reason of each."""

        if settings.protocol != "paper":
            return {}
        groups = self.has_groups if self.has_groups is not None else any(k in metrics for k in INTERACTIVE_KEYS)
        return missing_reference_keys(metrics, object_maps=self.use_ogl, groups=groups, protocol="paper")


def plan_engine(folder: Path, settings: BenchSettings, manifest, *, backend: str, precision: str,
                use_ogl: bool, dataset: Any = None) -> EnginePlan:
    """The plan of one engine folder for these settings.

    Args:
        folder: The engine folder.
        settings: What to run.
        manifest: The folder's (verified) manifest.
        backend, precision: What the encoders run with (as resolved by `open_encoders`).
        use_ogl: Whether the object-saliency graph is opened (OGL metrics and the objectness baseline).
        dataset: The run's dataset: the protocol presets are resolved against it (none without it).
    """

    value_range = (manifest.head.offset - manifest.head.scale, manifest.head.offset + manifest.head.scale)
    return EnginePlan(
        folder=Path(folder), manifest=manifest, backend=backend, precision=precision, use_ogl=use_ogl,
        thresholds=_thresholds(settings, manifest), interp=settings.interp or _default_interp(settings, manifest),
        value_range=value_range, sweep=candidate_grid(value_range, settings.sweep_points),
        baseline_names=[b for b in BASELINES if settings.baselines and (b != "objectness" or use_ogl)],
        manifest_sha256=_manifest_hash(Path(folder)),
        **({} if dataset is None else resolve_protocols(settings, dataset)),
    )


# ------------------------------------------------------------------------------------------------
# Protocol presets (vsslrt.eval.protocols) and their evaluators

# Applicable presets a benchmark run cannot compute, and why (reported instead of left out).
NOT_IN_BENCH = {
    "acl-extended": "needs ACL-SSL's own confidence (the model's masked-embedding cosine), which the "
                    "split encoders do not give; score it with vsslrt.eval.extended.ExtendedEvaluator('acl')",
}


def protocol_evaluator(name: str, mode: str, *, n_mixtures: int = 0) -> Any:
    """A new evaluator of one preset (beside "model", the negative-audio evaluator)."""
    if name == MULTISOURCE:

        return MixturePanels(mode, n_mixtures=n_mixtures)
    if name == "slavc-extended":

        return ExtendedEvaluator("slavc", mode)
    if name == "sslalign-is3":

        return InteractiveEvaluator(mode)
    if name == "retrieval":

        return RetrievalEvaluator()
    if name in ("avsbench", "avsbench-robust"):

        # AVSBench scores the positive map only; the robust variant every condition against the positive mask.
        return MaskEvaluator(mode, conditions=("pos",)) if name == "avsbench" else MaskEvaluator(mode)
    raise InputError(f"protocol {name}: expected a preset a benchmark run computes, got {name!r}.",
                     hint=NOT_IN_BENCH.get(name, "vsslrt bench --help lists the protocols"))


def resolve_protocols(settings: BenchSettings, dataset: Any) -> dict[str, Any]:
    """The presets of the run (EnginePlan fields): those asked for, checked against the dataset, or
    every applicable one. A preset the dataset cannot serve is a one-line InputError (before any batch)."""

    requested = settings.requested_protocols()
    chosen: list[tuple[str, str]] = []
    notes: dict[str, str] = {}
    if requested is None:
        requested = [(p.name, settings.protocol) for p in applicable_protocols(dataset)]
        for name in [n for n, _ in requested if n in NOT_IN_BENCH]:
            notes[name] = NOT_IN_BENCH[name]
        requested = [(n, m) for n, m in requested if n not in NOT_IN_BENCH]
    for name, mode in requested:
        if name == "negative-audio":  # the run's own evaluator ("model"), in --protocol's mode
            if mode != settings.protocol:
                raise InputError(f"protocols: expected negative-audio in the --protocol mode {settings.protocol}, "
                                 f"got negative-audio:{mode}.", hint=f"pass --protocol {mode} instead")
            continue
        check_applicable(name, dataset)
        if name in NOT_IN_BENCH:
            raise InputError(f"protocol {name}: expected a preset a benchmark run computes, got {name}.",
                             hint=NOT_IN_BENCH[name])
        chosen.append((name, mode))
    return {"protocols": chosen, "protocol_notes": notes,
            "has_groups": not missing_needs(get_preset("sslalign-is3"), dataset),
            "n_mixtures": len(getattr(dataset, "mixtures", ()))}


# ------------------------------------------------------------------------------------------------
# Thresholds, interpolation, calibration


def _thresholds(settings: BenchSettings, manifest) -> dict[str, dict[str, Any]]:
    if settings.thresholds is not None:
        chosen = {k: {"value": float(v), "provenance": "given on the command line"} for k, v in settings.thresholds.items()}
    else:
        chosen = {k: {"value": float(t.value), "provenance": t.provenance} for k, t in manifest.thresholds.items()}
    if settings.protocol == "paper":
        missing = [k for k in PAPER_UNIVERSAL if k not in chosen]
        if missing:
            raise InputError(
                f"paper protocol: expected universal thresholds max, max10 and maxq3, got none for {', '.join(missing)}.",
                hint="pass --thresholds max=...,max10=...,maxq3=... (the engine's manifest has none)",
            )
    return chosen


def _default_interp(settings: BenchSettings, manifest) -> str:
    if settings.protocol == "paper":

        spec = REGISTRY.get(manifest.model)
        if spec is not None:
            return spec.interp_paper.get(settings.dataset, "bilinear")
    return "bilinear"


def _calibrate(evaluator) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray] | None]:
    """This run's calibration candidates (`vsslrt.eval.calibration.RUN_CANDIDATES`) and sweep curves."""

    try:
        curves = sweep_curves(evaluator)
    except InputError:
        curves = None
    return fit_candidates(evaluator), curves


def _manifest_hash(folder: Path) -> str:
    return sha256_file(folder / "manifest.json")
