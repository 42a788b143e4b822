"""Reference statistics (mean, covariance of features) for FID and reference features for precision/recall:
a given file, or the recipe's evaluation split.

The split's statistics are computed once per feature network and cached as safetensors next to the run
(``evaluate/reference-<split>-<network>-<n>.safetensors``), like the evaluator's precomputed reference batches
(``VIRTUAL_imagenet256_labeled.npz`` for VAR, VAR README). Precision/recall compares point sets, not Gaussians,
so it needs the features themselves: cached as ``...-<n>-features.safetensors``; a ``.safetensors`` statistics
file as ``--reference`` cannot give them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from curricurun.errors import UserError
from curricurun.metrics.extractors import extract
from curricurun.metrics.npz import read_npz, to_uint8_nhwc
from curricurun.metrics.scores import feature_statistics


def split_images(recipe, split_name: str | None = None, limit: int | None = None) -> np.ndarray:
    """A split of the recipe's data as uint8 NHWC, through its deterministic evaluation transform."""
    from curricurun.data.sample_pipeline import open_sample_pipeline
    from curricurun.images import to_unit_range

    name = split_name or recipe.data.eval_split
    if name is None:
        raise UserError("data.eval_split: the recipe has no evaluation split; pass --reference FILE.npz")
    pipeline = open_sample_pipeline(recipe)
    split = pipeline.load_split(name, limit or recipe.data.max_eval_samples)
    dataset = pipeline.evaluation_dataset(split, recipe.data.image_size, 0, len(split))
    loader = torch.utils.data.DataLoader(dataset, batch_size=256, collate_fn=pipeline.collate)
    return np.concatenate([to_uint8_nhwc(to_unit_range(batch["image"])) for batch in loader])


def load_statistics(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        stats = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise UserError(f"--reference: {path} is not a readable safetensors file ({error})") from None
    if set(stats) != {"mu", "sigma"}:
        raise UserError(f"--reference: {path}: expected tensors mu and sigma, found {', '.join(sorted(stats))}")
    return stats


def save_statistics(path: Path, stats: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    save_file({key: np.ascontiguousarray(value) for key, value in stats.items()}, str(temporary))
    temporary.replace(path)


def reference_statistics(recipe, reference: Path | None, extractor, cache_dir: Path, report) -> dict[str, np.ndarray]:
    """``--reference`` (.npz images or .safetensors statistics), else the evaluation split (cached)."""
    if reference is not None:
        if reference.suffix == ".safetensors":
            return load_statistics(reference)
        return feature_statistics(extract(extractor, read_npz(reference, field="--reference"))[0])
    split = recipe.data.eval_split
    limit = recipe.data.max_eval_samples
    cache = cache_dir / f"reference-{split}-{extractor.tag}-{limit or 'all'}.safetensors"
    if cache.is_file():
        return load_statistics(cache)
    report(f"reference statistics of the {split} split with {extractor.tag} (cached at {cache})")
    stats = feature_statistics(extract(extractor, split_images(recipe))[0])
    save_statistics(cache, stats)
    return stats


def reference_features(recipe, reference: Path | None, extractor, cache_dir: Path, report) -> np.ndarray:
    """Features ``[N, D]`` of ``--reference`` (.npz images), else of the evaluation split (cached)."""
    from safetensors.numpy import load_file

    if reference is not None:
        if reference.suffix == ".safetensors":
            raise UserError(
                f"--reference: precision/recall needs reference images (.npz), {reference} holds only mu and sigma"
            )
        return extract(extractor, read_npz(reference, field="--reference"))[0]
    split, limit = recipe.data.eval_split, recipe.data.max_eval_samples
    cache = cache_dir / f"reference-{split}-{extractor.tag}-{limit or 'all'}-features.safetensors"
    if cache.is_file():
        return load_file(str(cache))["features"]
    report(f"reference features of the {split} split with {extractor.tag} (cached at {cache})")
    features = np.asarray(extract(extractor, split_images(recipe))[0], dtype=np.float64)
    save_statistics(cache, {"features": features})
    return features
