"""`vsslrt localize`: where the sound comes from, with a calibrated model (one pair or a batch)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

LOCALIZE_EXAMPLES = [
    "vsslrt localize --engine engines/ezvsl --calibration runs/ezvsl-is3/calibration.json frame.jpg clip.wav",
    "vsslrt localize --engine engines/ezvsl --calibration cal.json frame.jpg clip.wav --profile",
    "vsslrt localize --engine engines/ezvsl --calibration cal.json --folder shots/ --out localized/",
    "vsslrt localize --engine engines/ezvsl --calibration cal.json --manifest pairs.jsonl --out localized/",
]


class MapSize(str, Enum):
    image = "image"
    protocol = "224"


def register(app: typer.Typer) -> None:
    @app.command("localize", epilog="Examples:\n\n" + "\n\n".join(LOCALIZE_EXAMPLES))
    def localize(
        engine: Annotated[Path, typer.Option(
            "--engine", help="Engine folder (from `vsslrt export` or `vsslrt build`).", show_default=False)],
        calibration: Annotated[Path, typer.Option(
            "--calibration", help="calibration.json from `vsslrt calibrate`, made for this engine.",
            show_default=False)],
        image: Annotated[Path | None, typer.Argument(help="The image (single mode).", show_default=False)] = None,
        audio: Annotated[Path | None, typer.Argument(help="The audio clip (single mode).", show_default=False)] = None,
        manifest: Annotated[Path | None, typer.Option(
            "--manifest", help='Batch mode: JSON lines {"image": ..., "audio": ..., "name": ...} (paths relative '
            "to the file).")] = None,
        folder: Annotated[Path | None, typer.Option(
            "--folder", help="Batch mode: a folder of images and clips paired by file name (a.jpg + a.wav).")] = None,
        out: Annotated[Path, typer.Option("--out", help="Output folder for <name>.json and <name>.png.")] = Path("localized"),
        profile: Annotated[bool, typer.Option(
            "--profile", help="Single mode: also report the latency of one localize call on the warm engine "
            "(warm-up excluded; p50/p90/p99).")] = False,
        iterations: Annotated[int, typer.Option("--iterations", help="Measured calls for --profile.")] = 20,
        batch: Annotated[int, typer.Option("--batch", help="Batch mode: pairs per encoder call.")] = 8,
        skip_bad: Annotated[bool, typer.Option(
            "--skip-bad", help="Batch mode: skip pairs whose image or audio cannot be read, and list them in "
            "summary.jsonl (default: stop at the first one with its error).")] = False,
        map_size: Annotated[MapSize, typer.Option(
            "--map-size", help="Frame of the map and mask: the protocol's 224x224 (where the thresholds were "
            "fitted), or the image's own size (finer, slower). Boxes are in image pixels either way.")] = MapSize.protocol,
        gate: Annotated[bool, typer.Option(
            "--gate/--no-gate", help="Show a mask only when the detection says 'sounding'.")] = True,
        backend: Annotated[str | None, typer.Option(
            "--backend", help="ort, ort-cuda, ort-trt or trt. Defaults to what the engine was built for.")] = None,
        precision: Annotated[str | None, typer.Option("--precision", help="fp32 or fp16. Defaults to the engine's.")] = None,
        threads: Annotated[int | None, typer.Option("--threads", help="ONNX Runtime threads. Defaults to all cores.")] = None,
    ) -> None:
        """Decide whether a sounding object is present and where, with a calibrated threshold."""
        from vsslrt.errors import InputError
        from vsslrt.pipeline.localize import Localizer, pairs_from_folder, pairs_from_manifest

        batch_sources = [name for name, value in (("--manifest", manifest), ("--folder", folder)) if value is not None]
        single = image is not None or audio is not None
        if len(batch_sources) > 1 or (batch_sources and single):
            given = batch_sources + (["IMAGE AUDIO"] if single else [])
            raise InputError(f"localize: expected one input mode (IMAGE AUDIO, --manifest or --folder), got {', '.join(given)}.")
        if not batch_sources and (image is None or audio is None):
            raise InputError("localize: expected IMAGE and AUDIO, or --manifest FILE / --folder DIR, got "
                             f"{'only IMAGE' if image is not None else 'neither'}.")
        if profile and batch_sources:
            raise InputError("localize --profile: expected single mode (IMAGE AUDIO), got batch mode.",
                             hint="profile one representative pair")
        if batch_sources:
            unmatched: list[Path] = []
            if manifest is not None:
                pairs = pairs_from_manifest(manifest)
            else:
                pairs, unmatched = pairs_from_folder(folder)
        with Localizer(engine, calibration, map_size=map_size.value, gate=gate, backend=backend,
                       precision=precision, threads=threads) as localizer:
            if batch_sources:
                _run_batch(localizer, pairs, unmatched, out, batch, skip_bad)
            else:
                _run_single(localizer, image, audio, out, profile, iterations)


def _run_single(localizer, image: Path, audio: Path, out: Path, profile: bool, iterations: int) -> None:
    from vsslrt.pipeline.localize import profile_localize, write_result_json
    from vsslrt.pipeline.overlay import write_overlay_png

    result = localizer.localize(image, audio)
    extra: dict[str, Any] = {}
    latency_line = ""
    if profile:
        report = profile_localize(localizer, image, audio, iterations=iterations)
        extra["latency"] = report
        ms = report["latency_ms"]
        latency_line = (f"latency of one localize call ({report['iterations']} calls, warm-up excluded, "
                        f"{report['environment'].get('backend', '')}): p50 {ms['median']:.2f} ms, "
                        f"p90 {ms['percentile(90%)']:.2f} ms, p99 {ms['percentile(99%)']:.2f} ms")
    json_path = write_result_json(result, out / f"{result.name}.json", extra)
    png_path = write_overlay_png(result, out / f"{result.name}.png")
    typer.echo(f"{result.name}: {result.verdict} (first call {result.timing_ms['total']:.1f} ms); wrote {json_path}, {png_path}")
    if latency_line:
        typer.echo(latency_line)


def _run_batch(localizer, pairs, unmatched: list[Path], out: Path, batch: int, skip_bad: bool) -> None:
    import json

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from vsslrt.pipeline.localize import write_result_json
    from vsslrt.pipeline.overlay import write_overlay_png
    from vsslrt.files import atomic_write_text

    console = Console(stderr=True)
    if unmatched:
        console.print(f"{len(unmatched)} file(s) without a partner are left out, e.g. {unmatched[0]}", highlight=False,
                      soft_wrap=True)
    lines = []
    sounding = 0
    skipped: list[str] = []

    def on_bad(pair, error) -> None:
        skipped.append(pair.name)
        lines.append(json.dumps({"name": pair.name, "skipped": error.one_line()}))
    columns = (TextColumn("localize"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("localize", total=len(pairs))
        results = localizer.iter_localize(pairs, batch_size=batch,
                                          progress=lambda done: bar.update(task, completed=done),
                                          on_bad=on_bad if skip_bad else None)
        for result in results:
            write_result_json(result, out / f"{result.name}.json")
            write_overlay_png(result, out / f"{result.name}.png")
            sounding += int(result.sounding)
            lines.append(json.dumps({"name": result.name, "sounding": result.sounding, "score": result.score,
                                     "boxes": [b.to_json()["box"] for b in result.boxes]}))
    atomic_write_text(out / "summary.jsonl", "\n".join(lines) + "\n")
    done = len(pairs) - len(skipped)
    skipped_note = f", {len(skipped)} skipped (unreadable, listed in summary.jsonl; e.g. {skipped[0]})" if skipped else ""
    typer.echo(f"{len(pairs)} pairs: {sounding} sounding, {done - sounding} not sounding{skipped_note}; "
               f"wrote {out}/<name>.json, <name>.png and {out / 'summary.jsonl'}")
