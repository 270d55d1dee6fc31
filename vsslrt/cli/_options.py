"""Option types and aliases shared by the commands: one spelling, one type and one help per option.

The choices come from the tables that own them, never retyped here: backends from
`vsslrt.engine.backends.CHOICES`, protocols from `vsslrt.eval.config.PROTOCOLS`, interpolations from
`vsslrt.eval.interp.INTERPOLATIONS`, precisions from `vsslrt.manifest.PRECISIONS`, dataset kinds from
`vsslrt.data.datasets.DATASET_KINDS` (model names from `vsslrt.models.REGISTRY` stay a string option
whose help lists them: an unknown model is the pipeline's one-line error). A value outside a choice is
a usage error (exit 2) naming the valid ones, before any command code runs.

These modules import NumPy but none of the optional backends, so `vsslrt --help` stays light.
An option whose help differs from command to command (`--out`, `--batch`, ...) is declared in its
command, with the shared types below where it has choices.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from vsslrt.data.datasets import DATASET_KINDS
from vsslrt.data.prepare import settings as prep
from vsslrt.engine.backends import BACKEND_NAMES, CHOICES
from vsslrt.eval.config import PROTOCOLS
from vsslrt.eval.interp import INTERPOLATIONS
from vsslrt.manifest import PRECISIONS
from vsslrt.models import REGISTRY


def choice_enum(name: str, values: Iterable[str], doc: str) -> type[enum.Enum]:
    """A str Enum whose members are `values` (Typer's choice type); "ort-cuda" is the member `ort_cuda`."""
    members = {value.replace("-", "_"): value for value in values}
    choice = enum.Enum(name, members, type=str, module=__name__)
    choice.__doc__ = doc
    return choice


def either(values: Iterable[str]) -> str:
    """'a, b or c': a choice list for a help text."""
    *head, last = values
    return f"{', '.join(head)} or {last}" if head else last


Backend = choice_enum("Backend", CHOICES, "auto (the best this machine runs) or a backend of the table.")
Protocol = choice_enum("Protocol", PROTOCOLS,
                       "fixed: the protocol with the reference's bugs fixed; paper: the reference's numbers and key names.")
Interp = choice_enum("Interp", INTERPOLATIONS, "Upsampling of small maps to 224x224.")
Precision = choice_enum("Precision", PRECISIONS, "Precision of the graphs and engines.")
DatasetKind = choice_enum("DatasetKind", DATASET_KINDS, "Dataset format (`vsslrt.data.datasets.KINDS`).")


def value(choice: enum.Enum | None) -> str | None:
    """The string a pipeline function takes, None passed through (an option left at its default)."""
    return None if choice is None else choice.value


# Running an engine folder (bench, localize): each defaults to what the folder was built for.
BackendOpt = Annotated[Backend | None, typer.Option(
    "--backend", help=f"{either(sorted(BACKEND_NAMES))}. Defaults to what the engine was built for.")]
PrecisionOpt = Annotated[Precision | None, typer.Option(
    "--precision", help=f"{either(PRECISIONS)}. Defaults to the engine's.")]

# One engine folder and its calibration (localize).
EngineOpt = Annotated[Path, typer.Option(
    "--engine", help="Engine folder (from `vsslrt export` or `vsslrt build`).", show_default=False)]
CalibrationOpt = Annotated[Path, typer.Option(
    "--calibration", help="calibration.json from `vsslrt calibrate`, made for this engine.", show_default=False)]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="ONNX Runtime threads. Defaults to all cores.")]
TrustEngineCodeOpt = Annotated[bool, typer.Option(
    "--trust-engine-code", help="Let TensorRT run host code embedded in the engine's plans (version-compatible "
    "plans, serialized plugins). Only for plans you built or trust: see docs/engines.md.")]

# Thresholds of the protocol (bench, metrics).
FixedOpt = Annotated[float, typer.Option("--fixed", help="The fixed threshold.")]

# Making an engine folder from a published model (build, export).
ModelOpt = Annotated[str | None, typer.Option("--model", help=f"Model: {', '.join(REGISTRY)}.")]
CheckpointOpt = Annotated[Path | None, typer.Option(
    "--checkpoint", help="Official checkpoint (.pth / .pth.tar), loaded strictly.")]
InitSeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the random init and of the parity inputs.")]
ObjectNetOpt = Annotated[bool, typer.Option(
    "--object-net", help="Also export the OGL object-saliency network (object.onnx).")]
# Reduced-precision builds (int8, gated fp16): calibration data and the accuracy gate (vsslrt.pipeline.int8).
CalibMethod = choice_enum("CalibMethod", ("minmax", "entropy", "percentile"),
                          "How activation ranges are calibrated (`vsslrt.export.quantize.CALIBRATION_METHODS`).")
CalibDataOpt = Annotated[str | None, typer.Option(
    "--calib-data", help="Calibration data of an int8 build (and of the gate): synth (the built-in synthetic split), "
    "KIND:DIR (a dataset, e.g. is3:/data/IS3) or a folder with a manifest.jsonl. Default: synth.")]
CalibSamplesOpt = Annotated[int | None, typer.Option(
    "--calib-samples", help="Samples that calibrate (the first ones); the next --gate-samples are held back. Default 256.")]
CalibMethodOpt = Annotated[CalibMethod | None, typer.Option(
    "--calib-method", help="percentile (default: the one within 1 point on both demos, docs/int8.md), minmax or entropy.")]
CalibFp32StemOpt = Annotated[bool, typer.Option(
    "--calib-fp32-stem", help="int8: keep each encoder's stem (first conv, its activation and pooling) in fp32; about "
    "a fifth slower on the CPU, for a model whose gate fails with it quantized.")]
GateSamplesOpt = Annotated[int | None, typer.Option(
    "--gate-samples", help="Held-back samples the accuracy gate benchmarks in fp32 and the new precision. Default 200.")]
GateMaxDeltaOpt = Annotated[float | None, typer.Option(
    "--gate-max-delta", help="The build fails when a headline metric moves more than this many points. Default 1.0.")]
GateMinArgmaxOpt = Annotated[float | None, typer.Option(
    "--gate-min-argmax", help="The build fails when fewer maps than this fraction keep their argmax. Default 0.99.")]
ImagenetWeightsOpt = Annotated[Path | None, typer.Option(
    "--imagenet-weights", help="torchvision ImageNet ResNet-18 weights for the object network (and the visual "
    "backbone of a --random-init export). Never downloaded.")]


# Dataset preparation (data prepare vggss|flickr|manifest): the choices that move numbers.
Channels = choice_enum("Channels", prep.CHANNEL_RULES, "How channels become one: their mean, or the first.")
Resampler = choice_enum("Resampler", prep.RESAMPLERS, "swr: FFmpeg's libswresample; scipy: resample_poly.")
SourceMode = choice_enum("SourceMode", prep.SOURCE_MODES, "How VGGSound files relate to their 10 s clips.")
SampleRateOpt = Annotated[int, typer.Option("--sample-rate", help="Audio rate of the written WAVs (Hz).")]
ChannelsOpt = Annotated[Channels, typer.Option("--channels", help="mean: the mean of all channels (FFmpeg's "
                                               "stereo downmix); first: channel 0.")]
ResamplerOpt = Annotated[Resampler, typer.Option("--resampler", help="swr: FFmpeg's libswresample, as the "
                                                 "reference datasets were made; scipy: resample_poly.")]
JpegQualityOpt = Annotated[int, typer.Option("--jpeg-quality", help="JPEG quality of the written frames (1-100).")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", help="Decoding processes. Defaults to the CPU count.")]


def examples(lines: list[str]) -> str:
    """A command's epilog: its example command lines, one paragraph each."""
    return "Examples:\n\n" + "\n\n".join(lines)
