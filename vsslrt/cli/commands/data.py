"""`vsslrt data`: dataset utilities (the built-in synthetic benchmark)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from vsslrt.cli._options import examples
from vsslrt.cli.commands._prepare import prepare_app

SYNTH_EXAMPLES = [
    "vsslrt data synth --out data/synth-test            # the built-in test split (1000 records, seed 0)",
    "vsslrt data synth --out data/synth-train --split train --n 8000",
    "vsslrt data synth --out /tmp/tiny --n 20 --seed 7",
]


# The splits of `vsslrt.data.synth.SPLITS`, spelled out here because that module loads the image and
# audio stack, which `--help` must not pay for; tests/cli check that they agree.
class Split(str, Enum):
    test = "test"
    train = "train"


data_app = typer.Typer(
    name="data",
    help="Datasets: write the built-in synthetic benchmark; prepare VGG-SS, Flickr-SoundNet or your own videos.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


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
    # lazy: Rich, and the generator's image and audio stack, load only when a command runs
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


data_app.command("synth", epilog=examples(SYNTH_EXAMPLES))(synth)
data_app.add_typer(prepare_app, name="prepare")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
