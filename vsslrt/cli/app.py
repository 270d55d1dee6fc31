"""Root Typer app. Commands live in `vsslrt.cli.commands.*` and are discovered here.

Discovery, not a list: every public module of `vsslrt.cli.commands` (name without a leading
underscore) is a command, registered in name order through its `register(app)`, so a new command is one
new module and nothing else. See `vsslrt.cli.commands` for what a command module holds.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated

import typer

from vsslrt import __version__
from vsslrt.cli import commands
from vsslrt.cli._errors import report_and_exit

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"vsslrt {__version__}")
        raise typer.Exit()


def root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """vsslrt: visual sound source localization, fast and honest."""


def create_app() -> typer.Typer:
    app = typer.Typer(
        name="vsslrt",
        help=(
            "Evaluate and deploy visual sound source localization models, "
            "with positive and negative (silence, noise, offscreen) audio."
        ),
        no_args_is_help=True,
        context_settings=CONTEXT_SETTINGS,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        add_completion=False,
    )

    app.callback()(root)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(app)
    return app


def main() -> None:
    """Console entry point: usage errors are Typer's (exit 2); our errors become one line (exit 1)."""
    app = create_app()
    try:
        # Standalone mode handles --help, usage errors and Ctrl-C; anything else propagates here.
        app()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the CLI is the one place that turns errors into messages
        report_and_exit(exc)


if __name__ == "__main__":
    main()
