"""Writing a step's LR and weight decay into an optimizer's param groups (the only torch-facing part of ``lr``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def apply_to_optimizer(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float | None) -> None:
    """Write this step's LR into every param group and the weight decay into the decayed groups.

    A group's optional ``lr_scale`` multiplies the LR (VAR's ``lr_sc``, ``utils/lr_control.py:54``). Weight
    decay goes only to groups with ``weight_decay_applies`` true, as built by
    :func:`curricurun.param_groups.split_decay_groups` (VAR schedules only its 'D' group, lr_control.py:85-88).

    Raises:
        ValueError: ``weight_decay`` is given but a group lacks ``weight_decay_applies``, which would
            otherwise silently train without weight decay.
    """
    for index, group in enumerate(optimizer.param_groups):
        group["lr"] = lr * group.get("lr_scale", 1.0)
        if weight_decay is None:
            continue
        if "weight_decay_applies" not in group:
            raise ValueError(
                f"param group {index} has no 'weight_decay_applies' key; build the optimizer's groups with "
                "curricurun.param_groups.split_decay_groups()"
            )
        if group["weight_decay_applies"]:
            group["weight_decay"] = weight_decay
