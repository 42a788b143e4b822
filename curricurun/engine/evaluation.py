"""Evaluation with exact metrics across ranks.

Each rank evaluates a contiguous shard of the split (no sample twice, no padding), the setup returns sums,
and the sums are all-reduced: the metric is exactly what one process would compute on the whole split.
Sums may be tensors of any shape (a per-scale code histogram, say): they are flattened into one vector for a
single all-reduce and given back their shapes afterwards.
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
            totals[key] = totals.get(key, 0) + value.detach().double()
    summed = _all_reduce_sums(totals, accelerator)
    model.train(was_training)
    return setup.metrics_from_sums(summed)


def _all_reduce_sums(totals: dict[str, torch.Tensor], accelerator) -> dict[str, torch.Tensor | float]:
    """Sum every rank's totals; scalars come back as floats, other shapes as CPU float64 tensors.

    A rank whose shard was empty has no totals; the keys and shapes of the other ranks are not known to it, so
    every rank must see at least one batch (true whenever the split has at least ``world_size`` samples).
    """
    keys = sorted(totals) or ["count"]
    parts = [torch.as_tensor(totals.get(k, 0.0), dtype=torch.float64, device=accelerator.device) for k in keys]
    shapes = [part.shape for part in parts]
    flat = torch.cat([part.reshape(-1) for part in parts])
    summed = accelerator.reduce(flat, "sum") if accelerator.num_processes > 1 else flat
    result: dict[str, torch.Tensor | float] = {}
    offset = 0
    for key, shape in zip(keys, shapes, strict=True):
        size = int(torch.Size(shape).numel())
        value = summed[offset : offset + size].reshape(shape).cpu()
        result[key] = float(value) if value.dim() == 0 else value
        offset += size
    return result


def first_evaluation_batch(eval_data, resolution: int, count: int, device) -> dict[str, torch.Tensor]:
    """The first ``count`` evaluation samples as one batch: the fixed inputs of reconstruction/sample pictures."""
    from curricurun.data.transforms import EvalTransform

    dataset = EvalDataset(eval_data, EvalTransform(), resolution, 0, min(count, len(eval_data)))
    batch = collate([dataset[i] for i in range(len(dataset))])
    return {k: v.to(device) for k, v in batch.items()}
