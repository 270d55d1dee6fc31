"""`vsslrt localize`: where the sound comes from, with a calibrated model (one pair or a batch)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from vsslrt.cli._options import (BackendOpt, CalibrationOpt, EngineOpt, PrecisionOpt, ThreadsOpt, TrustEngineCodeOpt,
                                 examples, value)
from vsslrt.errors import InputError

LOCALIZE_EXAMPLES = [
    "vsslrt localize --engine engines/ezvsl --calibration runs/ezvsl-is3/calibration.json frame.jpg clip.wav",
    "vsslrt localize --engine engines/ezvsl --calibration cal.json frame.jpg clip.wav --profile",
    "vsslrt localize --engine engines/ezvsl --calibration cal.json --folder shots/ --out localized/",
    "vsslrt localize --engine engines/ezvsl --calibration cal.json --manifest pairs.jsonl --out localized/",
    "vsslrt localize --engine engines/ezvsl --calibration cal.json --video in.mp4 --fps 4 --out localized/",
    "vsslrt localize --engine engines/ezvsl --calibration cal.json --video silent.mp4 --audio sound.wav --smooth 0.5 "
    "--hysteresis 0.1",
]


# The frames of `vsslrt.pipeline.localize.MAP_SIZES`, spelled out here because that module loads the
# encoders' stack, which `--help` must not pay for; tests/cli check that they agree.
class MapSize(str, Enum):
    image = "image"
    protocol = "224"


def localize(
    engine: EngineOpt,
    calibration: CalibrationOpt,
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
    backend: BackendOpt = None,
    precision: PrecisionOpt = None,
    threads: ThreadsOpt = None,
    trust_engine_code: TrustEngineCodeOpt = False,
    video: Annotated[Path | None, typer.Option(
        "--video", help="Video mode: localise a video file's frames; writes NAME.mp4 (overlay, original audio), "
        "NAME.timeline.jsonl and NAME.summary.json in --out. Needs the video extra (pip install 'vsslrt[video]').",
        rich_help_panel="Video")] = None,
    audio_track: Annotated[Path | None, typer.Option(
        "--audio", help="Video mode: the sound, for a silent video or to replace its track.",
        rich_help_panel="Video")] = None,
    fps: Annotated[float, typer.Option(
        "--fps", help="Video mode: frames localised per second (above the video's rate: every frame).",
        rich_help_panel="Video")] = 4.0,
    smooth: Annotated[float, typer.Option(
        "--smooth", help="Video mode: time constant in seconds of an exponential average of the score (0: off).",
        rich_help_panel="Video")] = 0.0,
    hysteresis: Annotated[float, typer.Option(
        "--hysteresis", help="Video mode: enter above d + H|d|, leave at d - H|d| (d: the calibrated detection "
        "threshold; 0: off). The timeline keeps the raw score and decision beside the stable ones.",
        rich_help_panel="Video")] = 0.0,
    align: Annotated[str, typer.Option(
        "--align", help="Video mode: the audio window centred on the frame (centre) or ending at it (trailing).",
        rich_help_panel="Video")] = "centre",
    preset: Annotated[str, typer.Option(
        "--preset", help="Video mode: x264 speed preset of the output (ultrafast ... veryslow; ultrafast: about "
        "half the encoding time for about twice the file size).", rich_help_panel="Video")] = "veryfast",
    tune: Annotated[str | None, typer.Option(
        "--tune", help="Video mode: x264 tuning of the output (e.g. zerolatency, film, animation; default: none).",
        rich_help_panel="Video", show_default=False)] = None,
) -> None:
    """Decide whether a sounding object is present and where, with a calibrated threshold."""
    # lazy: the localizer opens the engine runners
    from vsslrt.pipeline.localize import Localizer, pairs_from_folder, pairs_from_manifest

    batch_sources = [name for name, given in (("--manifest", manifest), ("--folder", folder)) if given is not None]
    if video is not None or audio_track is not None:
        _check_video_mode(video, image, audio, batch_sources, profile)
        with Localizer(engine, calibration, map_size=map_size.value, gate=gate, backend=value(backend),
                       precision=value(precision), threads=threads,
                       trust_engine_code=trust_engine_code) as localizer:
            _run_video(localizer, video, audio_track, out, fps, smooth, hysteresis, align, batch, (preset, tune))
        return
    _check_input_mode(image, audio, batch_sources, profile)
    if batch_sources:  # read the pairs before the engine opens: a bad list fails fast
        unmatched: list[Path] = []
        if manifest is not None:
            pairs = pairs_from_manifest(manifest)
        else:
            pairs, unmatched = pairs_from_folder(folder)
    with Localizer(engine, calibration, map_size=map_size.value, gate=gate, backend=value(backend),
                   precision=value(precision), threads=threads,
                   trust_engine_code=trust_engine_code) as localizer:
        if batch_sources:
            _run_batch(localizer, pairs, unmatched, out, batch, skip_bad)
        else:
            _run_single(localizer, image, audio, out, profile, iterations)


def _check_input_mode(image: Path | None, audio: Path | None, batch_sources: list[str], profile: bool) -> None:
    """Exactly one input mode: IMAGE AUDIO (single) or one batch source; --profile in single mode only."""
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


def _check_video_mode(video: Path | None, image: Path | None, audio: Path | None, batch_sources: list[str],
                      profile: bool) -> None:
    """--video alone: no IMAGE AUDIO, no batch source, no --profile; --audio only with --video."""
    if video is None:
        raise InputError("localize --audio: expected --video too, got --audio alone.",
                         hint="for one image and a clip, pass them as IMAGE AUDIO")
    others = batch_sources + (["IMAGE AUDIO"] if image is not None or audio is not None else []) + \
        (["--profile"] if profile else [])
    if others:
        raise InputError(f"localize --video: expected no other input mode, got {', '.join(others)}.",
                         hint="run the video and the pairs as separate commands")


def _run_video(localizer, video: Path, audio_track: Path | None, out: Path, fps: float, smooth: float,
               hysteresis: float, align: str, batch: int, encoding: tuple[str, str | None]) -> None:
    # lazy: the video pipeline needs PyAV (the video extra) and the engine's stack
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from vsslrt.pipeline.stream import Hysteresis, Smoothing
    from vsslrt.pipeline.video import localize_video

    smoothing = Smoothing(smooth) if smooth else None
    band = Hysteresis.from_calibration(localizer.calibration, hysteresis) if hysteresis else None
    console = Console(stderr=True)
    columns = (TextColumn("localize video"), BarColumn(), TextColumn("{task.fields[seconds]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("video", total=None, seconds="")

        def progress(done: float, total: float | None) -> None:
            bar.update(task, completed=done, total=total,
                       seconds=f"{done:.1f}/{total:.1f} s" if total else f"{done:.1f} s")

        report = localize_video(localizer, video, out, audio=audio_track, fps=fps, alignment=align,
                                smoothing=smoothing, hysteresis=band, batch_size=batch, preset=encoding[0],
                                tune=encoding[1], progress=progress)
    s = report.summary
    spans = ", ".join(f"{a:.2f}-{b:.2f} s" for a, b in s["segments"][:6]) + (" ..." if len(s["segments"]) > 6 else "")
    notes = [n for n, on in (("every frame (--fps above the video's rate)", s["every_frame"]),
                             (f"rotated upright ({s['source']['rotation']} degrees)", s["source"]["rotation"]),
                             ("variable frame rate", s["source"]["variable_frame_rate"])) if on]
    typer.echo(f"{video.name}: {s['frames']} frames localised over {s['duration']:.2f} s, sounding "
               f"{100 * s['sounding_fraction']:.1f} % of them (raw {100 * s['raw_sounding_fraction']:.1f} %); "
               f"segments: {spans or 'none'}; {s['realtime_factor'] or 0:.1f}x real time"
               + (f"; {'; '.join(notes)}" if notes else ""))
    typer.echo(f"wrote {report.video}, {report.timeline} and {report.summary_path}")


def _run_single(localizer, image: Path, audio: Path, out: Path, profile: bool, iterations: int) -> None:
    # lazy: the localize pipeline and the overlay (NumPy, Pillow) load only when a command runs
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
    # lazy: Rich, the localize pipeline and the overlay (NumPy, Pillow) load only when a command runs
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
        try:
            for result in results:
                # The .png first, the .json last: a pair's .json (each written atomically) is the proof
                # that both of its outputs are complete.
                write_overlay_png(result, out / f"{result.name}.png")
                write_result_json(result, out / f"{result.name}.json")
                sounding += int(result.sounding)
                lines.append(json.dumps({"name": result.name, "sounding": result.sounding, "score": result.score,
                                         "boxes": [b.to_json()["box"] for b in result.boxes]}))
        except KeyboardInterrupt:
            # Ctrl-C: the summary of what finished, so the outputs already written are accounted for.
            finished = sum(1 for line in lines if '"skipped"' not in line)
            lines.append(json.dumps({"interrupted": True, "finished": finished, "pairs": len(pairs)}))
            atomic_write_text(out / "summary.jsonl", "\n".join(lines) + "\n")
            raise
    atomic_write_text(out / "summary.jsonl", "\n".join(lines) + "\n")
    done = len(pairs) - len(skipped)
    skipped_note = f", {len(skipped)} skipped (unreadable, listed in summary.jsonl; e.g. {skipped[0]})" if skipped else ""
    typer.echo(f"{len(pairs)} pairs: {sounding} sounding, {done - sounding} not sounding{skipped_note}; "
               f"wrote {out}/<name>.json, <name>.png and {out / 'summary.jsonl'}")


def register(app: typer.Typer) -> None:
    app.command("localize", epilog=examples(LOCALIZE_EXAMPLES))(localize)
