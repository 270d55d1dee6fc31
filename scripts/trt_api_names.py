"""Write the names the TensorRT 11 Python binding defines, read from its wheel without importing it.

The real `tensorrt` module cannot be imported without CUDA and NVIDIA's libraries, so vsslrt's
TensorRT code is tested through a stand-in (tests/engine/_fakes.py). This script extracts, from the
PyPI wheel `tensorrt-cu13-bindings` (about 1.3 MB: the compiled pybind11 module and a little
Python), every name the binding registers, so that tests/engine/test_trt_api_names.py can check
that engine/ and the stand-in only use names TensorRT 11 really has.

Where the names come from:

* the compiled module's NUL-terminated strings that are identifiers: pybind11 registers every
  class, method, property and enum value by such a string literal;
* the names its docstrings document (`:ivar NAME:`, `:arg NAME:`, ``:class:`NAME` ``);
* suffixes of those strings at a word boundary (after `_`, at a lower-to-upper case change, after
  an interface prefix `I`; any tail of an upper-case enum name): the linker stores a literal that
  is the tail of another only once ("execution_context" lives inside "create_execution_context",
  "INT8" inside "UINT8"), so a name can be present only as such a tail;
* the top-level functions and assignments of the binding's Python `__init__.py` (`nptype`,
  `__version__`, ...).

The list is therefore a superset (it also holds C symbol names and some suffixes that are not
attributes), which is what a "does TensorRT have this name" check needs: it catches removed and
misspelt names (EXPLICIT_BATCH, BuilderFlag.FP16, platform_has_fast_fp16) without false alarms.

Usage:
    python scripts/trt_api_names.py                     # pip download the newest 11.x wheel
    python scripts/trt_api_names.py --wheel path.whl    # use a wheel already downloaded
    python scripts/trt_api_names.py --out other.txt

The wheel version follows the `trt` extra of pyproject.toml (tensorrt>=11,<12 -> the same range of
tensorrt-cu13-bindings); the wheel's file name and sha256 are written in the output's header.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "engine" / "data" / "tensorrt11_api_names.txt"
PACKAGE = "tensorrt-cu13-bindings"
_IDENT = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_DOC_NAMES = re.compile(rb":(?:ivar|arg|param|attr)\s+([A-Za-z_][A-Za-z0-9_]*)\s*:|:class:`([A-Za-z_][A-Za-z0-9_.]*)`")


def trt_requirement(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The version range of the `trt` extra ("tensorrt>=11,<12" -> ">=11,<12")."""
    import tomllib

    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["trt"]
    for requirement in extras:
        match = re.match(r"^\s*tensorrt(?:-cu\d+)?\s*([<>=!~][^;]*)", requirement)
        if match:
            return match.group(1).replace(" ", "")
    raise SystemExit(f"pyproject.toml: expected a tensorrt requirement in the trt extra, got {extras!r}")


def download_wheel(folder: Path, spec: str) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(folder), f"{PACKAGE}{spec}"],
        check=True,
    )
    wheels = sorted(folder.glob("tensorrt_cu13_bindings-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download: expected a {PACKAGE} wheel in {folder}, got none")
    return wheels[-1]


def _suffixes(name: str) -> set[str]:
    """Tails of `name` that start at a word boundary (see the module docstring).

    In an upper-case name (an enum value) every tail that starts with a letter counts: "INT8" is
    stored inside "UINT8".
    """
    out = set()
    upper = name.upper() == name
    for i in range(1, len(name) - 1):
        if upper and name[i].isalpha():
            out.add(name[i:])
            continue
        prev, here = name[i - 1], name[i]
        boundary = (prev == "_" and here != "_") or (prev.islower() and here.isupper())
        boundary = boundary or (i == 1 and prev == "I" and here.isupper() and name[2:3].islower())
        if boundary:
            out.add(name[i:])
    return out


def names_from_module(blob: bytes) -> set[str]:
    names: set[str] = set()
    for raw in blob.split(b"\0"):
        if _IDENT.fullmatch(raw) and not raw.startswith(b"_Z"):  # _Z...: mangled C++ symbols
            names.add(raw.decode())
        for match in _DOC_NAMES.finditer(raw):
            names.add((match.group(1) or match.group(2)).decode().rsplit(".", 1)[-1])
    for name in list(names):
        names |= _suffixes(name)
    return {n for n in names if _IDENT.fullmatch(n.encode())}


def names_from_python(source: str) -> set[str]:
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
                elif isinstance(target, ast.Attribute):
                    names.add(target.attr)
    return names


def extract(wheel: Path) -> tuple[str, set[str]]:
    """(version, names) of a bindings wheel."""
    with zipfile.ZipFile(wheel) as archive:
        members = archive.namelist()
        modules = [m for m in members if re.match(r"tensorrt_bindings/tensorrt[^/]*\.so$", m)]
        if not modules:
            raise SystemExit(f"{wheel}: expected tensorrt_bindings/tensorrt*.so in the wheel, got {members[:5]}...")
        names = set()
        for member in modules:
            names |= names_from_module(archive.read(member))
        names |= names_from_python(archive.read("tensorrt_bindings/__init__.py").decode())
    version = wheel.name.split("-")[1]
    return version, names


def write(out: Path, wheel: Path, version: str, names: set[str]) -> None:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    header = [
        f"# Names defined by the TensorRT {version} Python binding (a superset: see scripts/trt_api_names.py).",
        f"# wheel: {wheel.name}",
        f"# sha256: {digest}",
        "# regenerate: python scripts/trt_api_names.py",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(header + sorted(names)) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="a tensorrt-cu13-bindings wheel (default: pip download it)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output list (default: {DEFAULT_OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp), trt_requirement())
        version, names = extract(wheel)
        if not version.startswith("11."):
            raise SystemExit(f"{wheel.name}: expected a TensorRT 11 wheel, got version {version}")
        write(args.out, wheel, version, names)
    print(f"wrote {args.out} ({len(names)} names, TensorRT {version})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
