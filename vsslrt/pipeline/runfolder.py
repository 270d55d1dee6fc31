"""The run folder of a finished benchmark: metrics, latency, state, plots and the report.

Every file is written atomically (`vsslrt.files`): metrics.json, latency.json, max_values.npz,
`shards/<engine>/checkpoint.npz` (the full evaluator state `vsslrt calibrate` reads), the plots
(`vsslrt.pipeline.plots`) and report.md, whose summary is the headline of `vsslrt.eval.report`.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from vsslrt import __version__
from vsslrt.eval.report import format_number, summary_rows
from vsslrt.files import atomic_savez, atomic_write_json, atomic_write_text, to_jsonable
from vsslrt.pipeline.fingerprint import FINGERPRINT_NAME
from vsslrt.pipeline.results import BenchSettings, EngineResult
from vsslrt.pipeline.runstore import PartLog, ShardCheckpoint, write_complete_marker
from vsslrt.eval.coverage import summarise
from vsslrt.pipeline.fingerprint import dataset_facts


def write_run_folder(out: Path, results: list[EngineResult], settings: BenchSettings, dataset,
                     run_info: dict | None = None) -> None:
    """metrics.json, report.md, max_values.npz, latency.json and the plots, each written atomically.

    The completion marker `run.complete.json` (every file with its sha256) is written LAST, and only
    then are the per-batch parts deleted: a run cut short anywhere before it (a full disk, a kill) is
    an unfinished run that `--resume` finishes from its parts, never a folder that looks finished.

    Args:
        run_info: The run's dataset facts: "fingerprint", "warnings" (one line each),
            "probe_skipped" (samples left out before the run by --skip-bad).
    """
    from vsslrt.pipeline.plots import plot_comparison, plot_max_values, plot_threshold_sweep  # lazy: matplotlib loads only when plots are drawn

    out.mkdir(parents=True, exist_ok=True)
    if run_info is None:  # a folder written without a run start (shards merged on a driver): the same facts

        fingerprint, warnings = dataset_facts(dataset)
        if not (out / FINGERPRINT_NAME).is_file():
            atomic_write_json(out / FINGERPRINT_NAME, fingerprint)
        run_info = {"fingerprint": {k: v for k, v in fingerprint.items() if k != "media_files"}, "warnings": warnings}
    doc = {
        "vsslrt": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {**asdict(settings), "data_dir": str(settings.data_dir), "repeats": settings.effective_repeats},
        "dataset": {"kind": dataset.kind, "samples_in_dataset": len(dataset),
                    "fingerprint": run_info.get("fingerprint"), "warnings": run_info.get("warnings", [])},
        "engines": {
            r.name: {
                "model": r.model, "manifest": r.manifest, "n_samples": r.n_samples, "skipped": r.skipped,
                "thresholds": r.thresholds, "calibration": r.calibration, "metrics": r.metrics,
                "baselines": r.baselines, "precision": r.manifest.get("precision"), "protocols": r.protocols,
                "gates": r.gates, "missing_reference_keys": r.missing_keys,
            }
            for r in results
        },
    }
    for r in results:
        if r.state is not None:
            # The finished run's full evaluator state (calibrate reads it); the parts stay until the marker.
            n = int((r.identity or {}).get("samples", r.n_samples))
            ShardCheckpoint(out / "shards" / r.name, r.identity or {}).save(r.state, set(range(n)))
    atomic_write_json(out / "metrics.json", to_jsonable(doc))
    atomic_write_json(out / "latency.json", to_jsonable({r.name: r.latency for r in results}))
    arrays = {f"{r.name}/{cond}": np.asarray(v) for r in results for cond, v in r.max_values.items()}
    atomic_savez(out / "max_values.npz", arrays)
    for r in results:
        thresholds = {k: v["value"] for k, v in r.thresholds.items()}
        thresholds.update({f"cal:{k}": v["value"] for k, v in r.calibration.items() if v["value"] is not None})
        suffix = "" if len(results) == 1 else f"_{r.name}"
        plot_max_values(r.max_values, thresholds, out / f"max_values{suffix}.png", title=r.name)
        if r.sweep is not None:
            plot_threshold_sweep(r.sweep, thresholds, out / f"threshold_sweep{suffix}.png", title=r.name)
    if len(results) > 1:
        plot_comparison(results, out)
    atomic_write_text(out / "report.md", format_report(results, settings, dataset, run_info))
    write_complete_marker(out)
    for r in results:
        for part in PartLog(out / "shards" / r.name, r.identity or {}).parts():
            part.unlink()


def _dataset_lines(run_info: dict) -> list[str]:
    """report.md's dataset section: the fingerprint, every warning, the samples left out by the probe."""
    fp = run_info.get("fingerprint")
    lines: list[str] = []
    if fp:
        lines += ["## Dataset", "", f"- fingerprint: `{fp['digest']}` (two runs with the same fingerprint read the "
                  "same metadata, sample list and media files)",
                  f"- sample list sha256: `{fp['samples']}`; media (size, mtime) sha256: `{fp['media']}`"]
        if fp.get("prepare"):
            lines.append(f"- preparation record sha256: `{fp['prepare']}`")
        lines += [f"- `{path}`: sha256 `{sha}`" for path, sha in fp.get("metadata", {}).items()]
        lines.append("")
    if run_info.get("no_boxes"):
        lines += ["The dataset has no boxes by design: the positive (localization) metrics are skipped; the "
                  "negative ones still run.", ""]
    warnings = run_info.get("warnings") or []
    if warnings:
        lines += [f"### Dataset warnings ({len(warnings)})", ""] + [f"- {w}" for w in warnings] + [""]
    skipped = run_info.get("probe_skipped") or []
    if skipped:
        lines += [f"### Unreadable or missing media found before the run, skipped ({len(skipped)})", ""]
        lines += [f"- {s['name']}: {s['reason']}" for s in skipped] + [""]
    return lines


def format_report(results: list[EngineResult], settings: BenchSettings, dataset, run_info: dict | None = None) -> str:
    """report.md: the run's settings, the summary of every engine side by side, then each engine in full."""
    lines = [
        "# vsslrt benchmark report",
        "",
        f"- dataset: {dataset.kind} ({settings.data_dir}), {results[0].n_samples} samples evaluated",
        f"- protocol: {settings.protocol}; repeats: {settings.effective_repeats}; seed: {settings.seed}; "
        f"fixed threshold: {settings.fixed}",
        f"- noise: {'per-sample draws' if not settings.noise_bank else f'a bank of {settings.noise_bank} inputs (deviation)'}",
        "",
        *_dataset_lines(run_info or {}),
        "## Summary",
        "",
    ]
    summaries = [summary_rows(r.metrics, r.baselines) for r in results]
    labels = [row[0] for row in summaries[0]]
    header = "| metric | " + " | ".join(f"{r.name} | margin" for r in results) + " |"
    lines += [header, "|" + "---|" * (1 + 2 * len(results))]
    per_engine = [{row[0]: row[1:] for row in rows} for rows in summaries]
    for label in labels:
        cells = []
        for rows in per_engine:
            value, margin = rows.get(label, ("", ""))
            cells += [value, margin]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Margin: how much better the model does than the best audio-agnostic baseline (centre prior, "
              "whole image, random map, object saliency); positive means the model wins. For pIA lower is better, "
              "so the margin is the lowest baseline pIA minus the model's.", ""]
    for r in results:
        lines += [f"## {r.name} ({r.model})", "", "### Thresholds", "", "| name | value | provenance |", "|---|---|---|"]
        lines += [f"| {k} | {v['value']:.4f} | {v['provenance']} |" for k, v in r.thresholds.items()]
        lines += ["", "### Calibration candidates (fitted on this run)", "", "| rule | value | provenance |", "|---|---|---|"]
        lines += [f"| {k} | {_fmt_threshold(v['value'])} | {v['provenance']} |" for k, v in r.calibration.items()]
        lat = r.latency
        if lat.get("samples_per_s"):
            p = lat.get("per_sample_ms") or {}
            lines += ["", "### Speed", "", f"- {lat['samples_per_s']:.1f} samples/s "
                      f"({lat['maps_per_s']:.1f} maps/s over the four conditions), backend {r.manifest['backend']} "
                      f"{r.manifest['precision']}",
                      f"- per sample: median {p.get('median', float('nan')):.2f} ms, p99 {p.get('percentile(99%)', float('nan')):.2f} ms"]
        if r.skipped:
            lines += ["", f"### Skipped samples ({len(r.skipped)})", ""]
            lines += [f"- {s['name']}: {s['reason']}" for s in r.skipped[:50]]
        lines += protocol_sections(r)
        lines += ["", "### All metrics", "", "| key | value | " + " | ".join(r.baselines) + " |",
                  "|---|---|" + "---|" * len(r.baselines)]
        for key, value in r.metrics.items():
            lines.append(f"| {key} | {format_number(value)} | "
                         + " | ".join(format_number(b.get(key, float("nan"))) for b in r.baselines.values()) + " |")
        lines.append("")
    return "\n".join(lines)


def protocol_sections(r: EngineResult) -> list[str]:
    """report.md: precision and accuracy gate, the protocol presets' metrics, the reference keys it lacks."""

    lines = ["", "### Precision and accuracy gate", "", f"- precision: {r.manifest.get('precision')}"]
    lines += [f"- {g}" for g in r.gates] or ["- no accuracy gate recorded in the engine's manifest for this precision"]
    for name, entry in r.protocols.items():
        prov = entry["provenance"]
        lines += ["", f"### Protocol {name} ({prov['mode']})", "",
                  f"- reference: {prov['reference']}; spec: {prov['spec']}"]
        if "note" in entry:
            lines.append(f"- not computed: {entry['note']}")
        elif isinstance(entry.get("metrics"), dict):
            lines += ["", "| key | value |", "|---|---|"]
            lines += [f"| {k} | {format_number(v)} |" for k, v in entry["metrics"].items()]
        else:
            lines.append("- metrics: the summary and the full table of this engine")
    if r.missing_keys:
        lines += ["", "### Reference keys this run cannot produce", ""]
        lines += [f"- {line}" for line in summarise(r.missing_keys)]
    return lines


def _fmt_threshold(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def run_notes(results: list[EngineResult]) -> list[str]:
    """The lines shown after the summary: each engine's accuracy gate and missing reference keys."""

    lines = []
    for r in results:
        prefix = f"{r.name}: " if len(results) > 1 else ""
        lines += [f"{prefix}{g}" for g in r.gates]
        lines += [f"{prefix}{line}" for line in summarise(r.missing_keys)]
    return lines
