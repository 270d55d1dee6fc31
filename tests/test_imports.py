"""Importing vsslrt and showing the CLI help must not pull in any heavy backend."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("tensorrt", "cupy", "onnxruntime", "torch")

PROBE = """
import json, sys
{body}
print(json.dumps([m for m in {heavy!r} if m in sys.modules]))
"""


def _loaded_after(body: str) -> list[str]:
    code = PROBE.format(body=body, heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_vsslrt_is_light():
    assert _loaded_after("import vsslrt") == []


def test_import_eval_is_light():
    assert _loaded_after("import vsslrt.eval") == []


def test_import_data_and_models_is_light():
    assert _loaded_after("import vsslrt.data, vsslrt.models") == []


def test_cli_help_is_light():
    body = (
        "from vsslrt.cli.app import create_app\n"
        "app = create_app()\n"
        "try:\n"
        "    app(['--help'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    assert _loaded_after(body) == []
