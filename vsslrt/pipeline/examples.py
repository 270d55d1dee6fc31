"""Failure views: per engine, image grids of the samples each audio condition gets most wrong.

`vsslrt bench --examples K` ends with `write_failure_views`: for the positive condition the K
samples with the lowest IoU, for each negative (silence, noise, offscreen) the K with the highest
pIA, at one threshold column (the run's headline threshold by default). Each grid row shows the
image, the ground truth and the four maps (positive, silence, noise, offscreen) with the
threshold's contour, like the qualitative figures of the paper.

Selection is exact across shards: the evaluator state keeps every sample's IoU and pIA, and
`WorstK` keeps the K best entries by (score, sample id), a total order, so the K chosen from merged
shards are the K chosen from one pass, in any order of merges. Only the chosen samples' maps are
recomputed at the end, from the engine (the encoders run again on at most 4 K samples, with the
run's seed, so every negative input is the one the run drew).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.errors import InputError
from vsslrt.eval.config import EvalConfig
from vsslrt.eval.keys import CONDITIONS, NEGATIVES
from vsslrt.files import atomic_write_bytes, atomic_write_json
from vsslrt.data import BatchLoader
from vsslrt.eval.interp import upsample
from vsslrt.head import similarity_maps_multi
from vsslrt.pipeline import audiocache

PANELS = ("image", "ground truth") + CONDITIONS


@dataclass
class WorstK:
    """The k entries with the lowest score (highest with `largest`), ties broken by the lower id.

    Mergeable: `merge` keeps the k best of both sides, so any split of the samples into shards
    gives the same selection. NaN scores sort as the worst possible value.
    """

    k: int
    largest: bool = False
    scores: np.ndarray = None  # type: ignore[assignment]
    ids: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise InputError(f"examples: expected K to be a positive integer, got {self.k!r}.", hint="--examples 8")
        if self.scores is None:
            self.scores = np.empty(0, dtype=np.float64)
            self.ids = np.empty(0, dtype=np.int64)

    def update(self, scores: Any, ids: Any) -> WorstK:
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        all_scores = np.concatenate([self.scores, scores])
        all_ids = np.concatenate([self.ids, ids])
        worst = np.inf if not self.largest else -np.inf
        key = np.where(np.isnan(all_scores), -worst, all_scores)  # NaN first
        order = np.lexsort((all_ids, -key if self.largest else key))[: self.k]
        self.scores, self.ids = all_scores[order], all_ids[order]
        return self

    def merge(self, other: WorstK) -> WorstK:
        if other.largest != self.largest:
            raise InputError("examples: expected two selections of the same direction, got lowest and highest.")
        return self.update(other.scores, other.ids)


def _model_state(state: Any) -> dict[str, np.ndarray]:
    """The engine evaluator's state from an Evaluator, its state(), or a run checkpoint."""
    if hasattr(state, "state") and callable(state.state):
        state = state.state()
    keys = list(state.files) if hasattr(state, "files") else list(state.keys())
    if "config" not in keys and "model/config" in keys:
        return {k.partition("/")[2]: np.asarray(state[k]) for k in keys if k.startswith("model/")}
    if "config" not in keys:
        raise InputError("examples: expected an evaluator state (or a run checkpoint), got arrays "
                         f"{sorted(keys)[:6]}.", hint="pass the engine's shards/<engine>/checkpoint.npz")
    return {k: np.asarray(state[k]) for k in keys}


def default_threshold(config: EvalConfig) -> str:
    """The headline column: maxq3 when given, else the first universal threshold, else fixed."""
    if "maxq3" in config.universal:
        return "maxq3"
    return config.universal[0] if config.universal else "fixed"


def select_failures(state: Any, k: int, threshold: str | None = None) -> dict[str, WorstK]:
    """Per condition, the K samples it gets most wrong at one threshold column.

    Positives: lowest IoU (an empty GT counts 0, the fixed-mode policy). Negatives: highest pIA.
    """
    s = _model_state(state)
    config = EvalConfig.from_json(str(s["config"]))
    column = threshold or default_threshold(config)
    if column not in config.columns:
        raise InputError(f"examples: expected a threshold among {', '.join(config.columns)}, got {column!r}.")
    j = config.columns.index(column)
    ids = s["sample_id"]
    iou = np.where(s["gt_pixels"] == 0, 0.0, s["iou"][:, j]) if ids.shape[0] else np.empty(0)
    out = {"pos": WorstK(k).update(iou, ids)}
    for ni, neg in enumerate(NEGATIVES):
        out[neg] = WorstK(k, largest=True).update(s["pia"][:, ni, j] if ids.shape[0] else np.empty(0), ids)
    return out


def threshold_values(state: Any, threshold: str | None, sample_ids: np.ndarray) -> np.ndarray:
    """The binarisation threshold of each given sample at the column (per sample for median/adaptive)."""
    s = _model_state(state)
    config = EvalConfig.from_json(str(s["config"]))
    column = threshold or default_threshold(config)
    rows = np.searchsorted(s["sample_id"], sample_ids)
    if column in ("median", "adaptive"):
        return s["thr"][rows, 0 if column == "median" else 1]
    return np.full(len(sample_ids), config.constant_values(config.columns)[config.columns.index(column)])


def recompute_maps(session: Any, dataset: Any, sample_ids: np.ndarray, config: EvalConfig) -> np.ndarray:
    """(4, n, 224, 224) upsampled maps of the given evaluator sample ids, recomputed by the engine.

    A sample id is `repetition * len(dataset) + index` (the run's numbering); the loader is built
    with the run's seed, so the noise and offscreen inputs are those of the run.
    """

    settings, encoders, spec = session.settings, session.encoders, session.spec
    mode = settings.protocol
    n = len(dataset)
    index = sample_ids % n
    rep = sample_ids // n
    wanted = sorted({int(i) for i in index})
    loader = BatchLoader(dataset, spec, mode=mode, batch_size=max(1, len(wanted)), repeats=int(rep.max()) + 1,
                         run_seed=settings.seed, indices=wanted, workers=0, offscreen_inputs=True,
                         noise_inputs=settings.noise_bank == 0)
    batch = next(iter(loader))
    where = {int(i): p for p, i in enumerate(batch.indices)}
    missing = [int(i) for i in index if int(i) not in where]
    if missing:
        raise InputError(f"examples: expected the samples {missing[:5]} to load, got unreadable files.")
    visual = encoders.embed_images(np.ascontiguousarray(batch.images))
    pos = encoders.embed_audio(np.ascontiguousarray(batch.positive))
    silence = encoders.embed_audio(audiocache.silence(spec, mode)[None])
    bank = audiocache.noise_bank(spec, mode, settings, encoders) if settings.noise_bank else None
    out = np.zeros((4, len(sample_ids), 224, 224), dtype=np.float32)
    for r in sorted({int(x) for x in rep}):
        off = encoders.embed_audio(np.ascontiguousarray(batch.offscreen[r]))
        if bank is None:
            noise = encoders.embed_audio(np.ascontiguousarray(batch.noise[r]))
        else:
            noise = bank[audiocache.bank_choice(settings.seed, r, batch.indices, len(bank))]
        maps = np.asarray(similarity_maps_multi(visual, [pos, silence, noise, off], encoders.manifest.head))
        for c in range(4):
            how = config.interp if c == 0 else config.negative_interp
            up = np.asarray(upsample(maps[c], how, xp=np, dtype=np.float32)).reshape(-1, 224, 224)
            for p, (i, rr) in enumerate(zip(index, rep)):
                if int(rr) == r:
                    out[c, p] = up[where[int(i)]]
    return out


def _image(path: Path) -> np.ndarray:
    from PIL import Image  # display only: the evaluated images went through the front-end

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB").resize((224, 224), Image.BICUBIC))


def _grid(rows: list[dict[str, Any]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), len(PANELS), figsize=(2.2 * len(PANELS), 2.3 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        for c, panel in enumerate(PANELS):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if panel == "image":
                ax.imshow(row["image"])
                ax.set_ylabel(f"{row['name']}\n{row['label']}", fontsize=7)
            elif panel == "ground truth":
                ax.imshow(row["image"])
                ax.imshow(row["gt"], cmap="Greens", alpha=0.45, vmin=0, vmax=1)
            else:
                m = row["maps"][CONDITIONS.index(panel)]
                ax.imshow(row["image"])
                # One colour scale per row: a negative map that lights up shows as hot as the positive.
                ax.imshow(m, cmap="jet", alpha=0.5, vmin=float(row["maps"].min()), vmax=float(row["maps"].max()))
                t = row["threshold"]
                if float(m.min()) < t < float(m.max()):
                    ax.contour(m, levels=[t], colors="white", linewidths=1.0)
            if r == 0:
                ax.set_title(panel, fontsize=9)
    fig.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def write_failure_views(run_dir: str | Path, engine: Any, dataset: Any, state: Any, k: int, *,
                        settings: Any = None, threshold: str | None = None) -> dict[str, Path]:
    """Write `examples/<engine>/<condition>.png` and `examples/<engine>/worst.json` into the run folder.

    Args:
        run_dir: The run folder.
        engine: An open `vsslrt.pipeline.bench.EngineSession`, or an engine folder (opened here with
            `settings` and closed again).
        dataset: The run's dataset.
        state: The engine evaluator's state: `Evaluator`, its `state()`, or the run checkpoint
            (`shards/<engine>/checkpoint.npz`, "model/..." arrays).
        k: Samples per condition.
        settings: The run's `BenchSettings` (required with an engine folder).
        threshold: The threshold column (default: maxq3, else the first universal one, else fixed).

    Returns:
        Condition (and "index") -> the file written.
    """
    selections = select_failures(state, k, threshold)
    s = _model_state(state)
    config = EvalConfig.from_json(str(s["config"]))
    column = threshold or default_threshold(config)
    own = not hasattr(engine, "encoders")
    if own:
        from vsslrt.pipeline.bench import EngineSession  # circular: the bench run writes the failure views

        if settings is None:
            raise InputError("examples: expected the run's settings with an engine folder, got none.")
        engine = EngineSession(engine, dataset, settings)
    try:
        chosen = np.unique(np.concatenate([sel.ids for sel in selections.values()]))
        maps = recompute_maps(engine, dataset, chosen, config) if chosen.shape[0] else None
        thresholds = threshold_values(s, column, chosen)
        folder = Path(run_dir) / "examples" / engine.folder.name
        n = len(dataset)
        written: dict[str, Path] = {}
        index: dict[str, Any] = {"threshold": column, "k": k, "conditions": {}}
        gts = dataset.gt_maps([int(i) % n for i in chosen]) if chosen.shape[0] else None
        for cond, sel in selections.items():
            rows, listed = [], []
            measure = "IoU" if cond == "pos" else "pIA"
            for sid, score in zip(sel.ids.tolist(), sel.scores.tolist()):
                p = int(np.searchsorted(chosen, sid))
                sample = dataset[sid % n]
                rows.append({"image": _image(sample.image), "gt": gts[p], "maps": maps[:, p],
                             "threshold": float(thresholds[p]), "name": sample.name,
                             "label": f"{measure} {100 * score:.1f}"})
                listed.append({"sample_id": sid, "name": sample.name, "repetition": sid // n, measure.lower(): score})
            index["conditions"][cond] = listed
            if rows:
                path = folder / f"{cond}.png"
                worst = "lowest IoU" if cond == "pos" else "highest pIA"
                _grid(rows, f"{engine.folder.name}: {cond}, {len(rows)} samples with the {worst} at {column}", path)
                written[cond] = path
        written["index"] = folder / "worst.json"
        atomic_write_json(written["index"], index)
        return written
    finally:
        if own:
            engine.close()


def failure_scores(maps: np.ndarray, gt: np.ndarray, thresholds: np.ndarray) -> Mapping[str, np.ndarray]:
    """IoU of the positive and pIA of each negative for (4, n, 224, 224) upsampled maps (strict `>`)."""
    on = maps > thresholds[None, :, None, None].astype(maps.dtype)
    inter = np.count_nonzero(on[0] & gt, axis=(1, 2))
    union = np.count_nonzero(on[0] | gt, axis=(1, 2))
    out = {"pos": np.where(gt.any(axis=(1, 2)) & (union > 0), inter / np.maximum(union, 1), 0.0)}
    for c, neg in enumerate(NEGATIVES, start=1):
        out[neg] = np.count_nonzero(on[c], axis=(1, 2)) / (224 * 224)
    return out
