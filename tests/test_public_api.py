"""The names the README promises at the package top level resolve, lazily, to the pipeline's objects."""

from __future__ import annotations

import subprocess
import sys

import pytest

import vsslrt


@pytest.mark.parametrize("name", sorted(vsslrt._EXPORTS))
def test_top_level_name_is_the_modules_object(name):
    import importlib

    assert getattr(vsslrt, name) is getattr(importlib.import_module(vsslrt._EXPORTS[name]), name)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        vsslrt.nope  # noqa: B018


def test_listing_the_names_imports_nothing_heavy():
    code = ("import sys, vsslrt; names = dir(vsslrt); assert 'Localizer' in names; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'tensorrt', 'cupy', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
