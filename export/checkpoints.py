"""Strict loaders for the official checkpoint formats (protocol.md section 4, Q14).

Official layouts (top-level key, key prefix as stored):

=========  ====================  ===========  ==============================================
model      top-level key         prefix       notes
=========  ====================  ===========  ==============================================
ezvsl      ``model``             ``module.``  saved from DistributedDataParallel
slavc      ``model``             ``module.``  includes the momentum encoders
fnac       ``model``             ``module.``  same parameter names as EZ-VSL
lvs        ``model_state_dict``  ``module.``  DataParallel; unused conv1_flow / conv1_a / fc kept
sslalign   ``model_state_dict``  (none)       the reference prepends ``module.`` and loads non-strict
ssltie     ``state_dict``        (none)       vision_fc1 / conv3 / norm3 kept (unused for the map)
=========  ====================  ===========  ==============================================

The reference evaluates an untrained model when the file is missing and loads SSL-Align with
``strict=False`` (Q14). Here every load is strict: a missing or unexpected key or a wrong shape
raises ``InputError`` that lists the offending keys (first few and counts) and names the registry
model whose layout the file matches best. Reading accepts any of the three top-level keys, a bare
state dict, and ``module.`` prefixes anywhere (the reference strips every ``module.`` substring).
"""

from __future__ import annotations

import functools
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vsslrt.errors import InputError
from vsslrt.export.architectures import ARCHITECTURES
from vsslrt.files import sha256_file
from vsslrt.models import REGISTRY, get_model

TOP_LEVEL_KEYS = ("model", "model_state_dict", "state_dict")
_SHOW = 5  # how many offending keys an error message lists


@dataclass(frozen=True)
class LoadedCheckpoint:
    """What was loaded: file hash, where the state dict sat, and how keys were rewritten."""

    path: str
    sha256: str
    top_key: str | None  # None: the file is a bare state dict
    stripped_prefix: bool
    num_tensors: int
    ignored: tuple[str, ...] = ()  # unexpected keys accepted with ignore_unexpected

    @property
    def layout(self) -> str:
        where = f"'{self.top_key}'" if self.top_key else "a bare state dict"
        where += " with 'module.' prefixes" if self.stripped_prefix else ""
        if self.ignored:
            shown = ", ".join(self.ignored[:5]) + (", ..." if len(self.ignored) > 5 else "")
            where += f"; {len(self.ignored)} unexpected keys ignored ({shown})"
        return where


def official_checkpoint(name: str, model: nn.Module) -> dict[str, Any]:
    """The object the official code saves for ``model``, ready for ``torch.save``.

    Useful to hand a fine-tuned model to the reference code, and to test the loaders.
    """
    spec = get_model(name)
    prefix = spec.checkpoint_prefix
    state = {prefix + k: v.detach().clone() for k, v in model.state_dict().items()}
    return {spec.checkpoint_key: state, "epoch": 0}


def _what_it_is(path: Path) -> str:
    """What a file that torch cannot read looks like, from its first bytes (for the error message)."""
    import zipfile  # lazy: only when a file is refused

    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as exc:
        return f"a file that cannot be read ({exc.strerror or exc})"
    if size == 0:
        return "an empty file"
    if head.startswith(b"PK"):
        return ("a damaged zip archive (cut short or corrupt)" if not zipfile.is_zipfile(path)
                else "a zip archive that is not a torch checkpoint (or is damaged inside)")
    if head[:1] == b"\x80":
        return f"a pickle that is cut short or damaged ({size} bytes)"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
        return "an HTML/XML page, not weights (a login or error page saved instead of the file)"
    if text.startswith((b"version https://git-lfs", b"version ")):
        return "a Git LFS pointer, not the weights"
    return f"neither a torch zip nor a pickle ({size} bytes, starting {head[:8]!r})"


def _imported_global(path: Path) -> str | None:
    """The first Python object (module.name) a plain pickle file imports, read without unpickling.

    `torch.load(weights_only=True)` names the object only for the pickle protocol torch writes; a
    file pickled with protocol 3+ fails on an opcode first. `pickletools.genops` only parses.
    """
    import pickletools  # lazy: only when a file is refused

    try:
        data = path.read_bytes()
    except OSError:
        return None
    if data[:1] != b"\x80":
        return None
    strings: list[str] = []
    first = None
    try:
        for op, arg, _ in pickletools.genops(data):
            name = None
            if op.name == "GLOBAL":
                name = str(arg).replace(" ", ".")
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                name = f"{strings[-2]}.{strings[-1]}"
            elif isinstance(arg, str):
                strings.append(arg)
            if name is not None and not name.startswith(_TENSOR_GLOBALS):
                return name  # the first object that is not part of a tensor checkpoint
            first = first or name
    except Exception:  # noqa: BLE001 - a damaged pickle: described by _what_it_is instead
        return None
    return first


_TENSOR_GLOBALS = ("torch.", "collections.OrderedDict")


def load_torch_file(path: str | Path, *, trust: bool = False, what: str = "PyTorch checkpoint",
                    trust_hint: str | None = "pass --trust-checkpoint to load it with full unpickling") -> Any:
    """`torch.load` on the CPU with one-line errors that say what the file is.

    Args:
        path: The file.
        trust: Allow arbitrary pickled objects (``weights_only=False``).
        what: What the file should be, for the messages.
        trust_hint: How to load a file holding other pickled objects when it is trusted (None:
            no such switch for this file).

    Raises:
        InputError: Not a torch file (empty, cut short, an HTML page, ...), or a pickle of objects
            other than tensors and plain values while `trust` is False (loading it could run code).
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        name = found.group(1) if found is not None else _imported_global(path)
        if name is not None:  # a well-formed pickle that imports a Python object
            lead = (f"{path}: expected a {what} of tensors and plain values, got a pickle that loads a {name} "
                    "object; it was refused because unpickling it could run code.")
            hint = (f"if you trust the file's source, {trust_hint}" if trust_hint
                    else "use the official file, which holds only tensors")
            raise InputError(lead, hint=hint) from None
        raise InputError(f"{path}: expected a {what}, got an unreadable file: {_what_it_is(path)}.",
                         hint="check that the download finished (compare its size or sha256 with the source)") from None
    except Exception:  # corrupt zip, truncated file, not a torch file at all
        raise InputError(f"{path}: expected a {what}, got an unreadable file: {_what_it_is(path)}.",
                         hint="check that the download finished (compare its size or sha256 with the source)") from None


def read_state_dict(path: str | Path, trust: bool = False) -> tuple[dict[str, torch.Tensor], str | None, bool]:
    """Read a checkpoint file and return (state dict with 'module.' removed, top-level key, stripped).

    Args:
        path: the checkpoint file.
        trust: allow arbitrary pickled objects (``weights_only=False``). Only for files you trust.

    Raises:
        InputError: unreadable file, or no state dict in it.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path}: expected a checkpoint file, got no such file.",
            hint="pass the official .pth/.pth.tar file, or --random-init to export untrained weights",
        )
    obj = load_torch_file(path, trust=trust)
    top_key = None
    if isinstance(obj, dict) and not _is_state_dict(obj):
        top_key = next((k for k in TOP_LEVEL_KEYS if isinstance(obj.get(k), dict)), None)
        if top_key is None:
            keys = sorted(map(str, obj))[:8]
            raise InputError(
                f"{path}: expected a top-level key among {', '.join(TOP_LEVEL_KEYS)}, got keys {keys}.",
                hint="pass the checkpoint saved by the model's official training code",
            )
        obj = obj[top_key]
    if not isinstance(obj, dict) or not _is_state_dict(obj):
        raise InputError(f"{path}: expected a state dict of tensors, got {type(obj).__name__}.")
    stripped = any("module." in k for k in obj)
    state = {k.replace("module.", ""): v for k, v in obj.items()}
    return state, top_key, stripped


def _is_state_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(k, str) for k in obj) and all(torch.is_tensor(v) for v in obj.values())


def load_checkpoint(
    model: nn.Module, name: str, path: str | Path, trust: bool = False, ignore_unexpected: bool = False
) -> LoadedCheckpoint:
    """Load an official checkpoint into ``model`` strictly.

    ``num_batches_tracked`` buffers may be absent (older PyTorch did not save them; they do not
    affect evaluation). Everything else must match exactly.

    Args:
        model: the architecture (``build_model(name)``).
        name: its registry name (for messages).
        path: the checkpoint file.
        trust: allow pickled Python objects in the file.
        ignore_unexpected: accept keys the architecture does not have (e.g. training-only heads)
            and report them in ``LoadedCheckpoint.ignored``. Missing keys and wrong shapes still fail.

    Raises:
        InputError: keys missing, unexpected or mis-shaped; the message names the model the file
            most likely belongs to.
    """
    spec = get_model(name)
    state, top_key, stripped = read_state_dict(path, trust=trust)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = compare_keys(expected, state)
    ignored: tuple[str, ...] = ()
    if problems and ignore_unexpected:
        missing, unexpected, wrong = problems
        ignored = tuple(unexpected)
        problems = (missing, [], wrong) if (missing or wrong) else None
    if problems:
        only_unexpected = not problems[0] and not problems[2]
        hint = _hint(spec.name, state)
        if only_unexpected:
            hint += "; if the extra keys are training-only modules, pass --ignore-unexpected-keys"
        raise InputError(_mismatch_message(Path(path), spec.name, state, *problems), hint=hint)
    current = model.state_dict()
    full = {k: state.get(k, current[k]) for k in current}
    model.load_state_dict(full, strict=True)
    return LoadedCheckpoint(str(path), sha256_file(path), top_key, stripped, len(state), ignored)


def compare_keys(
    expected: dict[str, tuple[int, ...]], state: dict[str, torch.Tensor]
) -> tuple[list[str], list[str], list[str]] | None:
    """(missing, unexpected, wrong-shape descriptions), or None when the state dict fits."""
    missing = sorted(k for k in expected if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in expected)
    wrong = sorted(
        f"{k}: file {tuple(state[k].shape)}, model {expected[k]}"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    )
    return (missing, unexpected, wrong) if (missing or unexpected or wrong) else None


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return f"{len(items)} ({shown}{', ...' if len(items) > _SHOW else ''})"


def _mismatch_message(path: Path, name: str, state: dict, missing: list, unexpected: list, wrong: list) -> str:
    parts = []
    if missing:
        parts.append(f"missing keys {_listing(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {_listing(unexpected)}")
    if wrong:
        parts.append(f"wrong shapes {_listing(wrong)}")
    guess = likely_models(state)
    if guess and name not in guess[0]:
        names = " / ".join(guess[0])
        looks = f" The file looks like a checkpoint of {names} ({guess[1]:.0%} of keys and shapes match)."
    elif guess:
        names = " / ".join(guess[0])
        looks = f" Its layout is closest to {names} ({guess[1]:.0%} match), but it does not load strictly."
    else:
        looks = " It does not resemble any model vsslrt knows."
    return f"{path}: expected a checkpoint of {name} that loads strictly, got {'; '.join(parts)}.{looks}"


def _hint(name: str, state: dict) -> str:
    guess = likely_models(state)
    if guess and name not in guess[0]:
        return f"pass --model {guess[0][0]} (or the checkpoint of {name})"
    return f"pass the official checkpoint of {name}, or --random-init"


@functools.lru_cache(maxsize=None)
def _signature(name: str) -> frozenset[tuple[str, tuple[int, ...]]]:
    """Key/shape set of a registry model, built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        model = ARCHITECTURES[name]()
    return frozenset(
        (k, tuple(v.shape)) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")
    )


def likely_models(state: dict[str, torch.Tensor]) -> tuple[tuple[str, ...], float] | None:
    """Registry models whose key/shape set best matches ``state`` (ties kept), with the score.

    The score is the Jaccard index of (key, shape) pairs. EZ-VSL and FNAC, and LVS and SSL-Align,
    have identical layouts, so they always tie.
    """
    got = frozenset((k, tuple(v.shape)) for k, v in state.items() if not k.endswith("num_batches_tracked"))
    scores = {}
    for name in REGISTRY:
        sig = _signature(name)
        scores[name] = len(sig & got) / max(1, len(sig | got))
    best = max(scores.values())
    if best < 0.2:
        return None
    return tuple(n for n, s in scores.items() if s == best), best
