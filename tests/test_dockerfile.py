"""The Dockerfile's structure (no Docker engine in CI): pinned base images, the TensorRT major check,
the extras per variant, the entrypoint, the copied package folders, and the documented commands."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, backslash continuations joined."""
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1].rstrip() + " "
            continue
        logical.append(current + stripped)
        current = ""
    if current:
        logical.append(current)
    out = []
    for entry in logical:
        keyword, _, rest = entry.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def arg_defaults(steps) -> dict[str, str]:
    out = {}
    for keyword, rest in steps:
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            out[name.strip()] = value.strip().strip("\"'")
    return out


def assert_pinned(image: str, where: str) -> None:
    name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
    assert tag, f"{where}: base image {image!r} has no explicit tag"
    assert tag != "latest" and "latest" not in image, f"{where}: base image {image!r} floats with 'latest'"
    assert re.search(r"\d", tag), f"{where}: base image tag {tag!r} names no version"


def test_instructions_parse_the_continued_run_step():
    parsed = instructions("FROM a:1\n# note\nRUN one \\\n    # inside\n    two\nENTRYPOINT [\"x\"]\n")
    assert parsed == [("FROM", "a:1"), ("RUN", "one two"), ("ENTRYPOINT", '["x"]')]


@pytest.mark.parametrize("image", ["python", "python:latest", "nvcr.io/nvidia/tensorrt:latest", "python:slim",
                                   "localhost:5000/vsslrt"])
def test_pin_check_refuses_floating_images(image):
    with pytest.raises(AssertionError):
        assert_pinned(image, "test")


def test_base_images_are_pinned(steps):
    defaults = arg_defaults(steps)
    froms = [rest.split()[0] for keyword, rest in steps if keyword == "FROM"]
    assert froms, "the Dockerfile has no FROM"
    for image in froms:
        ref = re.fullmatch(r"\$\{?(\w+)\}?", image)
        if ref:
            assert ref.group(1) in defaults, f"FROM {image}: the ARG has no default"
            image = defaults[ref.group(1)]
        assert_pinned(image, f"FROM {image}")
    assert "latest" not in DOCKERFILE.read_text()


def test_documented_cpu_base_is_pinned():
    text = DOCKERFILE.read_text() + (ROOT / "README.md").read_text()
    images = re.findall(r"BASE_IMAGE=(\S+)", text)
    assert any("python" in image and "slim" in image for image in images), "no slim Python base documented"
    for image in images:
        assert_pinned(image, f"BASE_IMAGE={image}")


def test_tensorrt_major_check_matches_the_trt_extra(steps):
    (spec,) = PYPROJECT["project"]["optional-dependencies"]["trt"]
    low = re.search(r">=\s*(\d+)", spec)
    high = re.search(r"<\s*(\d+)", spec)
    assert low and high and int(high.group(1)) == int(low.group(1)) + 1, f"the trt extra {spec!r} does not pin one major"
    major = low.group(1)
    runs = " ".join(rest for keyword, rest in steps if keyword == "RUN")
    assert "import tensorrt" in runs, "the build does not check the base image's TensorRT"
    assert f"startswith('{major}.')" in runs or f'startswith("{major}.")' in runs, (
        f"the TensorRT check does not require major {major} (the trt extra is {spec!r})")


def test_extras_per_variant(steps):
    defaults = arg_defaults(steps)
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert defaults.get("VARIANT") == "gpu", "the default variant is not the GPU one"
    runs = " ".join(rest for keyword, rest in steps if keyword == "RUN")
    installed = re.findall(r"pip install [^;]*?\.\[([\w,-]+)\]", runs)
    assert installed, "no `pip install .[extra]` step"
    for group in installed:
        for extra in group.split(","):
            assert extra in extras, f"the Dockerfile installs an unknown extra {extra!r}"
    # Shell-level `; else` / `; fi` (the TensorRT check's Python one-liner has an `else` of its own).
    gpu_branch = re.search(r'if \[ "\$VARIANT" = "gpu" \]; then(.*?);\s*else\b(.*?);\s*fi\b', runs)
    assert gpu_branch, "no GPU/CPU variant switch on $VARIANT"
    assert ".[gpu]" in gpu_branch.group(1) and "onnxruntime-gpu" in " ".join(extras["gpu"])
    assert "import tensorrt" in gpu_branch.group(1), "the TensorRT check is not in the GPU variant"
    assert ".[cpu]" in gpu_branch.group(2) and "onnxruntime" in " ".join(extras["cpu"])


def test_entrypoint_is_vsslrt(steps):
    entry = [rest for keyword, rest in steps if keyword == "ENTRYPOINT"]
    assert entry and entry[-1].replace(" ", "") == '["vsslrt"]', f"ENTRYPOINT is {entry!r}"
    assert "vsslrt" in PYPROJECT["project"]["scripts"]


def test_copy_covers_every_package_folder(steps):
    copied = set()
    for keyword, rest in steps:
        if keyword == "COPY":
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            copied |= {p.rstrip("/") for p in parts[:-1]}
    if "." in copied:  # `COPY . .` copies everything
        return
    folders = set(PYPROJECT["tool"]["setuptools"]["package-dir"].values())
    missing = sorted(folder for folder in folders if folder.split("/")[0] not in copied)
    assert not missing, f"COPY misses package folders {missing}"
    for needed in ("pyproject.toml", PYPROJECT["project"]["readme"]):
        assert needed in copied, f"COPY misses {needed} (the install needs it)"


def test_readme_documents_build_and_gpu_run():
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^docker build .*\.\s*(#.*)?$", readme, re.M), "README lacks a `docker build ... .` command"
    assert re.search(r"^docker run --gpus all .*\bbench\b", readme, re.M), "README lacks `docker run --gpus all ... bench`"
