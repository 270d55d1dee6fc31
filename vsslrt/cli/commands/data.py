"""`vsslrt data`: dataset utilities (the built-in synthetic benchmark)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

SYNTH_EXAMPLES = [
    "vsslrt data synth --out data/synth-test            # the built-in test split (1000 records, seed 0)",
    "vsslrt data synth --out data/synth-train --split train --n 8000",
    "vsslrt data synth --out /tmp/tiny --n 20 --seed 7",
]


class Split(str, Enum):
    test = "test"
    train = "train"


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(
        name="data",
        help="Datasets: write the built-in synthetic benchmark in the manifest format.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )

    @data_app.command("synth", epilog="Examples:\n\n" + "\n\n".join(SYNTH_EXAMPLES))
    def synth(
        out: Annotated[Path, typer.Option("--out", help="Folder to write (new or empty), e.g. data/synth-test.")],
        n: Annotated[
            int | None,
            typer.Option("--n", help="Number of records, even (two targets per image). Defaults to 1000 for "
                         "test, 8000 for train."),
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Dataset seed; 0 is the built-in benchmark's.")] = 0,
        split: Annotated[Split, typer.Option("--split", help="Which split: test or train (disjoint scenes).")] = Split.test,
    ) -> None:
        """Write the synthetic IS3-like benchmark (images, 16 kHz wavs, manifest.jsonl) to a folder."""
        from rich.progress import Progress

        from vsslrt.data import synth as synthetic

        count = n if n is not None else (
            synthetic.DEFAULT_TEST_RECORDS if split is Split.test else synthetic.DEFAULT_TRAIN_RECORDS
        )
        with Progress(transient=True) as bar:
            task = bar.add_task(f"writing {split.value} split", total=count // 2 if count > 0 else None)
            folder = synthetic.write_split(
                out, count, seed, split.value, progress=lambda done, total: bar.update(task, completed=done)
            )
        typer.echo(f"wrote {count} records ({count // 2} images) of the {split.value} split, seed {seed}, to {folder}")

    app.add_typer(data_app, name="data")
