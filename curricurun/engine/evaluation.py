"""Evaluation with exact metrics across ranks.

Each rank evaluates a contiguous shard of the split (no sample twice, no padding), the setup returns sums,
and the sums are all-reduced: the metric is exactly what one process would compute on the whole split.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from curricurun.data.staged import EvalDataset, collate, shard_bounds


@torch.no_grad()
def evaluate(setup, model, eval_data, resolution: int, batch_size: int, accelerator, recipe) -> dict[str, float]:
    from curricurun.data.transforms import EvalTransform

    start, stop = shard_bounds(len(eval_data), accelerator.process_index, accelerator.num_processes)
    dataset = EvalDataset(eval_data, EvalTransform(), resolution, start, stop)
    loader = DataLoader(
        dataset, batch_size=max(batch_size, 256), collate_fn=collate, num_workers=recipe.data.num_workers
    )
    was_training = model.training
    model.eval()
    totals: dict[str, torch.Tensor] = {}
    for batch in loader:
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        with accelerator.autocast():
            sums = setup.evaluation_sums(model, batch)
        for key, value in sums.items():
            totals[key] = totals.get(key, 0) + value.double()
    keys = sorted(totals) or ["count"]
    local = torch.stack(
        [torch.as_tensor(totals.get(k, 0.0), dtype=torch.float64, device=accelerator.device) for k in keys]
    )
    summed = accelerator.reduce(local, "sum") if accelerator.num_processes > 1 else local
    model.train(was_training)
    return setup.metrics_from_sums({k: float(v) for k, v in zip(keys, summed.tolist(), strict=True)})
