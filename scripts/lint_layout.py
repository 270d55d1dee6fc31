"""Check the layout's import rules (the import-linter contracts in pyproject.toml).

The stage folders (export/, engine/, eval/) sit at the repository's top level and are installed
into the `vsslrt` namespace by setuptools' `package-dir`. import-linter finds a package's modules by
walking the folder of its root package, so on a source or editable checkout it would see `vsslrt`
without its stages. This script lays out the installed tree as links to the real files in a
temporary folder (nothing is copied or built) and runs `lint-imports` on it.

    python scripts/lint_layout.py          # exit 0 when every contract is kept
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, vendored by pip
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def installed_layout(pyproject: Path) -> dict[str, Path]:
    """Installed package name -> source folder, from [tool.setuptools] package-dir."""
    config = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]
    return {name: ROOT / folder for name, folder in config["package-dir"].items()}


def link_tree(folders: dict[str, Path], target: Path) -> None:
    """Every module of every mapped folder, linked at its installed path under `target`."""
    for package, source in folders.items():
        for module in source.rglob("*.py"):
            destination = target.joinpath(*package.split("."), *module.relative_to(source).parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.symlink_to(module)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="vsslrt-layout-") as tmp:
        link_tree(installed_layout(ROOT / "pyproject.toml"), Path(tmp))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([tmp, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        command = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                   "sys.exit(lint_imports_command())", str(ROOT / "pyproject.toml"), "--no-cache"]
        return subprocess.call(command, cwd=tmp, env=env)


if __name__ == "__main__":
    sys.exit(main())
