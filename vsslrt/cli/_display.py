"""Display of benchmark runs: the progress bar, the summary table (or JSON) and the latency table.

Shared by `vsslrt bench` with a dataset and the built-in demo (`commands/_demo.py`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def run_with_progress(engines, settings, run_dir, *, resume, console, ray=None):
    """run_bench (or, with `ray` options, run_bench_ray) with a Rich progress bar (samples/s and ETA)."""
    # lazy: Rich and the benchmark pipeline (engine runners, data loaders) load only when a run starts
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
            from vsslrt.pipeline.distributed import run_bench_ray  # lazy: imports Ray (an optional extra)

            return run_bench_ray(engines, settings, run_dir, progress=progress, resume=resume, **ray)
        def notice(line: str) -> None:  # dataset warnings, samples left out: shown before the first batch
            console.print(line, style="yellow", markup=False, highlight=False, soft_wrap=True)

        return run_bench(engines, settings, run_dir, resume=resume, progress=progress, notice=notice)


def print_summary(results, run_dir: Path, console, json_output: bool) -> None:
    # lazy: Rich and the report rows (NumPy) load only when a run has finished
    from rich.table import Table

    from vsslrt.eval.report import summary_rows

    if json_output:
        doc = {r.name: {"summary": {label: {"value": v, "margin": m}
                                    for label, v, m in summary_rows(r.metrics, r.baselines)},
                        "samples_per_s": r.latency.get("samples_per_s"), "n_samples": r.n_samples,
                        "skipped": len(r.skipped)} for r in results}
        typer.echo(json.dumps({"run": str(run_dir), "engines": doc}, indent=2))
        return
    table = Table(title=f"vsslrt bench -> {run_dir}")
    table.add_column("metric", no_wrap=True)  # labels stay on one line; the number columns give way
    for r in results:
        table.add_column(r.name, justify="right")
        table.add_column("vs best baseline", justify="right")
    labels = [row[0] for row in summary_rows(results[0].metrics, results[0].baselines)]
    rows = [{label: (v, m) for label, v, m in summary_rows(r.metrics, r.baselines)} for r in results]
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


def print_latency(report: dict[str, Any], console, json_output: bool) -> None:
    """The encoder latency sweep of `bench --latency-only`, as a table or JSON."""
    if json_output:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    from rich.table import Table  # lazy: Rich loads only when a table is printed

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


def parity_line(key: str, fig, width: int) -> str:
    """One parity figure of a manifest (export and build print the same line, key column `width` wide)."""
    return (f"  parity {key:<{width}} max |diff| {fig.max_abs_diff:.2e} (<= {fig.max_abs_tolerance:.0e}), "
            f"argmax agreement {fig.argmax_agreement:.0%}")

