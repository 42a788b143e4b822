"""FID at a training run's evaluations (``training.eval.generative``): the engine's hook, one number per call.

Samples are made exactly as ``curricurun evaluate`` makes them (classes cycling, batch ``b`` seeded
``seed·1000003 + b``), so the logged curve is the same measurement at every step and the same as ``evaluate
--num-samples N`` on that step's checkpoint with the same feature network. The reference is the evaluation
split the run already holds, through its deterministic evaluation transform. The feature network and the
split's statistics are computed once per process and kept: later evaluations only generate and extract.

Every rank generates the whole set and computes the same FID (no gather): the in-training set is small, and
equal numbers on every rank keep early stopping's decision the same everywhere.
"""

from __future__ import annotations

import numpy as np
import torch

from curricurun.commands.evaluate.generation import batch_seed, class_labels
from curricurun.metrics.extractors import extract, open_extractor
from curricurun.metrics.npz import to_uint8_nhwc
from curricurun.metrics.scores import feature_statistics, frechet_distance

# key → (eval_data, extractor, statistics); holding eval_data keeps its id from being reused by another split
_REFERENCE_CACHE: dict[tuple, tuple[object, object, dict[str, np.ndarray]]] = {}


def _reference(config, eval_data, resolution: int, samples, device: torch.device):
    """The feature network and the evaluation split's feature statistics, built on first use."""
    from torch.utils.data import DataLoader

    from curricurun.images import to_unit_range

    key = (config.feature_extractor, id(eval_data), len(eval_data), resolution, str(device))
    if key not in _REFERENCE_CACHE or _REFERENCE_CACHE[key][0] is not eval_data:
        extractor = open_extractor(config.feature_extractor, device)
        dataset = samples.evaluation_dataset(eval_data, resolution, 0, len(eval_data))
        loader = DataLoader(dataset, batch_size=256, collate_fn=samples.collate)
        real = np.concatenate([to_uint8_nhwc(to_unit_range(batch["image"])) for batch in loader])
        _REFERENCE_CACHE[key] = (eval_data, extractor, feature_statistics(extract(extractor, real)[0]))
    return _REFERENCE_CACHE[key][1:]


@torch.no_grad()
def generative_metrics(setup, model, eval_data, resolution: int, samples, recipe, accelerator) -> dict[str, float]:
    """``{"fid": ...}`` of ``config.num_samples`` fresh samples of ``model`` against the evaluation split."""
    from curricurun.setups.base import SampleOptions, optional_hooks

    config = recipe.training.eval.generative
    generator = optional_hooks(setup).generator
    network = accelerator.unwrap_model(model)
    labels = class_labels(generator.num_classes, None, config.num_samples)
    options = SampleOptions(cfg=config.cfg)
    batches = [
        to_uint8_nhwc(
            generator.sample(network, labels[start : start + config.batch_size], batch_seed(config.seed, b), options)
        )
        for b, start in enumerate(range(0, len(labels), config.batch_size))
    ]
    extractor, reference = _reference(config, eval_data, resolution, samples, accelerator.device)
    features = extract(extractor, np.concatenate(batches))[0]
    return {"fid": frechet_distance(feature_statistics(features), reference)}
