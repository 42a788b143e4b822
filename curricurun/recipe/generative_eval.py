"""``training.eval.generative``: FID of a generative run (var, pyramid_flow) logged at its evaluations.

The run's ordinary evaluation cadence (``training.eval.every_epochs`` / ``every_steps``) is the clock: one extra
clock would disagree with it after a resume, and ``curricurun evaluate`` stays the tool for the final, full-size
number. Each evaluation generates ``num_samples`` images (classes cycling, batch ``b`` seeded ``seed·1000003+b``
as in ``curricurun evaluate``, so every evaluation scores the same noise) and logs ``eval/fid`` against the
evaluation split. The feature network is checked here, at ``validate`` and at the start of ``train``, so an
offline machine learns it at once, not after hours of training.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from curricurun.recipe.fields import NonNegativeFloat, PositiveInt, Section, Seed


class GenerativeEvalConfig(Section):
    """How many images to generate at each evaluation, with which guidance, scored by which feature network.

    ``feature_extractor``: ``inception`` (torch-fidelity's TensorFlow-FID port; its weight file must already be
    in torch hub's cache, since a training run does not download) or a classification run directory (the domain
    FID of ``curricurun evaluate --feature-extractor RUN_DIR``, offline).
    """

    num_samples: PositiveInt = 100
    feature_extractor: str = Field("inception", validate_default=True)  # checked even when left out
    cfg: NonNegativeFloat = 1.5
    seed: Seed = 0
    batch_size: PositiveInt = 50

    @field_validator("num_samples")
    @classmethod
    def _enough_for_a_covariance(cls, value: int) -> int:
        if value < 2:
            raise ValueError(f"expected at least 2 samples (FID needs a covariance), got {value}")
        return value

    @field_validator("feature_extractor")
    @classmethod
    def _available(cls, value: str) -> str:
        if value == "inception":
            from curricurun.metrics.extractors import INCEPTION_FILE, inception_weights_path

            path = inception_weights_path()
            if not path.is_file():
                raise ValueError(
                    f"'inception' needs {INCEPTION_FILE} in {path.parent} (a training run does not download it: "
                    "run `curricurun evaluate` once online, or name a classification run directory)"
                )
            return value
        directory = Path(value)
        if not any((folder / "recipe.resolved.yaml").is_file() for folder in (directory, directory.parent)):
            raise ValueError(f"expected 'inception' or a classification run directory, got '{value}' (no run there)")
        return value
