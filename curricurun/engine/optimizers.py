"""Optimiser construction from the recipe's ``optim`` section.

Weight decay is written into the decayed groups by the engine every step (it may follow a schedule), so
every group is created with ``weight_decay=0`` here, as VAR does (``train.py:121``).
"""

from __future__ import annotations

import torch

from curricurun.engine.device import optimizer_options


def build_optimizer(optim, param_groups: list[dict]) -> torch.optim.Optimizer:
    """AdamW / Adam / SGD from torch, LAMB from timm (ET++'s ConvNeXt and ResNet recipes use it)."""
    groups = [
        {"params": group["params"], "weight_decay": 0.0, "weight_decay_applies": group["weight_decay_applies"]}
        for group in param_groups
        if group["params"]
    ]
    options = optimizer_options(optim.name)  # fused on CUDA (VAR train.py:118-119), foreach on CPU
    if optim.name == "adamw":
        return torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps, **options)
    if optim.name == "adam":
        return torch.optim.Adam(groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps, **options)
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, nesterov=optim.nesterov)
    if optim.name == "lamb":
        from timm.optim import Lamb

        return Lamb(groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)
    raise ValueError(f"unknown optimizer {optim.name}")  # the recipe schema allows only the names above
