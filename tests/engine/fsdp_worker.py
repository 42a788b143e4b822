"""Worker of tests/engine/test_fsdp.py: FSDP2 (torch's ``fully_shard``, gloo, CPU) through curricurun's checkpoint.

``two OUT`` (under torchrun, 2 processes): train 2 steps sharded, write a checkpoint of the gathered states with
``save_checkpoint``, train 2 more (``OUT/uninterrupted.safetensors``); then a fresh, differently initialised sharded
model and optimizer restore that checkpoint and train the same 2 steps (``OUT/resumed.safetensors``).
``one OUT`` (1 process, no FSDP): restore the 2-process checkpoint and train the same 2 steps on the whole global
batch (``OUT/one.safetensors``).

Accelerate does not shard on CPU (curricurun/engine/sharding.py says where), so the model is sharded with torch's
``fully_shard`` directly: the same FSDP2 module type and DTensor parameters Accelerate's FSDP2 path produces on GPUs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from curricurun.engine.checkpoint import load_checkpoint, save_checkpoint
from curricurun.engine.sharding import full_model_state, full_optimizer_state, is_sharded, load_full_state

WIDTH, GLOBAL_BATCH, CHECKPOINT_STEP, LAST_STEP = 16, 8, 2, 4


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.norm = torch.nn.Linear(WIDTH, WIDTH), torch.nn.LayerNorm(WIDTH)

    def forward(self, x):
        return x + torch.nn.functional.gelu(self.norm(self.fc(x)))


def build(seed: int, shard: bool):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(Block(), Block(), torch.nn.Linear(WIDTH, 4))
    if shard:
        from torch.distributed.fsdp import fully_shard

        for block in model[:2]:
            fully_shard(block)
        fully_shard(model)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)


def batch(step: int, rank: int, world: int):
    generator = torch.Generator().manual_seed(1000 + step)
    inputs = torch.randn(GLOBAL_BATCH, WIDTH, generator=generator)
    targets = torch.randn(GLOBAL_BATCH, 4, generator=generator)
    share = GLOBAL_BATCH // world
    return inputs[rank * share : (rank + 1) * share], targets[rank * share : (rank + 1) * share]


def train(model, optimizer, steps: range, rank: int, world: int) -> None:
    for step in steps:
        inputs, targets = batch(step, rank, world)
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def write_final(model, path: Path, rank: int) -> None:
    state = full_model_state(model)
    if rank == 0:
        save_file({name: tensor.contiguous() for name, tensor in state.items()}, str(path))


def two_processes(out: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model, optimizer = build(seed=0, shard=True)
    assert is_sharded(model)
    train(model, optimizer, range(CHECKPOINT_STEP), rank, world)
    weights, moments = full_model_state(model), full_optimizer_state(model, optimizer)
    if rank == 0:
        save_checkpoint(out, CHECKPOINT_STEP, weights, moments, {"step": CHECKPOINT_STEP, "world_size": world})
    dist.barrier()
    train(model, optimizer, range(CHECKPOINT_STEP, LAST_STEP), rank, world)
    write_final(model, out / "uninterrupted.safetensors", rank)

    resumed, resumed_optimizer = build(seed=1, shard=True)
    loaded = load_checkpoint(out / f"checkpoint-{CHECKPOINT_STEP:08d}")
    load_full_state(resumed, resumed_optimizer, loaded["model"], loaded["optimizer"])
    train(resumed, resumed_optimizer, range(CHECKPOINT_STEP, LAST_STEP), rank, world)
    write_final(resumed, out / "resumed.safetensors", rank)
    dist.barrier()
    dist.destroy_process_group()
    # About 1 run in 6 aborted after this point ("terminate called without an active exception", exit -6) with every
    # file written: a thread of torch's gloo/FSDP2 teardown destroyed while joinable at interpreter exit. The work
    # is done and the files closed, so the process leaves without running the C++ static destructors.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def one_process(out: Path) -> None:
    model, optimizer = build(seed=1, shard=False)
    loaded = load_checkpoint(out / f"checkpoint-{CHECKPOINT_STEP:08d}")
    load_full_state(model, optimizer, loaded["model"], loaded["optimizer"])
    train(model, optimizer, range(CHECKPOINT_STEP, LAST_STEP), 0, 1)
    write_final(model, out / "one.safetensors", 0)


if __name__ == "__main__":
    (two_processes if sys.argv[1] == "two" else one_process)(Path(sys.argv[2]))
