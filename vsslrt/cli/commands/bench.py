"""`vsslrt bench`: the full positive/negative benchmark (or, with no arguments, the built-in demo)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

from vsslrt.cli._display import print_latency, print_summary, run_with_progress
from vsslrt.cli._options import (BackendOpt, DatasetKind, FixedOpt, Interp, PrecisionOpt, Protocol,
                                 TrustEngineCodeOpt, either, examples, value)
from vsslrt.cli.commands._demo import run_default_bench
from vsslrt.errors import InputError

BENCH_EXAMPLES = [
    "vsslrt bench                                                    # built-in synthetic benchmark, two demo models",
    "vsslrt bench --limit 200                                        # a quick look: a 200-record synthetic split",
    "vsslrt bench --engine engines/ezvsl --dataset is3 --data-dir /data/IS3 --out runs/ezvsl-is3",
    "vsslrt bench --engine engines/ezvsl --engine engines/slavc --dataset vggss --data-dir /data/VGGSS --protocol paper",
    "vsslrt bench --engine engines/ezvsl --dataset is3 --data-dir /data/IS3 --out runs/ezvsl-is3 --resume",
    "vsslrt bench --engine engines/ezvsl --latency-only --out runs/ezvsl-latency",
    "vsslrt bench --engine engines/ezvsl --dataset vggss --data-dir /data/VGGSS --ray             # local Ray instance",
    "vsslrt bench --engine engines/ezvsl --dataset vggss --data-dir /data/VGGSS --ray head:6379   # Ray cluster",
]


# `--ray` with no value: a local Ray instance (see vsslrt.pipeline.distributed.LOCAL).
RAY_LOCAL = "local"


class BenchCommand(TyperCommand):
    """`bench` with an option whose value is optional: `--ray` alone means `--ray local`."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        return super().parse_args(ctx, with_optional_value(args, "--ray", RAY_LOCAL))


def with_optional_value(args: list[str], option: str, default: str) -> list[str]:
    """Insert `default` after a bare `option` (last, or followed by another option)."""
    out: list[str] = []
    for position, arg in enumerate(args):
        if arg == "--":
            return out + args[position:]
        out.append(arg)
        if arg == option and (position + 1 == len(args) or args[position + 1].startswith("-")):
            out.append(default)
    return out


def bench(
    engine: Annotated[list[Path] | None, typer.Option(
        "--engine", help="Engine folder (from `vsslrt build` or `vsslrt export`); repeat to compare several.")] = None,
    dataset: Annotated[DatasetKind | None, typer.Option("--dataset", help="Dataset format.")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Dataset folder.")] = None,
    protocol: Annotated[Protocol, typer.Option(
        "--protocol", help="fixed: the reference's bugs fixed; paper: the reference's numbers and key names.")] = Protocol.fixed,
    protocols: Annotated[str, typer.Option(
        "--protocols", metavar="all|NAME[:MODE],...", help="Protocol presets reported beside the negative-audio one "
        "(negative-audio, slavc-extended, sslalign-is3, retrieval, avsbench, avsbench-robust, multisource; MODE fixed|paper, "
        "default --protocol's). Defaults to every preset that applies to the dataset.")] = "all",
    examples_k: Annotated[int, typer.Option(
        "--examples", help="Draw the K worst samples per condition into <out>/examples/<engine>/ (0: none).")] = 0,
    repeats: Annotated[int | None, typer.Option(
        "--repeats", help="Negative sets per sample. Defaults to 1 (fixed) or 10 (paper, as the reference).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Run seed of the noise and offscreen draws.")] = 0,
    thresholds: Annotated[str | None, typer.Option(
        "--thresholds", help="Universal thresholds name=value,... on the model's map scale. "
        "Defaults to the engine's (the reference constants for the published models).")] = None,
    fixed: FixedOpt = 0.5,
    interp: Annotated[Interp | None, typer.Option(
        "--interp", help=f"{either(i.value for i in Interp)}. Defaults to bilinear (paper: the reference's choice per model "
        "and dataset).")] = None,
    batch: Annotated[int, typer.Option("--batch", help="Samples per batch.")] = 32,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder. Defaults to runs/<engine>-<dataset>.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Evaluate only the first N samples.")] = None,
    noise_bank: Annotated[int, typer.Option(
        "--noise-bank", help="Use a fixed bank of K noise inputs encoded once instead of per-sample noise "
        "(a documented deviation that halves the audio work). 0 = per-sample noise.")] = 0,
    workers: Annotated[int | None, typer.Option(
        "--workers", help="Background data workers (default 2); with a local --ray instance, its CPUs "
        "(default: the machine's).")] = None,
    skip_bad: Annotated[bool, typer.Option(
        "--skip-bad", help="Skip samples whose files cannot be read, and list them in the report.")] = False,
    ogl: Annotated[bool, typer.Option("--ogl/--no-ogl", help="Object-guided metrics when the engine has an object graph.")] = True,
    baselines: Annotated[bool, typer.Option("--baselines/--no-baselines", help="Score the audio-agnostic baselines.")] = True,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --out.")] = False,
    backend: BackendOpt = None,
    precision: PrecisionOpt = None,
    trust_engine_code: TrustEngineCodeOpt = False,
    latency_only: Annotated[bool, typer.Option(
        "--latency-only", help="Only profile the encoders' latency (no dataset needed).")] = False,
    metadata_dir: Annotated[Path | None, typer.Option("--metadata-dir", help="Folder of the official metadata files.")] = None,
    annotations: Annotated[Path | None, typer.Option("--annotations", help="Annotation / sample list file.")] = None,
    class_dict: Annotated[Path | None, typer.Option("--class-dict", help="Class -> files dictionary (offscreen sampling).")] = None,
    boxes: Annotated[Path | None, typer.Option("--boxes", help="IS3 box file (synthetic3240_bbox.json).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")] = False,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="[ADDRESS]", help="Run on Ray: alone, a local Ray instance; with an address "
        "(auto, HOST:6379, ray://HOST:10001), that cluster. One engine per actor; needs vsslrt[dist].")] = None,
    ray_actors: Annotated[int | None, typer.Option(
        "--ray-actors", help="Actors per engine. Defaults to the cluster's GPUs (GPU backends) or CPUs.")] = None,
    ray_block: Annotated[int | None, typer.Option(
        "--ray-block", help="Samples per Ray block, a multiple of --batch. Defaults to about 4 blocks per actor.")] = None,
) -> None:
    """Run the positive/negative benchmark: silence, noise and offscreen audio beside the positives."""
    from rich.console import Console  # lazy: Rich loads only when a command prints

    console = Console(stderr=json_output)
    if latency_only:
        if not engine:
            raise InputError("bench --latency-only: expected at least one --engine folder, got none.")
        from vsslrt.pipeline.latency import profile_engines  # lazy: opens the engine runners

        report = profile_engines(engine, out or Path("runs") / f"{engine[0].name}-latency", backend=value(backend),
                                 precision=value(precision))
        print_latency(report, console, json_output)
        return
    if not engine and dataset is None and data_dir is None:
        run_default_bench(out=out, console=console, json_output=json_output, resume=resume,
                          backend=value(backend) or "auto", n_records=limit)
        return
    if not engine:
        raise InputError("bench: expected at least one --engine folder, got none.",
                         hint="build one with `vsslrt build --model NAME`, or run `vsslrt bench` alone for the demo")
    if dataset is None or data_dir is None:
        raise InputError("bench: expected --dataset and --data-dir with --engine, got "
                         f"{'no --dataset' if dataset is None else 'no --data-dir'}.")
    # lazy: the settings and the threshold parser load NumPy and the pipeline's modules
    from vsslrt.eval import parse_thresholds
    from vsslrt.pipeline.results import BenchSettings

    metadata = {k: v for k, v in (("metadata_dir", metadata_dir), ("annotation_file", annotations),
                                  ("class_dict_file", class_dict), ("box_file", boxes)) if v is not None}
    settings = BenchSettings(
        dataset=dataset.value, data_dir=data_dir, protocol=protocol.value, repeats=repeats, seed=seed,
        thresholds=parse_thresholds(thresholds) if thresholds else None, fixed=fixed, interp=value(interp),
        batch=batch, limit=limit, noise_bank=noise_bank, workers=2 if workers is None else workers,
        skip_bad=skip_bad, ogl=ogl, baselines=baselines, backend=value(backend), precision=value(precision),
        trust_engine_code=trust_engine_code,
        metadata=metadata, protocols=protocols, examples=examples_k,
    )
    run_dir = out or Path("runs") / f"{engine[0].name}-{dataset.value}"
    if ray is None and (ray_actors is not None or ray_block is not None):
        raise InputError("bench: expected --ray with --ray-actors or --ray-block, got no --ray.")
    ray_options = None if ray is None else {
        "address": None if ray == RAY_LOCAL else ray, "num_cpus": workers if ray == RAY_LOCAL else None,
        "actors": ray_actors, "block_size": ray_block}
    results = run_with_progress(engine, settings, run_dir, resume=resume, console=console, ray=ray_options)
    print_summary(results, run_dir, console, json_output)
    if not json_output:
        from vsslrt.pipeline.runfolder import run_notes  # lazy: the report module loads the key tables

        for line in run_notes(results):
            console.print(line, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("bench", cls=BenchCommand, epilog=examples(BENCH_EXAMPLES))(bench)
