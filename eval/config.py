"""Evaluation settings and the threshold columns they imply.

The evaluator measures every sample at a fixed list of threshold "columns": the median and the
adaptive threshold of the positive map (per sample), the fixed threshold, and each universal
threshold. An `EvalConfig` is validated once, travels inside the saved state, and two states merge
only when their configurations are equal.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vsslrt.errors import InputError
from vsslrt.eval.interp import INTERPOLATIONS
from vsslrt.eval.keys import BUILTIN_THRESHOLDS, PAPER_UNIVERSAL

PROTOCOLS = ("fixed", "paper")
N_PIXELS = 224 * 224
THRESHOLD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class EvalConfig:
    """What to measure; see `make_config` for the meaning of each field."""

    protocol: str = "fixed"
    thresholds: tuple[tuple[str, float], ...] = ()
    fixed: float = 0.5
    interp: str = "bilinear"
    sweep: tuple[float, ...] | None = None

    # ----- derived -------------------------------------------------------------------------------
    @property
    def universal(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.thresholds)

    @property
    def columns(self) -> tuple[str, ...]:
        """WOGL threshold columns: median, adaptive, fixed, then the universal ones."""
        return BUILTIN_THRESHOLDS + self.universal

    @property
    def pair_start(self) -> int:
        """First WOGL column measured for map pairs (paper: no median pairs)."""
        return 1 if self.protocol == "paper" else 0

    @property
    def ogl_columns(self) -> tuple[str, ...]:
        """OGL columns: every threshold in paper mode (Q11), never universal ones in fixed mode."""
        return self.columns if self.protocol == "paper" else BUILTIN_THRESHOLDS

    @property
    def ogl_pair_columns(self) -> tuple[int, int]:
        """[start, stop) of the OGL columns measured for map pairs."""
        return (1, 3) if self.protocol == "paper" else (0, 3)

    @property
    def negative_interp(self) -> str:
        """Q10: in paper mode the negatives are always upsampled like cv2."""
        return "cv2" if self.protocol == "paper" else self.interp

    def constant_values(self, columns: Sequence[str]) -> dict[int, float]:
        """Column index -> value of every column that is the same for all samples."""
        values = {"fixed": self.fixed, **dict(self.thresholds)}
        return {i: values[c] for i, c in enumerate(columns) if c in values}

    def to_json(self) -> str:
        return json.dumps(
            {
                "protocol": self.protocol,
                "thresholds": [[n, v] for n, v in self.thresholds],
                "fixed": self.fixed,
                "interp": self.interp,
                "sweep": None if self.sweep is None else list(self.sweep),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> EvalConfig:
        raw = json.loads(text)
        return make_config(
            protocol=raw["protocol"],
            thresholds=dict(raw["thresholds"]),
            fixed=raw["fixed"],
            interp=raw["interp"],
            sweep=raw["sweep"],
        )


def _finite_float(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what}: expected a number, got {value!r}.") from None
    if not math.isfinite(number):
        raise InputError(f"{what}: expected a finite number, got {value!r}.")
    return number


def check_protocol(protocol: Any, field: str = "protocol",
                   hint: str | None = "--protocol fixed (default) or --protocol paper") -> str:
    """The protocol name itself, or InputError naming `field` (an option, or a file and its field)."""
    if protocol not in PROTOCOLS:
        raise InputError(f"{field}: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}.", hint=hint)
    return protocol


def make_config(
    protocol: str = "fixed",
    thresholds: Mapping[str, float] | None = None,
    fixed: float = 0.5,
    interp: str = "bilinear",
    sweep: Sequence[float] | None = None,
) -> EvalConfig:
    """Validate the evaluation settings.

    Args:
        protocol: "fixed" (bugs fixed, explicit names) or "paper" (reference numbers and names).
        thresholds: universal thresholds by name, in report order. Paper mode needs exactly
            max, max10 and maxq3. Names start with a letter and hold letters, digits and `_`;
            median, adaptive and fixed are reserved. Defaults to none.
        fixed: the fixed threshold. Defaults to 0.5.
        interp: "bilinear" (align-corners) or "cv2". In paper mode it applies to the positive and
            object maps only (Q10). Defaults to "bilinear".
        sweep: candidate thresholds measured for every sample (calibration sweeps), sorted and
            deduplicated. Defaults to none.

    Raises:
        InputError: any setting is out of range; the message names it and the allowed values.
    """
    check_protocol(protocol)
    if interp not in INTERPOLATIONS:
        raise InputError(f"interp: expected one of {', '.join(INTERPOLATIONS)}, got {interp!r}.")
    fixed_value = _finite_float(fixed, "fixed threshold")
    items: list[tuple[str, float]] = []
    for name, value in (thresholds or {}).items():
        if not isinstance(name, str) or not THRESHOLD_NAME.match(name):
            raise InputError(
                f"thresholds: expected names of letters, digits and '_' starting with a letter, got {name!r}."
            )
        if name in BUILTIN_THRESHOLDS:
            raise InputError(
                f"thresholds: expected a name other than the built-in {', '.join(BUILTIN_THRESHOLDS)}, got {name!r}.",
                hint="use --fixed for the fixed threshold",
            )
        items.append((name, _finite_float(value, f"threshold {name!r}")))
    if protocol == "paper":
        given = dict(items)
        missing = [n for n in PAPER_UNIVERSAL if n not in given]
        extra = [n for n in given if n not in PAPER_UNIVERSAL]
        if missing or extra:
            got = ", ".join(given) if given else "none"
            raise InputError(
                f"paper protocol: expected the thresholds max, max10 and maxq3 (and no others), got {got}.",
                hint="pass --thresholds max=...,max10=...,maxq3=... (vsslrt.models lists each model's values)",
            )
        items = [(n, given[n]) for n in PAPER_UNIVERSAL]
    grid = None
    if sweep is not None:
        values = sorted({_finite_float(v, "sweep threshold") for v in sweep})
        if not values:
            raise InputError("sweep: expected at least one candidate threshold, got none.")
        grid = tuple(values)
    return EvalConfig(protocol=protocol, thresholds=tuple(items), fixed=fixed_value, interp=interp, sweep=grid)
