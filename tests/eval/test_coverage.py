"""The reference keys a paper-protocol run cannot produce, with the reason."""

from __future__ import annotations

import numpy as np

from vsslrt.eval import evaluate
from vsslrt.eval.coverage import NO_GROUPS, NO_OBJECT_MAPS, NOT_PAPER, missing_reference_keys, reference_keys, summarise

THRESHOLDS = {"max": 0.6, "max10": 0.66, "maxq3": 0.63}


def _maps(n=4, seed=0):
    rng = np.random.default_rng(seed)
    maps = [rng.random((n, 7, 7), dtype=np.float32) for _ in range(5)]
    gt = np.zeros((n, 224, 224), dtype=bool)
    gt[:, 50:150, 60:160] = True
    return maps, gt


def test_reference_has_164_keys():
    keys = reference_keys()
    assert len(keys) == len(set(keys)) == 164
    assert sum(k.endswith("_OGL") for k in keys) == 60


def test_a_run_without_object_maps_lacks_exactly_the_60_ogl_keys():
    (pos, sil, noi, off, obj), gt = _maps()
    got = evaluate(pos, sil, noi, off, gt, group=np.arange(4) // 2, protocol="paper", thresholds=THRESHOLDS)
    missing = missing_reference_keys(got, object_maps=False, groups=True)
    assert len(got) == 104 and len(missing) == 60
    assert set(missing.values()) == {NO_OBJECT_MAPS} and all(k.endswith("_OGL") for k in missing)
    assert summarise(missing) == [f"60 reference keys missing (CIoU_OGL, AUC_OGL, CIoU_adap_OGL, ...): {NO_OBJECT_MAPS}"]

    full = evaluate(pos, sil, noi, off, gt, obj=obj, group=np.arange(4) // 2, protocol="paper", thresholds=THRESHOLDS)
    assert missing_reference_keys(full, object_maps=True, groups=True) == {}


def test_groups_and_protocol_reasons():
    (pos, sil, noi, off, obj), gt = _maps()
    got = evaluate(pos, sil, noi, off, gt, obj=obj, protocol="paper", thresholds=THRESHOLDS)
    assert missing_reference_keys(got, object_maps=True, groups=False) == {"iiou_adap": NO_GROUPS, "IAUC_adap": NO_GROUPS}
    fixed = evaluate(pos, sil, noi, off, gt, obj=obj, protocol="fixed", thresholds=THRESHOLDS)
    missing = missing_reference_keys(fixed, object_maps=True, groups=True, protocol="fixed")
    assert len(missing) == 164 and set(missing.values()) == {NOT_PAPER}
