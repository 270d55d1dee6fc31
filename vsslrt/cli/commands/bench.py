"""`vsslrt bench`: the full positive/negative benchmark (or, with no arguments, the built-in demo)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from vsslrt.cli._options import Protocol
from typer.core import TyperCommand

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


class DatasetKind(str, Enum):
    vggss = "vggss"
    is3 = "is3"
    flickr = "flickr"
    manifest = "manifest"


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


def register(app: typer.Typer) -> None:
    @app.command("bench", cls=BenchCommand, epilog="Examples:\n\n" + "\n\n".join(BENCH_EXAMPLES))
    def bench(
        engine: Annotated[list[Path] | None, typer.Option(
            "--engine", help="Engine folder (from `vsslrt build` or `vsslrt export`); repeat to compare several.")] = None,
        dataset: Annotated[DatasetKind | None, typer.Option("--dataset", help="Dataset format.")] = None,
        data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Dataset folder.")] = None,
        protocol: Annotated[Protocol, typer.Option(
            "--protocol", help="fixed: the reference's bugs fixed; paper: the reference's numbers and key names.")] = Protocol.fixed,
        repeats: Annotated[int | None, typer.Option(
            "--repeats", help="Negative sets per sample. Defaults to 1 (fixed) or 10 (paper, as the reference).")] = None,
        seed: Annotated[int, typer.Option("--seed", help="Run seed of the noise and offscreen draws.")] = 0,
        thresholds: Annotated[str | None, typer.Option(
            "--thresholds", help="Universal thresholds name=value,... on the model's map scale. "
            "Defaults to the engine's (the reference constants for the published models).")] = None,
        fixed: Annotated[float, typer.Option("--fixed", help="The fixed threshold.")] = 0.5,
        interp: Annotated[str | None, typer.Option(
            "--interp", help="bilinear or cv2. Defaults to bilinear (paper: the reference's choice per model and dataset).")] = None,
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
        backend: Annotated[str | None, typer.Option(
            "--backend", help="ort, ort-cuda, ort-trt or trt. Defaults to what the engine was built for.")] = None,
        precision: Annotated[str | None, typer.Option("--precision", help="fp32 or fp16. Defaults to the engine's.")] = None,
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
        from rich.console import Console

        from vsslrt.errors import InputError

        console = Console(stderr=json_output)
        if latency_only:
            if not engine:
                raise InputError("bench --latency-only: expected at least one --engine folder, got none.")
            from vsslrt.pipeline.latency import profile_engines

            report = profile_engines(engine, out or Path("runs") / f"{engine[0].name}-latency", backend=backend,
                                     precision=precision)
            _print_latency(report, console, json_output)
            return
        if not engine and dataset is None and data_dir is None:
            from vsslrt.pipeline.demo import run_default_bench

            run_default_bench(out=out, console=console, json_output=json_output, resume=resume,
                              backend=backend or "auto", n_records=limit)
            return
        if not engine:
            raise InputError("bench: expected at least one --engine folder, got none.",
                             hint="build one with `vsslrt build --model NAME`, or run `vsslrt bench` alone for the demo")
        if dataset is None or data_dir is None:
            raise InputError("bench: expected --dataset and --data-dir with --engine, got "
                             f"{'no --dataset' if dataset is None else 'no --data-dir'}.")
        from vsslrt.pipeline.bench import BenchSettings, run_bench
        from vsslrt.eval import parse_thresholds

        metadata = {k: v for k, v in (("metadata_dir", metadata_dir), ("annotation_file", annotations),
                                      ("class_dict_file", class_dict), ("box_file", boxes)) if v is not None}
        settings = BenchSettings(
            dataset=dataset.value, data_dir=data_dir, protocol=protocol.value, repeats=repeats, seed=seed,
            thresholds=parse_thresholds(thresholds) if thresholds else None, fixed=fixed, interp=interp,
            batch=batch, limit=limit, noise_bank=noise_bank, workers=2 if workers is None else workers,
            skip_bad=skip_bad, ogl=ogl, baselines=baselines, backend=backend, precision=precision, metadata=metadata,
        )
        run_dir = out or Path("runs") / f"{engine[0].name}-{dataset.value}"
        if ray is None and (ray_actors is not None or ray_block is not None):
            raise InputError("bench: expected --ray with --ray-actors or --ray-block, got no --ray.")
        ray_options = None if ray is None else {
            "address": None if ray == RAY_LOCAL else ray, "num_cpus": workers if ray == RAY_LOCAL else None,
            "actors": ray_actors, "block_size": ray_block}
        results = run_with_progress(engine, settings, run_dir, resume=resume, console=console, ray=ray_options)
        print_summary(results, run_dir, console, json_output)


def run_with_progress(engines, settings, run_dir, *, resume, console, ray=None):
    """run_bench (or, with `ray` options, run_bench_ray) with a Rich progress bar (samples/s and ETA)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from vsslrt.pipeline.bench import run_bench

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total, rate="")
            task = bar.tasks[tasks[name]]
            speed = task.speed
            bar.update(tasks[name], completed=done, rate=f"{speed:.1f} samples/s" if speed else "")

        if ray is not None:
            from vsslrt.pipeline.distributed import run_bench_ray

            return run_bench_ray(engines, settings, run_dir, progress=progress, resume=resume, **ray)
        return run_bench(engines, settings, run_dir, resume=resume, progress=progress)


def print_summary(results, run_dir: Path, console, json_output: bool) -> None:
    from rich.table import Table

    from vsslrt.pipeline.bench import summary_rows

    if json_output:
        doc = {r.name: {"summary": {label: {"value": v, "margin": m} for label, v, m in summary_rows(r)},
                        "samples_per_s": r.latency.get("samples_per_s"), "n_samples": r.n_samples,
                        "skipped": len(r.skipped)} for r in results}
        typer.echo(json.dumps({"run": str(run_dir), "engines": doc}, indent=2))
        return
    table = Table(title=f"vsslrt bench -> {run_dir}")
    table.add_column("metric", no_wrap=True)  # labels stay on one line; the number columns give way
    for r in results:
        table.add_column(r.name, justify="right")
        table.add_column("vs best baseline", justify="right")
    labels = [row[0] for row in summary_rows(results[0])]
    rows = [{label: (v, m) for label, v, m in summary_rows(r)} for r in results]
    for label in labels:
        cells = []
        for per in rows:
            cells += list(per.get(label, ("", "")))
        table.add_row(label, *cells)
    for name, key in (("p50 ms/sample", "median"), ("p99 ms/sample", "percentile(99%)")):
        cells = []
        for r in results:
            per = r.latency.get("per_sample_ms") or {}
            cells += [f"{per.get(key, float('nan')):.1f}", ""]
        table.add_row(name, *cells)
    table.add_row("samples/s", *[c for r in results for c in (f"{r.latency.get('samples_per_s') or 0:.1f}", "")])
    console.print(table)
    skipped = sum(len(r.skipped) for r in results)
    if skipped:
        console.print(f"[yellow]{skipped} samples skipped (unreadable files); see {run_dir}/report.md[/yellow]")
    # soft_wrap: paths and commands stay on one line, so they can be copied.
    console.print(f"Report: {run_dir}/report.md, metrics: {run_dir}/metrics.json, plots: {run_dir}/*.png",
                  soft_wrap=True, highlight=False)


def _print_latency(report: dict, console, json_output: bool) -> None:
    if json_output:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    from rich.table import Table

    table = Table(title="encoder latency (warm-up excluded)")
    for col in ("engine", "batch", "p50 ms", "p90 ms", "p99 ms", "samples/s", "GFLOP/s", "of peak"):
        table.add_column(col, justify="right")
    for name, entry in report["engines"].items():
        for row in entry["sweep"]:
            lat = row["latency_ms"]
            frac = row.get("fraction_of_peak")
            table.add_row(name, str(row["batch_size"]), f"{lat['median']:.2f}", f"{lat['percentile(90%)']:.2f}",
                          f"{lat['percentile(99%)']:.2f}", f"{row['throughput_samples_per_s']:.1f}",
                          f"{row['achieved_gflops_per_s'] or 0:.1f}", "" if frac is None else f"{100 * frac:.0f}%")
    console.print(table)
