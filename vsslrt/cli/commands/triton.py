"""`vsslrt triton`: a Triton Inference Server model repository from an engine folder and its calibration."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from vsslrt.cli._options import CalibrationOpt, EngineOpt, PrecisionOpt, examples, value

TRITON_EXAMPLES = [
    "vsslrt triton --engine engines/ezvsl --calibration runs/ezvsl-is3/calibration.json --out triton-repo",
    "vsslrt triton --engine engines/ezvsl --calibration cal.json --out repo --max-batch 16 --max-delay-us 5000",
    "tritonserver --model-repository $PWD/triton-repo",
]


# The frames of `vsslrt.pipeline.localize.MAP_SIZES` (kept light for `--help`; tests check they agree).
class MapSize(str, Enum):
    image = "image"
    protocol = "224"


def triton(
    engine: EngineOpt,
    calibration: CalibrationOpt,
    out: Annotated[Path, typer.Option("--out", help="The model repository folder (new or empty).",
                                      show_default=False)],
    name: Annotated[str, typer.Option("--name", help="The ensemble's name (the other models get suffixes).")]
    = "vsslrt",
    max_batch: Annotated[int, typer.Option("--max-batch", help="max_batch_size of every model.")] = 8,
    max_delay_us: Annotated[int, typer.Option(
        "--max-delay-us", help="Dynamic batching: longest queue delay in microseconds.")] = 2000,
    instances: Annotated[int, typer.Option("--instances", help="Instances of each model.")] = 1,
    map_size: Annotated[MapSize, typer.Option("--map-size", help="Frame of the mask, as in `vsslrt localize`.")]
    = MapSize.protocol,
    gate: Annotated[bool, typer.Option("--gate/--no-gate", help="An empty mask when 'not sounding'.")] = True,
    precision: PrecisionOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Write into a folder that already has files.")] = False,
) -> None:
    """Write a Triton model repository: encoders, Python front-end and calibrated head, and an ensemble."""
    from vsslrt.pipeline.triton import TritonSettings, build_triton_repository  # lazy: reads the engine folder

    settings = TritonSettings(name=name, max_batch=max_batch, max_delay_us=max_delay_us, instances=instances,
                              precision=value(precision), map_size=map_size.value, gate=gate)
    repo = build_triton_repository(engine, calibration, out, settings, force=force)
    typer.echo(f"wrote {len(repo.models)} models ({repo.platform} encoders, Python front-end and head, "
               f"ensemble {repo.ensemble!r}) to {repo.path}")
    typer.echo(f"run: tritonserver --model-repository {repo.path.resolve()}  (vsslrt must be installed in "
               "Triton's Python environment)")


def register(app: typer.Typer) -> None:
    app.command("triton", epilog=examples(TRITON_EXAMPLES))(triton)
