"""Optimizer parameter groups: which parameters get weight decay.

Weight decay pulls weights towards zero. That regularises matrices and convolution kernels, but on biases,
norm scales/shifts, embeddings and learned tokens it only shifts the function, so the usual rule (and
VAR's, ``utils/lr_control.py:68-88``; super-gradients'
``zero_weight_decay_on_bias_and_bn``, ``coco2017_yolo_nas_pose_train_params.yaml:15``) exempts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

# VAR's no-weight-decay keys, matched as substrings of parameter names (VAR ``train.py:110-116``).
VAR_NO_DECAY_NAMES: tuple[str, ...] = (
    "cls_token",
    "start_token",
    "task_token",
    "cfg_uncond",
    "pos_embed",
    "pos_1LC",
    "pos_start",
    "start_pos",
    "lvl_embed",
    "gamma",
    "beta",
    "ada_gss",
    "moe_bias",
    "scale_mul",
)


def split_decay_groups(
    model: nn.Module, no_decay_names: Sequence[str] = (), decay_embeddings: bool = False
) -> list[dict[str, Any]]:
    """Split the trainable parameters into a decayed and a non-decayed optimizer group.

    A parameter is *not* decayed when any of these holds:

    - it has ndim <= 1 (biases, norm layers' weights and biases, scalars);
    - its name ends with ``bias``;
    - it is the weight of an ``nn.Embedding`` and ``decay_embeddings`` is false;
    - its name contains one of ``no_decay_names`` (substring match, as VAR does).

    VAR's exact rule is ``no_decay_names=VAR_NO_DECAY_NAMES, decay_embeddings=True``: VAR decays its class
    embedding and exempts ``lvl_embed`` only through the key list (``utils/lr_control.py:85-88``). VAR treats a 0-dim
    parameter as decayed; here it is not (ndim <= 1), which VAR's models never meet.

    Frozen parameters (``requires_grad=False``) are left out: the optimizer should not hold them.

    Args:
        model: the model, before any distributed wrapper (names are used in the key match).
        no_decay_names: substrings of parameter names that are never decayed.
        decay_embeddings: decay ``nn.Embedding`` weights too.

    Returns:
        Up to two groups (empty groups are dropped), each ``{"params", "names", "weight_decay_applies"}``;
        the non-decayed group also carries ``"weight_decay": 0.0`` so the optimizer's default never reaches
        it. :func:`curricurun.lr.optimizer.apply_to_optimizer` writes the scheduled weight decay into the other one.
    """
    embedding_ids = set()
    if not decay_embeddings:
        embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decayed: dict[str, Any] = {"params": [], "names": [], "weight_decay_applies": True}
    exempt: dict[str, Any] = {"params": [], "names": [], "weight_decay_applies": False, "weight_decay": 0.0}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = (
            param.ndim <= 1
            or name.endswith("bias")
            or id(param) in embedding_ids
            or any(key in name for key in no_decay_names)
        )
        group = exempt if no_decay else decayed
        group["params"].append(param)
        group["names"].append(name)
    return [group for group in (decayed, exempt) if group["params"]]

