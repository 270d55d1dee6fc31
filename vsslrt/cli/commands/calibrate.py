"""`vsslrt calibrate`: deployment thresholds from a finished benchmark run."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from vsslrt.cli._options import examples
from vsslrt.errors import InputError

CALIBRATE_EXAMPLES = [
    "vsslrt calibrate runs/ezvsl-is3                                   # F-maximising localisation threshold",
    "vsslrt calibrate runs/ezvsl-is3 --rule quantile --distribution pos --q 0.75",
    "vsslrt calibrate runs/demo --engine demo-san                      # writes runs/demo/calibration-demo-san.json",
    "vsslrt calibrate runs/compare --engine ezvsl --holdout runs/ezvsl-vggss --out ezvsl.calibration.json",
]


# The choices of `vsslrt.pipeline.calibrate` (RULES, DISTRIBUTIONS), spelled out here because that module
# loads NumPy's statistics stack, which `--help` must not pay for; tests/cli check that they agree.
class Rule(str, Enum):
    max_f = "max_f"
    balanced_accuracy = "balanced_accuracy"
    quantile = "quantile"


class Distribution(str, Enum):
    pos = "pos"
    silence = "silence"
    noise = "noise"
    offscreen = "offscreen"
    negatives = "negatives"


def calibrate(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder of `vsslrt bench`.", show_default=False)],
    engine: Annotated[str | None, typer.Option(
        "--engine", help="The engine's name in the run (needed when the run compared several).")] = None,
    rule: Annotated[Rule, typer.Option(
        "--rule", help="Localisation threshold rule: max_f (best F_Pos_Neg over the candidate grid), "
        "balanced_accuracy (cut on map maxima, positive vs negative audio) or quantile "
        "(--factor x the --q quantile of one max-value --distribution).")] = Rule.max_f,
    distribution: Annotated[Distribution | None, typer.Option(
        "--distribution", help="Quantile rule: which map maxima. Defaults to pos.")] = None,
    q: Annotated[float | None, typer.Option("--q", help="Quantile rule: the quantile in [0, 1]. Defaults to 0.75.")] = None,
    factor: Annotated[float | None, typer.Option(
        "--factor", help="Quantile rule: multiplier of the quantile. Defaults to 1.0.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Calibration file to write. Defaults to RUN_DIR/calibration.json, or "
        "RUN_DIR/calibration-ENGINE.json with --engine.")] = None,
    holdout: Annotated[Path | None, typer.Option(
        "--holdout", help="A finished run of the same engine on other data: report the thresholds' "
        "metrics there (not fitted there).")] = None,
) -> None:
    """Fit the localisation and detection thresholds of a model on a finished benchmark run."""
    # lazy: the calibration reads the run's arrays (NumPy) and the evaluator
    from vsslrt.pipeline.calibrate import RuleChoice, default_calibration_path, write_calibration
    from vsslrt.pipeline.calibrate import calibrate as fit

    given = [name for name, value in (("--distribution", distribution), ("--q", q), ("--factor", factor))
             if value is not None]
    if given and rule is not Rule.quantile:
        raise InputError(f"calibrate: expected {', '.join(given)} only with --rule quantile, got --rule {rule.value}.",
                         hint="add --rule quantile, or drop those options")
    choice = RuleChoice(rule.value, (distribution or Distribution.pos).value,
                        0.75 if q is None else q, 1.0 if factor is None else factor)
    calibration = fit(run_dir, engine=engine, choice=choice, holdout=holdout)
    path = write_calibration(calibration, out or default_calibration_path(run_dir, engine))
    _print_summary(calibration.document, path)


def _print_summary(doc: dict[str, Any], path: Path) -> None:
    # lazy: Rich loads only when a command prints
    from rich.console import Console
    from rich.table import Table

    console = Console()
    source = doc["source"]
    console.print(f"{doc['engine']} ({doc['model']}), fitted on {source['n_samples']} samples of {source['dataset']} "
                  f"({source['protocol']} protocol)")
    for key, label in (("localization", "localisation"), ("detection", "detection")):
        entry = doc[key]
        console.print(f"{label} threshold: {entry['threshold']:.4f}  [{entry['rule']}] {entry['provenance']}",
                      highlight=False)
    table = Table(title="metrics of the calibrated thresholds")
    table.add_column("metric")
    columns = [("fit", doc["fit"])] + ([("holdout", doc["holdout"])] if "holdout" in doc else [])
    for name, _ in columns:
        table.add_column(name, justify="right")
    negatives = list(doc["fit"]["localization"]["pia"])  # the conditions the calibration file holds, in its order
    rows = [
        ("samples", lambda m: str(m["n_samples"])),
        ("pos mIoU (%)", lambda m: _pct(m["localization"]["pos_miou"])),
        *[(f"{neg} pIA (%)", lambda m, n=neg: _pct(m["localization"]["pia"][n])) for neg in negatives],
        ("F pos/neg", lambda m: _pct(m["localization"]["f_pos_neg"])),
        ("F pos/neg, gated by detection", lambda m: _pct(m["localization"]["gated"]["f_pos_neg"])),
        ("detection TPR", lambda m: f"{m['detection']['tpr']:.3f}"),
        *[(f"detection TNR {neg}", lambda m, n=neg: f"{m['detection']['tnr'][n]:.3f}")
          for neg in negatives],
        ("detection balanced accuracy", lambda m: f"{m['detection']['balanced_accuracy']:.3f}"),
    ]
    for label, cell in rows:
        table.add_row(label, *[cell(metrics) for _, metrics in columns])
    console.print(table)
    at = doc["fit"]["localization"]
    if not at["exact"]:
        console.print(f"localisation metrics are read at the nearest candidate threshold {at['evaluated_at']:.4f}",
                      highlight=False)
    console.print(f"wrote {path}", highlight=False, soft_wrap=True)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def register(app: typer.Typer) -> None:
    app.command("calibrate", epilog=examples(CALIBRATE_EXAMPLES))(calibrate)
