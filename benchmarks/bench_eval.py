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
