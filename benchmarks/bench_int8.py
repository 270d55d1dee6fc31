"""int8 (and fp16) against fp32, in one run: speed of the encoders, end to end, and the accuracy gate.

1. EZ-VSL-sized encoders (random init, seed 0; `benchmarks/bench_pipeline.py`'s export), quantized by
   `vsslrt build --precision int8` calibrated on the real IS3 sample (`../shared/data/is3-mini`,
   `--dataset is3`; 8 samples calibrate, 8 are held back for the gate): fp32 vs int8 encoder latency
   at batch 16 (interleaved repeats, medians), and the gate's figures.
2. End to end, `bench_pipeline.py`'s reference-style and tuned reference-style baselines (imported, not
   copied) against vsslrt with the fp32 and the int8 graphs, same inputs, per-sample noise; ratios.
3. The demo models on the built-in synthetic calibration set (256 calibrate, 200 held back): the int8
   gate per calibration method (minmax, entropy, percentile), and fp16's figures measured the same way
   (fp16 graphs derived here from the shipped fp32 ones, normalisation kept fp32; ONNX Runtime on the CPU).

Usage: python benchmarks/bench_int8.py [--n 64] [--threads 2] [--json out.json] [--skip-demos]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IS3_MINI = ROOT.parent / "shared" / "data" / "is3-mini"


def _bench_pipeline():
    spec = importlib.util.spec_from_file_location("vsslrt_bench_pipeline", ROOT / "benchmarks" / "bench_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def encoder_latency(folder: Path, inputs: dict, threads: int | None, repeats: int = 5) -> dict:
    """Median ms per batch of 16 of each encoder, fp32 and int8 interleaved (shared-machine noise hits both)."""
    from vsslrt.pipeline.encoders import open_encoders

    images, audio = inputs["images"][:16], inputs["positive"][:16]
    times: dict[str, list[float]] = {}
    opened = {p: open_encoders(folder, backend="ort", precision=p, threads=threads, with_object=False) for p in ("fp32", "int8")}
    try:
        for enc in opened.values():
            enc.embed_images(images), enc.embed_audio(audio)  # warm-up
        for _ in range(repeats):
            for p, enc in opened.items():
                for role, fn, x in (("visual", enc.embed_images, images), ("audio", enc.embed_audio, audio)):
                    t = time.perf_counter()
                    fn(x)
                    times.setdefault(f"{role}.{p}", []).append(1e3 * (time.perf_counter() - t))
    finally:
        for enc in opened.values():
            enc.close()
    out = {k: float(np.median(v)) for k, v in times.items()}
    for role in ("visual", "audio"):
        out[f"{role}.speedup"] = out[f"{role}.fp32"] / out[f"{role}.int8"]
    return out


def demo_gates(work: Path, threads: int | None) -> dict:
    """The demos' int8 gate per calibration method, and their fp16 gate (see the module docstring)."""
    from vsslrt.models import DEMO_ASSETS, DEMO_MODELS
    from vsslrt.pipeline.build import build_exported_folder
    from vsslrt.pipeline.gate import format_gate
    from vsslrt.pipeline.int8 import Calibration

    out: dict = {}
    for name in DEMO_MODELS:
        for method in ("minmax", "entropy", "percentile"):
            folder = work / f"{name}-{method}" / name
            shutil.copytree(DEMO_ASSETS / name, folder)
            # Limits opened wide: the figures are what is measured; the default gate is applied below.
            loose = Calibration(method=method, gate=_loose())
            t = time.perf_counter()
            report = build_exported_folder(folder, backend="ort", precision="int8", calibration=loose, threads=threads)
            fig = report.gate
            out[f"{name}.int8.{method}"] = {**fig.to_dict(), "build_s": time.perf_counter() - t,
                                            "passes_default_gate": _passes_default(fig), "line": format_gate(fig)}
        folder = work / f"{name}-fp16" / name
        shutil.copytree(DEMO_ASSETS / name, folder)
        add_fp16_graphs(folder)
        report = build_exported_folder(folder, backend="ort", precision="fp16", calibration=Calibration(gate=_loose()),
                                       threads=threads)
        out[f"{name}.fp16"] = {**report.gate.to_dict(), "passes_default_gate": _passes_default(report.gate),
                               "line": format_gate(report.gate)}
    return out


def add_fp16_graphs(folder: Path) -> None:
    """fp16 encoder graphs for a folder that has only fp32 ones (a copy of a shipped demo): the export
    stage's transform, keeping fp32 everything from the last weighted operator on (the projection and
    the normalisation), like the exporter's fp32 tail."""
    import onnx

    from vsslrt.export.onnx_io import convert_to_fp16, save_model
    from vsslrt.export.pipeline import GRAPH_IO, graph_file
    from vsslrt.manifest import GraphEntry, Manifest

    manifest = Manifest.read(folder)
    for role in ("visual", "audio"):
        model = onnx.load(str(folder / manifest.graph(role, "fp32").file))
        weighted = [i for i, n in enumerate(model.graph.node) if n.op_type in ("Conv", "Gemm", "MatMul")]
        keep = [n.name for n in model.graph.node[weighted[-1] + 1:]]
        file = graph_file(role, "fp16")
        save_model(convert_to_fp16(model, keep), folder / file)
        ins, outs = GRAPH_IO[role]
        manifest.graphs.append(GraphEntry(role, "fp16", file, ins, outs, tuple(keep)))
        manifest.add_file(folder, file)
    manifest.write(folder)


def _loose():
    from vsslrt.pipeline.gate import GateThresholds

    return GateThresholds(max_delta=1e9, min_argmax_agreement=0.0)


def _passes_default(fig) -> bool:
    from vsslrt.pipeline.gate import DEFAULT_MAX_DELTA, DEFAULT_MIN_ARGMAX

    return all(abs(v) <= DEFAULT_MAX_DELTA for v in fig.deltas.values()) and fig.argmax_agreement >= DEFAULT_MIN_ARGMAX


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--engine", type=Path, default=Path(".benchmarks") / "engines" / "ezvsl")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--skip-demos", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from vsslrt.export import export_model
    from vsslrt.export.architectures import build_model
    from vsslrt.pipeline.build import build_exported_folder
    from vsslrt.pipeline.gate import format_gate
    from vsslrt.pipeline.int8 import Calibration

    bp = _bench_pipeline()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.engine / "manifest.json").exists():
        export_model("ezvsl", args.engine, seed=0)
    result: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as tmp:
        work = Path(tmp)
        int8_folder = work / "ezvsl"
        shutil.copytree(args.engine, int8_folder)
        t = time.perf_counter()
        report = build_exported_folder(
            int8_folder, backend="ort", precision="int8", threads=args.threads,
            calibration=Calibration(data=f"is3:{IS3_MINI}", samples=8, batch=8, gate_samples=8, gate=_loose()))
        result["ezvsl.is3.int8"] = {**report.gate.to_dict(), "build_s": time.perf_counter() - t,
                                    "passes_default_gate": _passes_default(report.gate), "line": format_gate(report.gate)}

        inputs = bp.make_inputs(args.n)
        result["encoders_batch16_ms"] = encoder_latency(int8_folder, inputs, args.threads)

        model = build_model("ezvsl", seed=0).eval()
        thresholds = {"max": 0.6041, "max10": 0.6645, "maxq3": 0.6382}
        with torch.inference_mode():
            model.reference_map(torch.from_numpy(inputs["images"][:2]), torch.from_numpy(inputs["positive"][:2]))
        t_ref, ref = bp.reference_style(model, inputs, args.batch, False, thresholds, torch)
        t_tuned, _ = bp.reference_style(model.to(memory_format=torch.channels_last), inputs, args.batch, True,
                                        thresholds, torch)
        t_fp32, fp32 = bp.vsslrt_style(args.engine, inputs, args.batch, 0, args.threads, thresholds)
        t_int8, int8 = bp.vsslrt_style(int8_folder, inputs, args.batch, 0, args.threads, thresholds)
        conds = ("pos", "silence", "noise", "offscreen")
        n = args.n
        result["end_to_end"] = {
            "n_samples": n, "batch": args.batch, "noise": "per sample", "threads": torch.get_num_threads(),
            "reference_samples_per_s": n / t_ref, "tuned_reference_samples_per_s": n / t_tuned,
            "vsslrt_fp32_samples_per_s": n / t_fp32, "vsslrt_int8_samples_per_s": n / t_int8,
            "fp32_vs_reference": t_ref / t_fp32, "fp32_vs_tuned": t_tuned / t_fp32,
            "int8_vs_reference": t_ref / t_int8, "int8_vs_tuned": t_tuned / t_int8, "int8_vs_fp32": t_fp32 / t_int8,
            "fp32_max_abs_map_diff": float(max(np.max(np.abs(ref["maps"][c] - fp32["maps"][k])) for k, c in enumerate(conds))),
            "int8_max_abs_map_diff": float(max(np.max(np.abs(ref["maps"][c] - int8["maps"][k])) for k, c in enumerate(conds))),
        }
        if not args.skip_demos:
            result["demos"] = demo_gates(work, args.threads)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
