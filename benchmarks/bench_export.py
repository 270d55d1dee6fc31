"""PyTorch eager vs ONNX Runtime CPU latency of the exported EZ-VSL encoders (batch 1 and 16).

For each encoder (visual: ResNet-18 on 3x224x224 -> 512x7x7 + projection + L2 norm; audio:
ResNet-18 on 1x257x200 -> max-pool + projection + L2 norm) and batch size, pytest-benchmark times
the ONNX Runtime session; the same number of rounds of the PyTorch module are timed alongside, and
``extra_info`` holds both medians and the ratio torch / onnxruntime (> 1: ONNX Runtime is faster).
Both use the same thread count (``VSSLRT_BENCH_THREADS``, default 2) and the same inputs; the
outputs are checked to agree before timing.

Run:  pytest benchmarks/bench_export.py --benchmark-only [--benchmark-json out.json]
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

THREADS = int(os.environ.get("VSSLRT_BENCH_THREADS", "2"))
ROUNDS = {1: 20, 16: 5}


@pytest.fixture(scope="module")
def ezvsl(tmp_path_factory):
    """EZ-VSL random-init encoders as PyTorch modules and ONNX Runtime sessions."""
    from vsslrt.export.architectures import build_model
    from vsslrt.export.pipeline import export_model
    from vsslrt.export.wrappers import AudioEncoder, VisualEncoder

    torch.set_num_threads(THREADS)
    folder = tmp_path_factory.mktemp("bench-export")
    export_model("ezvsl", folder, seed=0, threads=THREADS, parity_samples=2)
    model = build_model("ezvsl", seed=0)
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1

    def session(name):
        return ort.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"])

    return {
        "visual": (VisualEncoder(model).eval(), session("visual.onnx"), "image", (3, 224, 224)),
        "audio": (AudioEncoder(model).eval(), session("audio.onnx"), "audio", (1, 257, 200)),
    }


def _median_seconds(fn, rounds: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("encoder", ["visual", "audio"])
def test_torch_eager_vs_onnxruntime(benchmark, ezvsl, encoder, batch):
    module, session, input_name, shape = ezvsl[encoder]
    data = np.random.default_rng(0).standard_normal((batch, *shape), dtype=np.float32)
    tensor = torch.from_numpy(data)

    def run_torch():
        with torch.inference_mode():
            return module(tensor)

    def run_ort():
        return session.run(None, {input_name: data})[0]

    np.testing.assert_allclose(run_ort(), run_torch().numpy(), atol=1e-4)
    rounds = ROUNDS[batch]
    torch_median = _median_seconds(run_torch, rounds)
    benchmark.pedantic(run_ort, rounds=rounds, warmup_rounds=1, iterations=1)
    if benchmark.stats is None:  # --benchmark-disable: ran once as a smoke test, nothing to report
        return
    ort_median = benchmark.stats.stats.median
    benchmark.extra_info.update(
        {
            "encoder": encoder,
            "batch": batch,
            "threads": THREADS,
            "torch_eager_median_ms": round(torch_median * 1e3, 2),
            "onnxruntime_median_ms": round(ort_median * 1e3, 2),
            "torch_over_onnxruntime": round(torch_median / ort_median, 3),
        }
    )
