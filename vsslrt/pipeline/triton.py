"""A Triton Inference Server model repository from an engine folder and its calibration (`vsslrt triton`).

    REPO/
      <name>/             ensemble: IMAGE, AUDIO (encoded files, TYPE_STRING) -> SCORE, SOUNDING,
                          RAW_MAP, MASK, RESULT (the `vsslrt localize` JSON of the pair)
      <name>_frontend/    Python backend: decode + the image and audio front-ends
      <name>_visual/      onnxruntime_onnx (or tensorrt_plan when the folder has TensorRT plans)
      <name>_audio/       the same, for the audio encoder
      <name>_head/        Python backend: similarity head + calibrated thresholds, gate, boxes

Every model batches dynamically (`max_batch_size`, `dynamic_batching`). The two Python-backend
models are thin: their `model.py` (TritonPythonModel) reads its settings from `vsslrt_model.json`
beside it and calls `FrontendStep` / `HeadStep` of this module, which call the same functions as
`vsslrt localize` (`frontend_rows`, `similarity_maps`, `decide`): vsslrt must be installed in the
Python environment of Triton's Python backend. Those steps are plain callables on NumPy arrays, so
they are tested here without Triton.

Configs are written as protobuf text (`config.pbtxt`) by plain formatting; their schema is
Triton's `ModelConfig` (tests parse every file with `tritonclient.grpc.model_config_pb2`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.errors import InputError
from vsslrt.data import get_frontend
from vsslrt.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from vsslrt.head import similarity_maps
from vsslrt.manifest import Manifest
from vsslrt.models import MapHead
from vsslrt.pipeline.calibrate import Calibration, as_calibration
from vsslrt.pipeline.localize import LocalizationResult, check_calibration_matches, decide, frontend_rows

SETTINGS_FILE = "vsslrt_model.json"
VERSION = "1"
_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
           "bool": "TYPE_BOOL", "bytes": "TYPE_STRING"}

MODEL_PY = '''"""Triton Python-backend model: vsslrt's {role} step (written by `vsslrt triton`; see vsslrt.pipeline.triton)."""

from pathlib import Path

import triton_python_backend_utils as pb_utils

from vsslrt.pipeline.triton import {step}


class TritonPythonModel:
    def initialize(self, args):
        folder = Path(args["model_repository"]) / str(args["model_version"])
        self.step = {step}.from_file(folder / "{settings}")

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                inputs = {{name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                          for name in self.step.inputs}}
                outputs = self.step(inputs)
                tensors = [pb_utils.Tensor(name, value) for name, value in outputs.items()]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as exc:  # one bad request fails alone, with vsslrt's one-line message
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc))))
        return responses
'''


# ------------------------------------------------------------------------------------------------
# The Python-backend steps (plain callables: dict of NumPy arrays -> dict of NumPy arrays)


def _bytes_of(value: Any) -> bytes:
    return value if isinstance(value, bytes) else bytes(value) if isinstance(value, (bytearray, memoryview)) \
        else str(value).encode()


@dataclass
class FrontendStep:
    """IMAGE, AUDIO (B, 1) encoded files -> image (B, 3, 224, 224), audio (B, 1, F, T), IMAGE_SIZE (B, 2).

    Decoding follows the service (`vsslrt.pipeline.serve.inputs`, the benchmark's readers from memory,
    with its limits); the front-ends are `vsslrt.pipeline.localize.frontend_rows`.
    """

    frontend: str
    protocol: str = "fixed"
    limits: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ("IMAGE", "AUDIO")

    @classmethod
    def from_file(cls, path: str | Path) -> FrontendStep:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(frontend=doc["frontend"], protocol=doc.get("protocol", "fixed"), limits=doc.get("limits", {}))

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from vsslrt.pipeline.serve.inputs import decode_audio_bytes, decode_image_bytes  # lazy: needs the serve extra (FastAPI, uvicorn)
        from vsslrt.pipeline.serve.limits import RequestError, ServeLimits  # lazy: needs the serve extra (FastAPI, uvicorn)

        limits = ServeLimits(**self.limits)
        spec = get_frontend(self.frontend)
        images, clips = (np.asarray(inputs[k], dtype=object).reshape(-1) for k in self.inputs)
        if images.shape != clips.shape:
            raise InputError(f"IMAGE, AUDIO: expected one audio clip per image, got {images.size} and {clips.size}.")
        rows_i, rows_a, sizes = [], [], []
        for image, clip in zip(images, clips):
            try:
                rgb = decode_image_bytes(_bytes_of(image), limits)
                audio = decode_audio_bytes(_bytes_of(clip), limits)
            except RequestError as exc:
                raise InputError(exc.message) from None
            image_row, audio_row, _ = frontend_rows(rgb, audio, spec, self.protocol)
            rows_i.append(image_row)
            rows_a.append(audio_row)
            sizes.append((rgb.shape[1], rgb.shape[0]))
        return {"image": np.stack(rows_i).astype(np.float32), "audio": np.stack(rows_a).astype(np.float32),
                "IMAGE_SIZE": np.asarray(sizes, dtype=np.int32)}


@dataclass
class HeadStep:
    """VISUAL (B, K, C, h, w), AUDIO_EMBEDDING (B, K, C), IMAGE_SIZE (B, 2) -> the calibrated decision.

    Outputs: SCORE (B, 1) float32, SOUNDING (B, 1) bool, RAW_MAP (B, h, w) float32, MASK (B, H, W)
    bool, RESULT (B, 1) JSON bytes with the fields of `LocalizationResult.to_json` but the pair's
    name, files and timings.
    """

    calibration: dict[str, Any]
    head: dict[str, Any]
    map_size: str = "224"
    gate: bool = True
    inputs: tuple[str, ...] = ("VISUAL", "AUDIO_EMBEDDING", "IMAGE_SIZE")

    @classmethod
    def from_file(cls, path: str | Path) -> HeadStep:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(calibration=doc["calibration"], head=doc["head"], map_size=doc.get("map_size", "224"),
                   gate=bool(doc.get("gate", True)))

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:

        cal = Calibration.from_dict(self.calibration, origin="the head model's calibration")
        visual, audio, sizes = (np.asarray(inputs[k]) for k in self.inputs)
        raw = np.asarray(similarity_maps(visual.astype(np.float32), audio.astype(np.float32), MapHead(**self.head)),
                         dtype=np.float32)
        sizes = sizes.reshape(-1, 2)
        scores, sounding, masks, results = [], [], [], []
        for row in range(raw.shape[0]):
            width, height = int(sizes[row, 0]), int(sizes[row, 1])
            full, mask, score, heard, boxes = decide(raw[row], (width, height), cal, map_size=self.map_size,
                                                     gate=self.gate)
            doc = LocalizationResult(
                name="", image=Path(""), audio=Path(""), image_size=(width, height), raw_map=raw[row], map=full,
                mask=mask, score=score, sounding=heard, detection_threshold=cal.detection_threshold,
                localization_threshold=cal.localization_threshold, boxes=boxes, timing_ms={}).to_json()
            for key in ("name", "image", "audio", "timing_ms"):
                doc.pop(key)
            scores.append(score)
            sounding.append(heard)
            masks.append(mask)
            results.append(json.dumps(doc).encode())
        return {"SCORE": np.asarray(scores, np.float32).reshape(-1, 1),
                "SOUNDING": np.asarray(sounding, bool).reshape(-1, 1),
                "RAW_MAP": raw, "MASK": np.stack(masks) if masks else np.zeros((0, 224, 224), bool),
                "RESULT": np.asarray(results, dtype=object).reshape(-1, 1)}


# ------------------------------------------------------------------------------------------------
# Writing the repository


@dataclass(frozen=True)
class TritonSettings:
    """Options of the repository.

    Attributes:
        name: The ensemble's name (the other models are <name>_frontend, _visual, _audio, _head).
        max_batch: max_batch_size of every model.
        max_delay_us: dynamic_batching.max_queue_delay_microseconds.
        instances: Instances of each model (instance_group count).
        precision: Graph precision; defaults to the folder's built precision, else fp32.
        map_size: "224" or "image" (as `vsslrt localize --map-size`).
        gate: As `vsslrt localize --gate`.
        limits: The front-end's decoding limits (`ServeLimits` fields).
    """

    name: str = "vsslrt"
    max_batch: int = 8
    max_delay_us: int = 2000
    instances: int = 1
    precision: str | None = None
    map_size: str = "224"
    gate: bool = True
    limits: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import re

        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]{0,63}", self.name or ""):
            raise InputError(f"triton: expected --name to be a model name (letters, digits, _ and -), got {self.name!r}.")
        for key in ("max_batch", "instances"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"triton: expected --{key.replace('_', '-')} to be a positive integer, got {value!r}.")
        if isinstance(self.max_delay_us, bool) or not isinstance(self.max_delay_us, int) or self.max_delay_us < 0:
            raise InputError(f"triton: expected --max-delay-us to be a non-negative integer, got {self.max_delay_us!r}.")
        if str(self.map_size) not in ("224", "image"):
            raise InputError(f"triton: expected --map-size to be 224 or image, got {self.map_size!r}.")


@dataclass(frozen=True)
class TritonRepository:
    """What was written: the repository folder and its models (name -> folder)."""

    path: Path
    ensemble: str
    models: dict[str, Path]
    platform: str


def _dims(shape: Any) -> list[int]:
    return [int(d) if isinstance(d, int) else -1 for d in shape]


def _tensor(name: str, dtype: str, dims: list[int]) -> str:
    return f'  {{ name: "{name}" data_type: {dtype} dims: [ {", ".join(str(d) for d in dims)} ] }}'


def _io(kind: str, tensors: list[tuple[str, str, list[int]]]) -> str:
    return f"{kind} [\n" + ",\n".join(_tensor(*t) for t in tensors) + "\n]\n"


def _config(name: str, *, backend: str | None = None, platform: str | None = None, settings: TritonSettings,
            inputs: list[tuple[str, str, list[int]]], outputs: list[tuple[str, str, list[int]]],
            kind: str = "KIND_CPU", batching: bool = True) -> str:
    text = f'name: "{name}"\n'
    text += f'backend: "{backend}"\n' if backend else f'platform: "{platform}"\n'
    text += f"max_batch_size: {settings.max_batch}\n"
    text += _io("input", inputs) + _io("output", outputs)
    if batching:
        text += ("dynamic_batching {\n"
                 f"  preferred_batch_size: [ {settings.max_batch} ]\n"
                 f"  max_queue_delay_microseconds: {settings.max_delay_us}\n}}\n")
        text += f"instance_group [ {{ count: {settings.instances} kind: {kind} }} ]\n"
    return text


def build_triton_repository(engine_dir: str | Path, calibration: Any, out: str | Path,
                            settings: TritonSettings | None = None, *, force: bool = False) -> TritonRepository:
    """Write the model repository (see the module docstring).

    Args:
        engine_dir: The engine folder.
        calibration: Its calibration (path, dict or `Calibration`), checked against the folder.
        out: The repository folder (new, or empty, or `force`).
        settings: Options. Defaults to `TritonSettings()`.

    Raises:
        InputError: A bad folder, calibration or option, or a non-empty `out` without `force`.
        ManifestMismatchError: The calibration is of another engine, or a file changed since export.
    """
    from vsslrt.pipeline.serve.limits import ServeLimits  # lazy: needs the serve extra (FastAPI, uvicorn)

    settings = settings or TritonSettings()
    engine_dir, out = Path(engine_dir), Path(out)
    cal = as_calibration(calibration)
    check_calibration_matches(engine_dir, cal)
    limits = ServeLimits(**settings.limits)  # validated here, not at Triton's start
    manifest = Manifest.read(engine_dir)
    manifest.verify_files(engine_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        raise InputError(f"--out {out}: expected a new or empty folder for the model repository, got "
                         f"{'a file' if not out.is_dir() else 'a folder with files'}.",
                         hint="choose another folder, or pass --force to write over it")
    recorded = manifest.backend or {}
    precision = settings.precision or recorded.get("precision", "fp32")
    plans = recorded.get("backend") == "trt" and all(r in recorded.get("engines", {}) for r in ("visual", "audio"))
    if plans:
        profile_max = int(str(recorded.get("batch_profile", "1:1:1")).split(":")[-1])
        if settings.max_batch > profile_max:
            raise InputError(f"--max-batch {settings.max_batch}: expected at most the TensorRT profile's maximum "
                             f"({profile_max}, batch profile {recorded.get('batch_profile')}), got more.",
                             hint=f"pass --max-batch {profile_max}, or rebuild with a larger --batch profile")
    platform = "tensorrt_plan" if plans else "onnxruntime_onnx"
    n = settings.name
    names = {"ensemble": n, "frontend": f"{n}_frontend", "visual": f"{n}_visual", "audio": f"{n}_audio",
             "head": f"{n}_head"}

    def spec(tensor: str) -> tuple[str, list[int]]:
        table = {**manifest.inputs, **manifest.outputs}
        if tensor not in table:
            raise InputError(f"{engine_dir}/manifest.json: expected a shape for tensor {tensor!r}, got none.")
        entry = table[tensor]
        return _DTYPES.get(entry.dtype, "TYPE_FP32"), _dims(entry.shape[1:])

    graphs = {role: manifest.graph(role, precision) for role in ("visual", "audio")}
    io = {role: (graphs[role].inputs[0], graphs[role].outputs[0]) for role in graphs}
    (v_in, v_out), (a_in, a_out) = io["visual"], io["audio"]
    image_t, audio_t = spec(v_in), spec(a_in)
    visual_t, embed_t = spec(v_out), spec(a_out)
    k, c, h, w = visual_t[1]
    mask_dims = [224, 224] if str(settings.map_size) == "224" else [-1, -1]
    size_t = ("TYPE_INT32", [2])
    configs: dict[str, str] = {}
    configs["frontend"] = _config(
        names["frontend"], backend="python", settings=settings,
        inputs=[("IMAGE", "TYPE_STRING", [1]), ("AUDIO", "TYPE_STRING", [1])],
        outputs=[("image", *image_t), ("audio", *audio_t), ("IMAGE_SIZE", *size_t)])
    for role, (tin, tout) in io.items():
        configs[role] = _config(names[role], platform=platform, settings=settings,
                                inputs=[(tin, *spec(tin))], outputs=[(tout, *spec(tout))],
                                kind="KIND_GPU" if plans else "KIND_CPU")
    head_outputs = [("SCORE", "TYPE_FP32", [1]), ("SOUNDING", "TYPE_BOOL", [1]), ("RAW_MAP", "TYPE_FP32", [h, w]),
                    ("MASK", "TYPE_BOOL", mask_dims), ("RESULT", "TYPE_STRING", [1])]
    configs["head"] = _config(
        names["head"], backend="python", settings=settings,
        inputs=[("VISUAL", *visual_t), ("AUDIO_EMBEDDING", *embed_t), ("IMAGE_SIZE", *size_t)], outputs=head_outputs)
    configs["ensemble"] = _config(
        names["ensemble"], platform="ensemble", settings=settings, batching=False,
        inputs=[("IMAGE", "TYPE_STRING", [1]), ("AUDIO", "TYPE_STRING", [1])], outputs=head_outputs)
    configs["ensemble"] += _ensemble_steps(names, io)

    models = {role: out / names[role] for role in names}
    for role, folder in models.items():
        atomic_write_text(folder / "config.pbtxt", configs[role])
        (folder / VERSION).mkdir(parents=True, exist_ok=True)
    for role in ("visual", "audio"):
        if plans:
            source = engine_dir / recorded["engines"][role]["file"]
            target = models[role] / VERSION / "model.plan"
        else:
            source = engine_dir / graphs[role].file
            target = models[role] / VERSION / "model.onnx"
        atomic_write_bytes(target, source.read_bytes())
    atomic_write_json(models["frontend"] / VERSION / SETTINGS_FILE, {
        "role": "frontend", "frontend": manifest.frontend, "protocol": cal.protocol,
        "limits": {"max_audio_seconds": limits.max_audio_seconds, "max_image_pixels": limits.max_image_pixels}})
    atomic_write_json(models["head"] / VERSION / SETTINGS_FILE, {
        "role": "head", "head": {"num_maps": manifest.head.num_maps,
                                 "scale": manifest.head.scale, "offset": manifest.head.offset},
        "calibration": cal.document, "map_size": str(settings.map_size), "gate": bool(settings.gate)})
    for role, step in (("frontend", "FrontendStep"), ("head", "HeadStep")):
        atomic_write_text(models[role] / VERSION / "model.py",
                          MODEL_PY.format(role=role, step=step, settings=SETTINGS_FILE))
    return TritonRepository(out, n, {names[r]: p for r, p in models.items()}, platform)


def _ensemble_steps(names: dict[str, str], io: dict[str, tuple[str, str]]) -> str:
    (v_in, v_out), (a_in, a_out) = io["visual"], io["audio"]

    def step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> str:
        lines = [f'    {{\n      model_name: "{model}"\n      model_version: -1']
        lines += [f'      input_map {{ key: "{key}" value: "{value}" }}' for key, value in inputs.items()]
        lines += [f'      output_map {{ key: "{key}" value: "{value}" }}' for key, value in outputs.items()]
        return "\n".join(lines) + "\n    }"

    steps = [
        step(names["frontend"], {"IMAGE": "IMAGE", "AUDIO": "AUDIO"},
             {"image": "frontend_image", "audio": "frontend_audio", "IMAGE_SIZE": "image_size"}),
        step(names["visual"], {v_in: "frontend_image"}, {v_out: "visual_embedding"}),
        step(names["audio"], {a_in: "frontend_audio"}, {a_out: "audio_embedding"}),
        step(names["head"], {"VISUAL": "visual_embedding", "AUDIO_EMBEDDING": "audio_embedding",
                             "IMAGE_SIZE": "image_size"},
             {k: k for k in ("SCORE", "SOUNDING", "RAW_MAP", "MASK", "RESULT")}),
    ]
    return "ensemble_scheduling {\n  step [\n" + ",\n".join(steps) + "\n  ]\n}\n"
