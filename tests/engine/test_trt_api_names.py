"""The TensorRT names engine/ uses and the stand-in exposes exist in the real TensorRT 11 binding.

The TensorRT code runs here only against tests/engine/_fakes.py, so a name TensorRT 11 removed or
never had (EXPLICIT_BATCH, BuilderFlag.FP16, a misspelt method) would pass every other test and fail
on the first GPU. The reference list, tests/engine/data/tensorrt11_api_names.txt, is extracted
from the tensorrt-cu13-bindings wheel by scripts/trt_api_names.py (its header names the wheel and
its sha256).

Which names count as TensorRT names (pragmatic, by variable name): attributes accessed on the
module (`trt.X`, `self._trt.X`), on variables and attributes that hold TensorRT objects by this
code base's naming (builder, network, config, parser, runtime, engine, context, inspector,
profile, timing_cache, tensor, logger, and their `self._` forms), the whole attribute chain
after them (`trt.BuilderFlag.TF32` -> BuilderFlag, TF32), and string names passed to hasattr /
getattr on them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMES_FILE = Path(__file__).with_name("data") / "tensorrt11_api_names.txt"
ENGINE_DIR = ROOT / "engine"
FAKES = Path(__file__).with_name("_fakes.py")

TRT_OBJECTS = {
    "trt", "builder", "network", "config", "parser", "runtime", "engine", "context", "inspector",
    "profile", "timing_cache", "tensor", "logger",
}
# The TensorRT stand-in's classes (the CuPy stand-ins FakeCupyArray, FakeStream, FakeGraph are not TensorRT).
FAKE_TRT_CLASSES = {
    "FakeTensor", "FakeNetwork", "FakeParser", "FakeTimingCache", "FakeConfig", "FakeProfile",
    "FakeBuilder", "FakeInspector", "FakeEngine", "FakeContext", "FakeRuntime",
}


@pytest.fixture(scope="module")
def trt11_names() -> set[str]:
    lines = NAMES_FILE.read_text(encoding="utf-8").splitlines()
    return {line for line in lines if line and not line.startswith("#")}


def _root_is_trt(node: ast.AST) -> bool:
    """Whether an expression is a variable (or self attribute) that holds the module or a TensorRT object."""
    if isinstance(node, ast.Name):
        return node.id in TRT_OBJECTS
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and node.attr.lstrip("_") in TRT_OBJECTS
    )


def trt_names_used(source: str) -> set[str]:
    """TensorRT attribute names a module's code accesses (see the module docstring)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            chain, base = [node.attr], node.value
            while isinstance(base, ast.Attribute) and not _root_is_trt(base):
                chain.append(base.attr)
                base = base.value
            if _root_is_trt(base):
                found.update(chain)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("hasattr", "getattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            target = node.args[0]
            while isinstance(target, ast.Attribute) and not _root_is_trt(target):
                target = target.value
            if _root_is_trt(target):
                found.add(node.args[1].value)
    return found


def fake_public_names() -> dict[str, set[str]]:
    """Public methods, properties and instance attributes of the TensorRT stand-in's classes."""
    out: dict[str, set[str]] = {}
    for node in ast.parse(FAKES.read_text()).body:
        if isinstance(node, ast.ClassDef) and node.name in FAKE_TRT_CLASSES:
            names = set()
            for item in ast.walk(node):
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                    names.add(item.name)
                elif isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name) and item.value.id == "self":
                    if isinstance(item.ctx, ast.Store) and not item.attr.startswith("_"):
                        names.add(item.attr)
            out[node.name] = names
    return out


def test_the_name_list_is_from_a_tensorrt_11_wheel_and_holds_its_core_api(trt11_names):
    header = [line for line in NAMES_FILE.read_text().splitlines() if line.startswith("#")]
    assert re.search(r"wheel: tensorrt_cu13_bindings-11\.\d+\.\d+\.\d+-\S+\.whl", "\n".join(header))
    assert re.search(r"sha256: [0-9a-f]{64}", "\n".join(header))
    for name in ("Builder", "Runtime", "OnnxParser", "deserialize_cuda_engine", "execute_async_v3",
                 "set_tensor_address", "engine_host_code_allowed", "VERSION_COMPATIBLE", "nptype", "__version__"):
        assert name in trt11_names, name
    # Names TensorRT 11 removed are absent, so the check below can fail.
    for removed in ("EXPLICIT_BATCH", "FP16", "platform_has_fast_fp16", "int8_calibrator"):
        assert removed not in trt11_names, removed


def test_the_collector_sees_module_object_and_hasattr_names():
    source = (
        "def f(trt, settings):\n"
        "    config.set_flag(trt.BuilderFlag.FP16)\n"
        "    self._engine.get_tensor_name(0)\n"
        "    hasattr(trt.BuilderFlag, 'TF32')\n"
        "    settings.profile.shapes(x)\n"  # a BatchProfile reached through settings: not TensorRT
    )
    assert trt_names_used(source) == {"set_flag", "BuilderFlag", "FP16", "get_tensor_name", "TF32"}


# The modules that touch TensorRT (they name the module `trt`); other modules' `engine` or `profile`
# variables are not TensorRT objects.
TRT_MODULES = sorted(p for p in ENGINE_DIR.glob("*.py") if re.search(r"\btrt\b", p.read_text()))


def test_the_tensorrt_modules_are_scanned():
    assert {"trt_builder.py", "trt_runner.py", "trt_common.py", "probe.py"} <= {p.name for p in TRT_MODULES}


@pytest.mark.parametrize("path", TRT_MODULES, ids=lambda p: p.name)
def test_engine_code_uses_only_tensorrt_11_names(path, trt11_names):
    missing = sorted(trt_names_used(path.read_text()) - trt11_names)
    assert not missing, f"{path.name} uses names TensorRT 11 does not have: {missing}"


def stand_in_problems(fakes, version: str, trt11_names: set[str]) -> dict[str, list[str]]:
    """Public names of the stand-in for `version` that TensorRT 11 lacks, by owner."""
    trt = fakes.make_fake_tensorrt(version)
    exposed: dict[str, set[str]] = {"tensorrt": set()}
    for name, value in vars(trt).items():
        if name.startswith("_") and name != "__version__":
            continue
        exposed["tensorrt"].add(name)
        if isinstance(value, fakes._Enum):
            exposed[f"tensorrt.{name}"] = set(vars(value))
    exposed["Logger"] = {n for n in vars(trt.Logger) if not n.startswith("_")}
    exposed.update(fake_public_names())
    assert set(FAKE_TRT_CLASSES) <= set(exposed)  # every stand-in class was seen
    problems = {
        owner: sorted(names - fakes.NOT_TENSORRT.get(owner, set()) - trt11_names)
        for owner, names in exposed.items()
    }
    return {owner: names for owner, names in problems.items() if names}


def test_the_stand_in_exposes_only_tensorrt_11_names(fakes, trt11_names):
    problems = stand_in_problems(fakes, "11.4.0.106", trt11_names)
    assert not problems, f"the TensorRT stand-in exposes names TensorRT 11 does not have: {problems}"


def test_the_10x_stand_in_is_caught_with_the_names_11_removed(fakes, trt11_names):
    # The 10.x surface keeps EXPLICIT_BATCH and BuilderFlag.FP16; the list is one flat namespace, so
    # BuilderFlag.INT8 / BF16 pass as DataType.INT8 / BF16 (a limit of reading names from strings).
    problems = stand_in_problems(fakes, "10.16.1", trt11_names)
    assert problems == {"tensorrt.NetworkDefinitionCreationFlag": ["EXPLICIT_BATCH"], "tensorrt.BuilderFlag": ["FP16"]}


def test_the_extractor_reads_literals_docstrings_and_merged_tails():
    import importlib.util

    spec = importlib.util.spec_from_file_location("trt_api_names_script", ROOT / "scripts" / "trt_api_names.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    blob = b"\0".join([
        b"create_execution_context",  # "execution_context" is stored as its tail
        b"UINT8",  # "INT8" likewise
        b"_ZN8nvinfer17IRuntimeE",  # mangled symbol: skipped
        b"Builds an engine. :ivar max_aux_streams: :class:`tensorrt.ICudaEngine` the result",
        b"not an identifier!",
    ])
    names = script.names_from_module(blob)
    assert {"create_execution_context", "execution_context", "context", "UINT8", "INT8", "max_aux_streams",
            "ICudaEngine", "CudaEngine"} <= names
    assert not {"xecution_context", "reate_execution_context", "_ZN8nvinfer17IRuntimeE", "IRuntimeE"} & names
    assert script.names_from_python("__version__ = '11'\ndef nptype(t):\n    pass\nLogger.Severity = 1\n") == {
        "__version__", "nptype", "Severity"}
    assert script.trt_requirement() == ">=11,<12"
