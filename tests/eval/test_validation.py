"""Input validation: one clear InputError per problem, naming the source and the field."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from vsslrt.errors import InputError
from vsslrt.eval import evaluate, make_config, parse_thresholds, validate_maps

CONDITIONS = ("pos", "silence", "noise", "offscreen")


def fields(batch):
    return {k: batch[k] for k in (*CONDITIONS, "gt", "obj", "group")}


def call(f):
    return validate_maps(f["pos"], f["silence"], f["noise"], f["offscreen"], f["gt"], obj=f.get("obj"),
                         group=f.get("group"), source="maps.npz")


def test_valid_batch_passes(batch):
    info = call(fields(batch))
    assert info.n == 12


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.update(pos=f["pos"][0]), "expected field 'pos' to be a 3-D array (N, H, W), got shape (7, 7)"),
        (lambda f: f.update(noise=f["noise"][:5]), "expected field 'noise' to hold N=12 samples like 'pos', got 5"),
        (lambda f: f.update(silence=np.zeros((12, 14, 14), np.float32)), "map size 7x7 of 'pos', got 14x14"),
        (lambda f: f.update(gt=f["gt"][:, :112, :112]), "expected field 'gt' to have shape (N, 224, 224), got (12, 112, 112)"),
        (lambda f: f.update(gt=f["gt"].astype(np.uint8) * 2), "expected field 'gt' to be binary (bool or 0/1), got values such as [2]"),
        (lambda f: f.update(gt=np.zeros_like(f["gt"])), "got an empty ground truth for all 12 samples"),
        (lambda f: f.update(pos=f["pos"].astype(np.int32)), "expected field 'pos' to be a floating-point array, got dtype int32"),
        (lambda f: f.update(group=np.zeros(12)), "expected field 'group' to be an integer array of shape (12,)"),
        (lambda f: f.update(obj=f["obj"][:3]), "expected field 'obj' to hold N=12 samples"),
        (lambda f: f.update(pos=[[0.0]]), "expected pos to be a NumPy or CuPy array, got list"),
    ],
)
def test_each_problem_has_its_message(batch, change, message):
    f = fields(batch)
    change(f)
    with pytest.raises(InputError) as err:
        call(f)
    text = str(err.value)
    assert text.startswith("maps.npz: ") and message in text and "\n" not in text


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("field", [*CONDITIONS, "obj"])
def test_non_finite_maps_are_refused_by_validation_and_by_evaluate(batch, field, bad):
    f = fields(batch)
    f[field] = f[field].copy()
    f[field][3, 2, 2] = bad
    with pytest.raises(InputError, match=rf"field '{field}' to be finite, got NaN or inf in 1 sample\(s\) \(first: sample 3\)"):
        call(f)
    with pytest.raises(InputError, match=rf"^evaluate: expected field '{field}' to be finite"):
        evaluate(*(f[c] for c in (*CONDITIONS, "gt")), obj=f["obj"])


def test_zero_one_numeric_gt_is_accepted(batch):
    f = fields(batch)
    ref = evaluate(*(f[c] for c in (*CONDITIONS, "gt")))
    f["gt"] = f["gt"].astype(np.float32)
    assert evaluate(*(f[c] for c in (*CONDITIONS, "gt"))) == ref


def test_mixed_libraries_name_both(batch, monkeypatch):
    fake = types.ModuleType("cupy")

    class ndarray:  # noqa: N801 - mimics cupy.ndarray for the class-name check
        pass

    fake.ndarray = ndarray
    monkeypatch.setitem(sys.modules, "cupy", fake)
    f = fields(batch)
    f["gt"] = ndarray()
    with pytest.raises(InputError, match=r"one library, got cupy \(gt\) and numpy \(pos, silence, noise, offscreen, obj, group\)"):
        call(f)


def test_settings_are_checked():
    with pytest.raises(InputError, match="protocol: expected one of fixed, paper, got 'papers'"):
        make_config("papers")
    with pytest.raises(InputError, match="interp: expected one of bilinear, cv2"):
        make_config(interp="nearest")
    with pytest.raises(InputError, match="paper protocol: expected the thresholds max, max10 and maxq3"):
        make_config("paper", {"max": 0.5})
    with pytest.raises(InputError, match="paper protocol"):
        make_config("paper", {"max": 0.5, "max10": 0.55, "maxq3": 0.6, "extra": 0.1})
    with pytest.raises(InputError, match="other than the built-in"):
        make_config(thresholds={"median": 0.5})
    with pytest.raises(InputError, match="finite number"):
        make_config(thresholds={"t": float("nan")})
    with pytest.raises(InputError, match="fixed threshold: expected a number"):
        make_config(fixed="high")


def test_paper_thresholds_are_reordered_as_the_reference():
    cfg = make_config("paper", {"maxq3": 0.6, "max": 0.5, "max10": 0.55})
    assert cfg.columns == ("median", "adaptive", "fixed", "max", "max10", "maxq3")


def test_parse_thresholds():
    assert parse_thresholds("max=0.6, max10=0.66,maxq3=6.3e-1") == {"max": 0.6, "max10": 0.66, "maxq3": 0.63}
    assert parse_thresholds(None) == {} and parse_thresholds("  ") == {}
    for text, message in [
        ("max0.6", "expected name=value pairs separated by commas, got 'max0.6'"),
        ("max=0.6,", "expected name=value pairs separated by commas, got ''"),
        ("max=", "got 'max='"),
        ("max=abc", "expected a number for 'max', got 'abc'"),
        ("max=inf", "expected a finite number for 'max'"),
        ("9max=0.1", "expected a threshold name of letters"),
        ("max=0.1,max=0.2", "expected each threshold name once, got 'max' twice"),
    ]:
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_thresholds(text)
