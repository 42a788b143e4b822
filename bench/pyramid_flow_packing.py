"""Pyramid-Flow training step time: stage segments packed into one sequence per row vs one batch per stage.

Both arms are the tiny recipe's model (recipes/pyramid_flow_tiny.yaml: DiT width 128, depth 4, patch 4, 32 px
pixel space, 3 stages) with identical weights, the same AdamW, and the same [1, 2, 1] batch of 48 images (12 rows
of 1 + 2 + 1 segments: 4 + 2·16 + 64 = 100 tokens per row). ``packed`` runs every block once on [12, 100] tokens
with a boolean block-diagonal attention mask (research/pyramid_flow.md §3); ``unpacked`` runs it three times, on
[12, 4], [24, 16] and [12, 64]. A step is forward, backward and the optimizer step, timed by ``perf_counter``.

Method: after ``--warmup`` steps per arm, the arms alternate in rounds of ``--steps`` steps, the first arm swapping
every round so machine drift hits both; an arm's time is the median over rounds of its mean step time, and the
ratio is the median of the per-round ratios. Synthetic images (random in [-1, 1]): the content does not change
the compute. One torch thread by default (a shared 2-core VM is steadier that way; ``--threads`` to change).

    .venv/bin/python bench/pyramid_flow_packing.py
    .venv/bin/python bench/pyramid_flow_packing.py --threads 2 --rounds 10 --batch 96
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from curricurun.curriculum.base import StageState
from curricurun.recipe import load_recipe
from curricurun.setups.base import DataShape
from curricurun.setups.pyramid_flow.setup import PyramidFlowSetup

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "pyramid_flow_tiny.yaml"


def build_arm(packing: str, batch_size: int):
    """The tiny recipe's setup and model with ``packing``, weights from seed 0, and a step function."""
    recipe = load_recipe(RECIPE)
    params = recipe.setup_params.model_copy(update={"packing": packing})
    setup = PyramidFlowSetup(params, DataShape(1, 10, recipe.data.image_size))
    torch.manual_seed(0)
    model = setup.build_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.optim.lr, betas=recipe.optim.betas)
    generator = torch.Generator().manual_seed(1)
    batch = {
        "image": torch.rand(batch_size, 1, 32, 32, generator=generator) * 2 - 1,
        "label": torch.randint(0, 10, (batch_size,), generator=generator),
        "index": torch.arange(batch_size),
    }
    stage = StageState(stage_ratios=tuple(recipe.curriculum_params[0].ratios))

    def step() -> None:
        loss = setup.training_loss(model, batch, stage)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def mean_step_seconds(step, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per arm per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=48, help="a multiple of 4 (the [1, 2, 1] groups)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    arms = {name: build_arm(name, args.batch) for name in ("packed", "unpacked")}
    for step in arms.values():
        mean_step_seconds(step, args.warmup)
    times: dict[str, list[float]] = {name: [] for name in arms}
    ratios = []
    for round_index in range(args.rounds):
        order = list(arms) if round_index % 2 == 0 else list(arms)[::-1]
        measured = {name: mean_step_seconds(arms[name], args.steps) for name in order}
        for name, seconds in measured.items():
            times[name].append(seconds)
        ratios.append(measured["unpacked"] / measured["packed"])
    packed, unpacked = (statistics.median(times[name]) * 1000 for name in ("packed", "unpacked"))
    print(f"batch {args.batch}, threads {args.threads}, {args.rounds} rounds × {args.steps} steps per arm")
    print(f"packed:   {packed:8.1f} ms/step (median over rounds)")
    print(f"unpacked: {unpacked:8.1f} ms/step")
    print(
        f"unpacked / packed: {statistics.median(ratios):.3f} (median of per-round ratios;"
        f" range {min(ratios):.3f}–{max(ratios):.3f})"
    )


if __name__ == "__main__":
    main()
