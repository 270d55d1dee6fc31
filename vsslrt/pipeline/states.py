"""The checkpoint layout of a run's evaluator states, and per-stage timings of several shards.

A run keeps one evaluator per engine ("model") and one per scored baseline ("baseline:<name>");
part logs, checkpoints and Ray blocks store them as one flat mapping "<evaluator>/<array>".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def join_states(states: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """{evaluator: state} -> one flat mapping "<evaluator>/<array>" (the checkpoint layout)."""
    return {f"{key}/{name}": value for key, state in states.items() for name, value in state.items()}


def split_states(flat: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """The inverse of `join_states`."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, value in flat.items():
        key, _, array = name.partition("/")
        out.setdefault(key, {})[array] = value
    return out


def concat_timings(parts: Sequence[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Per-stage time lists of several shards (or of a resumed run), in the given order."""
    out: dict[str, list[float]] = {}
    for part in parts:
        for name, values in part.items():
            out.setdefault(name, []).extend(float(v) for v in values)
    return out


def add_time(timings: dict[str, list[float]], name: str, seconds: float) -> None:
    """Append one measurement to a per-stage time list."""
    timings.setdefault(name, []).append(float(seconds))
