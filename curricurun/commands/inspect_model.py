"""Parameter counts of a recipe's model, built on the meta device (no memory, no weights, no data)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class FusableModel(Protocol):
    """A model that re-parametrises for deployment (YOLO-NAS's QARepVGG blocks): ``fuse()`` returns that model."""

    def fuse(self) -> torch.nn.Module: ...


def summarize_model(recipe) -> dict[str, Any]:
    """``{"parameters": N, "trainable_parameters": N, "modules": {top-level name: counts}}``.

    The data is not loaded: a setup that needs channel/class counts takes them from the recipe's setup
    section, or from the data source only when the setup cannot do without (a user error says which).
    """
    from curricurun.data.sample_pipeline import open_sample_pipeline

    setup = open_sample_pipeline(recipe).build_setup()
    with torch.device("meta"):
        model = _build_without_weights(setup) if _names_weights(recipe.setup_params) else setup.build_model()
    modules: dict[str, dict[str, int]] = {}
    for name, child in model.named_children():
        modules[name] = _counts(child.parameters())
    direct = [p for n, p in model.named_parameters(recurse=False)]
    if direct:
        modules["(own parameters)"] = _counts(direct)
    summary = {**_counts(model.parameters()), "modules": modules}
    if isinstance(model, FusableModel):
        # Re-parametrisable models (YOLO-NAS's QARepVGG blocks) deploy fused: the count a user ships.
        summary["fused_parameters"] = _counts(model.fuse().parameters())["parameters"]
    return summary


def print_summary(summary: dict[str, Any], console, as_json: bool) -> None:
    """The summary as JSON, or a table per top-level module and the totals (and the fused count when there is one)."""
    import json

    from rich.table import Table

    if as_json:
        console.print(json.dumps(summary, indent=2), markup=False)
        return
    table = Table("module", "parameters", "trainable")
    for name, counts in summary["modules"].items():
        table.add_row(name, f"{counts['parameters']:,}", f"{counts['trainable_parameters']:,}")
    console.print(table)
    console.print(f"total {summary['parameters']:,} parameters, {summary['trainable_parameters']:,} trainable")
    if "fused_parameters" in summary:
        console.print(f"fused for inference (re-parametrised blocks): {summary['fused_parameters']:,} parameters")


def _counts(parameters) -> dict[str, int]:
    total = trainable = 0
    for parameter in parameters:
        total += parameter.numel()
        trainable += parameter.numel() if parameter.requires_grad else 0
    return {"parameters": total, "trainable_parameters": trainable}


def _names_weights(params) -> bool:
    """Whether the setup's recipe section declares ``weights`` (VAR, Pyramid-Flow) and names a file there."""
    return "weights" in type(params).model_fields and bool(params.weights)


def _build_without_weights(setup):
    params = setup.params.model_copy(update={"weights": None})
    setup.params = params
    return setup.build_model()
