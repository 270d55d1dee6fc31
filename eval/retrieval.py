"""Cross-modal retrieval recall@K from the split encoders' embeddings (vsslrt's own definition).

No public evaluation code defines the retrieval numbers of SSLalignment or SSL-TIE
(protocols-extended.md section 5), so this metric is vsslrt's, written down in docs/metrics.md:

* visual embedding of a sample: the visual encoder's (K, C, h, w) output max-pooled (default) or
  mean-pooled over space, each of the K maps' C-vectors L2-normalised;
* audio embedding: the audio encoder's (K, C) output, each C-vector L2-normalised;
* similarity of audio i and image j: the mean over k of the cosines, the same contraction the map
  head uses, taken after pooling;
* the gallery holds one image per group (an image queried by several clips, as in IS3, appears
  once); a query succeeds at K when fewer than K non-matching items score at least as high as its
  best match (ties count against the query).

audio->image: one query per sample, its match is its group's image. image->audio: one query per
group, its matches are every clip of the group. The state is the pooled embeddings themselves
(float32, (n, K, C) each), so merging shards is exact but the state grows with K*C per sample:
recall needs every embedding at once, unlike the per-sample scalars of the other evaluators.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from vsslrt.errors import InputError
from vsslrt.eval import _xp
from vsslrt.eval._persample import PerSampleEvaluator, PerSampleStore, config_json_of

POOLINGS = ("max", "mean")
DEFAULT_KS = (1, 5, 10)
QUERY_BLOCK = 1024  # similarity rows computed at once (bounds memory at 4 MB per 1,000 gallery items)


def pool_visual(visual: Any, pooling: str, *, xp: Any) -> Any:
    """(N, K, C, h, w) or (N, K, C) visual embeddings -> (N, K, C) float32, L2-normalised per k."""
    if visual.ndim == 5:
        flat = xp.reshape(visual, tuple(visual.shape[:3]) + (-1,))
        visual = xp.max(flat, axis=-1) if pooling == "max" else xp.mean(xp.astype(flat, xp.float32), axis=-1)
    return _normalise(visual, xp)


def _normalise(x: Any, xp: Any) -> Any:
    x = xp.astype(x, xp.float32)
    norm = xp.sqrt(xp.sum(x * x, axis=-1, keepdims=True))
    return x / xp.where(norm == 0, xp.ones_like(norm), norm)


def recall_at_k(audio: np.ndarray, visual: np.ndarray, groups: np.ndarray, ks=DEFAULT_KS) -> dict[str, float]:
    """Recall@K (x100) both ways from pooled (n, K, C) embeddings and (n,) group ids."""
    n, k_maps = audio.shape[0], audio.shape[1]
    uniq, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    n_groups = len(uniq)
    gallery_t = visual[first].reshape(n_groups, -1).astype(np.float64).T  # one image per group
    a = audio.reshape(n, -1).astype(np.float64)

    def blocks():
        for start in range(0, n, QUERY_BLOCK):  # (block, groups) similarities, mean over k of the cosines
            yield start, (a[start:start + QUERY_BLOCK] @ gallery_t) / k_maps

    best = np.full(n_groups, -np.inf)  # image -> audio: the best score among each group's own clips
    for start, scores in blocks():
        rows = np.arange(scores.shape[0])
        np.maximum.at(best, inverse[start:start + scores.shape[0]], scores[rows, inverse[start:start + scores.shape[0]]])
    ranks_a2i = np.empty(n, dtype=np.int64)
    ranks_i2a = np.zeros(n_groups, dtype=np.int64)
    for start, scores in blocks():  # the same products again (deterministic), now counted
        own = inverse[start:start + scores.shape[0]]
        rows = np.arange(scores.shape[0])
        target = scores[rows, own]
        ranks_a2i[start:start + scores.shape[0]] = np.count_nonzero(scores >= target[:, None], axis=1) - 1
        beaten = scores >= best[None, :]
        beaten[rows, own] = False  # a group's own clips are matches, not competitors
        ranks_i2a += np.count_nonzero(beaten, axis=0)
    out = {}
    for k in ks:
        out[f"retrieval/audio_to_image/recall@{k}"] = 100.0 * float(np.mean(ranks_a2i < k))
        out[f"retrieval/image_to_audio/recall@{k}"] = 100.0 * float(np.mean(ranks_i2a < k))
    out["retrieval/n_queries_audio"] = float(n)
    out["retrieval/n_gallery_images"] = float(len(uniq))
    return out


class RetrievalEvaluator(PerSampleEvaluator):
    """Collects pooled embeddings (mergeable, exact) and computes cross-modal recall@K.

    Args:
        pooling: "max" (default) or "mean" spatial pooling of the visual embedding.
        ks: the K values. Defaults to 1, 5, 10.
    """

    def __init__(self, pooling: str = "max", ks: tuple[int, ...] = DEFAULT_KS) -> None:
        if pooling not in POOLINGS:
            raise InputError(f"retrieval: expected pooling in {', '.join(POOLINGS)}, got {pooling!r}.")
        if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
            raise InputError(f"retrieval: expected positive integer K values, got {ks!r}.")
        self.pooling, self.ks = pooling, tuple(ks)
        self._store = PerSampleStore(json.dumps({"retrieval": {"pooling": pooling, "ks": list(self.ks)}}),
                                     "RetrievalEvaluator")

    def update(self, visual: Any, audio: Any, *, group: Any = None, sample_ids: Any = None) -> RetrievalEvaluator:
        """Add one batch of sounding pairs (leave non-sounding samples out).

        Args:
            visual: (N, K, C, h, w) visual embeddings (or (N, K, C) already pooled).
            audio: (N, K, C) audio embeddings of each sample's own clip.
            group: (N,) int image ids (samples sharing an image). Defaults to one image per sample.
        """
        source = "RetrievalEvaluator.update"
        xp = _xp.namespace({"visual": visual, "audio": audio, "group": group}, subject=source)
        n = int(audio.shape[0])
        if audio.ndim != 3 or visual.ndim not in (3, 5) or tuple(visual.shape[:3]) != tuple(audio.shape):
            raise InputError(f"{source}: expected visual (N, K, C, h, w) and audio (N, K, C) of the same N, K, C, "
                             f"got {tuple(visual.shape)} and {tuple(audio.shape)}.")
        ids = self._store.next_ids(n, sample_ids, source)
        groups = xp.asarray(ids) if group is None else xp.astype(group, xp.int64)
        if group is None:
            groups = -1 - groups  # never equal to a given group id
        pooled = {"visual": pool_visual(visual, self.pooling, xp=xp), "audio": _normalise(audio, xp), "group": groups}
        if not bool(xp.all(xp.isfinite(pooled["visual"]))) or not bool(xp.all(xp.isfinite(pooled["audio"]))):
            raise InputError(f"{source}: expected finite embeddings, got NaN or inf.", hint="check the encoder output")
        self._store.append(pooled, ids, source)
        return self

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RetrievalEvaluator:
        raw = json.loads(config_json_of(state)).get("retrieval")
        if raw is None:
            raise InputError("state: expected a retrieval state, got another evaluator's state.")
        ev = cls(raw["pooling"], tuple(raw["ks"]))
        ev._store.merge_state(state)
        return ev

    def compute(self) -> dict[str, float]:
        s = self._store.host()
        if s["sample_id"].shape[0] == 0:
            raise InputError("compute: expected at least one evaluated sample, got none.", hint="call update() first")
        out = recall_at_k(s["audio"], s["visual"], s["group"], self.ks)
        return {k: (math.nan if v != v else v) for k, v in out.items()}
