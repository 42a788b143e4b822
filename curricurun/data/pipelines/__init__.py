"""Named image pipelines, one per reference, chosen by the recipe's ``data.pipeline: {name: ..., **params}``.

========================  ==============================================================================
``imagenet``              timm's ImageNet transforms (EfficientTrain++, ICCV ET, DeiT, ConvNeXt)
``var``                   VAR ``utils/data.py:17-27``
``pyramid_flow``          Pyramid-Flow ``dataset/dataset_cls.py:81-114``
``small_images``          28-64 px data (Fashion-MNIST, the demo): pad-crop, flip, ``data.augment``
========================  ==============================================================================

Modules import only pydantic at the top, so ``validate`` checks a pipeline's parameters without torchvision.
"""

from __future__ import annotations

import importlib
from typing import Any

from curricurun.data.pipelines.base import Pipeline, PipelineParams, require_rgb

_MODULES = {
    "imagenet": ("curricurun.data.pipelines.imagenet", "ImagenetPipeline"),
    "var": ("curricurun.data.pipelines.var", "VarPipeline"),
    "pyramid_flow": ("curricurun.data.pipelines.pyramid_flow", "PyramidFlowPipeline"),
    "small_images": ("curricurun.data.pipelines.small_images", "SmallImagesPipeline"),
}
DEFAULT = "small_images"
# data.augment fields that only the small_images path reads (the reference pipelines carry their own ops).
PER_SAMPLE_AUGMENT = ("hflip", "random_crop_padding", "randaugment_magnitude", "randaugment_num_ops")


def available() -> dict[str, type]:
    """Every pipeline by name (the recipe loader validates ``data.pipeline`` against these classes' ``Params``)."""
    return {name: getattr(importlib.import_module(module), cls) for name, (module, cls) in _MODULES.items()}


def build(spec: Any, augment: Any = None, data: Any = None) -> Pipeline:
    """The pipeline a recipe's ``data.pipeline`` names (a ``ComponentSpec`` or ``{name: ..., **params}``).

    ``augment`` is the recipe's ``data.augment`` (read by ``small_images``); with ``data`` (the loaded split) a
    reference pipeline refuses grey images with one line before any worker starts.
    """
    name, params = (spec.name, spec.params) if hasattr(spec, "params") else (spec["name"], dict(spec))
    params = {key: value for key, value in params.items() if key != "name"}
    cls = available()[name]
    validated = cls.Params.model_validate(params)
    if name == DEFAULT:
        return cls(validated, augment)
    if data is not None:
        require_rgb(data, name)
        if name == "imagenet":
            validated.require_decode_device()  # decode_device: cuda without CUDA, one line before any sample
    return cls(validated)


def describe(data: Any) -> str:
    """One line for ``inspect-schedule``: the recipe's pipeline, its ops in order and their settings."""
    return f"data pipeline: {build(data.pipeline, data.augment).describe()}"


def augment_conflicts(data: Any) -> list[tuple[tuple[str, ...], str]]:
    """``data.augment`` per-sample fields set for a pipeline that does not read them, and ``decode_device: cuda``
    with DataLoader workers (forked workers cannot use CUDA), as validate problems."""
    from curricurun.recipe.schema import AugmentConfig

    name = data.pipeline.name
    if name == DEFAULT:
        return []
    problems: list[tuple[tuple[str, ...], str]] = []
    if data.pipeline.params.get("decode_device") == "cuda" and data.num_workers > 0:
        message = f"decode_device 'cuda' (data.pipeline) decodes in the main process: needs 0, found {data.num_workers}"
        problems.append((("data", "num_workers"), message))
    defaults = AugmentConfig()
    return problems + [
        (
            ("data", "augment", field),
            f"the '{name}' pipeline does not read it; set its own parameter under data.pipeline",
        )
        for field in PER_SAMPLE_AUGMENT
        if getattr(data.augment, field) != getattr(defaults, field)
    ]


__all__ = ["DEFAULT", "Pipeline", "PipelineParams", "augment_conflicts", "available", "build", "describe"]
