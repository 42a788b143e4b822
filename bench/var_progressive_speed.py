"""VAR progressive training: how much faster is a step at an early stage than at the full token sequence?

VAR's curriculum trains stage p on the first e_p tokens of the pyramid (research/var.md §2.2); ``inspect-schedule``
prices a step at e_p / L of a full one. This measures the real ratio on the ``var_tiny`` transformer (depth 2,
pyramid 1,2,3,4,6,8: e = 1, 5, 14, 30, 66, 130 tokens): a training step (forward, backward, AdamW step) at each
stage, two ways:

- ``transformer``: pre-tokenized batches, so only what the curriculum shortens is timed;
- ``+ tokenizer``: images in, as the engine trains: the frozen tokenizer encodes every image's whole pyramid and
  builds the teacher-forcing inputs each step (as VAR does), a cost that does not shrink with the stage.

Stages are timed in rotating order, round by round, so drift of a shared machine hits all of them; each cell is the
median over rounds of the median step time of a round. Printed: seconds per step, time ratio to the full sequence,
and the token ratio e_p / L beside it.

    .venv/bin/python bench/var_progressive_speed.py                     # ~4 minutes on one thread
    .venv/bin/python bench/var_progressive_speed.py --tokenizer runs/vqvae_tiny/tokenizer --threads 2 --rounds 7
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from curricurun.curriculum.base import StageState
from curricurun.recipe import load_recipe
from curricurun.setups.base import DataShape
from curricurun.setups.var.setup import VarSetup
from curricurun.setups.vqvae.tokenizer import MultiScaleTokenizer, save_tokenizer
from curricurun.setups.vqvae.vqvae import VQVAEConfig

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "var_tiny.yaml"


def random_tokenizer(directory: Path) -> Path:
    """vqvae_tiny's configuration with random weights: the same cost as the trained one."""
    config = VQVAEConfig(
        in_channels=1, image_size=32, ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, z_channels=16, vocab_size=256,
        patch_nums=(1, 2, 3, 4, 6, 8),
    )  # fmt: skip
    return save_tokenizer(MultiScaleTokenizer(config), directory)


def step_seconds(setup: VarSetup, model, optimizer, batch, stage: StageState, steps: int) -> float:
    """Median wall time of ``steps`` training steps (after one untimed step)."""
    times = []
    for index in range(steps + 1):
        start = time.perf_counter()
        loss = setup.training_loss(model, batch, stage)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if index:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", type=Path, help="a tokenizer directory (default: random vqvae_tiny weights)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per stage and round")
    parser.add_argument("--batch", type=int, default=64, help="var_tiny's batch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = args.tokenizer or random_tokenizer(Path(scratch) / "tokenizer")
        recipe = load_recipe(RECIPE, [f"setup.tokenizer={tokenizer}"])
        setup = VarSetup(recipe.setup_params, DataShape(1, 10, 32))
        model = setup.build_model().train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
        images = {
            "image": torch.rand(args.batch, 1, 32, 32) * 2 - 1,
            "label": torch.randint(10, (args.batch,)),
        }
        tokens = setup.measure_batch(StageState(), args.batch)
        ends = setup.config.token_ends
        stages = list(range(len(ends)))
        first = recipe.curriculum_params[0].pg0
        timings: dict[tuple[str, int], list[float]] = {}
        for round_index in range(args.rounds):
            order = stages[round_index % len(stages) :] + stages[: round_index % len(stages)]
            for stage in order:
                state = StageState(scale_index=stage)
                for arm, batch in (("transformer", tokens), ("+ tokenizer", images)):
                    seconds = step_seconds(setup, model, optimizer, batch, state, args.steps)
                    timings.setdefault((arm, stage), []).append(seconds)

    median = {key: statistics.median(values) for key, values in timings.items()}
    last = stages[-1]
    print(f"var_tiny transformer ({sum(p.numel() for p in model.parameters()):,} parameters), batch {args.batch},")
    print(
        f"{args.threads} thread(s), {args.rounds} rounds × {args.steps} steps; tokenizer: {args.tokenizer or 'random'}"
    )
    print(f"{'stage':>5} {'tokens':>6} {'token ratio':>11} | {'transformer s':>13} {'ratio':>6} |"
          f" {'+ tokenizer s':>13} {'ratio':>6}")  # fmt: skip
    for stage in stages:
        mark = "  <- first progressive stage (pg0)" if stage == first else ""
        row = [median[("transformer", stage)], median[("+ tokenizer", stage)]]
        full = [median[("transformer", last)], median[("+ tokenizer", last)]]
        print(
            f"{stage:>5} {ends[stage]:>6} {ends[stage] / ends[-1]:>11.3f} | {row[0]:>13.4f} {row[0] / full[0]:>6.3f} |"
            f" {row[1]:>13.4f} {row[1] / full[1]:>6.3f}{mark}"
        )
    speedup = median[("transformer", last)] / median[("transformer", first)]
    engine = median[("+ tokenizer", last)] / median[("+ tokenizer", first)]
    print(
        f"first stage vs full: {speedup:.2f}× faster (transformer), {engine:.2f}× (with the tokenizer);"
        f" token ratio predicts {ends[-1] / ends[first]:.2f}×"
    )


if __name__ == "__main__":
    main()
