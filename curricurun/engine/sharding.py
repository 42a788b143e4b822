"""FSDP through Accelerate (``training.fsdp``) and the full, unsharded state a checkpoint holds under it.

The plugin follows Pyramid-Flow's reference trainer (``train/train_pyramid_flow.py``, ``build_fsdp_plugin``):
``SHARD_GRAD_OP`` (its default ``--fsdp_shard_strategy zero2``) or ``FULL_SHARD``, the transformer blocks as the
wrap units, and the FULL state dict type. curricurun asks for FSDP2 (``fully_shard``) by default, Accelerate's
newer path; ``version: 1`` selects the ``FullyShardedDataParallel`` wrapper.

Checkpoints stay the format every other run writes: the whole model in ``model.safetensors`` and the optimizer state
keyed by parameter position in ``optimizer.pt``. Gathering shards to that form (torch's
``torch.distributed.checkpoint.state_dict`` API, which serves FSDP1 and FSDP2 alike) is what lets a sharded run
resume on another world size, or without FSDP at all.

CPU: Accelerate 1.16 never turns FSDP on without a GPU. With ``Accelerator(cpu=True)`` the distributed type stays
MULTI_CPU and the plugin is dropped without a word (``accelerate/state.py``, ``AcceleratorState.__init__``: the
``DistributedType.FSDP`` branch sits inside ``elif self.distributed_type in [MULTI_GPU, MULTI_MLU, ...]``, a list
without MULTI_CPU), so the model is wrapped in DDP, unsharded. curricurun refuses such a recipe in one line rather
than train it silently unsharded. (torch's own ``fully_shard`` does run on CPU with gloo; the tests use it to check
the gather and the restore below on two processes.)
"""

from __future__ import annotations

from typing import Any

import torch

from curricurun.errors import UserError

CPU_REFUSAL = (
    "training.fsdp: FSDP needs a CUDA GPU: on CPU Accelerate keeps the multi-CPU (DDP) type and drops the FSDP"
    " plugin (accelerate/state.py, AcceleratorState), so the run would not be sharded; remove training.fsdp"
    " (--set training.fsdp=null) or run on GPUs"
)


def fsdp_plugin(config, cuda: bool | None = None):
    """Accelerate's ``FullyShardedDataParallelPlugin`` for ``training.fsdp``, or None when the recipe has none."""
    if config is None:
        return None
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if not cuda:
        raise UserError(CPU_REFUSAL)
    from accelerate.utils import FullyShardedDataParallelPlugin

    if config.version == 2:  # FSDP2 spells the strategy as "reshard the parameters after forward?"
        reshard: bool | str = config.sharding_strategy == "FULL_SHARD"
    else:
        reshard = config.sharding_strategy
    wrap = list(config.wrap_classes)
    return FullyShardedDataParallelPlugin(
        fsdp_version=config.version,
        reshard_after_forward=reshard,
        auto_wrap_policy="transformer_based_wrap" if wrap else "no_wrap",
        transformer_cls_names_to_wrap=wrap or None,
        state_dict_type="FULL_STATE_DICT",
        cpu_ram_efficient_loading=False,
    )


def check_wrap_classes(model: torch.nn.Module, config) -> None:
    """Every class named in ``training.fsdp.wrap_classes`` is a module of the model (one line naming the others)."""
    if config is None:
        return
    present = {type(module).__name__ for module in model.modules()}
    missing = [name for name in config.wrap_classes if name not in present]
    if missing:
        raise UserError(f"training.fsdp.wrap_classes: {', '.join(missing)} is not a module of the model;"
                        f" it has {', '.join(sorted(present))}")  # fmt: skip


def refuse_exporting_setups(config, setup_name: str, exporter) -> None:
    """A setup that exports at the end (vqvae: the tokenizer) writes the unwrapped model from the main process
    alone, which under FSDP holds only its shards: such a setup trains without ``training.fsdp``."""
    if config is not None and exporter is not None:
        raise UserError(f"training.fsdp: the {setup_name} setup exports its model from one process at the end, which"
                        " under FSDP holds only a shard; train it without fsdp (it is small)")  # fmt: skip


def is_sharded(model: torch.nn.Module) -> bool:
    """True for an FSDP1-wrapped model or one with FSDP2 (DTensor) parameters."""
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.tensor import DTensor

    if any(isinstance(module, FullyShardedDataParallel) for module in model.modules()):
        return True
    return any(isinstance(parameter, DTensor) for parameter in model.parameters())


def _options(**kwargs):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's state dict on the CPU: gathered on rank 0 (other ranks: empty) when sharded.

    A collective when sharded: every rank must call it.
    """
    if not is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_options(cpu_offload=True))


def full_optimizer_state(model: torch.nn.Module, optimizer) -> dict[str, Any]:
    """The optimizer state in ``torch.optim``'s own form (keyed by parameter position), whole, on rank 0.

    Sharded, torch's gather keys it by parameter name; the names are numbered in the order of the optimizer's
    groups, which is the order ``optimizer.state_dict()`` of the same model unsharded uses.
    """
    if not is_sharded(model):
        return optimizer.state_dict()
    optimizer = getattr(optimizer, "optimizer", optimizer)  # Accelerate's AcceleratedOptimizer wraps torch's
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    by_name = get_optimizer_state_dict(model, optimizer, options=_options(cpu_offload=True))
    if not by_name:  # ranks other than 0
        return {}
    position = {name: index for index, name in enumerate(n for g in by_name["param_groups"] for n in g["params"])}
    return {
        "state": {position[name]: value for name, value in by_name["state"].items()},
        "param_groups": [{**g, "params": [position[n] for n in g["params"]]} for g in by_name["param_groups"]],
    }


WRAPPER_PREFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


def _clean(name: str) -> str:
    """A parameter's name as the unwrapped model has it (FSDP1 and torch.compile insert wrapper prefixes)."""
    for prefix in WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


def load_full_state(model: torch.nn.Module, optimizer, model_state: dict[str, torch.Tensor],
                    optimizer_state: dict[str, Any] | None) -> None:  # fmt: skip
    """Load a whole (unsharded) checkpoint state into the model and optimizer, sharded or not.

    Every rank passes the whole state (each reads the checkpoint files); sharded, each keeps its own shard.
    """
    if not is_sharded(model):
        model.load_state_dict(model_state)
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
        return
    optimizer = getattr(optimizer, "optimizer", optimizer)
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    set_model_state_dict(model, model_state, options=_options())
    if optimizer_state is None:
        return
    names = {parameter: _clean(name) for name, parameter in model.named_parameters()}
    ordered = [names[p] for group in optimizer.param_groups for p in group["params"]]
    stored_groups = optimizer_state["param_groups"]
    if sum(len(g["params"]) for g in stored_groups) != len(ordered):
        raise ValueError(f"the optimizer state has {sum(len(g['params']) for g in stored_groups)} parameters,"
                         f" the model {len(ordered)}")  # fmt: skip
    by_name = {
        "state": {ordered[int(index)]: value for index, value in optimizer_state["state"].items()},
        "param_groups": [{**g, "params": [ordered[int(i)] for i in g["params"]]} for g in stored_groups],
    }
    set_optimizer_state_dict(model, optimizer, by_name, options=_options())
