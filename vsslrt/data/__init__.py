"""Data layer: dataset adapters, image and audio front-ends, negative audio, loaders.

The main entry points are importable from here; each is loaded on first use, so `import vsslrt.data`
costs nothing (no SciPy, Pillow, soundfile, PyAV or torch).

    load_dataset(kind, data_dir, ...), KINDS   vsslrt.data.datasets
    validate_dataset(dataset, ...)             vsslrt.data.validation
    probe_media(dataset) -> MediaProbe         vsslrt.data.probe
    Sample, Dataset, OffscreenClip, gt_map     vsslrt.data.records
    AudioFrontend, FRONTENDS, get_frontend,    vsslrt.data.frontends
      prepare_signal, spectrogram_inputs,
      silence_input, audio_input
    load_images, preprocess_image              vsslrt.data.images
    choose_offscreen, noise_signal             vsslrt.data.negatives
    BatchLoader, Batch                         vsslrt.data.loader
"""

from __future__ import annotations

from vsslrt.lazy import lazy_exports

_EXPORTS = {
    "load_dataset": "vsslrt.data.datasets",
    "Sample": "vsslrt.data.records",
    "Dataset": "vsslrt.data.records",
    "OffscreenClip": "vsslrt.data.records",
    "DATASET_KINDS": "vsslrt.data.datasets",
    "KINDS": "vsslrt.data.datasets",
    "gt_map": "vsslrt.data.records",
    "gt_maps": "vsslrt.data.records",
    "validate_dataset": "vsslrt.data.validation",
    "ValidationReport": "vsslrt.data.validation",
    "Problem": "vsslrt.data.problems",
    "DatasetProblemsError": "vsslrt.data.problems",
    "probe_media": "vsslrt.data.probe",
    "MediaProbe": "vsslrt.data.probe",
    "AudioFrontend": "vsslrt.data.frontends",
    "FRONTENDS": "vsslrt.data.frontends",
    "get_frontend": "vsslrt.data.frontends",
    "prepare_signal": "vsslrt.data.frontends",
    "spectrogram_inputs": "vsslrt.data.frontends",
    "silence_input": "vsslrt.data.frontends",
    "audio_input": "vsslrt.data.frontends",
    "read_audio": "vsslrt.data.audio_io",
    "load_images": "vsslrt.data.images",
    "preprocess_image": "vsslrt.data.images",
    "choose_offscreen": "vsslrt.data.negatives",
    "offscreen_plan": "vsslrt.data.negatives",
    "noise_signal": "vsslrt.data.negatives",
    "BatchLoader": "vsslrt.data.loader",
    "Batch": "vsslrt.data.loader",
    "SkippedSample": "vsslrt.data.loader",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("vsslrt.data", _EXPORTS, globals())
