"""`vsslrt metrics`: every metric of the protocol from a heatmap file (bring your own model)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsslrt import __version__
from vsslrt.cli._options import FixedOpt, Interp, Protocol, examples

METRICS_EXAMPLES = [
    "vsslrt metrics examples/example_maps.npz                        # fixed protocol, median/adaptive/0.5",
    "vsslrt metrics maps.npz --thresholds max=0.6041,max10=0.6645,maxq3=0.6382 --json metrics.json",
    "vsslrt metrics maps.npz --protocol paper --thresholds max=0.6041,max10=0.6645,maxq3=0.6382 --markdown report.md",
]


def metrics(
    maps: Annotated[
        Path,
        typer.Argument(
            help="Heatmap file (.npz): float pos, silence, noise, offscreen (N, H, W), bool gt (N, 224, 224), "
            "optional obj (N, H, W) and int group (N,).",
            show_default=False,
        ),
    ],
    protocol: Annotated[
        Protocol,
        typer.Option(
            "--protocol",
            help="fixed: the protocol with the reference's bugs fixed, explicit key names. "
            "paper: the reference's numbers and key names (needs max, max10, maxq3).",
        ),
    ] = Protocol.fixed,
    thresholds: Annotated[
        str | None,
        typer.Option(
            "--thresholds",
            help="Universal thresholds as name=value pairs separated by commas, on the maps' raw scale, "
            "e.g. max=0.6041,max10=0.6645,maxq3=0.6382.",
        ),
    ] = None,
    fixed: FixedOpt = 0.5,
    interp: Annotated[
        Interp,
        typer.Option(
            "--interp",
            help="Upsampling of maps smaller than 224x224: bilinear (align-corners) or cv2. In paper mode "
            "it applies to pos and obj only; negatives always use cv2.",
        ),
    ] = Interp.bilinear,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write every metric to this JSON file.")] = None,
    markdown_out: Annotated[
        Path | None, typer.Option("--markdown", help="Write a Markdown report to this file.")
    ] = None,
) -> None:
    """Compute every metric of the negative-audio protocol from a heatmap file."""
    # lazy: Rich and the evaluator (NumPy) load only when a command runs
    from rich.console import Console
    from rich.table import Table

    from vsslrt.eval import evaluate, load_maps, make_config, parse_thresholds, summary_table
    from vsslrt.eval import write_json, write_markdown

    universal = parse_thresholds(thresholds)
    config = make_config(protocol.value, universal, fixed, interp.value)  # settings fail before loading
    fields = load_maps(maps)
    result = evaluate(
        fields["pos"],
        fields["silence"],
        fields["noise"],
        fields["offscreen"],
        fields["gt"],
        obj=fields.get("obj"),
        group=fields.get("group"),
        protocol=config.protocol,
        thresholds=dict(config.thresholds),
        fixed=config.fixed,
        interp=config.interp,
    )
    meta = {
        "source": str(maps),
        "protocol": config.protocol,
        "thresholds": {n: {"value": v, "provenance": "command line"} for n, v in config.thresholds},
        "fixed": config.fixed,
        "interp": config.interp,
        "n_samples": int(fields["pos"].shape[0]),
        "obj": "obj" in fields,
        "group": "group" in fields,
        "vsslrt": __version__,
    }

    headers, rows = summary_table(result)
    table = Table(title=f"{maps.name}: {meta['n_samples']} samples, {config.protocol} protocol")
    for i, header in enumerate(headers):
        if i == 0:
            table.add_column(header, justify="left", no_wrap=True)
        else:
            table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*row)
    console = Console()
    console.print(table)
    if json_out is not None:
        console.print(f"wrote {write_json(result, json_out, meta=meta)}", highlight=False, soft_wrap=True)
    if markdown_out is not None:
        title = f"vsslrt metrics: {maps.name}"
        console.print(f"wrote {write_markdown(result, markdown_out, title=title, meta=meta)}", highlight=False,
                      soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("metrics", epilog=examples(METRICS_EXAMPLES))(metrics)
