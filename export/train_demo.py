"""Train the two demo models on the synthetic training split, export them, and measure them.

* ``demo-pos``: positives only, EZ-VSL's multiple-instance contrastive objective: the score of an
  (image, audio) pair is the maximum over locations of the cosine between the visual feature map
  and the audio embedding; InfoNCE over the batch in both directions (temperature `tau`).
* ``demo-san``: the same, plus silence and noise as negatives (SSL-SaN, protocol section 8): their
  embeddings are extra negative columns in the image->audio softmax, and a hinge pushes their
  maximum cosine over every location of every image below `margin`.

Training is deterministic for a given seed, data seed and thread count (``torch.manual_seed``,
``torch.use_deterministic_algorithms``, NumPy generators seeded from the seed, 2 threads by default).
The script writes ``<out>/<name>/`` (ONNX graphs, ``weights.pt``, ``manifest.json``,
``training.json``) and ``<out>/SHA256SUMS``; then it measures the quality floors on the synthetic
test split with ONNX Runtime (``--evaluate``).

Usage::

    python -m vsslrt.export.train_demo --model both            # train, export, evaluate (defaults)
    python -m vsslrt.export.train_demo --evaluate-only         # re-measure the shipped models

The evaluation (`evaluate_maps`) is the project's evaluator (`vsslrt.eval`, fixed protocol) on the
raw maps, bilinearly (align-corners) upsampled to 224 x 224: at each model's universal threshold t*
that maximises F = 2 a b / (a + b), with a = 100 x mean IoU of the positive maps and b = mean over
silence, noise and offscreen of 100 - pIA (docs/metrics.md, `f/pos_neg`), it reports the mean IoU,
the pIA of each negative, the median map maximum of each condition, and how often the positive
map's peak lies inside the target box.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vsslrt.data import synth
from vsslrt.eval.keys import CONDITIONS, NEGATIVES
from vsslrt.models import DEMO_ASSETS
from vsslrt.data.frontends import audio_input, silence_input, spectrogram_inputs
from vsslrt.data.images import load_images, normalize_imagenet
from vsslrt.data.negatives import noise_signal
from vsslrt.data.records import boxes_from_normalised
from vsslrt.eval.calibration import sweep_curves, threshold_max_f
from vsslrt.eval.interp import upsample
from vsslrt.export.demo_model import DEMO_HEAD, build_demo_model, frontend_dict
from vsslrt.export.pipeline import ort_session
from vsslrt.head import similarity_maps_multi
from vsslrt.manifest import Manifest
from vsslrt.models import Threshold

DEFAULT_OUT = DEMO_ASSETS
HASHES_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a demo model's weights (recorded in training.json).

    Attributes:
        name: "demo-pos" or "demo-san".
        seed: torch and batch-sampling seed.
        data_seed: seed of the synthetic training split.
        train_records: records of the training split (two per scene).
        steps: optimisation steps.
        batch: images per step (distinct scenes, one random target each).
        lr: peak AdamW learning rate (linear warm-up over 5% of the steps, cosine decay to 0).
        weight_decay: AdamW weight decay.
        tau: softmax temperature of the contrastive objective.
        noise_clips: noise negatives per step (demo-san), one of them N(0, 1) as the benchmark draws it.
        margin: demo-san hinge: cosines of silence/noise above it are penalised.
        hinge_weight: weight of the hinge term.
        threads: torch intra-op threads.
    """

    name: str
    seed: int = 0
    data_seed: int = synth.DEFAULT_SEED
    train_records: int = synth.DEFAULT_TRAIN_RECORDS
    steps: int = 400
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    tau: float = 0.07
    noise_clips: int = 3
    margin: float = -0.9
    hinge_weight: float = 3.0
    threads: int = 2

    @property
    def uses_negatives(self) -> bool:
        return self.name == "demo-san"


@dataclass
class TrainResult:
    config: TrainConfig
    wall_seconds: float
    data_seconds: float
    losses: list[float] = field(default_factory=list)


# --------------------------------------------------------------------------------------- data


@dataclass
class TrainingSet:
    """The training split in memory: uint8 images per scene, int16 clips per record."""

    images: np.ndarray  # (S, 224, 224, 3) uint8
    waves: np.ndarray  # (R, 16000) int16
    record_scene: np.ndarray  # (R,) scene row of each record
    scene_records: np.ndarray  # (S, 2) record rows of each scene


def load_training_set(data_seed: int, n_records: int) -> TrainingSet:
    """The cached training split (generated on first use), decoded into memory."""
    import soundfile
    from PIL import Image

    folder = synth.ensure_split("train", data_seed, n_records)
    records = synth.read_manifest(folder)
    scene_row: dict[str, int] = {}
    images, waves, record_scene = [], [], []
    pairs: list[list[int]] = []
    for r, rec in enumerate(records):
        if rec["image"] not in scene_row:
            scene_row[rec["image"]] = len(images)
            with Image.open(folder / rec["image"]) as img:
                images.append(np.asarray(img.convert("RGB")))
            pairs.append([])
        row = scene_row[rec["image"]]
        pairs[row].append(r)
        wave, _ = soundfile.read(folder / rec["audio"], dtype="int16")
        waves.append(wave)
        record_scene.append(row)
    return TrainingSet(np.stack(images), np.stack(waves), np.asarray(record_scene), np.asarray(pairs))


def image_inputs(rgb: np.ndarray) -> np.ndarray:
    """(B, 224, 224, 3) uint8 -> (B, 3, 224, 224) float32 ImageNet-normalised (the benchmark's images)."""

    x = np.ascontiguousarray(rgb.transpose(0, 3, 1, 2)).astype(np.float32) / np.float32(255.0)
    return normalize_imagenet(x)


def audio_inputs(waves: np.ndarray) -> np.ndarray:
    """(B, 16000) int16 or float clips -> (B, 1, 257, 97) float32 front-end inputs."""
    x = np.asarray(waves)
    if x.dtype == np.int16:
        x = x.astype(np.float64) / 32768.0  # libsndfile's PCM-16 scale, as the benchmark reads wavs
    return synth.demo_audio_inputs(x)


def negative_waves(rng: np.random.Generator, noise_clips: int) -> np.ndarray:
    """Silence and `noise_clips` Gaussian noise clips: one N(0, 1) (the benchmark's noise), others quieter."""
    out = np.zeros((1 + noise_clips, synth.CLIP_SAMPLES))
    for k in range(noise_clips):
        std = 1.0 if k == 0 else 10 ** rng.uniform(-2.5, 0.0)
        out[1 + k] = std * rng.standard_normal(synth.CLIP_SAMPLES)
    return out


# --------------------------------------------------------------------------------------- training


def train(config: TrainConfig, data: TrainingSet | None = None, *, log=None):
    """Train one demo model; returns (model, TrainResult).

    Args:
        config: the training configuration.
        data: the loaded training split (loaded here when None; its time is reported apart).
        log: optional callable(str) for progress lines.
    """
    import torch
    from torch.nn import functional as F


    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    t0 = time.perf_counter()
    if data is None:
        data = load_training_set(config.data_seed, config.train_records)
    data_seconds = time.perf_counter() - t0

    start = time.perf_counter()
    model = build_demo_model(config.name, seed=config.seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warmup = max(1, config.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return config.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, config.steps - warmup)
        return config.lr * 0.5 * (1 + np.cos(np.pi * progress))

    rng = np.random.default_rng([config.seed, 11])
    n_scenes = len(data.images)
    targets = torch.arange(config.batch)
    losses = []
    for step in range(config.steps):
        scenes = rng.choice(n_scenes, size=config.batch, replace=False)
        records = data.scene_records[scenes, rng.integers(0, 2, size=config.batch)]
        rgb = data.images[scenes]
        flip = rng.random(config.batch) < 0.5  # the objective is location-free, so flips are free data
        rgb = np.where(flip[:, None, None, None], rgb[:, :, ::-1], rgb)
        images = torch.from_numpy(image_inputs(rgb))
        waves = data.waves[records].astype(np.float64) / 32768.0
        if config.uses_negatives:
            waves = np.concatenate([waves, negative_waves(rng, config.noise_clips)])
        audio = torch.from_numpy(audio_inputs(waves))

        visual = model.embed_visual(images).flatten(2)  # (B, C, hw)
        embed = model.embed_audio(audio)  # (B [+ 1 + noise], C)
        cos = torch.einsum("ich,jc->ijh", visual, embed)  # (B, A, hw)
        score = cos.amax(dim=2)  # multiple-instance: the best location
        pos = score[:, : config.batch]
        loss = 0.5 * (F.cross_entropy(pos / config.tau, targets) + F.cross_entropy(pos.T / config.tau, targets))
        if config.uses_negatives:
            # Extra negative columns for image->audio, and a hinge on every image's best match.
            neg = score[:, config.batch :]
            loss = 0.5 * (F.cross_entropy(score / config.tau, targets)
                          + F.cross_entropy(pos.T / config.tau, targets))
            loss = loss + config.hinge_weight * F.relu(neg - config.margin).mean()
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if log is not None and (step % 25 == 0 or step == config.steps - 1):
            log(f"{config.name} step {step + 1}/{config.steps} loss {np.mean(losses[-25:]):.4f} "
                f"({time.perf_counter() - start:.0f} s)")
    model.eval()
    return model, TrainResult(config, time.perf_counter() - start, data_seconds, losses)


# --------------------------------------------------------------------------------------- evaluation


def box_masks(boxes: np.ndarray, size: int = 224) -> np.ndarray:
    """(N, 4) pixel boxes (x1, y1, x2, y2) -> (N, size, size) bool ground-truth masks."""
    gt = np.zeros((len(boxes), size, size), dtype=bool)
    for i, box in enumerate(boxes):
        x1, y1, x2, y2 = (int(v) for v in box)
        gt[i, y1:y2, x1:x2] = True
    return gt


def evaluate_maps(pos: np.ndarray, silence: np.ndarray, noise: np.ndarray, offscreen: np.ndarray,
                  boxes: np.ndarray, n_thresholds: int = 401) -> dict:
    """The demo quality figures of raw (N, h, w) maps against (N, 4) pixel boxes (x1, y1, x2, y2).

    The figures come from the project's evaluator (`vsslrt.eval`, fixed protocol, bilinear
    align-corners upsampling, strict `>`), given `n_thresholds` candidate thresholds evenly spaced
    over the maps' range: t* is its F-maximising candidate (`threshold_max_f`, F = 2ab / (a + b)
    as in the module docstring), and the IoU and pIAs are its sweep at t*.

    Returns:
        A dict: threshold, f, miou (mean IoU, 0-1), pia_<neg> (0-1), median_max_<cond>,
        peak_in_box (0-1), box_fraction (mean box area / image: the peak's chance level).
    """
    # lazy: the evaluator is only needed when measuring, not to train or export
    from vsslrt.eval import Evaluator

    n = len(pos)
    conds = {"pos": pos, "silence": silence, "noise": noise, "offscreen": offscreen}
    lo = min(float(m.min()) for m in conds.values())
    hi = max(float(m.max()) for m in conds.values())
    grid = np.linspace(lo, hi, n_thresholds)
    gt = box_masks(boxes)
    evaluator = Evaluator("fixed", sweep=grid)
    chunk = 64
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        evaluator.update(*(m[rows] for m in conds.values()), gt[rows], sample_ids=np.arange(rows.start, rows.stop))
    curves = sweep_curves(evaluator)
    best = int(np.flatnonzero(curves["threshold"] == threshold_max_f(evaluator).value)[0])
    metrics = evaluator.compute()
    scalars = evaluator.per_sample()  # per-sample IoU and pIAs at every candidate, in record order
    # Where the positive map peaks (after the evaluator's upsampling): inside the target box or not.
    peak_in = np.concatenate([
        gt[start:start + chunk].reshape(-1, gt.shape[1] * gt.shape[2])[
            np.arange(min(chunk, n - start)), np.argmax(upsample(pos[start:start + chunk], "bilinear", xp=np,
                                                                 dtype=np.float32), axis=1)]
        for start in range(0, n, chunk)
    ])
    out = {
        "n_records": int(n),
        "threshold": float(grid[best]),
        "f": float(curves["f_pos_neg"][best]),
        "miou": float(scalars["sweep_iou"].mean(axis=0)[best]),
        "peak_in_box": float(peak_in.mean()),
        "box_fraction": float(gt.reshape(n, -1).mean(axis=1).mean()),
    }
    for j, c in enumerate(NEGATIVES):
        out[f"pia_{c}"] = float(scalars["sweep_pia"][:, j, best].mean())
    for c in conds:
        out[f"median_max_{c}"] = metrics[f"max/{c}/median"]
    return out


@dataclass
class TestBatch:
    """Model inputs of test records for the four audio conditions (the fixed protocol's negatives)."""

    images: np.ndarray  # (S, 3, 224, 224) per scene
    record_image: np.ndarray  # (N,) scene row of each record
    positive: np.ndarray  # (N, 1, 257, 97)
    silence: np.ndarray  # (1, 1, 257, 97)
    noise: np.ndarray  # (N, 1, 257, 97)
    offscreen: np.ndarray  # (N, 1, 257, 97)
    boxes: np.ndarray  # (N, 4) pixel boxes


def load_test_batch(n_records: int = synth.DEFAULT_TEST_RECORDS, seed: int = synth.DEFAULT_SEED,
                    noise_seed: int = 0) -> TestBatch:
    """Inputs of the first `n_records` records of the (cached) synthetic test split.

    Images and clips are read from the split's files with the project's front-ends; noise is the
    per-sample N(0, 1) of `vsslrt.data.negatives`; offscreen clips are the records' own "offscreen".
    """

    folder = synth.ensure_split("test", seed, max(n_records, synth.DEFAULT_TEST_RECORDS))
    records = synth.read_manifest(folder)[:n_records]
    spec = synth.DEMO_FRONTEND
    image_paths: list[str] = []
    record_image = []
    for rec in records:
        if rec["image"] not in image_paths:
            image_paths.append(rec["image"])
        record_image.append(image_paths.index(rec["image"]))
    noise = spectrogram_inputs(
        [noise_signal(spec, run_seed=noise_seed, repetition=0, index=i) for i in range(len(records))], spec
    )
    return TestBatch(
        images=load_images([folder / p for p in image_paths]),
        record_image=np.asarray(record_image),
        positive=np.stack([audio_input(folder / r["audio"], spec) for r in records]),
        silence=silence_input(spec)[None],
        noise=noise,
        offscreen=np.stack([audio_input(folder / r["offscreen"], spec) for r in records]),
        boxes=np.concatenate([boxes_from_normalised(np.asarray(r["boxes"])) for r in records]),
    )


def onnx_maps(folder: str | Path, batch: TestBatch, threads: int = 2) -> dict[str, np.ndarray]:
    """Raw maps of the four conditions from a demo folder's split graphs (ONNX Runtime, CPU)."""

    folder = Path(folder)
    visual_s = ort_session(folder / "visual.onnx", threads)
    audio_s = ort_session(folder / "audio.onnx", threads)

    def run(session, name, x, size=64):
        return np.concatenate([session.run(None, {name: x[i:i + size]})[0] for i in range(0, len(x), size)])

    visual = run(visual_s, "image", batch.images)[batch.record_image]
    audios = [run(audio_s, "audio", a) for a in (batch.positive, batch.silence, batch.noise, batch.offscreen)]
    maps = np.asarray(similarity_maps_multi(visual, audios, DEMO_HEAD))
    return dict(zip(CONDITIONS, maps))


def torch_maps(model, batch: TestBatch) -> dict[str, np.ndarray]:
    """The same maps from a PyTorch model (for quick checks during development)."""
    import torch


    with torch.no_grad():
        visual = torch.cat([model.embed_visual(torch.from_numpy(batch.images[i:i + 64]))
                            for i in range(0, len(batch.images), 64)])[torch.from_numpy(batch.record_image)]
        out = {}
        for cond, x in (("pos", batch.positive), ("silence", batch.silence), ("noise", batch.noise),
                        ("offscreen", batch.offscreen)):
            a = model.embed_audio(torch.from_numpy(x)).expand(len(visual), -1)
            out[cond] = (torch.einsum("nchw,nc->nhw", visual, a) * DEMO_HEAD.scale + DEMO_HEAD.offset).numpy()
    return out


def evaluate(maps: dict[str, np.ndarray], batch: TestBatch) -> dict:
    return evaluate_maps(maps["pos"], maps["silence"], maps["noise"], maps["offscreen"], batch.boxes)


# --------------------------------------------------------------------------------------- files


def write_hashes(out: Path) -> Path:
    """`SHA256SUMS` over every file of the demo folders (sha256sum's format, sorted paths)."""
    lines = []
    for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name != HASHES_FILE):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(out).as_posix()}")
    target = out / HASHES_FILE
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def record_universal_threshold(folder: Path, metrics: dict) -> Path:
    """Record the F-maximising threshold t* of `evaluate_maps` as the manifest's universal threshold
    ``maxf``, so that `vsslrt bench` reports each demo at its own t* (not at a fixed 0.5)."""

    manifest = Manifest.read(folder / "manifest.json")
    provenance = (f"F-maximising threshold on the synthetic test split ({metrics['n_records']} records, fixed "
                  "protocol, in-sample), measured by export/train_demo.py evaluate_maps")
    manifest.thresholds["maxf"] = Threshold(value=float(metrics["threshold"]), provenance=provenance)
    return manifest.write(folder)


def write_training_record(folder: Path, result: TrainResult, command: str, parameters: int,
                          metrics: dict | None) -> Path:
    """`training.json`: how the weights were made, and what they measured."""
    import torch


    record = {
        "model": result.config.name,
        "command": command,
        "config": asdict(result.config),
        "seed": result.config.seed,
        "data": {
            "dataset": "vsslrt-synth",
            "split": "train",
            "generator_version": synth.GENERATOR_VERSION,
            "data_seed": result.config.data_seed,
            "records": result.config.train_records,
        },
        "steps": result.config.steps,
        "wall_seconds": round(result.wall_seconds, 1),
        # Time train() spent reading the cached split (0 when the caller passed it in: the script
        # loads it once for both models).
        "data_load_seconds": round(result.data_seconds, 1),
        "final_loss": float(np.mean(result.losses[-25:])) if result.losses else None,
        "loss_every_25_steps": [round(float(np.mean(result.losses[i:i + 25])), 4) for i in range(0, len(result.losses), 25)],
        "torch": torch.__version__,
        "threads": result.config.threads,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "frontend": frontend_dict(),
        "parameters": parameters,
        "test_metrics": metrics,
    }
    target = folder / "training.json"
    target.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return target


# --------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("demo-pos", "demo-san", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-seed", type=int, default=synth.DEFAULT_SEED)
    parser.add_argument("--train-records", type=int, default=synth.DEFAULT_TRAIN_RECORDS)
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--batch", type=int, default=TrainConfig.batch)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--tau", type=float, default=TrainConfig.tau)
    parser.add_argument("--margin", type=float, default=TrainConfig.margin)
    parser.add_argument("--hinge-weight", type=float, default=TrainConfig.hinge_weight)
    parser.add_argument("--threads", type=int, default=TrainConfig.threads)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the demo models (default: the package's)")
    parser.add_argument("--eval-records", type=int, default=synth.DEFAULT_TEST_RECORDS,
                        help="test records for the quality figures (0: skip)")
    parser.add_argument("--no-export", action="store_true", help="train and evaluate in PyTorch only")
    parser.add_argument("--evaluate-only", action="store_true", help="measure the models already in --out")
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    names = ("demo-pos", "demo-san") if args.model == "both" else (args.model,)
    batch = load_test_batch(args.eval_records) if args.eval_records else None
    if args.evaluate_only:
        for name in names:
            metrics = evaluate(onnx_maps(args.out / name, batch, args.threads), batch)
            print(json.dumps({"model": name, **metrics}))
        return 0

    import torch

    command = "python -m vsslrt.export.train_demo " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    data = load_training_set(args.data_seed, args.train_records)
    for name in names:
        config = TrainConfig(name=name, seed=args.seed, data_seed=args.data_seed, train_records=args.train_records,
                             steps=args.steps, batch=args.batch, lr=args.lr, tau=args.tau, margin=args.margin,
                             hinge_weight=args.hinge_weight, threads=args.threads)
        model, result = train(config, data, log=log)
        log(f"{name}: trained {config.steps} steps in {result.wall_seconds:.0f} s")
        if args.no_export:
            metrics = evaluate(torch_maps(model, batch), batch) if batch is not None else None
        else:
            from vsslrt.export.demo_model import count_parameters, export_demo  # lazy: torch loads only to train or export

            folder = args.out / name
            parity = load_test_batch(8) if batch is None else batch
            audios = np.concatenate([parity.positive[:4], np.repeat(parity.silence, 2, 0), parity.noise[:2]])
            images = parity.images[parity.record_image[:8]]
            export_demo(model, folder, images=images, audios=audios, threads=args.threads)
            metrics = evaluate(onnx_maps(folder, batch, args.threads), batch) if batch is not None else None
            write_training_record(folder, result, command, count_parameters(model), metrics)
            if metrics is not None:
                record_universal_threshold(folder, metrics)
        print(json.dumps({"model": name, "train_seconds": round(result.wall_seconds, 1), **(metrics or {})}), flush=True)
        del model
        torch.set_num_threads(args.threads)
    if not args.no_export:
        write_hashes(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
