"""The protocol presets: which evaluation a run performs, after which reference, on which datasets.

A preset names one published evaluation (or vsslrt's own, for retrieval), the repository and
commit it follows (protocols-extended.md section 0, protocol.md section 0), the quirks its `paper`
mode keeps and its `fixed` mode removes, the dataset kinds it applies to and what it needs from a
dataset (non-sounding samples, groups, ...). `provenance()` is the block a run writes into
metrics.json; `check_applicable()` is the one-line error for a protocol a dataset cannot serve,
raised before the first batch.

This module reads datasets by duck typing (`kind`, `sounding`, `groups`): eval/ never imports data/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vsslrt.errors import InputError

MODES = ("fixed", "paper")


@dataclass(frozen=True)
class Preset:
    """One protocol preset.

    Attributes:
        name: the value of `--protocol` (with `--mode fixed|paper`, or `name:paper`).
        summary: one line.
        reference: "owner/repo@commit" of the code it follows, or "vsslrt" for vsslrt's own metric.
        spec: where the specification is (section of the shared reference documents).
        kinds: dataset kinds it applies to.
        needs: what a dataset must provide: "negatives" (non-sounding samples), "groups" (two or
            more queries of one image), "embeddings" (the split encoders' outputs).
        quirks: quirk id -> what `paper` mode keeps (and `fixed` removes).
        evaluator: the evaluator class that computes it (module:name).
    """

    name: str
    summary: str
    reference: str
    spec: str
    kinds: tuple[str, ...]
    needs: tuple[str, ...] = ()
    quirks: dict[str, str] = field(default_factory=dict)
    evaluator: str = ""

    def provenance(self, mode: str) -> dict[str, Any]:
        """The metrics.json block: preset, mode, reference, and the quirks kept or removed."""
        mode = check_mode(mode)
        return {
            "protocol": self.name,
            "mode": mode,
            "reference": self.reference,
            "spec": self.spec,
            "quirks_kept" if mode == "paper" else "quirks_fixed": dict(self.quirks),
            "own_definition": self.reference == "vsslrt",
        }


_SLAVC = "stoneMo/SLAVC@05b429c6f474ca6f1070d08e1d0142948d1625bf"
_ACL = "swimmiing/ACL-SSL@57f4a6c3b93e03992806da483c143c8802eba21d"
_SSLA = "kaistmm/SSLalignment@e7ae3c5518e5a4d911c49e034d906612cf922aff"
_VEVAL = "xavijuanola/vssl_eval@e8ebbc90d51318cd2ca7ac2993dfc6af75d90d18"
EXTENDED_KINDS = ("flickr-ext", "vggss-ext")
_AVSB = "OpenNLPLab/AVSBench@f7414aff6aedf49248887abf352471612fb1ec90"
_AVSR = "jiali-home/AVSBench-Robust@03e925dc97f460e8c42ae8c7fb104bf5238bef13"
AVSBENCH_KINDS = ("avsbench-s4", "avsbench-ms3")
_TVSL = "enyac-group/T-VSL@2cddbbb"
_NOPRIOR = "VisualAIKHU/NoPrior_MultiSSL@9910fb1"
DUET_KINDS = ("vggss-duet", "manifest-duet")

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "negative-audio",
            "positive localisation and silence / noise / offscreen audio (pIA, AOC, F, universal thresholds)",
            _VEVAL, "protocol.md", ("vggss", "is3", "flickr", "manifest", *EXTENDED_KINDS),
            quirks={"Q1-Q25": "protocol.md section 9"}, evaluator="vsslrt.eval.state:Evaluator"),
        Preset(
            "slavc-extended",
            "Extended Flickr-SoundNet / VGG-SS with non-sounding samples: AP, max-F1, LocAcc, AUC at cIoU 0.5, 0.75",
            _SLAVC, "protocols-extended.md section 1", EXTENDED_KINDS, ("negatives",),
            quirks={
                "E1": "a detected, mislocalised positive is a false positive but never a false negative: "
                      "recall reaches 1 at the lowest threshold",
                "E2": "AP over every max(1, N//200)-th sorted confidence below the largest, no (R=0, P=1) start",
                "E3": "max-F1 over the 10 decile thresholds, each F1 rounded to 0.1 %",
                "E4": "a sample is sounding when it has boxes (bb = box count)",
                "E5": "cIoU without epsilon (an empty GT and prediction give NaN, a failure)",
                "relative": "--relative_prediction: min-max map binarised >= its median (README configuration)",
            },
            evaluator="vsslrt.eval.extended:ExtendedEvaluator"),
        Preset(
            "acl-extended",
            "ACL-SSL Ex-Flickr / Ex-VGG-SS: AP and max-F1 at cIoU 0.5 per binarisation threshold 0.05..0.95",
            _ACL, "protocols-extended.md section 2a", EXTENDED_KINDS, ("negatives", "confidence"),
            quirks={
                "E1": "as slavc-extended", "E2": "as slavc-extended", "E3": "as slavc-extended",
                "E6": "cIoU with epsilon 1e-12; sounding = the list's label (bb is a 0/1 flag)",
                "confidence": "the model's masked-embedding cosine (ACL-specific), given by the caller",
            },
            evaluator="vsslrt.eval.extended:ExtendedEvaluator"),
        Preset(
            "sslalign-is3",
            "IS3 interactive: cIoU, AUC, IIoU, IAUC at the median and the GT-size (oracle) threshold",
            _SSLA, "protocols-extended.md section 6", ("is3", "manifest"), ("groups",),
            quirks={
                "I1": "the adaptive threshold uses the GT size (an oracle), reported as cIoU_adap",
                "I2": "an empty GT with an empty prediction gives NaN (a failure); grid 0.05*i",
            },
            evaluator="vsslrt.eval.interactive:InteractiveEvaluator"),
        Preset(
            "retrieval",
            "cross-modal retrieval recall@1/5/10, audio->image and image->audio (vsslrt's own definition)",
            "vsslrt", "docs/metrics.md, Cross-modal retrieval (no public reference code)",
            ("vggss", "is3", "flickr", "manifest", *EXTENDED_KINDS), ("embeddings",),
            evaluator="vsslrt.eval.retrieval:RetrievalEvaluator"),
        Preset(
            "avsbench",
            "AVSBench S4 / MS3 segmentation: mIoU and F-score (beta^2 = 0.3) of the positive map against the mask",
            _AVSB, "protocols-extended.md sections 3 and 2.6", AVSBENCH_KINDS,
            quirks={
                "F-batch": "F maximised over the 255 thresholds per test batch of 4 videos, then averaged",
                "batch-means": "mIoU and FPR as means of per-batch frame means",
            },
            evaluator="vsslrt.eval.masks:MaskEvaluator"),
        Preset(
            "avsbench-robust",
            "AVSBench-Robust: mIoU, F and FPR under silence / noise / offscreen audio, scored against the positive masks",
            _AVSR, "protocols-extended.md sections 4a, 3 and 2.6", AVSBENCH_KINDS,
            quirks={
                "F-batch": "as avsbench", "batch-means": "as avsbench",
                "positive-masks": "every negative condition is scored against the frame's positive mask",
            },
            evaluator="vsslrt.eval.masks:MaskEvaluator"),
        Preset(
            "multisource",
            "two-source mixtures (duets): T-VSL's per-query canvas cIoU/IoU/AUC/AP and NoPrior's greedy "
            "cIoU/AUC/CAP/PIAP",
            f"{_TVSL}; {_NOPRIOR}", "protocols-extended.md sections 7a-7c; docs/metrics.md, Multi-source duets",
            DUET_KINDS,
            quirks={
                "names": "the references' key names (tvsl/..., noprior/...), 0-1 scale, AUC grid 0.05 i",
                "median-one": "NoPrior's median binarisation keeps a pixel equal to 1 on (its > then < 1 order)",
                "nan-ciou": "T-VSL's NaN cIoU (empty GT and prediction) stays NaN in the mean; fixed counts it 0",
            },
            evaluator="vsslrt.pipeline.multisource:MixturePanels"),
    )
}


def check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise InputError(f"protocol mode: expected one of {', '.join(MODES)}, got {mode!r}.",
                         hint="--protocol fixed (default) or --protocol paper")
    return mode


def get_preset(name: str) -> Preset:
    """The preset called `name` (InputError listing the presets otherwise)."""
    preset = PRESETS.get(str(name).lower())
    if preset is None:
        raise InputError(f"protocol: expected one of {', '.join(PRESETS)}, got {name!r}.",
                         hint="vsslrt bench --help lists the protocols and the datasets each applies to")
    return preset


def parse_protocol(text: str, default_mode: str = "fixed") -> tuple[Preset, str]:
    """"name", "name:paper" or a bare mode ("fixed"/"paper" = the negative-audio protocol)."""
    raw = str(text).strip().lower()
    if raw in MODES:
        return PRESETS["negative-audio"], raw
    name, _, mode = raw.partition(":")
    return get_preset(name), check_mode(mode or default_mode)


def _capabilities(dataset: Any) -> set[str]:
    have = {"embeddings"}
    sounding = getattr(dataset, "sounding", None)
    if sounding is not None and len(sounding) and not all(bool(s) for s in sounding):
        have.add("negatives")
    groups = getattr(dataset, "groups", None)
    if groups is not None and len(groups):
        _, counts = np.unique(np.asarray(groups), return_counts=True)
        if counts.max() >= 2:
            have.add("groups")
    return have


def missing_needs(preset: Preset, dataset: Any) -> list[str]:
    """What the dataset lacks for the preset ("confidence" is the caller's, never the dataset's)."""
    have = _capabilities(dataset) | {"confidence"}
    return [need for need in preset.needs if need not in have]


def applicable_protocols(dataset: Any) -> list[Preset]:
    """The presets a dataset can serve: its kind is listed and it has everything they need."""
    kind = getattr(dataset, "kind", None)
    return [p for p in PRESETS.values() if kind in p.kinds and not missing_needs(p, dataset)]


_NEED_TEXT = {
    "negatives": "non-sounding samples (an extended list: --dataset flickr-ext or vggss-ext)",
    "groups": "two or more queries per image (the records' group, as IS3 has)",
    "embeddings": "the split encoders' embeddings",
}


def check_applicable(preset: Preset | str, dataset: Any) -> Preset:
    """The preset, or the one-line InputError saying why this dataset cannot serve it."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    kind = getattr(dataset, "kind", None)
    if kind not in p.kinds:
        usable = ", ".join(q.name for q in applicable_protocols(dataset)) or "none"
        raise InputError(f"protocol {p.name}: expected a dataset of kind {', '.join(p.kinds)}, got {kind!r}.",
                         hint=f"protocols for this dataset: {usable}")
    lacking = missing_needs(p, dataset)
    if lacking:
        usable = ", ".join(q.name for q in applicable_protocols(dataset)) or "none"
        raise InputError(f"protocol {p.name}: expected {'; '.join(_NEED_TEXT.get(x, x) for x in lacking)}, "
                         f"got a {kind} dataset without them.", hint=f"protocols for this dataset: {usable}")
    return p
