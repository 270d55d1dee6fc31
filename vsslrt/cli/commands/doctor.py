"""`vsslrt doctor`: what this machine can run (TensorRT, CUDA devices, ONNX Runtime providers)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from vsslrt.cli._options import examples
from vsslrt.errors import BackendUnavailableError

DOCTOR_EXAMPLES = [
    "vsslrt doctor              # a table: TensorRT levels, CuPy and GPUs, ONNX Runtime providers, CPU",
    "vsslrt doctor --json       # the same as JSON, plus the backend --backend auto would pick",
]


def doctor(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table (for scripts and bug reports).")
    ] = False,
) -> None:
    """Check which backends work here and which one --backend auto would choose, and why."""
    from vsslrt.engine.probe import capabilities, choose_backend  # lazy: the probe loads the platform libraries

    caps = capabilities()
    try:
        backend, reason = choose_backend("auto", caps)
    except BackendUnavailableError as exc:
        backend, reason = None, exc.one_line()
    report = caps.to_dict()
    report["auto_backend"] = {"backend": backend, "reason": reason}
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    _print_table(report)


def _print_table(report: dict[str, Any]) -> None:
    # lazy: Rich loads only when a command prints
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    def check_row(label: str, key: str) -> tuple[str, str, str]:
        return label, "yes" if report[key]["ok"] else "no", report[key]["reason"]

    rows = [
        check_row("TensorRT installed", "tensorrt_installed"),
        check_row("TensorRT libraries load", "tensorrt_loadable"),
        check_row("TensorRT can use CUDA", "tensorrt_cuda"),
        check_row("CuPy installed", "cupy_installed"),
        check_row("CUDA device usable", "cuda_usable"),
    ]
    for gpu in report["cuda_devices"]:
        rows.append((f"  GPU {gpu['index']}", "", f"{gpu['name']}, compute capability {gpu['compute_capability']}, "
                     f"{gpu['memory_gib']} GiB"))
    if report["driver_version"]:
        rows.append(("  CUDA driver / runtime", "", f"{report['driver_version']} / {report['cuda_runtime_version']}"))
    if report["onnxruntime_version"] is not None:
        rows.append(("ONNX Runtime", "yes", f"{report['onnxruntime_version']}: {', '.join(report['ort_providers'])}"))
    else:
        rows.append(("ONNX Runtime", "no", "not installed (pip install 'vsslrt[cpu]')"))
    cpu = report["cpu"]
    rows.append(("CPU", "", f"{cpu['model']} ({cpu['usable_cores']} of {cpu['logical_cores']} cores usable)"))
    auto = report["auto_backend"]
    rows.append(("--backend auto", auto["backend"] or "none", auto["reason"]))

    table = Table(title="vsslrt doctor")
    for column in ("check", "ok", "details"):
        table.add_column(column)
    for row in rows:
        # Details hold pip extras such as 'vsslrt[trt]', which Rich would otherwise read as markup.
        table.add_row(*(escape(cell) for cell in row))
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("doctor", epilog=examples(DOCTOR_EXAMPLES))(doctor)
