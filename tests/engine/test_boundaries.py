"""Importing the engine modules is cheap and never reaches into the evaluator."""

from __future__ import annotations

import json
import subprocess
import sys

MODULES = ("base", "ort_runner", "trt_common", "trt_builder", "trt_runner", "cache", "probe", "profiler", "flops")


def test_engine_imports_no_backend_and_no_eval():
    code = (
        "import json, sys\n"
        + "".join(f"import vsslrt.engine.{m}\n" for m in MODULES)
        + "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorrt', 'cupy', 'onnxruntime', 'torch') or m.startswith('vsslrt.eval'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
