"""Strict checkpoint loading in every official layout, and the errors the reference never raised (Q14)."""

from __future__ import annotations

import pytest
import torch

from vsslrt.errors import InputError
from vsslrt.export.architectures import build_model
from vsslrt.export.checkpoints import (
    likely_models,
    load_checkpoint,
    official_checkpoint,
    read_state_dict,
)
from vsslrt.models import REGISTRY, get_model

from .conftest import MODELS

OFFICIAL_PREFIX = {name: spec.checkpoint_prefix for name, spec in REGISTRY.items()}  # the registry's layout facts


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_round_trip_in_the_official_layout(name, tmp_path):
    source = build_model(name, seed=11)
    ckpt = official_checkpoint(name, source)
    spec = get_model(name)
    # The layout the official code writes (protocol.md section 4).
    assert set(ckpt) == {spec.checkpoint_key, "epoch"}
    keys = list(ckpt[spec.checkpoint_key])
    assert all(k.startswith(OFFICIAL_PREFIX[name]) for k in keys)
    path = tmp_path / f"{name}.pth"
    torch.save(ckpt, path)

    target = build_model(name, seed=12)
    loaded = load_checkpoint(target, name, path)
    _assert_same_weights(source, target)
    assert loaded.top_key == spec.checkpoint_key
    assert loaded.stripped_prefix == bool(OFFICIAL_PREFIX[name])
    assert loaded.num_tensors == len(keys)
    assert len(loaded.sha256) == 64


@pytest.fixture(scope="module")
def ezvsl_state():
    return {k: v.clone() for k, v in build_model("ezvsl", seed=1).state_dict().items()}


def _save(tmp_path, obj, name="ck.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_missing_key_is_listed(tmp_path, ezvsl_state):
    state = dict(ezvsl_state)
    del state["aud_proj.bias"]
    with pytest.raises(InputError) as err:
        load_checkpoint(build_model("ezvsl"), "ezvsl", _save(tmp_path, {"model": state}))
    msg = str(err.value)
    assert "missing keys 1 (aud_proj.bias)" in msg
    assert "\n" not in msg


def test_unexpected_keys_are_counted_and_truncated(tmp_path, ezvsl_state):
    state = dict(ezvsl_state)
    for i in range(7):
        state[f"extra_head.{i}.weight"] = torch.zeros(3)
    with pytest.raises(InputError) as err:
        load_checkpoint(build_model("ezvsl"), "ezvsl", _save(tmp_path, {"model": state}))
    msg = str(err.value)
    assert "unexpected keys 7 (extra_head.0.weight" in msg
    assert ", ...)" in msg  # only the first few are shown
    assert "--ignore-unexpected-keys" in err.value.hint

    model = build_model("ezvsl", seed=2)
    loaded = load_checkpoint(model, "ezvsl", tmp_path / "ck.pth", ignore_unexpected=True)
    assert loaded.ignored == tuple(f"extra_head.{i}.weight" for i in range(7))
    assert "7 unexpected keys ignored (extra_head.0.weight" in loaded.layout
    assert torch.equal(model.state_dict()["aud_proj.weight"], ezvsl_state["aud_proj.weight"])
    state.pop("aud_proj.bias")  # still strict about missing keys
    with pytest.raises(InputError, match="missing keys 1"):
        load_checkpoint(model, "ezvsl", _save(tmp_path, {"model": state}), ignore_unexpected=True)


def test_wrong_shape_names_both_shapes(tmp_path, ezvsl_state):
    state = dict(ezvsl_state)
    state["audnet.conv1.weight"] = torch.zeros(64, 3, 7, 7)
    with pytest.raises(InputError) as err:
        load_checkpoint(build_model("ezvsl"), "ezvsl", _save(tmp_path, {"model": state}))
    assert "audnet.conv1.weight: file (64, 3, 7, 7), model (64, 1, 7, 7)" in str(err.value)


def test_checkpoint_of_another_model_names_that_model(tmp_path, ezvsl_state):
    path = _save(tmp_path, {"model": {"module." + k: v for k, v in ezvsl_state.items()}})
    with pytest.raises(InputError) as err:
        load_checkpoint(build_model("lvs"), "lvs", path)
    msg = str(err.value)
    assert "looks like a checkpoint of ezvsl / fnac" in msg
    assert "--model ezvsl" in err.value.hint


def test_slavc_checkpoint_into_ezvsl_names_slavc(tmp_path):
    state = build_model("slavc", seed=0).state_dict()
    with pytest.raises(InputError) as err:
        load_checkpoint(build_model("ezvsl"), "ezvsl", _save(tmp_path, {"model": state}))
    assert "looks like a checkpoint of slavc" in str(err.value)


def test_likely_models_ties_identical_layouts(ezvsl_state):
    names, score = likely_models(ezvsl_state)
    assert names == ("ezvsl", "fnac") and score == 1.0


def test_bare_state_dict_and_other_top_keys_are_read(tmp_path, ezvsl_state):
    bare, top, stripped = read_state_dict(_save(tmp_path, ezvsl_state, "bare.pth"))
    assert top is None and not stripped and bare.keys() == ezvsl_state.keys()
    _, top, _ = read_state_dict(_save(tmp_path, {"state_dict": ezvsl_state, "epoch": 3}, "sd.pth"))
    assert top == "state_dict"


def test_missing_num_batches_tracked_is_tolerated(tmp_path, ezvsl_state):
    state = {k: v for k, v in ezvsl_state.items() if not k.endswith("num_batches_tracked")}
    model = build_model("ezvsl", seed=5)
    load_checkpoint(model, "ezvsl", _save(tmp_path, {"model": state}))
    assert torch.equal(model.state_dict()["img_proj.weight"], ezvsl_state["img_proj.weight"])


def test_unknown_top_level_keys(tmp_path, ezvsl_state):
    with pytest.raises(InputError, match="expected a top-level key among model, model_state_dict, state_dict"):
        read_state_dict(_save(tmp_path, {"weights": ezvsl_state, "epoch": 1}))


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_state_dict(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="unreadable file"):
        read_state_dict(bad)


class _Args:  # a pickled Python object, like argparse.Namespace in some training scripts
    lr = 0.1


def test_pickled_objects_need_trust(tmp_path):
    path = _save(tmp_path, {"model": {"w": torch.zeros(2)}, "args": _Args()})
    with pytest.raises(InputError) as err:
        read_state_dict(path)
    assert "_Args object" in str(err.value)
    assert "--trust-checkpoint" in err.value.hint
    state, top, _ = read_state_dict(path, trust=True)
    assert top == "model" and list(state) == ["w"]
