"""`vsslrt bench` with no arguments: the built-in synthetic benchmark with the two demo models.

The demo models ship as engine folders in `vsslrt/assets/demo/` (ONNX graphs + manifest, trained by
`export/train_demo.py`): `demo-pos` was trained on positive pairs only, `demo-san` also with
silence and noise as negatives. The synthetic IS3-like test split is generated on first use into
the cache (`vsslrt.data.synth.ensure_split`). The run shows, side by side, the paper's finding: the
positives-only model still highlights the image under silence and noise, the negative-trained one
does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vsslrt.errors import InputError

DEMO_MODELS = ("demo-pos", "demo-san")


def demo_engine_dirs() -> list[Path]:
    """The shipped demo engine folders (package data)."""
    root = Path(__file__).resolve().parent / "assets" / "demo"
    folders = [root / name for name in DEMO_MODELS]
    missing = [str(f) for f in folders if not (f / "manifest.json").is_file()]
    if missing:
        raise InputError(
            f"demo models: expected engine folders with a manifest.json, got none at {', '.join(missing)}.",
            hint="reinstall vsslrt (the demo models ship as package data), or retrain them with "
            "`python -m vsslrt.export.train_demo`",
        )
    return folders


def demo_backend() -> tuple[str, str]:
    """ONNX Runtime with the best provider this machine has, and why (the demos are small CNNs)."""
    from vsslrt.engine.probe import capabilities

    caps = capabilities()
    providers = tuple(getattr(caps, "ort_providers", ()) or ())
    if "CUDAExecutionProvider" in providers:
        return "ort-cuda", "ONNX Runtime's CUDA provider is available"
    return "ort", "ONNX Runtime on the CPU (no CUDA provider installed)"


def run_default_bench(*, out: Path | None, console: Any, json_output: bool, resume: bool,
                      n_records: int | None = None, batch: int = 50) -> list[Any]:
    """Generate (once) the synthetic test split and benchmark both demo models on it."""
    from vsslrt.bench import BenchSettings
    from vsslrt.cli.commands.bench import print_summary, run_with_progress
    from vsslrt.data.synth import cached_split_dir, ensure_split

    engines = demo_engine_dirs()
    target = cached_split_dir("test", n_records=n_records)
    if not (target / "manifest.jsonl").exists():
        console.print(f"Generating the synthetic test split into {target} (first use only) ...")
    data_dir = ensure_split("test", n_records=n_records)
    backend, reason = demo_backend()
    console.print(f"Backend: {backend} ({reason}). Models: {', '.join(DEMO_MODELS)}. Data: {data_dir}")
    settings = BenchSettings(dataset="manifest", data_dir=Path(data_dir), protocol="fixed", batch=batch,
                             backend=backend, workers=2)
    run_dir = out or (Path("runs") / "demo" if resume else _fresh_run_dir(Path("runs"), "demo"))
    results = run_with_progress(engines, settings, run_dir, resume=resume, console=console)
    print_summary(results, run_dir, console, json_output)
    if not json_output:
        console.print(finding(results))
    return results


def _fresh_run_dir(root: Path, stem: str) -> Path:
    """runs/demo, or runs/demo-2, -3, ...: running the demo again never collides with a finished run."""
    candidate, k = root / stem, 1
    while candidate.exists() and any(candidate.iterdir()):
        k += 1
        candidate = root / f"{stem}-{k}"
    return candidate


def finding(results: list[Any]) -> str:
    """The paper's finding in numbers: how much each model lights up under silence and noise."""
    from vsslrt.bench import headline_threshold

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
