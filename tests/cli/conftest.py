"""Fixtures of the CLI tests: a tiny engine, real benchmark runs to calibrate, small heatmap batches.

One definition each: the engine and the runs are those of tests/pipeline/deploy_fixtures.py, the batches those of tests/eval
(loaded from their conftests). A test that needs is3-mini is skipped when the fixture data is absent.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
IS3_MINI = Path(os.environ.get("VSSLRT_IS3_MINI", TESTS.parent.parent / "shared" / "data" / "is3-mini"))

sys.path.insert(0, str(TESTS / "pipeline"))  # tiny_engine, for the modules that make their own engine

_spec = importlib.util.spec_from_file_location("vsslrt_tests_deploy_fixtures", TESTS / "pipeline" / "deploy_fixtures.py")
_deploy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_deploy)

engine = _deploy.engine
other_engine = _deploy.other_engine
splits = _deploy.splits
fit_run = _deploy.fit_run
holdout_run = _deploy.holdout_run
calibration_file = _deploy.calibration_file
fit_pairs = _deploy.fit_pairs

_spec = importlib.util.spec_from_file_location("vsslrt_tests_eval_fixtures", TESTS / "eval" / "conftest.py")
_eval = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_eval)

batch = _eval.batch  # small heatmap batches for `vsslrt metrics`

_NEEDS_IS3_MINI = {"splits", "fit_run", "holdout_run", "calibration_file", "fit_pairs"}


def pytest_collection_modifyitems(items):
    if IS3_MINI.is_dir():
        return
    skip = pytest.mark.skip(reason=f"the is3-mini fixture is not at {IS3_MINI}")
    for item in items:
        if "tests/cli" in str(item.fspath).replace(os.sep, "/") and _NEEDS_IS3_MINI & set(item.fixturenames):
            item.add_marker(skip)
