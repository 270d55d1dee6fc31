"""`vsslrt bench` with no arguments: the built-in synthetic benchmark with the two demo models.

The demo models and their engines come from `vsslrt.pipeline.demo`; this module generates the data
(once), runs both models side by side and prints the paper's finding and how to go on: the
positives-only model still highlights the image under silence and noise, the negative-trained one
does not. Not a command of its own (the leading underscore keeps it out of command discovery).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vsslrt.cli._display import print_summary, run_with_progress
from vsslrt.errors import InputError
from vsslrt.models import DEMO_MODELS


def run_default_bench(*, out: Path | None, console: Any, json_output: bool, resume: bool,
                      n_records: int | None = None, batch: int = 50, backend: str = "auto") -> list[Any]:
    """Generate (once) the synthetic test split, build the demos' engines for the best available
    backend (or `backend`), and benchmark both demo models side by side."""
    # lazy: the pipeline imports the engine runners; the synthetic generator imports the image/audio stack
    from vsslrt.data.synth import cached_split_dir, ensure_split
    from vsslrt.pipeline.results import BenchSettings
    from vsslrt.pipeline.demo import demo_backend, demo_engine_dirs, demo_engines

    if n_records is not None and n_records < 1:
        raise InputError(f"limit: expected an integer >= 1, got {n_records}.")
    demo_engine_dirs()  # fail early, before generating data, when the package data is missing
    target = cached_split_dir("test", n_records=n_records)
    if not (target / "manifest.jsonl").exists():
        console.print(f"Generating the synthetic test split into {target} (first use only) ...", soft_wrap=True)
    data_dir = ensure_split("test", n_records=n_records)
    backend, reason = demo_backend(backend)
    if backend == "trt":
        console.print("Building TensorRT engines of the demo models (first use only) ...")
    engines = demo_engines(backend, batch=batch)
    console.print(f"Backend: {backend} ({reason}). Models: {', '.join(DEMO_MODELS)}. Data: {data_dir}")
    settings = BenchSettings(dataset="manifest", data_dir=Path(data_dir), protocol="fixed", batch=batch,
                             backend=backend, workers=2)
    run_dir = out or (Path("runs") / "demo" if resume else fresh_run_dir(Path("runs"), "demo"))
    results = run_with_progress(engines, settings, run_dir, resume=resume, console=console)
    print_summary(results, run_dir, console, json_output)
    if not json_output:
        console.print(finding(results))
        console.print(next_steps(run_dir, engines[-1]), highlight=False, soft_wrap=True)  # copyable commands
    return results


def next_steps(run_dir: Path, engine: Path) -> str:
    """How to go on from the demo run to a deployed model with a calibrated threshold."""
    name = DEMO_MODELS[-1]
    return (f"\nDeploy {name} with a calibrated threshold:\n"
            f"  vsslrt calibrate {run_dir} --engine {name}\n"
            f"  vsslrt localize --engine {engine} --calibration {run_dir}/calibration-{name}.json IMAGE AUDIO --out localized/")


def fresh_run_dir(root: Path, stem: str) -> Path:
    """runs/demo, or runs/demo-2, -3, ...: running the demo again never collides with a finished run."""
    candidate, k = root / stem, 1
    while candidate.exists() and any(candidate.iterdir()):
        k += 1
        candidate = root / f"{stem}-{k}"
    return candidate


def finding(results: list[Any]) -> str:
    """The paper's finding in numbers: how much each model lights up under silence and noise."""
    from vsslrt.eval.report import headline_threshold  # lazy: the report module loads NumPy

    lines = ["", "What this shows (fixed protocol, each model at its own universal threshold):"]
    for r in results:
        m = r.metrics
        thr = headline_threshold(m)
        sil, noi = m.get(f"silence/pia@{thr}", float("nan")), m.get(f"noise/pia@{thr}", float("nan"))
        med = m.get("max/silence/median", float("nan"))
        lines.append(f"  {r.name}: under silence {sil:.1f}% and under noise {noi:.1f}% of the image stays above "
                     f"the threshold ({thr}); median map maximum under silence {med:.2f}.")
    lines.append("A model that listens should light up nothing when there is nothing to hear.")
    return "\n".join(lines)
