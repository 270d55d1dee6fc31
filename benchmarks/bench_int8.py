"""int8 (and fp16) against fp32, in one run: speed of the encoders, end to end, and the accuracy gate.

1. EZ-VSL-sized encoders (random init, seed 0; `benchmarks/bench_pipeline.py`'s export), quantized by
   `vsslrt build --precision int8` calibrated on the real IS3 sample (`../shared/data/is3-mini`,
   `--dataset is3`; 8 samples calibrate, 8 are held back for the gate): fp32 vs int8 encoder latency
   at batch 16 (interleaved repeats, medians), and the gate's figures; the same latency with the
   last quantized conv of each encoder kept fp32, and with the stems kept fp32 (`fp32_stem`).
2. End to end, `bench_pipeline.py`'s reference-style and tuned reference-style baselines (imported, not
   copied) against vsslrt with the fp32 graphs, the int8 graphs, and the int8 graphs with fp32 stems,
   same inputs, per-sample noise, each style warmed up with one batch outside the clock; ratios of the
   medians of `--repeats` interleaved runs (one run each swung by 3x on the shared 2-core machine).
3. The demo models on the built-in synthetic calibration set (256 calibrate, 200 held back): the int8
   gate per calibration method (minmax, entropy, percentile), percentile with the last quantized conv of
   each encoder also kept fp32 (`keep_fp32`), percentile with the stems kept fp32 (`fp32_stem`; both
   encoder costs are measured on EZ-VSL in part 1), and
   fp16's figures measured the same way (fp16 graphs derived here from the shipped fp32 ones,
   normalisation kept fp32; ONNX Runtime on the CPU).

4. With --layers: per demo, the argmax agreement with exactly one inner conv in int8 (every other
   weighted layer fp32), on the same held-back samples: how much a single layer's rounding moves the
   maps' near-tied maxima (docs/int8.md, "Raising the argmax agreement").

Usage: python benchmarks/bench_int8.py [--n 64] [--threads 2] [--repeats 3] [--json out.json] [--skip-demos] [--layers]
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
        folder = work / f"{name}-last-conv" / name
        shutil.copytree(DEMO_ASSETS / name, folder)
        keep = last_quantized_convs(work / f"{name}-percentile" / name)
        report = build_exported_folder(folder, backend="ort", precision="int8", threads=threads,
                                       calibration=Calibration(keep_fp32=keep, gate=_loose()))
        out[f"{name}.int8.percentile.last_conv_fp32"] = {**report.gate.to_dict(), "keep_fp32": list(keep),
                                                         "passes_default_gate": _passes_default(report.gate),
                                                         "line": format_gate(report.gate)}
        folder = work / f"{name}-fp32-stem" / name
        shutil.copytree(DEMO_ASSETS / name, folder)
        report = build_exported_folder(folder, backend="ort", precision="int8", threads=threads,
                                       calibration=Calibration(fp32_stem=True, gate=_loose()))
        out[f"{name}.int8.percentile.fp32_stem"] = {**report.gate.to_dict(), "line": format_gate(report.gate),
                                                    "passes_default_gate": _passes_default(report.gate)}
        folder = work / f"{name}-fp16" / name
        shutil.copytree(DEMO_ASSETS / name, folder)
        add_fp16_graphs(folder)
        report = build_exported_folder(folder, backend="ort", precision="fp16", calibration=Calibration(gate=_loose()),
                                       threads=threads)
        out[f"{name}.fp16"] = {**report.gate.to_dict(), "passes_default_gate": _passes_default(report.gate),
                               "line": format_gate(report.gate)}
    return out


def single_layer_agreement(work: Path, threads: int | None) -> dict:
    """Part 4 of the module docstring: {demo: {node: argmax agreement}} with that one conv in int8."""
    import onnx

    from vsslrt.data import BatchLoader, get_frontend
    from vsslrt.engine.ort_runner import OrtRunner
    from vsslrt.export.quantize import WEIGHTED_OPS, kept_fp32_nodes, quantize_graph
    from vsslrt.head import similarity_maps
    from vsslrt.manifest import Manifest
    from vsslrt.models import DEMO_ASSETS, DEMO_MODELS
    from vsslrt.pipeline.int8 import ENCODERS, Calibration, calibration_inputs, load_calibration_data

    calibration = Calibration()
    data = load_calibration_data(calibration)

    def embed(path, name, x):  # an encoder graph has one output
        with OrtRunner(path, provider="cpu", intra_op_num_threads=threads) as runner:
            return np.concatenate([next(iter(runner.infer({name: x[i:i + 32]}).values())) for i in range(0, len(x), 32)])

    out: dict = {}
    for demo in DEMO_MODELS:
        folder = DEMO_ASSETS / demo
        manifest = Manifest.read(folder)
        calib = calibration_inputs(data, manifest.frontend, calibration.batch, calibration.workers)
        loader = BatchLoader(data.dataset, get_frontend(manifest.frontend), mode="fixed", batch_size=32, repeats=1,
                             run_seed=0, indices=data.held_back, workers=2, offscreen_inputs=False, noise_inputs=False)
        held = {"image": [], "audio": []}
        for b in loader:
            held["image"].append(b.images)
            held["audio"].append(b.positive.astype(np.float32))
        held = {k: np.concatenate(v) for k, v in held.items()}
        fp32 = {role: embed(folder / manifest.graph(role, "fp32").file, name, held[name]) for role, name in ENCODERS}

        def cells(visual, audio):
            maps = np.asarray(similarity_maps(visual, audio, manifest.head))
            return maps.reshape(len(maps), -1).argmax(axis=1)

        reference = cells(fp32["visual"], fp32["audio"])
        out[demo] = {}
        for role, name in ENCODERS:
            source = folder / manifest.graph(role, "fp32").file
            model = onnx.load(str(source))
            kept = set(kept_fp32_nodes(model))
            inner = [n.name for n in model.graph.node if n.op_type in WEIGHTED_OPS and n.name not in kept]
            for node in inner:
                target = work / f"{demo}-{node}.int8.onnx"
                quantize_graph(source, target, calib[name], input_name=name, batch=calibration.batch,
                               keep_fp32=[n for n in inner if n != node], frontend=manifest.frontend)
                embeddings = {**fp32, role: embed(target, name, held[name])}
                out[demo][f"{role}/{node}"] = float(np.mean(cells(embeddings["visual"], embeddings["audio"]) == reference))
    return out


def last_quantized_convs(folder: Path) -> tuple[str, ...]:
    """The last weighted node of each encoder that an int8 build of `folder` quantized (the layer that
    feeds the global pooling or the projection)."""
    import onnx

    from vsslrt.export.quantize import WEIGHTED_OPS
    from vsslrt.manifest import Manifest

    manifest = Manifest.read(folder)
    names = []
    for role in ("visual", "audio"):
        kept = set(manifest.quantization[role]["fp32_nodes"])
        model = onnx.load(str(folder / manifest.graph(role, "fp32").file), load_external_data=False)
        names.append([n.name for n in model.graph.node if n.op_type in WEIGHTED_OPS and n.name not in kept][-1])
    return tuple(names)


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
    parser.add_argument("--repeats", type=int, default=3, help="interleaved end-to-end repeats (medians)")
    parser.add_argument("--skip-demos", action="store_true")
    parser.add_argument("--layers", action="store_true", help="also part 4: one conv in int8 at a time")
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
        # The cost of keeping the last quantized conv of each encoder in fp32 too (part 3's accuracy figures).
        last_conv = work / "ezvsl-last-conv"
        shutil.copytree(args.engine, last_conv)
        build_exported_folder(last_conv, backend="ort", precision="int8", threads=args.threads,
                              calibration=Calibration(data=f"is3:{IS3_MINI}", samples=8, batch=8, gate_samples=8,
                                                      gate=_loose(), keep_fp32=last_quantized_convs(int8_folder)))
        result["encoders_batch16_ms_last_conv_fp32"] = encoder_latency(last_conv, inputs, args.threads)
        # The cost of keeping the stems in fp32 (`Calibration.fp32_stem`, part 3's accuracy figures).
        stem_folder = work / "ezvsl-fp32-stem"
        shutil.copytree(args.engine, stem_folder)
        build_exported_folder(stem_folder, backend="ort", precision="int8", threads=args.threads,
                              calibration=Calibration(data=f"is3:{IS3_MINI}", samples=8, batch=8, gate_samples=8,
                                                      gate=_loose(), fp32_stem=True))
        result["encoders_batch16_ms_fp32_stem"] = encoder_latency(stem_folder, inputs, args.threads)

        model = build_model("ezvsl", seed=0).eval()
        # A second copy for the tuned style: Module.to() converts a module in place.
        tuned = build_model("ezvsl", seed=0).eval().to(memory_format=torch.channels_last)
        thresholds = {"max": 0.6041, "max10": 0.6645, "maxq3": 0.6382}
        # Each style warms up outside the clock with one batch of the measured size, as vsslrt_style does.
        with torch.inference_mode():
            for net, layout in ((model, torch.contiguous_format), (tuned, torch.channels_last)):
                net.reference_map(torch.from_numpy(inputs["images"][:args.batch]).contiguous(memory_format=layout),
                                  torch.from_numpy(inputs["positive"][:args.batch]).contiguous(memory_format=layout))
        # Interleaved repeats, medians: a load change on the shared machine hits every style alike.
        seconds: dict[str, list[float]] = {"reference": [], "tuned": [], "fp32": [], "int8": [], "int8_fp32_stem": []}
        for _ in range(args.repeats):
            t, ref = bp.reference_style(model, inputs, args.batch, False, thresholds, torch)
            seconds["reference"].append(t)
            t, _ = bp.reference_style(tuned, inputs, args.batch, True, thresholds, torch)
            seconds["tuned"].append(t)
            t, fp32 = bp.vsslrt_style(args.engine, inputs, args.batch, 0, args.threads, thresholds)
            seconds["fp32"].append(t)
            t, int8 = bp.vsslrt_style(int8_folder, inputs, args.batch, 0, args.threads, thresholds)
            seconds["int8"].append(t)
            t, _ = bp.vsslrt_style(stem_folder, inputs, args.batch, 0, args.threads, thresholds)
            seconds["int8_fp32_stem"].append(t)
        t_ref, t_tuned, t_fp32, t_int8, t_stem = (float(np.median(seconds[k])) for k in
                                                  ("reference", "tuned", "fp32", "int8", "int8_fp32_stem"))
        conds = ("pos", "silence", "noise", "offscreen")
        n = args.n
        result["end_to_end"] = {
            "n_samples": n, "batch": args.batch, "noise": "per sample", "threads": torch.get_num_threads(),
            "repeats": args.repeats, "seconds": seconds,
            "reference_samples_per_s": n / t_ref, "tuned_reference_samples_per_s": n / t_tuned,
            "vsslrt_fp32_samples_per_s": n / t_fp32, "vsslrt_int8_samples_per_s": n / t_int8,
            "fp32_vs_reference": t_ref / t_fp32, "fp32_vs_tuned": t_tuned / t_fp32,
            "int8_vs_reference": t_ref / t_int8, "int8_vs_tuned": t_tuned / t_int8, "int8_vs_fp32": t_fp32 / t_int8,
            "int8_fp32_stem_vs_reference": t_ref / t_stem, "int8_fp32_stem_vs_tuned": t_tuned / t_stem,
            "fp32_max_abs_map_diff": float(max(np.max(np.abs(ref["maps"][c] - fp32["maps"][k])) for k, c in enumerate(conds))),
            "int8_max_abs_map_diff": float(max(np.max(np.abs(ref["maps"][c] - int8["maps"][k])) for k, c in enumerate(conds))),
        }
        if not args.skip_demos:
            result["demos"] = demo_gates(work, args.threads)
        if args.layers:
            result["single_layer_int8_argmax_agreement"] = single_layer_agreement(work, args.threads)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
