"""What the evaluator tests share: loading a sibling module by path (pytest runs with
--import-mode=importlib, so tests/eval is no package) and the key-by-key comparison of metrics."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType


def load_sibling(stem: str) -> ModuleType:
    """tests/eval/<stem>.py, loaded once per process (as `vsslrt_tests_eval_<stem>`)."""
    name = f"vsslrt_tests_eval_{stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{stem}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def assert_match(got: dict, want: dict, atol: float = 1e-6) -> None:
    """The same keys, and each value within `atol` of the wanted one (NaN only where it is NaN)."""
    assert set(got) == set(want), (sorted(set(want) - set(got)), sorted(set(got) - set(want)))
    bad = [f"{k}: got {got[k]!r}, want {want[k]!r}" for k in sorted(want)
           if not ((math.isnan(got[k]) and math.isnan(want[k])) or abs(got[k] - want[k]) <= atol)]
    assert not bad, "\n".join(bad)
