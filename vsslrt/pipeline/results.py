"""What a benchmark run is given and what it returns: settings, per-engine and per-shard results.

Host data only (no encoders, no files): the single-process run (`vsslrt.pipeline.bench`), the Ray
driver (`vsslrt.pipeline.distributed`), the run folder writer (`vsslrt.pipeline.runfolder`) and the
CLI all speak these types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.errors import InputError
from vsslrt.eval.config import check_protocol
from vsslrt.eval.protocols import parse_protocol


@dataclass
class BenchSettings:
    """What to run; the CLI fills this from its options.

    Attributes:
        dataset: "vggss", "is3", "flickr" or "manifest".
        data_dir: The dataset folder.
        protocol: "fixed" (default) or "paper".
        repeats: Negative sets per sample (None: 1 in fixed mode, 10 in paper mode, like the paper).
        seed: The run seed (negatives of sample i, repetition r depend on (seed, r, i) only).
        thresholds: Universal thresholds by name; None takes the engine's (manifest) thresholds.
        fixed: The fixed threshold.
        interp: Upsampling of the maps; None: bilinear (paper mode: the model's reference choice per dataset).
        batch: Samples per batch.
        limit: Evaluate only the first `limit` samples.
        noise_bank: 0 for per-sample noise; K > 0 for a fixed bank of K noise inputs (deviation).
        workers: Background data workers.
        skip_bad: Skip samples with unreadable files (counted in the report) instead of failing.
        ogl: Compute object-guided (OGL) metrics when the engine folder has an object graph.
        baselines: Score the audio-agnostic baselines too.
        sweep_points: Candidate thresholds for the calibration sweep and its plot.
        backend, precision, threads: Passed to `vsslrt.pipeline.encoders.open_encoders`.
        metadata: Extra `load_dataset` arguments (metadata_dir, annotation_file, ...).
        protocols: The protocol presets to report beside the negative-audio one
            (`vsslrt.eval.protocols`): None or "all" for every preset that applies to the dataset, or
            "NAME[:MODE],..." (the mode defaults to `protocol`).
        examples: Worst samples per condition drawn into `examples/<engine>/` (0: none).
    """

    dataset: str
    data_dir: Path
    protocol: str = "fixed"
    repeats: int | None = None
    seed: int = 0
    thresholds: dict[str, float] | None = None
    fixed: float = 0.5
    interp: str | None = None
    batch: int = 32
    limit: int | None = None
    noise_bank: int = 0
    workers: int = 2
    skip_bad: bool = False
    ogl: bool = True
    baselines: bool = True
    sweep_points: int = 101
    backend: str | None = None
    precision: str | None = None
    threads: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    trust_engine_code: bool = False  # open_encoders(allow_host_code=...): plans with embedded host code
    protocols: str | None = None
    examples: int = 0

    @property
    def effective_repeats(self) -> int:
        return self.repeats if self.repeats is not None else (10 if self.protocol == "paper" else 1)

    def check(self) -> None:
        """Refuse settings out of range before any data is read (the protocol through `vsslrt.eval.config`)."""

        check_protocol(self.protocol)
        for name, value, low in (("batch", self.batch, 1), ("repeats", self.effective_repeats, 1),
                                 ("noise bank", self.noise_bank, 0), ("seed", self.seed, 0),
                                 ("workers", self.workers, 0), ("sweep points", self.sweep_points, 2),
                                 ("examples", self.examples, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InputError(f"{name}: expected an integer >= {low}, got {value!r}.")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"limit: expected an integer >= 1, got {self.limit!r}.")
        self.requested_protocols()

    def requested_protocols(self) -> list[tuple[str, str]] | None:
        """(preset, mode) pairs asked for, None for every applicable preset (syntax checked here)."""

        if self.protocols is None or str(self.protocols).strip().lower() in ("", "all"):
            return None
        out: list[tuple[str, str]] = []
        for item in str(self.protocols).split(","):
            if item.strip():
                preset, mode = parse_protocol(item, default_mode=self.protocol)
                if (preset.name, mode) not in out:
                    out.append((preset.name, mode))
        return out


@dataclass
class EngineResult:
    """Everything one engine produced in a run."""

    name: str
    model: str
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    thresholds: dict[str, dict[str, Any]]
    calibration: dict[str, dict[str, Any]]
    max_values: dict[str, np.ndarray]
    sweep: dict[str, np.ndarray] | None
    latency: dict[str, Any]
    n_samples: int
    skipped: list[dict[str, Any]]
    manifest: dict[str, Any]
    state: dict[str, np.ndarray] | None = None  # every evaluator's state, "<evaluator>/<array>"
    identity: dict[str, Any] | None = None  # the run identity the state belongs to
    # preset -> {"provenance": Preset.provenance(mode), "metrics": {...}} (or "note" where none were computed)
    protocols: dict[str, dict[str, Any]] = field(default_factory=dict)
    gates: list[str] = field(default_factory=list)  # `vsslrt.pipeline.gate.format_gates` of the run's precision
    missing_keys: dict[str, str] = field(default_factory=dict)  # paper mode: reference key -> why it is absent


@dataclass
class ShardResult:
    """What one engine produced on a shard of sample indices: host data only, nothing written.

    Attributes:
        states: `Evaluator.state()` by evaluator ("model", "baseline:<name>"); mergeable, because
            sample ids are global (repetition * len(dataset) + index).
        done: Sample indices finished (evaluated or skipped), ascending.
        skipped: Skipped samples (index, name, file, reason), in batch order.
        timings: Per-batch stage times in seconds by stage, and "setup_s".
        backend, precision, use_ogl: What the encoders ran with.
        stopped: True when `on_batch` asked to stop before the shard's end.
    """

    states: dict[str, dict[str, np.ndarray]]
    done: list[int]
    skipped: list[dict[str, Any]]
    timings: dict[str, list[float]]
    backend: str
    precision: str
    use_ogl: bool
    stopped: bool = False


Progress = Callable[[str, int, int], None]  # (engine name, samples done, samples total)

# on_batch(batch_evaluators, batch_done, batch_skipped, batch_timings) after every batch of a shard,
# with what THAT batch added (its own evaluators hold only its samples); True stops the shard.
BatchHook = Callable[[dict[str, Any], set[int], list[dict[str, Any]], dict[str, list[float]]], bool]
