"""`vsslrt data prepare vggss|flickr|manifest`: benchmark folders from the videos and releases a user has.

The preparers (`vsslrt.data.prepare`) take a progress callback; the bar (files/s, ETA) and the
summary are printed here. Exit 0 when at least one clip was prepared (the summary says how many were
not), 1 when none was.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from vsslrt.cli._options import (
    Channels,
    ChannelsOpt,
    JpegQualityOpt,
    Resampler,
    ResamplerOpt,
    SampleRateOpt,
    SourceMode,
    WorkersOpt,
    examples,
)
from vsslrt.data.prepare import settings as prep

VGGSS_EXAMPLES = [
    "vsslrt data prepare vggss --videos ~/vggsound/videos --annotations vggss.json "
    "--class-dict vggss_class_files_dict.json --out data/VGGSS",
    "vsslrt data prepare vggss --videos clips/ --annotations vggss.json --out data/VGGSS --frame-time 4.96   "
    "# the 125th frame at 25 fps",
]
FLICKR_EXAMPLES = [
    "vsslrt data prepare flickr --release ~/Flickr-SoundNet --test-list flickr_test.csv --out data/Flickr",
]
MANIFEST_EXAMPLES = [
    "vsslrt data prepare manifest --videos lab-footage/ --out data/lab                 # the middle frame of each video",
    "vsslrt data prepare manifest --videos lab-footage/ --out data/lab --every 2 --boxes boxes.csv",
    "vsslrt data prepare manifest --videos lab-footage/ --out data/lab --at 1.5 --at 4 --window 5",
]

prepare_app = typer.Typer(
    name="prepare",
    help="Prepare benchmark folders: VGG-SS from VGGSound videos, Flickr-SoundNet's release, your own videos.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

OutOpt = Annotated[Path, typer.Option("--out", help="Dataset folder to write (a second call resumes it).")]
VideosOpt = Annotated[Path, typer.Option("--videos", help="Folder of videos (searched recursively).")]


def _media(sample_rate: int, channels: Channels, resampler: Resampler, jpeg_quality: int):
    return prep.MediaSettings(sample_rate=sample_rate, channels=channels.value, resampler=resampler.value,
                              jpeg_quality=jpeg_quality)


def _run(function, **kwargs):
    """The preparer with a Rich progress bar (files/s and ETA)."""
    # lazy: Rich loads only when a command runs
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("preparing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("prepare", total=None, rate="")

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
            speed = bar.tasks[task].speed
            bar.update(task, rate=f"{speed:.1f} files/s" if speed else "")

        return function(progress=progress, **kwargs)


def _summary(report, what: str) -> None:
    n, listed = len(report.prepared), report.listed
    share = f" ({100 * n / listed:.1f} % of {what})" if listed else ""
    typer.echo(f"prepared {n} of {listed} clips{share} into {report.out}"
               + (f"; {report.skipped} were already done" if report.skipped else ""))
    if report.not_prepared:
        parts = [f"{len(report.missing)} missing (no video file)"] if report.missing else []
        parts += [f"{len(report.failed)} failed"] if report.failed else []
        typer.echo(f"not prepared: {report.not_prepared} ({', '.join(parts)})")
        for clip, _, reason in report.failed[:5]:
            typer.echo(f"  {clip}: {reason}")
        if len(report.failed) > 5:
            typer.echo(f"  ... and {len(report.failed) - 5} more")
    if report.duplicates:
        typer.echo(f"duplicates: {len(report.duplicates)} clips have several files (the first is used)")
    if report.notes:
        typer.echo(f"notes: {len({c for c, _ in report.notes})} clips (short audio, variable frame rate, ...)")
    typer.echo(f"report: {report.out / 'prepare_report.json'}")
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def _workers(workers: int | None) -> int:
    return workers if workers is not None else max(1, os.cpu_count() or 1)


def vggss(
    videos: VideosOpt,
    annotations: Annotated[Path, typer.Option("--annotations", help="VGG-SS annotation file (vggss.json).")],
    out: OutOpt,
    class_dict: Annotated[Path | None, typer.Option(
        "--class-dict", help="Class dictionary (vggss_class_files_dict.json) or VGGSound's vggsound.csv. "
        "Defaults to the records' 'class' fields.")] = None,
    frame_time: Annotated[float, typer.Option(
        "--frame-time", help="Seconds from the clip's start of the frame: the first frame at or after it "
        "(the middle of the 10 s clip).")] = prep.VGGSS_FRAME_TIME,
    clip_seconds: Annotated[float, typer.Option(
        "--clip-seconds", help="Length of a clip: its audio is [0, this) from the clip's start.")] = prep.VGGSS_CLIP_SECONDS,
    source: Annotated[SourceMode, typer.Option(
        "--source", help="clips: each file is its 10 s clip; full: each file is the whole YouTube video; auto: "
        "a file named with the start time and at most 1 s longer than the clip is the clip.")] = SourceMode.auto,
    sample_rate: SampleRateOpt = prep.SAMPLE_RATE,
    channels: ChannelsOpt = Channels.mean,
    resampler: ResamplerOpt = Resampler.swr,
    jpeg_quality: JpegQualityOpt = prep.JPEG_QUALITY,
    workers: WorkersOpt = None,
) -> None:
    """VGG-SS from your VGGSound videos: the middle frame and the 10 s of 16 kHz mono audio of each clip."""
    from vsslrt.data.prepare.vggss import prepare_vggss  # lazy: NumPy and the decoding stack

    report = _run(prepare_vggss, videos=videos, annotations=annotations, out=out, class_dict=class_dict,
                  frame_time=frame_time, clip_seconds=clip_seconds, source=source.value,
                  media=_media(sample_rate, channels, resampler, jpeg_quality), workers=_workers(workers))
    _summary(report, "the annotation list")


def flickr(
    release: Annotated[Path, typer.Option("--release", help="The release folder: Annotations/*.xml and Data/0..9/.")],
    out: OutOpt,
    test_list: Annotated[Path | None, typer.Option(
        "--test-list", help="The official test list (flickr_test.csv); only its clips are converted.")] = None,
    sample_rate: SampleRateOpt = prep.SAMPLE_RATE,
    channels: ChannelsOpt = Channels.mean,
    resampler: ResamplerOpt = Resampler.swr,
    jpeg_quality: JpegQualityOpt = prep.JPEG_QUALITY,
    workers: WorkersOpt = None,
) -> None:
    """Flickr-SoundNet: the release layout into frames/, audio/ (16 kHz mono), Annotations/ and flickr_test.csv."""
    from vsslrt.data.prepare.flickr import prepare_flickr  # lazy: NumPy and the audio stack

    report = _run(prepare_flickr, release=release, out=out, test_list=test_list,
                  media=_media(sample_rate, channels, resampler, jpeg_quality), workers=_workers(workers))
    _summary(report, "the test list" if test_list is not None else "the annotated clips")


def manifest(
    videos: VideosOpt,
    out: OutOpt,
    boxes: Annotated[Path | None, typer.Option(
        "--boxes", help="Boxes (CSV: video,time,x1,y1,x2,y2,class; or JSON), normalised to [0, 1]. "
        "Without boxes only the negative metrics mean something.")] = None,
    at: Annotated[list[float] | None, typer.Option(
        "--at", metavar="SECONDS", help="A frame time in seconds (repeatable). Default: the boxes' times, else the middle.")] = None,
    every: Annotated[float | None, typer.Option("--every", help="A frame every so many seconds from 0.")] = None,
    window: Annotated[float, typer.Option(
        "--window", help="Audio window in seconds, centred on each frame.")] = prep.MANIFEST_WINDOW,
    sample_rate: SampleRateOpt = prep.SAMPLE_RATE,
    channels: ChannelsOpt = Channels.mean,
    resampler: ResamplerOpt = Resampler.swr,
    jpeg_quality: JpegQualityOpt = prep.JPEG_QUALITY,
    workers: WorkersOpt = None,
) -> None:
    """Your own videos as a manifest dataset: frames, the audio window around each, optional boxes."""
    from vsslrt.data.prepare.manifest import prepare_manifest  # lazy: NumPy and the decoding stack

    report = _run(prepare_manifest, videos=videos, out=out, boxes=boxes, at=tuple(at) if at else None, every=every,
                  window=window, media=_media(sample_rate, channels, resampler, jpeg_quality),
                  workers=_workers(workers))
    if boxes is None and report.prepared:
        typer.echo("no boxes: every record has an empty ground truth, so only the negative metrics "
                   "(silence, noise, offscreen) mean something; the positive ones come out as 0")
    unused = report.extra.get("unused_boxes") or []
    if unused:
        typer.echo(f"unused boxes: {len(unused)} (see the report)")
    _summary(report, "the videos found")


prepare_app.command("vggss", epilog=examples(VGGSS_EXAMPLES))(vggss)
prepare_app.command("flickr", epilog=examples(FLICKR_EXAMPLES))(flickr)
prepare_app.command("manifest", epilog=examples(MANIFEST_EXAMPLES))(manifest)
