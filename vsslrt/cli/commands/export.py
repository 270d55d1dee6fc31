"""`vsslrt export`: a published model -> ONNX graphs + manifest (the ONNX part of an engine folder)."""

from __future__ import annotations

import importlib.util
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from vsslrt.cli._display import parity_line
from vsslrt.cli._options import (Backend, CalibDataOpt, CalibFp32StemOpt, CalibMethodOpt, CalibSamplesOpt,
                                CheckpointOpt, GateMaxDeltaOpt, GateMinArgmaxOpt, GateSamplesOpt, ImagenetWeightsOpt,
                                InitSeedOpt, ModelOpt, ObjectNetOpt, choice_enum, examples)
from vsslrt.cli.commands.build import calibration_options, check_weights, echo_report, object_options
from vsslrt.errors import InputError, missing_extra

EXAMPLES = [
    "vsslrt export --model ezvsl --checkpoint checkpoints/ezvsl.pth --out engines/ezvsl",
    "vsslrt export --model slavc --checkpoint slavc.pth --precision both --object-net "
    "--imagenet-weights resnet18-f37072fd.pth --out engines/slavc",
    "vsslrt export --model lvs --random-init --seed 3 --out /tmp/lvs-untrained",
    "vsslrt export --model ezvsl --checkpoint ezvsl.pth --precision int8 --calib-data is3:/data/IS3 --out engines/ezvsl-int8"
    "   # export, then quantize and gate as vsslrt build --precision int8",
]


# The choices of `vsslrt.export.pipeline.PRECISION_CHOICES`, spelled out here because that module loads
# the exporter's stack, which `--help` must not pay for; tests/cli check that they agree.
class ExportPrecision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    both = "both"


# `--precision` also takes int8: export fp32, then quantize, build and gate exactly as `vsslrt build --engine OUT
# --precision int8` does (`vsslrt.pipeline.build.build_engine_folder`; one implementation). tests/cli check the list.
ExportChoice = choice_enum("ExportChoice", (*(p.value for p in ExportPrecision), "int8"),
                           "What `vsslrt export` writes: fp32, fp16 or both graphs, or int8 ones made from fp32.")


def export(
    model: ModelOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder to write the graphs and manifest.json to.")],
    checkpoint: CheckpointOpt = None,
    random_init: Annotated[
        bool, typer.Option("--random-init", help="Export seeded random weights instead of a checkpoint.")
    ] = False,
    seed: InitSeedOpt = 0,
    precision: Annotated[
        ExportChoice, typer.Option("--precision", help="fp32, fp16 (fp16 graphs only), both, or int8 (the fp32 graphs, "
                                   "then int8 ones calibrated and gated as `vsslrt build --precision int8`).")
    ] = ExportChoice.fp32,
    backend: Annotated[Backend | None, typer.Option(
        "--backend", help="int8 only: the backend the int8 graphs are quantized for and gated on (as `vsslrt build "
        "--backend`; default auto).")] = None,
    calib_data: CalibDataOpt = None,
    calib_samples: CalibSamplesOpt = None,
    calib_method: CalibMethodOpt = None,
    calib_fp32_stem: CalibFp32StemOpt = False,
    gate_samples: GateSamplesOpt = None,
    gate_max_delta: GateMaxDeltaOpt = None,
    gate_min_argmax: GateMinArgmaxOpt = None,
    object_net: ObjectNetOpt = False,
    imagenet_weights: ImagenetWeightsOpt = None,
    trust_checkpoint: Annotated[
        bool, typer.Option("--trust-checkpoint", help="Allow pickled Python objects in the checkpoint file.")
    ] = False,
    ignore_unexpected_keys: Annotated[
        bool,
        typer.Option(
            "--ignore-unexpected-keys",
            help="Accept checkpoint keys the architecture lacks (training-only heads); listed in the "
            "manifest. Missing keys and wrong shapes still fail.",
        ),
    ] = False,
    opset: Annotated[int | None, typer.Option("--opset", help="ONNX opset (default: the exporter's).")] = None,
) -> None:
    """Export a model to ONNX (visual, audio, fused; fp16 optional), check parity, write the manifest.
    With --precision int8, also quantize the encoders, check them and gate them as `vsslrt build --precision int8`."""
    check_weights(checkpoint, random_init, command="export")
    int8 = precision.value == "int8"
    if backend is not None and not int8:
        raise InputError(f"export: expected --backend only with --precision int8, got {precision.value}.",
                         hint="export writes ONNX graphs; `vsslrt build --engine OUT --backend ...` builds engines")
    calibration = calibration_options(precision.value, calib_data, calib_samples, calib_method, calib_fp32_stem,
                                      gate_samples, gate_max_delta, gate_min_argmax, command="export", gated=("int8",))
    if importlib.util.find_spec("torch") is None:  # looked up, not imported: only export/ imports torch
        raise missing_extra("torch", "export", "export models to ONNX")
    from vsslrt.export import pipeline as export_stage  # lazy: imports torch and the ONNX exporter

    loading = dict(trust_checkpoint=trust_checkpoint, ignore_unexpected_keys=ignore_unexpected_keys, opset=opset)
    if int8:
        from functools import partial

        from vsslrt.manifest import Manifest
        from vsslrt.pipeline.build import build_engine_folder  # lazy: the engine stack

        # Always a fresh export (as every `vsslrt export`), then the build's int8 path with the same options.
        report = build_engine_folder(model, out, checkpoint=checkpoint, seed=seed, precision="int8",
                                     backend="auto" if backend is None else backend.value, calibration=calibration,
                                     reuse_export=False, export=partial(export_stage.export_model, **loading),
                                     **object_options(object_net, imagenet_weights))
        manifest = Manifest.read(out)
    else:
        manifest = export_stage.export_model(model, out, checkpoint, seed=seed, precision=precision.value,
                                             object_net=object_net, imagenet_weights=imagenet_weights, **loading)
    typer.echo(f"exported {manifest.model} ({manifest.checkpoint.label}) to {out}")
    for graph in manifest.graphs:
        typer.echo(f"  {graph.file:<20} {graph.role:<7} {graph.precision}")
    for key, fig in manifest.parity.items():
        if not key.startswith("engine."):  # the build's figures follow, with its report
            typer.echo(parity_line(key, fig, 12))
    if int8:
        echo_report(report)


def register(app: typer.Typer) -> None:
    app.command("export", epilog=examples(EXAMPLES))(export)
