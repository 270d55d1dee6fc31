"""vsslrt.data exports its entry points lazily: importing it loads no decoder or signal library."""

from __future__ import annotations

import json
import subprocess
import sys

import vsslrt.data


def test_every_export_resolves():
    for name in vsslrt.data.__all__:
        assert getattr(vsslrt.data, name) is not None, name


def test_import_is_light():
    code = (
        "import json, sys, vsslrt.data, vsslrt.data.frontends, vsslrt.data.loader\n"
        "print(json.dumps([m for m in ('scipy', 'PIL', 'soundfile', 'av', 'torch') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
