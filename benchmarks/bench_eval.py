"""Vectorised evaluator vs the per-sample loop reference, on 2,000 samples x 4 conditions (224x224).

The loop reference (tests/eval/oracle.py) is docs/metrics.md written sample by sample; the
evaluator must give exactly its numbers, and the benchmark records how much faster it is:
`extra_info` holds the loop's time, the speed-up and the samples per second of both. The CuPy
variant (marked cupy) times the same evaluation on the GPU against NumPy.

Run:  pytest benchmarks/bench_eval.py --benchmark-only -s [--benchmark-json out.json]
      VSSLRT_BENCH_EVAL_N=200 pytest ... for a quick run.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest

from vsslrt.eval import evaluate

FIELDS = ("pos", "silence", "noise", "offscreen", "gt")
ROUNDS = int(os.environ.get("VSSLRT_BENCH_ROUNDS", "3"))


def assert_same(got: dict, want: dict, atol: float = 1e-9) -> None:
    """Equal key sets and equal values (NaN where the other is NaN); atol only absorbs summation order."""
    assert got.keys() == want.keys()
    bad = {
        k: (got[k], want[k])
        for k in want
        if not ((math.isnan(got[k]) and math.isnan(want[k])) or abs(got[k] - want[k]) <= atol)
    }
    assert not bad, f"{len(bad)} keys differ, e.g. {dict(list(bad.items())[:5])}"


def best_times(fns: dict, rounds: int = ROUNDS) -> tuple[dict, dict]:
    """Best wall-clock and best CPU seconds (all threads) of each function, over interleaved rounds.

    Interleaving makes a change of machine load hit every function; CPU time measures the work
    itself on a loaded machine, wall time also the waiting.
    """
    wall = {name: math.inf for name in fns}
    cpu = {name: math.inf for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name] = min(wall[name], time.perf_counter() - start)
            cpu[name] = min(cpu[name], time.process_time() - start_cpu)
    return wall, cpu


@pytest.mark.parametrize("protocol", ["paper", "fixed"])
def test_evaluator_vs_loop(benchmark, eval_maps, eval_thresholds, loop_oracle, protocol):
    n = eval_maps["pos"].shape[0]
    args = tuple(eval_maps[f] for f in FIELDS)
    kwargs = dict(group=eval_maps["group"], protocol=protocol, thresholds=eval_thresholds)

    start, start_cpu = time.perf_counter(), time.process_time()
    want = loop_oracle(*args, **kwargs)
    loop_s, loop_cpu = time.perf_counter() - start, time.process_time() - start_cpu

    got = benchmark.pedantic(evaluate, args=args, kwargs=kwargs, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    assert_same(got, want)
    # CPU seconds (all threads) measure the work itself; wall seconds also depend on what else runs.
    start_cpu = time.process_time()
    evaluate(*args, **kwargs)
    fast_cpu = time.process_time() - start_cpu

    fast_s = benchmark.stats.stats.min
    benchmark.extra_info.update(
        {
            "samples": n,
            "map_size": "224x224 (no resampling)",
            "loop_seconds": loop_s,
            "loop_samples_per_s": n / loop_s,
            "evaluator_samples_per_s": n / fast_s,
            "speedup_vs_loop": loop_s / fast_s,
            "loop_cpu_seconds": loop_cpu,
            "evaluator_cpu_seconds": fast_cpu,
            "cpu_work_ratio": loop_cpu / fast_cpu,
        }
    )
    print(
        f"\n[{protocol}] {n} samples: per-sample loop {loop_s:.2f} s ({n / loop_s:.0f} samples/s), "
        f"evaluator {fast_s:.2f} s ({n / fast_s:.0f} samples/s): {loop_s / fast_s:.1f}x faster; "
        f"CPU work {loop_cpu:.2f} s vs {fast_cpu:.2f} s ({loop_cpu / fast_cpu:.1f}x less)"
    )


@pytest.mark.cupy
@pytest.mark.parametrize("protocol", ["paper", "fixed"])
def test_cupy_vs_numpy(benchmark, eval_maps, eval_thresholds, protocol):
    import cupy

    n = eval_maps["pos"].shape[0]
    kwargs = dict(protocol=protocol, thresholds=eval_thresholds)
    host_args = tuple(eval_maps[f] for f in FIELDS)
    start = time.perf_counter()
    want = evaluate(*host_args, group=eval_maps["group"], **kwargs)
    numpy_s = time.perf_counter() - start

    dev_args = tuple(cupy.asarray(a) for a in host_args)
    dev_group = cupy.asarray(eval_maps["group"])

    def run():
        out = evaluate(*dev_args, group=dev_group, **kwargs)  # compute() copies to the host: synchronised
        cupy.cuda.get_current_stream().synchronize()
        return out

    got = benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    # cuBLAS and OpenBLAS may round an upsampled value differently; 224x224 maps are not resampled.
    assert_same(got, want, atol=1e-6)
    gpu_s = benchmark.stats.stats.min
    benchmark.extra_info.update(
        {
            "samples": n,
            "numpy_seconds": numpy_s,
            "cupy_samples_per_s": n / gpu_s,
            "numpy_samples_per_s": n / numpy_s,
            "speedup_vs_numpy": numpy_s / gpu_s,
        }
    )
    print(f"\n[{protocol}] CuPy {gpu_s:.3f} s vs NumPy {numpy_s:.2f} s: {numpy_s / gpu_s:.1f}x")


@pytest.mark.parametrize("interp", ["bilinear", "cv2"])
def test_paper_float32_upsampling_cost(benchmark, eval_thresholds, interp):
    """Paper mode on 7x7 maps: the reference's float32 upsampling vs the float64 one it replaced.

    Both evaluations run in this process, interleaved, each timed `ROUNDS` times (best kept): the
    ratio is the evaluator time with the float32 path over the time with the float64 path (the
    target is at most 1.10). The maps are the 224x224 benchmark's sizes scaled down: (cos + 1) / 2
    values, so the float32 path's exactness pre-check behaves as on real model output.
    """
    import numpy as np

    from vsslrt.eval import _kernel
    from vsslrt.eval.interp import upsample

    n = max(64, int(os.environ.get("VSSLRT_BENCH_EVAL_N", "2000")) // 2)
    rng = np.random.default_rng(7)
    maps = {c: ((rng.random((n, 7, 7), dtype=np.float32) * 1.2 - 0.2 + 1) / 2).astype(np.float32)
            for c in ("pos", "silence", "noise", "offscreen")}
    gt = np.zeros((n, 224, 224), dtype=bool)
    gt[:, 40:150, 60:180] = True
    args = tuple(maps[c] for c in ("pos", "silence", "noise", "offscreen")) + (gt,)
    kwargs = dict(protocol="paper", thresholds=eval_thresholds, interp=interp, group=np.arange(n) // 2)
    float32_resampler = _kernel._resampler

    def float64_resampler(config, dtype, xp):
        return lambda m, how, tag: upsample(m, how, xp=xp, dtype=dtype, out_tag=tag)

    def with_resampler(resampler):
        def run():
            _kernel._resampler = resampler
            try:
                evaluate(*args, **kwargs)
            finally:
                _kernel._resampler = float32_resampler

        return run

    wall, cpu = best_times({"float64": with_resampler(float64_resampler), "float32": with_resampler(float32_resampler)})
    benchmark.pedantic(evaluate, args=args, kwargs=kwargs, rounds=1, iterations=1, warmup_rounds=0)
    ratio = wall["float32"] / wall["float64"]
    cpu_ratio = cpu["float32"] / cpu["float64"]
    benchmark.extra_info.update({"samples": n, "map_size": "7x7", "float64_seconds": wall["float64"],
                                 "float32_seconds": wall["float32"], "float32_over_float64": ratio,
                                 "float64_cpu_seconds": cpu["float64"], "float32_cpu_seconds": cpu["float32"],
                                 "float32_over_float64_cpu": cpu_ratio})
    print(f"\n[paper, {interp}] {n} samples of 7x7 maps: float64 upsampling {wall['float64']:.3f} s, reference float32 "
          f"{wall['float32']:.3f} s: ratio {ratio:.3f} (CPU {cpu['float64']:.3f} s vs {cpu['float32']:.3f} s: {cpu_ratio:.3f})")


@pytest.mark.parametrize("size", [224, 7])
def test_protocol_evaluators_cost(benchmark, eval_maps, eval_thresholds, size):
    """The extended-set (SLAVC) and IS3 interactive evaluators against the negative-audio evaluator.

    Same samples, same process, interleaved rounds (best of `ROUNDS` each): the ratios are the extra
    time per sample of each new evaluator (on the positive map, the one it reads) over the time of
    `evaluate` (four conditions, paper thresholds); the target is at most 0.25 each. size 7: the
    maps cut to 7x7 (a model's raw output, upsampled by both: bilinear / bicubic).
    """
    from vsslrt.eval.extended import ExtendedEvaluator
    from vsslrt.eval.interactive import InteractiveEvaluator

    n = eval_maps["pos"].shape[0]
    args = tuple(eval_maps[f] if f == "gt" or size == 224 else eval_maps[f][:, :7, :7].copy() for f in FIELDS)
    gt, pos, group = eval_maps["gt"], args[0], eval_maps["group"]
    positive = gt.reshape(n, -1).any(axis=1)

    def main():
        evaluate(*args, group=group, protocol="fixed", thresholds=eval_thresholds)

    def extended():
        ExtendedEvaluator("slavc", "paper").update(pos, gt, positive).compute()

    def interactive():
        InteractiveEvaluator("paper").update(pos, gt, group).compute()

    best, cpu = best_times({"main": main, "extended": extended, "interactive": interactive})
    benchmark.pedantic(extended, rounds=1, iterations=1, warmup_rounds=0)
    ratios = {k: best[k] / best["main"] for k in ("extended", "interactive")}
    cpu_ratios = {k: cpu[k] / cpu["main"] for k in ("extended", "interactive")}
    benchmark.extra_info.update({"samples": n, **{f"{k}_seconds": v for k, v in best.items()},
                                 **{f"{k}_cpu_seconds": v for k, v in cpu.items()},
                                 **{f"{k}_over_main": v for k, v in ratios.items()},
                                 **{f"{k}_over_main_cpu": v for k, v in cpu_ratios.items()}})
    print(f"\n{n} samples of {size}x{size} maps: negative-audio evaluator {best['main']:.3f} s; extended (SLAVC) {best['extended']:.3f} s "
          f"(ratio {ratios['extended']:.3f}, CPU {cpu_ratios['extended']:.3f}); IS3 interactive {best['interactive']:.3f} s "
          f"(ratio {ratios['interactive']:.3f}, CPU {cpu_ratios['interactive']:.3f})")


@pytest.mark.parametrize("size", [224, 7])
def test_mask_evaluator_cost(benchmark, eval_maps, eval_thresholds, size):
    """The mask evaluator (AVSBench mIoU, F-curve, FPR on all four conditions) against `evaluate`.

    Same samples, same process, interleaved rounds (best of `ROUNDS` each): the ratio is the mask
    evaluator's time over the negative-audio evaluator's (four conditions, fixed mode); the target
    is at most 0.25. size 7: the maps cut to 7x7 and upsampled by both (bilinear).
    """
    from vsslrt.eval.masks import MaskEvaluator

    args = tuple(eval_maps[f] if f == "gt" or size == 224 else eval_maps[f][:, :7, :7].copy() for f in FIELDS)
    maps = dict(zip(("pos", "silence", "noise", "offscreen"), args[:4]))
    gt, group = eval_maps["gt"], eval_maps["group"]

    def main():
        evaluate(*args, group=group, protocol="fixed", thresholds=eval_thresholds)

    def masks():
        MaskEvaluator("fixed").update(maps, gt, video=group).compute()

    best, cpu = best_times({"main": main, "masks": masks})
    benchmark.pedantic(masks, rounds=1, iterations=1, warmup_rounds=0)
    ratio = best["masks"] / best["main"]
    cpu_ratio = cpu["masks"] / cpu["main"]
    n = gt.shape[0]
    benchmark.extra_info.update({"samples": n, "main_seconds": best["main"], "masks_seconds": best["masks"],
                                 "masks_over_main": ratio, "main_cpu_seconds": cpu["main"],
                                 "masks_cpu_seconds": cpu["masks"], "masks_over_main_cpu": cpu_ratio})
    print(f"\n{n} samples of {size}x{size} maps: negative-audio evaluator {best['main']:.3f} s; "
          f"mask evaluator {best['masks']:.3f} s (ratio {ratio:.3f}, CPU {cpu_ratio:.3f})")


@pytest.mark.parametrize("size", [224, 7])
def test_multisource_evaluator_cost(benchmark, eval_maps, eval_thresholds, size):
    """The multi-source (duet) evaluator against `evaluate`, per four maps.

    Mixtures are built from the benchmark's samples, two panels each (samples 2i and 2i + 1, their
    boxes as the panels' GT), queried twice (the positive maps, then the silence maps): four maps a
    mixture, as four conditions are four maps a sample. The ratio is the duet evaluator's time per
    mixture over the negative-audio evaluator's per sample (fixed modes, interleaved rounds).
    """
    from vsslrt.eval.multisource import MultiSourceEvaluator

    n = eval_maps["pos"].shape[0] // 2 * 2
    cut = (slice(None),) if size == 224 else (slice(None), slice(0, 7), slice(0, 7))
    args = tuple(eval_maps[f][:n] if f == "gt" else eval_maps[f][:n][cut].copy() for f in FIELDS)
    pos, silence = args[0], args[1]
    h, w = pos.shape[1:]
    mixtures = np.stack([pos.reshape(n // 2, 2, h, w), silence.reshape(n // 2, 2, h, w)], axis=1)  # (M, Q, P, h, w)
    panels_gt = eval_maps["gt"][:n].reshape(n // 2, 2, 224, 224)

    def main():
        evaluate(*args, group=eval_maps["group"][:n], protocol="fixed", thresholds=eval_thresholds)

    def duets():
        MultiSourceEvaluator("fixed").update(mixtures, panels_gt).compute()

    best, cpu = best_times({"main": main, "duets": duets})
    benchmark.pedantic(duets, rounds=1, iterations=1, warmup_rounds=0)
    per_mixture, per_sample = best["duets"] / (n // 2), best["main"] / n
    ratio = per_mixture / per_sample
    benchmark.extra_info.update({"samples": n, "mixtures": n // 2, "main_seconds": best["main"], "duets_seconds": best["duets"],
                                 "mixture_over_sample": ratio, "mixture_over_sample_cpu": (cpu["duets"] / (n // 2)) / (cpu["main"] / n)})
    print(f"\n{n} samples / {n // 2} mixtures of {size}x{size} maps: negative-audio evaluator {per_sample * 1e3:.3f} ms a sample; "
          f"duet evaluator {per_mixture * 1e3:.3f} ms a mixture (ratio {ratio:.2f})")
