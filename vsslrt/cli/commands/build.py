"""`vsslrt build`: a published model -> engine folder (export, engines, parity, manifest)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsslrt.cli._display import parity_line
from vsslrt.cli._options import (Backend, CalibDataOpt, CalibFp32StemOpt, CalibMethodOpt, CalibSamplesOpt,
                                CheckpointOpt, GateMaxDeltaOpt, GateMinArgmaxOpt, GateSamplesOpt, ImagenetWeightsOpt,
                                InitSeedOpt, ModelOpt, ObjectNetOpt, Precision, examples, value)
from vsslrt.errors import InputError

BUILD_EXAMPLES = [
    "vsslrt build --model ezvsl --checkpoint ezvsl.pth --out engines/ezvsl          # best backend here",
    "vsslrt build --model ezvsl --checkpoint ezvsl.pth --backend trt --precision fp16 --batch 1:32:128 --out engines/ezvsl-fp16",
    "vsslrt build --model lvs --random-init --backend ort --out /tmp/lvs            # CPU only, untrained weights",
    "vsslrt build --engine engines/ezvsl --backend trt                              # engines for an existing export",
    "vsslrt build --engine engines/ezvsl --precision int8 --calib-data is3:/data/IS3   # int8, gated in metric space",
    "vsslrt build --model slavc --checkpoint slavc.pth --object-net --imagenet-weights resnet18-f37072fd.pth --out engines/slavc"
    "   # + the OGL object network (every --protocol paper key)",
]


def build(
    model: ModelOpt = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Engine folder to write (graphs, engines, manifest.json).")] = None,
    engine: Annotated[Path | None, typer.Option(
        "--engine", help="Instead of --model/--out: an existing engine folder (an export made elsewhere, a "
        "copy of a demo model); its engines are built in place.")] = None,
    checkpoint: CheckpointOpt = None,
    random_init: Annotated[
        bool, typer.Option("--random-init", help="Use seeded random weights instead of a checkpoint.")
    ] = False,
    seed: InitSeedOpt = 0,
    backend: Annotated[
        Backend,
        typer.Option("--backend", help="auto picks TensorRT, then ONNX Runtime CUDA, then ONNX Runtime CPU, and says why."),
    ] = Backend.auto,
    precision: Annotated[
        Precision, typer.Option("--precision", help="Engine precision; fp16 builds from the fp16 ONNX.")
    ] = Precision.fp32,
    batch: Annotated[
        str, typer.Option("--batch", help="TensorRT batch profile min:opt:max; opt is the size tuned for.")
    ] = "1:16:64",
    workspace_mib: Annotated[
        int, typer.Option("--workspace-mib", help="TensorRT builder workspace in MiB; raise it if a build fails.")
    ] = 1024,
    opt_level: Annotated[
        int, typer.Option("--opt-level", help="TensorRT builder optimisation level 0..5 (higher builds slower).")
    ] = 3,
    threads: Annotated[
        int | None, typer.Option("--threads", help="CPU threads for export and ONNX Runtime (default: all cores).")
    ] = None,
    object_net: ObjectNetOpt = False,
    imagenet_weights: ImagenetWeightsOpt = None,
    calib_data: CalibDataOpt = None,
    calib_samples: CalibSamplesOpt = None,
    calib_method: CalibMethodOpt = None,
    calib_fp32_stem: CalibFp32StemOpt = False,
    gate_samples: GateSamplesOpt = None,
    gate_max_delta: GateMaxDeltaOpt = None,
    gate_min_argmax: GateMinArgmaxOpt = None,
) -> None:
    """Build an engine folder: export to ONNX, build engines, check parity against ONNX Runtime fp32."""
    if engine is not None:
        given = [name for name, used in (("--model", model is not None), ("--out", out is not None),
                                         ("--checkpoint", checkpoint is not None), ("--random-init", random_init),
                                         ("--object-net", object_net), ("--imagenet-weights", imagenet_weights is not None))
                 if used]
        if given:
            raise InputError(f"build --engine: expected no export options, got {', '.join(given)}.",
                             hint="--engine builds an existing export in place; drop the export options")
    elif model is None or out is None:
        raise InputError("build: expected --model and --out (or --engine DIR), got no "
                         f"{'--model' if model is None else '--out'}.")
    if engine is None:
        check_weights(checkpoint, random_init, command="build")
    if workspace_mib < 1:
        raise InputError(f"build: expected --workspace-mib to be >= 1, got {workspace_mib}.")
    from vsslrt.pipeline.build import build_engine_folder, build_exported_folder  # lazy: export and TensorRT stack

    options = dict(seed=seed, backend=backend.value, precision=precision.value, batch=batch,
                   workspace_bytes=workspace_mib << 20, optimization_level=opt_level, threads=threads)
    calibration = calibration_options(precision.value, calib_data, calib_samples, calib_method, calib_fp32_stem,
                                      gate_samples, gate_max_delta, gate_min_argmax)
    if calibration is not None:
        options["calibration"] = calibration
    if engine is not None:
        report = build_exported_folder(engine, **options)
    else:
        report = build_engine_folder(model, out, checkpoint=checkpoint, **options,
                                     **object_options(object_net, imagenet_weights))
    typer.echo(("exported" if report.exported else "reused the export of") + f" {report.model} in {report.folder}")
    echo_report(report)
    typer.echo(f"wrote {report.folder / 'manifest.json'}")


def echo_report(report) -> None:
    """The lines of a build report (`vsslrt.pipeline.build.BuildReport`): backend, engines, parity, gate."""
    typer.echo(f"backend: {report.backend} ({report.backend_reason})")
    for engine in report.engines:
        if report.backend != "trt":
            typer.echo(f"  {engine.role:<7} {engine.file} (run by ONNX Runtime)")
            continue
        state = "reused" if engine.reused else "built"
        share = engine.info.get("inspector", {}).get("fp16_share")
        fp16 = f", fp16 layers {share:.0%}" if share is not None else ""
        typer.echo(f"  {engine.role:<7} {engine.file} {state}{fp16}")
        for change in engine.changes:
            typer.echo(f"          rebuilt because {change}")
    for key, fig in report.parity.items():
        typer.echo(parity_line(key, fig, 20))
    if report.gate is not None:
        from vsslrt.pipeline.gate import format_gate  # lazy: only gated builds have figures

        typer.echo(f"  gate {format_gate(report.gate)}")


def check_weights(checkpoint: Path | None, random_init: bool, *, command: str) -> None:
    """Exactly one source of weights: --checkpoint PATH or --random-init (`export` and `build`)."""
    if (checkpoint is None) == (not random_init):
        raise InputError(
            f"{command}: expected exactly one of --checkpoint PATH or --random-init, got "
            + ("both." if random_init else "neither."),
            hint="pass the official checkpoint, or --random-init for untrained weights",
        )


def object_options(object_net: bool, imagenet_weights: Path | None) -> dict:
    """The object network's options as export / build keywords, only those given (their defaults stand)."""
    return {k: v for k, v in (("object_net", object_net), ("imagenet_weights", imagenet_weights)) if v}


def calibration_options(precision: str, data, samples, method, fp32_stem, gate_samples, max_delta, min_argmax, *,
                        command: str = "build", gated: tuple[str, ...] = ("int8", "fp16")):
    """The calibration and gate of a reduced-precision build: always for int8, for fp16 when any
    --calib-*/--gate-* option asks for the gate; None otherwise (an fp32 build has no gate).
    `vsslrt export` passes its name and gated=("int8",): it gates only what it quantizes."""
    if fp32_stem and precision != "int8":
        raise InputError(f"{command}: expected --calib-fp32-stem only with --precision int8, got {precision}.",
                         hint="only an int8 build quantizes the stem; drop --calib-fp32-stem")
    given = {k: v for k, v in (("data", data), ("samples", samples), ("method", value(method)),
                               ("fp32_stem", fp32_stem or None), ("gate_samples", gate_samples)) if v is not None}
    limits = {k: v for k, v in (("max_delta", max_delta), ("min_argmax_agreement", min_argmax)) if v is not None}
    if precision not in gated or (precision == "fp16" and not given and not limits):
        if given or limits:
            raise InputError(f"{command}: expected --calib-*/--gate-* options only with --precision "
                             f"{' or '.join(gated)}, got {precision}.",
                             hint="only a reduced-precision build is calibrated and gated; drop those options")
        return None
    from vsslrt.pipeline.gate import GateThresholds  # lazy: the gate loads the evaluator
    from vsslrt.pipeline.int8 import Calibration

    return Calibration(**given, gate=GateThresholds(**limits))


def register(app: typer.Typer) -> None:
    app.command("build", epilog=examples(BUILD_EXAMPLES))(build)
