"""Dataset preparation: from the videos and releases a user has to the folders the adapters read.

    prepare_vggss(videos, annotations, out, ...)   VGG-SS from local VGGSound videos     (.vggss)
    prepare_flickr(release, out, ...)              Flickr-SoundNet's release layout      (.flickr)
    prepare_manifest(videos, out, ...)             any videos -> a manifest dataset      (.manifest)
    read_prepare_record(data_dir) -> dict | None   the record `vsslrt bench` fingerprints (.record)

Shared pieces: `settings` (the choices that move numbers, with the protocol's defaults), `names`
(VGGSound file names), `extract` (one clip's frame and audio, through `vsslrt.data.video`),
`driver` (parallel, resumable runs with progress), `record` (prepare.json and the report).
Importing this package loads nothing heavy; each name loads its module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "prepare_vggss": "vsslrt.data.prepare.vggss",
    "prepare_flickr": "vsslrt.data.prepare.flickr",
    "prepare_manifest": "vsslrt.data.prepare.manifest",
    "read_prepare_record": "vsslrt.data.prepare.record",
    "PrepareReport": "vsslrt.data.prepare.record",
    "MediaSettings": "vsslrt.data.prepare.settings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vsslrt.data.prepare' has no attribute {name!r}")
