"""Cost of the header probe (`vsslrt.data.probe.probe_media`) against decoding the same files.

    vsslrt data synth --out /tmp/synth --n 2000     # once: 1,000 images, 2,000 wavs
    python benchmarks/bench_probe.py --data-dir /tmp/synth [--workers 4] [--json out.json]

The data is any manifest dataset (the synthetic split above by default). Measured, as the
best of a few repeats (the machine may be shared), on warm file caches:
  * the probe with 0 and `--workers` threads: ms per file (images and audio files together);
  * the baseline, the work the loader does on every file anyway: decode every image
    (`decode_image`) and every audio file (`read_audio`), ms per file;
  * the ratio baseline / probe: how many probes cost one full decode of the dataset.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def best_time(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a manifest dataset, e.g. from vsslrt data synth")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from vsslrt.data.audio_io import read_audio
    from vsslrt.data.datasets import load_dataset
    from vsslrt.data.images import decode_image
    from vsslrt.data.probe import probe_media

    dataset = load_dataset("manifest", args.data_dir)
    probe = probe_media(dataset, workers=0)  # warms the file cache and the imports
    assert probe.ok, probe.format(5)
    files = probe.files
    images = sorted({s.image for s in dataset})
    audio = sorted({s.audio for s in dataset} | {c.audio for cs in (dataset.class_clips or {}).values() for c in cs})

    def decode_all():
        for path in images:
            decode_image(path)
        for path in audio:
            read_audio(path)

    serial = best_time(lambda: probe_media(dataset, workers=0))
    threaded = best_time(lambda: probe_media(dataset, workers=args.workers))
    baseline = best_time(decode_all, repeats=2)




    result = {
        "files": files,
        "images": len(images),
        "audio": len(audio),
        "probe_ms_per_file": 1000 * serial / files,
        f"probe_{args.workers}_threads_ms_per_file": 1000 * threaded / files,
        "decode_ms_per_file": 1000 * baseline / files,
        "decode_over_probe": baseline / serial,
        "decode_over_threaded_probe": baseline / threaded,
    }
    for key, value in result.items():
        print(f"{key:32s} {value:.3f}" if isinstance(value, float) else f"{key:32s} {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
