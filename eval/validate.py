"""Input checks for the evaluator and the heatmap file of `vsslrt metrics`.

Every failure is an `InputError` with one line naming the file (or calling function), the field
and what was found, following "<subject>: expected <name> to be <constraint>, got <value>.".
The checks read the arrays where they live (NumPy or CuPy) and never copy them to the host.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.errors import InputError
from vsslrt.eval import _xp
from vsslrt.eval.config import THRESHOLD_NAME
from vsslrt.eval.keys import CONDITIONS

GT_SHAPE = (224, 224)
REQUIRED_FIELDS = ("pos", "silence", "noise", "offscreen", "gt")
OPTIONAL_FIELDS = ("obj", "group")
_FILE_HINT = (
    "save the file with numpy.savez(path, pos=..., silence=..., noise=..., offscreen=..., gt=...) "
    "(optional obj=..., group=...)"
)


@dataclass(frozen=True)
class BatchInfo:
    """What validation learnt about a batch: its size and array namespace."""

    n: int
    xp: Any


def _shape(a: Any) -> str:
    return "(" + ", ".join(str(int(s)) for s in a.shape) + ")"


def validate_maps(
    pos: Any,
    silence: Any,
    noise: Any,
    offscreen: Any,
    gt: Any,
    *,
    obj: Any = None,
    group: Any = None,
    source: str = "evaluate",
    check_finite: bool = True,
    require_gt: bool = True,
) -> BatchInfo:
    """Check one batch of heatmaps against the contract of docs/metrics.md.

    Args:
        pos, silence, noise, offscreen: raw maps (N, H, W), real floating, finite, one H x W.
        gt: (N, 224, 224) ground truth, bool (or 0/1 numbers), not empty for every sample.
        obj: optional raw object maps (N, H', W'), real floating, finite.
        group: optional (N,) integer group ids.
        source: the subject of error messages (a file name or the calling function).
        check_finite: scan the maps for NaN/inf. The evaluator turns it off and checks the
            per-sample max/min it computes anyway (`check_finite_extremes`). Defaults to True.
        require_gt: refuse a batch whose GT is empty for every sample (surely a rasterisation
            bug for a whole dataset; a shard of an accumulating evaluator may legitimately be so).
            Defaults to True.

    Returns:
        The batch size and the array namespace shared by the inputs.

    Raises:
        InputError: the first problem found, naming `source` and the field.
    """
    fields = {"pos": pos, "silence": silence, "noise": noise, "offscreen": offscreen, "gt": gt}
    fields.update({"obj": obj, "group": group})
    xp = _xp.namespace(fields, subject=source)

    maps = {c: fields[c] for c in CONDITIONS}
    if obj is not None:
        maps["obj"] = obj
    for name, arr in maps.items():
        if arr.ndim != 3:
            raise InputError(
                f"{source}: expected field {name!r} to be a 3-D array (N, H, W), got shape {_shape(arr)}.",
                hint=_FILE_HINT,
            )
        if not xp.isdtype(arr.dtype, "real floating"):
            raise InputError(
                f"{source}: expected field {name!r} to be a floating-point array, got dtype {arr.dtype}.",
                hint="save maps as float32",
            )
        if min(arr.shape[1:]) < 1:
            raise InputError(f"{source}: expected field {name!r} to have H, W >= 1, got shape {_shape(arr)}.")
    n = int(pos.shape[0])
    if n < 1:
        raise InputError(f"{source}: expected field 'pos' to hold at least one sample, got 0.")
    for name, arr in list(maps.items()) + [("gt", gt)] + ([("group", group)] if group is not None else []):
        if arr.ndim >= 1 and int(arr.shape[0]) != n:
            raise InputError(
                f"{source}: expected field {name!r} to hold N={n} samples like 'pos', got {int(arr.shape[0])}."
            )
    for name in CONDITIONS[1:]:
        if maps[name].shape[1:] != pos.shape[1:]:
            raise InputError(
                f"{source}: expected field {name!r} to have the map size {pos.shape[1]}x{pos.shape[2]} of 'pos', "
                f"got {maps[name].shape[1]}x{maps[name].shape[2]}."
            )

    if gt.ndim != 3 or tuple(gt.shape[1:]) != GT_SHAPE:
        raise InputError(
            f"{source}: expected field 'gt' to have shape (N, 224, 224), got {_shape(gt)}.",
            hint="rasterise the boxes on the 224x224 image grid",
        )
    if not xp.isdtype(gt.dtype, "bool"):
        if not xp.isdtype(gt.dtype, ("integral", "real floating")):
            raise InputError(f"{source}: expected field 'gt' to be binary (bool or 0/1), got dtype {gt.dtype}.")
        bad = xp.logical_and(gt != 0, gt != 1)
        if bool(xp.any(bad)):
            found = _xp.to_numpy(xp.unique_values(gt[bad]))[:5].tolist()
            raise InputError(
                f"{source}: expected field 'gt' to be binary (bool or 0/1), got values such as {found}.",
                hint="store the ground truth as a boolean mask",
            )

    if group is not None:
        if group.ndim != 1 or not xp.isdtype(group.dtype, "integral"):
            raise InputError(
                f"{source}: expected field 'group' to be an integer array of shape ({n},), "
                f"got dtype {group.dtype} and shape {_shape(group)}."
            )

    if check_finite:
        for name, arr in maps.items():
            rows = xp.reshape(arr, (n, -1))
            check_finite_extremes(name, xp.max(rows, axis=1), xp.min(rows, axis=1), source=source, xp=xp)

    marked = xp.any(gt) if xp.isdtype(gt.dtype, "bool") else xp.any(gt != 0)
    if require_gt and not bool(marked):
        raise empty_gt_error(source, n)
    return BatchInfo(n=n, xp=xp)


def empty_gt_error(source: str, n: int) -> InputError:
    """The one rule for a ground truth empty for every sample (`vsslrt metrics` and `vsslrt bench`)."""
    return InputError(
        f"{source}: expected field 'gt' to mark at least one pixel, got an empty ground truth for all {n} samples.",
        hint="check that the boxes were rasterised (True inside the box)",
    )


def check_finite_extremes(field: str, maxima: Any, minima: Any, *, source: str, xp: Any) -> None:
    """Refuse NaN/inf maps, seen through per-sample max and min (NaN propagates, inf shows).

    Raises:
        InputError: naming the field, the number of bad samples and the first one.
    """
    bad = ~xp.logical_and(xp.isfinite(maxima), xp.isfinite(minima))
    n_bad = int(xp.sum(xp.astype(bad, xp.int64)))
    if n_bad:
        first = int(_xp.to_numpy(xp.argmax(xp.astype(bad, xp.int8))))
        raise InputError(
            f"{source}: expected field {field!r} to be finite, got NaN or inf in {n_bad} sample(s) "
            f"(first: sample {first}).",
            hint="check the model output for overflow or missing maps",
        )


def validate_sample_ids(sample_ids: Any, n: int, *, source: str) -> np.ndarray:
    """Host int64 copy of per-sample ids, checked for shape and uniqueness."""
    if _xp.library_name(sample_ids) is not None:
        ids = _xp.to_numpy(sample_ids)
    elif isinstance(sample_ids, Sequence):
        ids = np.array(list(sample_ids))
    else:
        raise InputError(f"{source}: expected sample_ids to be a sequence of integers, got {type(sample_ids).__name__}.")
    if ids.shape != (n,) or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
        raise InputError(
            f"{source}: expected sample_ids to be {n} integers, got dtype {ids.dtype} and shape {ids.shape}."
        )
    ids = ids.astype(np.int64)
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = unique[counts > 1][:5].tolist()
        raise InputError(f"{source}: expected unique sample_ids, got duplicates {dup}.")
    return ids


def parse_thresholds(text: str | None, *, option: str = "--thresholds") -> dict[str, float]:
    """Parse "name=value,name=value" into an ordered dict of universal thresholds.

    Raises:
        InputError: an item is not name=value, a name is invalid or repeated, a value not a finite float.
    """
    if text is None or not text.strip():
        return {}
    out: dict[str, float] = {}
    for item in text.split(","):
        item = item.strip()
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise InputError(
                f"{option}: expected name=value pairs separated by commas, got {item!r}.",
                hint="e.g. --thresholds max=0.6041,max10=0.6645,maxq3=0.6382",
            )
        if not THRESHOLD_NAME.match(name):
            raise InputError(
                f"{option}: expected a threshold name of letters, digits and '_' starting with a letter, got {name!r}."
            )
        if name in out:
            raise InputError(f"{option}: expected each threshold name once, got {name!r} twice.")
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"{option}: expected a number for {name!r}, got {value!r}.") from None
        if not math.isfinite(number):
            raise InputError(f"{option}: expected a finite number for {name!r}, got {value!r}.")
        out[name] = number
    return out


def load_maps(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read and validate a heatmap file (DESIGN.md, Contracts).

    Args:
        path: an .npz holding float `pos`, `silence`, `noise`, `offscreen` (N, H, W), `gt`
            (N, 224, 224) bool, and optionally `obj` (N, H, W) and `group` (N,) int. Other fields
            are ignored.

    Returns:
        Field name -> array for the fields present (gt as bool).

    Raises:
        InputError: the file is missing or unreadable, a field is missing, or validation fails.
    """
    src = str(path)
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{src}: expected an existing .npz file, got no such file.", hint=_FILE_HINT)
    try:
        archive = np.load(p, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(
            f"{src}: expected a readable .npz archive, got {type(exc).__name__}: {exc}.", hint=_FILE_HINT
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError(f"{src}: expected a .npz archive of named fields, got a single .npy array.", hint=_FILE_HINT)
    with archive:
        present = sorted(archive.files)
        for name in REQUIRED_FIELDS:
            if name not in present:
                raise InputError(
                    f"{src}: expected field {name!r} to be present, got fields {present}.", hint=_FILE_HINT
                )
        fields: dict[str, np.ndarray] = {}
        for name in REQUIRED_FIELDS + OPTIONAL_FIELDS:
            if name in present:
                try:
                    fields[name] = archive[name]
                except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
                    raise InputError(
                        f"{src}: expected field {name!r} to be a readable array, got {type(exc).__name__}: {exc}."
                    ) from None
    validate_maps(
        fields["pos"],
        fields["silence"],
        fields["noise"],
        fields["offscreen"],
        fields["gt"],
        obj=fields.get("obj"),
        group=fields.get("group"),
        source=src,
    )
    fields["gt"] = fields["gt"] != 0 if fields["gt"].dtype != np.bool_ else fields["gt"]
    return fields


def check_batch_fields(expected: Mapping[str, bool], given: Mapping[str, bool], *, source: str) -> None:
    """Refuse a batch whose optional fields (obj, group) differ from earlier batches."""
    for name, had in expected.items():
        has = given[name]
        if had != has:
            state = "with" if had else "without"
            raise InputError(
                f"{source}: expected field {name!r} to be {'given' if had else 'absent'} like in earlier "
                f"batches (evaluated {state} {name}), got {'it' if has else 'none'}.",
                hint="give obj/group for every batch or for none",
            )
