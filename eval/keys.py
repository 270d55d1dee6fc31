"""Metric key names of both protocols (docs/metrics.md is the contract; this module spells it out).

`paper` keys are the reference code's own, misspellings included; `fixed` keys are
`<family>/<measure>@<threshold>`. `metric_keys()` lists the exact key set of a configuration.
"""

from __future__ import annotations

CONDITIONS = ("pos", "silence", "noise", "offscreen")
NEGATIVES = ("silence", "noise", "offscreen")
PAIRS = (
    ("pos", "silence"),
    ("pos", "noise"),
    ("pos", "offscreen"),
    ("silence", "noise"),
    ("silence", "offscreen"),
    ("noise", "offscreen"),
)
PAPER_UNIVERSAL = ("max", "max10", "maxq3")
BUILTIN_THRESHOLDS = ("median", "adaptive", "fixed")

# ---------------------------------------------------------------------------------------------
# paper
# ---------------------------------------------------------------------------------------------

_PAPER_POS = {"fixed": "05", "max": "max", "max10": "max10", "maxq3": "maxq3"}
_PAPER_NEG = {"silence": "Silence", "noise": "Noise", "offscreen": "OffScreen"}
_PAPER_NEG_SUFFIX = {
    "fixed": "",
    "median": "_ThrCIoU",
    "adaptive": "_ThrCIoU_Adap",
    "max": "_Max",
    "max10": "_Max10",
    "maxq3": "_MaxQ3",
}
_PAPER_PAIR = {
    ("pos", "silence"): "Pos_Silence",
    ("pos", "noise"): "Pos_Noise",
    ("pos", "offscreen"): "Pos_Offscreen",
    ("silence", "noise"): "Silence_Noise",
    ("silence", "offscreen"): "Silence_Offscreen",
    ("noise", "offscreen"): "Noise_Offscreen",
}
_PAPER_PAIR_SUFFIX = {"fixed": "", "adaptive": "_Adap", "max": "_Max", "max10": "_Max_10", "maxq3": "_Max_Q3"}
_PAPER_MAXMIN_SUFFIX = {"pos": "", "silence": "_Silence", "noise": "_Noise", "offscreen": "_Offscreen"}

# Threshold variants of each paper family, in the reference's order.
PAPER_POS_VARIANTS = ("fixed", "max", "max10", "maxq3")
PAPER_POOLED_VARIANTS = ("median", "fixed", "max", "max10", "maxq3")  # Q1
PAPER_NEG_VARIANTS = tuple(_PAPER_NEG_SUFFIX)
PAPER_PAIR_VARIANTS = tuple(_PAPER_PAIR_SUFFIX)
PAPER_PAIR_VARIANTS_OGL = ("fixed", "adaptive")


def paper_pos_keys(variant: str, ogl: bool) -> tuple[str, str]:
    """(CIoU key, AUC key) of a positive list: variant in median/adaptive/fixed/max/max10/maxq3.

    `median` names the pooled Q1 list (`CIoU`, `AUC`).
    """
    sfx = "_OGL" if ogl else ""
    if variant == "median":
        return f"CIoU{sfx}", f"AUC{sfx}"
    if variant == "adaptive":
        return f"CIoU_adap{sfx}", f"AUC_adap{sfx}"
    frag = _PAPER_POS[variant]
    return f"CIoU_{frag}{sfx}", f"AUC_{frag}{sfx}"


def paper_pia_key(neg: str, variant: str, ogl: bool) -> str:
    if neg == "offscreen" and variant == "adaptive":
        return "pIA_OffScreen_ThrCIoU_Adap_OGL" if ogl else "pIA_OffScreem_ThrCIoU_Adap"  # (sic)
    if ogl and neg == "noise" and variant == "fixed":
        return "pIA_Noise_OG_OGLL_OGL"  # (sic)
    key = f"pIA_{_PAPER_NEG[neg]}{_PAPER_NEG_SUFFIX[variant]}"
    return key + "_OGL" if ogl else key


def paper_aoc_key(neg: str, variant: str, ogl: bool) -> str:
    name = _PAPER_NEG[neg]
    if neg == "offscreen" and variant in ("fixed", "median", "adaptive"):
        name = "Offscreen"  # (sic) the reference spells these three with a lower-case s
    key = f"AOC_{name}{_PAPER_NEG_SUFFIX[variant]}"
    return key + "_OGL" if ogl else key


def paper_pair_key(a: str, b: str, variant: str, ogl: bool) -> str:
    return f"IoU_{_PAPER_PAIR[(a, b)]}{_PAPER_PAIR_SUFFIX[variant]}_{'OGL' if ogl else 'WOGL'}"


def paper_f_keys() -> dict[str, tuple[str, str]]:
    """F key -> (kind, negative or 'neg'), kind in {'ciou', 'auc'}."""
    keys = {"F_Pos_Neg": ("ciou", "neg"), "F_AUC_AOC_Pos_Neg": ("auc", "neg")}
    for neg in NEGATIVES:
        keys[f"F_Pos_{_PAPER_NEG[neg]}"] = ("ciou", neg)
        keys[f"F_AUC_AOC_Pos_{_PAPER_NEG[neg]}"] = ("auc", neg)
    return keys


def paper_maxmin_keys(cond: str) -> dict[str, tuple[str, str]]:
    """Key -> (statistic in {'max','min'}, reduction in {'mean','median'}) for one condition."""
    s = _PAPER_MAXMIN_SUFFIX[cond]
    return {
        f"Max_Heatmap{s}": ("max", "mean"),
        f"Min_Heatmap{s}": ("min", "mean"),
        f"Median_Max_Heatmap{s}": ("max", "median"),
        f"Median_Min_Heatmap{s}": ("min", "median"),
    }


# ---------------------------------------------------------------------------------------------
# fixed
# ---------------------------------------------------------------------------------------------


def fixed_columns(universal: tuple[str, ...]) -> tuple[str, ...]:
    return BUILTIN_THRESHOLDS + tuple(universal)


def metric_keys(
    protocol: str, universal: tuple[str, ...] = (), *, ogl: bool = False, interactive: bool = False
) -> list[str]:
    """The exact key set `evaluate()` returns for a configuration.

    Args:
        protocol: "paper" or "fixed".
        universal: the universal threshold names, in order (paper: max, max10, maxq3).
        ogl: whether object maps are given.
        interactive: whether groups are given.
    """
    keys: list[str] = []
    if protocol == "paper":
        families = (False, True) if ogl else (False,)
        for fam in families:
            for variant in ("median", "adaptive", *PAPER_POS_VARIANTS):
                keys.extend(paper_pos_keys(variant, fam))
            for neg in NEGATIVES:
                for variant in PAPER_NEG_VARIANTS:
                    keys.append(paper_pia_key(neg, variant, fam))
                    keys.append(paper_aoc_key(neg, variant, fam))
            for a, b in PAIRS:
                for variant in PAPER_PAIR_VARIANTS_OGL if fam else PAPER_PAIR_VARIANTS:
                    keys.append(paper_pair_key(a, b, variant, fam))
        keys.extend(paper_f_keys())
        if interactive:
            keys.extend(["iiou_adap", "IAUC_adap"])
        for cond in CONDITIONS:
            keys.extend(paper_maxmin_keys(cond))
        return keys

    names = fixed_columns(universal)
    families = [("", names)] + ([("_ogl", BUILTIN_THRESHOLDS)] if ogl else [])
    for fam, cols in families:
        for t in cols:
            keys.extend(f"pos{fam}/{m}@{t}" for m in ("ciou", "miou", "auc"))
            for neg in NEGATIVES:
                keys.extend([f"{neg}{fam}/pia@{t}", f"{neg}{fam}/aoc@{t}"])
            keys.extend(f"iou{fam}/{a}_{b}@{t}" for a, b in PAIRS)
    for t in names:
        keys.append(f"f/pos_neg@{t}")
        keys.extend(f"f/pos_{neg}@{t}" for neg in NEGATIVES)
        keys.append(f"f_auc_aoc/pos_neg@{t}")
        keys.extend(f"f_auc_aoc/pos_{neg}@{t}" for neg in NEGATIVES)
        if interactive:
            keys.extend([f"interactive/ciou@{t}", f"interactive/auc@{t}"])
    for cond in CONDITIONS:
        keys.extend([f"max/{cond}/mean", f"max/{cond}/median", f"min/{cond}/mean", f"min/{cond}/median"])
    keys.extend(f"max/auroc/pos_vs_{neg}" for neg in NEGATIVES)
    keys.extend(["n_samples", "n_empty_gt"])
    return keys
