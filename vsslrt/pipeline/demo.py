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
from vsslrt.models import DEMO_ASSETS, DEMO_MODELS



def demo_engine_dirs() -> list[Path]:
    """The shipped demo engine folders (package data)."""
    folders = [DEMO_ASSETS / name for name in DEMO_MODELS]
    missing = [str(f) for f in folders if not (f / "manifest.json").is_file()]
    if missing:
        raise InputError(
            f"demo models: expected engine folders with a manifest.json, got none at {', '.join(missing)}.",
            hint="reinstall vsslrt (the demo models ship as package data), or retrain them with "
            "`python -m vsslrt.export.train_demo`",
        )
    return folders


def demo_backend(requested: str = "auto", caps: Any = None) -> tuple[str, str]:
    """The backend the demos run with, and why: the best this machine has unless one is requested."""
    from vsslrt.engine.probe import capabilities, choose_backend

    return choose_backend(requested, caps if caps is not None else capabilities())


def demo_engines(backend: str, *, batch: int, cache: Path | None = None, **build_options: Any) -> list[Path]:
    """Engine folders of the demos for `backend`.

    ONNX Runtime runs the shipped ONNX graphs as they are. For native TensorRT each shipped folder is
    copied once into the cache (`<cache>/demo-engines/<manifest sha256[:12]>/<name>`, never into the
    installed package) and its engines are built there through the engine cache, with the parity
    check against ONNX Runtime fp32; later runs reuse them (`vsslrt.pipeline.build.build_exported_folder`).

    Args:
        backend: The resolved backend ("ort", "ort-cuda", "ort-trt" or "trt").
        batch: The benchmark's batch size (the TensorRT profile's optimum; its maximum is >= this).
        cache: Root of the copies. Defaults to the cache of `vsslrt.data.synth.cache_root`.
        build_options: Passed to `build_exported_folder` (tests inject stand-in modules here).
    """
    shipped = demo_engine_dirs()
    if backend != "trt":
        return shipped
    import shutil
    import tempfile

    from vsslrt.pipeline.build import build_exported_folder
    from vsslrt.data.synth import cache_root
    from vsslrt.files import sha256_file

    root = (cache if cache is not None else cache_root().parent) / "demo-engines"
    root.mkdir(parents=True, exist_ok=True)
    folders = []
    for source in shipped:
        # <digest>/<name>: the folder keeps the model's name, which names its results in the run.
        digest = sha256_file(source / "manifest.json")[:12]
        target = root / digest / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_dir():  # copy into a temporary sibling, then rename: never a half copy
            staging = Path(tempfile.mkdtemp(prefix=f".{source.name}-", dir=target.parent))
            shutil.copytree(source, staging, dirs_exist_ok=True)
            try:
                staging.rename(target)
            except OSError:  # another run made it meanwhile
                shutil.rmtree(staging, ignore_errors=True)
        build_exported_folder(target, backend="trt", precision="fp32", batch=f"1:{batch}:{max(64, batch)}",
                              **build_options)
        folders.append(target)
    return folders


def run_default_bench(*, out: Path | None, console: Any, json_output: bool, resume: bool,
                      n_records: int | None = None, batch: int = 50, backend: str = "auto") -> list[Any]:
    """Generate (once) the synthetic test split, build the demos' engines for the best available
    backend (or `backend`), and benchmark both demo models side by side."""
    from vsslrt.pipeline.bench import BenchSettings
    from vsslrt.cli.commands.bench import print_summary, run_with_progress
    from vsslrt.data.synth import cached_split_dir, ensure_split

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
    run_dir = out or (Path("runs") / "demo" if resume else _fresh_run_dir(Path("runs"), "demo"))
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


def _fresh_run_dir(root: Path, stem: str) -> Path:
    """runs/demo, or runs/demo-2, -3, ...: running the demo again never collides with a finished run."""
    candidate, k = root / stem, 1
    while candidate.exists() and any(candidate.iterdir()):
        k += 1
        candidate = root / f"{stem}-{k}"
    return candidate


def finding(results: list[Any]) -> str:
    """The paper's finding in numbers: how much each model lights up under silence and noise."""
    from vsslrt.pipeline.bench import headline_threshold

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
