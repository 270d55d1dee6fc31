"""GPU, end to end: vsslrt on the torch backend against the reference style in PyTorch eager on the same GPU.

For machines with PyTorch + CUDA and CuPy but no TensorRT and no onnxruntime-gpu. Same inputs, same
EZ-VSL random-init weights (the export's `visual.pt2`/`audio.pt2` and `build_model(seed=0)`):

1. reference style: `bench_pipeline.reference_style`'s work on the GPU: four full forward passes per
   batch (one per audio condition) in eager fp32, maps copied to the host, the per-sample metric loop;
2. vsslrt: the exported programs on CUDA via the torch backend, CuPy inputs, the visual encoder once per
   image, the audio encoder once per clip, silence once, noise per sample, maps and the evaluator on the
   device (DLPack hand-over, no host copy of embeddings or maps).

Prints samples/s and the ratio, and the largest map difference (TF32 is off in both).
Usage: python benchmarks/bench_torch_gpu.py [--n 256] [--batch 64] [--engine DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--engine", type=Path, default=Path(".benchmarks") / "engines" / "ezvsl")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import cupy
    import torch

    from vsslrt.eval import Evaluator
    from vsslrt.export import export_model
    from vsslrt.export.architectures import build_model
    from vsslrt.head import similarity_maps_multi
    from vsslrt.pipeline.encoders import open_encoders

    if not torch.cuda.is_available():
        raise SystemExit("bench_torch_gpu: torch sees no CUDA device")
    torch.backends.cudnn.conv.fp32_precision = "ieee"  # fp32 in both, as the torch backend runs
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    bp = _load("vsslrt_bench_pipeline", ROOT / "benchmarks" / "bench_pipeline.py")
    oracle = bp._oracle()
    if not (args.engine / "visual.pt2").exists():
        export_model("ezvsl", args.engine, seed=0)
    inputs = bp.make_inputs(args.n)
    thresholds = {"max": 0.6041, "max10": 0.6645, "maxq3": 0.6382}
    n, batch = args.n, args.batch
    model = build_model("ezvsl", seed=0).eval().cuda()

    def reference() -> tuple[float, dict]:
        maps = {c: [] for c in ("pos", "silence", "noise", "offscreen")}
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            for s in range(0, n, batch):
                e = min(s + batch, n)
                img = torch.from_numpy(inputs["images"][s:e]).cuda()
                audios = {"pos": inputs["positive"][s:e], "silence": np.repeat(inputs["silence"], e - s, axis=0),
                          "noise": inputs["noise"][s:e], "offscreen": inputs["positive"][inputs["offscreen_index"][s:e]]}
                for cond, aud in audios.items():
                    a = torch.from_numpy(np.ascontiguousarray(aud)).cuda()
                    maps[cond].append(model.reference_map(img, a).cpu().numpy())
        stacked = {c: np.concatenate(v) for c, v in maps.items()}
        oracle.oracle_evaluate(stacked["pos"], stacked["silence"], stacked["noise"], stacked["offscreen"], inputs["gt"],
                               protocol="fixed", thresholds=thresholds)
        return time.perf_counter() - start, stacked

    def ours() -> tuple[float, np.ndarray]:
        with open_encoders(args.engine, backend="torch", with_object=False) as enc:
            d = {k: cupy.asarray(v) for k, v in inputs.items() if k != "offscreen_index"}
            # Warm-up outside the clock at the measured batch, as the reference's warm-up run.
            enc.embed_images(d["images"][:batch]), enc.embed_audio(d["positive"][:batch])
            cupy.cuda.get_current_stream().synchronize()
            start = time.perf_counter()
            ev = Evaluator(protocol="fixed", thresholds=thresholds)
            silence = enc.embed_audio(d["silence"])
            audio = cupy.concatenate([enc.embed_audio(d["positive"][s:s + batch]) for s in range(0, n, batch)])
            off = cupy.asarray(inputs["offscreen_index"])
            out = []
            for s in range(0, n, batch):
                e = min(s + batch, n)
                visual = enc.embed_images(d["images"][s:e])
                noise = enc.embed_audio(d["noise"][s:e])
                maps = similarity_maps_multi(visual, [audio[s:e], silence, noise, audio[off[s:e]]], enc.manifest.head)
                ev.update(maps[0], maps[1], maps[2], maps[3], d["gt"][s:e], sample_ids=np.arange(s, e))
                out.append(maps)
            ev.compute()
            cupy.cuda.get_current_stream().synchronize()
            return time.perf_counter() - start, cupy.asnumpy(cupy.concatenate(out, axis=1))

    reference()  # warm-up: cuDNN autotuning and allocator, outside the measured run
    t_ref, ref_maps = reference()
    t_ours, our_maps = ours()
    diff = float(max(np.max(np.abs(ref_maps[c] - our_maps[k])) for k, c in enumerate(("pos", "silence", "noise", "offscreen"))))
    result = {"n_samples": n, "batch": batch, "gpu": torch.cuda.get_device_name(),
              "reference_eager_gpu_samples_per_s": n / t_ref, "vsslrt_torch_gpu_samples_per_s": n / t_ours,
              "speedup_vs_reference": t_ref / t_ours, "max_abs_map_diff": diff}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if diff > 1e-4:
        raise SystemExit(f"maps differ between the reference style and the torch backend: max |diff| {diff:.3g} > 1e-4")
    return result


if __name__ == "__main__":
    main()
