"""Reduced-precision builds: calibration data, the int8 graphs of a folder, and the accuracy gate.

`vsslrt build --precision int8` (through `vsslrt.pipeline.build`) does, after the fp32 export:

1. load the calibration dataset the user names (`--calib-data`: "synth", "KIND:DIR" or a folder
   with a manifest.jsonl) and split it: the first `--calib-samples` samples calibrate, the next
   `gate_samples` are held back for the accuracy gate (never seen by the calibration);
2. prepare the calibration inputs with the model's own front-end: the images, and for the audio
   encoder the positive clips, one seeded noise draw per clip and one batch of the silence input
   (the benchmark feeds all three, and global max pooling reads their extremes);
3. quantize each encoder to a QDQ graph (`vsslrt.export.quantize`; the scheme follows the backend:
   uint8 activations for ONNX Runtime on the CPU, symmetric int8 for TensorRT), written as
   `visual.int8.onnx` and `audio.int8.onnx` beside the fp32 graphs and recorded in the manifest with
   their fp32 nodes and the calibration record (`quantization`);
4. after the engines are built and recorded, run the gate (`vsslrt.pipeline.gate`) and record its
   figures in the manifest (`gates.int8`); a failed gate restores the previous manifest and raises.

The built-in synthetic calibration set ("synth") is the synthetic benchmark's training split drawn
with data seed 1: the same distribution as the demos' training data (seed 0) and test split, but
scenes that neither contains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.errors import InputError
from vsslrt.manifest import GraphEntry, Manifest
from vsslrt.pipeline.gate import GateFigures, GateThresholds
from vsslrt.data import BatchLoader, get_frontend, load_dataset, silence_input
from vsslrt.data.datasets import DATASET_KINDS
from vsslrt.files import atomic_write_bytes, sha256_file
from vsslrt.pipeline import gate
from vsslrt.data.synth import ensure_split
from vsslrt.export.pipeline import GRAPH_IO, graph_file
from vsslrt.export.quantize import CALIBRATION_METHODS, FP32_RULE, node_names, quantize_graph

SYNTH = "synth"
SYNTH_SEED = 1
DEFAULT_CALIB_SAMPLES = 256
DEFAULT_GATE_SAMPLES = 200
DEFAULT_CALIB_BATCH = 16
ENCODERS = (("visual", "image"), ("audio", "audio"))


@dataclass(frozen=True)
class Calibration:
    """How to calibrate an int8 build and gate a reduced-precision one (the CLI's `--calib-*` and `--gate-*`).

    Attributes:
        data: "synth", "KIND:DIR" (KIND a `vsslrt.data.datasets.KINDS` name) or a folder holding a
            manifest.jsonl / manifest.csv.
        samples: Samples that calibrate (the first ones of the dataset).
        method: "minmax", "entropy" or "percentile".
        batch: Calibration batch size (the calibration set must hold at least one batch).
        gate_samples: Held-back samples the gate benchmarks (the ones after the calibration samples;
            fewer when the dataset ends sooner).
        gate: The gate's limits.
        keep_fp32: More node names to keep in fp32, each in the encoder graph that has it.
        fp32_stem: Keep each encoder's stem (its first weighted layer, activation and pooling) in fp32;
            the default quantizes it (`vsslrt.export.quantize`, docs/int8.md).
        workers: Data workers.
    """

    data: str = SYNTH
    samples: int = DEFAULT_CALIB_SAMPLES
    method: str = "percentile"  # the metric-space winner on the demos (docs/int8.md)
    batch: int = DEFAULT_CALIB_BATCH
    gate_samples: int = DEFAULT_GATE_SAMPLES
    gate: GateThresholds = field(default_factory=GateThresholds)
    keep_fp32: tuple[str, ...] = ()
    fp32_stem: bool = False
    workers: int = 2

    def check(self) -> None:
        if not isinstance(self.fp32_stem, bool):
            raise InputError(f"fp32_stem: expected True or False, got {self.fp32_stem!r}.")
        if self.method not in CALIBRATION_METHODS:
            raise InputError(f"--calib-method: expected one of {', '.join(CALIBRATION_METHODS)}, got {self.method!r}.")
        for name, value, low in (("--calib-samples", self.samples, 1), ("calibration batch", self.batch, 1),
                                 ("gate samples", self.gate_samples, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"{name}: expected an integer >= {low}, got {value!r}.")
        if self.samples < self.batch:
            raise InputError(f"--calib-samples: expected at least one calibration batch of {self.batch} samples, got "
                             f"{self.samples}.", hint=f"pass --calib-samples {self.batch} or more")


@dataclass
class CalibrationData:
    """The loaded calibration dataset, its split, and a label for the records."""

    dataset: Any
    label: str
    calibrate: list[int]
    held_back: list[int]


def scheme_for(backend: str) -> str:
    """The quantization scheme a backend runs: symmetric int8 for TensorRT, uint8 activations otherwise."""
    return "tensorrt" if backend in ("trt", "ort-trt") else "ort-cpu"


def load_calibration_data(calibration: Calibration) -> CalibrationData:
    """Load the named dataset and split it into calibration and held-back samples.

    Raises:
        InputError: A malformed `data`, or a dataset with no sample left to hold back.
        DataError: The dataset does not load.
    """

    calibration.check()
    text = str(calibration.data)
    if text == SYNTH:

        n = calibration.samples + calibration.gate_samples
        root = ensure_split("train", seed=SYNTH_SEED, n_records=n + n % 2)
        dataset, label = load_dataset("manifest", root), f"synthetic train split, data seed {SYNTH_SEED}"
    else:
        kind, sep, rest = text.partition(":")
        if sep and kind in DATASET_KINDS:
            folder = Path(rest)
        elif sep and len(kind) > 1:  # "C:\..." stays a path; "foo:bar" names an unknown kind
            raise InputError(f"--calib-data: expected 'synth', KIND:DIR with KIND one of {', '.join(DATASET_KINDS)}, "
                             f"or a folder, got {text!r}.", hint="e.g. --calib-data is3:/data/IS3")
        else:
            kind, folder = "manifest", Path(text)
        dataset = load_dataset(kind, folder)
        label = f"{kind} {folder}"
    n = len(dataset)
    if n <= calibration.samples:
        raise InputError(
            f"--calib-data {text}: expected more than --calib-samples {calibration.samples} samples (the rest are held "
            f"back for the accuracy gate), got {n}.",
            hint=f"pass --calib-samples {max(1, n // 2)} or a larger dataset")
    calibrate = list(range(calibration.samples))
    held_back = list(range(calibration.samples, min(n, calibration.samples + calibration.gate_samples)))
    return CalibrationData(dataset, label, calibrate, held_back)


def calibration_inputs(data: CalibrationData, frontend: str, batch: int, workers: int) -> dict[str, np.ndarray]:
    """{"image": (N, 3, 224, 224), "audio": (2N + batch, C, F, T)} from the calibration samples (module docstring)."""

    spec = get_frontend(frontend)
    loader = BatchLoader(data.dataset, spec, mode="fixed", batch_size=max(batch, 32), repeats=1, run_seed=0,
                         indices=data.calibrate, workers=workers, offscreen_inputs=True, noise_inputs=True)
    images, audio, noise = [], [], []
    for b in loader:
        images.append(b.images)
        audio.append(b.positive)
        noise.append(b.noise[0])
    silence = np.repeat(silence_input(spec, "fixed")[None], batch, axis=0)
    return {"image": np.concatenate(images), "audio": np.concatenate([*audio, *noise, silence]).astype(np.float32)}


def quantize_folder(folder: Path, manifest: Manifest, backend: str, calibration: Calibration,
                    data: CalibrationData) -> Manifest:
    """Write the folder's int8 encoder graphs (or keep them when calibrated the same way from the same
    fp32 graphs) and record them in `manifest` (not yet written)."""

    scheme = scheme_for(backend)
    record = {"scheme": scheme, "method": calibration.method, "samples": len(data.calibrate),
              "batch": calibration.batch, "data": data.label, "keep_fp32": list(calibration.keep_fp32),
              "fp32_stem": calibration.fp32_stem, "fp32_rule": FP32_RULE}
    previous = manifest.quantization or {}
    nodes = {role: node_names(folder / manifest.graph(role, "fp32").file) for role, _ in ENCODERS}
    unknown = sorted(set(calibration.keep_fp32) - set().union(*nodes.values()))
    if unknown:
        raise InputError(f"keep_fp32: expected node names of the visual or audio graph of {folder}, got "
                         f"{', '.join(unknown[:3])}.", hint="list a graph's nodes with onnx.load(path).graph.node")
    inputs = None
    graphs = {}
    for role, name in ENCODERS:
        source = manifest.graph(role, "fp32").file
        keep = tuple(n for n in calibration.keep_fp32 if n in nodes[role])
        wanted = {**record, "source_sha256": sha256_file(folder / source)}
        target = graph_file(role, "int8")
        old = previous.get(role)
        if old is not None and {k: old.get(k) for k in wanted} == wanted and (folder / target).is_file() \
                and manifest.files.get(target) is not None and sha256_file(folder / target) == manifest.files[target].sha256:
            graphs[role] = (target, tuple(old.get("fp32_nodes", ())), old)
            continue
        if inputs is None:
            inputs = calibration_inputs(data, manifest.frontend, calibration.batch, calibration.workers)
        result = quantize_graph(folder / source, folder / target, inputs[name], input_name=name, scheme=scheme,
                                method=calibration.method, batch=calibration.batch, keep_fp32=keep,
                                fp32_stem=calibration.fp32_stem, frontend=manifest.frontend)
        graphs[role] = (target, result.fp32_nodes, {**wanted, "inputs": result.samples, "quantized_ops": result.quantized_ops,
                                                    "fp32_nodes": list(result.fp32_nodes), **result.scheme_detail})
    manifest.graphs = [g for g in manifest.graphs if not (g.precision == "int8" and g.role in graphs)]
    for role, (file, kept, entry) in graphs.items():
        ins, outs = GRAPH_IO[role]
        manifest.graphs.append(GraphEntry(role, "int8", file, ins, outs, kept))
        manifest.add_file(folder, file)
        manifest.quantization[role] = entry
    return manifest


def record_gate(folder: Path, figures: GateFigures) -> None:
    """Add the gate figures to the folder's manifest (atomically)."""
    manifest = Manifest.read(folder)
    manifest.gates[figures.precision] = figures.to_dict()
    manifest.write(folder)


def gate_build(folder: Path, *, precision: str, backend: str, calibration: Calibration, data: CalibrationData,
               threads: int | None, previous_manifest: bytes | None, batch: int = 32) -> GateFigures:
    """Run the gate on the held-back samples; record it, or restore the previous manifest and raise."""

    figures = gate.run_gate(folder, data.dataset, data.held_back, precision=precision, backend=backend,
                            data_label=data.label, thresholds=calibration.gate, batch=batch,
                            workers=calibration.workers, threads=threads)
    if not figures.passed:
        if previous_manifest is not None:
            atomic_write_bytes(folder / "manifest.json", previous_manifest)
        gate.check(figures, folder)
    record_gate(folder, figures)
    return figures
