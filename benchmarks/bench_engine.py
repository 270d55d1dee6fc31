"""ONNX Runtime (CPU) vs PyTorch eager on the EZ-VSL encoder pair, and achieved vs peak GFLOP/s.

One iteration runs both encoders of EZ-VSL (ResNet-18 on a 224x224 image, ResNet-18 on a
1x257x200 log-spectrogram) on a batch. For each batch size the script profiles PyTorch eager
and vsslrt's OrtRunner with the same thread count, trtexec-style (warm-up excluded, at least N
iterations and T seconds), checks that both compute the same embeddings, and reports:

* the median latency of each and the speed-up of ONNX Runtime over eager PyTorch;
* achieved GFLOP/s (FLOPs counted from the ONNX graphs x samples per second) against the peak
  of a 4096x4096 fp32 matrix product through NumPy on the same cores (measured before and after
  the runs; the higher counts);
* the same ratio per process CPU second (achieved GFLOP per CPU second over the matmul's GFLOP
  per CPU second). On a machine shared with other work the wall-clock figures move with the
  load; the CPU-time figures say how efficiently each library uses the cores it is given.

With --tune it also measures the ONNX Runtime session settings that OrtRunner's CPU defaults
were chosen from (intra-op threads, graph optimisation level, execution mode, spinning).

Usage:
    python benchmarks/bench_engine.py [--threads 2] [--batches 1 16] [--seconds 5] [--tune]
                                      [--work .benchmarks/engine] [--out .benchmarks/engine/bench_engine.json]

Weights are a seeded random initialisation: speed does not depend on the weight values.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="threads for every library (default: usable cores)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16], help="batch sizes (default: 1 16)")
    parser.add_argument("--seconds", type=float, default=5.0, help="minimum measured seconds per case (default: 5)")
    parser.add_argument("--iterations", type=int, default=10, help="minimum measured iterations per case (default: 10)")
    parser.add_argument("--tune", action="store_true", help="also compare ONNX Runtime session settings at the largest batch")
    parser.add_argument("--work", type=Path, default=Path(".benchmarks/engine"), help="folder for the exported ONNX files")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file (default: <work>/bench_engine.json)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    # BLAS reads its thread count at import, so it is set before NumPy is imported.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np
    import torch

    from vsslrt.engine.flops import count_flops, measure_peak
    from vsslrt.engine.ort_runner import OrtRunner
    from vsslrt.engine.profiler import ProfileSettings, environment_block, profile

    torch.set_num_threads(args.threads)
    visual_onnx, audio_onnx, visual_torch, audio_torch, audio_shape = export_pair(args.work)
    gflops = count_flops(visual_onnx).gflops_per_sample + count_flops(audio_onnx).gflops_per_sample
    peak_before = measure_peak(library="numpy", size=4096, repeats=3)
    peak = peak_before.gflops
    # PyTorch eager needs several calls per new shape before oneDNN settles (seconds at first).
    settings = ProfileSettings(warmup_seconds=2.0, warmup_iterations=5, min_iterations=args.iterations, min_seconds=args.seconds)
    rng = np.random.default_rng(0)

    results = {
        "model": "ezvsl encoder pair (ResNet-18 image 3x224x224 + ResNet-18 audio %s)" % "x".join(map(str, audio_shape)),
        "threads": args.threads,
        "gflops_per_sample": gflops,
        "peak_before": vars(peak_before),
        "environment": environment_block(backend="ort-cpu vs torch-eager", precision="fp32", extra={"threads": args.threads}),
        "batches": {},
    }
    print(f"model: {gflops:.3f} GFLOP per sample (both encoders); {args.threads} threads; load average {os.getloadavg()[0]:.1f}")

    for batch in args.batches:
        image = rng.standard_normal((batch, 3, 224, 224), dtype=np.float32)
        audio = rng.standard_normal((batch, *audio_shape), dtype=np.float32)
        with OrtRunner(visual_onnx, intra_op_num_threads=args.threads) as v_run, OrtRunner(
            audio_onnx, intra_op_num_threads=args.threads
        ) as a_run:
            ort_out = (v_run.infer({"image": image})["visual"], a_run.infer({"audio": audio})["audio_embedding"])
            ort_report = profile(
                lambda timer: _ort_step(timer, v_run, a_run, image, audio),
                batch_size=batch, settings=settings, gflops_per_sample=gflops, peak_gflops=peak,
            )
        with torch.inference_mode():
            t_image, t_audio = torch.from_numpy(image), torch.from_numpy(audio)
            torch_out = (visual_torch(t_image).numpy(), audio_torch(t_audio).numpy())
            torch_report = profile(
                lambda timer: _torch_step(timer, visual_torch, audio_torch, t_image, t_audio),
                batch_size=batch, settings=settings, gflops_per_sample=gflops, peak_gflops=peak,
            )
        max_diff = max(float(np.abs(o - t).max()) for o, t in zip(ort_out, torch_out))
        entry = {
            "ort": ort_report.to_json(),
            "torch_eager": torch_report.to_json(),
            "speedup_ort_over_eager": torch_report.latency.median / ort_report.latency.median,
            "cpu_time_ratio_eager_over_ort": torch_report.process_cpu_time / torch_report.iterations
            / (ort_report.process_cpu_time / ort_report.iterations),
            "max_abs_diff_ort_vs_torch": max_diff,
        }
        for name, report in (("ort", ort_report), ("torch_eager", torch_report)):
            entry[name].pop("environment")
            entry[name]["gflops_per_cpu_second"] = _per_cpu_second(report, gflops)
        results["batches"][str(batch)] = entry
        print(
            f"batch {batch:3d}: ORT {ort_report.latency.median * 1e3:8.1f} ms ({ort_report.achieved_gflops:6.1f} GFLOP/s) | "
            f"eager {torch_report.latency.median * 1e3:8.1f} ms ({torch_report.achieved_gflops:6.1f} GFLOP/s) | "
            f"ORT/eager speed-up {entry['speedup_ort_over_eager']:.2f}x (CPU time {entry['cpu_time_ratio_eager_over_ort']:.2f}x) "
            f"| max |diff| {max_diff:.2e}"
        )

    peak_after = measure_peak(library="numpy", size=4096, repeats=3)
    best = max(peak_before, peak_after, key=lambda p: p.gflops)
    best_cpu = max(peak_before.gflops_per_cpu_second, peak_after.gflops_per_cpu_second)
    results["peak_after"] = vars(peak_after)
    results["peak_gflops"] = best.gflops
    results["peak_gflops_per_cpu_second"] = best_cpu
    print(f"NumPy fp32 4096^2 matmul peak: {best.gflops:.1f} GFLOP/s wall, {best_cpu:.1f} GFLOP per CPU second "
          f"(before {peak_before.gflops:.1f}, after {peak_after.gflops:.1f})")
    for batch, entry in results["batches"].items():
        for name in ("ort", "torch_eager"):
            report = entry[name]
            report["peak_gflops_per_s"] = best.gflops
            report["fraction_of_peak"] = report["achieved_gflops_per_s"] / best.gflops
            report["fraction_of_peak_per_cpu_second"] = report["gflops_per_cpu_second"] / best_cpu
        print(f"batch {int(batch):3d}: fraction of peak, wall / per CPU second: "
              f"ORT {entry['ort']['fraction_of_peak']:.1%} / {entry['ort']['fraction_of_peak_per_cpu_second']:.1%}, "
              f"eager {entry['torch_eager']['fraction_of_peak']:.1%} / {entry['torch_eager']['fraction_of_peak_per_cpu_second']:.1%}")

    if args.tune:
        results["ort_settings"] = tune_ort(
            visual_onnx, audio_onnx, audio_shape, max(args.batches), args, gflops, best.gflops, best_cpu
        )

    out = args.out or args.work / "bench_engine.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return results


def _per_cpu_second(report, gflops: float) -> float:
    """Model GFLOP computed per process CPU second while measuring."""
    return gflops * report.batch_size * report.iterations / report.process_cpu_time


def _ort_step(timer, v_run, a_run, image, audio) -> None:
    with timer.stage("visual"):
        v_run.infer({"image": image}, check_inputs=False)
    with timer.stage("audio"):
        a_run.infer({"audio": audio}, check_inputs=False)


def _torch_step(timer, visual, audio_net, image, audio) -> None:
    with timer.stage("visual"):
        visual(image)
    with timer.stage("audio"):
        audio_net(audio)


def export_pair(work: Path):
    """EZ-VSL encoders (random init) as torch modules and ONNX files (exported once, then reused)."""
    from vsslrt.export.architectures import build_model
    from vsslrt.export.onnx_io import export_module
    from vsslrt.export.wrappers import AudioEncoder, VisualEncoder
    from vsslrt.models import get_model

    import torch

    spec = get_model("ezvsl")
    model = build_model("ezvsl", seed=0).eval()
    visual, audio = VisualEncoder(model).eval(), AudioEncoder(model).eval()
    work.mkdir(parents=True, exist_ok=True)
    visual_onnx, audio_onnx = work / "visual.onnx", work / "audio.onnx"
    if not (visual_onnx.is_file() and audio_onnx.is_file()):
        example_image = torch.zeros((2, 3, 224, 224))
        example_audio = torch.zeros((2, *spec.audio_shape))
        export_module(visual, (example_image,), visual_onnx, ["image"], ["visual"])
        export_module(audio, (example_audio,), audio_onnx, ["audio"], ["audio_embedding"])
    return visual_onnx, audio_onnx, visual, audio, spec.audio_shape


def tune_ort(visual_onnx, audio_onnx, audio_shape, batch, args, gflops, peak, peak_cpu) -> list[dict]:
    """Throughput of OrtRunner session variants at one batch size.

    The variants run interleaved (one iteration of each per round, for several rounds), so a
    change in the machine's load during the measurement hits every variant alike.
    """
    import statistics
    import time
    from contextlib import ExitStack

    import numpy as np

    from vsslrt.engine.ort_runner import OrtRunner

    rng = np.random.default_rng(1)
    image = rng.standard_normal((batch, 3, 224, 224), dtype=np.float32)
    audio = rng.standard_normal((batch, *audio_shape), dtype=np.float32)
    variants = [
        {"intra_op_num_threads": args.threads},
        {"intra_op_num_threads": 1},
        {"intra_op_num_threads": args.threads, "graph_optimization_level": "basic"},
        {"intra_op_num_threads": args.threads, "graph_optimization_level": "extended"},
        {"intra_op_num_threads": args.threads, "execution_mode": "parallel"},
        {"intra_op_num_threads": args.threads, "allow_spinning": True},
    ]
    rounds = max(3, args.iterations // 2)
    walls: list[list[float]] = [[] for _ in variants]
    cpus: list[float] = [0.0 for _ in variants]
    with ExitStack() as stack:
        runners = [
            (stack.enter_context(OrtRunner(visual_onnx, **o)), stack.enter_context(OrtRunner(audio_onnx, **o)))
            for o in variants
        ]
        for v_run, a_run in runners:  # warm-up
            for _ in range(2):
                v_run.infer({"image": image})
                a_run.infer({"audio": audio})
        for _ in range(rounds):
            for i, (v_run, a_run) in enumerate(runners):
                cpu0, wall0 = time.process_time(), time.perf_counter()
                v_run.infer({"image": image}, check_inputs=False)
                a_run.infer({"audio": audio}, check_inputs=False)
                walls[i].append(time.perf_counter() - wall0)
                cpus[i] += time.process_time() - cpu0
    rows = []
    for options, wall, cpu in zip(variants, walls, cpus):
        median = statistics.median(wall)
        row = {
            "options": options,
            "rounds": rounds,
            "median_ms": median * 1e3,
            "samples_per_s": batch / median,
            "fraction_of_peak": gflops * batch / median / peak,
            "fraction_of_peak_per_cpu_second": gflops * batch * len(wall) / cpu / peak_cpu,
            "cpu_utilisation": cpu / sum(wall),
        }
        rows.append(row)
        print(f"tune batch {batch}: {options}: {row['median_ms']:.1f} ms, {row['samples_per_s']:.1f} samples/s, "
              f"{row['fraction_of_peak']:.1%} of peak, {row['fraction_of_peak_per_cpu_second']:.1%} per CPU second, "
              f"{row['cpu_utilisation']:.2f} cores busy")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
