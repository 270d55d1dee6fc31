"""The multi-source ("duet") protocol in a benchmark run: mixtures of clips -> per-panel maps -> metrics.

vsslrt's models are queried with a sound, one clip at a time. vsslrt's reading of a duet mixture
(docs/metrics.md, "Multi-source duets"): query q is source q's own clip, its audio embedding;
scored against every panel p's visual features it gives map[q, p] = head(visual[p], audio[q]), the
(Q, P) maps `vsslrt.eval.multisource.MultiSourceEvaluator` takes. The summed waveform of the
references is not a query here: an audio-only model given the sum returns one map for the sum, not
one per source, and the per-source metrics need one map per source.

No encoder runs for a mixture: every clip is a sample of the run, its frame embedded once by the
batch loop and its sound once by the run's clip pass (`audiocache.encode_clips`); a panel's maps are
head products of those embeddings, formed in the batch that holds the panel's clip.

A mixture's two panels are usually in different batches (and shards), so the run keeps per-panel
rows (`MixturePanels`: both queries' raw maps at the model's map size and the panel's packed
ground truth, keyed by mixture * 2 + panel). They merge exactly across batches, resumed parts and
Ray shards like every other evaluator state; `compute()` assembles the complete mixtures in list
order and runs the evaluator on them. A mixture one of whose clips was skipped (--skip-bad) or lies
beyond --limit is not scored, and the count is reported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from array_api_compat import array_namespace

from vsslrt.data.duet import DUET_KINDS, PANELS
from vsslrt.errors import InputError
from vsslrt.eval._persample import PerSampleEvaluator, PerSampleStore, config_json_of
from vsslrt.eval.multisource import SIDE, MultiSourceEvaluator
from vsslrt.eval.protocols import check_mode
from vsslrt.head import similarity_maps_multi

NAME = "multisource"
QUERIES = ("each source's own clip: its audio embedding against every panel's visual features "
           "(vsslrt's reading for audio-queried models; the summed waveform is not a query)")
CHUNK = 32  # mixtures upsampled at once in compute(): bounds the 224 x 224 working memory



class MixturePanels(PerSampleEvaluator):
    """Per-panel maps of a run's mixtures (mergeable); `compute()` scores the complete mixtures.

    Args:
        mode: "fixed" or "paper", the `MultiSourceEvaluator` mode.
        n_mixtures: The duet list's mixture count (to report how many were not scored).
    """

    _unit = "panel"

    def __init__(self, mode: str = "fixed", *, n_mixtures: int = 0) -> None:
        self.mode = check_mode(mode)
        self.n_mixtures = int(n_mixtures)
        config = {"mixture_panels": {"mode": self.mode, "n_mixtures": self.n_mixtures}}
        self._store = PerSampleStore(json.dumps(config), "MixturePanels")

    def update(self, maps: Any, gt: Any, *, mixture: Sequence[int], panel: Sequence[int]) -> MixturePanels:
        """Record panels: maps (n, Q, h, w) (query q's raw map on this panel), gt (n, 224, 224) bool."""
        mixture, panel = np.asarray(mixture, dtype=np.int64), np.asarray(panel, dtype=np.int64)
        gt = np.asarray(gt)
        if gt.shape[1:] != (SIDE, SIDE):
            raise InputError(f"MixturePanels.update: expected 'gt' of shape (n, {SIDE}, {SIDE}), got {gt.shape}.")
        ids = self._store.next_ids(len(mixture), mixture * PANELS + panel, "MixturePanels.update")
        packed = np.packbits(gt.reshape(len(gt), -1) > 0, axis=1)  # 1 bit a pixel: the state stays small
        self._store.append({"maps": maps, "gt": packed}, ids, "MixturePanels.update")
        return self

    def _complete(self, host: Mapping[str, np.ndarray]) -> np.ndarray:
        """The ids of the mixtures with both panels, ascending (the list order)."""
        full, counts = np.unique(host["sample_id"] // PANELS, return_counts=True)
        return full[counts == PANELS]

    def __len__(self) -> int:
        return int(self._complete(self._store.host()).shape[0])

    def evaluator(self) -> MultiSourceEvaluator:
        """The `MultiSourceEvaluator` fed with every complete mixture (sample id = the mixture's list row),
        CHUNK mixtures at a time (the ground truth is unpacked per chunk)."""
        ev = MultiSourceEvaluator(self.mode)
        host = self._store.host()
        full = self._complete(host)
        rows = np.flatnonzero(np.isin(host["sample_id"] // PANELS, full))  # id-sorted: panels 0, 1 adjacent
        for start in range(0, len(full), CHUNK):
            take = rows[PANELS * start:PANELS * (start + CHUNK)]
            maps = host["maps"][take]  # (2n, Q, h, w)
            n, q, h, w = maps.shape
            maps = maps.reshape(n // PANELS, PANELS, q, h, w).transpose(0, 2, 1, 3, 4)  # -> (n, Q, P, h, w)
            gt = np.unpackbits(host["gt"][take], axis=1, count=SIDE * SIDE).astype(bool)
            ev.update(maps, gt.reshape(n // PANELS, PANELS, SIDE, SIDE), sample_ids=full[start:start + CHUNK])
        return ev

    def compute(self) -> dict[str, float]:
        return self.evaluator().compute()

    def notes(self) -> dict[str, Any]:
        """What the run's metrics.json records beside the metrics."""
        scored = len(self)
        return {"queries": QUERIES, "mixtures_scored": scored, "mixtures_not_scored": max(0, self.n_mixtures - scored)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> MixturePanels:
        raw = json.loads(config_json_of(state)).get("mixture_panels")
        if raw is None:
            raise InputError("state: expected a mixture-panel state, got another evaluator's state.")
        out = cls(raw["mode"], n_mixtures=raw["n_mixtures"])
        out._store.merge_state(state)
        return out



class ShardDuets:
    """A dataset's mixtures as the batch loop reads them: which panels each sample is, which clips they query."""

    def __init__(self, dataset: Any) -> None:
        self.mixtures = np.asarray(getattr(dataset, "mixtures", ()), dtype=np.int64).reshape(-1, PANELS)
        self.panels_of: dict[int, list[tuple[int, int]]] = {}
        for m, clips in enumerate(self.mixtures):
            for p, clip in enumerate(clips):
                self.panels_of.setdefault(int(clip), []).append((m, p))

    def query_clips(self, indices: Sequence[int]) -> set[int]:
        """Every clip whose audio the panels among `indices` are queried with (themselves and partners)."""
        return {int(c) for i in indices for m, _ in self.panels_of.get(int(i), ()) for c in self.mixtures[m]}

    def update(self, panels: MixturePanels, idx: np.ndarray, visual: Any, gt: Any, query_audio: Mapping[int, Any],
               head: Any) -> None:
        """Record the panels of one batch: rows `idx` (dataset indices), their visual embeddings and GT.

        A panel whose query clip has no embedding (skipped with --skip-bad) is left out: its mixture is
        then not scored.
        """
        rows, mix, pan = [], [], []
        for row, i in enumerate(np.asarray(idx).tolist()):
            for m, p in self.panels_of.get(int(i), ()):
                if all(int(c) in query_audio for c in self.mixtures[m]):
                    rows.append(row)
                    mix.append(m)
                    pan.append(p)
        if not rows:
            return
        xp = array_namespace(visual)
        take = xp.asarray(np.asarray(rows, dtype=np.int64))
        # One head product per query: query q's clip audio against the panels' visual features.
        audios = [xp.stack([query_audio[int(self.mixtures[m, q])] for m in mix]) for q in range(PANELS)]
        maps = similarity_maps_multi(xp.take(visual, take, axis=0), audios, head)  # (Q, n, h, w)
        panels.update(xp.permute_dims(maps, (1, 0, 2, 3)), np.asarray(gt)[np.asarray(rows)], mixture=mix, panel=pan)


def prepare_duets(dataset: Any, skip_bad: bool) -> Any:
    """Before validation: with --skip-bad, duet rows naming clips the folder lacks are left out (listed as
    warnings); a duet dataset left with no mixture is refused."""
    if skip_bad and getattr(dataset, "unknown_clip_rows", ()):
        dataset = dataset.without_unknown_clips()
    errors = any(p.severity == "error" for p in getattr(dataset, "problems", ()))
    if getattr(dataset, "kind", None) in DUET_KINDS and not dataset.mixtures and not errors:  # errors: listed later
        raise InputError(f"{dataset.sources.get('duet_list', dataset.root)}: expected at least one mixture whose "
                         "clips the folder has, got none.", hint="check the list's clip ids against the data folder")
    return dataset
