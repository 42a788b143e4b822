"""Feature networks for FID/IS: torch-fidelity's Inception-v3 port, or a curricurun classifier.

Both map uint8 images ``[N, H, W, C]`` to ``(features [N, D], logits [N, K])`` in float64: FID reads the
features, IS the logits.

- ``inception``: torch-fidelity's ``FeatureExtractorInceptionV3`` (the TensorFlow FID Inception converted to
  PyTorch; features ``2048``, IS logits ``logits_unbiased``), the network OpenAI's evaluator and VAR's reported
  numbers use. Its weight file is fetched once into torch hub's cache; offline, one line says where to put it.
- a classification checkpoint (``curricurun train recipes/demo.yaml``): its penultimate layer (timm's
  ``forward_head(pre_logits=True)``) as features and its logits for IS, so 28-px grey runs get a domain FID
  (Inception features on Fashion-MNIST mean little). Works offline.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from curricurun.errors import UserError

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


def inception_weights_path() -> Path:
    """Where torch-fidelity's ``load_state_dict_from_url`` keeps the file: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def ensure_inception_weights() -> Path:
    """The cached weight file, downloaded on first use; offline: one line naming the file, URL and place."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    path = inception_weights_path()
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(URL_INCEPTION_V3, str(path), progress=False)
    except Exception as error:  # URLError, timeouts, HTTP errors: all mean "not here and not fetchable"
        raise UserError(
            f"--feature-extractor inception: {INCEPTION_FILE} is not cached and could not be downloaded "
            f"({type(error).__name__}); download {URL_INCEPTION_V3} and put it at {path} "
            "(or pass --feature-extractor CHECKPOINT)"
        ) from None
    return path


@contextlib.contextmanager
def _weights_only_loads() -> Iterator[None]:
    """torch-fidelity loads a given path with ``weights_only=False``; force the safe loader for that call."""
    before = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = before


class InceptionFeatures:
    """torch-fidelity's Inception: pool features (2048) and unbiased logits (1008) of uint8 RGB images."""

    tag = "inception"

    def __init__(self, device: torch.device):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = ensure_inception_weights()
        try:
            with _weights_only_loads():
                network = FeatureExtractorInceptionV3(
                    "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path)
                )
        except Exception as error:  # a damaged or foreign file: refuse it with its name, never unpickle it
            reason = type(error).__name__
            raise UserError(f"--feature-extractor: {path} is not an Inception state dict ({reason})") from None
        self.network, self.device = network.to(device), device

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = torch.from_numpy(images).permute(0, 3, 1, 2).to(self.device)
        if batch.shape[1] == 1:
            batch = batch.repeat(1, 3, 1, 1)  # grey to RGB, as the evaluator's PIL convert("RGB") does
        features, logits = self.network(batch)
        return features.double().cpu().numpy(), logits.double().cpu().numpy()


def _run_dir_of(checkpoint: Path) -> Path:
    """A run directory or one of its checkpoint directories → the run directory (holds recipe.resolved.yaml)."""
    for candidate in (checkpoint, checkpoint.parent):
        if (candidate / "recipe.resolved.yaml").is_file():
            return candidate
    raise UserError(f"--feature-extractor: {checkpoint} is not a run or checkpoint (no recipe.resolved.yaml)")


class ClassifierFeatures:
    """A curricurun classification run's model: penultimate features and logits at the run's image size."""

    def __init__(self, checkpoint: Path, device: torch.device):
        from curricurun.commands.sample import find_weights
        from curricurun.data.sample_pipeline import open_sample_pipeline
        from curricurun.recipe import load_recipe
        from curricurun.weights import load_safetensors_weights

        run_dir = _run_dir_of(Path(checkpoint))
        recipe = load_recipe(run_dir / "recipe.resolved.yaml", [])
        if recipe.setup.name != "classification":
            raise UserError(f"--feature-extractor: {run_dir} is a '{recipe.setup.name}' run, expected classification")
        setup = open_sample_pipeline(recipe).build_setup()
        model = setup.build_model()
        load_safetensors_weights(model, find_weights(Path(checkpoint), False), field="--feature-extractor")
        if not hasattr(model, "forward_head"):
            raise UserError(f"--feature-extractor: {recipe.setup.model} has no timm forward_head (penultimate layer)")
        self.model, self.device = model.to(device).eval(), device
        self.channels, self.size = setup.channels, recipe.data.image_size
        self.tag = f"classifier-{run_dir.name}"

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = torch.from_numpy(images).permute(0, 3, 1, 2).to(self.device).float() / 255.0
        if batch.shape[1] != self.channels:
            batch = batch.mean(1, keepdim=True) if self.channels == 1 else batch.expand(-1, self.channels, -1, -1)
        if batch.shape[-1] != self.size or batch.shape[-2] != self.size:
            batch = torch.nn.functional.interpolate(batch, (self.size, self.size), mode="bilinear", antialias=True)
        batch = (batch - 0.5) / 0.5  # the loaders' [-1, 1] (curricurun.images.to_unit_range is the inverse)
        pooled = self.model.forward_features(batch)
        features = self.model.forward_head(pooled, pre_logits=True)
        logits = self.model.forward_head(pooled)
        return features.double().cpu().numpy(), logits.double().cpu().numpy()


def open_extractor(name: str, device: torch.device):
    """``inception`` or a classification checkpoint/run directory."""
    if name == "inception":
        return InceptionFeatures(device)
    if not Path(name).is_dir():
        raise UserError(f"--feature-extractor: expected 'inception' or a classification run directory, got '{name}'")
    return ClassifierFeatures(Path(name), device)


def extract(extractor, images: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Features and logits of all ``images`` in batches."""
    parts = [extractor(images[start : start + batch_size]) for start in range(0, len(images), batch_size)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
