"""`vsslrt export`: a published model -> ONNX graphs + manifest (the ONNX part of an engine folder)."""

from __future__ import annotations

import importlib.util
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from vsslrt.cli._display import parity_line
from vsslrt.cli._options import CheckpointOpt, ImagenetWeightsOpt, InitSeedOpt, ModelOpt, ObjectNetOpt, examples
from vsslrt.errors import InputError, missing_extra

EXAMPLES = [
    "vsslrt export --model ezvsl --checkpoint checkpoints/ezvsl.pth --out engines/ezvsl",
    "vsslrt export --model slavc --checkpoint slavc.pth --precision both --object-net "
    "--imagenet-weights resnet18-f37072fd.pth --out engines/slavc",
    "vsslrt export --model lvs --random-init --seed 3 --out /tmp/lvs-untrained",
]


# The choices of `vsslrt.export.pipeline.PRECISION_CHOICES`, spelled out here because that module loads
# the exporter's stack, which `--help` must not pay for; tests/cli check that they agree.
class ExportPrecision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    both = "both"


def export(
    model: ModelOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder to write the graphs and manifest.json to.")],
    checkpoint: CheckpointOpt = None,
    random_init: Annotated[
        bool, typer.Option("--random-init", help="Export seeded random weights instead of a checkpoint.")
    ] = False,
    seed: InitSeedOpt = 0,
    precision: Annotated[
        ExportPrecision, typer.Option("--precision", help="fp32, fp16 (fp16 graphs only) or both.")
    ] = ExportPrecision.fp32,
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
    """Export a model to ONNX (visual, audio, fused; fp16 optional), check parity, write the manifest."""
    if (checkpoint is None) == (not random_init):
        raise InputError(
            "export: expected exactly one of --checkpoint PATH or --random-init, got "
            + ("both." if random_init else "neither."),
            hint="pass the official checkpoint, or --random-init for untrained weights",
        )
    if importlib.util.find_spec("torch") is None:  # looked up, not imported: only export/ imports torch
        raise missing_extra("torch", "export", "export models to ONNX")
    from vsslrt.export.pipeline import export_model  # lazy: imports torch and the ONNX exporter

    manifest = export_model(
        model,
        out,
        checkpoint,
        seed=seed,
        precision=precision.value,
        object_net=object_net,
        imagenet_weights=imagenet_weights,
        trust_checkpoint=trust_checkpoint,
        ignore_unexpected_keys=ignore_unexpected_keys,
        opset=opset,
    )
    typer.echo(f"exported {manifest.model} ({manifest.checkpoint.label}) to {out}")
    for graph in manifest.graphs:
        typer.echo(f"  {graph.file:<20} {graph.role:<7} {graph.precision}")
    for key, fig in manifest.parity.items():
        typer.echo(parity_line(key, fig, 12))


def register(app: typer.Typer) -> None:
    app.command("export", epilog=examples(EXAMPLES))(export)
