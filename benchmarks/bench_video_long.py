"""A one-hour video through `vsslrt localize --video`: memory stays bounded whatever the length.

Makes two videos of the same synthetic scene (224 x 224, the moving bell, sound / silence / noise
segments repeating every 10 s): a short one (default 60 s) and a long one (default 3600 s), written
frame by frame (nothing holds the whole video), then runs the CLI on each in a fresh process and
reports the peak resident memory of each run (ru_maxrss), the real-time factor and the outputs'
frame counts. Bounded memory: the long run's peak is within a few MB of the short run's, although
the video is 60 times longer. The CLI shows its progress bar (elapsed time and ETA) on stderr.

Usage: python benchmarks/bench_video_long.py [--short 60] [--long 3600] [--source-fps 5] [--fps 1]
       [--work /tmp/vsslrt-bench-video-long]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "pipeline"))

LOOP_SECONDS = 10.0
UNIT = ((0.0, 4.0, "sound"), (4.0, 6.0, "silence"), (6.0, 8.0, "noise"), (8.0, 10.0, "sound"))

CHILD = r"""
import json, resource, sys, time
from vsslrt.cli.app import main
sys.argv = ["vsslrt", *sys.argv[1:]]
start = time.perf_counter()
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
else:
    code = 0
wall = time.perf_counter() - start
print(json.dumps({"code": code, "wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_long_scene(path: Path, seconds: float, fps: float) -> None:
    """The 10 s scene repeated to `seconds`, streamed into the encoder (bounded memory)."""
    from scenes import RATE, bell_frames, sound_track

    from vsslrt.data.video import VideoWriter

    if path.is_file():
        return
    per_loop = int(round(LOOP_SECONDS * fps))
    frames, _ = bell_frames(per_loop)
    audio = sound_track(UNIT).astype(np.float32)  # LOOP_SECONDS of audio at RATE
    tmp = path.with_suffix(".part.mp4")
    writer = VideoWriter(tmp, width=224, height=224, fps=fps, audio_rate=RATE, audio_channels=1,
                         preset="ultrafast", container_format="mp4")
    loops = int(round(seconds / LOOP_SECONDS))
    for k in range(loops):
        base = k * LOOP_SECONDS
        for i, frame in enumerate(frames):
            writer.write_frame(frame, base + i / fps)
        writer.write_audio(audio[None, :])
    writer.close()
    tmp.replace(path)


def localize(video: Path, out: Path, fps: float, calibration: Path) -> dict:
    from scenes import DEMO_SAN

    args = ["localize", "--engine", str(DEMO_SAN), "--calibration", str(calibration), "--video", str(video),
            "--fps", str(fps), "--threads", "2", "--out", str(out)]
    run = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=False)
    report = json.loads(run.stdout.strip().splitlines()[-1])
    if report["code"] != 0:
        raise SystemExit(f"{video}: vsslrt localize failed:\n{run.stderr[-2000:]}")
    summary = json.loads((out / f"{video.stem}.summary.json").read_text())
    report.update(video_s=summary["duration"], frames_localised=summary["frames"],
                  frames_written=summary["source"]["frames"], realtime_factor=summary["duration"] / report["wall_s"],
                  progress_tail=run.stderr.strip().splitlines()[-1:] if run.stderr.strip() else [])
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=float, default=60.0)
    parser.add_argument("--long", type=float, default=3600.0)
    parser.add_argument("--source-fps", type=float, default=5.0)
    parser.add_argument("--fps", type=float, default=1.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/vsslrt-bench-video-long"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    from scenes import demo_calibration

    calibration = args.work / "calibration.json"
    calibration.write_text(json.dumps(demo_calibration()))
    report = {"source_fps": args.source_fps, "fps": args.fps, "runs": {}}
    for label, seconds in (("short", args.short), ("long", args.long)):
        video = args.work / f"scene-{int(seconds)}s.mp4"
        start = time.perf_counter()
        write_long_scene(video, seconds, args.source_fps)
        made = time.perf_counter() - start
        run = localize(video, args.work / f"out-{label}", args.fps, calibration)
        report["runs"][label] = {"seconds": seconds, "made_in_s": made, **run}
        print(f"{label:5s} {seconds:6.0f} s video: peak RSS {run['peak_rss_mb']:.0f} MB, {run['realtime_factor']:.1f}x "
              f"real time ({run['wall_s']:.1f} s), {run['frames_localised']} frames localised, "
              f"{run['frames_written']} written")
    short, long = report["runs"]["short"], report["runs"]["long"]
    report["peak_rss_growth_mb"] = long["peak_rss_mb"] - short["peak_rss_mb"]
    print(f"peak RSS growth from {short['seconds']:.0f} s to {long['seconds']:.0f} s of video: "
          f"{report['peak_rss_growth_mb']:+.1f} MB")
    (args.work / "bench_video_long.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {args.work / 'bench_video_long.json'}")


if __name__ == "__main__":
    main()
