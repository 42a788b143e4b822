"""Batch-level augmentation of EfficientTrain++ / DeiT recipes: random erasing, Mixup and CutMix, through timm.

ET++ trains with timm's defaults as the ConvNeXt code sets them (ET++
``main_buffer.py`` L116-151): ``RandomErasing(0.25, mode="pixel")`` on every normalised sample, then
``Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5, mode="batch")`` on the batch, with label
smoothing 0.1 folded into the mixed targets. Both are timm's own classes; this module only decides where they
run and makes their randomness a function of the step.

Where they run. Erasing is applied to the fresh batch on the host, before the replay buffer stores it (in ET++
it is part of the loader's transform, so a replayed sample keeps its erasing, ``engine_buffer.py`` L113); its draws are
independent per sample, so erasing a batch equals erasing each sample. Mixup runs on the training batch on the
device, after the replay buffer and the FFT crop (ICCV ``engine.py`` L49-50 crops before mixup).

Label smoothing is not given to timm here: :func:`mix_batch` makes unsmoothed soft targets and the loss
smooths them (``F.cross_entropy(..., label_smoothing=ε)`` with probability targets computes
``target·(1 − ε) + ε/K``). Because smoothing is affine and the mixing weights sum to 1, this equals timm's
``mixup_target(..., smoothing=ε)`` exactly, and label smoothing stays one setup parameter.

Randomness. timm draws from Python's ``random`` (erasing boxes), NumPy's global generator (mixup λ, cutmix
box) and torch's default generator (the ``pixel`` noise). :func:`seeded_host_random` seeds the first two from
the step's seed and restores them afterwards; the engine seeds torch's generator every step already. So a
resumed run mixes and erases exactly as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch
from timm.data.mixup import Mixup
from timm.data.random_erasing import RandomErasing


@contextlib.contextmanager
def seeded_host_random(seed: int) -> Iterator[None]:
    """Seed Python's and NumPy's global generators for the block, then restore their previous states."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def build_random_erasing(probability: float, mode: str = "pixel", max_count: int = 1) -> RandomErasing | None:
    """timm's ``RandomErasing`` on host tensors, or None when ``probability`` is 0.

    ``mode``: ``const`` (zeros, the normalised mean), ``rand`` (one normal colour per box) or ``pixel``
    (per-pixel normal noise, ET++'s ``--remode pixel``); ``max_count`` boxes at most per image (``--recount``).
    """
    if probability <= 0:
        return None
    return RandomErasing(probability=probability, mode=mode, max_count=max_count, device="cpu")


def build_mixup(
    mixup_alpha: float,
    cutmix_alpha: float,
    num_classes: int,
    prob: float = 1.0,
    switch_prob: float = 0.5,
    mode: str = "batch",
) -> Mixup | None:
    """timm's ``Mixup`` producing unsmoothed soft targets, or None when neither mixup nor cutmix is on."""
    if (mixup_alpha <= 0 and cutmix_alpha <= 0) or prob <= 0:
        return None
    return Mixup(
        mixup_alpha=mixup_alpha,
        cutmix_alpha=cutmix_alpha,
        prob=prob,
        switch_prob=switch_prob,
        mode=mode,
        label_smoothing=0.0,
        num_classes=num_classes,
    )


def erase_batch(batch: dict[str, torch.Tensor], eraser: RandomErasing, seed: int) -> dict[str, torch.Tensor]:
    """Random erasing of each image of ``batch["image"]`` (in place), with Python's ``random`` seeded by ``seed``."""
    with seeded_host_random(seed):
        eraser(batch["image"])
    return batch


def mix_batch(batch: dict[str, torch.Tensor], mixer: Mixup, seed: int) -> dict[str, torch.Tensor]:
    """Mix the batch's images (in place) and add ``batch["target"]``, the ``[B, K]`` soft targets.

    ``batch["label"]`` keeps the hard labels of the unmixed images. The batch size must be even (timm mixes
    each image with its mirror in the batch, ``x.flip(0)``).
    """
    if len(batch["image"]) % 2:
        raise ValueError(f"mixup needs an even batch size, got {len(batch['image'])}")
    with seeded_host_random(seed):
        images, target = mixer(batch["image"], batch["label"])
    return {**batch, "image": images, "target": target}
