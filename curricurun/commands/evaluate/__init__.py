"""``curricurun evaluate``: FID / IS / precision-recall of a generative run (or of given samples), rFID / PSNR
of a tokenizer.

Generation (``generation.py``) splits batches over processes and resumes; the metrics (``curricurun.metrics``)
run on process 0 with torch-fidelity's maths; reference statistics come from ``reference.py``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from curricurun.errors import UserError
from curricurun.setups.base import SampleOptions

KNOWN_METRICS = ("fid", "is", "prec_recall", "psnr")

# VAR's protocol: 50 images per class, cfg 1.5, top-p 0.96, top-k 900 (VAR README "Sampling & Zero-shot
# Inference"; maintainer in VAR#38). Pyramid-Flow has none to preset: its paper (arXiv 2410.05954, section 4)
# scores text-to-video samples with VBench and EvalCrafter, and its repository ships no FID sampling script.
PROTOCOLS = {"var": {"per_class": 50, "options": SampleOptions(cfg=1.5, top_k=900, top_p=0.96)}}


@dataclass
class EvaluateRequest:
    """What ``curricurun evaluate`` was asked; ``per_class``/``num_samples`` say how many images to generate."""

    checkpoint: Path | None = None
    samples: Path | None = None
    per_class: int | None = None
    num_samples: int | None = None
    metrics: tuple[str, ...] = ("fid",)
    reference: Path | None = None
    npz: Path | None = None
    feature_extractor: str = "inception"
    seed: int = 0
    batch_size: int = 50
    use_ema: bool = False
    options: SampleOptions = field(default_factory=SampleOptions)

    @classmethod
    def from_flags(cls, checkpoint, samples, num_samples, per_class, metrics: str, reference, npz,
                   feature_extractor: str, seed: int, batch_size: int, use_ema: bool,
                   options: SampleOptions) -> EvaluateRequest:  # fmt: skip
        """The request the command line asks for, its counts checked (1,000 images when no count is given)."""
        for name, value in (("--num-samples", num_samples), ("--per-class", per_class), ("--batch-size", batch_size)):
            if value is not None and value < 1:
                raise UserError(f"{name}: expected a positive integer, got {value}")
        if num_samples is not None and per_class is not None:
            raise UserError("--num-samples / --per-class: give one of them, not both")
        if per_class is None and num_samples is None:
            num_samples = 1000
        return cls(checkpoint, samples, per_class, num_samples, parse_metrics(metrics), reference, npz,
                   feature_extractor, seed, batch_size, use_ema, options)  # fmt: skip


def parse_metrics(text: str) -> tuple[str, ...]:
    names = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in KNOWN_METRICS]
    if not names or unknown:
        raise UserError(f"--metrics: expected a comma-separated subset of {','.join(KNOWN_METRICS)}, got '{text}'")
    return names


def apply_protocol(request: EvaluateRequest, protocol: str | None) -> EvaluateRequest:
    if protocol is None:
        return request
    if protocol not in PROTOCOLS:
        raise UserError(f"--protocol: expected one of {', '.join(PROTOCOLS)}, got '{protocol}'")
    preset = PROTOCOLS[protocol]
    return replace(request, per_class=preset["per_class"], num_samples=None, options=preset["options"])


def _run_dir(checkpoint: Path) -> Path:
    return checkpoint if (checkpoint / "recipe.resolved.yaml").is_file() else checkpoint.parent


def _output_npz(request: EvaluateRequest, tokenizer: bool) -> Path:
    if request.npz is not None:
        return request.npz
    if request.samples is not None:
        return request.samples
    return _run_dir(request.checkpoint) / "evaluate" / f"{'reconstructions' if tokenizer else 'samples'}.npz"


def generate_samples(recipe, request: EvaluateRequest, out_npz: Path, report) -> np.ndarray | None:
    """Every process makes its batches; process 0 gathers them into ``out_npz`` (others return None)."""
    from accelerate import PartialState
    from rich.progress import Progress

    from curricurun.commands.evaluate.generation import (
        claim_work_dir,
        class_labels,
        gather_batches,
        generate_batches,
    )
    from curricurun.commands.sample import find_weights, load_generator
    from curricurun.metrics.npz import write_npz

    if request.checkpoint is None:
        raise UserError("--checkpoint: needed to generate samples (or pass --samples FILE.npz)")
    state = PartialState(cpu=not torch.cuda.is_available())
    setup, model = load_generator(recipe, request.checkpoint, request.use_ema, state.device)
    labels = class_labels(setup.num_classes, request.per_class, request.num_samples)
    if not labels:
        raise UserError("--num-samples / --per-class: expected a positive number of samples")
    options = replace(request.options, per_class=1)
    work_dir = out_npz.with_name(f"{out_npz.stem}.batches")
    weights = find_weights(request.checkpoint, request.use_ema)
    description = {"seed": request.seed, "batch_size": request.batch_size, "per_class": request.per_class,
                   "samples": len(labels), "options": asdict(options), "weights": str(weights.resolve()),
                   "weights_bytes": weights.stat().st_size}  # fmt: skip
    claim_work_dir(work_dir, description, state.is_main_process, state.wait_for_everyone)

    def make(classes: list[int], seed: int) -> torch.Tensor:
        return setup.sample(model, classes, seed, options)

    with Progress(disable=not state.is_main_process, transient=True) as progress:
        task = progress.add_task(f"sampling {len(labels)} images", total=len(labels) // state.num_processes)
        count = generate_batches(
            make, labels, request.batch_size, request.seed, work_dir, state.process_index, state.num_processes,
            lambda n: progress.advance(task, n),
        )  # fmt: skip
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    images = gather_batches(work_dir, count)
    write_npz(out_npz, images)
    report(f"wrote {out_npz} ({len(images)} images)")
    return images


def reconstruct_split(recipe, request: EvaluateRequest) -> tuple[np.ndarray, np.ndarray]:
    """A tokenizer run: the evaluation split and its reconstructions (uint8 NHWC each) for rFID and PSNR."""
    from curricurun.commands.evaluate.reference import split_images
    from curricurun.commands.sample import find_weights
    from curricurun.data.sample_pipeline import open_sample_pipeline
    from curricurun.images import to_unit_range
    from curricurun.metrics.npz import to_uint8_nhwc
    from curricurun.weights import load_safetensors_weights

    if request.checkpoint is None:
        raise UserError("--checkpoint: a tokenizer recipe is evaluated on its reconstructions (no --checkpoint)")
    model = open_sample_pipeline(recipe).build_setup().build_model()
    load_safetensors_weights(model, find_weights(request.checkpoint, request.use_ema), field="--checkpoint")
    model.eval()
    real = split_images(recipe)
    parts = []
    with torch.no_grad():
        for start in range(0, len(real), request.batch_size):
            batch = torch.from_numpy(real[start : start + request.batch_size]).permute(0, 3, 1, 2).float()
            output = model(batch / 127.5 - 1.0).reconstruction
            parts.append(to_uint8_nhwc(to_unit_range(output)))
    return real, np.concatenate(parts)


def psnr(real: np.ndarray, fake: np.ndarray) -> float:
    """Mean per-image PSNR in dB on 8-bit pixels (peak 255)."""
    error = ((real.astype(np.float64) - fake.astype(np.float64)) ** 2).reshape(len(real), -1).mean(axis=1)
    return float(np.mean(10.0 * np.log10(255.0**2 / np.maximum(error, 1e-12))))


def score(recipe, request: EvaluateRequest, images: np.ndarray, cache_dir: Path, report, real=None) -> dict:
    """The requested metrics of ``images`` (``real``: the split they reconstruct, for rFID and PSNR)."""
    from curricurun.commands.evaluate.reference import reference_features, reference_statistics
    from curricurun.metrics.extractors import extract, open_extractor
    from curricurun.metrics.scores import feature_statistics, frechet_distance, inception_score, precision_recall

    results: dict[str, float] = {}
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if "psnr" in request.metrics:
        if real is None:
            raise UserError("--metrics psnr: only a tokenizer (vqvae) recipe has reconstructions to compare")
        results["psnr"] = psnr(real, images)
    if {"fid", "is", "prec_recall"} & set(request.metrics):
        extractor = open_extractor(request.feature_extractor, device)
        features, logits = extract(extractor, images)
        if "fid" in request.metrics:
            stats = reference_statistics(recipe, request.reference, extractor, cache_dir, report)
            results["rfid" if real is not None else "fid"] = frechet_distance(feature_statistics(features), stats)
        if "is" in request.metrics:
            results["is"], results["is_std"] = inception_score(logits)
        if "prec_recall" in request.metrics:
            real_features = reference_features(recipe, request.reference, extractor, cache_dir, report)
            try:
                results.update(precision_recall(features, real_features))
            except ValueError as error:
                raise UserError(f"--metrics prec_recall: {error}") from None
    return results


def format_results(results: dict[str, float]) -> list[str]:
    """One ``name value`` line per metric: fractions (precision, recall) to 4 decimals, the rest to 2."""
    return [f"{name} {value:.4f}" if name in ("precision", "recall") else f"{name} {value:.2f}"
            for name, value in results.items()]  # fmt: skip


def run_evaluate(recipe, request: EvaluateRequest, report) -> dict[str, float] | None:
    """Generate (or read, or reconstruct) images, score them, write ``<npz>.metrics.json``; None off rank 0."""
    if request.samples is None and request.checkpoint is None:
        raise UserError("evaluate: pass --checkpoint DIR (generate) or --samples FILE.npz (score existing samples)")
    tokenizer = recipe.setup.name == "vqvae" and request.samples is None
    out_npz = _output_npz(request, tokenizer)
    real = None
    if tokenizer:
        from curricurun.metrics.npz import write_npz

        real, images = reconstruct_split(recipe, request)
        report(f"wrote {write_npz(out_npz, images)} ({len(images)} reconstructions)")
    elif request.samples is not None:
        from curricurun.metrics.npz import read_npz

        images = read_npz(request.samples)
    else:
        images = generate_samples(recipe, request, out_npz, report)
        if images is None:
            return None
    cache_dir = _run_dir(request.checkpoint) / "evaluate" if request.checkpoint else out_npz.parent
    results = score(recipe, request, images, cache_dir, report, real)
    out_json = out_npz.with_name(f"{out_npz.stem}.metrics.json")
    out_json.parent.mkdir(parents=True, exist_ok=True)
    payload = {"metrics": results, "images": int(len(images)), "feature_extractor": request.feature_extractor}
    out_json.write_text(json.dumps(payload, indent=2) + "\n")
    report(f"wrote {out_json}")
    return results
