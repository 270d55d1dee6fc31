"""Universal thresholds for deployment, fitted on a finished benchmark run (`vsslrt calibrate`).

A run folder written by `vsslrt bench` keeps, per engine, the evaluator state
(`shards/<engine>/checkpoint.npz`: per-sample IoU and pIA at every candidate threshold, map maxima
by audio condition). From it this module derives the two thresholds a deployed model needs:

* the localisation threshold (where is the sound?): one of the evaluator's rules
  (`vsslrt.eval.calibration`): `max_f` (best F_Pos_Neg over the candidate grid),
  `balanced_accuracy` (cut on map maxima) or `quantile` (q-quantile of one max-value distribution,
  times a factor);
* the detection threshold (is anything sounding?): the cut on map maxima with the best balanced
  accuracy of positive audio against all negatives (silence, noise, offscreen).

The result is a `Calibration`, written as `calibration.json`, that names the engine it belongs to
(model and sha256 of the engine's manifest.json) and the data it was fitted on. It also records the
two thresholds' metrics on the fitting run and, when a held-out run of the same engine is given, on
that run: there the thresholds are only applied, never fitted.

Localisation metrics come from the per-sample sweep (IoU and pIA at each candidate threshold): a
threshold that is not a candidate is evaluated at the nearest candidate, which the report names.
Detection metrics are exact (map maxima against the threshold).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.errors import DataError, InputError, ManifestMismatchError
from vsslrt.eval import f_score
from vsslrt.eval.calibration import DISTRIBUTIONS, RULES, fit_threshold, sweep_curves
from vsslrt.eval.config import check_protocol
from vsslrt.eval.keys import NEGATIVES
from vsslrt.files import to_jsonable
from vsslrt.pipeline.runstore import COMPLETE_NAME, read_complete_marker, unfinished_hint
from vsslrt import __version__
from vsslrt.eval import Evaluator
from vsslrt.files import atomic_write_json

CALIBRATION_FILE = "calibration.json"
FORMAT = "vsslrt-calibration"
FORMAT_VERSION = 1
_BENCH_HINT = "run `vsslrt bench --engine DIR --dataset KIND --data-dir DIR --out RUNDIR` first"


def default_calibration_path(run_dir: str | Path, engine: str | None = None) -> Path:
    """RUN_DIR/calibration.json, or RUN_DIR/calibration-<engine>.json when an engine of the run is
    named (a run that compared several engines keeps one calibration per engine)."""
    return Path(run_dir) / (CALIBRATION_FILE if engine is None else f"calibration-{engine}.json")


# ------------------------------------------------------------------------------------------------
# Reading a run folder


@dataclass
class RunEngine:
    """One engine's results in a finished run folder.

    Attributes:
        run_dir: The run folder.
        engine: The engine's name in the run (its folder name).
        model: The model name from the engine's manifest.
        manifest_sha256: sha256 of the engine's manifest.json when the run was made.
        identity: The run settings stored with the evaluator state (dataset, protocol, seed, ...).
        n_samples: Samples evaluated (repetitions not counted).
        skipped: Samples skipped for unreadable files.
        evaluator: The evaluator rebuilt from its saved state.
    """

    run_dir: Path
    engine: str
    model: str
    manifest_sha256: str
    identity: dict[str, Any]
    n_samples: int
    skipped: int
    evaluator: Any

    def source(self) -> dict[str, Any]:
        """Where the numbers came from, for the calibration file."""
        ident = self.identity
        return {
            "run": str(self.run_dir.resolve()),
            "engine": self.engine,
            "dataset": ident.get("dataset"),
            "data_dir": ident.get("data_dir"),
            "protocol": ident.get("protocol"),
            "n_samples": self.n_samples,
            "repeats": ident.get("repeats"),
            "seed": ident.get("seed"),
            "skipped": self.skipped,
        }


def load_run(run_dir: str | Path, engine: str | None = None) -> RunEngine:
    """Read one engine's evaluator state from a finished run folder.

    Args:
        run_dir: A folder written by `vsslrt bench`.
        engine: The engine's name in the run; may be omitted when the run has one engine.

    Raises:
        InputError: Not a run folder, an unfinished run, or no such engine in the run.
        DataError: The run folder is damaged (unreadable or inconsistent files).
    """

    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: expected a run folder written by `vsslrt bench`, got no such folder.",
                         hint=_BENCH_HINT)
    # Only the completion marker (written last, listing every file with its sha256) proves a run
    # finished: metrics.json alone may be the first file of a run a full disk or a kill cut short.
    # The marker vouches for metrics.json here; the evaluator state has its own checks below.
    if read_complete_marker(run_dir, verify=("metrics.json",)) is None:
        if (run_dir / "shards").is_dir() or metrics_path.is_file():
            raise InputError(f"{run_dir}: expected a finished run, got an unfinished one (no {COMPLETE_NAME}).",
                             hint=unfinished_hint(run_dir))
        raise InputError(f"{run_dir}: expected a run folder written by `vsslrt bench` (metrics.json, shards/), "
                         "got a folder without them.", hint=_BENCH_HINT)
    engines = _read_json(metrics_path).get("engines")
    if not isinstance(engines, dict) or not engines:
        raise DataError(f"{metrics_path}: expected an 'engines' section with at least one engine, got none.",
                        hint="the file is damaged; rerun the benchmark")
    name = _pick_engine(run_dir, engines, engine)
    entry = engines[name]
    identity, state = _read_checkpoint(run_dir, name)
    sha = identity.get("manifest_sha256")
    recorded = (entry.get("manifest") or {}).get("sha256")
    if not isinstance(sha, str) or (recorded is not None and recorded != sha):
        raise DataError(f"{run_dir}: expected metrics.json and shards/{name} to describe the same engine, got "
                        f"manifest sha256 {str(recorded)[:12]}... and {str(sha)[:12]}....",
                        hint="the run folder mixes two runs; rerun the benchmark into a new folder")
    try:
        evaluator = Evaluator.from_state(state)
    except InputError as exc:
        raise DataError(f"{run_dir}/shards/{name}/checkpoint.npz: expected a readable evaluator state, got: "
                        f"{exc.one_line()}", hint="rerun the benchmark into a new folder") from None
    return RunEngine(run_dir=run_dir, engine=name, model=str(entry.get("model", identity.get("engine", name))),
                     manifest_sha256=sha, identity=identity, n_samples=int(entry.get("n_samples", 0)),
                     skipped=len(entry.get("skipped") or []), evaluator=evaluator)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: expected valid JSON, got: {exc}.") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(doc).__name__}.")
    return doc


def _pick_engine(run_dir: Path, engines: dict[str, Any], engine: str | None) -> str:
    names = sorted(engines)
    if engine is None:
        if len(names) > 1:
            raise InputError(f"{run_dir}: expected --engine to name one of the run's engines "
                             f"({', '.join(names)}), got none.", hint=f"add --engine {names[0]}")
        return names[0]
    if engine not in engines:
        raise InputError(f"{run_dir}: expected --engine to be one of the run's engines ({', '.join(names)}), "
                         f"got {engine!r}.")
    return engine


def _read_checkpoint(run_dir: Path, name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(identity, the model evaluator's state) of one engine; refuses a partial state."""
    path = run_dir / "shards" / name / "checkpoint.npz"
    if not path.is_file():
        raise DataError(f"{path}: expected the evaluator state of engine {name!r}, got no such file.",
                        hint="the run folder is incomplete; rerun the benchmark into a new folder")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(str(arrays["__meta__"]))
        done = arrays["__done__"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: expected a readable evaluator state, got: {exc}.",
                        hint="rerun the benchmark into a new folder") from None
    identity = meta.get("identity") or {}
    expected = identity.get("samples")
    if isinstance(expected, int) and done.shape[0] < expected:
        raise InputError(f"{run_dir}: expected a finished run, got engine {name!r} at {done.shape[0]} of "
                         f"{expected} samples.", hint="finish it with the same `vsslrt bench` command plus --resume")
    state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    if not state:
        raise DataError(f"{path}: expected the model's evaluator state (keys 'model/...'), got none.",
                        hint="rerun the benchmark into a new folder")
    return identity, state


# ------------------------------------------------------------------------------------------------
# Fitting and measuring thresholds


@dataclass(frozen=True)
class RuleChoice:
    """The localisation rule and its parameters (the quantile rule's only), checked as the options
    `vsslrt calibrate` takes; `vsslrt.eval.calibration.fit_threshold` applies it."""

    rule: str = "max_f"
    distribution: str = "pos"
    q: float = 0.75
    factor: float = 1.0

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise InputError(f"calibrate: expected --rule to be one of {', '.join(RULES)}, got {self.rule!r}.")
        if not (math.isfinite(self.factor) and self.factor > 0):
            raise InputError(f"calibrate: expected --factor to be a positive number, got {self.factor!r}.")
        if not (0.0 <= self.q <= 1.0):
            raise InputError(f"calibrate: expected --q to be in [0, 1], got {self.q!r}.")
        if self.distribution not in DISTRIBUTIONS:
            raise InputError(f"calibrate: expected --distribution to be one of {', '.join(DISTRIBUTIONS)}, "
                             f"got {self.distribution!r}.")

    def params(self) -> dict[str, Any]:
        if self.rule == "quantile":
            return {"distribution": self.distribution, "q": float(self.q), "factor": float(self.factor)}
        return {}


def fit_localization(evaluator: Any, choice: RuleChoice) -> Any:
    """The localisation threshold (a `Threshold`) of the chosen rule."""
    return fit_threshold(evaluator, choice.rule, distribution=choice.distribution, q=choice.q, factor=choice.factor)


def fit_detection(evaluator: Any) -> Any:
    """The detection threshold: balanced accuracy of map maxima, positive vs all negatives."""
    return fit_threshold(evaluator, "balanced_accuracy", negatives=NEGATIVES)


def threshold_metrics(evaluator: Any, localization: float, detection: float) -> dict[str, Any]:
    """Metrics of a (localisation, detection) threshold pair on an evaluated run.

    Localisation metrics (100 x mean IoU, cIoU, pIA per negative, F_Pos_Neg) are read from the
    per-sample sweep at the candidate nearest to `localization` (reported as `evaluated_at`).
    `gated` repeats them for a deployment that shows a mask only when the detection says
    "sounding" (a sample below the detection threshold has an empty mask: IoU 0, pIA 0).
    Detection metrics are exact: TPR on positives, TNR per negative and pooled, balanced accuracy.
    An undefined F-score (0/0) is NaN, as the evaluator's; the calibration file writes it as null.
    """
    curves = sweep_curves(evaluator)
    grid = curves["threshold"]
    k = int(np.argmin(np.abs(grid - localization)))
    at = float(grid[k])
    scalars = evaluator.per_sample()
    maxima = evaluator.max_values()
    sounding = {c: np.asarray(v) > detection for c, v in maxima.items()}

    iou = scalars["sweep_iou"][:, k]
    gated_iou = np.where(sounding["pos"], iou, 0.0)
    gated_pia = {neg: np.where(sounding[neg], scalars["sweep_pia"][:, j, k], 0.0) for j, neg in enumerate(NEGATIVES)}
    gated_keep = np.mean([100.0 - 100.0 * float(np.mean(gated_pia[n])) for n in NEGATIVES])
    localization_block = {
        "threshold": float(localization),
        "evaluated_at": at,
        "exact": bool(abs(at - localization) <= 1e-9 * max(1.0, abs(localization))),
        "pos_miou": float(curves["pos_miou"][k]),
        "pos_ciou": float(curves["pos_ciou"][k]),
        "pia": {neg: float(curves[f"{neg}_pia"][k]) for neg in NEGATIVES},
        "f_pos_neg": float(curves["f_pos_neg"][k]),
        "gated": {
            "pos_miou": 100.0 * float(np.mean(gated_iou)),
            "pia": {neg: 100.0 * float(np.mean(gated_pia[neg])) for neg in NEGATIVES},
            "f_pos_neg": f_score(100.0 * float(np.mean(gated_iou)), float(gated_keep)),
        },
    }
    tpr = float(np.mean(sounding["pos"]))
    tnr = {neg: float(np.mean(~sounding[neg])) for neg in NEGATIVES}
    pooled = float(np.mean(np.concatenate([~sounding[n] for n in NEGATIVES])))
    detection_block = {
        "threshold": float(detection),
        "tpr": tpr,
        "tnr": {**tnr, "negatives": pooled},
        "balanced_accuracy": 0.5 * (tpr + pooled),
    }
    return {"n_samples": int(scalars["sample_id"].shape[0]), "localization": localization_block,
            "detection": detection_block}


# ------------------------------------------------------------------------------------------------
# The calibration record


@dataclass(frozen=True)
class Calibration:
    """What a deployed model needs from a calibration, plus the full record.

    Attributes:
        localization_threshold: Map values above it form the mask (model's raw map scale).
        detection_threshold: A map maximum above it means "a sounding object is present".
        model: The model name.
        manifest_sha256: sha256 of the engine's manifest.json it was fitted for.
        protocol: The protocol of the fitting run ("fixed" or "paper"); it decides how audio is
            prepared, so the deployed maps match the fitted ones.
        interp: The upsampling of the fitting run ("bilinear" or "cv2").
        document: The whole calibration.json content.
        origin: Where it was read from (for messages).
    """

    localization_threshold: float
    detection_threshold: float
    model: str
    manifest_sha256: str
    protocol: str = "fixed"
    interp: str = "bilinear"
    document: dict[str, Any] = field(default_factory=dict)
    origin: str = "calibration"

    @classmethod
    def from_dict(cls, doc: Any, origin: str = "calibration") -> Calibration:
        """Validate a parsed calibration.json.

        Raises:
            InputError: A field is missing or has the wrong type.
        """
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise InputError(f"{origin}: expected a calibration file written by `vsslrt calibrate` "
                             f"(format {FORMAT!r}), got {'another JSON document' if isinstance(doc, dict) else type(doc).__name__}.",
                             hint="create one with `vsslrt calibrate RUNDIR`")
        if doc.get("format_version") != FORMAT_VERSION:
            raise InputError(f"{origin}: expected format_version {FORMAT_VERSION}, got {doc.get('format_version')!r}.",
                             hint="recalibrate with this version of vsslrt")

        def number(section: str) -> float:
            value = (doc.get(section) or {}).get("threshold") if isinstance(doc.get(section), dict) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"{origin}: expected {section}.threshold to be a finite number, got {value!r}.")
            return float(value)

        def text(key: str, allowed: tuple[str, ...] | None = None) -> str:
            value = doc.get(key)
            if not isinstance(value, str) or not value or (allowed and value not in allowed):
                want = f"one of {', '.join(allowed)}" if allowed else "a non-empty string"
                raise InputError(f"{origin}: expected {key} to be {want}, got {value!r}.")
            return value

        source = doc.get("source") if isinstance(doc.get("source"), dict) else {}
        protocol = check_protocol(source.get("protocol", "fixed"), f"{origin}: source.protocol", hint=None)
        return cls(
            localization_threshold=number("localization"),
            detection_threshold=number("detection"),
            model=text("model"),
            manifest_sha256=text("manifest_sha256"),
            protocol=protocol,
            interp=text("interp", ("bilinear", "cv2")),
            document=doc,
            origin=origin,
        )

    @classmethod
    def read(cls, path: str | Path) -> Calibration:
        """Read and validate a calibration.json."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: expected a calibration file, got no such file.",
                             hint="create one with `vsslrt calibrate RUNDIR`")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: expected a calibration file in JSON, got: {exc}.") from None
        return cls.from_dict(doc, origin=str(path))

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.document))


def as_calibration(calibration: Calibration | dict[str, Any] | str | Path) -> Calibration:
    """A `Calibration` from itself, a parsed dict or a path."""
    if isinstance(calibration, Calibration):
        return calibration
    if isinstance(calibration, dict):
        return Calibration.from_dict(calibration)
    if isinstance(calibration, (str, Path)):
        return Calibration.read(calibration)
    raise InputError(f"calibration: expected a path, a dict or a Calibration, got {type(calibration).__name__}.")


def calibrate(
    run_dir: str | Path,
    *,
    engine: str | None = None,
    choice: RuleChoice | None = None,
    holdout: str | Path | None = None,
) -> Calibration:
    """Fit the localisation and detection thresholds on a run; optionally measure them on another.

    Args:
        run_dir: A finished `vsslrt bench` run folder.
        engine: The engine's name in the run (needed when the run compared several).
        choice: The localisation rule. Defaults to `max_f`.
        holdout: A finished run of the same engine on other data, to report the thresholds'
            metrics on data they were not fitted on.

    Raises:
        InputError: See `load_run`; also a held-out run that is the fitting run itself or used
            another protocol.
        ManifestMismatchError: The held-out run is of another engine (manifest sha256 differs).
    """

    choice = choice or RuleChoice()
    run = load_run(run_dir, engine)
    loc = fit_localization(run.evaluator, choice)
    det = fit_detection(run.evaluator)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "vsslrt": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": run.model,
        "engine": run.engine,
        "manifest_sha256": run.manifest_sha256,
        "interp": run.identity.get("interp", "bilinear"),
        "localization": {"threshold": float(loc.value), "rule": choice.rule, "params": choice.params(),
                         "provenance": loc.provenance},
        "detection": {"threshold": float(det.value), "rule": "balanced_accuracy",
                      "params": {"negatives": list(NEGATIVES)}, "provenance": det.provenance},
        "source": run.source(),
        "fit": threshold_metrics(run.evaluator, loc.value, det.value),
    }
    if holdout is not None:
        held = _load_holdout(run, holdout, engine)
        doc["holdout"] = {"source": held.source(),
                          **threshold_metrics(held.evaluator, loc.value, det.value)}
    # The document is the file's content: JSON values, NaN as null.
    return Calibration.from_dict(to_jsonable(doc), origin=str(default_calibration_path(run_dir, engine)))


def _load_holdout(run: RunEngine, holdout: str | Path, engine: str | None) -> RunEngine:
    """The held-out run's entry for the calibrated engine, matched by manifest hash."""
    holdout = Path(holdout)
    if holdout.resolve() == run.run_dir.resolve():
        raise InputError(f"--holdout {holdout}: expected a run on other data, got the calibration run itself.",
                         hint="benchmark the engine on a held-out split into another folder")
    metrics_path = holdout / "metrics.json"
    engines = _read_json(metrics_path).get("engines") if metrics_path.is_file() else None
    if isinstance(engines, dict) and (engine is None or engine not in engines):
        # The same engine folder may carry another name there: its manifest hash identifies it.
        same = sorted(n for n, e in engines.items() if _manifest_sha(e) == run.manifest_sha256)
        if not same:
            have = ", ".join(f"{n} (manifest sha256 {str(_manifest_sha(e))[:12]}...)" for n, e in sorted(engines.items()))
            raise ManifestMismatchError(
                f"--holdout {holdout}: expected a run of engine {run.engine} (manifest sha256 "
                f"{run.manifest_sha256[:12]}...), got {have}.",
                hint="benchmark the same engine folder on the held-out data")
        engine = same[0]
    held = load_run(holdout, engine)
    if held.manifest_sha256 != run.manifest_sha256:
        raise ManifestMismatchError(
            f"--holdout {holdout}: expected a run of engine {run.engine} (manifest sha256 {run.manifest_sha256[:12]}...), "
            f"got engine {held.engine} (manifest sha256 {held.manifest_sha256[:12]}...).",
            hint="benchmark the same engine folder on the held-out data")
    if held.identity.get("protocol") != run.identity.get("protocol"):
        raise InputError(
            f"--holdout {holdout}: expected a run with the calibration run's protocol "
            f"({run.identity.get('protocol')}), got {held.identity.get('protocol')}.",
            hint="rerun the held-out benchmark with the same --protocol")
    return held


def _manifest_sha(entry: Any) -> Any:
    return ((entry or {}).get("manifest") or {}).get("sha256") if isinstance(entry, dict) else None


def write_calibration(calibration: Calibration, path: str | Path) -> Path:
    """Write calibration.json atomically; returns the path."""

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: expected a file path for the calibration, got a folder.",
                         hint=f"pass --out {path / CALIBRATION_FILE}")
    atomic_write_json(path, calibration.document)
    return path
