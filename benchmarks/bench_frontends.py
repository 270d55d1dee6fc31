"""Throughput of the data layer: audio front-ends, image front-end, and the background loader.

    python benchmarks/bench_frontends.py [--data-dir DIR] [--batch 64] [--json out.json]

Measures, on this machine:
  * audio transform (working signals -> model inputs), per family: clips/s of the batched
    `spectrogram_inputs` vs a per-clip loop of `scipy.signal.spectrogram` (log, crop, /12) as the
    reference loaders do it (SSL-TIE: the same mel code called one clip at a time), and the ratio;
  * audio end to end from files (decode + prepare + transform) per family, clips/s;
  * image front-end: images/s from JPEG files (decode + resize + normalise), and the resize alone
    against torch's `interpolate` when torch is installed;
  * BatchLoader: samples/s over the dataset with 0, 1 and 2 thread workers and 2 process workers
    (a fresh pool per run, so process start-up is included), and CPU time per sample of this process
    (thread workers included), which does not depend on what else the machine runs.

The default data is the is3-mini sample (16 real IS3 pairs, 1024 x 1024 JPEGs, 16 kHz wavs).
Each figure is the best of a few repeats (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "is3-mini"


def best_time(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def per_clip_reference(signals, spec):
    """The reference's way: one scipy.signal.spectrogram (or one mel) call per clip."""
    import scipy.signal

    from vsslrt.data import spectral

    out = []
    for x in signals:
        if spec.transform == "psd":
            _, _, s = scipy.signal.spectrogram(x, spec.sample_rate, nperseg=spec.nperseg, noverlap=spec.noverlap)
            s = np.log(s + spec.log_eps)
            if spec.centre_crop_frames:
                start = int(round((s.shape[1] - spec.centre_crop_frames) / 2.0))
                s = s[:, start : start + spec.centre_crop_frames]
            out.append((s / spec.divisor).astype(np.float32))
        else:
            power = spectral.mel_power_spectrogram(x[None], spec.sample_rate, n_fft=spec.n_fft, hop_length=spec.hop_length, n_mels=spec.n_mels)
            out.append(spectral.amplitude_to_db(power)[0].astype(np.float32))
    return out


def bench_audio_transform(batch: int) -> list[dict]:
    from vsslrt.data.frontends import FRONTENDS, spectrogram_inputs

    rng = np.random.default_rng(0)
    rows = []
    for name, spec in FRONTENDS.items():
        signals = list(0.1 * rng.standard_normal((batch, spec.signal_length())))
        batched = best_time(lambda: spectrogram_inputs(signals, spec))
        loop = best_time(lambda: per_clip_reference(signals, spec))
        rows.append({"frontend": name, "batch": batch, "batched_clips_per_s": batch / batched, "per_clip_clips_per_s": batch / loop, "speedup": loop / batched})
    return rows


def bench_audio_files(data_dir: Path) -> list[dict]:
    from vsslrt.data.audio_io import read_audio
    from vsslrt.data.frontends import FRONTENDS, prepare_signal, spectrogram_inputs

    paths = sorted((data_dir / "audio_wav").glob("*.wav"))
    rows = []
    for name, spec in FRONTENDS.items():
        def run():
            signals = [prepare_signal(read_audio(p), spec)[0] for p in paths]
            spectrogram_inputs(signals, spec)

        rows.append({"frontend": name, "clips": len(paths), "clips_per_s": len(paths) / best_time(run)})
    return rows


def bench_images(data_dir: Path) -> dict:
    from vsslrt.data.images import decode_image, load_images, preprocess_image, resize_bicubic, to_float_chw

    paths = sorted((data_dir / "images").glob("*.jpg"))
    decoded = [decode_image(p) for p in paths]
    result = {
        "images": len(paths),
        "size": list(decoded[0].shape),
        "files_images_per_s": len(paths) / best_time(lambda: load_images(paths)),
        "decode_images_per_s": len(paths) / best_time(lambda: [decode_image(p) for p in paths]),
        "preprocess_images_per_s": len(paths) / best_time(lambda: [preprocess_image(d) for d in decoded]),
    }
    try:
        import torch
    except ImportError:
        return result
    torch.set_num_threads(1)
    floats = [to_float_chw(d) for d in decoded]
    tensors = [torch.from_numpy(f)[None] for f in floats]
    interp = torch.nn.functional.interpolate
    result["resize_numpy_images_per_s"] = len(floats) / best_time(lambda: [resize_bicubic(f) for f in floats])
    result["resize_torch_1thread_images_per_s"] = len(tensors) / best_time(
        lambda: [interp(t, size=(224, 224), mode="bicubic", align_corners=False, antialias=False) for t in tensors]
    )
    return result


def bench_loader(data_dir: Path, batch: int, repeats: int, passes: int) -> list[dict]:
    from vsslrt.data.datasets import load_dataset
    from vsslrt.data.loader import BatchLoader

    ds = load_dataset("is3", data_dir)
    indices = list(range(len(ds))) * passes  # the same clips again: a longer run of realistic files
    rows = []
    for frontend in ("ezvsl", "ssltie"):
        for executor, workers in (("none", 0), ("thread", 1), ("thread", 2), ("process", 2)):
            loader = BatchLoader(ds, frontend, batch_size=batch, repeats=repeats, indices=indices, workers=workers, executor=executor)
            before, start = os.times(), time.perf_counter()
            count = sum(len(b) for b in loader)
            seconds, after = time.perf_counter() - start, os.times()
            # CPU of this process (threads included): the cost whatever else the machine runs. Process
            # workers are children of the fork server, so their CPU is not visible here.
            cpu = (after.user - before.user) + (after.system - before.system)
            rows.append({
                "frontend": frontend, "repeats": repeats, "executor": executor, "workers": workers,
                "samples_per_s": count / seconds, "cpu_ms_per_sample": None if executor == "process" else 1000 * cpu / count,
            })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("VSSLRT_IS3_MINI", DEFAULT_DATA)))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1, help="negative sets per sample in the loader benchmark")
    parser.add_argument("--passes", type=int, default=8, help="passes over the 16 clips in the loader benchmark")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not (args.data_dir / "synthetic3240_bbox.json").is_file():
        print(f"no IS3-layout data at {args.data_dir}; pass --data-dir", file=sys.stderr)
        return 2

    results = {"cpu_count": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    results["audio_transform"] = bench_audio_transform(args.batch)
    print(f"audio transform, batch of {args.batch} working signals (clips/s):")
    for r in results["audio_transform"]:
        print(f"  {r['frontend']:7s} batched {r['batched_clips_per_s']:8.0f}   per-clip loop {r['per_clip_clips_per_s']:8.0f}   x{r['speedup']:.2f}")
    results["audio_files"] = bench_audio_files(args.data_dir)
    print("audio end to end from wav files, decode + prepare + transform (clips/s):")
    for r in results["audio_files"]:
        print(f"  {r['frontend']:7s} {r['clips_per_s']:8.0f}")
    results["images"] = bench_images(args.data_dir)
    print(f"images ({results['images']['size']}): " + ", ".join(f"{k} {v:.0f}" for k, v in results["images"].items() if k.endswith("per_s")))
    results["loader"] = bench_loader(args.data_dir, 16, args.repeats, args.passes)
    print(f"BatchLoader, batch 16, repeats {args.repeats}, {16 * args.passes} samples (samples/s, CPU per sample):")
    for r in results["loader"]:
        cpu = "" if r["cpu_ms_per_sample"] is None else f"   cpu {r['cpu_ms_per_sample']:6.1f} ms/sample"
        print(f"  {r['frontend']:7s} {r['executor']:8s} workers={r['workers']}  {r['samples_per_s']:7.1f}{cpu}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
